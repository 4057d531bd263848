//! A full disk (ENOSPC) costs only the call that met it: records go to
//! their segments before their journal frame, so whichever write fails,
//! what reached a file is cut back, nothing of the append is visible or
//! comes back after a reopen, and every key goes on appending. A checkpoint
//! that cannot write its manifest leaves the journal as it was and does not
//! fail the append that started it.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

const KEYS: [&str; 3] = ["alpha", "bravo", "charlie"];

fn fill(faults: &common::Faults, what: Option<&str>) {
    *faults.full_files.lock().expect("not poisoned") = what.map(str::to_owned);
}

fn batch(tag: &str) -> Vec<(&'static str, Option<Bytes>, Bytes)> {
    KEYS.iter()
        .flat_map(|&k| (0..3).map(move |i| (k, None, Bytes::from(format!("{tag}-{k}-{i}")))))
        .collect()
}

fn contents(wal: &Wal, key: &str) -> Result<Vec<String>, WalError> {
    Ok(wal
        .enumerate_records(key)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect())
}

/// Each key holds "before-<key>-0..2", then "after-<key>-0..2".
fn check_keys(wal: &Wal) -> Result<(), WalError> {
    for k in KEYS {
        let want: Vec<String> = ["before", "after"]
            .iter()
            .flat_map(|t| (0..3).map(move |i| format!("{t}-{k}-{i}")))
            .collect();
        assert_eq!(contents(wal, k)?, want, "key {k}");
    }
    Ok(())
}

/// Append a batch, fail the next one on files matching `full`, append
/// again, and check the keys live, after a crash (drop) and after close.
fn a_failed_batch_leaves_nothing(full: &str) -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let open = |storage: Arc<dyn nano_wal::storage::Storage>| {
        Wal::builder(dir.path()).storage(storage).open()
    };
    let wal = open(storage.clone())?;
    let before = wal.append_batch(batch("before"), true)?;

    fill(&faults, Some(full));
    let err = wal.append_batch(batch("lost"), true);
    assert!(matches!(err, Err(WalError::StorageFull(_))), "{err:?}");
    // A single append meets the same full file, and is refused the same way.
    let one = wal.append_entry("bravo", None, Bytes::from("lost-one"), false);
    assert!(matches!(one, Err(WalError::StorageFull(_))), "{one:?}");
    fill(&faults, None);

    let after = wal.append_batch(batch("after"), true)?;
    check_keys(&wal)?;
    // A reader may have seen the bytes that were cut: keys the failure
    // touched go on in a new segment, so no offset is used twice.
    let touched =
        |r: &nano_wal::EntryRef| full.starts_with("nano-wal") || r.key_hash == after[3].key_hash;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.key_hash, a.key_hash);
        if touched(a) {
            assert!(a.sequence_number > b.sequence_number, "{b} then {a}");
        }
    }
    drop(wal);
    let wal = open(storage.clone())?;
    assert!(
        wal.recovery_report().torn_tails.is_empty(),
        "{:?}",
        wal.recovery_report()
    );
    check_keys(&wal)?;
    wal.close()?;
    let wal = open(storage)?;
    check_keys(&wal)?;
    Ok(())
}

#[test]
fn a_full_segment_in_the_middle_of_a_batch_cuts_every_key_back() -> Result<(), WalError> {
    a_failed_batch_leaves_nothing("bravo-")
}

#[test]
fn a_full_journal_cuts_the_segments_already_written_back() -> Result<(), WalError> {
    a_failed_batch_leaves_nothing("nano-wal.journal-")
}

#[test]
fn a_checkpoint_that_cannot_write_its_manifest_does_not_fail_the_append() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path())
        .storage(storage.clone())
        .journal_checkpoint_bytes(4096)
        .background_checkpoints(false)
        .open()?;
    let manifests = || -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("nano-wal.manifest-"))
            .collect();
        names.sort();
        Ok(names)
    };
    let before = manifests()?;
    let checkpoints = wal.metrics().checkpoints;

    fill(&faults, Some("nano-wal.manifest-"));
    let record = Bytes::from(vec![7u8; 1000]);
    let mut refs = Vec::new();
    // Enough appends to pass the bound: the one that does runs the
    // checkpoint, which fails, and still returns its reference.
    while wal.metrics().checkpoint_failures == 0 {
        refs.push(wal.append_entry("k", None, record.clone(), true)?);
        assert!(refs.len() < 100, "no checkpoint was attempted");
    }
    assert_eq!(wal.metrics().checkpoints, checkpoints);
    assert_eq!(manifests()?, before, "the partial manifest was removed");
    fill(&faults, None);

    // The journal was left as it was; the next checkpoint succeeds.
    while wal.metrics().checkpoints == checkpoints {
        refs.push(wal.append_entry("k", None, record.clone(), true)?);
        assert!(refs.len() < 200, "no checkpoint after the disk had room");
    }
    assert_eq!(wal.metrics().checkpoint_failures, 1);
    drop(wal);
    let wal = Wal::builder(dir.path()).open()?;
    for r in &refs {
        assert_eq!(wal.read_entry_at(*r)?, record);
    }
    assert_eq!(wal.enumerate_records("k")?.count(), refs.len());
    Ok(())
}
