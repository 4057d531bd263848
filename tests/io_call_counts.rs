//! I/O economy: two `write` calls per record, one to the journal and one to
//! its segment (0.5 made four or five); a batch makes one journal write and
//! one per key and segment; no directory listing after open (0.5 listed the
//! directory on every `read_entry_at`).

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
    assert_eq!(faults.writes.load(Ordering::SeqCst) - before, 2 * 10);

    let before = faults.writes.load(Ordering::SeqCst);
    wal.append_batch(
        (0..500).map(|i| ("k", None, Bytes::from(format!("b{i}")))),
        false,
    )?;
    assert_eq!(
        faults.writes.load(Ordering::SeqCst) - before,
        2,
        "one journal frame; one key, one segment, one write"
    );

    let before = faults.writes.load(Ordering::SeqCst);
    let batch = (0..300).map(|i| (format!("k{}", i % 3), None, Bytes::from("x")));
    wal.append_batch(batch, false)?;
    // One journal frame; three new keys: a header write and a records
    // write each.
    assert_eq!(faults.writes.load(Ordering::SeqCst) - before, 1 + 6);
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

/// Read calls and bytes requested by one `read_entry_at`.
fn point_read_cost(
    wal: &Wal,
    faults: &common::Faults,
    r: nano_wal::EntryRef,
    want: &Bytes,
) -> Result<(u64, u64), WalError> {
    let (calls, bytes) = (
        faults.reads.load(Ordering::SeqCst),
        faults.read_bytes.load(Ordering::SeqCst),
    );
    assert_eq!(&wal.read_entry_at(r)?, want);
    Ok((
        faults.reads.load(Ordering::SeqCst) - calls,
        faults.read_bytes.load(Ordering::SeqCst) - bytes,
    ))
}

#[test]
fn a_point_read_fetches_about_the_record_in_one_call() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    {
        let wal = Wal::builder(dir.path()).open()?;
        for size in [100usize, 100, 100, 5000, 5000, 100_000, 100, 100] {
            wal.append_entry("k", None, Bytes::from(vec![b'x'; size]), false)?;
        }
    }
    // Reopened: the handle has seen no record of these segments yet.
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let refs: Vec<(nano_wal::EntryRef, Bytes)> = wal
        .records("k")?
        .map(|r| r.map(|r| (r.entry_ref, r.content)))
        .collect::<Result<_, _>>()?;
    let cost = |i: usize| point_read_cost(&wal, &faults, refs[i].0, &refs[i].1);
    let first = cost(0)?;
    assert_eq!(first.0, 1, "a small record: one call");
    let second = cost(1)?;
    assert_eq!(second.0, 1);
    assert!(
        second.1 < 256 && second.1 <= first.1,
        "after one read of a 100-byte record, the next asks for about its size: {second:?}"
    );
    assert_eq!(
        cost(3)?.0,
        2,
        "a record larger than the last one: two calls"
    );
    assert_eq!(cost(4)?.0, 1, "then records of its size take one");
    let huge = cost(5)?;
    assert_eq!(huge.0, 2, "a record over the largest first read: two calls");
    assert!(huge.1 >= 100_000 && huge.1 < 100_000 + 64 * 1024 + 128);
    // After the big records, a small one is still read whole and exactly.
    assert_eq!(cost(6)?.0, 1);
    assert!(cost(7)?.1 < 256);
    Ok(())
}
