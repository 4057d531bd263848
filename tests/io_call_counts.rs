//! I/O economy: one `write` call per record (0.5 made four or five), one per
//! key and segment for a batch, and no directory listing after open (0.5
//! listed the directory on every `read_entry_at`).

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

#[test]
fn one_write_call_per_record_and_per_batch_segment() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    wal.append_entry("k", Some(Bytes::from("h")), Bytes::from("first"), false)?;
    let before = faults.writes.load(Ordering::SeqCst);
    for i in 0..10 {
        wal.append_entry(
            "k",
            Some(Bytes::from("hdr")),
            Bytes::from(format!("c{i}")),
            false,
        )?;
    }
    assert_eq!(faults.writes.load(Ordering::SeqCst) - before, 10);

    let before = faults.writes.load(Ordering::SeqCst);
    wal.append_batch(
        (0..500).map(|i| ("k", None, Bytes::from(format!("b{i}")))),
        false,
    )?;
    assert_eq!(
        faults.writes.load(Ordering::SeqCst) - before,
        1,
        "one key, one segment, one write"
    );

    let before = faults.writes.load(Ordering::SeqCst);
    let batch = (0..300).map(|i| (format!("k{}", i % 3), None, Bytes::from("x")));
    wal.append_batch(batch, false)?;
    // Three new keys: a header write and a records write each.
    assert_eq!(faults.writes.load(Ordering::SeqCst) - before, 6);
    assert_eq!(wal.enumerate_records("k")?.count(), 511);
    Ok(())
}

#[test]
fn reads_never_list_the_directory() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    {
        let wal = Wal::builder(dir.path()).open()?;
        for k in 0..200 {
            wal.append_entry(format!("key{k}"), None, Bytes::from(format!("v{k}")), false)?;
        }
    }
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    assert_eq!(
        faults.dir_lists.load(Ordering::SeqCst),
        1,
        "open lists the directory once"
    );
    for k in 0..200u64 {
        let key = format!("key{k}");
        let r = wal
            .records(key.as_str())?
            .next()
            .transpose()?
            .ok_or(WalError::Closed)?;
        assert_eq!(wal.read_entry_at(r.entry_ref)?, format!("v{k}"));
    }
    let _keys: Vec<String> = wal.enumerate_keys()?.collect();
    wal.append_entry("key1", None, Bytes::from("more"), true)?;
    wal.compact()?;
    assert_eq!(
        faults.dir_lists.load(Ordering::SeqCst),
        1,
        "nothing after open lists it again"
    );
    Ok(())
}
