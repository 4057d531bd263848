//! Replaying journal frames into the segments (FORMAT.md §13): read and
//! check every frame of every journal file from the manifest on, then (on
//! a second pass) apply its operations. A torn frame is tolerated only at
//! the end of the newest file; damage followed by a valid frame is
//! corruption.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Result, io_at};
use crate::format::journal::{self as jf, FrameBinding, JH_LEN, Op};
use crate::format::manifest::Manifest;
use crate::format::segment_header;
use crate::journal::read::{FrameReader, all_zero_from, scan_rest};
use crate::journal::replay::{KeyState, SegState, State, open_rw};
use crate::key::parse_segment_file_name;
use crate::options::RecoveryMode;
use crate::recovery::{RecoveryReport, TornTail};
use crate::segment::LastRecord;
use crate::storage::{OpenMode, StorageFile, read_exact_at, remove_if_present, write_all_at};

/// Most segment handles replay keeps open at once.
const MAX_REPLAY_HANDLES: usize = 64;
/// Most bytes of records replay holds before writing them to their
/// segments: runs of one segment's records are written with one call.
const MAX_PENDING_BYTES: usize = 8 << 20;

/// Records for one segment, contiguous from `start`, not yet written.
struct PendingRun {
    start: u64,
    bytes: Vec<u8>,
}

pub(super) struct Replayer<'a> {
    engine: &'a Engine,
    pub st: &'a mut State,
    handles: HashMap<(u64, u64), Arc<dyn StorageFile>>,
    /// Records applied but not yet written, by (key hash, sequence).
    pending: BTreeMap<(u64, u64), PendingRun>,
    /// Segments some frame removes (found by the first pass): their
    /// records are not written (the file may be gone already).
    removed: HashSet<(u64, u64)>,
    /// The lowest position some frame cuts each segment to (found by the
    /// first pass): such a file may be shorter than the manifest says.
    pub cuts: HashMap<(u64, u64), u64>,
    /// Segments a *create* found on disk with its header: cut to their
    /// replayed end once every frame is applied.
    recut: BTreeSet<(u64, u64)>,
    pending_bytes: usize,
    report: &'a mut RecoveryReport,
    /// False for the first pass, which checks the frames and then seals
    /// the newest file (cuts its torn tail, or removes it if its header is
    /// torn, and fdatasyncs it); true for the second, which applies them.
    pub apply: bool,
    /// The newest journal file had a torn header and was removed.
    pub dropped_last_file: bool,
    /// Bytes of valid frames read (in the last pass).
    pub frame_bytes: u64,
}

impl<'a> Replayer<'a> {
    pub fn new(engine: &'a Engine, st: &'a mut State, report: &'a mut RecoveryReport) -> Self {
        Self {
            engine,
            st,
            handles: HashMap::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            removed: HashSet::new(),
            cuts: HashMap::new(),
            recut: BTreeSet::new(),
            report,
            apply: false,
            dropped_last_file: false,
            frame_bytes: 0,
        }
    }

    /// Replay journal files in order; returns the next frame number.
    pub fn replay_all(&mut self, journals: &[(u64, &String)], m: &Manifest) -> Result<u64> {
        let mut next_frame = m.next_frame;
        self.frame_bytes = 0;
        for (i, (expected_file, (seq, name))) in (m.journal_start..).zip(journals).enumerate() {
            let path = self.engine.config.dir.join(name);
            if *seq != expected_file {
                return Err(crate::recovery::corrupted(
                    &path,
                    0,
                    format_args!("journal file {expected_file} before it is missing"),
                ));
            }
            let last = i + 1 == journals.len();
            if last && self.dropped_last_file {
                break;
            }
            next_frame = self.replay_file(&path, *seq, next_frame, last)?;
        }
        self.flush_all()?;
        self.cut_recreated()?;
        Ok(next_frame)
    }

