//! Shared by the format-fixture tests (`compat_format_v*.rs`): parse a
//! fixture's manifest `EXPECTED.txt` (format in its header comment), copy a
//! fixture directory aside, and check that a `Wal` holds exactly the records
//! the manifest lists.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::collections::BTreeSet;
use std::error::Error;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{Clock, EntryRef, ManualClock, Wal};

pub type TestResult<T = ()> = Result<T, Box<dyn Error>>;

/// What the manifest says about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: String,
    pub entry_ref: EntryRef,
    pub header: Option<Vec<u8>>,
    pub content: Vec<u8>,
    pub timestamp_ms: Option<u64>,
}

/// The record the fixture's generator cut short after closing.
#[derive(Debug)]
pub struct Torn {
    pub key: String,
    pub entry_ref: EntryRef,
    pub segment: String,
    pub file_position: u64,
    pub bytes_dropped: u64,
}

/// One fixture directory's part of the manifest.
#[derive(Debug, Default)]
pub struct Fixture {
    pub records: Vec<Rec>,
    pub torn: Vec<Torn>,
}

/// `tests/fixtures/<name>`: the directory of one format's fixtures.
pub fn fixtures_root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
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

/// Parse `root/EXPECTED.txt` for fixture directory `fixture`: tab-separated
/// lines, `#` comments (format in its header comment).
pub fn manifest(root: &Path, fixture: &str) -> TestResult<Fixture> {
    let text = std::fs::read_to_string(root.join("EXPECTED.txt"))?;
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

/// Copy fixture directory `root/name` into a fresh directory (a writer's
/// open changes it); returns the guard and the copy's path.
pub fn copy_fixture(root: &Path, name: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::tempdir()?;
    let dir = t.path().join(name);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(root.join(name))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
    }
    Ok((t, dir))
}

/// Every file of `dir` whose name `keep` accepts, with its bytes, sorted by
/// name.
pub fn files_where(dir: &Path, keep: impl Fn(&str) -> bool) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            files.push((name, std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// Every segment file of `dir` with its bytes, sorted by name.
pub fn segment_files(dir: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    files_where(dir, |name| name.ends_with(".log"))
}

/// A clock an hour after the fixture's newest record: nothing has expired
/// or rotated by time, and new records get known timestamps.
pub fn clock_after(fixture: &Fixture) -> Arc<ManualClock> {
    let newest = fixture
        .records
        .iter()
        .filter_map(|r| r.timestamp_ms)
        .max()
        .unwrap_or(0);
    Arc::new(ManualClock::new(newest + 3_600_000))
}

pub fn open(dir: &Path, clock: &Arc<ManualClock>, read_only: bool) -> TestResult<Wal> {
    Ok(Wal::builder(dir)
        .clock(clock.clone())
        .read_only(read_only)
        .open()?)
}

pub fn keys_of(records: &[Rec]) -> Vec<String> {
    let keys: BTreeSet<String> = records.iter().map(|r| r.key.clone()).collect();
    keys.into_iter().collect()
}

pub fn of_key<'a>(records: &'a [Rec], key: &str) -> Vec<&'a Rec> {
    records.iter().filter(|r| r.key == key).collect()
}

/// `wal` holds exactly `records`: by reference, by key in order (`records`,
/// `scan`, `enumerate_records`), and as its set of keys.
pub fn check_wal(wal: &Wal, records: &[Rec]) -> TestResult {
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
pub fn append(
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
pub fn newest_sequence(records: &[Rec], key: &str) -> u64 {
    of_key(records, key)
        .iter()
        .map(|r| r.entry_ref.sequence_number)
        .max()
        .unwrap_or(0)
}
