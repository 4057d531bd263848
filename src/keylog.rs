//! One key's segment set and its writer.
//!
//! Appends to one key are serialized by the key's writer mutex; different
//! keys meet only in the journal, for one write call. The segment table has
//! its own lock, so reads do not wait for appends.
//!
//! An append holds its key's writer mutex while it places its records,
//! writes its frame to the journal, writes the records to their segment
//! and publishes them: so a checkpoint, which takes each writer mutex in
//! turn, sees every record whose frame is in an earlier journal file.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};

use crate::engine::Engine;
use crate::entry_ref::EntryRef;
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::format::FORMAT_VERSION_CURRENT;
use crate::format::journal::FrameBuf;
use crate::format::record;
use crate::format::segment_header::{self, NewHeader};
use crate::key::segment_file_name;
use crate::metrics::{AppendCounts, Count};
use crate::rules::write::Checked;
use crate::segment::{Segment, SegmentId, SegmentInit};
use crate::storage::{OpenMode, StorageFile, write_all_at};

mod put;
mod stage;

pub(crate) use stage::{BatchRecords, Runs, StageOut, Staged};

/// One record appended by [`KeyLog::append_one`].
#[derive(Debug)]
pub(crate) struct AppendedOne {
    pub entry_ref: EntryRef,
    /// The journal position its durability waits for.
    pub lsn: u64,
}

/// A segment created but not yet named by a journal frame: the key's next
/// frame carries its creation.
#[derive(Debug)]
struct Unjournaled {
    sequence: u64,
    file_name: String,
    header: Vec<u8>,
    /// Its creation is in the frame being built.
    in_frame: bool,
}

#[derive(Debug)]
pub(crate) struct Writer {
    /// The segment appends go to; `None` until the next append creates one.
    active: Option<Arc<Segment>>,
    next_sequence: u64,
    poisoned: Option<PoisonCause>,
    /// The active segment's handle while the handle cache keeps it open:
    /// appends skip the cache lookup. Weak, so it never holds a descriptor
    /// open past the cache's limit.
    active_file: Option<(SegmentId, Weak<dyn StorageFile>)>,
    /// Creations of segments no frame has carried yet, oldest first: the
    /// active segment's, and any a failed append or batch left behind
    /// (a batch can create several of a key's segments).
    unjournaled: Vec<Unjournaled>,
    /// Records and bytes this key's appends wrote (for `Wal::metrics`).
    appended: AppendCounts,
    /// A segment the key moved on from (`truncate_from`) whose tail could
    /// not be written then: written before the key's next record.
    retired_tail: Option<Arc<Segment>>,
}

impl Writer {
    pub fn new(next_sequence: u64) -> Self {
        Self {
            active: None,
            next_sequence,
            poisoned: None,
            active_file: None,
            unjournaled: Vec::new(),
            appended: AppendCounts::default(),
            retired_tail: None,
        }
    }

    /// The writer of a key recovery found: appends continue at sequence
    /// `next_sequence`, after sealing `inherited`, the newest segment an
    /// earlier process wrote (never appended to, FORMAT.md §7).
    pub fn recovered(next_sequence: u64, inherited: Option<Arc<Segment>>) -> Self {
        Self {
            active: inherited,
            ..Self::new(next_sequence)
        }
    }

    /// The segment appends go to, if any.
    pub fn active(&self) -> Option<&Arc<Segment>> {
        self.active.as_ref()
    }

    /// Whether `seg` is the segment appends go to.
    pub fn is_active(&self, seg: &Arc<Segment>) -> bool {
        self.active.as_ref().is_some_and(|a| Arc::ptr_eq(a, seg))
    }

    /// Stop appending to `seg` if it is the active segment (it is being
    /// removed); the next append creates a new one.
    pub fn forget_active(&mut self, seg: &Arc<Segment>) {
        if self.is_active(seg) {
            self.active = None;
            self.active_file = None;
        }
        if self
            .retired_tail
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, seg))
        {
            self.retired_tail = None;
        }
    }

    /// Stop appending to the active segment, whichever it is: the next
    /// append starts a new one (after `truncate_from`, so no offset a
    /// reader saw is used again).
    pub fn retire_active(&mut self) {
        self.active = None;
        self.active_file = None;
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// The sequence number the key's next segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// What this key's appends wrote so far.
    pub fn appended(&self) -> AppendCounts {
        self.appended
    }

    /// Refuse with the poison's cause, if poisoned.
    pub fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(WalError::Poisoned(cause.clone())),
            None => Ok(()),
        }
    }

    /// Add to `frame` the creation of every segment no frame carried yet
    /// and `frame` does not carry already. Returns whether it added any.
    fn journal_creations(&mut self, key_hash: u64, frame: &mut FrameBuf) -> bool {
        let mut added = false;
        for u in self.unjournaled.iter_mut().filter(|u| !u.in_frame) {
            frame.push_create(key_hash, u.sequence, &u.file_name, &u.header);
            u.in_frame = true;
            added = true;
        }
        added
    }

    /// The frame being built reached the journal: its creations are named.
    fn frame_written(&mut self) {
        self.unjournaled.retain(|u| !u.in_frame);
    }

    /// The frame being built was not written: its creations go in the next.
    pub fn frame_failed(&mut self) {
        for u in &mut self.unjournaled {
            u.in_frame = false;
        }
    }

    /// Segment `sequence` is being removed: no frame need name it.
    pub fn forget_unjournaled(&mut self, sequence: u64) {
        self.unjournaled.retain(|u| u.sequence != sequence);
    }
}

