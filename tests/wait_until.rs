//! `Wal::wait_until`: waiting for records on several keys at once, woken
//! by an append from another thread, timing out when nothing comes, and
//! following another process's appends on a read-only handle.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nano_wal::{Wal, WalError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn an_append_on_any_key_wakes_the_waiter() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    let mut a = wal.subscribe("a", None)?;
    let mut b = wal.subscribe("b", None)?;
    let started = Instant::now();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            wal.append_entry("b", None, Bytes::from("late"), false)
        });
        wal.wait_until(Duration::from_secs(60), || match a.try_next()? {
            Some(record) => Ok(Some(record)),
            None => b.try_next(),
        })
    })?;
    assert_eq!(got.map(|r| r.content), Some(Bytes::from("late")));
    // Woken by the append, not found by a last poll at the timeout.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn nothing_appended_times_out_and_a_closed_handle_ends_the_wait() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    let mut polls = 0;
    let got: Option<()> = wal.wait_until(Duration::from_millis(30), || {
        polls += 1;
        Ok(None)
    })?;
    assert!(got.is_none());
    assert!(polls >= 1);
    let err: Result<Option<()>, _> = wal.wait_until(Duration::from_millis(30), || {
        Err(WalError::InvalidConfig("from poll".into()))
    });
    assert!(
        matches!(err, Err(WalError::InvalidConfig(_))),
        "poll's error is returned"
    );
    wal.shutdown()?;
    let err = wal.wait_until(Duration::from_secs(30), || Ok(Some(())));
    assert!(matches!(err, Err(WalError::Closed)), "{err:?}");
    Ok(())
}

#[test]
fn a_read_only_handle_sees_records_the_writer_appends_while_it_waits() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let writer = Wal::builder(tmp.path()).open()?;
    writer.append_entry("k", None, Bytes::from("first"), true)?;
    let reader = Wal::builder(tmp.path()).read_only(true).open()?;
    let mut sub = reader.subscribe("k", None)?;
    assert_eq!(
        sub.try_next()?.map(|r| r.content),
        Some(Bytes::from("first"))
    );
    let started = Instant::now();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(150));
            writer.append_entry("k", None, Bytes::from("second"), true)
        });
        reader.wait_until(Duration::from_secs(60), || sub.try_next())
    })?;
    assert_eq!(got.map(|r| r.content), Some(Bytes::from("second")));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
