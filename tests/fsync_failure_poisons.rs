//! After a failed fsync of the journal every writer is poisoned (the
//! journal is shared): no later call claims durability (retrying a failed
//! fsync can "succeed" after the kernel dropped the dirty pages), and
//! reopening recovers.

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

#[test]
fn a_failed_journal_fsync_poisons_every_writer() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let ok = wal.append_entry("k", None, Bytes::from("before"), true)?;
    let other = wal.append_entry("other", None, Bytes::from("x"), false)?;

    faults.fail_sync.store(true, Ordering::SeqCst);
    let err = wal.append_entry("k", None, Bytes::from("lost?"), true);
    assert!(matches!(err, Err(WalError::Poisoned(_))), "{err:?}");

    // The fault clears, but a retried fsync must not report success, and
    // the journal is shared: every key's writes stop, not just this one's.
    faults.fail_sync.store(false, Ordering::SeqCst);
    let syncs_before = faults.file_syncs.load(Ordering::SeqCst);
    for key in ["k", "other", "new"] {
        for durable in [false, true] {
            let r = wal.append_entry(key, None, Bytes::from("y"), durable);
            assert!(matches!(r, Err(WalError::Poisoned(_))), "{key}: {r:?}");
        }
    }
    let batch = wal.append_batch([("k", None, Bytes::from("b"))], false);
    assert!(matches!(batch, Err(WalError::Poisoned(_))), "{batch:?}");
    assert!(matches!(wal.sync(), Err(WalError::Poisoned(_))));
    assert_eq!(
        faults.file_syncs.load(Ordering::SeqCst),
        syncs_before,
        "nothing is synced again after a failed fsync"
    );
    // Reads still work.
    assert_eq!(wal.read_entry_at(ok)?, "before");
    assert_eq!(wal.read_entry_at(other)?, "x");
    assert!(wal.close().is_err(), "closing cannot checkpoint either");

    // In the same boot a writer is refused (the page cache may hold bytes
    // the disk lost); once the note is gone (a restart, or an operator who
    // accepts the risk) reopening replays the journal and every key is
    // writable again.
    assert!(matches!(
        Wal::builder(dir.path()).open(),
        Err(WalError::Poisoned(_))
    ));
    std::fs::remove_file(dir.path().join(nano_wal::FSYNC_FAILED_FILE_NAME))?;
    let wal = Wal::builder(dir.path()).open()?;
    wal.append_entry("k", None, Bytes::from("after"), true)?;
    wal.append_entry("other", None, Bytes::from("z"), true)?;
    let got: Vec<Bytes> = wal.enumerate_records("k")?.collect();
    assert_eq!(got.first().map(|b| &b[..]), Some(&b"before"[..]));
    assert_eq!(got.last().map(|b| &b[..]), Some(&b"after"[..]));
    Ok(())
}

#[test]
fn full_disk_leaves_no_torn_record_and_appends_resume() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let first = wal.append_entry("k", None, Bytes::from("one"), true)?;

    faults.disk_full.store(true, Ordering::SeqCst);
    let big = Bytes::from(vec![9u8; 10_000]);
    let err = wal.append_entry("k", None, big.clone(), false);
    assert!(matches!(err, Err(WalError::StorageFull(_))), "{err:?}");
    faults.disk_full.store(false, Ordering::SeqCst);

    let second = wal.append_entry("k", None, Bytes::from("two"), true)?;
    // The half-written record was cut off, and its offsets are not used
    // again (a reader may have seen its bytes): the key goes on in its
    // next segment.
    assert_eq!(
        (second.sequence_number, second.offset),
        (first.sequence_number + 1, 0),
        "{first} then {second}"
    );
    let got: Vec<Bytes> = wal.enumerate_records("k")?.collect();
    assert_eq!(got, vec![Bytes::from("one"), Bytes::from("two")]);
    drop(wal);
    let wal = Wal::builder(dir.path()).open()?;
    assert!(
        wal.recovery_report().torn_tails.is_empty(),
        "nothing torn was left on disk"
    );
    assert_eq!(wal.enumerate_records("k")?.count(), 2);
    Ok(())
}

#[test]
fn a_failed_fsync_blocks_writers_for_the_rest_of_the_boot() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage.clone()).open()?;
    wal.append_entry("k", None, Bytes::from("before"), true)?;
    faults.fail_sync.store(true, Ordering::SeqCst);
    assert!(matches!(
        wal.append_entry("k", None, Bytes::from("x"), true),
        Err(WalError::Poisoned(_))
    ));
    faults.fail_sync.store(false, Ordering::SeqCst);
    drop(wal);

    // Same boot: the page cache may hold bytes the disk lost, so no writer.
    let marker = dir.path().join(nano_wal::FSYNC_FAILED_FILE_NAME);
    assert!(marker.exists(), "the failure is recorded in the directory");
    let reopened = Wal::builder(dir.path()).open();
    assert!(
        matches!(&reopened, Err(WalError::Poisoned(cause)) if cause.contains("Restart the machine")),
        "{reopened:?}"
    );
    // Readers may still look.
    let reader = Wal::builder(dir.path()).read_only(true).open()?;
    assert_eq!(
        reader.enumerate_records("k")?.next().as_deref(),
        Some(&b"before"[..])
    );
    drop(reader);

    // A note from another boot is stale: it is removed and writing resumes.
    std::fs::write(&marker, "some-earlier-boot\nsegment x: sync failed\n")?;
    let wal = Wal::builder(dir.path()).open()?;
    assert!(!marker.exists(), "a note from an earlier boot is removed");
    wal.append_entry("k", None, Bytes::from("after reboot"), true)?;
    Ok(())
}

#[test]
fn a_poisoned_writer_names_its_first_failure_once_with_the_io_error_as_source()
-> Result<(), WalError> {
    use std::error::Error as _;
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    wal.append_entry("k", None, Bytes::from("before"), true)?;
    faults.fail_sync.store(true, Ordering::SeqCst);
    let first = wal.append_entry("k", None, Bytes::from("x"), true);
    faults.fail_sync.store(false, Ordering::SeqCst);
    let second = wal.append_entry("k", None, Bytes::from("y"), false);
    for err in [first, second] {
        let Err(err @ WalError::Poisoned(_)) = err else {
            panic!("expected Poisoned, got {err:?}")
        };
        let text = err.to_string();
        assert_eq!(text.matches("poisoned").count(), 1, "{text}");
        assert!(text.contains("injected EIO on fsync"), "{text}");
        // The chain reaches the operating system's error.
        let mut source = err.source();
        let mut found = false;
        while let Some(s) = source {
            found |= s
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.to_string() == "injected EIO on fsync");
            source = s.source();
        }
        assert!(found, "no io::Error in the chain of {err:?}");
    }
    Ok(())
}
