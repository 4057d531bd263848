//! A truncation that lands after a checkpoint took its snapshot and before
//! it synced the truncated segment: the checkpoint syncs what is left and
//! finishes (it used to sync that segment again and again, waiting for an
//! end the cut had removed), and reopening after a crash shows the cut.
//! A storage wrapper holds the sync of another key's segment, which the
//! checkpoint syncs first (it goes in key-hash order, one at a time).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use nano_wal::storage::{LockGuard, OpenMode, StdStorage, Storage, StorageFile};
use nano_wal::{Wal, key_hash};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Holds syncs of files whose name has `name` while armed.
#[derive(Debug, Default)]
struct Gate {
    armed: AtomicBool,
    /// (a sync is held, released)
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
        self.inner.write_at(b, o)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.held && self.gate.armed.load(Ordering::SeqCst) {
            self.gate.hold();
        }
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
            .is_some_and(|n| n.to_string_lossy().starts_with(&self.name));
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

/// A key whose hash is in `range`: checkpoints sync keys by hash.
fn key_in(prefix: &str, range: std::ops::Range<u64>) -> Result<String, String> {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| range.contains(&key_hash(k.as_bytes())))
        .ok_or_else(|| format!("no {prefix} key in range"))
}

#[test]
fn a_checkpoint_finishes_when_a_truncation_cuts_a_segment_it_is_about_to_sync() -> TestResult {
    let dir = tempfile::tempdir()?;
    let held = key_in("held", 0..u64::MAX / 4)?;
    let cut = key_in("cut", u64::MAX / 4 * 3..u64::MAX)?;
    let gate = Arc::new(Gate::default());
    let storage = Arc::new(HeldStorage {
        gate: gate.clone(),
        name: format!("{held}-"),
    });
    let wal = Arc::new(
        Wal::builder(dir.path())
            .storage(storage)
            .background_checkpoints(false)
            .journal_checkpoint_bytes(4096)
            .open()?,
    );
    wal.append_entry(held.as_str(), None, Bytes::from("h0"), false)?;
    let refs: Vec<_> = (0..5)
        .map(|i| wal.append_entry(cut.as_str(), None, Bytes::from(format!("k{i}")), false))
        .collect::<Result<_, _>>()?;
    gate.armed.store(true, Ordering::SeqCst);
    // A large append makes a checkpoint due and runs it: it snapshots both
    // keys, then waits in the held key's segment sync.
    let (done_tx, done_rx) = mpsc::channel();
    let checkpointing = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            let r = wal.append_entry("big", None, Bytes::from(vec![b'x'; 5000]), false);
            let _ = done_tx.send(());
            r
        })
    };
    gate.wait_held();
    // The cut key's segment ends below the snapshot's end now.
    wal.truncate_from(refs[2])?;
    gate.release();
    assert!(
        done_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the checkpoint never finished"
    );
    checkpointing.join().map_err(|_| "append panicked")??;
    assert_eq!(wal.metrics().checkpoint_failures, 0);
    // A crash: the handle goes without its closing checkpoint.
    drop(Arc::try_unwrap(wal).map_err(|_| "handle still shared")?);
    let wal = Wal::builder(dir.path()).open()?;
    let left: Vec<Bytes> = wal.enumerate_records(cut.as_str())?.collect();
    assert_eq!(left, ["k0", "k1"], "truncated from the third record");
    let held_records: Vec<Bytes> = wal.enumerate_records(held.as_str())?.collect();
    assert_eq!(held_records, ["h0"]);
    Ok(())
}