    /// Cut each segment a *create* kept to the end its frames gave it.
    fn cut_recreated(&mut self) -> Result<()> {
        for ids in std::mem::take(&mut self.recut) {
            let Some(seg) = self.st.get(&ids.0).and_then(|k| k.segments.get(&ids.1)) else {
                continue;
            };
            let (path, end) = (self.engine.config.dir.join(&seg.file_name), seg.end);
            let file = self.handle(ids, &path)?;
            let len = file.file_len().map_err(|e| io_at(&path, "stat", e))?;
            if len > end {
                file.set_len(end).map_err(|e| io_at(&path, "truncate", e))?;
            }
        }
        Ok(())
    }

    /// Write every pending run to its segment.
    fn flush_all(&mut self) -> Result<()> {
        while let Some((ids, _)) = self.pending.first_key_value() {
            let ids = *ids;
            self.flush(ids)?;
        }
        Ok(())
    }

    /// Write segment `ids`' pending run, if any, with one call.
    fn flush(&mut self, ids: (u64, u64)) -> Result<()> {
        let Some(run) = self.pending.remove(&ids) else {
            return Ok(());
        };
        self.pending_bytes -= run.bytes.len();
        let Some(seg) = self.st.get(&ids.0).and_then(|k| k.segments.get(&ids.1)) else {
            return Ok(());
        };
        let path = self.engine.config.dir.join(&seg.file_name);
        let file = self.handle(ids, &path)?;
        write_all_at(&*file, &run.bytes, run.start).map_err(|e| io_at(&path, "write", e))
    }

    /// Queue `records` for segment `ids` at `position`, after any run they
    /// continue.
    fn queue(&mut self, ids: (u64, u64), position: u64, records: &[u8]) -> Result<()> {
        let continues = self
            .pending
            .get(&ids)
            .is_some_and(|r| r.start + r.bytes.len() as u64 == position);
        if !continues {
            self.flush(ids)?;
        }
        if self.pending_bytes + records.len() > MAX_PENDING_BYTES {
            self.flush_all()?;
        }
        let run = self.pending.entry(ids).or_insert_with(|| PendingRun {
            start: position,
            bytes: Vec::new(),
        });
        run.bytes.extend_from_slice(records);
        self.pending_bytes += records.len();
        Ok(())
    }

    fn replay_file(
        &mut self,
        path: &std::path::Path,
        seq: u64,
        mut next_frame: u64,
        last: bool,
    ) -> Result<u64> {
        let file = open_rw(self.engine, path)?;
        let len = file.file_len().map_err(|e| io_at(path, "stat", e))?;
        let mut head = [0u8; JH_LEN];
        let header = if len >= JH_LEN as u64 {
            read_exact_at(&*file, &mut head, 0).map_err(|e| io_at(path, "read", e))?;
            jf::decode_header(&head)
        } else {
            Err(format!("{len} bytes"))
        };
        let header = match header {
            Ok(h) if h.sequence == seq && h.first_frame == next_frame => h,
            Ok(h) => {
                return Err(crate::recovery::corrupted(
                    path,
                    0,
                    format_args!(
                        "journal header says file {} from frame {}; expected file {seq} from frame {next_frame}",
                        h.sequence, h.first_frame
                    ),
                ));
            }
            // A journal file's header is durable before any frame is
            // written to it: a bad header in the newest file, with nothing
            // but zeros after it, is a creation a crash cut short, holding
            // nothing. Removed, so it never sits before the next file (its
            // number is made again). Bytes after a bad header are frames
            // whose header was durable once: damage, never removed.
            // Refused like any torn write under `AbsoluteConsistency`.
            Err(_)
                if last
                    && self.engine.config.recovery != RecoveryMode::AbsoluteConsistency
                    && all_zero_from(&*file, path, JH_LEN as u64, len)? =>
            {
                if !self.apply {
                    drop(file);
                    self.engine
                        .config
                        .storage
                        .remove_file(path)
                        .map_err(|e| io_at(path, "remove torn", e))?;
                    self.dropped_last_file = true;
                }
                return Ok(next_frame);
            }
            Err(why) => return Err(crate::recovery::corrupted(path, 0, why)),
        };
        let mut pos = JH_LEN as u64;
        let mut reader = FrameReader::new(&*file, path, len);
        loop {
            let binding = FrameBinding {
                salt: header.salt,
                file_sequence: seq,
                position: pos,
            };
            let Some((total, ops)) = reader.read(binding, next_frame)? else {
                break;
            };
            if self.apply {
                for op in ops {
                    self.apply(op, path, pos)?;
                }
                self.report.replayed_frames += 1;
            } else {
                for op in ops {
                    match op {
                        Op::Remove { key_hash, sequence } => {
                            self.removed.insert((key_hash, sequence));
                        }
                        Op::Cut {
                            key_hash,
                            sequence,
                            position,
                        } => {
                            let cut = self.cuts.entry((key_hash, sequence)).or_insert(position);
                            *cut = (*cut).min(position);
                        }
                        _ => {}
                    }
                }
            }
            pos += total;
            next_frame += 1;
        }
        self.judge_end(&*file, path, (pos, len), header.salt, seq, last)?;
        self.frame_bytes += pos - JH_LEN as u64;
        if !self.apply && last {
            // IMPORTANT: a process crash may have left this file's frames
            // (and the cut of its torn tail) in the page cache only. They
            // are made durable before the second pass applies any frame:
            // an applied removal whose frame a power loss then took would
            // leave a segment missing that the manifest lists. And appends
            // after this open go to the next file: this one must be durable
            // before any frame of a later file is, or a power loss could
            // leave a gap before it.
            self.engine.count(crate::metrics::Count::JournalSyncs, 1);
            file.sync_data().map_err(|e| io_at(path, "fdatasync", e))?;
        }
        Ok(next_frame)
    }

