//! Corruption in the middle of a log (a flipped bit, a zeroed sector, a
//! record's bytes copied to another place) is reported as
//! `WalError::CorruptedData` naming the file and position — never skipped,
//! never returned as wrong bytes, never cut off as if it were a torn tail.
//! Damage in a key's newest segment fails an open that scans the segments
//! (a directory without a manifest, as earlier versions wrote; here one
//! whose journal and manifest were removed); damage in an older, sealed
//! segment fails the reads that reach it. With a manifest, opening reads no
//! segment and reads report the damage (`damage_after_clean_close.rs`).

mod common;

use std::error::Error;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError, WalOptions, key_hash};

type TestResult = Result<(), Box<dyn Error>>;

const KEY: &str = "ledger";
/// Version-3 segment header length for `KEY`: 64 fixed bytes + the key.
const HEADER_LEN: u64 = 64 + KEY.len() as u64;
/// Fixed part of a version-3 record, before its header and content.
const RECORD_FIXED: u64 = 24;

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{KEY}-{}-{seq:04}.log", key_hash(KEY.as_bytes())))
}

/// Absolute file position where the record starts.
fn start_of(r: EntryRef) -> u64 {
    HEADER_LEN + r.offset
}

/// Content of record `i`, `len` bytes long (every record the same length).
fn content(i: usize, len: usize) -> Bytes {
    let mut s = format!("record-{i:03}|");
    while s.len() < len {
        s.push(char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)));
    }
    s.truncate(len);
    Bytes::from(s)
}

/// Write `n` records of `len` content bytes for `KEY`, durably, and close.
fn write(
    dir: &Path,
    n: usize,
    len: usize,
    max_segment_bytes: Option<u64>,
) -> Result<(Vec<EntryRef>, Vec<Bytes>), WalError> {
    let mut b = Wal::builder(dir);
    if let Some(m) = max_segment_bytes {
        b = b.max_segment_bytes(m);
    }
    let wal = b.open()?;
    let mut refs = Vec::new();
    let mut contents = Vec::new();
    for i in 0..n {
        refs.push(wal.append_entry(KEY, None, content(i, len), true)?);
        contents.push(content(i, len));
    }
    wal.close()?;
    common::forget_journal(dir)?;
    Ok((refs, contents))
}

fn flip_bit(path: &Path, pos: u64, bit: u8) -> Result<(), Box<dyn Error>> {
    let mut bytes = std::fs::read(path)?;
    let i = usize::try_from(pos)?;
    bytes[i] ^= 1 << bit;
    std::fs::write(path, bytes)?;
    Ok(())
}

