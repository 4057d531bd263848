//! The shared journal: one append-only log per directory that every append
//! reaches as one frame, and the one durability unit of the WAL.
//!
//! A durable append, a durable batch and `sync()` wait for one fdatasync
//! of the journal, shared by every thread and every key waiting at the
//! time (group commit across keys). Segments are written through the page
//! cache and made durable only by checkpoints (`checkpoint.rs`), which also
//! keep the journal short. FORMAT.md §11 and §12 are normative.

pub(crate) mod checkpoint;
pub(crate) mod frames;
pub(crate) mod read;
pub(crate) mod replay;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::format::journal::{
    self as jf, FrameBinding, FrameBuf, JH_LEN, JournalHeader, MAX_FRAME_PAYLOAD_BYTES,
};
use crate::metrics::Count;
use crate::storage::{OpenMode, Storage, StorageFile, write_all_at};
use crate::watermark::Watermark;

/// Journal files are named `nano-wal.journal-<sequence, 20 digits>`.
pub(crate) const JOURNAL_PREFIX: &str = "nano-wal.journal-";
/// Manifests are named `nano-wal.manifest-<generation, 20 digits>`.
pub(crate) const MANIFEST_PREFIX: &str = "nano-wal.manifest-";

pub(crate) fn journal_file_name(sequence: u64) -> String {
    format!("{JOURNAL_PREFIX}{sequence:020}")
}

pub(crate) fn manifest_file_name(generation: u64) -> String {
    format!("{MANIFEST_PREFIX}{generation:020}")
}

fn parse_numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn parse_journal_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, JOURNAL_PREFIX)
}

pub(crate) fn parse_manifest_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, MANIFEST_PREFIX)
}

/// The journal file appends go to.
#[derive(Debug)]
struct Current {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    sequence: u64,
    salt: u64,
    /// Where the next frame goes.
    end: u64,
    /// The file's length, which runs ahead of `end` (zeros).
    allocated: u64,
}

/// Where replay left off and the next checkpoint stands: what a journal
/// needs to continue after recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalStart {
    /// Sequence of the next journal file to create.
    pub next_file: u64,
    /// Number of the next frame.
    pub next_frame: u64,
    /// Generation of the newest manifest on disk (0: none).
    pub manifest_generation: u64,
    /// Journal bytes written since that manifest (replayed at open).
    pub bytes_since_checkpoint: u64,
}

#[derive(Debug)]
struct State {
    current: Option<Current>,
    next_file: u64,
    next_frame: u64,
    manifest_generation: u64,
    /// Bytes appended since the last checkpoint's rotation.
    bytes_since_checkpoint: u64,
    /// Set when a write failed in a way that leaves the journal's end
    /// uncertain; never cleared.
    poisoned: Option<PoisonCause>,
    /// Journal files and manifests known to exist (listed at open or made
    /// since), so trimming them never lists the directory.
    files: KnownFiles,
    /// Segment files whose removal is in the journal but failed: the next
    /// checkpoint tries again, and no manifest is marked clean while any
    /// is left (a clean manifest must list every segment on disk).
    leftovers: Vec<PathBuf>,
}

/// Journal files and manifests on disk, by number.
#[derive(Debug, Default)]
pub(crate) struct KnownFiles {
    pub journals: BTreeSet<u64>,
    pub manifests: BTreeSet<u64>,
}

/// The shared journal.
///
/// **Lock order** (continuing `Engine`'s): a key's writer mutexes, then
/// `state`; `durability`'s lock is taken without `state` held; `checkpoint`
/// is taken before any writer mutex and never while holding `state`;
/// `background` is a leaf, and no thread joins the background checkpoint
/// while holding `checkpoint` or a writer mutex.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    state: Mutex<State>,
    /// Group commit, in journal bytes (a log sequence number counting every
    /// frame byte this handle appended).
    durability: Watermark,
    /// Journal bytes appended so far (the LSN of the next frame).
    written: AtomicU64,
    /// Durable appends between their write and their wait.
    waiters: AtomicUsize,
    /// One checkpoint at a time.
    checkpoint: Mutex<()>,
    /// A checkpoint is due (the journal passed its size bound).
    checkpoint_due: AtomicBool,
    /// The journal has grown by twice `checkpoint_bytes` since the last
    /// checkpoint started: appends wait for a running one (back-pressure).
    checkpoint_overdue: AtomicBool,
    checkpoint_bytes: u64,
    /// The background checkpoint's thread, if one was started (a leaf
    /// lock: nothing is taken while holding it).
    background: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// How far a journal file is extended ahead of its frames (zeros), so
    /// most fdatasyncs need not record a new file size; from
    /// [`Storage::journal_grow_bytes`].
    grow_bytes: u64,
}

