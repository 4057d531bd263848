//! A non-durable append has reached the operating system when it returns, so
//! it survives the process dying without running any destructor or flush
//! (0.5 called `File::flush`, a no-op, and had no crash test at all).

use std::process::Command;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

const DIR_ENV: &str = "NANO_WAL_CRASH_TEST_DIR";
const RECORDS: usize = 2_000;

/// Runs only as the child of `non_durable_appends_survive_abort`.
#[test]
#[ignore = "helper process for non_durable_appends_survive_abort"]
fn child_appends_then_aborts() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let wal = Wal::builder(&dir).open().expect("child open");
    for i in 0..RECORDS {
        let r = wal
            .append_entry(
                format!("key{}", i % 10),
                None,
                Bytes::from(format!("record {i}")),
                false,
            )
            .expect("append");
        // The parent reads acknowledged references from stdout.
        println!("ACK {r} {i}");
    }
    // Die at once: no destructors, no flush, no unlock.
    std::process::abort();
}

#[test]
fn non_durable_appends_survive_abort() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_appends_then_aborts",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir.path())
        .output()?;
    assert!(!out.status.success(), "the child aborted");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acks: Vec<(EntryRef, usize)> = stdout
        .lines()
        .filter_map(|l| l.find("ACK ").map(|at| &l[at + 4..]))
        .filter_map(|l| {
            let (r, i) = l.split_once(' ')?;
            Some((r.parse().ok()?, i.parse().ok()?))
        })
        .collect();
    assert_eq!(
        acks.len(),
        RECORDS,
        "the child acknowledged every record before aborting"
    );

    let wal = Wal::builder(dir.path()).open()?;
    for (r, i) in &acks {
        assert_eq!(wal.read_entry_at(*r)?, format!("record {i}"));
    }
    for k in 0..10 {
        assert_eq!(
            wal.enumerate_records(format!("key{k}"))?.count(),
            RECORDS / 10
        );
    }
    Ok(())
}
