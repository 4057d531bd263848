//! A torn tail left by a crash in the middle of an append (the last record of
//! a key's newest segment cut short, or followed by garbage, zeros or a
//! zero-filled extension) is not an error: the open returns every record
//! before it, never the torn one, reports it in `recovery_report()`, cuts it
//! off so appends continue cleanly — unless `AbsoluteConsistency` is asked
//! for, and a read-only open changes nothing on disk.
//!
//! These are the rules for segments opened without a journal: directories
//! that earlier versions wrote (here: a directory whose journal and manifest
//! were removed). With a journal, a segment's bytes past the last checkpoint
//! are rebuilt from it (`journal_replay.rs`).

mod common;

use std::error::Error;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::{EntryRef, RecoveryMode, Wal, WalError};

type TestResult = Result<(), Box<dyn Error>>;

const KEY: &str = "stream";
const N: usize = 6;
/// Version-3 segment header length for `KEY`: 64 fixed bytes + the key.
const HEADER_LEN: u64 = 64 + KEY.len() as u64;
/// Fixed part of a version-3 record.
const RECORD_FIXED: u64 = 24;

struct Written {
    refs: Vec<EntryRef>,
    contents: Vec<Bytes>,
    segment: PathBuf,
}

fn content(i: usize) -> Bytes {
    Bytes::from(format!("record {i}: {}", "payload-".repeat(i + 2)))
}

fn header(i: usize) -> Option<Bytes> {
    (i % 2 == 1).then(|| Bytes::from(format!("hdr{i}")))
}

/// The only segment file in `dir`.
fn only_segment(dir: &Path) -> Result<PathBuf, Box<dyn Error>> {
    let mut segs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "log") {
            segs.push(p);
        }
    }
    assert_eq!(segs.len(), 1, "expected a single segment: {segs:?}");
    Ok(segs.remove(0))
}

/// Write `N` records for `KEY` (the last one with a header) and close.
fn write_records(dir: &Path) -> Result<Written, Box<dyn Error>> {
    let wal = Wal::builder(dir).open()?;
    let mut refs = Vec::new();
    let mut contents = Vec::new();
    for i in 0..N {
        refs.push(wal.append_entry(KEY, header(i), content(i), true)?);
        contents.push(content(i));
    }
    drop(wal);
    common::forget_journal(dir)?;
    let segment = only_segment(dir)?;
    Ok(Written {
        refs,
        contents,
        segment,
    })
}

fn file_len(p: &Path) -> Result<u64, std::io::Error> {
    Ok(std::fs::metadata(p)?.len())
}

fn set_len(p: &Path, len: u64) -> Result<(), std::io::Error> {
    OpenOptions::new().write(true).open(p)?.set_len(len)
}

fn append_bytes(p: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    OpenOptions::new().append(true).open(p)?.write_all(bytes)
}

fn contents(wal: &Wal) -> Result<Vec<Bytes>, WalError> {
    Ok(wal.enumerate_records(KEY)?.collect())
}

/// Records via the fallible iterator: must end without an error.
fn records(wal: &Wal) -> Result<Vec<Bytes>, WalError> {
    wal.records(KEY)?.map(|r| r.map(|r| r.content)).collect()
}

fn start_of(r: EntryRef) -> u64 {
    HEADER_LEN + r.offset
}

/// Whether the bytes a cut leaves of the last record are all zero. A
/// record starts with its checksum, which folds in the segment's random
/// salt, so its first byte is zero in about one run in 256; then the cut
/// leaves what the rules call preallocated space, not a torn record.
fn only_zeros(file: &[u8], from: u64, to: u64) -> bool {
    let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to)) else {
        return false;
    };
    file.get(from..to)
        .is_some_and(|b| b.iter().all(|&x| x == 0))
}

