//! State shared by a `Wal` handle and its iterators: configuration, the
//! handle cache, the key table and the directory's durability watermark.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use crate::cache::{Evicted, HandleCache};
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::journal::{Journal, JournalStart};
use crate::keylog::KeyLog;
use crate::metrics::{AppendCounts, Count, Counters, Metrics};
use crate::options::Config;
use crate::segment::Segment;
use crate::storage::{OpenMode, StorageFile, read_exact_at, write_all_at};
use crate::tail::{Applier, Budget, SegmentReader};
use crate::watermark::Watermark;

/// The key table. Its keys are already SipHash values, so they are used as
/// their own hash; a fixed hasher also makes iteration order (and so the
/// order of syncs) the same on every run, which deterministic crash
/// simulation relies on.
pub(crate) type KeyTable = HashMap<u64, Arc<KeyLog>, BuildHasherDefault<KeyHashHasher>>;

/// Hashes a key hash to itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// State shared by a `Wal` handle and its iterators.
///
/// **Lock order.** A thread that holds more than one of these locks took
/// them in this order, and releases them in reverse:
/// 1. `gate` (shared by changes, exclusive by closing);
/// 2. `keys` (held only to look up, insert or list keys; never across I/O);
/// 3. a key's writer mutex (`KeyLog::lock_writer`), one key at a time;
/// 4. that key's segment table (`KeyLog`'s `segments`);
/// 5. the journal's state (`Journal`, which documents its own locks): an
///    append writes its frame while holding its keys' writer mutexes;
/// 6. a segment's durability watermark, then the directory's
///    (`dir_durability`);
/// 7. a segment's tail (`Tail`), held across the write that applies it;
/// 8. the handle cache's locks and the applier's list, which are leaves:
///    handles the cache evicts are closed after its locks are released.
///
/// A batch holds the writer mutexes of all its keys at once, taken in
/// ascending key hash; nothing else holds two.
#[derive(Debug)]
pub(crate) struct Engine {
    pub config: Config,
    pub cache: HandleCache,
    /// The shared journal: the durability of every append.
    pub journal: Journal,
    /// Every key this handle knows, by key hash.
    keys: RwLock<KeyTable>,
    /// Why this handle cannot write, if it cannot.
    read_only: Option<String>,
    /// Set once, by [`Engine::close`], under `gate`'s exclusive side.
    closed: AtomicBool,
    /// The gate between changes and closing. Durable appends, batches,
    /// `sync()` and compaction hold its shared side for their whole
    /// duration ([`Engine::enter`]); closing sets `closed` under its
    /// exclusive side, so none of them is still running afterwards and none
    /// starts. Non-durable appends, the hot path, do not touch it: they
    /// check `closed` under their key's writer lock, which closing then
    /// takes once for every key, so they cost no atomic read-modify-write
    /// beyond the writer lock they take anyway.
    gate: RwLock<()>,
    /// A failed fsync was recorded in the directory.
    sync_failure_noted: AtomicBool,
    /// Counts directory changes (segment creations and removals).
    dir_generation: AtomicU64,
    /// Which directory changes are known durable.
    dir_durability: Watermark,
    /// What `Wal::metrics` reports beyond the per-key append counts.
    counters: Counters,
    /// Wakes subscriptions when records are published.
    pub notifier: crate::notify::Notifier,
    /// The bytes segment tails hold, against `max_unapplied_bytes`.
    pub budget: Budget,
    /// The segments whose tails hold bytes, and the thread applying them.
    pub applier: Applier,
}

/// `EMFILE`/`ENFILE`: the process or system is out of file descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

