//! A truncation that lands while a checkpoint is between rotating the
//! journal and snapshotting the key: the manifest then already holds the
//! cut, and the journal after it still holds the records (and cuts) from
//! before. Reopening after a crash must apply that journal, not refuse it.
//! A storage wrapper holds one key's segment write, so the checkpoint
//! waits in its snapshot on that key's writer lock.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::held::{HeldStorage, Hold, key_in};
use nano_wal::Wal;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn run(double_cut: bool, appends: bool) -> TestResult {
    let dir = tempfile::tempdir()?;
    let held = key_in("held", 0..u64::MAX / 4)?;
    let cut = key_in("cut", u64::MAX / 4 * 3..u64::MAX)?;
    let (gate, storage) = HeldStorage::holding(held.clone(), Hold::Writes);
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