fn overwrite(path: &Path, pos: u64, with: &[u8]) -> Result<(), Box<dyn Error>> {
    let mut bytes = std::fs::read(path)?;
    let i = usize::try_from(pos)?;
    bytes[i..i + with.len()].copy_from_slice(with);
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The bytes of the record `r` (which has content `len` bytes, no header).
fn record_bytes(path: &Path, r: EntryRef, len: usize) -> Result<Vec<u8>, Box<dyn Error>> {
    let bytes = std::fs::read(path)?;
    let from = usize::try_from(start_of(r))?;
    let to = from + usize::try_from(RECORD_FIXED)? + len;
    Ok(bytes[from..to].to_vec())
}

/// Whether `msg` contains `n` as a whole number (not part of a longer one).
fn mentions_number(msg: &str, n: u64) -> bool {
    msg.split(|c: char| !c.is_ascii_digit())
        .any(|tok| tok == n.to_string())
}

/// The message of a `CorruptedData`, or a failure naming what came instead.
fn corrupted_message<T: std::fmt::Debug>(what: &str, r: Result<T, WalError>) -> String {
    match r {
        Err(WalError::CorruptedData(msg)) => msg,
        other => panic!("{what}: expected CorruptedData, got {other:?}"),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn bit_flip_in_the_newest_segment_fails_the_open_naming_file_and_position() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let (refs, _) = write(&dir, 10, 40, None)?;
    let seg = segment_path(&dir, 1);
    assert!(
        refs.iter().all(|r| r.sequence_number == 1),
        "test setup: one segment"
    );
    let target = start_of(refs[3]);
    flip_bit(&seg, target + RECORD_FIXED + 17, 2)?;
    let damaged = std::fs::read(&seg)?;

    let msg = corrupted_message("builder open", Wal::builder(&dir).open().map(|_| ()));
    assert!(
        msg.contains(&file_name(&seg)),
        "message names the file: {msg}"
    );
    assert!(
        mentions_number(&msg, target),
        "message names position {target}: {msg}"
    );

    // The 0.5 entry point and a read-only open refuse it too.
    let path = dir.to_str().ok_or("path is not UTF-8")?;
    corrupted_message(
        "Wal::new",
        Wal::new(path, WalOptions::default()).map(|_| ()),
    );
    corrupted_message(
        "read-only open",
        Wal::builder(&dir).read_only(true).open().map(|_| ()),
    );
    assert_eq!(
        std::fs::read(&seg)?,
        damaged,
        "a failed open never cuts off the records after the damage"
    );
    Ok(())
}

#[test]
fn bit_flip_in_a_header_field_of_a_middle_record_fails_the_open() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let (refs, _) = write(&dir, 10, 40, None)?;
    let seg = segment_path(&dir, 1);
    // A bit of the timestamp: the record still parses, only the CRC tells.
    let target = start_of(refs[3]);
    flip_bit(&seg, target + 12, 0)?;
    let msg = corrupted_message("open", Wal::builder(&dir).open().map(|_| ()));
    assert!(msg.contains(&file_name(&seg)), "{msg}");
    assert!(mentions_number(&msg, target), "position {target}: {msg}");
    Ok(())
}

/// Records of ~1000 bytes with 4 KiB segments: 3 records per segment.
const BIG: usize = 1000;
const SMALL_SEGMENTS: u64 = 4096;

#[test]
fn bit_flip_in_a_sealed_segment_fails_every_read_that_reaches_it() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let (refs, contents) = write(&dir, 10, BIG, Some(SMALL_SEGMENTS))?;
    let last_seq = refs.iter().map(|r| r.sequence_number).max().unwrap_or(0);
    assert!(last_seq >= 3, "test setup: several segments ({last_seq})");
    let in_first: Vec<usize> = (0..refs.len())
        .filter(|&i| refs[i].sequence_number == 1)
        .collect();
    assert!(in_first.len() >= 3, "test setup: {in_first:?}");
    let damaged_i = 1;
    let seg1 = segment_path(&dir, 1);
    flip_bit(&seg1, start_of(refs[damaged_i]) + RECORD_FIXED + 500, 7)?;

    // Sealed segments are checked lazily: the open succeeds.
    let wal = Wal::builder(&dir)
        .max_segment_bytes(SMALL_SEGMENTS)
        .open()?;
    assert!(wal.recovery_report().torn_tails.is_empty());

    let msg = corrupted_message("read_entry_at", wal.read_entry_at(refs[damaged_i]));
    assert!(msg.contains(&file_name(&seg1)), "{msg}");
    assert!(
        mentions_number(&msg, start_of(refs[damaged_i])),
        "position {}: {msg}",
        start_of(refs[damaged_i])
    );
    corrupted_message("read_record_at", wal.read_record_at(refs[damaged_i]));
    // The undamaged records around it still read correctly.
    for i in (0..refs.len()).filter(|&i| i != damaged_i) {
        assert_eq!(wal.read_entry_at(refs[i])?, contents[i], "record {i}");
    }

    // The stream yields the records before the damage, one error, then ends.
    let mut it = wal.records(KEY)?;
    for (i, expected) in contents.iter().enumerate().take(damaged_i) {
        let r = it.next().ok_or("stream ended early")??;
        assert_eq!(&r.content, expected, "record {i}");
        assert_eq!(r.entry_ref, refs[i]);
    }
    corrupted_message("records()", it.next().ok_or("stream ended, no error")?);
    assert!(it.next().is_none(), "the stream ends after its error");

    corrupted_message(
        "enumerate_records",
        wal.enumerate_records(KEY).map(|c| c.count()),
    );
    // Still an error the second time: the damage is never skipped.
    corrupted_message("read_entry_at again", wal.read_entry_at(refs[damaged_i]));
    corrupted_message(
        "enumerate_records again",
        wal.enumerate_records(KEY).map(|c| c.count()),
    );
    let from_start = wal.records_from(refs[0])?;
    let results: Vec<_> = from_start.collect();
    assert_eq!(
        results.len(),
        damaged_i + 1,
        "records_from stops at the error"
    );
    assert!(matches!(
        results.last(),
        Some(Err(WalError::CorruptedData(_)))
    ));
    Ok(())
}

