//! One key's segment set and its writer.
//!
//! Appends to one key are serialized by the key's writer mutex; different
//! keys never wait for each other. The segment table has its own lock, so
//! reads do not wait for appends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};

use crate::engine::Engine;
use crate::entry_ref::EntryRef;
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::format::FORMAT_VERSION_CURRENT;
use crate::format::record;
use crate::format::segment_header::{self, NewHeader};
use crate::key::segment_file_name;
use crate::metrics::{AppendCounts, Count};
use crate::rules::write::Checked;
use crate::segment::{DurableAppend, Segment, SegmentId, SegmentInit};
use crate::storage::{OpenMode, StorageFile, write_all_at};

/// Encoded records for one key, waiting for their positions.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub bytes: Vec<u8>,
    /// `(start in bytes, length)` of each record.
    pub records: Vec<(usize, usize)>,
}

impl Pending {
    pub fn push(&mut self, record: Checked<'_>, timestamp_ms: u64) {
        let start = self.bytes.len();
        record.encode(&mut self.bytes, timestamp_ms);
        self.records.push((start, self.bytes.len() - start));
    }
}

/// One record appended by [`KeyLog::append_one`].
#[derive(Debug)]
pub(crate) struct AppendedOne {
    pub entry_ref: EntryRef,
    /// The segment it went to.
    pub segment: Arc<Segment>,
    /// The end to sync through for it to be durable.
    pub end: u64,
    /// For a durable append, counts it until its sync returns.
    pub joining: Option<DurableAppend>,
}

/// Segments written by an append, each with the end to sync through.
pub(crate) type Touched = Vec<(Arc<Segment>, u64)>;

#[derive(Debug)]
pub(crate) struct Writer {
    /// The segment appends go to; `None` until the next append creates one.
    active: Option<Arc<Segment>>,
    next_sequence: u64,
    poisoned: Option<PoisonCause>,
    /// Size of the active segment's file, which may run past its data into
    /// preallocated zeros (FORMAT.md §7).
    allocated_end: u64,
    /// The active segment's handle while the handle cache keeps it open:
    /// appends skip the cache lookup. Weak, so it never holds a descriptor
    /// open past the cache's limit.
    active_file: Option<(SegmentId, Weak<dyn StorageFile>)>,
    /// Records and bytes this key's appends wrote (for `Wal::metrics`).
    appended: AppendCounts,
}

