//! Reopening a directory gives back exactly what was appended: every key,
//! every record with its header and timestamp, every reference; and appends
//! continue after the old records, in a new segment: a reopened WAL never
//! appends to a segment an earlier process wrote, so no offset that a crash
//! cut off is ever reused by a new record.

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Record, Wal, WalError};
use std::sync::Arc;

fn all(wal: &Wal, key: &str) -> Result<Vec<Record>, WalError> {
    wal.records(key)?.collect()
}

#[test]
fn everything_survives_reopen() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let mut written: Vec<(String, Option<Bytes>, Bytes, EntryRef)> = Vec::new();
    {
        let wal = Wal::builder(dir.path())
            .clock(clock.clone())
            .max_segment_bytes(4096)
            .open()?;
        for i in 0..300u32 {
            let key = format!("key-{}", i % 7);
            let header = (i % 3 == 0).then(|| Bytes::from(format!("h{i}")));
            let content = Bytes::from(vec![
                u8::try_from(i % 251).unwrap_or(0);
                (i as usize * 13) % 700
            ]);
            let r = wal.append_entry(key.as_str(), header.clone(), content.clone(), i % 5 == 0)?;
            written.push((key, header, content, r));
            clock.advance_ms(1);
        }
    }
    for round in 0..2 {
        let wal = Wal::builder(dir.path())
            .clock(clock.clone())
            .max_segment_bytes(4096)
            .open()?;
        assert!(wal.recovery_report().torn_tails.is_empty(), "round {round}");
        let keys: Vec<String> = wal.enumerate_keys()?.collect();
        assert_eq!(keys.len(), 7);
        for (key, header, content, r) in &written {
            let rec = wal.read_record_at(*r)?;
            assert_eq!((&rec.header, &rec.content), (header, content));
            assert!(
                rec.timestamp_unix_ms
                    .is_some_and(|t| t >= 1_700_000_000_000)
            );
            assert_eq!(wal.read_entry_at(*r)?, content, "{key}");
        }
        for k in 0..7 {
            let key = format!("key-{k}");
            let expect: Vec<EntryRef> =
                written.iter().filter(|w| w.0 == key).map(|w| w.3).collect();
            let got: Vec<EntryRef> = all(&wal, &key)?.iter().map(|r| r.entry_ref).collect();
            assert_eq!(got, expect);
        }
    }
    // Appends after reopen land after the old records, in a new segment.
    let wal = Wal::builder(dir.path())
        .clock(clock.clone())
        .max_segment_bytes(4096)
        .open()?;
    let last_old = written.iter().filter(|w| w.0 == "key-0").map(|w| w.3).max();
    let new = wal.append_entry("key-0", None, Bytes::from("after reopen"), true)?;
    assert!(Some(new) > last_old, "{new} after {last_old:?}");
    let last_old = last_old.ok_or(WalError::Closed)?;
    assert_eq!(
        (new.sequence_number, new.offset),
        (last_old.sequence_number + 1, 0),
        "the first append after a reopen starts the next segment"
    );
    let recs = all(&wal, "key-0")?;
    assert_eq!(
        recs.last().map(|r| r.content.clone()),
        Some(Bytes::from("after reopen"))
    );
    Ok(())
}

#[test]
fn records_from_a_reference_onward() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).max_segment_bytes(4096).open()?;
    let refs: Vec<EntryRef> = (0..100)
        .map(|i| wal.append_entry("k", None, Bytes::from(vec![b'x'; 200 + i]), false))
        .collect::<Result<_, _>>()?;
    assert!(
        refs.last().is_some_and(|r| r.sequence_number > 3),
        "spans segments"
    );
    for start in [0, 17, 42, 99] {
        let got: Vec<EntryRef> = wal
            .records_from(refs[start])?
            .map(|r| r.map(|r| r.entry_ref))
            .collect::<Result<_, _>>()?;
        assert_eq!(got, refs[start..].to_vec());
    }
    Ok(())
}
