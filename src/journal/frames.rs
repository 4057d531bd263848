//! Replaying journal frames into the segments (FORMAT.md §13): read and
//! check every frame of every journal file from the manifest on, then (on
//! a second pass) apply its operations. A torn frame is tolerated only at
//! the end of the newest file; damage followed by a valid frame is
//! corruption.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Result, io_at};
use crate::format::journal::{self as jf, FH_LEN, FrameBinding, JH_LEN, Op};
use crate::format::manifest::Manifest;
use crate::format::segment_header;
use crate::journal::replay::{KeyState, SegState, State, open_rw};
use crate::key::parse_segment_file_name;
use crate::options::RecoveryMode;
use crate::recovery::{RecoveryReport, TornTail};
use crate::storage::{OpenMode, StorageFile, read_exact_at, write_all_at};

/// Most segment handles replay keeps open at once.
const MAX_REPLAY_HANDLES: usize = 64;

pub(super) struct Replayer<'a> {
    engine: &'a Engine,
    pub st: &'a mut State,
    handles: HashMap<(u64, u64), Arc<dyn StorageFile>>,
    report: &'a mut RecoveryReport,
    /// False for the first pass, which only checks the frames.
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
            next_frame = self.replay_file(&path, *seq, next_frame, last)?;
        }
        Ok(next_frame)
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
            // written to it: a bad header in the newest file is a creation
            // a crash cut short, holding nothing. Removed, so it never sits
            // before the next file (its number is made again).
            Err(_) if last => {
                if self.apply {
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
        loop {
            let binding = FrameBinding {
                salt: header.salt,
                file_sequence: seq,
                position: pos,
            };
            match self.read_frame(&*file, path, binding, len, next_frame)? {
                Some(total) => {
                    pos += total;
                    next_frame += 1;
                }
                None => break,
            }
        }
        self.judge_end(&*file, path, (pos, len), header.salt, seq, last)?;
        self.frame_bytes += pos - JH_LEN as u64;
        if self.apply && last {
            // IMPORTANT: appends after this open go to the next file, and
            // the journal stays until a checkpoint. A process crash may have
            // left this file's frames (and the cut of its torn tail) in the
            // page cache only; they must be durable before any frame of a
            // later file is, or a power loss could leave a gap before it.
            self.engine.count(crate::metrics::Count::JournalSyncs, 1);
            file.sync_data().map_err(|e| io_at(path, "fdatasync", e))?;
        }
        Ok(next_frame)
    }

    /// Read, check and apply the frame at `binding.position`; its length,
    /// or `None` where valid frames end.
    fn read_frame(
        &mut self,
        file: &dyn StorageFile,
        path: &std::path::Path,
        binding: FrameBinding,
        len: u64,
        number: u64,
    ) -> Result<Option<u64>> {
        let mut payload = Vec::new();
        let Some((total, ops)) = read_frame(file, path, binding, len, number, &mut payload)? else {
            return Ok(None);
        };
        if self.apply {
            for op in ops {
                self.apply(op, path, binding.position)?;
            }
            self.report.replayed_frames += 1;
        }
        Ok(Some(total))
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
        if !self.apply {
            return Ok(());
        }
        // Cut it, so frames appended after this open never follow garbage.
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
                let dir = self.engine.config.dir.clone();
                let seg = self
                    .st
                    .get_mut(&key_hash)
                    .and_then(|k| k.segments.get_mut(&sequence))
                    .ok_or_else(|| {
                        bad(format!("records for unknown segment {key_hash}/{sequence}"))
                    })?;
                let len = records.len() as u64;
                if position + len <= seg.end {
                    return Ok(());
                }
                if position != seg.end {
                    return Err(bad(format!(
                        "records at {position} of segment {key_hash}/{sequence}, which ends at {}",
                        seg.end
                    )));
                }
                let path = dir.join(&seg.file_name);
                seg.end += len;
                seg.durable_end = 0;
                let file = self.handle((key_hash, sequence), &path)?;
                write_all_at(&*file, records, position).map_err(|e| io_at(&path, "write", e))
            }
            Op::Remove { key_hash, sequence } => {
                let Some(seg) = self
                    .st
                    .get_mut(&key_hash)
                    .and_then(|k| k.segments.remove(&sequence))
                else {
                    return Ok(());
                };
                self.handles.remove(&(key_hash, sequence));
                let path = self.engine.config.dir.join(&seg.file_name);
                match self.engine.config.storage.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_at(&path, "remove", e)),
                }
                self.engine.dir_changed();
                Ok(())
            }
        }
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
                f.set_len(0).map_err(|e| io_at(&path, "truncate", e))?;
                f
            }
            other => other.map_err(|e| io_at(&path, "create", e))?,
        };
        self.engine.dir_changed();
        write_all_at(&*file, header, 0).map_err(|e| io_at(&path, "write", e))?;
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
            },
        );
        if self.handles.len() >= MAX_REPLAY_HANDLES {
            self.handles.clear();
        }
        self.handles.insert((key_hash, sequence), file);
        Ok(())
    }
}