impl Engine {
    pub fn new(config: Config, read_only: Option<String>) -> Self {
        let cache = HandleCache::new(config.max_open_files);
        let config_unapplied = config.max_unapplied_bytes;
        let journal = Journal::new(
            &config.dir,
            config.storage.clone(),
            JournalStart {
                next_file: 1,
                next_frame: 0,
                manifest_generation: 0,
                bytes_since_checkpoint: 0,
            },
            config.journal_checkpoint_bytes,
        );
        Self {
            config,
            cache,
            journal,
            keys: RwLock::new(KeyTable::default()),
            read_only,
            closed: AtomicBool::new(false),
            gate: RwLock::new(()),
            sync_failure_noted: AtomicBool::new(false),
            // Generation 1 stands for "whatever the directory held at open":
            // its entries may not be durable yet (a process crash keeps
            // them in the page cache only), so the first durable append
            // syncs the directory once.
            dir_generation: AtomicU64::new(1),
            dir_durability: Watermark::new(0),
            counters: Counters::default(),
            notifier: crate::notify::Notifier::default(),
            budget: Budget::new(config_unapplied),
            applier: Applier::default(),
        }
    }

    /// Count something for `Wal::metrics`.
    pub fn count(&self, which: Count, n: u64) {
        self.counters.add(which, n);
    }

    /// The metrics snapshot: the shared counters, every key's appends, the
    /// open files and the keys.
    pub fn metrics(&self) -> Metrics {
        let keys = self.all_keys();
        let mut appended = AppendCounts::default();
        for log in &keys {
            let counts = log.lock_writer().appended();
            appended.add(counts.records, counts.bytes);
        }
        let mut m = self.counters.snapshot(appended);
        m.open_files = self.cache.len();
        m.keys = keys.len();
        m.journal_bytes_since_checkpoint = self.journal.bytes_since_checkpoint();
        m.unapplied_bytes = self.budget.used();
        m.unapplied_oldest_ms = self.applier.prune().map_or(0, |since| {
            u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
        });
        m
    }

    /// fdatasync a segment's file for its watermark; a failure is the
    /// cause that poisons it.
    fn sync_segment(
        &self,
        seg: &Segment,
        file: &Arc<dyn StorageFile>,
    ) -> std::result::Result<(), PoisonCause> {
        self.sync_file(&**file)
            .map_err(|e| PoisonCause::new(io_at(&seg.path, "fdatasync", e)))
    }

    /// fdatasync a segment's file, counted.
    pub fn sync_file(&self, file: &dyn StorageFile) -> io::Result<()> {
        self.count(Count::SegmentSyncs, 1);
        file.sync_data()
    }

    /// How this handle opens existing segment files.
    pub fn open_mode(&self) -> OpenMode {
        if self.read_only.is_some() {
            OpenMode::Read
        } else {
            OpenMode::ReadWrite
        }
    }

