//! `last_record` reads a key's newest record at its known position, in the
//! writing process, after `close()`, after a crash, and in a directory
//! whose segments predate the position being kept (it reads them once).

use bytes::Bytes;
use nano_wal::Wal;

mod common;

use common::padded::padded;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn the_newest_record_of_a_key_after_appends_batches_and_reopening() -> TestResult {
    for how in ["close", "crash"] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        {
            let wal = Wal::builder(dir).max_segment_bytes(4096).open()?;
            assert!(wal.last_record("vote")?.is_none(), "unknown key");
            for term in 0..20u64 {
                let r = wal.append_entry(
                    "vote",
                    Some(Bytes::from("h")),
                    padded(&term.to_string()),
                    false,
                )?;
                let last = wal.last_record("vote")?.ok_or("no last record")?;
                assert_eq!(last.entry_ref, r);
                assert_eq!(last.header.as_deref(), Some(&b"h"[..]));
            }
            let refs = wal.append_batch(
                [
                    ("vote", None, Bytes::from("a")),
                    ("other", None, Bytes::from("b")),
                    ("vote", None, Bytes::from("c")),
                ],
                true,
            )?;
            let last = wal.last_record("vote")?.ok_or("no last record")?;
            assert_eq!((last.entry_ref, &last.content[..]), (refs[2], &b"c"[..]));
            if how == "close" {
                wal.close()?;
            }
        }
        let wal = Wal::builder(dir).max_segment_bytes(4096).open()?;
        let last = wal.last_record("vote")?.ok_or("no last record")?;
        assert_eq!(&last.content[..], b"c", "{how}");
        assert_eq!(
            wal.last_record("other")?.map(|r| r.content),
            Some(Bytes::from("b"))
        );
    }
    Ok(())
}

#[test]
fn a_directory_written_by_nano_wal_0_5_reads_its_last_record() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let dir_str = dir.to_str().ok_or("path is not UTF-8")?;
    {
        let mut old = nano_wal_05::Wal::new(dir_str, nano_wal_05::WalOptions::default())?;
        for i in 0..5 {
            old.append_entry("k", None, Bytes::from(format!("v{i}")), true)?;
        }
    }
    let wal = Wal::builder(&dir).open()?;
    let last = wal.last_record("k")?.ok_or("no last record")?;
    assert_eq!(&last.content[..], b"v4");
    // Remembered: asked again, the same record.
    assert_eq!(
        wal.last_record("k")?.map(|r| r.entry_ref),
        Some(last.entry_ref)
    );
    Ok(())
}