#[test]
fn every_cut_of_the_last_record_is_a_tolerated_torn_tail() -> TestResult {
    let t = tempfile::tempdir()?;
    let pristine_dir = t.path().join("pristine");
    let w = write_records(&pristine_dir)?;
    let name = w.segment.file_name().ok_or("no file name")?.to_owned();
    let pristine = std::fs::read(&w.segment)?;
    let last = w.refs[N - 1];
    let last_start = start_of(last);
    let end = pristine.len() as u64;
    let last_header_len = header(N - 1).map_or(0, |h| h.len()) as u64;
    assert_eq!(
        end,
        last_start + RECORD_FIXED + last_header_len + w.contents[N - 1].len() as u64,
        "test setup: the last record ends the file"
    );
    let prefix = &w.contents[..N - 1];

    for cut in last_start..end {
        let dir = t.path().join(format!("cut{cut}"));
        std::fs::create_dir_all(&dir)?;
        let seg = dir.join(&name);
        std::fs::write(&seg, &pristine)?;
        set_len(&seg, cut)?;

        let wal = Wal::builder(&dir).open()?;
        assert_eq!(contents(&wal)?, prefix, "cut {cut}: enumerate_records");
        assert_eq!(records(&wal)?, prefix, "cut {cut}: records()");
        for (r, c) in w.refs.iter().zip(prefix) {
            assert_eq!(wal.read_entry_at(*r)?, c, "cut {cut}: read {r}");
        }
        assert!(
            matches!(wal.read_entry_at(last), Err(WalError::EntryNotFound(_))),
            "cut {cut}: the torn record is never returned"
        );
        let report = wal.recovery_report();
        if cut == last_start || only_zeros(&pristine, last_start, cut) {
            // The file ends exactly at a record boundary, or in bytes that
            // are all zero, which the rules call preallocated space: nothing
            // is torn.
            assert!(report.torn_tails.is_empty(), "cut {cut}: {report:?}");
        } else {
            assert_eq!(report.torn_tails.len(), 1, "cut {cut}: {report:?}");
            let torn = &report.torn_tails[0];
            assert_eq!(torn.file_position, last_start, "cut {cut}");
            assert_eq!(torn.bytes_dropped, cut - last_start, "cut {cut}");
            assert_eq!(torn.path.file_name(), Some(name.as_os_str()), "cut {cut}");
            assert!(torn.repaired, "cut {cut}: a writer repairs the tail");
        }
        assert_eq!(
            file_len(&seg)?,
            last_start,
            "cut {cut}: the torn bytes are cut off"
        );

        let new_content = Bytes::from(format!("after crash at {cut}"));
        let new = wal.append_entry(KEY, None, new_content.clone(), true)?;
        assert_eq!(
            (new.sequence_number, new.offset),
            (last.sequence_number + 1, 0),
            "cut {cut}: appends after recovery start a new segment, so the torn record's offset is never reused"
        );
        assert!(
            matches!(wal.read_entry_at(last), Err(WalError::EntryNotFound(_))),
            "cut {cut}: the torn record's reference never resolves to the new record"
        );
        drop(wal);

        let wal = Wal::builder(&dir).open()?;
        let mut expected = prefix.to_vec();
        expected.push(new_content.clone());
        assert_eq!(contents(&wal)?, expected, "cut {cut}: after reopening");
        assert_eq!(
            records(&wal)?,
            expected,
            "cut {cut}: records() after reopen"
        );
        assert_eq!(wal.read_entry_at(new)?, new_content);
        assert!(
            wal.recovery_report().torn_tails.is_empty(),
            "cut {cut}: nothing torn after the repair: {:?}",
            wal.recovery_report()
        );
    }
    Ok(())
}

/// Deterministic pseudo-random bytes (xorshift), none of them a valid record.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// Write `N` intact records and grow their segment with `damage`; returns
/// them and the segment's length before.
fn write_and_grow(
    dir: &Path,
    what: &str,
    damage: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<(Written, u64), Box<dyn Error>> {
    let w = write_records(dir)?;
    let good_len = file_len(&w.segment)?;
    damage(&w.segment)?;
    assert!(file_len(&w.segment)? > good_len, "{what}: test setup");
    Ok((w, good_len))
}

/// Write `N` intact records, damage the end of the file with `damage`, and
/// check the open keeps all `N`, reports the damage as a torn tail at the old
/// end, cuts it off, and lets appends continue.
fn check_garbage_tail(what: &str, damage: impl Fn(&Path) -> std::io::Result<()>) -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let (w, good_len) = write_and_grow(&dir, what, damage)?;

    let wal = Wal::builder(&dir).open()?;
    assert_eq!(contents(&wal)?, w.contents, "{what}: every record survives");
    assert_eq!(records(&wal)?, w.contents, "{what}: records()");
    let report = wal.recovery_report();
    assert_eq!(report.torn_tails.len(), 1, "{what}: {report:?}");
    assert_eq!(report.torn_tails[0].file_position, good_len, "{what}");
    assert_eq!(file_len(&w.segment)?, good_len, "{what}: garbage cut off");

    let new = wal.append_entry(KEY, None, Bytes::from_static(b"next"), true)?;
    let last = w.refs.last().copied().ok_or("no records")?;
    assert_eq!(
        (new.sequence_number, new.offset),
        (last.sequence_number + 1, 0),
        "{what}: appends after recovery start a new segment"
    );
    assert_eq!(
        file_len(&w.segment)?,
        good_len,
        "{what}: the recovered segment is never appended to"
    );
    drop(wal);
    let wal = Wal::builder(&dir).open()?;
    let mut expected = w.contents.clone();
    expected.push(Bytes::from_static(b"next"));
    assert_eq!(contents(&wal)?, expected, "{what}: after reopening");
    assert!(wal.recovery_report().torn_tails.is_empty(), "{what}");
    Ok(())
}

