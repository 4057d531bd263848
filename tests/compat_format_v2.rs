//! Directories written by nano-wal 0.6.0 (format version 2) keep opening:
//! the fixture under `tests/fixtures/format-v2/` (never regenerated; see its
//! README) reads back exactly as its manifest `EXPECTED.txt` lists, read-only
//! and as a writer; appends continue in new segments; and a version-2
//! segment that ends in a torn record opens with every record before it.

use std::collections::BTreeSet;
use std::error::Error;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::inspect::Verifier;
use nano_wal::{Clock, EntryRef, ManualClock, Wal, key_hash};

type TestResult<T = ()> = Result<T, Box<dyn Error>>;

/// What the manifest says about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: String,
    entry_ref: EntryRef,
    header: Option<Vec<u8>>,
    content: Vec<u8>,
    timestamp_ms: Option<u64>,
}

/// The record the fixture's generator cut short after closing.
#[derive(Debug)]
struct Torn {
    key: String,
    entry_ref: EntryRef,
    segment: String,
    file_position: u64,
    bytes_dropped: u64,
}

/// One fixture directory's part of the manifest.
#[derive(Debug, Default)]
struct Fixture {
    records: Vec<Rec>,
    torn: Vec<Torn>,
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v2")
}

fn unhex(s: &str) -> TestResult<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s:?}").into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&s[i..i + 2], 16)?))
        .collect()
}

/// `hex:<bytes>`
fn bytes_field(s: &str) -> TestResult<Vec<u8>> {
    unhex(
        s.strip_prefix("hex:")
            .ok_or_else(|| format!("expected hex:…, got {s:?}"))?,
    )
}

/// `none` or `hex:<bytes>` (`hex:` alone is an empty header).
fn header_field(s: &str) -> TestResult<Option<Vec<u8>>> {
    if s == "none" {
        Ok(None)
    } else {
        Ok(Some(bytes_field(s)?))
    }
}

/// Parse `EXPECTED.txt`: tab-separated lines, `#` comments (format in its
/// header comment).
fn manifest(fixture: &str) -> TestResult<Fixture> {
    let text = std::fs::read_to_string(fixtures_root().join("EXPECTED.txt"))?;
    let mut out = Fixture::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || format!("EXPECTED.txt line {}: {line:?}", n + 1);
        match (f.first().copied(), f.len()) {
            (Some("record"), 7) if f[1] == fixture => out.records.push(Rec {
                key: f[2].to_owned(),
                entry_ref: f[3].parse()?,
                header: header_field(f[4])?,
                content: bytes_field(f[5])?,
                timestamp_ms: Some(f[6].parse()?),
            }),
            (Some("torn"), 7) if f[1] == fixture => out.torn.push(Torn {
                key: f[2].to_owned(),
                entry_ref: f[3].parse()?,
                segment: f[4].to_owned(),
                file_position: f[5].parse()?,
                bytes_dropped: f[6].parse()?,
            }),
            (Some("record" | "torn"), 7) => {}
            _ => return Err(bad().into()),
        }
    }
    if out.records.is_empty() {
        return Err(format!("EXPECTED.txt lists no record of fixture {fixture:?}").into());
    }
    Ok(out)
}

/// Copy fixture `name` into a fresh directory (a writer's open may change
/// it); returns the guard and the copy's path.
fn copy_fixture(name: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::tempdir()?;
    let dir = t.path().join(name);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(fixtures_root().join(name))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
    }
    Ok((t, dir))
}

