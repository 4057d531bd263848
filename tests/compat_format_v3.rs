//! Directories written by nano-wal 0.7.0 (format version 3, segments only:
//! no journal, no manifest) keep opening: the fixture under
//! `tests/fixtures/format-v3/` (never regenerated; see its README) reads
//! back exactly as its manifest `EXPECTED.txt` lists, read-only and as a
//! writer; the first writable open checkpoints the directory (writes its
//! first manifest) and later opens, through that manifest, read the same
//! records; appends continue in new segments; and a version-3 segment that
//! ends in a torn record opens with every record before it.
//!
//! Every test opens a copy: a writable open writes a manifest (and, once it
//! appends, a journal) into the directory, and the fixture itself must never
//! change.

mod compat_fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use compat_fixture::{
    Fixture, TestResult, append, check_wal, clock_after, files_where, keys_of, newest_sequence,
    of_key, open, segment_files,
};
use nano_wal::inspect::Verifier;
use nano_wal::{Clock, LOCK_FILE_NAME, Wal, key_hash};

const MANIFEST_PREFIX: &str = "nano-wal.manifest-";
const JOURNAL_PREFIX: &str = "nano-wal.journal-";

fn fixtures_root() -> PathBuf {
    compat_fixture::fixtures_root("format-v3")
}

fn manifest(fixture: &str) -> TestResult<Fixture> {
    compat_fixture::manifest(&fixtures_root(), fixture)
}

fn copy_fixture(name: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    compat_fixture::copy_fixture(&fixtures_root(), name)
}

/// Every file of `dir`, with its bytes, sorted by name.
fn all_files(dir: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    files_where(dir, |_| true)
}

