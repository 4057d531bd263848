//! Write-behind segment tails: records that are in the journal but not yet
//! written to their segment file, held in memory and written later, many
//! records with one call.
//!
//! An append puts a short record in its segment's [`Tail`] and writes its
//! journal frame with one call. A tail is written to the file (*applied*)
//! when it would pass [`FLUSH_BYTES`], when the handle's buffered bytes
//! reach `max_unapplied_bytes`, when the key moves on to a new segment
//! (only the active segment holds a tail, so an older segment is always
//! complete in its file before a newer one gets bytes), by the background
//! applier once its oldest byte is [`APPLY_DELAY_MS`] old, and by every
//! checkpoint before it syncs the segment. Nothing here is durable by
//! itself: a record is durable through its journal frame until a
//! checkpoint has applied and synced its segment, and a crash replays the
//! journal into the segments (FORMAT.md §11). The applier may write a
//! record before its frame is written; should the frame fail, the append
//! cuts the file back, as for a record written directly.
//!
//! Readers see a tail through [`SegmentReader`]: below the file's written
//! end they read the file, past it the tail's bytes.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use std::path::Path;

use crate::engine::Engine;
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::segment::Segment;
use crate::storage::{StorageFile, write_all_at};

/// A tail holding this many bytes is written before it takes more; a record
/// this long or longer is written to its segment at once.
pub(crate) const FLUSH_BYTES: usize = 16 * 1024;

/// The background applier writes a tail once its oldest byte is this old.
pub(crate) const APPLY_DELAY_MS: u64 = 50;

/// The bytes of one segment past what its file holds.
///
/// Lock order: `state` is taken after the key's writer mutex (or first, by
/// the applier, a checkpoint and readers) and held across the write that
/// applies it; only the handle cache's locks (leaves) are taken while it
/// is held.
#[derive(Debug)]
pub(crate) struct Tail {
    /// The file holds the segment's bytes before this; the buffer starts
    /// here. Changed only under `state`.
    file_end: AtomicU64,
    state: Mutex<TailState>,
}

#[derive(Debug, Default)]
struct TailState {
    bytes: Vec<u8>,
    /// When the oldest buffered byte came.
    since: Option<Instant>,
    /// The segment is on the applier's list.
    listed: bool,
    /// Why the applier could not write the tail (not a full disk): the
    /// key's next append reports it.
    failure: Option<PoisonCause>,
}

impl TailState {
    /// Empty, its memory freed (a tail that waits again grows anew).
    fn clear(&mut self) {
        self.bytes = Vec::new();
        self.since = None;
    }

    /// Whether the segment stays on the applier's list: it holds bytes the
    /// applier may write. Noted in `listed`, so a push after an unlisting
    /// lists it again.
    fn still_listed(&mut self) -> bool {
        self.listed = !self.bytes.is_empty() && self.failure.is_none();
        self.listed
    }
}

/// What [`Tail::try_push`] did.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Buffered; `list`: the segment must join the applier's list.
    Buffered { list: bool },
    /// No room: apply the tail, or write the records directly.
    NoRoom,
    /// The applier could not write the tail: the key is poisoned.
    Failed(PoisonCause),
}

/// What [`Tail::cut`] left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CutFile {
    /// The cut fell in the buffer: the file is untouched.
    No,
    /// The cut falls in the file: truncate it to the cut.
    Yes,
}