#[test]
fn random_garbage_after_the_last_record_is_a_torn_tail() -> TestResult {
    check_garbage_tail("100 noise bytes", |p| append_bytes(p, &noise(100)))
}

/// Zeros after the last record are preallocated space (FORMAT.md §8): the
/// open keeps all `N` records under either policy, reports nothing torn,
/// trims the zeros, and appends continue in a new segment.
fn check_zero_tail(what: &str, damage: impl Fn(&Path) -> std::io::Result<()>) -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let (w, good_len) = write_and_grow(&dir, what, damage)?;

    let strict = Wal::builder(&dir)
        .recovery(RecoveryMode::AbsoluteConsistency)
        .read_only(true)
        .open()?;
    assert_eq!(
        contents(&strict)?,
        w.contents,
        "{what}: AbsoluteConsistency"
    );
    drop(strict);
    let wal = Wal::builder(&dir).open()?;
    assert_eq!(contents(&wal)?, w.contents, "{what}: every record survives");
    assert_eq!(records(&wal)?, w.contents, "{what}: records()");
    let report = wal.recovery_report();
    assert!(report.torn_tails.is_empty(), "{what}: {report:?}");
    assert_eq!(file_len(&w.segment)?, good_len, "{what}: zeros trimmed");
    let new = wal.append_entry(KEY, None, Bytes::from_static(b"next"), true)?;
    assert_eq!(new.offset, 0, "{what}: appends start a new segment");
    drop(wal);
    let wal = Wal::builder(&dir).open()?;
    let mut expected = w.contents.clone();
    expected.push(Bytes::from_static(b"next"));
    assert_eq!(contents(&wal)?, expected, "{what}: after reopening");
    Ok(())
}

#[test]
fn zeroed_sector_after_the_last_record_is_preallocated_space() -> TestResult {
    check_zero_tail("512 zero bytes", |p| append_bytes(p, &[0u8; 512]))
}

#[test]
fn file_grown_with_zeros_is_preallocated_space() -> TestResult {
    check_zero_tail("grown by 4096 zeros", |p| {
        let len = std::fs::metadata(p)?.len();
        set_len(p, len + 4096)
    })
}

#[test]
fn zeros_then_garbage_after_the_last_record_is_a_torn_tail() -> TestResult {
    check_garbage_tail("512 zeros then 100 noise bytes", |p| {
        append_bytes(p, &[0u8; 512])?;
        append_bytes(p, &noise(100))
    })
}

