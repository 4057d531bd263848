//! The nano-wal 0.5 API, used exactly as its crate page shows, behaves as
//! documented: appends, references, enumeration, compaction and shutdown.

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError, WalOptions};
use std::time::Duration;

fn dir() -> (tempfile::TempDir, String) {
    let t = tempfile::tempdir().expect("tempdir");
    let p = t.path().join("wal").to_str().expect("utf-8").to_owned();
    (t, p)
}

#[test]
fn crate_page_quick_start() -> Result<(), Box<dyn std::error::Error>> {
    let (_t, path) = dir();
    #[expect(unused_mut, reason = "0.5 programs declare the Wal mutable")]
    let mut wal = Wal::new(&path, WalOptions::default())?;
    let entry_ref = wal.append_entry("my_key", None, Bytes::from("Hello, World!"), false)?;
    let header = Some(Bytes::from("metadata:version=1"));
    let header_ref =
        wal.append_entry("my_key", header, Bytes::from("Data with metadata"), false)?;
    let durable_ref = wal.log_entry("important_key", None, Bytes::from("Important data"))?;
    assert_eq!(wal.read_entry_at(entry_ref)?, Bytes::from("Hello, World!"));
    assert_eq!(
        wal.read_entry_at(header_ref)?,
        Bytes::from("Data with metadata")
    );
    assert_eq!(
        wal.read_entry_at(durable_ref)?,
        Bytes::from("Important data")
    );
    let records: Vec<Bytes> = wal.enumerate_records("my_key")?.collect();
    assert_eq!(
        records,
        vec![
            Bytes::from("Hello, World!"),
            Bytes::from("Data with metadata")
        ]
    );
    let mut keys: Vec<String> = wal.enumerate_keys()?.collect();
    keys.sort();
    assert_eq!(keys, vec!["important_key".to_owned(), "my_key".to_owned()]);
    wal.compact()?;
    assert_eq!(
        wal.enumerate_records("my_key")?.count(),
        2,
        "nothing is expired yet"
    );
    wal.shutdown()?;
    assert!(
        !std::path::Path::new(&path).exists(),
        "shutdown removes the directory"
    );
    Ok(())
}

#[test]
fn entry_refs_and_sequence_numbers() -> Result<(), WalError> {
    let (_t, path) = dir();
    let wal = Wal::new(&path, WalOptions::default())?;
    let a = wal.append_entry("k", None, Bytes::from("a"), false)?;
    let b = wal.append_entry("k", None, Bytes::from("b"), false)?;
    assert_eq!(a.sequence_number, 1);
    assert_eq!(a.offset, 0);
    assert_ne!(a.key_hash, 0);
    assert_eq!(a.key_hash, nano_wal::key_hash(b"k"));
    assert!(b.offset > a.offset);
    assert!(a < b, "EntryRef is Ord");
    let mut set = std::collections::HashSet::new();
    set.insert(a);
    assert!(set.contains(&a), "EntryRef is Hash");
    let missing = EntryRef {
        key_hash: a.key_hash,
        sequence_number: 99,
        offset: 0,
    };
    assert!(matches!(
        wal.read_entry_at(missing),
        Err(WalError::EntryNotFound(_))
    ));
    let past_end = EntryRef {
        offset: 1 << 20,
        ..a
    };
    assert!(matches!(
        wal.read_entry_at(past_end),
        Err(WalError::EntryNotFound(_))
    ));
    Ok(())
}

#[test]
fn batches_keep_input_order() -> Result<(), WalError> {
    let (_t, path) = dir();
    let wal = Wal::new(&path, WalOptions::default())?;
    let entries = vec![
        ("key1", None, Bytes::from("data1")),
        ("key2", Some(Bytes::from("meta")), Bytes::from("data2")),
        ("key1", None, Bytes::from("data3")),
    ];
    let refs = wal.append_batch(entries, true)?;
    assert_eq!(refs.len(), 3);
    let got: Vec<Bytes> = refs
        .iter()
        .map(|r| wal.read_entry_at(*r))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        got,
        vec![
            Bytes::from("data1"),
            Bytes::from("data2"),
            Bytes::from("data3")
        ]
    );
    let key1: Vec<Bytes> = wal.enumerate_records("key1")?.collect();
    assert_eq!(key1, vec![Bytes::from("data1"), Bytes::from("data3")]);
    Ok(())
}

#[test]
fn options_and_limits() {
    let o = WalOptions::default();
    assert_eq!(o.entry_retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(o.segments_per_retention_period, 10);
    let literal = WalOptions {
        entry_retention: Duration::from_secs(60),
        segments_per_retention_period: 6,
    };
    assert!(literal.validate().is_ok());
    assert!(
        WalOptions::with_retention(Duration::ZERO)
            .validate()
            .is_err()
    );
    assert!(
        WalOptions::with_segments_per_retention_period(0)
            .validate()
            .is_err()
    );
    let chained = WalOptions::default()
        .retention(Duration::from_secs(5))
        .segments_per_retention_period(2);
    assert_eq!(chained.entry_retention, Duration::from_secs(5));
    assert_eq!(chained.segments_per_retention_period, 2);
    let (_t, path) = dir();
    assert!(matches!(
        Wal::new(&path, WalOptions::with_segments_per_retention_period(0)),
        Err(WalError::InvalidConfig(_))
    ));
    let wal = Wal::new(&path, WalOptions::default()).expect("open");
    let too_big = Bytes::from(vec![0u8; 65_536]);
    assert!(matches!(
        wal.append_entry("k", Some(too_big), Bytes::new(), false),
        Err(WalError::HeaderTooLarge {
            size: 65_536,
            max: 65_535
        })
    ));
    let max = Bytes::from(vec![7u8; 65_535]);
    let r = wal
        .append_entry("k", Some(max.clone()), Bytes::from("c"), false)
        .expect("max header fits");
    assert_eq!(wal.read_record_at(r).expect("read").header, Some(max));
}

#[test]
fn wal_is_send_and_sync_and_methods_take_shared_refs() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
    let (_t, path) = dir();
    let wal = std::sync::Arc::new(Wal::new(&path, WalOptions::default()).expect("open"));
    let w2 = wal.clone();
    let r = std::thread::spawn(move || w2.append_entry("t", None, Bytes::from("x"), true))
        .join()
        .expect("thread")
        .expect("append");
    assert_eq!(wal.read_entry_at(r).expect("read"), Bytes::from("x"));
    wal.sync().expect("sync");
    wal.compact().expect("compact");
    assert_eq!(wal.active_segment_count(), 1);
}
