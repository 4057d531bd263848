//! Recovery deletes a segment-named file only if its bytes could be the
//! start of a segment this WAL wrote, as a crash can leave one (FORMAT.md
//! §8, §10): empty, a prefix of the magic `NANO-LOG` followed by zeros, the
//! magic with no verifiable record after the header, or at most one
//! 512-byte sector that a crash may have garbled whole. Any other
//! segment-named file (a garbage `x-123-0001.log`, an application's own
//! `app-20240101-0001.log`) fails every kind of open with
//! `WalError::ForeignFile` naming it, stays as it was, and `Verifier`
//! reports it as a foreign file, not a torn tail.

use std::error::Error;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::inspect::{Inspector, Verifier};
use nano_wal::{Wal, WalError, WalOptions};

type TestResult = Result<(), Box<dyn Error>>;

fn assert_foreign<T: std::fmt::Debug>(r: Result<T, WalError>, path: &Path, what: &str) {
    match r {
        Err(WalError::ForeignFile { path: p, .. }) if p == path => {}
        other => panic!("{what}: expected ForeignFile naming {path:?}, got {other:?}"),
    }
}

/// Every way to open `dir` refuses `path`, and leaves it as it was.
fn every_open_refuses(dir: &Path, path: &Path) -> TestResult {
    let before = std::fs::read(path)?;
    assert_foreign(Wal::builder(dir).open(), path, "writer");
    assert_eq!(std::fs::read(path)?, before, "the writer's open changed it");
    let as_str = dir.to_str().ok_or("UTF-8 temp path")?;
    assert_foreign(Wal::new(as_str, WalOptions::default()), path, "Wal::new");
    assert_foreign(Wal::builder(dir).read_only(true).open(), path, "read-only");
    assert_foreign(Inspector::open(dir), path, "inspector");
    assert_eq!(std::fs::read(path)?, before, "an open changed it");
    Ok(())
}

/// Deterministic bytes that do not start with `N` (the magic's first byte).
fn garbage(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    out[0] = b'#';
    out
}

fn text_log() -> Vec<u8> {
    (0..40)
        .map(|i| format!("2024-01-01T12:00:{i:02}Z INFO app: request {i} served\n"))
        .collect::<String>()
        .into_bytes()
}

fn segment(dir: &Path, key: &str, seq: u64) -> PathBuf {
    dir.join(format!(
        "{key}-{}-{seq:04}.log",
        nano_wal::key_hash(key.as_bytes())
    ))
}

#[test]
fn a_garbage_file_named_like_a_segment_fails_the_open_and_stays() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let foreign = dir.join("x-123-0001.log");
    std::fs::write(&foreign, garbage(4096))?;
    every_open_refuses(dir, &foreign)?;
    Ok(())
}

#[test]
fn an_application_log_named_like_a_segment_fails_the_open_and_stays() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wal = Wal::builder(dir).open()?;
    let r = wal.append_entry("orders", None, Bytes::from("order 1"), true)?;
    wal.close()?;
    let foreign = dir.join("app-20240101-0001.log");
    std::fs::write(&foreign, text_log())?;
    every_open_refuses(dir, &foreign)?;

    // Moved away by hand, the WAL opens with its records intact.
    std::fs::rename(&foreign, tmp.path().join("app-log.txt"))?;
    let wal = Wal::builder(dir).open()?;
    assert_eq!(wal.read_entry_at(r)?, "order 1");
    assert!(wal.recovery_report().torn_tails.is_empty());
    Ok(())
}

#[test]
fn only_what_a_crash_leaves_of_a_segment_creation_is_removed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wal = Wal::builder(dir).open()?;
    let r = wal.append_entry("k", None, Bytes::from("first"), true)?;
    wal.close()?;
    let header = std::fs::read(segment(dir, "k", 1))?;
    let next = segment(dir, "k", 2);

    // Where the key's next segment would be: not the start of a segment
    // (and longer than the one sector a crash may garble whole).
    for bytes in [
        garbage(600),
        text_log(),
        [&b"NANO-LOX"[..], &[0; 600]].concat(),
    ] {
        std::fs::write(&next, &bytes)?;
        every_open_refuses(dir, &next)?;
    }
    // After a clean close, no crash of this WAL can have left a segment the
    // manifest does not list: even one that looks like a torn creation is
    // refused, never removed.
    std::fs::write(&next, b"NANO-L")?;
    assert_foreign(Wal::builder(dir).open(), &next, "writer");
    assert_foreign(Wal::builder(dir).read_only(true).open(), &next, "read-only");
    assert_eq!(std::fs::read(&next)?, b"NANO-L", "an open changed it");
    std::fs::remove_file(&next)?;

    // What a crash can leave of a creation (the writer was not closed, so
    // its journal is there): removed and reported.
    let mut magic_then_zeros = b"NANO-".to_vec();
    magic_then_zeros.resize(700, 0);
    for bytes in [
        Vec::new(),
        b"NANO-L".to_vec(),
        magic_then_zeros,
        vec![0; 5000],
        header[..30].to_vec(),
        // A creation cut within its first sector, garbled whole.
        garbage(512),
    ] {
        // A writer that appends to another key and is not closed.
        let wal = Wal::builder(dir).open()?;
        wal.append_entry("other", None, Bytes::from("x"), false)?;
        drop(wal);
        std::fs::write(&next, &bytes)?;
        let wal = Wal::builder(dir).open()?;
        let torn = &wal.recovery_report().torn_tails;
        assert_eq!(torn.len(), 1, "{bytes:?}: {torn:?}");
        assert_eq!(torn[0].path, next);
        assert!(!next.exists(), "{bytes:?}: a torn creation is removed");
        assert_eq!(wal.read_entry_at(r)?, "first");
    }
    Ok(())
}

#[test]
fn verify_reports_a_foreign_file_as_corruption_not_a_torn_tail() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wal = Wal::builder(dir).open()?;
    wal.append_entry("k", None, Bytes::from("first"), true)?;
    wal.close()?;
    let foreign = [dir.join("x-123-0001.log"), segment(dir, "k", 2)];
    std::fs::write(&foreign[0], garbage(4096))?;
    std::fs::write(&foreign[1], text_log())?;

    let report = Verifier::new(dir, None)?.run(&mut |_| {})?;
    assert!(report.torn_tails.is_empty(), "{report:?}");
    let mut found: Vec<&PathBuf> = report.corruptions.iter().map(|c| &c.path).collect();
    found.sort();
    let mut expected: Vec<&PathBuf> = foreign.iter().collect();
    expected.sort();
    assert_eq!(found, expected, "{report:?}");
    for c in &report.corruptions {
        assert!(c.reason.contains("foreign"), "{c:?}");
    }
    assert_eq!(report.records, 1, "the WAL's own record is still checked");
    for path in &foreign {
        assert!(path.exists());
    }
    Ok(())
}