#[test]
fn absolute_consistency_refuses_a_torn_tail() -> TestResult {
    let t = tempfile::tempdir()?;
    let pristine_dir = t.path().join("pristine");
    let w = write_records(&pristine_dir)?;
    let name = w.segment.file_name().ok_or("no file name")?.to_owned();
    let pristine = std::fs::read(&w.segment)?;
    let last_start = start_of(w.refs[N - 1]);
    let end = pristine.len() as u64;
    for cut in [
        last_start + 1,
        last_start + RECORD_FIXED,
        (last_start + end) / 2,
        end - 1,
    ] {
        let dir = t.path().join(format!("cut{cut}"));
        std::fs::create_dir_all(&dir)?;
        let seg = dir.join(&name);
        std::fs::write(&seg, &pristine[..usize::try_from(cut)?])?;
        let opened = Wal::builder(&dir)
            .recovery(RecoveryMode::AbsoluteConsistency)
            .open();
        if only_zeros(&pristine, last_start, cut) {
            // Preallocated space, not a torn record: even the strict mode
            // opens it.
            assert_eq!(contents(&opened?)?, &w.contents[..N - 1], "cut {cut}");
            continue;
        }
        assert!(
            matches!(opened, Err(WalError::CorruptedData(_))),
            "cut {cut}: expected CorruptedData, got {opened:?}"
        );
        assert_eq!(file_len(&seg)?, cut, "cut {cut}: nothing changed on disk");
        // The default policy still opens it.
        let wal = Wal::builder(&dir).open()?;
        assert_eq!(contents(&wal)?, &w.contents[..N - 1], "cut {cut}");
    }
    // Garbage after intact records is refused as well.
    let seg = w.segment.clone();
    append_bytes(&seg, &noise(512))?;
    let opened = Wal::builder(&pristine_dir)
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open();
    assert!(
        matches!(opened, Err(WalError::CorruptedData(_))),
        "garbage tail: expected CorruptedData, got {opened:?}"
    );
    assert_eq!(file_len(&seg)?, end + 512);
    // An intact directory opens under AbsoluteConsistency.
    set_len(&seg, end)?;
    let wal = Wal::builder(&pristine_dir)
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open()?;
    assert_eq!(contents(&wal)?, w.contents);
    Ok(())
}

#[test]
fn read_only_open_of_a_torn_directory_returns_the_prefix_and_changes_nothing() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let w = write_records(&dir)?;
    let last_start = start_of(w.refs[N - 1]);
    let cut = last_start + RECORD_FIXED + 2;
    set_len(&w.segment, cut)?;
    let before = std::fs::read(&w.segment)?;

    let wal = Wal::builder(&dir).read_only(true).open()?;
    assert!(wal.is_read_only());
    assert_eq!(contents(&wal)?, &w.contents[..N - 1]);
    assert_eq!(records(&wal)?, &w.contents[..N - 1]);
    assert!(wal.read_entry_at(w.refs[N - 1]).is_err(), "torn record");
    let report = wal.recovery_report();
    assert_eq!(report.torn_tails.len(), 1, "{report:?}");
    assert_eq!(report.torn_tails[0].file_position, last_start);
    assert!(!report.torn_tails[0].repaired, "read-only never repairs");
    assert!(matches!(
        wal.append_entry(KEY, None, Bytes::from_static(b"x"), false),
        Err(WalError::ReadOnly(_))
    ));
    assert_eq!(
        file_len(&w.segment)?,
        cut,
        "file length unchanged while open"
    );
    drop(wal);
    assert_eq!(
        std::fs::read(&w.segment)?,
        before,
        "a read-only open changes nothing on disk"
    );

    // A writer opening afterwards still sees and repairs the tear.
    let wal = Wal::builder(&dir).open()?;
    assert_eq!(wal.recovery_report().torn_tails.len(), 1);
    assert_eq!(file_len(&w.segment)?, last_start);
    Ok(())
}

/// A sealed (older) segment whose cut of preallocated space did not reach
/// the disk: its records are intact and followed by zeros. Every record is
/// still read back, and a writer trims the zeros.
#[test]
fn zeros_after_the_last_record_of_a_sealed_segment_are_preallocated_space() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let mut expected = Vec::new();
    {
        let wal = Wal::builder(&dir).max_segment_bytes(4096).open()?;
        for i in 0..200 {
            let c = Bytes::from(format!("record {i:04} of a multi-segment key"));
            wal.append_entry(KEY, None, c.clone(), false)?;
            expected.push(c);
        }
        wal.close()?;
    }
    // As the version before the journal left it (it preallocated).
    common::forget_journal(&dir)?;
    let first = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-0001.log"))
        .ok_or("no first segment")?;
    let good_len = file_len(&first)?;
    set_len(&first, good_len + 1000)?;

    let wal = Wal::builder(&dir).open()?;
    assert_eq!(contents(&wal)?, expected, "every record survives");
    assert!(wal.recovery_report().torn_tails.is_empty());
    assert_eq!(file_len(&first)?, good_len, "the zeros were trimmed");
    Ok(())
}
