//! `Wal::metrics` counts what the handle did: every record and byte
//! appended, durable acknowledgements, batches, segments created, journal
//! frames, checkpoints, and every fsync of the journal, of a segment file
//! and of the directory (checked against a storage wrapper that counts the
//! calls themselves).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

/// Encoded size of a record with no header (24 fixed bytes, FORMAT.md §4).
fn encoded(content: usize) -> u64 {
    24 + content as u64
}

/// Every fdatasync the storage saw is a segment's, the journal's, or a
/// checkpoint's manifest (one each); every directory fsync is counted.
fn syncs_add_up(wal: &Wal, faults: &common::Faults) {
    let m = wal.metrics();
    assert_eq!(
        m.segment_syncs + m.journal_syncs + m.checkpoints,
        faults.file_syncs.load(Ordering::SeqCst),
        "{m:?}"
    );
    assert_eq!(m.directory_syncs, faults.dir_syncs.load(Ordering::SeqCst));
}

#[test]
fn metrics_count_appends_acknowledgements_and_every_sync() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let m = wal.metrics();
    // Opening a new directory writes its first manifest.
    assert_eq!(
        (m.checkpoints, m.records_appended, m.journal_frames),
        (1, 0, 0)
    );
    syncs_add_up(&wal, &faults);

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
    // One frame per append; the journal file's creation is its one sync.
    assert_eq!((m.journal_frames, m.journal_syncs), (10, 1));
    assert!(m.journal_bytes > m.bytes_appended, "{m:?}");
    assert_eq!(m.journal_bytes_since_checkpoint, m.journal_bytes);

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
    assert_eq!((m.journal_frames, m.journal_syncs), (13, 3));
    assert_eq!(
        m.segment_syncs, 0,
        "no segment is synced on the append path"
    );
    syncs_add_up(&wal, &faults);

    wal.sync()?;
    assert_eq!(wal.metrics().journal_syncs, 4);
    syncs_add_up(&wal, &faults);
    Ok(())
}

#[test]
fn a_checkpoint_syncs_the_segments_and_trims_the_journal() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path())
        .storage(storage)
        .journal_checkpoint_bytes(64 << 10)
        .background_checkpoints(false)
        .open()?;
    let content = Bytes::from(vec![7u8; 1000]);
    for i in 0..100 {
        wal.append_entry(format!("k{}", i % 4), None, content.clone(), false)?;
    }
    let m = wal.metrics();
    assert_eq!(m.checkpoints, 2, "the open's and one at 64 KiB: {m:?}");
    assert_eq!(m.segment_syncs, 4, "each key's segment once");
    assert!(m.journal_bytes_since_checkpoint < 64 << 10, "{m:?}");
    syncs_add_up(&wal, &faults);
    let journals = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("nano-wal.journal-")
        })
        .count();
    assert_eq!(journals, 1, "the journal before the checkpoint is removed");
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
                    wal.log_entry(format!("key{t}"), None, Bytes::from(format!("{i}")))?;
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
    syncs_add_up(&wal, &faults);
    assert!(
        m.journal_syncs < total,
        "group commit across keys shares fsyncs: {} syncs for {total} records",
        m.journal_syncs
    );
    Ok(())
}

#[test]
fn a_reopened_handle_counts_from_zero_and_counts_its_replay() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    {
        let wal = Wal::builder(dir.path()).open()?;
        wal.log_entry("k", None, Bytes::from("kept"))?;
        wal.append_entry("j", None, Bytes::from("also"), false)?;
        // Dropped, not closed: the next open replays the journal.
    }
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    assert_eq!(wal.recovery_report().replayed_frames, 2);
    let m = wal.metrics();
    assert_eq!((m.records_appended, m.durable_records), (0, 0));
    // Replay syncs the journal's last file, not the segments: the journal
    // keeps their records until the next checkpoint.
    assert_eq!((m.checkpoints, m.segment_syncs, m.journal_syncs), (0, 0, 1));
    syncs_add_up(&wal, &faults);
    Ok(())
}
