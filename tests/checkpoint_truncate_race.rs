//! A truncation that lands while a checkpoint is between rotating the
//! journal and snapshotting the key: the manifest then already holds the
//! cut, and the journal after it still holds the records (and cuts) from
//! before. Reopening after a crash must apply that journal, not refuse it.
//! A storage wrapper holds one key's segment write, so the checkpoint
//! waits in its snapshot on that key's writer lock.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use nano_wal::storage::{LockGuard, OpenMode, StdStorage, Storage, StorageFile};
use nano_wal::{Wal, key_hash};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Holds writes past the header of files whose name has `name`.
#[derive(Debug, Default)]
struct Gate {
    armed: AtomicBool,
    /// (a write is held, released)
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Gate {
    fn hold(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.0 = true;
        self.cv.notify_all();
        while !st.1 {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
    fn wait_held(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !st.0 {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
    fn release(&self) {
        self.armed.store(false, Ordering::SeqCst);
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1 = true;
        self.cv.notify_all();
    }
}

#[derive(Debug)]
struct HeldStorage {
    gate: Arc<Gate>,
    name: String,
}

#[derive(Debug)]
struct HeldFile {
    inner: Arc<dyn StorageFile>,
    gate: Arc<Gate>,
    held: bool,
}

impl StorageFile for HeldFile {
    fn read_at(&self, b: &mut [u8], o: u64) -> io::Result<usize> {
        self.inner.read_at(b, o)
    }
    fn write_at(&self, b: &[u8], o: u64) -> io::Result<usize> {
        if self.held && o > 0 && self.gate.armed.load(Ordering::SeqCst) {
            self.gate.hold();
        }
        self.inner.write_at(b, o)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }
    fn set_len(&self, l: u64) -> io::Result<()> {
        self.inner.set_len(l)
    }
}

impl Storage for HeldStorage {
    fn create_dir_all(&self, d: &Path) -> io::Result<()> {
        StdStorage.create_dir_all(d)
    }
    fn list_dir(&self, d: &Path) -> io::Result<Vec<String>> {
        StdStorage.list_dir(d)
    }
    fn open(&self, p: &Path, m: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let held = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&self.name));
        Ok(Arc::new(HeldFile {
            inner: StdStorage.open(p, m)?,
            gate: self.gate.clone(),
            held,
        }))
    }
    fn remove_file(&self, p: &Path) -> io::Result<()> {
        StdStorage.remove_file(p)
    }
    fn remove_dir(&self, d: &Path) -> io::Result<()> {
        StdStorage.remove_dir(d)
    }
    fn sync_dir(&self, d: &Path) -> io::Result<()> {
        StdStorage.sync_dir(d)
    }
    fn try_lock(&self, p: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        StdStorage.try_lock(p)
    }
}

/// A key whose hash is in `range`: checkpoints snapshot keys by hash.
fn key_in(prefix: &str, range: std::ops::Range<u64>) -> Result<String, String> {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| range.contains(&key_hash(k.as_bytes())))
        .ok_or_else(|| format!("no {prefix} key in range"))
}

fn run(double_cut: bool, appends: bool) -> TestResult {
    let dir = tempfile::tempdir()?;
    let held = key_in("held", 0..u64::MAX / 4)?;
    let cut = key_in("cut", u64::MAX / 4 * 3..u64::MAX)?;
    let gate = Arc::new(Gate::default());
    let storage = Arc::new(HeldStorage {
        gate: gate.clone(),
        name: held.clone(),
    });
    let wal = Arc::new(
        Wal::builder(dir.path())
            .storage(storage)
            .background_checkpoints(false)
            .journal_checkpoint_bytes(4096)
            // The held key's append must write its segment file (under its
            // writer lock) for the gate to hold it: no in-memory tails.
            .max_unapplied_bytes(0)
            .open()?,
    );
    wal.append_entry(held.as_str(), None, Bytes::from("h0"), true)?;
    let mut refs = Vec::new();
    for i in 0..5 {
        refs.push(wal.append_entry(cut.as_str(), None, Bytes::from(format!("k{i}")), true)?);
    }
    gate.armed.store(true, Ordering::SeqCst);
    let held_append = {
        let (wal, key) = (wal.clone(), held.clone());
        std::thread::spawn(move || wal.append_entry(key.as_str(), None, Bytes::from("h1"), false))
    };
    gate.wait_held();
    // A large append makes a checkpoint due and runs it: it rotates the
    // journal, then waits in its snapshot for the held key's writer lock.
    let checkpointing = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            wal.append_entry("big", None, Bytes::from(vec![b'x'; 5000]), false)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    if appends {
        for i in 5..7 {
            refs.push(wal.append_entry(cut.as_str(), None, Bytes::from(format!("k{i}")), false)?);
        }
    }
    if double_cut {
        wal.truncate_from(refs[4])?;
    }
    wal.truncate_from(refs[2])?;
    gate.release();
    held_append.join().map_err(|_| "append panicked")??;
    checkpointing.join().map_err(|_| "append panicked")??;
    // A crash: the handle goes without its closing checkpoint.
    drop(Arc::try_unwrap(wal).map_err(|_| "handle still shared")?);
    let wal = Wal::builder(dir.path()).open()?;
    let left: Vec<Bytes> = wal.enumerate_records(cut.as_str())?.collect();
    assert_eq!(left, ["k0", "k1"], "truncated from the third record");
    for r in &refs[2..] {
        assert!(
            wal.read_entry_at(*r).is_err(),
            "{r} resolves after the truncation"
        );
    }
    let held_records: Vec<Bytes> = wal.enumerate_records(held.as_str())?.collect();
    assert_eq!(held_records, ["h0", "h1"]);
    Ok(())
}

#[test]
fn records_before_a_cut_in_the_journal_after_the_snapshot() -> TestResult {
    run(false, true)
}

#[test]
fn two_cuts_in_the_journal_after_the_snapshot() -> TestResult {
    run(true, false)
}