    /// Where valid frames end: zeros to the end of the file, or a torn
    /// tail (only in the newest file, which alone can end unsynced), or
    /// corruption if a valid frame follows.
    fn judge_end(
        &mut self,
        file: &dyn StorageFile,
        path: &std::path::Path,
        (pos, len): (u64, u64),
        salt: u64,
        seq: u64,
        last: bool,
    ) -> Result<()> {
        let scan = scan_rest(file, path, pos, len, salt, seq)?;
        if scan.all_zero {
            return Ok(());
        }
        if let Some(at) = scan.valid_frame_at {
            return Err(crate::recovery::corrupted(
                path,
                pos,
                format_args!("damaged journal frame with a valid frame after it at {at}"),
            ));
        }
        if !last || self.engine.config.recovery == RecoveryMode::AbsoluteConsistency {
            return Err(crate::recovery::corrupted(
                path,
                pos,
                "damaged journal frame (a torn write)",
            ));
        }
        if self.apply {
            // The first pass cut it already.
            return Ok(());
        }
        // Cut it, so frames appended after this open never follow garbage
        // (the first pass checked every frame before it).
        file.set_len(pos).map_err(|e| io_at(path, "truncate", e))?;
        self.report.torn_tails.push(TornTail {
            path: path.to_path_buf(),
            file_position: pos,
            bytes_dropped: len - pos,
            reason: "journal frame incomplete or failing its checksum".into(),
            repaired: true,
        });
        Ok(())
    }

    fn handle(&mut self, ids: (u64, u64), path: &std::path::Path) -> Result<Arc<dyn StorageFile>> {
        if let Some(f) = self.handles.get(&ids) {
            return Ok(f.clone());
        }
        if self.handles.len() >= MAX_REPLAY_HANDLES {
            self.handles.clear();
        }
        let f = open_rw(self.engine, path)?;
        self.handles.insert(ids, f.clone());
        Ok(f)
    }