impl Tail {
    /// A tail for a file that holds `file_end` bytes.
    pub fn new(file_end: u64) -> Self {
        Self {
            file_end: AtomicU64::new(file_end),
            state: Mutex::new(TailState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TailState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the file's written bytes end.
    pub fn file_end(&self) -> u64 {
        self.file_end.load(Ordering::Acquire)
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    /// Buffer `bytes`, which belong at `pos`, right after the buffered
    /// ones, if the tail stays under [`FLUSH_BYTES`] and `budget` has room.
    pub fn try_push(&self, bytes: &[u8], pos: u64, budget: &Budget) -> Pushed {
        let mut st = self.lock();
        if let Some(cause) = &st.failure {
            return Pushed::Failed(cause.clone());
        }
        if pos != self.file_end() + st.bytes.len() as u64 {
            // A quarantine cut the segment back under the append.
            return Pushed::Failed(PoisonCause::message(format!(
                "the segment was cut back to {} while a record for {pos} was appended",
                self.file_end() + st.bytes.len() as u64
            )));
        }
        if st.bytes.len() + bytes.len() > FLUSH_BYTES || budget.full_with(bytes.len()) {
            return Pushed::NoRoom;
        }
        Pushed::Buffered {
            list: self.push_locked(&mut st, bytes, pos, budget),
        }
    }

    /// Buffer `bytes` unconditionally (tests); true if newly listed.
    #[cfg(test)]
    fn push(&self, bytes: &[u8], pos: u64, budget: &Budget) -> bool {
        let mut st = self.lock();
        self.push_locked(&mut st, bytes, pos, budget)
    }

    fn push_locked(&self, st: &mut TailState, bytes: &[u8], pos: u64, budget: &Budget) -> bool {
        debug_assert_eq!(pos, self.file_end() + st.bytes.len() as u64);
        if st.bytes.is_empty() {
            st.since = Some(Instant::now());
        }
        st.bytes.extend_from_slice(bytes);
        budget.add(bytes.len());
        !std::mem::replace(&mut st.listed, true)
    }

    /// Note that `len` bytes were written to the file at `pos`, directly,
    /// with nothing buffered (the key's writer, whose lock orders this
    /// with every other change of an empty tail).
    pub fn wrote(&self, pos: u64, len: usize) {
        self.file_end.store(pos + len as u64, Ordering::Release);
    }

    /// Write the buffered bytes to `file`. On failure nothing changes: the
    /// bytes stay buffered and readable, and whatever part reached the file
    /// past its written end is overwritten by the next try.
    pub fn apply(&self, file: &dyn StorageFile, budget: &Budget) -> io::Result<()> {
        let mut st = self.lock();
        self.apply_locked(&mut st, file, budget)
    }

    fn apply_locked(
        &self,
        st: &mut TailState,
        file: &dyn StorageFile,
        budget: &Budget,
    ) -> io::Result<()> {
        if st.bytes.is_empty() {
            return Ok(());
        }
        if let Some(cause) = &st.failure {
            // The applier met this failure: the tail must not be taken as
            // written by anyone.
            return Err(io::Error::other(cause.to_string()));
        }
        let at = self.file_end();
        write_all_at(file, &st.bytes, at)?;
        // Readers may now read these bytes from the file.
        self.file_end
            .store(at + st.bytes.len() as u64, Ordering::Release);
        budget.sub(st.bytes.len());
        st.clear();
        Ok(())
    }

    /// For the applier: write the tail if its oldest byte came before
    /// `due`; a failure other than a full disk is kept for the key's next
    /// append. True while it must stay on the list.
    pub fn apply_if_due(
        &self,
        file: impl FnOnce() -> Result<Arc<dyn StorageFile>>,
        path: &Path,
        due: Instant,
        budget: &Budget,
    ) -> bool {
        let mut st = self.lock();
        if st.since.is_some_and(|since| since <= due) && st.failure.is_none() {
            let applied = file().and_then(|f| {
                self.apply_locked(&mut st, &*f, budget)
                    .map_err(|e| io_at(path, "write", e))
            });
            if let Err(e) = applied
                && !matches!(e, WalError::StorageFull(_))
            {
                st.failure = Some(PoisonCause::new(e));
            }
        }
        st.still_listed()
    }

    /// Since when the oldest buffered byte waits, if the tail must stay on
    /// the applier's list (`None` takes it off).
    pub fn waiting_since(&self) -> Option<Instant> {
        let mut st = self.lock();
        if st.still_listed() { st.since } else { None }
    }

    /// Drop the buffered bytes from `pos` on (a cut: an append whose frame
    /// failed, `truncate_from`).
    pub fn cut(&self, pos: u64, budget: &Budget) -> CutFile {
        let mut st = self.lock();
        let file_end = self.file_end();
        if pos >= file_end {
            let keep = usize::try_from(pos - file_end).unwrap_or(usize::MAX);
            let dropped = st.bytes.len().saturating_sub(keep);
            st.bytes.truncate(keep);
            budget.sub(dropped);
            if st.bytes.is_empty() {
                st.clear();
            }
            return CutFile::No;
        }
        budget.sub(st.bytes.len());
        st.clear();
        self.file_end.store(pos, Ordering::Release);
        CutFile::Yes
    }

    /// Drop everything buffered (the segment is removed).
    pub fn discard(&self, budget: &Budget) {
        let mut st = self.lock();
        budget.sub(st.bytes.len());
        st.clear();
    }

    /// The file holds exactly `end` bytes of the segment now (recovery, a
    /// quarantine): drop anything buffered.
    pub fn reset(&self, end: u64, budget: &Budget) {
        let mut st = self.lock();
        budget.sub(st.bytes.len());
        st.clear();
        self.file_end.store(end, Ordering::Release);
    }

    /// Read at `offset`: from the file below its written end, from the
    /// buffer past it; 0 past the buffer.
    fn read_at(&self, file: &dyn StorageFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            let file_end = self.file_end();
            if offset < file_end {
                let n = usize::try_from(file_end - offset).map_or(buf.len(), |n| n.min(buf.len()));
                return file.read_at(&mut buf[..n], offset);
            }
            let st = self.lock();
            // Applied meanwhile: the bytes are in the file now.
            if offset < self.file_end() {
                continue;
            }
            let at = usize::try_from(offset - self.file_end()).unwrap_or(usize::MAX);
            let Some(rest) = st.bytes.get(at..) else {
                return Ok(0);
            };
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            return Ok(n);
        }
    }
}

/// A segment's file seen with its tail: what readers read through.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    file: Arc<dyn StorageFile>,
    seg: Arc<Segment>,
}

impl SegmentReader {
    pub fn new(file: Arc<dyn StorageFile>, seg: Arc<Segment>) -> Self {
        Self { file, seg }
    }
}

fn read_only_view() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "a segment reader only reads")
}

