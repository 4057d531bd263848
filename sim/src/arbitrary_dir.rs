//! Recovery over arbitrary directory contents: for property tests and fuzz
//! targets. Whatever the files hold, opening and reading must never panic,
//! and whatever is returned must have passed its checks.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::inspect::Verifier;
use nano_wal::storage::{OpenMode, Storage};
use nano_wal::{ManualClock, RecoveryMode, Wal};

use crate::disk::SimDisk;
use crate::workload::{START_MS, WAL_DIR};

/// Key hashes used for generated file names: a few real ones, so valid and
/// damaged segments of the same key meet, and one arbitrary.
pub const KEYS: [&str; 3] = ["k", "orders", "user:1"];

/// A file name for `key` (index into [`KEYS`], or any other value for an
/// unrelated hash) and `sequence`.
pub fn segment_name(key: u8, sequence: u8) -> String {
    let hash = KEYS
        .get(usize::from(key))
        .map_or(12_345, |k| nano_wal::key_hash(k.as_bytes()));
    format!("x-{hash}-{:04}.log", u64::from(sequence) % 6 + 1)
}

/// A file name for a fuzz input's `kind` byte: 0xF0 and up name a journal
/// file, 0xE0 to 0xEF a manifest (generations and sequences 1 to 3, so
/// they meet), anything else a segment of key `kind % 4`.
pub fn any_file_name(kind: u8, sequence: u8) -> String {
    let n = u64::from(sequence) % 3 + 1;
    match kind {
        0xF0.. => format!("nano-wal.journal-{n:020}"),
        0xE0..=0xEF => format!("nano-wal.manifest-{n:020}"),
        _ => segment_name(kind % 4, sequence),
    }
}

/// A disk holding `files` (name, bytes) in the WAL directory.
pub fn disk_with(files: &[(String, Vec<u8>)]) -> SimDisk {
    let disk = SimDisk::new();
    let dir = Path::new(WAL_DIR);
    let made = disk.create_dir_all(dir).and_then(|()| {
        for (name, bytes) in files {
            let path = dir.join(name);
            // Later duplicates of a name overwrite earlier ones.
            let f = match disk.open(&path, OpenMode::CreateNew) {
                Ok(f) => f,
                Err(_) => disk.open(&path, OpenMode::ReadWrite)?,
            };
            f.set_len(0)?;
            f.write_at(bytes, 0)?;
        }
        Ok(())
    });
    assert!(
        made.is_ok(),
        "the simulated disk accepts any file: {made:?}"
    );
    disk
}

/// Valid segment bytes to start mutating from: a real WAL's files.
pub fn valid_files(records: &[(u8, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let disk = SimDisk::new();
    let clock = Arc::new(ManualClock::new(START_MS));
    let wal = Wal::builder(WAL_DIR)
        .storage(disk.storage())
        .clock(clock)
        .max_segment_bytes(4096)
        .open();
    let Ok(wal) = wal else { return Vec::new() };
    for (key, content) in records {
        let key = KEYS[usize::from(*key) % KEYS.len()];
        let appended = wal.append_entry(key, None, Bytes::copy_from_slice(content), false);
        assert!(appended.is_ok(), "{appended:?}");
    }
    drop(wal);
    disk.listing()
        .into_iter()
        .filter_map(|(path, _)| {
            let name = Path::new(&path).file_name()?.to_str()?.to_owned();
            let bytes = disk.read_file(Path::new(&path))?;
            Some((name, bytes))
        })
        .collect()
}

/// `Wal::scan` visits exactly what `records()` yields, and fails exactly
/// when the stream ends in an error.
fn check_scan_agrees(wal: &Wal, key: &str) {
    let Ok(records) = wal.records(key) else {
        return;
    };
    let mut streamed = Vec::new();
    let mut stream_failed = false;
    for r in records {
        match r {
            Ok(r) => streamed.push((r.entry_ref, r.header, r.content)),
            Err(_) => stream_failed = true,
        }
    }
    let mut scanned = Vec::new();
    let scan = wal.scan(key, |r| {
        scanned.push((
            r.entry_ref,
            r.header.map(Bytes::copy_from_slice),
            Bytes::copy_from_slice(r.content),
        ));
        std::ops::ControlFlow::Continue(())
    });
    assert_eq!(scanned, streamed, "scan and records() disagree on {key}");
    assert_eq!(
        scan.is_err(),
        stream_failed,
        "scan and records() disagree on failing: {scan:?}"
    );
}

/// `verify` and opening apply the same rules (`rules::recovery`): where
/// `verify` finds nothing wrong, a read-only open in the same mode succeeds.
/// (Not the converse: opening leaves damage inside sealed segments to the
/// reads that reach it, where `verify` reads everything.)
fn check_verify_agrees_with_open(disk: &SimDisk) {
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let builder = || {
            Wal::builder(WAL_DIR)
                .storage(disk.storage())
                .clock(Arc::new(ManualClock::new(START_MS)))
                .recovery(mode)
        };
        let Ok(verifier) = Verifier::from_builder(builder(), None) else {
            continue;
        };
        let Ok(report) = verifier.run(&mut |_| {}) else {
            continue;
        };
        if report.is_ok() {
            let opened = builder().read_only(true).open();
            assert!(
                opened.is_ok(),
                "verify ({mode:?}) found nothing wrong, but opening fails: {:?}",
                opened.err()
            );
        }
    }
}

/// Open the directory in every mode and read everything. Panics only if
/// the engine does (or returns bytes that fail a re-read).
pub fn open_and_read_everything(disk: &SimDisk) {
    check_verify_agrees_with_open(disk);
    for (read_only, mode) in [
        (true, RecoveryMode::TolerateTornTail),
        (false, RecoveryMode::AbsoluteConsistency),
        (false, RecoveryMode::TolerateTornTail),
    ] {
        let clock = Arc::new(ManualClock::new(START_MS));
        let opened = Wal::builder(WAL_DIR)
            .storage(disk.storage())
            .clock(clock)
            .read_only(read_only)
            .recovery(mode)
            .max_open_files(3)
            .open();
        let Ok(wal) = opened else { continue };
        let Ok(keys) = wal.enumerate_keys() else {
            continue;
        };
        for key in keys {
            let Ok(records) = wal.records(key.as_str()) else {
                continue;
            };
            check_scan_agrees(&wal, &key);
            for record in records.flatten() {
                // Whatever a stream returns, a point read returns too.
                let again = wal.read_record_at(record.entry_ref);
                assert!(
                    again
                        .as_ref()
                        .is_ok_and(|r| r.content == record.content && r.header == record.header),
                    "point read disagrees with the stream at {}: {again:?}",
                    record.entry_ref
                );
            }
        }
        if !read_only {
            // A writer that opened must also be able to append and read back.
            if let Ok(r) = wal.append_entry("k", None, Bytes::from_static(b"after"), true) {
                assert!(wal.read_entry_at(r).is_ok_and(|b| b == "after"));
            }
        }
    }
}
