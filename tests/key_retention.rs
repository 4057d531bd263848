//! Retention per key prefix: a key kept forever survives `compact()` long
//! after the WAL's retention; size and count bounds remove the oldest whole
//! segments and keep at least the newest bytes or records; the longest
//! matching prefix applies; bad settings are refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{KeyRetention, ManualClock, Wal, WalError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const HOUR_MS: u64 = 3_600_000;

fn count(wal: &Wal, key: &str) -> Result<usize, WalError> {
    Ok(wal.enumerate_records(key)?.count())
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Result<Wal, WalError> {
    Wal::builder(dir)
        .clock(clock)
        .retention(Duration::from_secs(3600))
        .max_segment_bytes(4096)
        .key_retention("raft/", KeyRetention::Forever)
        .key_retention("raft/tmp/", KeyRetention::Age(Duration::from_secs(60)))
        .key_retention("bytes/", KeyRetention::MaxBytes(5_000))
        .key_retention("count/", KeyRetention::MaxRecords(7))
        .open()
}

/// The length of the `i`-th record `fill` appends.
fn len_of(i: usize) -> usize {
    500 + i % 7
}

fn fill(wal: &Wal, key: &str, n: usize) -> Result<(), WalError> {
    for i in 0..n {
        wal.append_entry(key, None, Bytes::from(vec![b'x'; len_of(i)]), false)?;
    }
    Ok(())
}

#[test]
fn each_prefix_keeps_what_its_retention_says() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let wal = open(tmp.path(), clock.clone())?;
    for key in ["raft/g1/log", "raft/tmp/x", "plain", "bytes/a", "count/a"] {
        fill(&wal, key, 40)?;
    }
    clock.advance_ms(10 * HOUR_MS);
    wal.compact()?;
    assert_eq!(count(&wal, "raft/g1/log")?, 40, "kept forever");
    // Both by age: everything expired, only the (empty) successor is left.
    assert_eq!(count(&wal, "raft/tmp/x")?, 0, "the longest prefix applies");
    assert_eq!(count(&wal, "plain")?, 0, "the WAL's retention");
    let bytes_left = wal
        .records("bytes/a")?
        .map(|r| r.map(|r| r.content.len() + 24))
        .sum::<Result<usize, WalError>>()?;
    assert!(
        (5_000..5_000 + 4096).contains(&bytes_left),
        "the newest 5,000 bytes and at most one segment more are kept: {bytes_left}"
    );
    let n = count(&wal, "count/a")?;
    assert!(
        (7..7 + 8).contains(&n),
        "the newest 7 records and at most one segment more: {n}"
    );
    let newest: Vec<Bytes> = wal.enumerate_records("count/a")?.collect();
    let lens: Vec<usize> = newest.iter().map(Bytes::len).collect();
    let want: Vec<usize> = (40 - n..40).map(len_of).collect();
    assert_eq!(lens, want, "the newest stay, in order");
    // The counts hold after reopening (nothing comes back).
    drop(wal);
    let wal = open(tmp.path(), clock)?;
    assert_eq!(count(&wal, "raft/g1/log")?, 40);
    assert_eq!(count(&wal, "count/a")?, n);
    Ok(())
}

#[test]
fn a_sub_second_age_is_refused() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let r = Wal::builder(tmp.path())
        .key_retention("k", KeyRetention::Age(Duration::from_millis(10)))
        .open();
    assert!(matches!(r, Err(WalError::InvalidConfig(_))));
}
