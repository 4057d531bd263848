//! A second open of a directory this process has open returns a handle to
//! the same log (as nano-wal 0.5 allowed): both write, both see
//! everything, subscriptions on one are woken by appends on the other, and
//! the log closes with its last handle.

use std::time::Duration;

use bytes::Bytes;
use nano_wal::{Wal, WalOptions};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn two_opens_share_one_log() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let a = Wal::builder(&dir).open()?;
    // The same directory, spelled another way.
    let b = Wal::new(
        dir.join(".").to_str().ok_or("UTF-8")?,
        WalOptions::default(),
    )?;
    assert!(!a.is_read_only() && !b.is_read_only());
    let mut sub = b.subscribe("k", None)?;
    let r1 = a.append_entry("k", None, Bytes::from("from a"), true)?;
    let r2 = b.append_entry("k", None, Bytes::from("from b"), false)?;
    assert_eq!(b.read_entry_at(r1)?, "from a");
    assert_eq!(a.read_entry_at(r2)?, "from b");
    let seen: Vec<Bytes> = (0..2)
        .map(|_| sub.next_timeout(Duration::from_secs(5)))
        .map(|r| r.map(|r| r.map(|r| r.content)))
        .collect::<Result<Option<_>, _>>()?
        .ok_or("a record did not come")?;
    assert_eq!(seen, ["from a", "from b"]);
    // Closing one handle leaves the other working.
    a.close()?;
    let r3 = b.append_entry("k", None, Bytes::from("after a closed"), true)?;
    assert_eq!(b.read_entry_at(r3)?, "after a closed");
    b.close()?;
    // The last close was clean: reopening reads the manifest alone.
    let c = Wal::builder(&dir).open()?;
    assert_eq!(c.recovery_report().replayed_frames, 0);
    let all: Vec<Bytes> = c.enumerate_records("k")?.collect();
    assert_eq!(all, ["from a", "from b", "after a closed"]);
    Ok(())
}

/// nano-wal 0.5's own `test_wal_options_builder_methods`, as it is: it
/// opens the directory a second time while the first handle is alive and
/// shuts the second down.
#[test]
fn nano_wal_0_5_test_wal_options_builder_methods() {
    let temp_dir = tempfile::TempDir::new().expect("tempdir");
    let wal_dir = temp_dir.path().to_str().expect("UTF-8");

    let options = WalOptions::with_retention(Duration::from_secs(3600));
    assert_eq!(options.entry_retention, Duration::from_secs(3600));
    assert_eq!(options.segments_per_retention_period, 10);

    let wal = Wal::new(wal_dir, options).expect("first open");
    assert_eq!(wal.active_segment_count(), 0);

    let options = WalOptions::with_segments_per_retention_period(20);
    assert_eq!(options.segments_per_retention_period, 20);
    assert_eq!(
        options.entry_retention,
        Duration::from_secs(60 * 60 * 24 * 7)
    );

    #[expect(
        unused_mut,
        reason = "0.5's shutdown took &mut self; the test is kept as written"
    )]
    let mut wal2 = Wal::new(wal_dir, options).expect("second open");
    wal2.shutdown().expect("shutdown of the shared log");
    drop(wal);
}
