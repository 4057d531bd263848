//! `purge_before` removes every record of a key before a given one, durably:
//! whole segments are deleted and the rest of a partly purged segment stays
//! hidden from every read, after `close()`, after a crash and after a
//! checkpoint.

use std::ops::ControlFlow;

use nano_wal::{Wal, WalError};

mod common;

use common::padded::{contents, fill, padded, unpad};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What every read API sees of `key`: they must agree.
fn every_view(wal: &Wal, key: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let records = contents(wal, key)?;
    let mut scanned = Vec::new();
    wal.scan(key, |r| {
        scanned.push(unpad(r.content));
        ControlFlow::Continue(())
    })?;
    let enumerated: Vec<String> = wal.enumerate_records(key)?.map(|b| unpad(&b)).collect();
    assert_eq!(records, scanned, "scan agrees with records");
    assert_eq!(records, enumerated, "enumerate_records agrees with records");
    Ok(records)
}

fn segment_files(dir: &std::path::Path) -> Result<usize, std::io::Error> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("log-"))
        .count())
}

fn tail(from: usize, n: usize) -> Vec<String> {
    (from..n).map(|i| format!("r{i}")).collect()
}

#[test]
fn earlier_records_go_whole_segments_are_deleted_and_the_rest_is_hidden() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).max_segment_bytes(4096).open()?;
    let refs = fill(&wal, "log", 12)?;
    let cut = 7;
    assert!(
        refs[cut].sequence_number > refs[0].sequence_number
            && refs[cut - 1].sequence_number == refs[cut].sequence_number,
        "the purge point is inside a segment after the first"
    );
    let before = segment_files(tmp.path())?;
    wal.purge_before(refs[cut])?;
    assert!(
        segment_files(tmp.path())? < before,
        "whole segments were deleted"
    );
    assert_eq!(every_view(&wal, "log")?, tail(cut, 12));
    for r in &refs[..cut] {
        assert!(matches!(
            wal.read_entry_at(*r),
            Err(WalError::EntryNotFound(_))
        ));
        assert!(matches!(
            wal.records_from(*r),
            Err(WalError::EntryNotFound(_))
        ));
    }
    let from: Vec<String> = wal
        .records_from(refs[cut + 1])?
        .map(|r| r.map(|r| unpad(&r.content)))
        .collect::<Result<_, _>>()?;
    assert_eq!(from, tail(cut + 1, 12));
    wal.purge_before(refs[cut])?;
    assert_eq!(
        every_view(&wal, "log")?,
        tail(cut, 12),
        "purging again changes nothing"
    );
    let last = wal.last_record("log")?.ok_or("no last record")?;
    assert_eq!(last.entry_ref, refs[11]);
    Ok(())
}

#[test]
fn the_purge_survives_close_a_crash_and_a_checkpoint() -> TestResult {
    for how in ["close", "crash", "checkpoint then crash"] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let refs = {
            let wal = Wal::builder(dir)
                .max_segment_bytes(4096)
                .journal_checkpoint_bytes(if how == "checkpoint then crash" {
                    4096
                } else {
                    1 << 30
                })
                .background_checkpoints(false)
                .open()?;
            let refs = fill(&wal, "log", 12)?;
            wal.purge_before(refs[8])?;
            if how == "checkpoint then crash" {
                fill(&wal, "filler", 200)?;
            }
            wal.sync()?;
            if how == "close" {
                wal.close()?;
            }
            refs
        };
        let wal = Wal::builder(dir).max_segment_bytes(4096).open()?;
        assert_eq!(every_view(&wal, "log")?, tail(8, 12), "{how}");
        for r in &refs[..8] {
            assert!(wal.read_entry_at(*r).is_err(), "{how}: {r} resolves");
        }
        assert_eq!(unpad(&wal.read_entry_at(refs[8])?), "r8", "{how}");
        wal.append_entry("log", None, padded("r12"), false)?;
        assert_eq!(every_view(&wal, "log")?, tail(8, 13), "{how}");
    }
    Ok(())
}

#[test]
fn purge_then_truncate_leaves_the_middle() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).max_segment_bytes(4096).open()?;
        let refs = fill(&wal, "log", 12)?;
        wal.purge_before(refs[4])?;
        wal.truncate_from(refs[9])?;
        assert_eq!(every_view(&wal, "log")?, tail(4, 9));
    }
    let wal = Wal::builder(dir).max_segment_bytes(4096).open()?;
    assert_eq!(every_view(&wal, "log")?, tail(4, 9));
    assert_eq!(
        wal.last_record("log")?.map(|r| r.content),
        Some(padded("r8"))
    );
    Ok(())
}
