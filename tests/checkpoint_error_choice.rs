//! A checkpoint that meets a full disk on some segments and another write
//! error on one reports that other error and stops every writer: a full
//! disk alone leaves the WAL writable (appends go on once there is room),
//! but any other failure to make a segment durable must never let a later
//! checkpoint trim the journal. Either way nothing acknowledged is lost.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Faults, FaultyStorage};
use nano_wal::{Wal, WalError, key_hash};

type Res = Result<(), Box<dyn std::error::Error>>;

/// Each key with the records it acknowledged, in order.
type Acked = Vec<(String, Vec<Bytes>)>;

const FULL_KEYS: usize = 20;

fn rec(key: &str, i: usize) -> Bytes {
    Bytes::from(format!("{key}-{i:05}"))
}

fn set(slot: &std::sync::Mutex<Option<String>>, what: Option<&str>) -> Res {
    *slot.lock().map_err(|_| "poisoned")? = what.map(str::to_owned);
    Ok(())
}

/// Keys `full-0` … `full-19` (their files full) and, with `broken`, a key
/// `broken-N` (its file failing with EIO, checkpointed last), records
/// buffered in their tails, then appends until the checkpoint they start
/// has failed.
/// Returns the handle and each key's acknowledged records.
fn failed_checkpoint(
    dir: &std::path::Path,
    faults: &Arc<Faults>,
    storage: Arc<dyn nano_wal::storage::Storage>,
    broken: bool,
) -> Result<(Wal, Acked), Box<dyn std::error::Error>> {
    let wal = Wal::builder(dir)
        .storage(storage)
        .max_unapplied_bytes(1 << 20)
        .background_checkpoints(false)
        .journal_checkpoint_bytes(8192)
        .open()?;
    let mut keys: Acked = (0..FULL_KEYS)
        .map(|i| (format!("full-{i}"), Vec::new()))
        .collect();
    if broken {
        keys.push((broken_key_after(&keys), Vec::new()));
    }
    // Each key's segment file exists before the faults start.
    for (key, list) in &mut keys {
        wal.append_entry(key.as_str(), None, rec(key, 0), false)?;
        list.push(rec(key, 0));
    }
    set(&faults.full_files, Some("full-"))?;
    set(&faults.fail_writes_to, broken.then_some("broken-"))?;
    let mut i = 1;
    while wal.metrics().checkpoint_failures == 0 {
        assert!(i < 1000, "no checkpoint ran");
        for (key, list) in &mut keys {
            match wal.append_entry(key.as_str(), None, rec(key, i), false) {
                Ok(_) => list.push(rec(key, i)),
                Err(WalError::Poisoned(_)) if broken => {}
                Err(e) => return Err(e.into()),
            }
        }
        i += 1;
    }
    Ok((wal, keys))
}

/// A name for the broken key whose hash is above every full key's: a
/// checkpoint goes through segments in key-hash order (one at a time on
/// this storage), so it meets every full segment first and the write
/// error last.
fn broken_key_after(keys: &[(String, Vec<Bytes>)]) -> String {
    let top = keys
        .iter()
        .map(|(k, _)| key_hash(k.as_bytes()))
        .max()
        .unwrap_or(0);
    (0..)
        .map(|n| format!("broken-{n}"))
        .find(|k| key_hash(k.as_bytes()) > top)
        .unwrap_or_default()
}

fn reopen_and_check(dir: &std::path::Path, keys: &[(String, Vec<Bytes>)]) -> Res {
    let wal = Wal::builder(dir).open()?;
    for (key, want) in keys {
        let got: Vec<Bytes> = wal
            .records(key.as_str())?
            .map(|r| r.map(|r| r.content))
            .collect::<Result<_, _>>()?;
        assert_eq!(&got, want, "{key}");
    }
    wal.close()?;
    Ok(())
}

#[test]
fn a_full_disk_alone_leaves_the_wal_writable() -> Res {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = FaultyStorage::create();
    let (wal, mut keys) = failed_checkpoint(dir.path(), &faults, storage, false)?;
    // Another key still takes records, durably.
    wal.append_entry("other", None, rec("other", 0), true)?;
    keys.push(("other".to_owned(), vec![rec("other", 0)]));
    let closing = wal.close();
    assert!(
        matches!(closing, Err(WalError::StorageFull(_))),
        "closing on a full disk: {closing:?}"
    );
    set(&faults.full_files, None)?;
    reopen_and_check(dir.path(), &keys)
}

#[test]
fn a_write_error_among_full_segments_is_reported_and_stops_writers() -> Res {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = FaultyStorage::create();
    let (wal, keys) = failed_checkpoint(dir.path(), &faults, storage, true)?;
    let after = wal.append_entry("other", None, rec("other", 0), true);
    assert!(
        matches!(after, Err(WalError::Poisoned(_))),
        "an append after the failed checkpoint: {after:?}"
    );
    let closing = wal.close();
    assert!(
        matches!(closing, Err(ref e) if !matches!(e, WalError::StorageFull(_))),
        "closing reported {closing:?}, not the write error"
    );
    set(&faults.full_files, None)?;
    set(&faults.fail_writes_to, None)?;
    reopen_and_check(dir.path(), &keys)
}