/// The names of `dir`'s files that start with `prefix`.
fn names_starting(dir: &Path, prefix: &str) -> TestResult<Vec<String>> {
    Ok(files_where(dir, |name| name.starts_with(prefix))?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The first writable open of a directory without a manifest checkpoints
/// it: `dir` now holds a manifest.
fn assert_checkpointed(dir: &Path) -> TestResult {
    let manifests = names_starting(dir, MANIFEST_PREFIX)?;
    assert!(
        !manifests.is_empty(),
        "a writable open of a version-3 directory writes its first manifest; files: {:?}",
        all_files(dir)?
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// Every segment of `before` is still in `dir`, byte for byte.
fn assert_segments_kept(dir: &Path, before: &[(String, Vec<u8>)]) -> TestResult {
    let after = segment_files(dir)?;
    for (name, bytes) in before {
        let now = after.iter().find(|(n, _)| n == name);
        assert_eq!(
            now.map(|(_, b)| b),
            Some(bytes),
            "version-3 segment {name} is kept as written"
        );
    }
    Ok(())
}

#[test]
fn the_fixture_is_format_version_3_as_the_manifest_describes() -> TestResult {
    for name in ["intact", "torn"] {
        let fixture = manifest(name)?;
        let dir = fixtures_root().join(name);
        let files = all_files(&dir)?;
        let segments = segment_files(&dir)?;
        assert!(!segments.is_empty(), "{name}");
        // Segments and the lock only: 0.7.0 wrote no journal and no manifest
        // (and a writable open of the fixture itself would have added them).
        for (file, bytes) in &files {
            if file == LOCK_FILE_NAME {
                assert!(bytes.is_empty(), "{name}/{file}");
                continue;
            }
            assert!(
                file.ends_with(".log"),
                "{name}/{file}: only segments and the lock"
            );
            assert_eq!(bytes.get(..8), Some(&b"NANO-LOG"[..]), "{name}/{file}");
            assert_eq!(
                bytes.get(8..12),
                Some(&3u32.to_le_bytes()[..]),
                "{name}/{file}: format version 3"
            );
        }
        assert_eq!(files.len(), segments.len() + 1, "{name}: the lock file");
        for torn in &fixture.torn {
            let len = std::fs::metadata(dir.join(&torn.segment))?.len();
            assert_eq!(len, torn.file_position + torn.bytes_dropped, "{name}");
        }
    }

    // What the fixture was made to cover.
    let intact = manifest("intact")?;
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
    assert_eq!(manifest("torn")?.torn.len(), 1);
    Ok(())
}

#[test]
fn intact_fixture_opens_read_only_and_changes_nothing() -> TestResult {
    let fixture = manifest("intact")?;
    let (_t, dir) = copy_fixture("intact")?;
    let before = all_files(&dir)?;
    let clock = clock_after(&fixture);

    let wal = open(&dir, &clock, true)?;
    assert!(wal.is_read_only());
    let report = wal.recovery_report();
    assert!(report.torn_tails.is_empty(), "{report:?}");
    assert!(report.expired_leftovers.is_empty(), "{report:?}");
    assert_eq!(report.segments, segment_files(&dir)?.len());
    check_wal(&wal, &fixture.records)?;
    drop(wal);
    assert_eq!(
        all_files(&dir)?,
        before,
        "a read-only open changes nothing: no manifest, no journal"
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
    assert_checkpointed(&dir)?;
    check_wal(&wal, &fixture.records)?;

    // An old key continues in a new segment; a new key starts at 1.
    let old_key = "orders";
    let mut all = fixture.records.clone();
    let next = append(&wal, &clock, old_key, Some(b"after"), b"written after v3")?;
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

    assert_segments_kept(&dir, &before)
}

#[test]
fn first_writable_open_checkpoints_and_later_opens_read_the_same() -> TestResult {
    let fixture = manifest("intact")?;
    let (_t, dir) = copy_fixture("intact")?;
    let before = segment_files(&dir)?;
    let clock = clock_after(&fixture);

    // The first writable open scans the version-3 segments and writes the
    // first manifest; it appends nothing.
    let wal = open(&dir, &clock, false)?;
    assert_checkpointed(&dir)?;
    check_wal(&wal, &fixture.records)?;
    // Dropped without close(): the next open starts from the checkpoint
    // the first open wrote (not a clean one), with no journal to replay.
    drop(wal);
    assert_checkpointed(&dir)?;

    let wal = open(&dir, &clock, false)?;
    let report = wal.recovery_report();
    assert!(report.torn_tails.is_empty(), "{report:?}");
    check_wal(&wal, &fixture.records)?;
    wal.close()?;
    assert_checkpointed(&dir)?;
    assert_eq!(
        names_starting(&dir, JOURNAL_PREFIX)?,
        Vec::<String>::new(),
        "close() leaves a clean manifest and no journal"
    );

    // After the clean close: read-only, and a writer that builds its key
    // table from the manifest alone.
    let wal = open(&dir, &clock, true)?;
    check_wal(&wal, &fixture.records)?;
    drop(wal);
    let wal = open(&dir, &clock, false)?;
    assert!(wal.recovery_report().torn_tails.is_empty());
    check_wal(&wal, &fixture.records)?;
    wal.close()?;

    assert_eq!(
        segment_files(&dir)?,
        before,
        "opening without appending changes no segment"
    );
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
    let before = all_files(&dir)?;
    let wal = open(&dir, &clock, true)?;
    check_torn_report(&wal, false);
    check_wal(&wal, &fixture.records)?;
    assert!(wal.read_record_at(torn.entry_ref).is_err(), "torn record");
    drop(wal);
    assert_eq!(all_files(&dir)?, before);

    // Writer: cut off, and the directory checkpointed.
    let wal = open(&dir, &clock, false)?;
    check_torn_report(&wal, true);
    let seg = dir.join(&torn.segment);
    assert_eq!(std::fs::metadata(&seg)?.len(), torn.file_position);
    assert_checkpointed(&dir)?;
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
    wal.close()?;
    let wal = open(&dir, &clock, true)?;
    assert!(wal.recovery_report().torn_tails.is_empty());
    check_wal(&wal, &all)?;
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

    // Once a writer has checkpointed the intact fixture, the verifier still
    // finds every record, through the manifest.
    let fixture = manifest("intact")?;
    let (_t, dir) = copy_fixture("intact")?;
    let clock = clock_after(&fixture);
    open(&dir, &clock, false)?.close()?;
    assert_checkpointed(&dir)?;
    let clock: Arc<dyn Clock> = clock;
    let report = Verifier::from_builder(Wal::builder(&dir).clock(clock), None)?.run(&mut |_| {})?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, fixture.records.len() as u64);
    assert_eq!(report.keys, keys_of(&fixture.records).len());
    Ok(())
}
