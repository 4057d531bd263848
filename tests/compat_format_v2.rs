//! Directories written by nano-wal 0.6.0 (format version 2) keep opening:
//! the fixture under `tests/fixtures/format-v2/` (never regenerated; see its
//! README) reads back exactly as its manifest `EXPECTED.txt` lists, read-only
//! and as a writer; appends continue in new segments; and a version-2
//! segment that ends in a torn record opens with every record before it.

mod compat_fixture;

use std::path::PathBuf;
use std::sync::Arc;

use compat_fixture::{
    Fixture, TestResult, append, check_wal, clock_after, keys_of, newest_sequence, of_key, open,
    segment_files,
};
use nano_wal::inspect::Verifier;
use nano_wal::{Clock, Wal, key_hash};

fn fixtures_root() -> PathBuf {
    compat_fixture::fixtures_root("format-v2")
}

fn manifest(fixture: &str) -> TestResult<Fixture> {
    compat_fixture::manifest(&fixtures_root(), fixture)
}

fn copy_fixture(name: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    compat_fixture::copy_fixture(&fixtures_root(), name)
}

#[test]
fn the_fixture_is_format_version_2_as_the_manifest_describes() -> TestResult {
    let intact = manifest("intact")?;
    let files = segment_files(&fixtures_root().join("intact"))?;
    assert!(!files.is_empty());
    for (name, bytes) in &files {
        assert_eq!(bytes.get(..8), Some(&b"NANO-LOG"[..]), "{name}");
        assert_eq!(
            bytes.get(8..12),
            Some(&2u32.to_le_bytes()[..]),
            "{name}: format version 2"
        );
    }
    // What the fixture was made to cover.
    let r = &intact.records;
    for key in keys_of(r) {
        assert_eq!(
            of_key(r, &key)[0].entry_ref.key_hash,
            key_hash(key.as_bytes())
        );
    }
    assert!(keys_of(r).len() >= 3);
    assert!(r.iter().any(|r| r.header.is_none()));
    assert!(
        r.iter()
            .any(|r| r.header.as_ref().is_some_and(Vec::is_empty))
    );
    assert!(
        r.iter()
            .any(|r| r.header.as_ref().is_some_and(|h| !h.is_empty()))
    );
    assert!(r.iter().any(|r| r.content.is_empty()));
    assert!(r.iter().any(|r| std::str::from_utf8(&r.content).is_err()));
    assert!(
        keys_of(r).iter().any(|k| !k
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')),
        "a key the file-name sanitizer changes"
    );
    assert!(
        r.iter().any(|r| r.entry_ref.sequence_number >= 3),
        "a key with several segments"
    );
    Ok(())
}

#[test]
fn intact_fixture_opens_read_only_and_changes_nothing() -> TestResult {
    let fixture = manifest("intact")?;
    let (_t, dir) = copy_fixture("intact")?;
    let before = segment_files(&dir)?;
    let clock = clock_after(&fixture);

    let wal = open(&dir, &clock, true)?;
    assert!(wal.is_read_only());
    let report = wal.recovery_report();
    assert!(report.torn_tails.is_empty(), "{report:?}");
    assert!(report.expired_leftovers.is_empty(), "{report:?}");
    assert_eq!(report.segments, before.len());
    check_wal(&wal, &fixture.records)?;
    drop(wal);
    assert_eq!(
        segment_files(&dir)?,
        before,
        "a read-only open changes nothing"
    );
    Ok(())
}

#[test]
fn intact_fixture_opens_as_writer_and_continues() -> TestResult {
    let fixture = manifest("intact")?;
    let (_t, dir) = copy_fixture("intact")?;
    let before = segment_files(&dir)?;
    let clock = clock_after(&fixture);

    let wal = open(&dir, &clock, false)?;
    assert!(!wal.is_read_only());
    assert!(wal.recovery_report().torn_tails.is_empty());
    check_wal(&wal, &fixture.records)?;

    // An old key continues in a new segment; a new key starts at 1.
    let old_key = "orders";
    let mut all = fixture.records.clone();
    let next = append(&wal, &clock, old_key, Some(b"after"), b"written after v2")?;
    assert_eq!(next.entry_ref.key_hash, key_hash(old_key.as_bytes()));
    assert_eq!(
        next.entry_ref.sequence_number,
        newest_sequence(&all, old_key) + 1,
        "a reopened WAL appends in a new segment"
    );
    assert_eq!(next.entry_ref.offset, 0);
    all.push(next);
    let new_key = "a new key";
    let first = append(&wal, &clock, new_key, None, b"first of a new key")?;
    assert_eq!(
        (first.entry_ref.sequence_number, first.entry_ref.offset),
        (1, 0)
    );
    all.push(first);
    all.push(append(&wal, &clock, new_key, Some(b""), &[0, 1, 2, 255])?);
    check_wal(&wal, &all)?;
    wal.close()?;

    let wal = open(&dir, &clock, false)?;
    assert!(wal.recovery_report().torn_tails.is_empty());
    check_wal(&wal, &all)?;
    wal.close()?;
    let wal = open(&dir, &clock, true)?;
    check_wal(&wal, &all)?;
    drop(wal);

    let after = segment_files(&dir)?;
    for (name, bytes) in &before {
        let now = after.iter().find(|(n, _)| n == name);
        assert_eq!(
            now.map(|(_, b)| b),
            Some(bytes),
            "version-2 segment {name} is kept as written"
        );
    }
    Ok(())
}

#[test]
fn torn_fixture_opens_with_every_record_before_the_tear() -> TestResult {
    let fixture = manifest("torn")?;
    assert_eq!(fixture.torn.len(), 1, "the manifest lists one torn record");
    let torn = &fixture.torn[0];
    let clock = clock_after(&fixture);
    let check_torn_report = |wal: &Wal, repaired: bool| {
        let report = wal.recovery_report();
        assert_eq!(report.torn_tails.len(), 1, "{report:?}");
        let t = &report.torn_tails[0];
        assert_eq!(
            t.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Some(torn.segment.clone())
        );
        assert_eq!(t.file_position, torn.file_position);
        assert_eq!(t.bytes_dropped, torn.bytes_dropped);
        assert_eq!(t.repaired, repaired);
    };

    // Read-only: reported, left on disk.
    let (_t, dir) = copy_fixture("torn")?;
    let before = segment_files(&dir)?;
    let wal = open(&dir, &clock, true)?;
    check_torn_report(&wal, false);
    check_wal(&wal, &fixture.records)?;
    assert!(wal.read_record_at(torn.entry_ref).is_err(), "torn record");
    drop(wal);
    assert_eq!(segment_files(&dir)?, before);

    // Writer: cut off.
    let wal = open(&dir, &clock, false)?;
    check_torn_report(&wal, true);
    let seg = dir.join(&torn.segment);
    assert_eq!(std::fs::metadata(&seg)?.len(), torn.file_position);
    check_wal(&wal, &fixture.records)?;
    assert!(wal.read_record_at(torn.entry_ref).is_err(), "torn record");

    // Appends continue after the tear, in a new segment.
    let mut all = fixture.records.clone();
    let next = append(&wal, &clock, &torn.key, None, b"after the tear")?;
    assert_eq!(
        next.entry_ref.sequence_number,
        torn.entry_ref.sequence_number + 1
    );
    all.push(next);
    check_wal(&wal, &all)?;
    wal.close()?;

    let wal = open(&dir, &clock, false)?;
    assert!(wal.recovery_report().torn_tails.is_empty());
    check_wal(&wal, &all)?;
    assert!(wal.read_record_at(torn.entry_ref).is_err());
    Ok(())
}

#[test]
fn verifier_finds_the_fixtures_sound() -> TestResult {
    for name in ["intact", "torn"] {
        let fixture = manifest(name)?;
        let (_t, dir) = copy_fixture(name)?;
        let clock: Arc<dyn Clock> = clock_after(&fixture);
        let verifier = Verifier::from_builder(Wal::builder(&dir).clock(clock), None)?;
        assert_eq!(verifier.segment_count(), segment_files(&dir)?.len());
        let report = verifier.run(&mut |_| {})?;
        assert!(report.is_ok(), "{name}: {report:?}");
        assert_eq!(report.records, fixture.records.len() as u64, "{name}");
        assert_eq!(report.keys, keys_of(&fixture.records).len(), "{name}");
        assert_eq!(report.torn_tails.len(), fixture.torn.len(), "{name}");
        for (found, listed) in report.torn_tails.iter().zip(&fixture.torn) {
            assert_eq!(found.file_position, listed.file_position, "{name}");
            assert_eq!(found.bytes_dropped, listed.bytes_dropped, "{name}");
        }
    }
    Ok(())
}
