//! `truncate_from` removes a record and every later record of its key,
//! durably: after `close()`, after a crash (a dropped handle, whose journal
//! is replayed) and after a checkpoint trimmed the journal. References into
//! the removed part never resolve again, not even to newer records.

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

mod common;

use common::padded::{contents, fill, padded, unpad};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn open(dir: &std::path::Path) -> Result<Wal, WalError> {
    // Small segments: ten records span several of them.
    Wal::builder(dir).max_segment_bytes(4096).open()
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

#[test]
fn later_records_go_and_their_references_never_resolve_again() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = open(tmp.path())?;
    let refs = fill(&wal, "log", 10)?;
    wal.append_entry("other", None, Bytes::from("x"), false)?;
    assert!(
        refs[9].sequence_number > refs[5].sequence_number,
        "the records span segments"
    );
    wal.truncate_from(refs[5])?;
    assert_eq!(contents(&wal, "log")?, expected(5));
    for r in &refs[5..] {
        assert!(matches!(
            wal.read_entry_at(*r),
            Err(WalError::EntryNotFound(_))
        ));
        assert!(matches!(
            wal.records_from(*r),
            Err(WalError::EntryNotFound(_))
        ));
    }
    let new = wal.append_entry("log", None, padded("new"), true)?;
    assert!(
        !refs.contains(&new),
        "a new record never takes an old reference"
    );
    assert!(new.sequence_number > refs[9].sequence_number);
    for r in &refs[5..] {
        assert!(wal.read_entry_at(*r).is_err());
    }
    assert_eq!(contents(&wal, "other")?, ["x"], "other keys are untouched");
    let last = wal.last_record("log")?.ok_or("no last record")?;
    assert_eq!(
        (last.entry_ref, unpad(&last.content)),
        (new, "new".to_owned())
    );
    Ok(())
}

#[test]
fn the_truncation_survives_close_a_crash_and_a_checkpoint() -> TestResult {
    for how in ["close", "crash", "checkpoint then crash"] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let (refs, new) = {
            let wal = Wal::builder(dir)
                .max_segment_bytes(4096)
                .journal_checkpoint_bytes(if how == "checkpoint then crash" {
                    4096
                } else {
                    1 << 30
                })
                .background_checkpoints(false)
                .open()?;
            let refs = fill(&wal, "log", 10)?;
            wal.truncate_from(refs[3])?;
            let new = wal.append_entry("log", None, padded("new"), false)?;
            if how == "checkpoint then crash" {
                // Push the journal past its bound so a checkpoint writes
                // the truncation into a manifest and trims the journal.
                fill(&wal, "filler", 200)?;
            }
            wal.sync()?;
            if how == "close" {
                wal.close()?;
            }
            (refs, new)
        };
        let wal = open(dir)?;
        let mut want = expected(3);
        want.push("new".into());
        assert_eq!(contents(&wal, "log")?, want, "{how}");
        for r in &refs[3..] {
            assert!(
                matches!(wal.read_entry_at(*r), Err(WalError::EntryNotFound(_))),
                "{how}: {r} resolves"
            );
        }
        assert_eq!(unpad(&wal.read_entry_at(new)?), "new", "{how}");
        let again = wal.append_entry("log", None, padded("again"), false)?;
        assert!(!refs.contains(&again) && again != new, "{how}");
    }
    Ok(())
}

#[test]
fn truncating_from_the_first_record_empties_the_key_but_keeps_its_sequence() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let refs = {
        let wal = open(dir)?;
        let refs = fill(&wal, "log", 4)?;
        wal.truncate_from(refs[0])?;
        assert!(contents(&wal, "log")?.is_empty());
        assert!(wal.last_record("log")?.is_none());
        wal.close()?;
        refs
    };
    let wal = open(dir)?;
    assert!(contents(&wal, "log")?.is_empty());
    let new = wal.append_entry("log", None, padded("new"), false)?;
    assert!(refs.iter().all(|r| r.sequence_number < new.sequence_number));
    Ok(())
}

#[test]
fn bad_references_and_read_only_handles_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = open(tmp.path())?;
    let refs = fill(&wal, "log", 3)?;
    let past = EntryRef {
        offset: refs[2].offset + 10_000,
        ..refs[2]
    };
    assert!(matches!(
        wal.truncate_from(past),
        Err(WalError::EntryNotFound(_))
    ));
    let unknown_key = EntryRef {
        key_hash: refs[0].key_hash ^ 1,
        ..refs[0]
    };
    assert!(matches!(
        wal.truncate_from(unknown_key),
        Err(WalError::EntryNotFound(_))
    ));
    assert_eq!(contents(&wal, "log")?, expected(3), "nothing was removed");
    let reader = Wal::builder(tmp.path()).read_only(true).open()?;
    assert!(matches!(
        reader.truncate_from(refs[1]),
        Err(WalError::ReadOnly(_))
    ));
    assert_eq!(contents(&wal, "log")?, expected(3));
    Ok(())
}