    fn apply(&mut self, op: Op<'_>, journal: &std::path::Path, at: u64) -> Result<()> {
        let bad = |why: String| crate::recovery::corrupted(journal, at, why);
        match op {
            Op::Create {
                key_hash,
                sequence,
                file_name,
                header,
            } => self.create(key_hash, sequence, file_name, header, journal, at),
            Op::Records {
                key_hash,
                sequence,
                position,
                records,
            } => {
                // A segment a later frame removes may be gone from the
                // manifest already: a checkpoint snapshots after rotating,
                // so a removal between the two leaves its records (in the
                // new journal file) naming a segment the manifest omits.
                if self.removed.contains(&(key_hash, sequence)) {
                    return Ok(());
                }
                let seg = self
                    .st
                    .get_mut(&key_hash)
                    .and_then(|k| k.segments.get_mut(&sequence))
                    .ok_or_else(|| {
                        bad(format!("records for unknown segment {key_hash}/{sequence}"))
                    })?;
                let len = records.len() as u64;
                let Some(records_end) = position.checked_add(len) else {
                    return Err(bad(format!("records at {position} run past 2^64")));
                };
                if records_end <= seg.end {
                    return Ok(());
                }
                // A checkpoint snapshots each key after rotating the journal,
                // so its manifest can already hold a truncation whose earlier
                // records are in the journal after it: records past a
                // segment's end that a frame of this journal cuts away.
                let cut_later = self
                    .cuts
                    .get(&(key_hash, sequence))
                    .is_some_and(|&c| c <= seg.end);
                if position != seg.end && cut_later {
                    return Ok(());
                }
                if position != seg.end {
                    return Err(bad(format!(
                        "records at {position} of segment {key_hash}/{sequence}, which ends at {}",
                        seg.end
                    )));
                }
                let last = crate::format::record::last_start(records).ok_or_else(|| {
                    bad(format!(
                        "records for segment {key_hash}/{sequence} are not whole records"
                    ))
                })?;
                seg.end += len;
                seg.durable_end = 0;
                seg.last = LastRecord::At(position + last as u64);
                self.queue((key_hash, sequence), position, records)
            }
            Op::Cut {
                key_hash,
                sequence,
                position,
            } => match self.cut_state(key_hash, sequence, position) {
                Ok(Some(file_name)) => self.cut_file((key_hash, sequence), &file_name, position),
                Ok(None) => Ok(()),
                Err(why) => Err(bad(why)),
            },
            Op::Hide {
                key_hash,
                sequence,
                position,
            } => {
                if self.removed.contains(&(key_hash, sequence)) {
                    return Ok(());
                }
                let seg = self
                    .st
                    .get_mut(&key_hash)
                    .and_then(|k| k.segments.get_mut(&sequence))
                    .ok_or_else(|| bad(format!("hide in unknown segment {key_hash}/{sequence}")))?;
                if position < seg.header_len || position > seg.end {
                    return Err(bad(format!(
                        "hide before {position} in segment {key_hash}/{sequence}, which ends at {}",
                        seg.end
                    )));
                }
                seg.start = seg.start.max(position);
                Ok(())
            }
            Op::Remove { key_hash, sequence } => {
                let Some(seg) = self
                    .st
                    .get_mut(&key_hash)
                    .and_then(|k| k.segments.remove(&sequence))
                else {
                    return Ok(());
                };
                // No records of it were queued: the first pass found this
                // removal, and `Records` skips segments in `removed`.
                self.handles.remove(&(key_hash, sequence));
                let path = self.engine.config.dir.join(&seg.file_name);
                remove_if_present(&*self.engine.config.storage, &path)
                    .map_err(|e| io_at(&path, "remove", e))?;
                self.engine.dir_changed();
                Ok(())
            }
        }
    }

    /// Apply a cut to the state; returns the file to cut (`None`: the
    /// segment is removed later, so nothing is written to it).
    fn cut_state(
        &mut self,
        key_hash: u64,
        sequence: u64,
        position: u64,
    ) -> std::result::Result<Option<String>, String> {
        if self.removed.contains(&(key_hash, sequence)) {
            return Ok(None);
        }
        let Some(seg) = self
            .st
            .get_mut(&key_hash)
            .and_then(|k| k.segments.get_mut(&sequence))
        else {
            return Err(format!("cut of unknown segment {key_hash}/{sequence}"));
        };
        if position < seg.start {
            return Err(format!(
                "cut at {position} of segment {key_hash}/{sequence}, which holds {}..{}",
                seg.start, seg.end
            ));
        }
        if position > seg.end {
            // Cut there already: by this replay's earlier pass, or before
            // the checkpoint whose manifest this replay starts from (which
            // may have seen a later, shorter cut).
            return Ok(None);
        }
        seg.end = position;
        seg.durable_end = seg.durable_end.min(position);
        seg.last = LastRecord::Unknown;
        Ok(Some(seg.file_name.clone()))
    }