impl Writer {
    pub fn new(next_sequence: u64) -> Self {
        Self {
            active: None,
            next_sequence,
            poisoned: None,
            allocated_end: 0,
            active_file: None,
            appended: AppendCounts::default(),
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
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// What this key's appends wrote so far.
    pub fn appended(&self) -> AppendCounts {
        self.appended
    }
}

/// Bytes a segment's file is extended by, ahead of its data, when an append
/// reaches the end of the file. The extension is a hole (no blocks, no
/// writes); its point is that most fdatasyncs then do not change the file's
/// size, so they need not commit a file-system journal transaction.
pub(crate) const PREALLOCATE_BYTES: u64 = 1 << 20;

thread_local! {
    /// Where single appends are encoded; reused so an append allocates
    /// nothing.
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
    pub fn new(
        key: Vec<u8>,
        key_hash: u64,
        name_prefix: String,
        segments: BTreeMap<u64, Arc<Segment>>,
        writer: Writer,
    ) -> Self {
        Self {
            key,
            key_hash,
            name_prefix,
            segments: RwLock::new(segments.into_values().collect()),
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

    /// Write `pending` at the end of the key's log, rotating as needed.
    ///
    /// Returns a reference per record and, per segment written, the end the
    /// caller must sync through for durability.
    pub fn append(
        &self,
        engine: &Engine,
        mut pending: Pending,
        now_ms: u64,
    ) -> Result<(Vec<EntryRef>, Touched)> {
        let mut w = self.lock_writer();
        if let Some(cause) = &w.poisoned {
            return Err(WalError::Poisoned(cause.clone()));
        }
        let mut refs = Vec::with_capacity(pending.records.len());
        let mut touched = Vec::new();
        let mut i = 0;
        while i < pending.records.len() {
            let first_len = pending.records[i].1 as u64;
            let seg = self.active_for(&mut w, engine, now_ms, first_len)?;
            let start_pos = seg.end();
            let mut pos = start_pos;
            let mut j = i;
            while let Some(&(at, len)) = pending.records.get(j) {
                let fits = pos + len as u64 <= engine.config.max_segment_bytes;
                if j > i && !fits {
                    break;
                }
                record::seal(&mut pending.bytes[at..at + len], seg.binding(pos));
                refs.push(EntryRef {
                    key_hash: self.key_hash,
                    sequence_number: seg.sequence,
                    offset: pos - seg.header_len,
                });
                pos += len as u64;
                j += 1;
            }
            let from = pending.records[i].0;
            let to = pending.records.get(j).map_or(pending.bytes.len(), |r| r.0);
            self.write_at(&mut w, engine, &seg, &pending.bytes[from..to], start_pos)?;
            w.appended.add((j - i) as u64, pos - start_pos);
            // Readers may now see the records: they are complete in the file.
            seg.publish(pos);
            touched.push((seg, pos));
            i = j;
        }
        Ok((refs, touched))
    }

    /// Append one record: the fast path of `append_entry`, which encodes
    /// into a reused buffer and writes with one call.
    pub fn append_one(
        &self,
        engine: &Engine,
        record: Checked<'_>,
        now_ms: u64,
        durable: bool,
    ) -> Result<AppendedOne> {
        let mut w = self.lock_writer();
        // Closing takes this lock after setting `closed` (`Engine::close`).
        engine.check_open()?;
        if let Some(cause) = &w.poisoned {
            return Err(WalError::Poisoned(cause.clone()));
        }
        let len = record.encoded_len() as u64;
        let seg = self.active_for(&mut w, engine, now_ms, len)?;
        let pos = seg.end();
        // Counted before the write, so a sync leader that sees the record
        // also knows to expect this appender.
        let joining = durable.then(|| seg.durable_append());
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            record.encode(buf, now_ms);
            record::seal(buf, seg.binding(pos));
            let written = self.write_at(&mut w, engine, &seg, buf, pos);
            if buf.capacity() > SCRATCH_KEEP_BYTES {
                *buf = Vec::new();
            }
            written
        })?;
        // Readers may now see the record: it is complete in the file.
        seg.publish(pos + len);
        seg.read_hint.note(len);
        w.appended.add(1, len);
        Ok(AppendedOne {
            entry_ref: EntryRef {
                key_hash: self.key_hash,
                sequence_number: seg.sequence,
                offset: pos - seg.header_len,
            },
            segment: seg,
            end: pos + len,
            joining,
        })
    }

    /// One positional write of whole records; on failure no partial record
    /// stays visible, and the writer is poisoned unless that is certain.
    fn write_at(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
        bytes: &[u8],
        pos: u64,
    ) -> Result<()> {
        let cached = match &w.active_file {
            Some((id, weak)) if *id == seg.id() => weak.upgrade(),
            _ => None,
        };
        let file = match cached {
            Some(f) => {
                engine.cache.touch(seg);
                f
            }
            None => {
                let f = engine.file(seg)?;
                w.active_file = Some((seg.id(), Arc::downgrade(&f)));
                f
            }
        };
        self.preallocate(w, engine, seg, &*file, pos, pos + bytes.len() as u64)?;
        let Err(e) = write_all_at(&*file, bytes, pos) else {
            return Ok(());
        };
        let err = io_at(&seg.path, "write", e);
        // Cut whatever part of the batch reached the file, so the file ends
        // at a record boundary again. Nothing was acknowledged yet.
        w.allocated_end = w.allocated_end.min(pos);
        match file.set_len(pos) {
            Ok(()) if matches!(err, WalError::StorageFull(_)) => Err(err),
            Ok(()) | Err(_) => {
                let cause = PoisonCause::describing(&err);
                seg.durability.poison(cause.clone());
                w.poisoned = Some(cause);
                Err(err)
            }
        }
    }

    /// Make room for bytes `[pos, want)` ahead of writing them. A failure
    /// leaves nothing visible: the data's end has not moved.
    fn preallocate(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Segment,
        file: &dyn StorageFile,
        pos: u64,
        want: u64,
    ) -> Result<()> {
        let limit = engine.config.max_segment_bytes.max(want);
        if want > w.allocated_end {
            // Extend the file past the data (a hole), so the fdatasyncs of
            // the next appends do not also have to record a new file size.
            // Recovery reads the zeros as the end of the data (FORMAT.md §8).
            let target = want.max(pos.saturating_add(PREALLOCATE_BYTES).min(limit));
            file.set_len(target)
                .map_err(|e| io_at(&seg.path, "preallocate", e))?;
            w.allocated_end = target;
        }
        Ok(())
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
            let full =
                seg.has_records() && seg.end() + record_len > engine.config.max_segment_bytes;
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

    /// Cut the active segment's preallocated zeros off (not durably).
    pub fn trim_preallocated(&self, engine: &Engine) -> Result<()> {
        let mut w = self.lock_writer();
        let Some(seg) = w.active.clone() else {
            return Ok(());
        };
        Self::cut_preallocation(&mut w, engine, &seg).map(drop)
    }

    /// Cut the active segment's file back to its data if it runs on into
    /// preallocated zeros; returns the handle if it did. Not durable yet.
    fn cut_preallocation(
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
    ) -> Result<Option<Arc<dyn StorageFile>>> {
        let end = seg.end();
        if w.allocated_end <= end {
            return Ok(None);
        }
        let file = engine.file(seg)?;
        file.set_len(end).map_err(|e| io_at(&seg.path, "trim", e))?;
        w.allocated_end = end;
        Ok(Some(file))
    }

    /// Make every byte of the active segment durable and stop appending to it.
    pub fn seal(&self, w: &mut Writer, engine: &Engine, seg: &Arc<Segment>) -> Result<()> {
        // IMPORTANT: a later segment may receive durable records; if this
        // one's tail were still volatile, power loss could leave a gap
        // before them. So the old segment is synced before it is replaced.
        let end = seg.end();
        if let Err(e) = engine.make_durable(seg, end) {
            w.poisoned = Some(PoisonCause::describing(&e));
            return Err(e);
        }
        // Drop the preallocated zeros, durably, before any later segment
        // exists: only a key's newest segment may end in them. If the cut
        // itself fails, the segment stays active and the next append tries
        // again; only a failed sync of the cut poisons.
        if let Some(file) = Self::cut_preallocation(w, engine, seg)?
            && let Err(e) = engine.sync_trim(seg, &file)
        {
            w.poisoned = Some(PoisonCause::describing(&e));
            return Err(e);
        }
        w.active = None;
        w.allocated_end = 0;
        Ok(())
    }

    /// Create the next segment and make it active.
    pub fn create_segment(
        &self,
        w: &mut Writer,
        engine: &Engine,
        now_ms: u64,
    ) -> Result<Arc<Segment>> {
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
        let path = engine.config.dir.join(segment_file_name(
            &self.name_prefix,
            self.key_hash,
            sequence,
        ));
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
        w.allocated_end = header_len;
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
        }));
        seg.note_written();
        engine.adopt(&seg, file);
        self.insert_segment(seg.clone());
        w.active = Some(seg.clone());
        Ok(seg)
    }
}
