//! Recovery tells a torn tail from corruption in time linear in the bytes it
//! reads, however large the torn record and whatever its content.
//!
//! A crash in the middle of appending a large record whose content is mostly
//! zeros with small integers in between (a sparse `u32` array) used to make
//! recovery try every byte position after the damage with a full read of
//! its claimed length: quadratic, hours for a record of 1 GiB. Here the
//! bytes the open reads are counted and bounded: in a segment (directories
//! without a journal) and in the journal.

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

const MIB: usize = 1 << 20;
const TORN_BYTES: u64 = 64 * 1024;

/// A sparse little-endian `u32` array: every 64th value is a small integer.
fn sparse_u32s(bytes: usize) -> Bytes {
    let mut v = vec![0u8; bytes];
    for (i, word) in v.chunks_exact_mut(4).enumerate().step_by(64) {
        let small = u32::try_from(i % 251).unwrap_or(0) + 1;
        word.copy_from_slice(&small.to_le_bytes());
    }
    Bytes::from(v)
}

#[test]
fn reopening_after_a_torn_64_mib_record_reads_each_byte_a_bounded_number_of_times()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let kept = {
        let wal = Wal::builder(dir.path()).open()?;
        let kept = wal.append_entry("blob", None, Bytes::from("before"), true)?;
        wal.append_entry("blob", None, sparse_u32s(64 * MIB), false)?;
        wal.close()?;
        kept
    };
    // The segment scan of a directory without a journal (earlier versions).
    common::forget_journal(dir.path())?;
    let file_len = common::tear_only_segment(dir.path(), TORN_BYTES)?;

    let (storage, faults) = common::FaultyStorage::create();
    // Linear: the tail scan, the search after the damage and the cut's
    // checks each read the file about once. The quadratic search blew
    // through this after a few positions.
    faults
        .read_budget_bytes
        .store(4 * file_len, Ordering::SeqCst);
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let read = faults.read_bytes.load(Ordering::SeqCst);
    assert!(
        read <= 4 * file_len,
        "read {read} bytes for a {file_len}-byte file"
    );

    let torn = &wal.recovery_report().torn_tails;
    assert_eq!(torn.len(), 1, "{torn:?}");
    assert_eq!(
        torn[0].bytes_dropped,
        file_len - TORN_BYTES - torn[0].file_position
    );
    assert_eq!(wal.read_entry_at(kept)?, "before");
    let contents: Vec<Bytes> = wal
        .records("blob")?
        .map(|r| r.map(|r| r.content))
        .collect::<Result<_, WalError>>()?;
    assert_eq!(contents, [Bytes::from("before")]);
    Ok(())
}

#[test]
fn a_torn_64_mib_journal_frame_is_judged_reading_each_byte_a_bounded_number_of_times()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let kept = {
        // No checkpoint before the drop: the record stays in the journal.
        let wal = Wal::builder(dir.path())
            .journal_checkpoint_bytes(1 << 30)
            .open()?;
        let kept = wal.append_entry("blob", None, Bytes::from("before"), true)?;
        wal.append_entry("blob", None, sparse_u32s(64 * MIB), false)?;
        kept
        // Dropped without close(): both frames are in the journal.
    };
    let journal = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("nano-wal.journal-"))
        .ok_or("no journal")?;
    let bytes = std::fs::read(&journal)?;
    let frames_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1) as u64;
    drop(bytes);
    let cut = frames_end - TORN_BYTES;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)?
        .set_len(cut)?;
    let on_disk: u64 = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();

    let (storage, faults) = common::FaultyStorage::create();
    faults
        .read_budget_bytes
        .store(4 * on_disk, Ordering::SeqCst);
    let wal = Wal::builder(dir.path()).storage(storage).open()?;
    let read = faults.read_bytes.load(Ordering::SeqCst);
    assert!(
        read <= 4 * on_disk,
        "read {read} bytes of {on_disk} on disk"
    );
    let torn = &wal.recovery_report().torn_tails;
    assert!(
        torn.iter()
            .any(|t| t.path == journal && t.bytes_dropped == cut - t.file_position),
        "{torn:?}"
    );
    assert_eq!(wal.read_entry_at(kept)?, "before");
    let contents: Vec<Bytes> = wal
        .records("blob")?
        .map(|r| r.map(|r| r.content))
        .collect::<Result<_, WalError>>()?;
    assert_eq!(contents, [Bytes::from("before")]);
    Ok(())
}
