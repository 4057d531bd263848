//! Nothing a user writes as content can pass for a record.
//!
//! A producer who controls a record's content embeds, inside it, a
//! correctly encoded record for the place it will land at: in the layout of
//! FORMAT.md's version 2 (whose checksum a producer can compute) and of
//! version 3 (whose checksum needs the segment's random salt, which the
//! producer cannot know; it guesses). A reference forged to point at the
//! embedded bytes must never return a record, and a crash that tears the
//! outer record after the embedded one is an ordinary torn tail.

mod common;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError, key_hash};

const KEY: &str = "events";
/// Segment header length by format version: fixed bytes + the key.
const HEADER_V2: u64 = 56 + KEY.len() as u64;
const HEADER_V3: u64 = 64 + KEY.len() as u64;
const FIXED_V2: u64 = 20;
const FIXED_V3: u64 = 24;
const FORGED: &[u8] = b"forged: transfer 1,000,000 to mallory";
const FORGED_LEN: u32 = 37;
const _: () = assert!(FORGED.len() == FORGED_LEN as usize);

/// A record in FORMAT.md's version-2 layout, bound to its place.
fn v2_record(hash: u64, position: u64) -> Vec<u8> {
    let mut r = vec![0u8; 4];
    r.extend_from_slice(&FORGED_LEN.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes());
    r.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
    r.extend_from_slice(FORGED);
    let mut binding = Vec::new();
    for v in [hash, 1, position] {
        binding.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&r[4..]), &binding);
    r[..4].copy_from_slice(&crc.to_le_bytes());
    r
}

/// A record in FORMAT.md's version-3 layout for a guessed salt.
fn v3_record(hash: u64, position: u64, salt_guess: u64) -> Vec<u8> {
    let mut r = vec![0u8; 4];
    r.extend_from_slice(&FORGED_LEN.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes());
    r.extend_from_slice(&2u16.to_le_bytes()); // the record flag
    r.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
    r.extend_from_slice(&crc32c::crc32c(FORGED).to_le_bytes());
    let mut binding = Vec::new();
    for v in [salt_guess, hash, 1, position] {
        binding.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&r[4..24]), &binding);
    r[..4].copy_from_slice(&crc.to_le_bytes());
    r.extend_from_slice(FORGED);
    r
}

/// Content for the record appended right after a 5-byte first record,
/// embedding a forged record in each layout (version 3: one per salt guess)
/// bound to the place it lands at under that layout; and the `EntryRef`
/// offsets of the embedded records.
fn hostile_content(tail_bytes: usize) -> (Bytes, Vec<u64>) {
    let hash = key_hash(KEY.as_bytes());
    let outer_v2 = FIXED_V2 + 5;
    let outer_v3 = FIXED_V3 + 5;
    let mut content = Vec::new();
    let mut forged_offsets = Vec::new();
    let v2_offset = outer_v2 + FIXED_V2;
    forged_offsets.push(v2_offset);
    content.extend(v2_record(hash, HEADER_V2 + v2_offset));
    for salt_guess in [0, 1, u64::MAX] {
        let offset = outer_v3 + FIXED_V3 + content.len() as u64;
        forged_offsets.push(offset);
        content.extend(v3_record(hash, HEADER_V3 + offset, salt_guess));
    }
    content.resize(content.len() + tail_bytes, 0xAB);
    (Bytes::from(content), forged_offsets)
}

fn forged_ref(offset: u64) -> EntryRef {
    EntryRef {
        key_hash: key_hash(KEY.as_bytes()),
        sequence_number: 1,
        offset,
    }
}

#[test]
fn a_reference_into_content_never_returns_a_record() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;
    let first = wal.append_entry(KEY, None, Bytes::from("first"), true)?;
    let (content, forged) = hostile_content(100);
    let outer = wal.append_entry(KEY, None, content.clone(), true)?;
    assert_eq!(wal.read_entry_at(outer)?, content);
    assert_eq!(wal.read_entry_at(first)?, "first");

    for offset in forged {
        let r = forged_ref(offset);
        match wal.read_record_at(r) {
            Err(WalError::CorruptedData(_) | WalError::EntryNotFound(_)) => {}
            other => panic!("forged reference {r} gave {other:?}"),
        }
        let mut from = wal.records_from(r)?;
        assert!(
            matches!(from.next(), Some(Err(WalError::CorruptedData(_)))),
            "records_from a forged reference {r} must not start with a record"
        );
    }
    Ok(())
}

#[test]
fn a_torn_record_around_embedded_ones_is_a_torn_tail() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let first = {
        let wal = Wal::builder(dir.path()).open()?;
        let first = wal.append_entry(KEY, None, Bytes::from("first"), true)?;
        let (content, _) = hostile_content(64 * 1024);
        wal.append_entry(KEY, None, content, false)?;
        wal.close()?;
        first
    };
    // A crash tears the outer record well after the embedded records (in
    // a directory without a journal, as earlier versions wrote).
    common::forget_journal(dir.path())?;
    common::tear_only_segment(dir.path(), 1024)?;

    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(wal.recovery_report().torn_tails.len(), 1);
    assert_eq!(wal.read_entry_at(first)?, "first");
    let all: Vec<Bytes> = wal
        .records(KEY)?
        .map(|r| r.map(|r| r.content))
        .collect::<Result<_, WalError>>()?;
    assert_eq!(all, [Bytes::from("first")]);
    Ok(())
}
