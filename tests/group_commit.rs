//! Durable appends share fsyncs of the journal (group commit across keys):
//! a durable batch, whatever its keys, and `sync()` cost one fsync.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

#[test]
fn sync_is_one_journal_fsync_for_every_key() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    for k in 0..50 {
        wal.append_entry(format!("key{k}"), None, Bytes::from("x"), false)?;
    }
    let before = faults.file_syncs.load(Ordering::SeqCst);
    wal.sync()?;
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst) - before,
        1,
        "50 keys, one fsync of the journal"
    );
    wal.sync()?;
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst) - before,
        1,
        "nothing new, no sync"
    );
    wal.append_entry("key7", None, Bytes::from("y"), false)?;
    wal.sync()?;
    assert_eq!(faults.file_syncs.load(Ordering::SeqCst) - before, 2);
    Ok(())
}

#[test]
fn a_durable_batch_over_many_keys_is_one_fsync() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    wal.append_entry("warm", None, Bytes::from("x"), true)?;
    let before = faults.file_syncs.load(Ordering::SeqCst);
    let writes_before = faults.writes.load(Ordering::SeqCst);
    let batch = (0..1000).map(|i| (format!("key{i}"), None, Bytes::from("b")));
    let refs = wal.append_batch(batch, true)?;
    assert_eq!(refs.len(), 1000);
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst) - before,
        1,
        "1,000 keys written durably, one fsync"
    );
    // One journal frame, then per key a segment header and its records.
    assert_eq!(
        faults.writes.load(Ordering::SeqCst) - writes_before,
        1 + 2 * 1000
    );
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, "b", "record {i}");
    }
    Ok(())
}

#[test]
fn concurrent_durable_appends_share_fsyncs() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Arc::new(Wal::builder(dir.path()).storage(storage).open()?);
    wal.append_entry("shared", None, Bytes::from("warm"), true)?;
    // A slow disk: while one fsync runs, the other threads queue up behind it.
    faults.sync_delay_ms.store(2, Ordering::SeqCst);
    let before = faults.file_syncs.load(Ordering::SeqCst);
    let threads = 16;
    let per_thread = 50;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || -> Result<(), WalError> {
                for i in 0..per_thread {
                    wal.append_entry("shared", None, Bytes::from(format!("{t}-{i}")), true)?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| WalError::Closed)??;
    }
    let syncs = faults.file_syncs.load(Ordering::SeqCst) - before;
    let appends = threads * per_thread;
    assert!(
        syncs <= appends,
        "never more than one fsync per durable append"
    );
    assert!(
        syncs * 2 <= appends,
        "{syncs} fsyncs for {appends} durable appends: too few were shared"
    );
    assert_eq!(
        wal.enumerate_records("shared")?.count(),
        usize::try_from(appends).map_err(|_| WalError::Closed)? + 1
    );
    Ok(())
}

#[test]
fn the_journal_file_name_is_synced_before_any_durable_ack() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let at_open = faults.dir_syncs.load(Ordering::SeqCst);
    wal.append_entry("a", None, Bytes::from("x"), false)?;
    // The journal file is made, header and name durable, with the first
    // append; new segments need no directory sync (the journal names them).
    assert_eq!(faults.dir_syncs.load(Ordering::SeqCst), at_open + 1);
    let syncs = faults.file_syncs.load(Ordering::SeqCst);
    wal.append_entry("a", None, Bytes::from("y"), true)?;
    wal.append_entry("b", None, Bytes::from("z"), true)?;
    assert_eq!(
        faults.dir_syncs.load(Ordering::SeqCst),
        at_open + 1,
        "a new key's segment is named by the journal, not a directory sync"
    );
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst) - syncs,
        2,
        "one journal fsync per lone durable append"
    );
    Ok(())
}
