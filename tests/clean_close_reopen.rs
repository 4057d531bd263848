//! After `close()` the manifest names every segment and where its data
//! ends: reopening reads the manifest and lists the directory, and touches
//! no segment file. Damage to a segment after that is found by the reads
//! that reach it (named by file and position, never returned as data); a
//! listed segment that is missing fails the open.

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn segment_of(dir: &std::path::Path, key: &str) -> Result<std::path::PathBuf, std::io::Error> {
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{key}-")))
        })
        .ok_or_else(|| std::io::Error::other("no segment"))
}

#[test]
fn reopening_after_close_reads_only_the_manifest() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        for k in 0..300 {
            for i in 0..5 {
                wal.append_entry(format!("key{k}"), None, Bytes::from(format!("v{i}")), false)?;
            }
        }
        wal.close()?;
    }
    let manifests: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("nano-wal.manifest-")
        })
        .map(|e| e.metadata().map(|m| m.len()))
        .collect::<Result<_, _>>()?;
    assert_eq!(manifests.len(), 1);
    let journals = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("nano-wal.journal-")
        })
        .count();
    assert_eq!(journals, 0, "a clean close leaves no journal");

    let (storage, faults) = common::FaultyStorage::create();
    let wal = Wal::builder(dir).storage(storage).open()?;
    assert_eq!(faults.dir_lists.load(Ordering::SeqCst), 1);
    assert_eq!(
        faults.read_bytes.load(Ordering::SeqCst),
        manifests[0],
        "the manifest is all that opening reads"
    );
    assert_eq!(
        faults.writes.load(Ordering::SeqCst),
        0,
        "nothing is written"
    );
    assert_eq!(wal.recovery_report().replayed_frames, 0);
    assert_eq!(wal.keys()?.len(), 300);
    let got: Vec<Bytes> = wal.enumerate_records("key299")?.collect();
    assert_eq!(got, ["v0", "v1", "v2", "v3", "v4"]);
    Ok(())
}

#[test]
fn a_bit_flipped_after_close_fails_the_reads_that_reach_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let refs = {
        let wal = Wal::builder(dir).open()?;
        let refs: Vec<_> = (0..5)
            .map(|i| wal.append_entry("k", None, Bytes::from(format!("record {i}")), true))
            .collect::<Result<_, _>>()?;
        wal.close()?;
        refs
    };
    let seg = segment_of(dir, "k")?;
    let mut bytes = std::fs::read(&seg)?;
    // Record 2 starts at the header's length plus its offset; flip a bit of
    // its content.
    let header_len = 64 + 1;
    let pos = header_len + usize::try_from(refs[2].offset)? + 24 + 3;
    bytes[pos] ^= 0x01;
    std::fs::write(&seg, &bytes)?;

    let wal = Wal::builder(dir).open()?;
    assert_eq!(wal.read_entry_at(refs[1])?, "record 1");
    match wal.read_entry_at(refs[2]) {
        Err(WalError::CorruptedData(msg)) => {
            let name = seg.file_name().map(|n| n.to_string_lossy().into_owned());
            assert!(msg.contains(name.as_deref().unwrap_or("?")), "{msg}");
        }
        other => panic!("expected CorruptedData, got {other:?}"),
    }
    let mut it = wal.records("k")?;
    assert_eq!(
        it.next().transpose()?.map(|r| r.content),
        Some(Bytes::from("record 0"))
    );
    assert_eq!(
        it.next().transpose()?.map(|r| r.content),
        Some(Bytes::from("record 1"))
    );
    assert!(matches!(it.next(), Some(Err(WalError::CorruptedData(_)))));
    assert!(matches!(
        wal.enumerate_records("k").map(|c| c.count()),
        Err(WalError::CorruptedData(_))
    ));
    Ok(())
}

#[test]
fn a_segment_cut_after_close_never_returns_wrong_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let refs = {
        let wal = Wal::builder(dir).open()?;
        let refs: Vec<_> = (0..5)
            .map(|i| wal.append_entry("k", None, Bytes::from(format!("record {i}")), true))
            .collect::<Result<_, _>>()?;
        wal.close()?;
        refs
    };
    let seg = segment_of(dir, "k")?;
    let len = std::fs::metadata(&seg)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)?
        .set_len(len - 5)?;
    let wal = Wal::builder(dir).open()?;
    assert_eq!(wal.read_entry_at(refs[3])?, "record 3");
    let last = wal.read_entry_at(refs[4]);
    assert!(
        matches!(last, Err(WalError::CorruptedData(_) | WalError::Io(_))),
        "{last:?}"
    );
    Ok(())
}

#[test]
fn a_listed_segment_that_is_missing_fails_the_open() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        wal.append_entry("k", None, Bytes::from("v"), true)?;
        wal.append_entry("other", None, Bytes::from("w"), true)?;
        wal.close()?;
    }
    let seg = segment_of(dir, "k")?;
    std::fs::remove_file(&seg)?;
    match Wal::builder(dir).open() {
        Err(WalError::CorruptedData(msg)) => {
            let name = seg.file_name().map(|n| n.to_string_lossy().into_owned());
            assert!(msg.contains(name.as_deref().unwrap_or("?")), "{msg}");
        }
        other => panic!("expected CorruptedData, got {other:?}"),
    }
    Ok(())
}
