//! `shutdown()` removes the WAL directory and its data, as nano-wal 0.5
//! documents, and afterwards every use of the handle fails with
//! `WalError::Closed`; `close()` and dropping keep the data, which reopens
//! intact.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError, WalOptions};

fn wal_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    (tmp, dir)
}

fn assert_closed<T: std::fmt::Debug>(r: Result<T, WalError>, what: &str) {
    match r {
        Err(WalError::Closed) => {}
        other => panic!("{what}: expected WalError::Closed, got {other:?}"),
    }
}

type Written = Vec<(&'static str, Option<Bytes>, Bytes, EntryRef)>;

/// A few keys, headers or not, durable or not.
fn write_sample(wal: &Wal) -> Written {
    let spec: [(&'static str, Option<&'static str>, &'static str, bool); 6] = [
        ("orders", Some("v=1"), "order 1 created", true),
        ("orders", None, "order 1 paid", false),
        ("users", Some(""), "user 7 joined", false),
        ("orders", Some("v=2"), "order 2 created", false),
        ("users", None, "user 7 renamed", true),
        ("audit", None, "", false),
    ];
    spec.into_iter()
        .map(|(key, header, content, durable)| {
            let header = header.map(|h| Bytes::from_static(h.as_bytes()));
            let content = Bytes::from_static(content.as_bytes());
            let r = wal
                .append_entry(key, header.clone(), content.clone(), durable)
                .expect("append");
            (key, header, content, r)
        })
        .collect()
}

fn assert_intact(wal: &Wal, written: &Written) {
    for (key, header, content, r) in written {
        let rec = wal.read_record_at(*r).expect("ref resolves after reopen");
        assert_eq!(&rec.content, content, "{key} at {r}");
        assert_eq!(&rec.header, header, "{key} at {r}");
    }
    for key in ["orders", "users", "audit"] {
        let expected: Vec<Bytes> = written
            .iter()
            .filter(|w| w.0 == key)
            .map(|w| w.2.clone())
            .collect();
        let got: Vec<Bytes> = wal.enumerate_records(key).expect("enumerate").collect();
        assert_eq!(got, expected, "records of {key}");
    }
    let keys: Vec<String> = wal.enumerate_keys().expect("keys").collect();
    assert_eq!(keys, vec!["audit", "orders", "users"]);
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

#[test]
fn shutdown_removes_the_directory_and_closes_the_handle() {
    let (tmp, dir) = wal_dir();
    // A neighbour of the WAL directory must survive the shutdown.
    let neighbour = tmp.path().join("neighbour.txt");
    std::fs::write(&neighbour, "not the WAL's").expect("write neighbour");

    let wal = Wal::builder(&dir).open().expect("open");
    let written = write_sample(&wal);
    assert!(segment_count(&dir) >= 3);
    wal.shutdown().expect("shutdown");

    assert!(!dir.exists(), "shutdown must remove the WAL directory");
    assert!(tmp.path().exists(), "shutdown must not remove the parent");
    assert_eq!(
        std::fs::read_to_string(&neighbour).expect("neighbour survives"),
        "not the WAL's"
    );

    // Every later use of the handle reports Closed.
    let r = written[0].3;
    assert_closed(
        wal.append_entry("orders", None, Bytes::from_static(b"x"), false),
        "append_entry",
    );
    assert_closed(
        wal.log_entry("new-key", None, Bytes::from_static(b"x")),
        "log_entry",
    );
    assert_closed(
        wal.append_batch([("orders", None, Bytes::from_static(b"x"))], true),
        "append_batch",
    );
    assert_closed(wal.read_entry_at(r), "read_entry_at");
    assert_closed(wal.read_record_at(r), "read_record_at");
    assert_closed(wal.records("orders"), "records");
    assert_closed(wal.records_from(r), "records_from");
    assert_closed(wal.enumerate_records("orders"), "enumerate_records");
    assert_closed(wal.enumerate_keys(), "enumerate_keys");
    assert_closed(wal.compact(), "compact");
    assert_closed(wal.sync(), "sync");
    assert_closed(wal.shutdown(), "second shutdown");
    // None of that brought the directory back.
    assert!(!dir.exists(), "a closed handle recreated the directory");
    drop(wal);
    assert!(
        !dir.exists(),
        "dropping a shut-down handle recreated the directory"
    );

    // The path is free for a brand-new, empty WAL.
    let fresh = Wal::builder(&dir).open().expect("open after shutdown");
    assert!(!fresh.is_read_only(), "shutdown released the lock");
    assert_eq!(fresh.enumerate_keys().expect("keys").count(), 0);
    assert!(matches!(
        fresh.read_entry_at(r),
        Err(WalError::EntryNotFound(_))
    ));
}

#[test]
fn shutdown_through_the_0_5_constructor_also_removes_everything() {
    let (_tmp, dir) = wal_dir();
    let path = dir.to_str().expect("UTF-8 path");
    let wal = Wal::new(path, WalOptions::default()).expect("Wal::new");
    write_sample(&wal);
    wal.shutdown().expect("shutdown");
    assert!(!dir.exists());
    let again = Wal::new(path, WalOptions::default()).expect("reopen");
    assert!(!again.is_read_only());
    assert_eq!(again.enumerate_keys().expect("keys").count(), 0);
}

#[test]
fn close_keeps_the_data_and_it_reopens_intact() {
    let (_tmp, dir) = wal_dir();
    let wal = Wal::builder(&dir).open().expect("open");
    let written = write_sample(&wal);
    let segments = segment_count(&dir);
    wal.close().expect("close");

    assert!(dir.exists(), "close must keep the directory");
    assert_eq!(
        segment_count(&dir),
        segments,
        "close must keep every segment"
    );

    let wal = Wal::builder(&dir).open().expect("reopen after close");
    assert!(!wal.is_read_only(), "close released the lock");
    assert!(wal.recovery_report().torn_tails.is_empty());
    assert_intact(&wal, &written);
    // The reopened log continues where it left off.
    let more = wal
        .append_entry("orders", None, Bytes::from_static(b"order 2 paid"), true)
        .expect("append after reopen");
    let last_order = written
        .iter()
        .rev()
        .find(|w| w.0 == "orders")
        .expect("an order");
    assert!(
        (more.sequence_number, more.offset) > (last_order.3.sequence_number, last_order.3.offset),
        "new record {more} must come after {}",
        last_order.3
    );
    assert_eq!(
        wal.enumerate_records("orders").expect("enumerate").last(),
        Some(Bytes::from("order 2 paid"))
    );
}

#[test]
fn drop_keeps_the_data_and_it_reopens_intact() {
    let (_tmp, dir) = wal_dir();
    let wal = Wal::builder(&dir).open().expect("open");
    let written = write_sample(&wal);
    drop(wal);
    assert!(dir.exists(), "drop must keep the directory");
    let wal = Wal::builder(&dir).open().expect("reopen after drop");
    assert!(!wal.is_read_only(), "drop released the lock");
    assert_intact(&wal, &written);
    // And once more, through close this time.
    wal.close().expect("close");
    let wal = Wal::builder(&dir).open().expect("reopen again");
    assert_intact(&wal, &written);
}