thread_local! {
    /// Where single appends build their frame; reused so an append
    /// allocates nothing.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Scratch capacity kept between appends; a larger record's buffer is freed.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct KeyLog {
    pub key: Vec<u8>,
    pub key_hash: u64,
    /// The sanitized key used in file names.
    pub name_prefix: String,
    /// The key's segments, oldest first (sorted by sequence). A vector, not
    /// a map: keys have few segments, a lookup is a binary search in one
    /// allocation, and an idle key's table costs one pointer, not a tree node.
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
}

impl KeyLog {
    /// A key's log over `segments`, which must be sorted by sequence
    /// (oldest first, no two alike).
    pub fn new(
        key: Vec<u8>,
        key_hash: u64,
        name_prefix: String,
        segments: Vec<Arc<Segment>>,
        writer: Writer,
    ) -> Self {
        debug_assert!(segments.windows(2).all(|w| w[0].sequence < w[1].sequence));
        Self {
            key,
            key_hash,
            name_prefix,
            segments: RwLock::new(segments),
            writer: Mutex::new(writer),
        }
    }

    pub fn segment(&self, sequence: u64) -> Option<Arc<Segment>> {
        let table = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        let at = table.binary_search_by_key(&sequence, |s| s.sequence).ok()?;
        Some(table[at].clone())
    }

    /// The segments with sequence ≥ `from`, oldest first.
    pub fn segments_from(&self, from: u64) -> Vec<Arc<Segment>> {
        let table = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        let start = table.partition_point(|s| s.sequence < from);
        table[start..].to_vec()
    }

    pub fn has_records(&self) -> bool {
        let table = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        table.iter().any(|s| s.has_records())
    }

    pub fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add a segment, replacing one with the same sequence.
    fn insert_segment(&self, seg: Arc<Segment>) {
        let mut table = self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match table.binary_search_by_key(&seg.sequence, |s| s.sequence) {
            Ok(at) => table[at] = seg,
            Err(at) => table.insert(at, seg),
        }
    }

    pub fn remove_segment(&self, sequence: u64) -> Option<Arc<Segment>> {
        let mut table = self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let at = table.binary_search_by_key(&sequence, |s| s.sequence).ok()?;
        Some(table.remove(at))
    }

    /// Append one record: the fast path of `append_entry`, which builds its
    /// frame in a reused buffer, writes the record to its segment with one
    /// call and the frame to the journal with another (segment first, so a
    /// full disk costs no frame; see [`KeyLog::write_staged`]).
    pub fn append_one(
        &self,
        engine: &Engine,
        record: Checked<'_>,
        now_ms: u64,
    ) -> Result<AppendedOne> {
        let mut w = self.lock_writer();
        // Closing takes this lock after setting `closed` (`Engine::close`).
        engine.check_open()?;
        w.check()?;
        let len = record.encoded_len();
        let seg = self.active_for(&mut w, engine, now_ms, len as u64)?;
        let pos = seg.end();
        let mut frame = FrameBuf::new_in(SCRATCH.with_borrow_mut(std::mem::take));
        w.journal_creations(self.key_hash, &mut frame);
        let at = frame.push_records(self.key_hash, seg.sequence, pos, len);
        record.encode(frame.vec_mut(), now_ms);
        record::seal(&mut frame.bytes_mut()[at..at + len], seg.binding(pos));
        let done = self
            .put(&mut w, engine, &seg, &frame.bytes()[at..at + len], pos)
            .and_then(|()| {
                engine.journal.append(engine, &mut frame).inspect_err(|_| {
                    self.cut_back(&mut w, engine, &seg, pos);
                })
            });
        let mut buf = frame.into_vec();
        if buf.capacity() <= SCRATCH_KEEP_BYTES {
            SCRATCH.with_borrow_mut(|s| std::mem::swap(s, &mut buf));
        }
        let lsn = done.inspect_err(|_| w.frame_failed())?;
        w.frame_written();
        // Readers may now see the record: it is complete in the file, and
        // in the journal.
        seg.note_last_record(pos);
        seg.publish(pos + len as u64);
        seg.read_hint.note(len as u64);
        w.appended.add(1, len as u64);
        Ok(AppendedOne {
            entry_ref: EntryRef {
                key_hash: self.key_hash,
                sequence_number: seg.sequence,
                offset: pos - seg.header_len,
            },
            lsn,
        })
    }

