//! `Wal::metrics` counts what the handle did: every record and byte
//! appended, durable acknowledgements, batches, segments created, and
//! every fsync of a segment file and of the directory (checked against a
//! storage wrapper that counts the calls themselves).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

/// Encoded size of a record with no header (24 fixed bytes, FORMAT.md §4).
fn encoded(content: usize) -> u64 {
    24 + content as u64
}

#[test]
fn metrics_count_appends_acknowledgements_and_every_sync() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    assert_eq!(wal.metrics(), nano_wal::Metrics::default());

    for i in 0..10 {
        wal.append_entry("a", None, Bytes::from(format!("v{i}")), false)?;
    }
    let m = wal.metrics();
    assert_eq!(
        (m.records_appended, m.bytes_appended),
        (10, 10 * encoded(2))
    );
    assert_eq!((m.durable_records, m.segment_syncs, m.batches), (0, 0, 0));
    assert_eq!((m.segments_created, m.keys, m.open_files), (1, 1, 1));

    wal.log_entry("a", Some(Bytes::from("h")), Bytes::from("durable"))?;
    wal.append_batch(
        (0..5).map(|i| (if i % 2 == 0 { "a" } else { "b" }, None, Bytes::from("x"))),
        true,
    )?;
    wal.append_batch([("c", None, Bytes::from("y"))], false)?;
    let m = wal.metrics();
    assert_eq!(m.records_appended, 10 + 1 + 5 + 1);
    assert_eq!(
        m.bytes_appended,
        10 * encoded(2) + encoded(7) + 1 + 6 * encoded(1)
    );
    assert_eq!((m.durable_records, m.batches), (1 + 5, 2));
    assert_eq!((m.segments_created, m.keys), (3, 3));
    assert_eq!(m.segment_syncs, faults.file_syncs.load(Ordering::SeqCst));
    assert_eq!(m.directory_syncs, faults.dir_syncs.load(Ordering::SeqCst));
    assert!(m.segment_syncs >= 2 && m.directory_syncs >= 1, "{m:?}");

    wal.sync()?;
    let m = wal.metrics();
    assert_eq!(m.segment_syncs, faults.file_syncs.load(Ordering::SeqCst));
    assert_eq!(m.directory_syncs, faults.dir_syncs.load(Ordering::SeqCst));
    Ok(())
}

#[test]
fn concurrent_durable_appends_are_all_acknowledged_with_fewer_syncs() -> Result<(), WalError> {
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    // Slow syncs make appenders overlap, so group commit shares them.
    faults.sync_delay_ms.store(2, Ordering::SeqCst);
    let wal = Arc::new(Wal::builder(dir.path()).storage(storage).open()?);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || -> Result<(), WalError> {
                for i in 0..EACH {
                    wal.log_entry("shared", None, Bytes::from(format!("{t}-{i}")))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| WalError::InvalidConfig("a thread panicked".into()))??;
    }
    let m = wal.metrics();
    let total = (THREADS * EACH) as u64;
    assert_eq!((m.records_appended, m.durable_records), (total, total));
    assert_eq!(m.segment_syncs, faults.file_syncs.load(Ordering::SeqCst));
    assert!(
        m.segment_syncs < total,
        "group commit shares fsyncs: {} syncs for {total} records",
        m.segment_syncs
    );
    Ok(())
}

#[test]
fn a_reopened_handle_counts_from_zero_and_recovery_cuts_are_syncs() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    {
        let wal = Wal::builder(dir.path()).open()?;
        wal.log_entry("k", None, Bytes::from("kept"))?;
        wal.append_entry("k", None, Bytes::from("torn"), false)?;
        wal.close()?;
    }
    common::tear_only_segment(dir.path(), 2)?;

    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    assert_eq!(wal.recovery_report().torn_tails.len(), 1);
    let m = wal.metrics();
    assert_eq!((m.records_appended, m.durable_records), (0, 0));
    // The torn tail's cut was made durable: one counted fdatasync.
    assert_eq!(m.segment_syncs, 1);
    assert_eq!(m.segment_syncs, faults.file_syncs.load(Ordering::SeqCst));
    Ok(())
}
