//! A segment file that retention could not remove (its removal is in the
//! journal, the unlink failed) is reported, gone from the key at once,
//! removed by the next checkpoint if it can be, and never makes the
//! directory fail to open: a manifest is marked clean only when it lists
//! every segment file left on disk.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::storage::Storage;
use nano_wal::{ManualClock, Wal, WalError};

const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1000;

fn open(dir: &Path, clock: &Arc<ManualClock>, storage: Arc<dyn Storage>) -> Result<Wal, WalError> {
    Wal::builder(dir)
        .storage(storage)
        .clock(clock.clone())
        .retention(Duration::from_secs(100))
        .segments_per_retention_period(10)
        .open()
}

fn segment_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    Ok(names)
}

/// What [`expire_with_failed_unlink`] leaves for the next open.
struct Closed {
    clock: Arc<ManualClock>,
    faults: Arc<common::Faults>,
    storage: Arc<dyn Storage>,
}

/// An old record in one segment, a new one in the next; then the old
/// segment expires and `compact()` fails to unlink it.
fn expire_with_failed_unlink(dir: &Path) -> Result<Closed, WalError> {
    let clock = Arc::new(ManualClock::new(T0));
    let (storage, faults) = common::FaultyStorage::create();
    let wal = open(dir, &clock, storage.clone())?;
    let old = wal.append_entry("k", None, Bytes::from("old"), true)?;
    clock.advance_ms(150 * SECOND);
    wal.append_entry("k", None, Bytes::from("new"), true)?;
    assert_eq!(segment_files(dir)?.len(), 2);

    faults.fail_segment_removal.store(true, Ordering::SeqCst);
    let err = wal.compact();
    assert!(matches!(err, Err(WalError::Io(_))), "{err:?}");
    assert!(
        matches!(wal.read_entry_at(old), Err(WalError::EntryNotFound(_))),
        "the expired record is gone from the key at once"
    );
    assert_eq!(segment_files(dir)?.len(), 2, "the unlink failed");
    wal.close()?;
    Ok(Closed {
        clock,
        faults,
        storage,
    })
}

#[test]
fn a_leftover_never_blocks_the_next_open_and_is_removed_there() -> Result<(), WalError> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let Closed {
        clock,
        faults,
        storage,
    } = expire_with_failed_unlink(&dir)?;
    // The close could not remove it either: its manifest is not clean, so
    // the next open (with unlinks working again) removes it as a stray.
    faults.fail_segment_removal.store(false, Ordering::SeqCst);
    let wal = open(&dir, &clock, storage)?;
    assert_eq!(segment_files(&dir)?.len(), 1, "the leftover was removed");
    let got: Vec<Bytes> = wal.enumerate_records("k")?.collect();
    assert_eq!(got, vec![Bytes::from("new")]);
    Ok(())
}

#[test]
fn the_next_checkpoint_removes_a_leftover_when_it_can() -> Result<(), WalError> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let clock = Arc::new(ManualClock::new(T0));
    let (storage, faults) = common::FaultyStorage::create();
    let wal = open(&dir, &clock, storage.clone())?;
    wal.append_entry("k", None, Bytes::from("old"), true)?;
    clock.advance_ms(150 * SECOND);
    wal.append_entry("k", None, Bytes::from("new"), true)?;
    faults.fail_segment_removal.store(true, Ordering::SeqCst);
    assert!(wal.compact().is_err());
    faults.fail_segment_removal.store(false, Ordering::SeqCst);
    // close() checkpoints: the unlink works now, so the manifest is clean
    // and the next open reads it alone.
    wal.close()?;
    assert_eq!(segment_files(&dir)?.len(), 1);
    let wal = open(&dir, &clock, storage)?;
    assert_eq!(wal.recovery_report().replayed_frames, 0);
    let got: Vec<Bytes> = wal.enumerate_records("k")?.collect();
    assert_eq!(got, vec![Bytes::from("new")]);
    Ok(())
}
