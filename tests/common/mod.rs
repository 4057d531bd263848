//! Shared test helpers: a storage wrapper that counts syncs and injects faults.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nano_wal::storage::{LockGuard, OpenMode, StdStorage, Storage, StorageFile};

pub mod held;
pub mod padded;

/// Counters and switches shared by a [`FaultyStorage`] and its files.
#[derive(Debug, Default)]
pub struct Faults {
    pub file_syncs: AtomicU64,
    pub dir_syncs: AtomicU64,
    pub writes: AtomicU64,
    /// Positional read calls, and the bytes they asked for.
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub dir_lists: AtomicU64,
    /// Every file sync fails while set.
    pub fail_sync: AtomicBool,
    /// Each file sync sleeps this long first (makes overlap certain).
    pub sync_delay_ms: AtomicU64,
    /// Writes to files whose path contains this string wait until it is cleared.
    pub stall_writes_to: Mutex<Option<String>>,
    /// Every write fails with ENOSPC (after writing half its bytes) while set.
    pub disk_full: AtomicBool,
    /// As `disk_full`, but only for files whose path contains this string.
    pub full_files: Mutex<Option<String>>,
    /// Writes to files whose path contains this string fail with EIO
    /// (nothing written) while set.
    pub fail_writes_to: Mutex<Option<String>>,
    /// Removing a segment file (`.log`) fails with EIO while set.
    pub fail_segment_removal: AtomicBool,
    /// Once reads have asked for more bytes than this (if non-zero), every
    /// read fails: a bound on how much a code path may read.
    pub read_budget_bytes: AtomicU64,
}

/// Whether `slot` holds a string that `path` contains.
fn names(slot: &Mutex<Option<String>>, path: &str) -> bool {
    let slot = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    slot.as_deref().is_some_and(|s| path.contains(s))
}

impl Faults {
    fn stalled(&self, path: &str) -> bool {
        names(&self.stall_writes_to, path)
    }

    fn failing(&self, path: &str) -> bool {
        names(&self.fail_writes_to, path)
    }

    fn full(&self, path: &str) -> bool {
        self.disk_full.load(Ordering::SeqCst) || names(&self.full_files, path)
    }
}

/// Real storage with counters and injected faults.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    pub faults: Arc<Faults>,
}

impl FaultyStorage {
    pub fn create() -> (Arc<dyn Storage>, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (
            Arc::new(Self {
                faults: faults.clone(),
            }),
            faults,
        )
    }
}

#[derive(Debug)]
struct FaultyFile {
    path: String,
    inner: Arc<dyn StorageFile>,
    faults: Arc<Faults>,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.faults.reads.fetch_add(1, Ordering::SeqCst);
        let total = self
            .faults
            .read_bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst)
            + buf.len() as u64;
        let budget = self.faults.read_budget_bytes.load(Ordering::SeqCst);
        if budget > 0 && total > budget {
            return Err(io::Error::other(format!(
                "read budget of {budget} bytes exceeded"
            )));
        }
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.faults.writes.fetch_add(1, Ordering::SeqCst);
        while self.faults.stalled(&self.path) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if self.faults.failing(&self.path) {
            return Err(io::Error::other("injected EIO on write"));
        }
        if self.faults.full(&self.path) {
            // A torn write: half the bytes land, then the disk is full.
            let half = buf.len() / 2;
            if half > 0 {
                self.inner.write_at(&buf[..half], offset)?;
            }
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.file_syncs.fetch_add(1, Ordering::SeqCst);
        let delay = self.faults.sync_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO on fsync"));
        }
        self.inner.sync_data()
    }
    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdStorage.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.faults.dir_lists.fetch_add(1, Ordering::SeqCst);
        StdStorage.list_dir(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let inner = StdStorage.open(path, mode)?;
        let path = path.display().to_string();
        Ok(Arc::new(FaultyFile {
            path,
            inner,
            faults: self.faults.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let segment = path.extension().is_some_and(|e| e == "log");
        if segment && self.faults.fail_segment_removal.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO on unlink"));
        }
        StdStorage.remove_file(path)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        StdStorage.remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.faults.dir_syncs.fetch_add(1, Ordering::SeqCst);
        StdStorage.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        StdStorage.try_lock(path)
    }
    fn boot_id(&self) -> io::Result<String> {
        StdStorage.boot_id()
    }
}

/// Cut `bytes` off the end of the only segment file in `dir`, as a crash in
/// the middle of its last write would leave it; returns the file's length
/// before the cut.
pub fn tear_only_segment(dir: &Path, bytes: u64) -> io::Result<u64> {
    let seg = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .ok_or_else(|| io::Error::other("no segment"))?;
    let file = std::fs::OpenOptions::new().write(true).open(&seg)?;
    let len = file.metadata()?.len();
    file.set_len(len - bytes)?;
    Ok(len)
}

/// Remove the journal files and manifests from `dir`, leaving its segments
/// as a version without the journal left them: opening then scans the
/// segments (the path directories of earlier versions take).
pub fn forget_journal(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("nano-wal.journal-") || name.starts_with("nano-wal.manifest-") {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
