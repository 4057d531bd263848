//! Durable appends share fsyncs (group commit), and `sync()` syncs only the
//! segments that have unsynced writes.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

#[test]
fn sync_touches_only_dirty_segments() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    for k in 0..50 {
        wal.append_entry(format!("key{k}"), None, Bytes::from("x"), false)?;
    }
    let before = faults.file_syncs.load(Ordering::SeqCst);
    wal.sync()?;
    assert_eq!(faults.file_syncs.load(Ordering::SeqCst) - before, 50);
    wal.sync()?;
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst) - before,
        50,
        "nothing dirty, no sync"
    );
    wal.append_entry("key7", None, Bytes::from("y"), false)?;
    wal.sync()?;
    assert_eq!(faults.file_syncs.load(Ordering::SeqCst) - before, 51);
    Ok(())
}

#[test]
fn durable_batch_syncs_only_the_segments_it_wrote() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    for k in 0..100 {
        wal.append_entry(format!("idle{k}"), None, Bytes::from("x"), true)?;
    }
    let before = faults.file_syncs.load(Ordering::SeqCst);
    let batch = (0..30).map(|i| (format!("busy{}", i % 3), None, Bytes::from("b")));
    wal.append_batch(batch, true)?;
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst) - before,
        3,
        "3 keys written, 3 syncs"
    );
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
fn new_segment_directory_entry_is_synced_before_durable_ack() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    wal.append_entry("a", None, Bytes::from("x"), false)?;
    assert_eq!(
        faults.dir_syncs.load(Ordering::SeqCst),
        0,
        "non-durable appends do not sync"
    );
    wal.append_entry("a", None, Bytes::from("y"), true)?;
    assert_eq!(
        faults.dir_syncs.load(Ordering::SeqCst),
        1,
        "the new file's name is made durable"
    );
    wal.append_entry("a", None, Bytes::from("z"), true)?;
    assert_eq!(
        faults.dir_syncs.load(Ordering::SeqCst),
        1,
        "only once per directory change"
    );
    wal.append_entry("b", None, Bytes::from("z"), true)?;
    assert_eq!(
        faults.dir_syncs.load(Ordering::SeqCst),
        2,
        "a new segment needs a new directory sync"
    );
    Ok(())
}
