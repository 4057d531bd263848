//! `subscribe`: a key's records from a position, then live ones as they
//! are appended, every record once and in order (across segment
//! rotation, with appends racing the catch-up); a timeout when nothing
//! comes; the end of the iterator when the handle closes; a clear error
//! when retention or a purge removed records it had not read; and a
//! read-only handle in another process following the writer.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(10);

fn open(dir: &std::path::Path) -> Result<Wal, WalError> {
    // Small segments: the live part crosses many rotations.
    Wal::builder(dir).max_segment_bytes(4096).open()
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("{i:>5}{}", ".".repeat(i % 300)))
}

#[test]
fn catch_up_then_live_every_record_once_in_order() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Arc::new(open(tmp.path())?);
    let mut refs: Vec<EntryRef> = (0..50)
        .map(|i| wal.append_entry("k", None, value(i), false))
        .collect::<Result<_, _>>()?;
    let mut sub = wal.subscribe("k", None)?;
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || -> Result<Vec<EntryRef>, WalError> {
            let mut out = Vec::new();
            for i in 50..1000 {
                out.push(wal.append_entry("k", None, value(i), i % 97 == 0)?);
                wal.append_entry("other", None, value(i), false)?;
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Ok(out)
        })
    };
    let mut got = Vec::new();
    while got.len() < 1000 {
        let r = sub.next_timeout(WAIT)?.ok_or("no record within the wait")?;
        got.push(r);
    }
    refs.extend(writer.join().map_err(|_| "writer panicked")??);
    let got_refs: Vec<EntryRef> = got.iter().map(|r| r.entry_ref).collect();
    assert_eq!(got_refs, refs, "every record once, in order");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.content, value(i));
    }
    assert!(
        refs.last().map(|r| r.sequence_number) > refs.first().map(|r| r.sequence_number),
        "the records crossed segments"
    );
    assert!(sub.try_next()?.is_none(), "nothing more");
    Ok(())
}

#[test]
fn from_a_reference_after_one_and_a_timeout() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = open(tmp.path())?;
    let refs: Vec<EntryRef> = (0..5)
        .map(|i| wal.append_entry("k", None, value(i), false))
        .collect::<Result<_, _>>()?;
    let mut from = wal.subscribe("k", Some(refs[2]))?;
    assert_eq!(from.next_timeout(WAIT)?.map(|r| r.entry_ref), Some(refs[2]));
    let mut after = wal.subscribe_after("k", refs[2])?;
    assert_eq!(
        after.next_timeout(WAIT)?.map(|r| r.entry_ref),
        Some(refs[3])
    );
    let mut empty = wal.subscribe("nothing-yet", None)?;
    let start = Instant::now();
    assert!(empty.next_timeout(Duration::from_millis(50))?.is_none());
    assert!(start.elapsed() >= Duration::from_millis(50), "it waited");
    let r = wal.append_entry("nothing-yet", None, value(1), false)?;
    assert_eq!(empty.next_timeout(WAIT)?.map(|r| r.entry_ref), Some(r));
    assert!(matches!(
        wal.subscribe("other-key", Some(refs[0])),
        Err(WalError::EntryNotFound(_))
    ));
    Ok(())
}

#[test]
fn a_blocked_iterator_ends_when_the_handle_closes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = open(tmp.path())?;
    let sub = wal.subscribe("k", None)?;
    let reader = std::thread::spawn(move || sub.count());
    std::thread::sleep(Duration::from_millis(50));
    wal.close()?;
    assert_eq!(reader.join().map_err(|_| "reader panicked")?, 0);
    Ok(())
}

#[test]
fn records_removed_before_they_were_read_are_an_error_not_a_skip() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = open(tmp.path())?;
    let refs: Vec<EntryRef> = (0..40)
        .map(|i| wal.append_entry("k", None, value(i + 200), false))
        .collect::<Result<_, _>>()?;
    let mut sub = wal.subscribe("k", None)?;
    assert_eq!(sub.next_timeout(WAIT)?.map(|r| r.entry_ref), Some(refs[0]));
    wal.purge_before(refs[30])?;
    assert!(matches!(
        sub.next_timeout(WAIT),
        Err(WalError::PositionRemoved(_))
    ));
    // A subscription from the start of what is left reads it all.
    let left: Vec<EntryRef> = wal
        .subscribe("k", None)?
        .take(10)
        .map(|r| r.map(|r| r.entry_ref))
        .collect::<Result<_, _>>()?;
    assert_eq!(left, refs[30..]);
    Ok(())
}

const DIR_ENV: &str = "NANO_WAL_SUBSCRIBE_DIR";

/// The child: appends to a directory another process follows read-only.
#[test]
#[ignore = "helper process for a_read_only_handle_in_another_process_follows_the_writer"]
fn child_appends_slowly() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let wal = open(std::path::Path::new(&dir)).expect("child open");
    for i in 0..200 {
        wal.append_entry("k", None, value(i), false)
            .expect("child append");
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    wal.close().expect("child close");
}

#[test]
fn a_read_only_handle_in_another_process_follows_the_writer() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // Created first, so the reader opens an existing directory.
    open(tmp.path())?.close()?;
    let reader = Wal::builder(tmp.path()).read_only(true).open()?;
    let mut sub = reader
        .subscribe("k", None)?
        .poll_interval(Duration::from_millis(10));
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_appends_slowly",
            "--ignored",
            "--test-threads=1",
        ])
        .env(DIR_ENV, tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut got = Vec::new();
    while got.len() < 200 {
        match sub.next_timeout(WAIT)? {
            Some(r) => got.push(r.content),
            None => break,
        }
    }
    assert!(child.wait()?.success(), "the writer process succeeded");
    let want: Vec<Bytes> = (0..200).map(value).collect();
    assert_eq!(
        got, want,
        "every record once, in order, from the other process"
    );
    Ok(())
}
