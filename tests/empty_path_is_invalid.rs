//! An empty path is not a directory: `Wal::new("")`, `Wal::builder("")` and
//! the inspection entry points fail with `InvalidConfig` before anything is
//! created (the lock file would otherwise land in the current directory).
//!
//! This file holds a single test: it changes the process's current
//! directory.

use nano_wal::inspect::{Inspector, Verifier};
use nano_wal::{Wal, WalError, WalOptions};

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, WalError>, what: &str) {
    match r {
        Err(WalError::InvalidConfig(_)) => {}
        other => panic!("{what}: expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn an_empty_path_is_invalid_and_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::env::set_current_dir(tmp.path()).expect("chdir");

    assert_invalid(Wal::new("", WalOptions::default()), "Wal::new");
    assert_invalid(Wal::builder("").open(), "builder");
    assert_invalid(Wal::builder("").read_only(true).open(), "read-only");
    assert_invalid(Inspector::open(""), "inspector");
    assert_invalid(Verifier::new("", None), "verifier");
    assert_invalid(nano_wal::inspect::compact(Wal::builder("")), "compact");

    let created: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        created.is_empty(),
        "created in the current directory: {created:?}"
    );
}