/// A durable append between its write and its wait; see [`Journal::join`].
#[derive(Debug)]
pub(crate) struct Joining<'a>(&'a Journal);

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    pub fn new(
        dir: &Path,
        storage: Arc<dyn Storage>,
        start: JournalStart,
        checkpoint_bytes: u64,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            grow_bytes: storage.journal_grow_bytes(),
            storage,
            state: Mutex::new(State {
                current: None,
                next_file: start.next_file,
                next_frame: start.next_frame,
                manifest_generation: start.manifest_generation,
                bytes_since_checkpoint: 0,
                poisoned: None,
                files: KnownFiles::default(),
                leftovers: Vec::new(),
            }),
            durability: Watermark::new(0),
            written: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            checkpoint: Mutex::new(()),
            checkpoint_due: AtomicBool::new(false),
            checkpoint_overdue: AtomicBool::new(false),
            checkpoint_bytes,
            background: Mutex::new(None),
        }
    }

    /// Count a durable append from before its write until its wait returns,
    /// so a sync leader holds its fsync for it briefly.
    pub fn join(&self) -> Joining<'_> {
        self.waiters.fetch_add(1, Ordering::AcqRel);
        Joining(self)
    }

    /// Refuse a frame too large for the format (a batch over 4 GiB), before
    /// anything of it is written.
    pub fn check_frame_len(&self, frame: &FrameBuf) -> Result<()> {
        if frame.len() - jf::FH_LEN > MAX_FRAME_PAYLOAD_BYTES {
            return Err(WalError::InvalidConfig(format!(
                "a batch of {} bytes does not fit in one journal frame (at most {MAX_FRAME_PAYLOAD_BYTES})",
                frame.len()
            )));
        }
        Ok(())
    }

    /// Write one frame with one write call; returns the journal LSN its
    /// durability waits for. On an error nothing of the frame counts: the
    /// next frame goes where this one would have.
    pub fn append(&self, engine: &crate::engine::Engine, frame: &mut FrameBuf) -> Result<u64> {
        self.check_frame_len(frame)?;
        // The payload's checksum is computed outside the lock.
        frame.seal_body();
        let mut st = relock(&self.state);
        if let Some(cause) = st.poisoned.clone().or_else(|| self.durability.failure()) {
            return Err(WalError::Poisoned(cause));
        }
        self.open_file(engine, &mut st)?;
        let number = st.next_frame;
        let State {
            current, poisoned, ..
        } = &mut *st;
        let Some(cur) = current.as_mut() else {
            return Err(WalError::Closed);
        };
        let pos = cur.end;
        frame.seal_head(
            number,
            FrameBinding {
                salt: cur.salt,
                file_sequence: cur.sequence,
                position: pos,
            },
        );
        let bytes = frame.bytes_mut();
        let len = bytes.len() as u64;
        if let Err(e) = Self::write_frame(cur, bytes, pos, self.grow_bytes) {
            let err = io_at(&cur.path, "write", e);
            // Cut whatever part of the frame reached the file. If even that
            // fails, the journal's end is uncertain: stop every writer.
            cur.allocated = pos;
            let cut = cur.file.set_len(pos);
            if cut.is_err() || !matches!(err, WalError::StorageFull(_)) {
                let cause = PoisonCause::describing(&err);
                *poisoned = Some(cause);
            }
            return Err(err);
        }
        cur.end = pos + len;
        st.next_frame += 1;
        st.bytes_since_checkpoint += len;
        if st.bytes_since_checkpoint >= self.checkpoint_bytes {
            self.checkpoint_due.store(true, Ordering::Release);
            if st.bytes_since_checkpoint >= self.checkpoint_bytes.saturating_mul(2) {
                self.checkpoint_overdue.store(true, Ordering::Release);
            }
        }
        engine.count(Count::JournalFrames, 1);
        engine.count(Count::JournalBytes, len);
        // Under the lock, so `written` only grows and never runs ahead of
        // the bytes in the file.
        Ok(self.written.fetch_add(len, Ordering::AcqRel) + len)
    }

    /// Make sure a journal file is open for appends (creating it durably).
    pub fn ensure_file(&self, engine: &crate::engine::Engine) -> Result<()> {
        let mut st = relock(&self.state);
        self.open_file(engine, &mut st)
    }

    fn open_file(&self, engine: &crate::engine::Engine, st: &mut State) -> Result<()> {
        if st.current.is_none() {
            // After a failed fsync the frames of the last file may be lost:
            // a new file would follow a gap, so none is made.
            if let Some(cause) = st.poisoned.clone().or_else(|| self.durability.failure()) {
                return Err(WalError::Poisoned(cause));
            }
            let first_frame = st.next_frame;
            let sequence = st.next_file;
            st.current = Some(self.create_file(engine, sequence, first_frame)?);
            st.files.journals.insert(sequence);
            st.next_file += 1;
        }
        Ok(())
    }

    fn write_frame(cur: &mut Current, bytes: &[u8], pos: u64, grow_bytes: u64) -> io::Result<()> {
        let end = pos + bytes.len() as u64;
        if end > cur.allocated {
            let target = end.max(pos + grow_bytes);
            cur.file.set_len(target)?;
            cur.allocated = target;
        }
        write_all_at(&*cur.file, bytes, pos)
    }

    /// Create journal file `sequence` and make it durable, name included,
    /// before any frame in it can be acknowledged.
    fn create_file(
        &self,
        engine: &crate::engine::Engine,
        sequence: u64,
        first_frame: u64,
    ) -> Result<Current> {
        let path = self.dir.join(journal_file_name(sequence));
        let salt = self.storage.segment_salt();
        let header = jf::encode_header(JournalHeader {
            sequence,
            salt,
            first_frame,
        });
        let file = engine
            .with_descriptor(|| self.storage.open(&path, OpenMode::CreateNew))
            .map_err(|e| io_at(&path, "create", e))?;
        let made = (|| {
            write_all_at(&*file, &header, 0)?;
            // IMPORTANT: the header and the file's name must survive power
            // loss before a frame in it is acknowledged as durable.
            file.sync_data()?;
            self.storage.sync_dir(&self.dir)
        })();
        engine.count(Count::JournalSyncs, 1);
        engine.count(Count::DirectorySyncs, 1);
        if let Err(e) = made {
            // The half-made file holds no frame; remove it so the sequence
            // can be made again. A leftover is an empty journal to replay.
            drop(self.storage.remove_file(&path));
            return Err(io_at(&path, "create", e));
        }
        Ok(Current {
            file,
            path,
            sequence,
            salt,
            end: JH_LEN as u64,
            allocated: JH_LEN as u64,
        })
    }

    /// Return once every frame up to `lsn` is durable, sharing the
    /// fdatasync with every thread waiting at the time.
    pub fn make_durable(&self, engine: &crate::engine::Engine, lsn: u64) -> Result<()> {
        self.durability
            .wait_synced(
                lsn,
                || self.written.load(Ordering::Acquire),
                || self.waiters.load(Ordering::Acquire),
                || self.sync_current(engine),
            )
            .map_err(|cause| WalError::Poisoned(engine.note_sync_failure(cause)))
    }

    /// Make everything appended so far durable.
    pub fn sync_all(&self, engine: &crate::engine::Engine) -> Result<()> {
        let lsn = self.written.load(Ordering::Acquire);
        self.make_durable(engine, lsn)
    }

    /// fdatasync the file appends go to now. A rotation syncs the file it
    /// leaves, so bytes of earlier files are durable already.
    fn sync_current(&self, engine: &crate::engine::Engine) -> std::result::Result<(), PoisonCause> {
        let current = relock(&self.state)
            .current
            .as_ref()
            .map(|c| (c.file.clone(), c.path.clone()));
        let Some((file, path)) = current else {
            return Ok(());
        };
        engine.count(Count::JournalSyncs, 1);
        file.sync_data()
            .map_err(|e| PoisonCause::new(io_at(&path, "fdatasync", e)))
    }

    /// Whether the journal passed its size bound since the last checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        self.checkpoint_due.load(Ordering::Acquire)
    }

    /// The journal has grown by twice its bound since the last checkpoint
    /// started.
    pub fn checkpoint_overdue(&self) -> bool {
        self.checkpoint_overdue.load(Ordering::Acquire)
    }

    /// The slot of the background checkpoint's thread.
    pub fn background(&self) -> MutexGuard<'_, Option<std::thread::JoinHandle<()>>> {
        relock(&self.background)
    }

    /// Bytes appended since the last checkpoint.
    pub fn bytes_since_checkpoint(&self) -> u64 {
        relock(&self.state).bytes_since_checkpoint
    }

    /// Switch appends to a new journal file, after making the current one
    /// durable in full: then no frame of a later file is ever durable while
    /// one of an earlier file is not. With `close`, no new file is made
    /// (the handle is closing). Returns where replay would now start.
    pub fn rotate(&self, engine: &crate::engine::Engine, close: bool) -> Result<JournalStart> {
        let mut st = relock(&self.state);
        if let Some(cause) = st.poisoned.clone().or_else(|| self.durability.failure()) {
            return Err(WalError::Poisoned(cause));
        }
        if let Some(cur) = st.current.take() {
            engine.count(Count::JournalSyncs, 1);
            if let Err(e) = cur.file.sync_data() {
                let cause = PoisonCause::new(io_at(&cur.path, "fdatasync", e));
                self.durability.poison(cause.clone());
                return Err(WalError::Poisoned(engine.note_sync_failure(cause)));
            }
        }
        st.bytes_since_checkpoint = 0;
        self.checkpoint_due.store(false, Ordering::Release);
        self.checkpoint_overdue.store(false, Ordering::Release);
        if !close {
            let (sequence, first_frame) = (st.next_file, st.next_frame);
            st.current = Some(self.create_file(engine, sequence, first_frame)?);
            st.files.journals.insert(sequence);
            st.next_file += 1;
            return Ok(JournalStart {
                next_file: sequence,
                next_frame: first_frame,
                manifest_generation: st.manifest_generation,
                bytes_since_checkpoint: 0,
            });
        }
        Ok(JournalStart {
            next_file: st.next_file,
            next_frame: st.next_frame,
            manifest_generation: st.manifest_generation,
            bytes_since_checkpoint: 0,
        })
    }

    /// Continue after recovery: the next journal file, frame and manifest
    /// generation, and the journal files and manifests on disk.
    pub fn resume(&self, start: JournalStart, files: KnownFiles) {
        let mut st = relock(&self.state);
        st.next_file = start.next_file;
        st.next_frame = start.next_frame;
        st.manifest_generation = start.manifest_generation;
        st.bytes_since_checkpoint = start.bytes_since_checkpoint;
        if st.bytes_since_checkpoint >= self.checkpoint_bytes {
            self.checkpoint_due.store(true, Ordering::Release);
        }
        st.files = files;
    }

    /// Note a segment file whose removal (in the journal, durably) failed.
    pub fn note_leftover(&self, path: PathBuf) {
        relock(&self.state).leftovers.push(path);
    }

    /// Take the leftover segment files, to remove them.
    pub fn take_leftovers(&self) -> Vec<PathBuf> {
        std::mem::take(&mut relock(&self.state).leftovers)
    }

    /// Note a manifest written.
    pub fn note_manifest(&self, generation: u64) {
        relock(&self.state).files.manifests.insert(generation);
    }

    /// Forget and return the journal files before `journal_start` and the
    /// manifests before `generation`: the caller removes them.
    pub fn take_older(&self, journal_start: u64, generation: u64) -> KnownFiles {
        let mut st = relock(&self.state);
        let keep_journals = st.files.journals.split_off(&journal_start);
        let keep_manifests = st.files.manifests.split_off(&generation);
        KnownFiles {
            journals: std::mem::replace(&mut st.files.journals, keep_journals),
            manifests: std::mem::replace(&mut st.files.manifests, keep_manifests),
        }
    }

    /// Take the next manifest generation.
    pub fn next_manifest_generation(&self) -> u64 {
        let mut st = relock(&self.state);
        st.manifest_generation += 1;
        st.manifest_generation
    }

    /// Forget the open journal file (closing).
    pub fn drop_file(&self) {
        relock(&self.state).current = None;
    }

    /// Hold while checkpointing.
    pub fn checkpoint_lock(&self) -> MutexGuard<'_, ()> {
        relock(&self.checkpoint)
    }

    /// The checkpoint lock if no checkpoint is running.
    pub fn try_checkpoint_lock(&self) -> Option<MutexGuard<'_, ()>> {
        match self.checkpoint.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Stop every writer: a checkpoint could not make segments durable, so
    /// the journal must not be trimmed and nothing new acknowledged.
    pub fn poison(&self, cause: PoisonCause) {
        relock(&self.state).poisoned.get_or_insert(cause);
    }
}
