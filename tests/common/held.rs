//! A storage that holds one operation of chosen files until released: a
//! test stops the engine at an exact point (a segment write under a key's
//! writer lock, a checkpoint's sync of one segment) without timing.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use nano_wal::storage::{LockGuard, OpenMode, StdStorage, Storage, StorageFile};

/// Which operation a [`HeldStorage`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Writes past the file's header (offset > 0).
    Writes,
    /// `sync_data`.
    Syncs,
}

/// Holds the operation while armed, once released lets everything go.
#[derive(Debug, Default)]
pub struct Gate {
    pub armed: AtomicBool,
    /// (an operation is held, released)
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

    /// Wait until an operation is held.
    pub fn wait_held(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !st.0 {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Let the held operation, and every later one, go.
    pub fn release(&self) {
        self.armed.store(false, Ordering::SeqCst);
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1 = true;
        self.cv.notify_all();
    }
}

/// Real storage whose files named with `name` (a substring of the file
/// name) have their `hold` operation held by `gate` while it is armed.
#[derive(Debug)]
pub struct HeldStorage {
    pub gate: Arc<Gate>,
    pub name: String,
    pub hold: Hold,
}

impl HeldStorage {
    /// A storage holding `hold` of the files named with `name`, and its
    /// gate (not armed yet).
    pub fn holding(name: impl Into<String>, hold: Hold) -> (Arc<Gate>, Arc<Self>) {
        let gate = Arc::new(Gate::default());
        let storage = Arc::new(Self {
            gate: gate.clone(),
            name: name.into(),
            hold,
        });
        (gate, storage)
    }
}

#[derive(Debug)]
struct HeldFile {
    inner: Arc<dyn StorageFile>,
    gate: Arc<Gate>,
    hold: Option<Hold>,
}

impl HeldFile {
    fn maybe_hold(&self, op: Hold) {
        if self.hold == Some(op) && self.gate.armed.load(Ordering::SeqCst) {
            self.gate.hold();
        }
    }
}

impl StorageFile for HeldFile {
    fn read_at(&self, b: &mut [u8], o: u64) -> io::Result<usize> {
        self.inner.read_at(b, o)
    }
    fn write_at(&self, b: &[u8], o: u64) -> io::Result<usize> {
        if o > 0 {
            self.maybe_hold(Hold::Writes);
        }
        self.inner.write_at(b, o)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.maybe_hold(Hold::Syncs);
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
        let named = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&self.name));
        Ok(Arc::new(HeldFile {
            inner: StdStorage.open(p, m)?,
            gate: self.gate.clone(),
            hold: named.then_some(self.hold),
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

/// A key whose hash is in `range`: checkpoints go through keys by hash.
pub fn key_in(prefix: &str, range: std::ops::Range<u64>) -> Result<String, String> {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| range.contains(&nano_wal::key_hash(k.as_bytes())))
        .ok_or_else(|| format!("no {prefix} key in range"))
}

/// Arm `gate`, append `big_bytes` to key "big" on another thread (which
/// makes a checkpoint due and, with background checkpoints off, runs it
/// there), wait until the checkpoint is held, run `during`, release, and
/// wait for the checkpoint's append to return (30 s at most).
pub fn checkpoint_held_while(
    wal: &Arc<nano_wal::Wal>,
    gate: &Gate,
    big_bytes: usize,
    during: impl FnOnce() -> Result<(), nano_wal::WalError>,
) -> Result<(), Box<dyn std::error::Error>> {
    gate.armed.store(true, Ordering::SeqCst);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let checkpointing = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            let r = wal.append_entry(
                "big",
                None,
                bytes::Bytes::from(vec![b'x'; big_bytes]),
                false,
            );
            let _ = done_tx.send(());
            r
        })
    };
    gate.wait_held();
    let during = during();
    gate.release();
    if done_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .is_err()
    {
        return Err("the checkpoint never finished".into());
    }
    checkpointing.join().map_err(|_| "append panicked")??;
    Ok(during?)
}
