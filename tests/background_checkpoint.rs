//! Checkpoints run on a thread of their own: the append that crosses the
//! bound returns while its checkpoint is still running; appends wait only
//! once the journal has grown by twice the bound (back-pressure); closing
//! and dropping a handle wait for the checkpoint before they release the
//! directory. A checkpoint is held in place by stalling the write of its
//! manifest, so nothing here depends on timing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

const BOUND: u64 = 8192;

/// Lets a stalled checkpoint go when dropped: a failing assertion must not
/// leave the handle's drop waiting for it forever. Bind it after the `Wal`,
/// so it is dropped first.
struct Unstall(Arc<common::Faults>);

impl Drop for Unstall {
    fn drop(&mut self) {
        stall_manifests(&self.0, false);
    }
}

fn stall_manifests(faults: &common::Faults, on: bool) {
    *faults.stall_writes_to.lock().expect("not poisoned") =
        on.then(|| "nano-wal.manifest-".to_owned());
}

/// A WAL whose checkpoint is stalled at its manifest.
struct Stalled {
    wal: Wal,
    faults: Arc<common::Faults>,
    /// Checkpoints completed before this one.
    checkpoints_before: u64,
    /// Records appended.
    appended: usize,
}

/// A WAL whose next checkpoint stalls at its manifest, once an append has
/// started that checkpoint (and returned).
fn with_a_stalled_checkpoint(dir: &std::path::Path) -> Result<Stalled, WalError> {
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir)
        .storage(storage)
        .journal_checkpoint_bytes(BOUND)
        .open()?;
    let checkpoints_before = wal.metrics().checkpoints;
    stall_manifests(&faults, true);
    let mut appended = 0;
    let record = Bytes::from(vec![1u8; 500]);
    // Up to the bound: the append that crosses it starts the checkpoint
    // and returns at once.
    while wal.metrics().journal_bytes < BOUND {
        wal.append_entry("k", None, record.clone(), false)?;
        appended += 1;
    }
    // The checkpoint's thread has begun once it rotated the journal (the
    // bytes since the checkpoint start again from 0); it then stalls.
    let mut waited = 0;
    while wal.metrics().journal_bytes_since_checkpoint > 0 {
        assert!(waited < 10_000, "the checkpoint never started");
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
    }
    Ok(Stalled {
        wal,
        faults,
        checkpoints_before,
        appended,
    })
}

#[test]
fn the_append_that_starts_a_checkpoint_does_not_wait_for_it() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let Stalled {
        wal,
        faults,
        checkpoints_before: before,
        ..
    } = with_a_stalled_checkpoint(dir.path())?;
    let _unstall = Unstall(faults.clone());
    // The checkpoint cannot finish while its manifest is stalled, yet the
    // appends that started it returned, and more go on.
    wal.append_entry("k", None, Bytes::from("more"), true)?;
    assert_eq!(wal.metrics().checkpoints, before, "still running");
    stall_manifests(&faults, false);
    wal.close()?;
    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(wal.recovery_report().replayed_frames, 0, "closed cleanly");
    assert_eq!(
        wal.enumerate_records("k")?.last().as_deref(),
        Some(&b"more"[..])
    );
    Ok(())
}

#[test]
fn appends_wait_once_the_journal_reaches_twice_the_bound() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let Stalled {
        wal,
        faults,
        checkpoints_before: before,
        ..
    } = with_a_stalled_checkpoint(dir.path())?;
    let wal = Arc::new(wal);
    let _unstall = Unstall(faults.clone());
    let done = Arc::new(AtomicBool::new(false));
    let appender = {
        let (wal, done) = (wal.clone(), done.clone());
        std::thread::spawn(move || -> Result<u64, WalError> {
            let mut n = 0;
            // Far past twice the bound: some append must wait.
            while n < 64 {
                wal.append_entry("k", None, Bytes::from(vec![2u8; 500]), false)?;
                n += 1;
            }
            done.store(true, Ordering::SeqCst);
            Ok(n)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !done.load(Ordering::SeqCst),
        "64 appends of 500 B passed twice an 8 KiB bound without waiting"
    );
    assert!(wal.metrics().journal_bytes_since_checkpoint >= 2 * BOUND);
    stall_manifests(&faults, false);
    let n = appender.join().expect("appender")?;
    assert_eq!(n, 64);
    assert!(wal.metrics().checkpoints > before);
    assert!(
        wal.metrics().journal_bytes_since_checkpoint < 2 * BOUND,
        "{:?}",
        wal.metrics()
    );
    Ok(())
}

#[test]
fn dropping_the_handle_waits_for_the_checkpoint_before_the_lock_goes() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let Stalled {
        wal,
        faults,
        appended,
        ..
    } = with_a_stalled_checkpoint(dir.path())?;
    let _unstall = Unstall(faults.clone());
    let dropped = Arc::new(AtomicBool::new(false));
    let dropper = {
        let dropped = dropped.clone();
        std::thread::spawn(move || {
            drop(wal);
            dropped.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!dropped.load(Ordering::SeqCst), "the drop did not wait");
    // Meanwhile the directory is still held: a second handle is read-only.
    let path = dir.path().to_str().expect("a UTF-8 path");
    let second = Wal::new(path, nano_wal::WalOptions::default())?;
    assert!(matches!(
        second.append_entry("k", None, Bytes::from("x"), false),
        Err(WalError::ReadOnly(_))
    ));
    drop(second);
    stall_manifests(&faults, false);
    dropper.join().expect("dropper");
    // Released now, with the checkpoint's manifest complete.
    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(wal.enumerate_records("k")?.count(), appended);
    assert_eq!(
        wal.recovery_report().replayed_frames,
        0,
        "the checkpoint completed"
    );
    Ok(())
}
