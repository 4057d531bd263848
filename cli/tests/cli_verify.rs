//! `nano-wal verify` on clean, torn and corrupted directories: corruption is
//! named by file and position with exit code 3, a torn tail is fine, and
//! nothing on disk changes.

mod common;
use common::nano_wal;

use std::error::Error;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, key_hash};

type TestResult = Result<(), Box<dyn Error>>;

const KEY: &str = "ledger";
/// Version-3 segment header length for `KEY`: 64 fixed bytes + the key.
const HEADER_LEN: u64 = 64 + KEY.len() as u64;
/// Fixed part of a version-3 record, before its header and content.
const RECORD_FIXED: u64 = 24;
const RECORD_CONTENT: usize = 1000;

fn verify(dir: &Path, extra: &[&str]) -> Result<(Option<i32>, String, String), Box<dyn Error>> {
    let mut args = vec![OsStr::new("verify"), dir.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let out = nano_wal(args)?;
    Ok((
        out.status.code(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{KEY}-{}-{seq:04}.log", key_hash(KEY.as_bytes())))
}

/// `n` records of `KEY` (about four per 4 KiB segment) and three of `other`.
fn write(dir: &Path, n: usize) -> Result<Vec<EntryRef>, Box<dyn Error>> {
    let wal = Wal::builder(dir).max_segment_bytes(4096).open()?;
    let mut refs = Vec::new();
    for i in 0..n {
        let content = Bytes::from(format!("{i:04}").repeat(RECORD_CONTENT / 4));
        refs.push(wal.append_entry(KEY, None, content, true)?);
    }
    for i in 0..3 {
        wal.append_entry("other", None, Bytes::from(format!("other {i}")), true)?;
    }
    wal.close()?;
    Ok(refs)
}

fn flip_bit(path: &Path, pos: u64) -> TestResult {
    let mut bytes = std::fs::read(path)?;
    bytes[usize::try_from(pos)?] ^= 0x10;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// File position of a byte in the middle of record `r`'s content.
fn inside(r: EntryRef) -> u64 {
    HEADER_LEN + r.offset + RECORD_FIXED + 100
}

#[test]
fn a_clean_directory_verifies_with_every_record_counted() -> TestResult {
    let t = tempfile::tempdir()?;
    let refs = write(t.path(), 10)?;
    let segments = refs.last().map_or(0, |r| r.sequence_number);
    assert!(segments >= 3, "setup: several segments");
    let (code, out, err) = verify(t.path(), &[])?;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(err, "", "no progress bar when stderr is not a terminal");
    assert!(
        out.starts_with(&format!(
            "ok: 2 keys, {} segments, 13 records,",
            segments + 1
        )),
        "{out}"
    );
    let (code, out, _) = verify(t.path(), &["--key", "other"])?;
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("ok: 1 keys, 1 segments, 3 records,"),
        "{out}"
    );
    Ok(())
}

#[test]
fn a_flipped_bit_in_the_last_segment_is_named_by_file_and_position() -> TestResult {
    let t = tempfile::tempdir()?;
    let refs = write(t.path(), 11)?;
    let last = refs.last().ok_or("records")?.sequence_number;
    let in_last: Vec<EntryRef> = refs
        .iter()
        .filter(|r| r.sequence_number == last)
        .copied()
        .collect();
    // Damage a record of the newest segment that has another record after it.
    let [.., damaged, follower] = in_last[..] else {
        return Err("setup: two records in the last segment".into());
    };
    let path = segment_path(t.path(), last);
    flip_bit(&path, inside(damaged))?;
    let size = std::fs::metadata(&path)?.len();

    let (code, out, err) = verify(t.path(), &[])?;
    assert_eq!(code, Some(3), "{out}{err}");
    let corrupt: Vec<&str> = out.lines().filter(|l| l.starts_with("CORRUPT")).collect();
    let expected = format!(
        "CORRUPT {} at file position {}: ",
        path.display(),
        HEADER_LEN + damaged.offset
    );
    assert_eq!(corrupt.len(), 1, "{out}");
    assert!(corrupt[0].starts_with(&expected), "{out}");
    assert!(
        corrupt[0].contains(&format!(
            "a valid record follows at {}",
            HEADER_LEN + follower.offset
        )),
        "{out}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: 1 corruption(s) found"), "{err}");
    assert_eq!(
        std::fs::metadata(&path)?.len(),
        size,
        "verify changes nothing"
    );

    // The other key is fine, and checking it alone says so.
    let (code, out, _) = verify(t.path(), &["--key", "other"])?;
    assert_eq!(code, Some(0), "{out}");
    let (code, _, _) = verify(t.path(), &["--key", KEY])?;
    assert_eq!(code, Some(3));

    // Opening fails for the other commands, with the same file and position.
    let out = nano_wal([OsStr::new("stats"), t.path().as_os_str()])?;
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: Data corruption: segment ")
            && err.contains(&format!(
                "{} at file position {}",
                path.display(),
                HEADER_LEN + damaged.offset
            )),
        "{err}"
    );
    Ok(())
}

#[test]
fn damage_in_older_segments_is_reported_for_each_segment() -> TestResult {
    let t = tempfile::tempdir()?;
    let refs = write(t.path(), 12)?;
    let first_of = |seq: u64| {
        refs.iter()
            .find(|r| r.sequence_number == seq)
            .copied()
            .ok_or("record")
    };
    let (a, b) = (first_of(1)?, first_of(2)?);
    flip_bit(&segment_path(t.path(), 1), inside(a))?;
    flip_bit(&segment_path(t.path(), 2), inside(b))?;

    let (code, out, err) = verify(t.path(), &[])?;
    assert_eq!(code, Some(3), "{out}");
    let corrupt: Vec<&str> = out.lines().filter(|l| l.starts_with("CORRUPT")).collect();
    assert_eq!(corrupt.len(), 2, "{out}");
    // Checking goes on after the damage: every other record is counted.
    assert!(
        err.starts_with("error: 2 corruption(s) found (2 keys, 5 segments, 13 records,"),
        "{err}"
    );
    for (line, seq) in corrupt.iter().zip([1, 2]) {
        let expected = format!(
            "CORRUPT {} at file position {}: ",
            segment_path(t.path(), seq).display(),
            HEADER_LEN
        );
        assert!(line.starts_with(&expected), "{line}");
    }
    // Opening does not read sealed segments; reading them fails.
    let out = nano_wal([OsStr::new("dump"), t.path().as_os_str(), OsStr::new(KEY)])?;
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"", "the first record is the damaged one");
    assert!(
        err.contains("Data corruption") && err.contains("-0001.log"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_torn_tail_is_fine_and_left_in_place() -> TestResult {
    let t = tempfile::tempdir()?;
    let refs = write(t.path(), 3)?;
    let last = *refs.last().ok_or("records")?;
    let path = segment_path(t.path(), last.sequence_number);
    let len = std::fs::metadata(&path)?.len();
    // A crash in the middle of writing the last record.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(len - 300)?;

    let (code, out, err) = verify(t.path(), &[])?;
    assert_eq!(code, Some(0), "{out}{err}");
    let torn = out
        .lines()
        .find(|l| l.starts_with("torn tail"))
        .ok_or(format!("a torn tail line in {out}"))?;
    assert!(
        torn.contains(&format!(
            "{} at file position {}",
            path.display(),
            HEADER_LEN + last.offset
        )),
        "{torn}"
    );
    assert!(out.contains("ok: 2 keys, 2 segments, 5 records"), "{out}");
    assert!(out.contains("1 torn tail(s)"), "{out}");
    assert_eq!(std::fs::metadata(&path)?.len(), len - 300, "left on disk");
    Ok(())
}

#[test]
fn verify_of_an_unknown_key_is_an_error() -> TestResult {
    let t = tempfile::tempdir()?;
    write(t.path(), 1)?;
    let (code, out, err) = verify(t.path(), &["--key", "nope"])?;
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.starts_with("error: Entry not found: no key \"nope\""),
        "{err}"
    );
    Ok(())
}

#[test]
fn leftovers_of_an_interrupted_compaction_depend_on_the_retention() -> TestResult {
    let t = tempfile::tempdir()?;
    let day_ms = 24 * 3600 * 1000;
    let now = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    // Three segments, 30, 29 and 28 days old (default rotation: 16.8 hours).
    let clock = std::sync::Arc::new(nano_wal::ManualClock::new(now - 30 * day_ms));
    let wal = Wal::builder(t.path()).clock(clock.clone()).open()?;
    for _ in 0..3 {
        wal.append_entry(KEY, None, Bytes::from("old"), true)?;
        clock.advance_ms(day_ms);
    }
    wal.close()?;
    // A crash during compaction brought back segment 1 but not segment 2.
    std::fs::remove_file(segment_path(t.path(), 2))?;

    // Under the default retention (a week) segment 1 has expired: fine.
    let (code, out, err) = verify(t.path(), &[])?;
    assert_eq!(code, Some(0), "{out}{err}");
    let leftover = format!(
        "expired leftover (fine: a compaction was interrupted by a crash) {};",
        segment_path(t.path(), 1).display()
    );
    assert!(out.lines().any(|l| l.starts_with(&leftover)), "{out}");
    assert!(out.contains("ok: 1 keys, 2 segments, 1 records"), "{out}");
    let stats = nano_wal([OsStr::new("stats"), t.path().as_os_str()])?;
    assert!(stats.status.success());
    assert!(String::from_utf8(stats.stdout)?.contains(&leftover));

    // Under a three-year retention it has not: a segment is missing.
    let long = ["--retention-secs", "100000000"];
    let (code, out, _) = verify(t.path(), &long)?;
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "CORRUPT {} at file position 0: segment 2 of this key is missing",
            segment_path(t.path(), 3).display()
        )),
        "{out}"
    );
    let mut args = vec![OsStr::new("stats"), t.path().as_os_str()];
    args.extend(long.iter().map(OsStr::new));
    let stats = nano_wal(args)?;
    let err = String::from_utf8(stats.stderr)?;
    assert_eq!(stats.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("segment 2 of this key is missing"), "{err}");
    Ok(())
}