    /// Cut a segment's file (idempotent: a cut file is cut again), after
    /// writing the records the frames before the cut queued for it.
    fn cut_file(&mut self, ids: (u64, u64), file_name: &str, position: u64) -> Result<()> {
        let path = self.engine.config.dir.join(file_name);
        self.flush(ids)?;
        let file = self.handle(ids, &path)?;
        file.set_len(position)
            .map_err(|e| io_at(&path, "truncate", e))
    }

    fn create(
        &mut self,
        key_hash: u64,
        sequence: u64,
        file_name: &str,
        header: &[u8],
        journal: &std::path::Path,
        at: u64,
    ) -> Result<()> {
        let bad = |why: String| crate::recovery::corrupted(journal, at, why);
        if parse_segment_file_name(file_name) != Some((key_hash, sequence))
            || file_name.contains(['/', '\\'])
        {
            return Err(bad(format!("bad segment file name {file_name:?}")));
        }
        let h = segment_header::decode(header).map_err(|d| bad(format!("segment header: {d}")))?;
        if h.key_hash != Some(key_hash) || h.sequence != Some(sequence) || h.len != header.len() {
            return Err(bad("segment header does not match its operation".into()));
        }
        let k = self.st.entry(key_hash).or_insert_with(|| KeyState {
            key: h.key.clone(),
            next_sequence: sequence,
            segments: BTreeMap::new(),
        });
        if k.key != h.key {
            return Err(bad(format!("segment of another key with hash {key_hash}")));
        }
        k.next_sequence = k.next_sequence.max(sequence + 1);
        if k.segments.contains_key(&sequence) {
            // The checkpoint saw it already.
            return Ok(());
        }
        let path = self.engine.config.dir.join(file_name);
        let storage = &self.engine.config.storage;
        // A file by this name is what a crash left of this very creation
        // (checked by `check_strays`): it is made again from the frame.
        let file = match self
            .engine
            .with_descriptor(|| storage.open(&path, OpenMode::CreateNew))
        {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let f = open_rw(self.engine, &path)?;
                if starts_with(&*f, header).map_err(|e| io_at(&path, "read", e))? {
                    // Kept: the frames rewrite every byte after the header
                    // up to the segment's end, and the rest is cut off once
                    // they are applied (no truncation to zero, which makes
                    // ext4 free the blocks and flush the file on close).
                    self.recut.insert((key_hash, sequence));
                } else {
                    f.set_len(0).map_err(|e| io_at(&path, "truncate", e))?;
                    write_all_at(&*f, header, 0).map_err(|e| io_at(&path, "write", e))?;
                }
                f
            }
            other => {
                let f = other.map_err(|e| io_at(&path, "create", e))?;
                write_all_at(&*f, header, 0).map_err(|e| io_at(&path, "write", e))?;
                f
            }
        };
        self.engine.dir_changed();
        k.segments.insert(
            sequence,
            SegState {
                file_name: file_name.to_owned(),
                version: h.version,
                header_len: header.len() as u64,
                salt: h.salt,
                rotate_at_ms: h.rotate_at_ms,
                end: header.len() as u64,
                durable_end: 0,
                start: header.len() as u64,
                last: LastRecord::Unknown,
            },
        );
        if self.handles.len() >= MAX_REPLAY_HANDLES {
            self.handles.clear();
        }
        self.handles.insert((key_hash, sequence), file);
        Ok(())
    }
}

/// Whether `file` begins with `prefix`.
fn starts_with(file: &dyn StorageFile, prefix: &[u8]) -> std::io::Result<bool> {
    if file.file_len()? < prefix.len() as u64 {
        return Ok(false);
    }
    let mut head = vec![0u8; prefix.len()];
    read_exact_at(file, &mut head, 0)?;
    Ok(head == prefix)
}