impl StorageFile for SegmentReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.seg.tail.read_at(&*self.file, buf, offset)
    }

    fn write_at(&self, _: &[u8], _: u64) -> io::Result<usize> {
        Err(read_only_view())
    }

    fn sync_data(&self) -> io::Result<()> {
        Err(read_only_view())
    }

    fn file_len(&self) -> io::Result<u64> {
        Ok(self.seg.tail.file_end() + self.seg.tail.len() as u64)
    }

    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(read_only_view())
    }
}

/// The bytes all tails of a handle hold, against `max_unapplied_bytes`.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicU64,
    limit_bytes: u64,
}

impl Budget {
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit_bytes,
        }
    }

    /// Whether records go through tails at all (`max_unapplied_bytes` > 0).
    pub fn enabled(&self) -> bool {
        self.limit_bytes > 0
    }

    /// Whether `more` bytes would pass the limit.
    pub fn full_with(&self, more: usize) -> bool {
        self.used().saturating_add(more as u64) > self.limit_bytes
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.used.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.used.fetch_sub(n as u64, Ordering::Relaxed);
    }
}

/// The segments whose tails hold bytes, and the thread that applies them
/// once they are [`APPLY_DELAY_MS`] old.
///
/// Lock order: `list` and `thread` are leaves; `stop` is taken alone.
#[derive(Debug, Default)]
pub(crate) struct Applier {
    list: Mutex<Vec<Arc<Segment>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: (Mutex<bool>, Condvar),
}

impl Applier {
    /// Put `seg` on the list (its tail just took its first bytes).
    pub fn list(&self, seg: &Arc<Segment>) {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(seg));
    }

    /// Keep on the list the segments `keep` says to, calling it with no
    /// lock held (segments listed meanwhile stay).
    fn retain(&self, mut keep: impl FnMut(&Arc<Segment>) -> bool) {
        let taken = std::mem::take(&mut *self.list.lock().unwrap_or_else(PoisonError::into_inner));
        let kept: Vec<Arc<Segment>> = taken.into_iter().filter(|s| keep(s)).collect();
        if !kept.is_empty() {
            self.list
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(kept);
        }
    }

    /// Drop the segments whose tails are empty (written by appends or a
    /// checkpoint, or removed) from the list; returns when the oldest byte
    /// still waiting came, if any. Checkpoints call it, so the list stays
    /// short without the background thread too.
    pub fn prune(&self) -> Option<Instant> {
        let mut oldest: Option<Instant> = None;
        self.retain(|seg| {
            let since = seg.tail.waiting_since();
            if let Some(t) = since {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
            since.is_some()
        });
        oldest
    }

    /// Start the background thread if it is not running.
    pub fn start(engine: &Arc<Engine>) {
        let me = &engine.applier;
        let mut slot = me.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() || *me.stop.0.lock().unwrap_or_else(PoisonError::into_inner) {
            return;
        }
        let weak = Arc::downgrade(engine);
        let spawned = std::thread::Builder::new()
            .name("nano-wal-apply".into())
            .spawn(move || run(&weak));
        // No thread to be had: tails are still applied by size, by the
        // budget and by every checkpoint.
        *slot = spawned.ok();
    }

    /// Stop the background thread and wait for it (closing, dropping).
    pub fn stop(&self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            // A panic there left the tails as they were: the journal holds
            // their records and the final checkpoint applies them.
            let _ = h.join();
        }
    }

    /// Wait up to `d`; true if stopped.
    fn wait(&self, d: Duration) -> bool {
        let stopped = self.stop.0.lock().unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return true;
        }
        let (stopped, _) = self
            .stop
            .1
            .wait_timeout(stopped, d)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }
}

fn run(weak: &Weak<Engine>) {
    let delay = Duration::from_millis(APPLY_DELAY_MS);
    loop {
        let Some(engine) = weak.upgrade() else {
            return;
        };
        if engine.applier.wait(delay / 2) {
            return;
        }
        let now = Instant::now();
        apply_due(&engine, now.checked_sub(delay).unwrap_or(now));
    }
}