/// Every segment file of `dir` with its bytes, sorted by name.
fn segment_files(dir: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            files.push((name, std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// A clock an hour after the fixture's newest record: nothing has expired
/// or rotated by time, and new records get known timestamps.
fn clock_after(fixture: &Fixture) -> Arc<ManualClock> {
    let newest = fixture
        .records
        .iter()
        .filter_map(|r| r.timestamp_ms)
        .max()
        .unwrap_or(0);
    Arc::new(ManualClock::new(newest + 3_600_000))
}

fn open(dir: &Path, clock: &Arc<ManualClock>, read_only: bool) -> TestResult<Wal> {
    Ok(Wal::builder(dir)
        .clock(clock.clone())
        .read_only(read_only)
        .open()?)
}

fn keys_of(records: &[Rec]) -> Vec<String> {
    let keys: BTreeSet<String> = records.iter().map(|r| r.key.clone()).collect();
    keys.into_iter().collect()
}

fn of_key<'a>(records: &'a [Rec], key: &str) -> Vec<&'a Rec> {
    records.iter().filter(|r| r.key == key).collect()
}

/// `wal` holds exactly `records`: by reference, by key in order (`records`,
/// `scan`, `enumerate_records`), and as its set of keys.
fn check_wal(wal: &Wal, records: &[Rec]) -> TestResult {
    let mut keys: Vec<String> = wal.enumerate_keys()?.collect();
    keys.sort();
    assert_eq!(keys, keys_of(records), "enumerate_keys");

    for r in records {
        let got = wal.read_record_at(r.entry_ref)?;
        assert_eq!(got.entry_ref, r.entry_ref);
        assert_eq!(
            got.header.as_deref(),
            r.header.as_deref(),
            "header of {}",
            r.entry_ref
        );
        assert_eq!(got.content, r.content, "content of {}", r.entry_ref);
        assert_eq!(
            got.timestamp_unix_ms, r.timestamp_ms,
            "timestamp of {}",
            r.entry_ref
        );
        assert_eq!(wal.read_entry_at(r.entry_ref)?, r.content);
    }

    for key in keys_of(records) {
        let expected = of_key(records, &key);
        let iterated: Vec<Rec> = wal
            .records(&key)?
            .map(|rec| {
                rec.map(|rec| Rec {
                    key: key.clone(),
                    entry_ref: rec.entry_ref,
                    header: rec.header.map(|h| h.to_vec()),
                    content: rec.content.to_vec(),
                    timestamp_ms: rec.timestamp_unix_ms,
                })
            })
            .collect::<Result<_, _>>()?;
        assert_eq!(
            iterated.iter().collect::<Vec<_>>(),
            expected,
            "records({key:?})"
        );

        let mut scanned = Vec::new();
        wal.scan(&key, |v| {
            scanned.push(Rec {
                key: key.clone(),
                entry_ref: v.entry_ref,
                header: v.header.map(<[u8]>::to_vec),
                content: v.content.to_vec(),
                timestamp_ms: v.timestamp_unix_ms,
            });
            ControlFlow::Continue(())
        })?;
        assert_eq!(
            scanned.iter().collect::<Vec<_>>(),
            expected,
            "scan({key:?})"
        );

        let contents: Vec<Bytes> = wal.enumerate_records(key.as_str())?.collect();
        let expected_contents: Vec<Bytes> = expected
            .iter()
            .map(|r| Bytes::from(r.content.clone()))
            .collect();
        assert_eq!(contents, expected_contents, "enumerate_records({key:?})");
    }
    Ok(())
}

/// Append a record with the clock moved on a second; returns what the
/// manifest would list for it.
fn append(
    wal: &Wal,
    clock: &ManualClock,
    key: &str,
    header: Option<&[u8]>,
    content: &[u8],
) -> TestResult<Rec> {
    clock.advance_ms(1_000);
    let entry_ref = wal.append_entry(
        key,
        header.map(Bytes::copy_from_slice),
        Bytes::copy_from_slice(content),
        true,
    )?;
    Ok(Rec {
        key: key.to_owned(),
        entry_ref,
        header: header.map(<[u8]>::to_vec),
        content: content.to_vec(),
        timestamp_ms: Some(clock.now_unix_ms()),
    })
}

/// The newest segment sequence of `key` among `records`.
fn newest_sequence(records: &[Rec], key: &str) -> u64 {
    of_key(records, key)
        .iter()
        .map(|r| r.entry_ref.sequence_number)
        .max()
        .unwrap_or(0)
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