    /// The segment to append a record of `record_len` bytes to, rotating by
    /// time or size first if needed.
    fn active_for(
        &self,
        w: &mut Writer,
        engine: &Engine,
        now_ms: u64,
        record_len: u64,
    ) -> Result<Arc<Segment>> {
        if let Some(seg) = w.active.clone() {
            if let Some(cause) = seg.durability.failure() {
                w.poisoned = Some(cause.clone());
                return Err(WalError::Poisoned(cause));
            }
            let time_up = now_ms >= seg.rotate_at_ms;
            let full = seg.end() > seg.header_len
                && seg.end() + record_len > engine.config.max_segment_bytes;
            // A segment an earlier process wrote is never appended to: a torn
            // tail cut at open, or bytes lost to a failed fsync, must not have
            // their offsets reused by new records, or an old reference could
            // resolve to a new record's bytes.
            if !time_up && !full && seg.created_here() {
                return Ok(seg);
            }
            self.seal(w, engine, &seg)?;
        }
        self.create_segment(w, engine, now_ms)
    }

    /// Put the creations no frame carried yet in the journal now
    /// (retention's empty successor); returns the journal position to make
    /// durable.
    pub fn journal_creation(&self, w: &mut Writer, engine: &Engine) -> Result<Option<u64>> {
        let mut frame = FrameBuf::new_in(Vec::new());
        if !w.journal_creations(self.key_hash, &mut frame) {
            return Ok(None);
        }
        let lsn = engine
            .journal
            .append(engine, &mut frame)
            .inspect_err(|_| w.frame_failed())?;
        w.frame_written();
        Ok(Some(lsn))
    }

    /// Stop appending to the active segment, after writing its tail to its
    /// file (only the active segment holds one). No sync: the segment's
    /// bytes are in the journal until a checkpoint makes them durable. If
    /// the tail cannot be written the segment stays active (a full disk:
    /// the next append tries again) or the key is poisoned.
    pub fn seal(&self, w: &mut Writer, engine: &Engine, seg: &Arc<Segment>) -> Result<()> {
        self.apply_tail(w, engine, seg)?;
        w.forget_active(seg);
        Ok(())
    }

    /// Write the tail of `seg`, the key's segment, as the key moves on
    /// from it (`truncate_from` retires it). If that fails, the key's next
    /// record waits for it: no later segment reaches the file before it.
    pub fn settle_tail(&self, w: &mut Writer, engine: &Engine, seg: &Arc<Segment>) -> Result<()> {
        self.apply_tail(w, engine, seg).inspect_err(|_| {
            w.retired_tail = Some(Arc::clone(seg));
        })
    }

    /// Create the next segment and make it active.
    pub fn create_segment(
        &self,
        w: &mut Writer,
        engine: &Engine,
        now_ms: u64,
    ) -> Result<Arc<Segment>> {
        // The journal file exists before any segment it will name: then a
        // segment the manifest of a clean close does not list can only be
        // someone else's (FORMAT.md §13).
        engine.journal.ensure_file(engine)?;
        let sequence = w.next_sequence;
        let rotate_at = now_ms.saturating_add(engine.config.options.segment_period_ms());
        // A fresh random salt per segment: records a user embeds in content
        // cannot know it, so they never verify as records (FORMAT.md §4).
        let salt = engine.config.storage.segment_salt();
        let header = segment_header::encode(&NewHeader {
            key: &self.key,
            key_hash: self.key_hash,
            sequence,
            created_ms: now_ms,
            rotate_at_ms: rotate_at,
            salt,
        });
        let file_name = segment_file_name(&self.name_prefix, self.key_hash, sequence);
        let path = engine.config.dir.join(&file_name);
        let storage = &engine.config.storage;
        let file = engine
            .with_descriptor(|| storage.open(&path, OpenMode::CreateNew))
            .map_err(|e| io_at(&path, "create", e))?;
        let generation = engine.dir_changed();
        if let Err(e) = write_all_at(&*file, &header, 0) {
            let err = io_at(&path, "write header of", e);
            // Remove the half-made file so the sequence can be used again
            // (sequences stay contiguous). If that fails too, a file with a
            // bad header would sit before later segments, so stop here.
            if let Err(rm) = storage.remove_file(&path) {
                w.poisoned = Some(
                    PoisonCause::describing(&err)
                        .noting(format_args!("then removing it failed: {rm}")),
                );
            }
            return Err(err);
        }
        w.next_sequence = sequence + 1;
        engine.count(Count::SegmentsCreated, 1);
        let header_len = header.len() as u64;
        let seg = Arc::new(Segment::new(SegmentInit {
            key_hash: self.key_hash,
            sequence,
            path,
            version: FORMAT_VERSION_CURRENT,
            salt,
            header_len,
            rotate_at_ms: rotate_at,
            end: header_len,
            dir_generation: generation,
            durable_end: 0,
            start: header_len,
            last: crate::segment::LastRecord::Unknown,
        }));
        seg.note_written();
        engine.adopt(&seg, file);
        self.insert_segment(seg.clone());
        w.active = Some(seg.clone());
        w.active_file = None;
        // Not durable, and not in the journal yet: the first frame that
        // writes to it names it (FORMAT.md §11), and until then a crash
        // simply loses the empty file.
        w.unjournaled.push(Unjournaled {
            sequence,
            file_name,
            header,
            in_frame: false,
        });
        Ok(seg)
    }
}