/// Read and check the frame at `binding.position` of a journal file `len`
/// bytes long: it must verify at that position, carry frame number
/// `number`, lie within the file and verify whole (body checksum and
/// operations). Returns its length and its operations (borrowed from
/// `payload`, which it fills), or `None` where valid frames end. The
/// payload's length is checked against the file before it is allocated.
/// Recovery and `inspect` read frames with this one function.
pub(crate) fn read_frame<'p>(
    file: &dyn StorageFile,
    path: &std::path::Path,
    binding: FrameBinding,
    len: u64,
    number: u64,
    payload: &'p mut Vec<u8>,
) -> Result<Option<(u64, Vec<Op<'p>>)>> {
    let pos = binding.position;
    if pos.saturating_add(FH_LEN as u64) > len {
        return Ok(None);
    }
    let mut fixed = [0u8; FH_LEN];
    read_exact_at(file, &mut fixed, pos).map_err(|e| io_at(path, "read", e))?;
    let Some(head) = jf::decode_head(&fixed, binding) else {
        return Ok(None);
    };
    // Checked against the file before anything is allocated for it.
    if head.number != number || pos.saturating_add(head.total_len()) > len {
        return Ok(None);
    }
    payload.clear();
    payload.resize(head.payload_len as usize, 0);
    read_exact_at(file, payload, pos + FH_LEN as u64).map_err(|e| io_at(path, "read", e))?;
    match jf::decode_ops(payload, &head) {
        Ok(ops) => Ok(Some((head.total_len(), ops))),
        Err(_) => Ok(None),
    }
}

/// What follows the last valid frame.
pub(crate) struct RestScan {
    /// Nothing but zeros to the end of the file.
    pub all_zero: bool,
    /// The first later position where a frame verifies, if any.
    pub valid_frame_at: Option<u64>,
}

/// Bytes read at a time when scanning past the last valid frame.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Look at every byte after `pos`: all zeros, or is there a frame head
/// that verifies at its own position? Linear: each position costs one
/// checksum of a frame's fixed bytes, and zeros are skipped.
pub(crate) fn scan_rest(
    file: &dyn StorageFile,
    path: &std::path::Path,
    pos: u64,
    len: u64,
    salt: u64,
    seq: u64,
) -> Result<RestScan> {
    let mut out = RestScan {
        all_zero: true,
        valid_frame_at: None,
    };
    let mut at = pos;
    let mut buf = vec![0u8; SCAN_CHUNK_BYTES + FH_LEN];
    while at < len {
        let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        read_exact_at(file, &mut buf[..n], at).map_err(|e| io_at(path, "read", e))?;
        let step = n.clamp(1, SCAN_CHUNK_BYTES);
        for i in 0..step {
            if buf[i] != 0 {
                out.all_zero = false;
            }
            // Skip the first position: it is the damaged frame itself.
            if i + FH_LEN > n || (at + i as u64) == pos {
                continue;
            }
            if buf[i + jf::FH_PAYLOAD_LEN_OFFSET..i + jf::FH_PAYLOAD_LEN_OFFSET + 4] == [0; 4] {
                continue;
            }
            let binding = FrameBinding {
                salt,
                file_sequence: seq,
                position: at + i as u64,
            };
            if jf::decode_head(&buf[i..i + FH_LEN], binding).is_some() {
                out.valid_frame_at = Some(at + i as u64);
                return Ok(out);
            }
        }
        at += step as u64;
    }
    Ok(out)
}