#[test]
fn zeroed_sector_in_the_middle_of_the_newest_segment_fails_the_open() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let len = 100;
    let (refs, _) = write(&dir, 20, len, None)?;
    let seg = segment_path(&dir, 1);
    let file_len = std::fs::metadata(&seg)?.len();
    assert!(file_len > 1024 + 2 * (RECORD_FIXED + 100), "test setup");
    overwrite(&seg, 512, &[0u8; 512])?;
    let damaged = std::fs::read(&seg)?;
    // The record that holds byte 512 is the first one damaged.
    let rec_len = RECORD_FIXED + len as u64;
    let first_bad = refs
        .iter()
        .map(|r| start_of(*r))
        .find(|&s| s <= 512 && 512 < s + rec_len)
        .ok_or("no record holds byte 512")?;

    let msg = corrupted_message("open", Wal::builder(&dir).open().map(|_| ()));
    assert!(msg.contains(&file_name(&seg)), "{msg}");
    assert!(
        mentions_number(&msg, first_bad),
        "position {first_bad}: {msg}"
    );
    assert_eq!(
        std::fs::read(&seg)?,
        damaged,
        "the valid records after the sector are not cut off"
    );
    Ok(())
}

#[test]
fn a_record_copied_to_another_position_does_not_verify() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let len = 40;
    let (refs, _) = write(&dir, 10, len, None)?;
    let seg = segment_path(&dir, 1);
    // Overwrite record 5 with record 4's bytes: well-formed, same length.
    let copy = record_bytes(&seg, refs[4], len)?;
    overwrite(&seg, start_of(refs[5]), &copy)?;

    let msg = corrupted_message("open", Wal::builder(&dir).open().map(|_| ()));
    assert!(msg.contains(&file_name(&seg)), "{msg}");
    assert!(
        mentions_number(&msg, start_of(refs[5])),
        "position {}: {msg}",
        start_of(refs[5])
    );
    Ok(())
}

#[test]
fn a_record_copied_within_or_across_sealed_segments_is_never_returned() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let (refs, contents) = write(&dir, 10, BIG, Some(SMALL_SEGMENTS))?;
    assert_eq!(refs[1].sequence_number, 1, "test setup");
    assert_eq!(
        (refs[3].sequence_number, refs[3].offset),
        (2, 0),
        "test setup: record 3 opens segment 2"
    );
    let seg1 = segment_path(&dir, 1);
    let seg2 = segment_path(&dir, 2);
    // Within segment 1: record 0's bytes over record 1 (another position).
    let r0 = record_bytes(&seg1, refs[0], BIG)?;
    overwrite(&seg1, start_of(refs[1]), &r0)?;
    // Across segments: record 0's bytes at the same offset of segment 2.
    overwrite(&seg2, start_of(refs[3]), &r0)?;

    let wal = Wal::builder(&dir)
        .max_segment_bytes(SMALL_SEGMENTS)
        .open()?;
    assert_eq!(wal.read_entry_at(refs[0])?, contents[0]);
    corrupted_message("copy at another position", wal.read_entry_at(refs[1]));
    corrupted_message("copy in another segment", wal.read_entry_at(refs[3]));
    assert_eq!(wal.read_entry_at(refs[2])?, contents[2]);
    assert_eq!(wal.read_entry_at(refs[4])?, contents[4]);
    corrupted_message(
        "enumerate_records",
        wal.enumerate_records(KEY).map(|c| c.count()),
    );
    Ok(())
}
