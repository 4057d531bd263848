//! A batch whose keys interleave (a, b, a, c, a, b, …) and whose records
//! fill several segments of one key returns every record's reference in
//! input order, keeps each key's records in input order, and reads back the
//! same after a reopen, with and without in-memory tails.

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

const PATTERN: [&str; 6] = ["a", "b", "a", "c", "a", "b"];
const RECORDS: usize = 240;

fn content(i: usize) -> Bytes {
    Bytes::from(format!("{i:05}-{}", "z".repeat(60 + (i * 37) % 200)))
}

fn key(i: usize) -> &'static str {
    PATTERN[i % PATTERN.len()]
}

/// Every reference reads its record, and each key holds its records in
/// input order (key b after the record `before` it had).
fn check(wal: &Wal, before: EntryRef, refs: &[EntryRef]) -> Result<(), WalError> {
    assert_eq!(wal.read_entry_at(before)?, Bytes::from_static(b"before"));
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, content(i), "record {i}");
    }
    for k in ["a", "b", "c"] {
        let got: Vec<Bytes> = wal
            .records(k)?
            .map(|r| r.map(|r| r.content))
            .collect::<Result<_, _>>()?;
        let first = (k == "b").then(|| Bytes::from_static(b"before"));
        let want: Vec<Bytes> = first
            .into_iter()
            .chain((0..RECORDS).filter(|&i| key(i) == k).map(content))
            .collect();
        assert_eq!(got, want, "key {k}");
    }
    Ok(())
}

fn run(tails_bytes: u64) -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let open = || {
        Wal::builder(dir.path())
            .max_segment_bytes(4096)
            .max_unapplied_bytes(tails_bytes)
            .open()
    };
    let wal = open()?;
    // Key b has a record before the batch, in its own segment.
    let before = wal.append_entry("b", None, Bytes::from_static(b"before"), false)?;
    let refs = wal.append_batch((0..RECORDS).map(|i| (key(i), None, content(i))), true)?;
    assert_eq!(refs.len(), RECORDS);
    let a_segments: std::collections::BTreeSet<u64> = refs
        .iter()
        .enumerate()
        .filter(|(i, _)| key(*i) == "a")
        .map(|(_, r)| r.sequence_number)
        .collect();
    assert!(
        a_segments.len() >= 3,
        "key a's records should fill several segments, got {a_segments:?}"
    );
    check(&wal, before, &refs)?;
    wal.close()?;
    let wal = open()?;
    check(&wal, before, &refs)
}

#[test]
fn interleaved_keys_across_segments() -> Result<(), WalError> {
    run(0)
}

#[test]
fn interleaved_keys_across_segments_with_tails() -> Result<(), WalError> {
    run(1 << 20)
}