    pub fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(WalError::Closed)
        } else {
            Ok(())
        }
    }

    pub fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        match &self.read_only {
            Some(why) => Err(WalError::ReadOnly(why.clone())),
            None => Ok(()),
        }
    }

    /// Enter an operation that closing must wait for (see `gate`): `Closed`
    /// once the handle is closed, and, if `write`, `ReadOnly` for a
    /// read-only handle. Hold the guard until the operation is done; never
    /// enter twice on one thread (a waiting `close` would deadlock it).
    pub fn enter(&self, write: bool) -> Result<RwLockReadGuard<'_, ()>> {
        let guard = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        if write {
            self.check_writable()?;
        } else {
            self.check_open()?;
        }
        Ok(guard)
    }

    /// Close the handle: once this returns, no change to the log is running
    /// and every later one fails with `Closed`. False if it was closed
    /// already.
    pub fn close(&self) -> bool {
        {
            let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            if self.closed.swap(true, Ordering::AcqRel) {
                return false;
            }
        }
        // A non-durable append checks `closed` under its key's writer lock:
        // once we have held each of them, every such append either finished
        // before or sees `closed`. A key created after this listing saw
        // `closed` already (the key table's lock orders it after the swap).
        for log in self.all_keys() {
            drop(log.lock_writer());
        }
        // Waiting subscriptions end.
        self.notifier.notify();
        true
    }

    /// Whether this handle can only read.
    pub fn is_read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// A read-only handle looks at the directory again: segments and
    /// records another process added since become visible. Costs a
    /// directory listing and a scan of each key's newest segment (as a
    /// read-only open). A writable handle sees everything already.
    pub fn refresh(&self) -> Result<()> {
        if !self.is_read_only() {
            return Ok(());
        }
        let (names, _) = crate::journal::replay::list(self)?;
        let mut report = crate::recovery::RecoveryReport::default();
        let keys = crate::recovery::load(self, &names, &mut report)?;
        self.install_keys(keys);
        Ok(())
    }

    /// Replace the key table (opening, after recovery loaded it).
    pub fn install_keys(&self, keys: KeyTable) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// Forget every key (closing).
    pub fn clear_keys(&self) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The key log for `key_hash`, made by `make` if the key is new.
    pub fn key_log_or_insert(
        &self,
        key_hash: u64,
        make: impl FnOnce() -> Arc<KeyLog>,
    ) -> Arc<KeyLog> {
        if let Some(log) = self.key_log(key_hash) {
            return log;
        }
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key_hash)
            .or_insert_with(make)
            .clone()
    }

    pub fn key_log(&self, key_hash: u64) -> Option<Arc<KeyLog>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key_hash)
            .cloned()
    }

    /// The segment and absolute file position of a reference, checked
    /// against the segment table and the end of the valid data.
    pub fn locate(&self, r: crate::EntryRef) -> Result<(Arc<Segment>, u64)> {
        let not_found = |what: &str| WalError::EntryNotFound(format!("{r}: {what}"));
        let log = self
            .key_log(r.key_hash)
            .ok_or_else(|| not_found("no such key"))?;
        let seg = log
            .segment(r.sequence_number)
            .ok_or_else(|| not_found("no such segment (removed by retention?)"))?;
        match seg.header_len.checked_add(r.offset) {
            Some(pos) if pos < seg.start() => {
                Err(not_found("purged (before the key's first record)"))
            }
            Some(pos) if pos < seg.end() => Ok((seg, pos)),
            _ => Err(not_found(&format!(
                "offset is past the end of {}",
                seg.path.display()
            ))),
        }
    }

    /// Read and verify the record a reference points at.
    pub fn read_record(&self, entry_ref: crate::EntryRef) -> Result<crate::Record> {
        let (seg, pos) = self.locate(entry_ref)?;
        let file = self.reader(&seg)?;
        let meta = crate::cursor::SegmentMeta::from(&*seg);
        let raw = crate::cursor::read_one(&file, meta, pos, seg.end(), &seg.read_hint)
            .map_err(|e| io_at(&seg.path, "read", e))?
            .map_err(|bad| {
                // A truncation may have cut the record away while it was
                // read: that is a record not found, not corruption.
                if pos >= seg.end() {
                    WalError::EntryNotFound(format!("{entry_ref}: removed by a truncation"))
                } else {
                    crate::recovery::corrupted(&seg.path, pos, bad)
                }
            })?;
        Ok(crate::Record {
            entry_ref,
            header: raw.header,
            content: raw.content,
            timestamp_unix_ms: raw.timestamp_ms,
        })
    }

    pub fn all_keys(&self) -> Vec<Arc<KeyLog>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The newest directory change (a create or a remove).
    pub fn dir_generation(&self) -> u64 {
        self.dir_generation.load(Ordering::Acquire)
    }

    /// Record a directory change (a create or a remove); returns its generation.
    pub fn dir_changed(&self) -> u64 {
        self.dir_generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Record a failed fsync on disk (once per handle), so no writer opens
    /// in this boot; returns `msg`, extended if recording failed too.
    pub fn note_sync_failure(&self, cause: PoisonCause) -> PoisonCause {
        if self.read_only.is_some() || self.sync_failure_noted.swap(true, Ordering::AcqRel) {
            return cause;
        }
        match crate::marker::record(self, &cause.to_string()) {
            Ok(()) => cause,
            Err(e) => cause.noting(format_args!(
                "recording the failure in the directory failed too: {e}"
            )),
        }
    }

    /// Make every directory change up to `generation` durable.
    pub fn sync_dir_through(&self, generation: u64) -> Result<()> {
        let dir = &self.config.dir;
        self.dir_durability
            .wait_synced(
                generation,
                || self.dir_generation.load(Ordering::Acquire),
                || 0,
                || {
                    self.count(Count::DirectorySyncs, 1);
                    self.with_descriptor(|| self.config.storage.sync_dir(dir))
                        .map_err(|e| PoisonCause::new(io_at(dir, "fsync directory", e)))
                },
            )
            .map_err(|cause| WalError::Poisoned(self.note_sync_failure(cause)))
    }

    /// Make the segment's bytes up to `target` durable, sharing the fsync
    /// with every other thread waiting on the same segment.
    pub fn make_durable(&self, seg: &Arc<Segment>, target: u64) -> Result<()> {
        // A truncation since the caller looked may have cut the segment
        // below `target`: what is gone needs no sync (the cut is in the
        // journal, after the checkpoint's start).
        let target = target.min(seg.end());
        let file = match self.file(seg) {
            // Removed since the caller looked (retention, `truncate_from`,
            // `purge_before`): nothing of it needs to be durable, and its
            // removal is in the journal.
            Err(WalError::EntryNotFound(_)) if !self.still_listed(seg) => return Ok(()),
            other => other?,
        };
        // The records past the file's written end are in the segment's
        // tail: they reach the file first.
        seg.tail
            .apply(&*file, &self.budget)
            .map_err(|e| io_at(&seg.path, "write", e))?;
        self.make_durable_with(seg, &file, target)
    }

    /// [`Engine::make_durable`] through a handle the caller already has.
    fn make_durable_with(
        &self,
        seg: &Arc<Segment>,
        file: &Arc<dyn StorageFile>,
        target: u64,
    ) -> Result<()> {
        // IMPORTANT: the segment's directory entry must survive power loss
        // before any record in it counts as durable, or the whole file could
        // vanish with the records the caller was told are durable.
        self.sync_dir_through(seg.dir_generation)?;
        let synced = seg
            .durability
            // What a sync covers: the published bytes the file holds
            // (an append may have put more in the tail since it was
            // applied above).
            .wait_synced(
                target,
                || seg.end().min(seg.tail.file_end()),
                || 0,
                || self.sync_segment(seg, file),
            );
        synced.map_err(|cause| {
            self.quarantine(seg, file);
            WalError::Poisoned(self.note_sync_failure(cause))
        })
    }

    /// After a failed fsync the kernel may have dropped the unsynced bytes
    /// while still serving them from its cache, so a reopen in the same boot
    /// would read records that are not on disk and build on them. Cut the
    /// file back to its durable prefix so disk and cache agree again; if not
    /// even the header was durable, write it again and keep just it, so the
    /// segment's sequence number is never used twice. Nothing cut was ever
    /// acknowledged as durable. Best effort: the writer is poisoned whatever
    /// happens here, and a reopened WAL never appends to this file.
    fn quarantine(&self, seg: &Arc<Segment>, file: &Arc<dyn StorageFile>) {
        // Only for files this process created: there the watermark tells
        // exactly what is durable. An earlier process's file may hold data
        // that process made durable, which we cannot tell apart.
        if self.read_only.is_some() || !seg.created_here() || !seg.claim_quarantine() {
            return;
        }
        let keep = seg
            .durability
            .synced_through()
            .clamp(seg.header_len, seg.end());
        seg.set_end(keep, &self.budget);
        let cut = (|| {
            if seg.durability.synced_through() < seg.header_len {
                let mut header = vec![0u8; usize::try_from(seg.header_len).unwrap_or(0)];
                read_exact_at(&**file, &mut header, 0)?;
                write_all_at(&**file, &header, 0)?;
            }
            file.set_len(keep)?;
            self.sync_file(&**file)
        })();
        // Recorded, not swallowed: the segment's watermark already holds the
        // failure every later caller sees; this is cleanup only.
        debug_assert!(cut.is_ok() || seg.durability.failure().is_some());
    }

    /// The segment as readers see it: its file, and its tail past the
    /// file's written end.
    pub fn reader(&self, seg: &Arc<Segment>) -> Result<SegmentReader> {
        Ok(SegmentReader::new(self.file(seg)?, Arc::clone(seg)))
    }

    /// Cut the segment's file to `len` bytes (not synced).
    pub fn cut_file(&self, seg: &Arc<Segment>, len: u64) -> Result<()> {
        self.file(seg)?
            .set_len(len)
            .map_err(|e| io_at(&seg.path, "truncate", e))
    }

    /// Whether `seg` is still in its key's segment table.
    fn still_listed(&self, seg: &Arc<Segment>) -> bool {
        self.key_log(seg.key_hash)
            .and_then(|log| log.segment(seg.sequence))
            .is_some_and(|s| Arc::ptr_eq(&s, seg))
    }

    /// An open handle to the segment's file, from the cache if possible.
    pub fn file(&self, seg: &Arc<Segment>) -> Result<Arc<dyn StorageFile>> {
        if let Some(f) = self.cache.get(seg) {
            return Ok(f);
        }
        let mode = self.open_mode();
        let storage = &self.config.storage;
        let file = self
            .with_descriptor(|| storage.open(&seg.path, mode))
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => WalError::EntryNotFound(format!(
                    "segment {} no longer exists",
                    seg.path.display()
                )),
                _ => io_at(&seg.path, "open", e),
            })?;
        let (file, evicted) = self.cache.insert(seg, file);
        self.flush_evicted(evicted);
        Ok(file)
    }

    /// Run `op`, which needs a file descriptor. If the process is out of
    /// them (its limit is below our cache size), close half of the cached
    /// handles, lower the cache's cap, and try once more.
    pub fn with_descriptor<T>(&self, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e) if out_of_descriptors(&e) && self.cache.len() > 1 => {
                self.flush_evicted(self.cache.shrink());
                op()
            }
            other => other,
        }
    }

    /// Run `op` on every item, on up to `storage.parallel_syncs()` threads,
    /// this one included (scoped: all are done when this returns). Each
    /// thread takes the next item not yet taken, so one slow fsync holds up
    /// only its own thread. This thread does it all if no other can start.
    pub fn in_parallel<T: Sync>(&self, items: &[T], op: impl Fn(&T) + Sync) {
        let threads = self.config.storage.parallel_syncs().min(items.len());
        if threads <= 1 {
            items.iter().for_each(&op);
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                op(item);
            }
        };
        std::thread::scope(|scope| {
            let work = &work;
            for _ in 1..threads {
                let spawned = std::thread::Builder::new()
                    .name("nano-wal-sync".into())
                    .spawn_scoped(scope, work);
                if spawned.is_err() {
                    break;
                }
            }
            // This thread helps too (and does it all if none started).
            work();
        });
    }

    /// Make each `(segment, end)` durable, in parallel where the storage
    /// allows; every one is attempted. The error returned is the first
    /// that is not a full disk if there is one (a full disk alone leaves
    /// everything as it was; anything else must not hide behind it).
    pub fn make_all_durable(&self, targets: &[(Arc<Segment>, u64)]) -> Result<()> {
        let first_error: std::sync::Mutex<Option<WalError>> = std::sync::Mutex::new(None);
        self.in_parallel(targets, |(seg, end)| {
            if let Err(e) = self.make_durable(seg, *end) {
                let full = |e: &WalError| matches!(e, WalError::StorageFull(_));
                let mut first = first_error.lock().unwrap_or_else(PoisonError::into_inner);
                if first.as_ref().is_none_or(|f| full(f) && !full(&e)) {
                    *first = Some(e);
                }
            }
        });
        match first_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Add a freshly created file to the cache.
    pub fn adopt(&self, seg: &Arc<Segment>, file: Arc<dyn StorageFile>) {
        let (_, evicted) = self.cache.insert(seg, file);
        self.flush_evicted(evicted);
    }

    /// Close evicted handles, without syncing: their unsynced bytes are in
    /// the journal until a checkpoint syncs the segment, through a new
    /// descriptor. A write-back error that happened meanwhile is reported
    /// to that fsync (Linux reports an error no descriptor has seen to the
    /// next fsync of the file, since 4.16; FORMAT.md §10), so it poisons
    /// the checkpoint and nothing is trimmed from the journal.
    pub fn flush_evicted(&self, evicted: Vec<Evicted>) {
        drop(evicted);
    }
}