/// Apply every listed tail whose oldest byte came before `due`.
fn apply_due(engine: &Engine, due: Instant) {
    engine.applier.retain(|seg| {
        seg.tail
            .apply_if_due(|| engine.file(seg), &seg.path, due, &engine.budget)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{OpenMode, StdStorage, Storage};

    fn file() -> (tempfile::TempDir, Arc<dyn StorageFile>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = StdStorage
            .open(&dir.path().join("f"), OpenMode::CreateNew)
            .expect("open");
        (dir, f)
    }

    /// Up to `n` bytes at `at`, read as `SegmentReader` reads: file part,
    /// then tail part, until 0.
    fn read(t: &Tail, f: &dyn StorageFile, at: u64, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match t
                .read_at(f, &mut out[got..], at + got as u64)
                .expect("read")
            {
                0 => break,
                k => got += k,
            }
        }
        out.truncate(got);
        out
    }

    #[test]
    fn reads_span_file_and_buffer_and_apply_moves_bytes_to_the_file() {
        let (_d, f) = file();
        write_all_at(&*f, b"head", 0).expect("write");
        let t = Tail::new(4);
        let budget = Budget::new(1 << 20);
        assert!(t.push(b"abc", 4, &budget), "first bytes list the segment");
        assert!(!t.push(b"de", 7, &budget), "listed once");
        assert_eq!(budget.used(), 5);
        assert_eq!(read(&t, &*f, 2, 100), b"adabcde");
        assert_eq!(f.file_len().expect("len"), 4, "nothing written yet");
        t.apply(&*f, &budget).expect("apply");
        assert_eq!((t.file_end(), t.len(), budget.used()), (9, 0, 0));
        assert_eq!(
            t.lock().bytes.capacity(),
            0,
            "an applied tail frees its memory"
        );
        assert_eq!(f.file_len().expect("len"), 9);
        assert_eq!(read(&t, &*f, 0, 100), b"headabcde");
    }

    #[test]
    fn a_cut_in_the_buffer_leaves_the_file_and_one_in_the_file_asks_for_it() {
        let (_d, f) = file();
        let budget = Budget::new(1 << 20);
        let t = Tail::new(0);
        t.push(b"0123456789", 0, &budget);
        assert_eq!(t.cut(6, &budget), CutFile::No);
        assert_eq!((t.len(), budget.used()), (6, 6));
        t.apply(&*f, &budget).expect("apply");
        t.push(b"xy", 6, &budget);
        assert_eq!(t.cut(3, &budget), CutFile::Yes);
        assert_eq!((t.file_end(), t.len(), budget.used()), (3, 0, 0));
    }

    #[test]
    fn apply_if_due_waits_for_age_and_unlists_an_empty_tail() {
        let (_d, f) = file();
        let budget = Budget::new(1 << 20);
        let t = Tail::new(0);
        t.push(b"abc", 0, &budget);
        let before = Instant::now() - Duration::from_secs(1);
        assert!(
            t.apply_if_due(|| Ok(Arc::clone(&f)), Path::new("f"), before, &budget),
            "too young"
        );
        assert_eq!(t.len(), 3);
        assert!(!t.apply_if_due(
            || Ok(Arc::clone(&f)),
            Path::new("f"),
            Instant::now(),
            &budget
        ));
        assert_eq!((t.len(), t.file_end()), (0, 3));
    }

    #[test]
    fn a_failed_apply_keeps_the_bytes_and_records_the_failure() {
        let budget = Budget::new(1 << 20);
        let t = Tail::new(0);
        t.push(b"abc", 0, &budget);
        let gone = || Err(io_at(Path::new("f"), "open", io::Error::other("disk gone")));
        assert!(
            !t.apply_if_due(gone, Path::new("f"), Instant::now(), &budget),
            "unlisted"
        );
        assert_eq!(t.len(), 3, "bytes kept");
        assert!(matches!(t.try_push(b"d", 3, &budget), Pushed::Failed(_)));
        let full = Tail::new(0);
        full.push(b"abc", 0, &budget);
        let no_space = || {
            Err(io_at(
                Path::new("f"),
                "write",
                io::ErrorKind::StorageFull.into(),
            ))
        };
        assert!(
            full.apply_if_due(no_space, Path::new("f"), Instant::now(), &budget),
            "tried again"
        );
        assert!(matches!(
            full.try_push(b"d", 3, &budget),
            Pushed::Buffered { list: false }
        ));
    }

    #[test]
    fn the_budget_counts_what_tails_hold() {
        let b = Budget::new(10);
        assert!(b.enabled() && !b.full_with(10) && b.full_with(11));
        let t = Tail::new(0);
        t.push(b"12345678", 0, &b);
        assert!(b.full_with(3));
        t.reset(0, &b);
        assert_eq!(b.used(), 0);
        assert!(!Budget::new(0).enabled());
    }
}
