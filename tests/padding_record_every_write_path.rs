//! The record that FORMAT.md version 2 could encode as all-zero fixed bytes
//! (empty content, no header, stamped at the Unix epoch, at a place where
//! its checksum comes out 0) goes through every public write method, is
//! acknowledged, reads back, and the key still opens after more appends.
//!
//! Version 2 refused it from `append_entry` but wrote it from
//! `append_batch` as 20 zero bytes, which read as preallocated space: the
//! acknowledged reference then failed, and the key could no longer be
//! opened. Version 3 sets a flag in every record, so no record's fixed
//! bytes are ever all zero; this test puts the record exactly where
//! version 2's checksum would be 0.

use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal, WalError, key_hash};

/// Keys of one length, so every candidate has the same header length.
fn key(i: u32) -> String {
    format!("k{i:05}")
}

/// Version 2's checksum of the epoch-stamped empty record at `position` in
/// sequence 1 of the key with hash `hash`.
fn v2_crc(hash: u64, position: u64) -> u32 {
    let mut input = vec![0u8; 16];
    for v in [hash, 1, position] {
        input.extend_from_slice(&v.to_le_bytes());
    }
    crc32c::crc32c(&input)
}

/// The position below 2^32 where `v2_crc` is 0, by Gaussian elimination:
/// the CRC is affine in the position's bits.
fn zero_crc_position(hash: u64) -> Option<u64> {
    let base = v2_crc(hash, 0);
    // Column i: what flipping position bit i does to the CRC.
    let mut rows: Vec<(u32, u64)> = (0..32)
        .map(|i| (v2_crc(hash, 1 << i) ^ base, 1u64 << i))
        .collect();
    // Solve sum of chosen columns == base: reduce to a basis over CRC bits.
    let mut basis: Vec<(u32, u64)> = Vec::new();
    for (mut v, mut pos) in rows.drain(..) {
        for &(b, bp) in &basis {
            if v ^ b < v {
                v ^= b;
                pos ^= bp;
            }
        }
        if v != 0 {
            basis.push((v, pos));
            basis.sort_by_key(|b| std::cmp::Reverse(b.0));
        }
    }
    let (mut target, mut pos) = (base, 0u64);
    for &(b, bp) in &basis {
        if target ^ b < target {
            target ^= b;
            pos ^= bp;
        }
    }
    (target == 0).then_some(pos)
}

/// A key and the file position where version 2 would write all zeros,
/// within the first `limit` bytes of its segment.
fn dangerous_place(limit: u64) -> (String, u64) {
    (0..1_000_000)
        .find_map(|i| {
            let k = key(i);
            let p = zero_crc_position(key_hash(k.as_bytes()))?;
            assert_eq!(v2_crc(key_hash(k.as_bytes()), p), 0, "the solution solves");
            (p > 256 && p < limit).then_some((k, p))
        })
        .expect("some key has a dangerous place within the limit")
}

/// The fixed bytes of a record and the segment header length for a key of
/// `key(0)`'s length, as this build writes them.
fn layout() -> Result<(u64, u64), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;
    wal.append_entry(key(0), None, Bytes::new(), false)?;
    let second = wal.append_entry(key(0), None, Bytes::new(), false)?;
    wal.close()?;
    let fixed = second.offset;
    let file = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .ok_or_else(|| WalError::InvalidConfig("no segment".into()))?;
    Ok((fixed, file.metadata()?.len() - 2 * fixed))
}

type Write = fn(&Wal, &str) -> Result<EntryRef, WalError>;

/// `append_batch` first: it is the path that used to write the zeros.
const WRITE_PATHS: [(&str, Write); 4] = [
    ("append_batch", |w, k| {
        Ok(w.append_batch([(k, None, Bytes::new())], false)?[0])
    }),
    ("append_batch durable", |w, k| {
        Ok(w.append_batch([(k, None, Bytes::new())], true)?[0])
    }),
    ("append_entry", |w, k| {
        w.append_entry(k, None, Bytes::new(), false)
    }),
    ("log_entry", |w, k| w.log_entry(k, None, Bytes::new())),
];

#[test]
fn the_epoch_stamped_empty_record_is_written_and_read_by_every_write_path() -> Result<(), WalError>
{
    let (fixed, header_len) = layout()?;
    let (k, position) = dangerous_place(32 << 20);
    for (name, write) in WRITE_PATHS {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(0));
        let open = || {
            Wal::builder(dir.path())
                .clock(clock.clone())
                .max_segment_bytes(64 << 20)
                .open()
        };
        let wal = open()?;
        // One filler record so that the next one starts at `position`.
        let filler = position - header_len - fixed;
        let filler_len =
            usize::try_from(filler).map_err(|e| WalError::InvalidConfig(e.to_string()))?;
        wal.append_entry(&k, None, Bytes::from(vec![1u8; filler_len]), false)?;
        let r = write(&wal, &k)
            .map_err(|e| WalError::InvalidConfig(format!("{name} refused the record: {e}")))?;
        assert_eq!(r.offset + header_len, position, "{name}: setup");
        let back = wal.read_record_at(r)?;
        assert_eq!(back.content, Bytes::new(), "{name}");
        assert_eq!(back.header, None, "{name}");
        assert_eq!(back.timestamp_unix_ms, Some(0), "{name}");
        clock.set_ms(1);
        let after = wal.append_entry(&k, None, Bytes::from("after"), true)?;
        drop(wal);

        let wal = open()?;
        assert_eq!(wal.read_record_at(r)?.content, Bytes::new(), "{name}");
        assert_eq!(wal.read_entry_at(after)?, "after", "{name}");
        assert_eq!(wal.records(&k)?.count(), 3, "{name}");
    }
    Ok(())
}
