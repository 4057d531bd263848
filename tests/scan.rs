//! `Wal::scan` visits exactly what `records()` yields, in order, across
//! segments and large records, stops when asked, and reports damage.

use std::ops::ControlFlow;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

type Seen = Vec<(EntryRef, Option<Vec<u8>>, Vec<u8>, Option<u64>)>;

fn scanned(wal: &Wal, key: &str) -> Result<Seen, WalError> {
    let mut seen = Vec::new();
    wal.scan(key, |r| {
        seen.push((
            r.entry_ref,
            r.header.map(<[u8]>::to_vec),
            r.content.to_vec(),
            r.timestamp_unix_ms,
        ));
        ControlFlow::Continue(())
    })?;
    Ok(seen)
}

fn iterated(wal: &Wal, key: &str) -> Result<Seen, WalError> {
    wal.records(key)?
        .map(|r| {
            r.map(|r| {
                (
                    r.entry_ref,
                    r.header.map(|h| h.to_vec()),
                    r.content.to_vec(),
                    r.timestamp_unix_ms,
                )
            })
        })
        .collect()
}

#[test]
fn scan_matches_records_across_segments_and_large_records() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path())
        .max_segment_bytes(64 * 1024)
        .open()?;
    for i in 0..600usize {
        // Mostly small records, some larger than the 128 KiB read window.
        let len = if i % 97 == 0 { 200 * 1024 } else { 1 + i % 300 };
        let header = (i % 3 == 0).then(|| Bytes::from(format!("h{i}")));
        let content = Bytes::from(vec![u8::try_from(i % 251).unwrap_or(0); len]);
        wal.append_entry("k", header, content, false)?;
    }
    let seen = scanned(&wal, "k")?;
    assert_eq!(seen.len(), 600);
    assert!(
        seen.last().is_some_and(|s| s.0.sequence_number > 3),
        "several segments"
    );
    assert_eq!(seen, iterated(&wal, "k")?);
    assert!(scanned(&wal, "no such key")?.is_empty());
    Ok(())
}

#[test]
fn scan_stops_when_the_visitor_breaks() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;
    for i in 0..10 {
        wal.append_entry("k", None, Bytes::from(format!("r{i}")), false)?;
    }
    let mut visited = Vec::new();
    wal.scan("k", |r| {
        visited.push(r.content.to_vec());
        if visited.len() == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    assert_eq!(visited, [b"r0".to_vec(), b"r1".to_vec(), b"r2".to_vec()]);
    Ok(())
}

#[test]
fn scan_reports_a_damaged_record_with_file_and_offset() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).max_segment_bytes(4096).open()?;
    let refs: Vec<EntryRef> = (0..400)
        .map(|i| wal.append_entry("k", None, Bytes::from(format!("record {i:03}")), false))
        .collect::<Result<_, _>>()?;
    wal.close()?;
    // Flip one content byte of record 5, in the first (sealed) segment.
    assert_eq!(refs[5].sequence_number, 1, "test setup");
    assert!(
        refs[399].sequence_number > 1,
        "test setup: segment 1 is sealed"
    );
    let path = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-0001.log"))
        .ok_or(WalError::Closed)?;
    let mut bytes = std::fs::read(&path)?;
    let needle = b"record 005";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or(WalError::Closed)?;
    bytes[at + 3] ^= 0x40;
    std::fs::write(&path, &bytes)?;

    let wal = Wal::builder(dir.path()).open()?;
    let mut visited = 0;
    let err = wal
        .scan("k", |_| {
            visited += 1;
            ControlFlow::Continue(())
        })
        .expect_err("damage is reported");
    assert_eq!(visited, 5, "records before the damage were visited");
    let msg = err.to_string();
    assert!(matches!(err, WalError::CorruptedData(_)), "{msg}");
    assert!(msg.contains("-0001.log"), "names the file: {msg}");
    Ok(())
}
