//! The WAL never follows a symbolic link in its directory, and works only on
//! regular files: a link named like a segment or like `nano-wal.lock`, or a
//! directory named like a segment, fails every kind of open with
//! `WalError::ForeignFile` naming it, and nothing outside the directory is
//! ever written, cut or created. `nano-wal verify` reports such an entry as
//! corruption.

#![cfg(unix)]

use std::error::Error;
use std::fs::OpenOptions;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::inspect::{Inspector, Verifier};
use nano_wal::{LOCK_FILE_NAME, Wal, WalError, WalOptions};

type TestResult = Result<(), Box<dyn Error>>;

fn assert_foreign<T: std::fmt::Debug>(r: Result<T, WalError>, path: &Path, what: &str) {
    match r {
        Err(WalError::ForeignFile { path: p, reason }) if p == path => {
            assert!(!reason.is_empty(), "{what}: a reason is given");
        }
        other => panic!("{what}: expected ForeignFile naming {path:?}, got {other:?}"),
    }
}

/// Every way to open `dir`: as the writer, through the 0.5 constructor,
/// read-only, and for inspection. Each must refuse `path`.
fn every_open_refuses(dir: &Path, path: &Path) {
    assert_foreign(Wal::builder(dir).open(), path, "writer");
    let as_str = dir.to_str().expect("UTF-8 temp path");
    assert_foreign(Wal::new(as_str, WalOptions::default()), path, "Wal::new");
    assert_foreign(Wal::builder(dir).read_only(true).open(), path, "read-only");
    assert_foreign(Inspector::open(dir), path, "inspector");
}

/// A path and its bytes (`None` for a directory or a link).
type Entry = (PathBuf, Option<Vec<u8>>);

/// Names and contents of every file under `dir`, recursively, links not
/// followed.
fn snapshot(dir: &Path) -> Result<Vec<Entry>, Box<dyn Error>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let t = std::fs::symlink_metadata(&p)?.file_type();
        if t.is_dir() {
            out.push((p.clone(), None));
            out.extend(snapshot(&p)?);
        } else if t.is_symlink() {
            out.push((p.clone(), None));
        } else {
            out.push((p.clone(), Some(std::fs::read(&p)?)));
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn a_dangling_lock_file_link_creates_nothing_at_its_target() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    std::fs::create_dir(&dir)?;
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere)?;
    let target = elsewhere.join("lock-target");
    let lock = dir.join(LOCK_FILE_NAME);
    symlink(&target, &lock)?;

    let opened = Wal::builder(&dir).open();
    assert!(
        !target.exists(),
        "opening created a file at the lock link's target"
    );
    assert_foreign(opened, &lock, "writer");
    let as_str = dir.to_str().ok_or("UTF-8 temp path")?;
    assert_foreign(Wal::new(as_str, WalOptions::default()), &lock, "Wal::new");
    assert!(!target.exists());
    assert!(std::fs::read_dir(&elsewhere)?.next().is_none());
    assert!(std::fs::symlink_metadata(&lock)?.file_type().is_symlink());
    Ok(())
}

#[test]
fn a_linked_segment_is_refused_and_its_target_never_cut() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // A real segment elsewhere whose last record is torn: a writer's open
    // would cut it, were the link followed.
    let outside = tmp.path().join("outside");
    let wal = Wal::builder(&outside).open()?;
    for i in 0..3 {
        wal.append_entry("k", None, Bytes::from(format!("record {i}")), true)?;
    }
    wal.close()?;
    let name = format!("k-{}-0001.log", nano_wal::key_hash(b"k"));
    let target = outside.join(&name);
    let len = std::fs::metadata(&target)?.len();
    OpenOptions::new()
        .write(true)
        .open(&target)?
        .set_len(len - 3)?;
    let before = snapshot(&outside)?;

    let dir = tmp.path().join("wal");
    std::fs::create_dir(&dir)?;
    let link = dir.join(&name);
    symlink(&target, &link)?;

    every_open_refuses(&dir, &link);
    assert_eq!(
        snapshot(&outside)?,
        before,
        "the link's target directory was changed"
    );

    let report = Verifier::new(&dir, None)?.run(&mut |_| {})?;
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    assert_eq!(report.corruptions[0].path, link);
    assert!(
        report.corruptions[0].reason.contains("symbolic link"),
        "{report:?}"
    );
    assert!(report.torn_tails.is_empty(), "{report:?}");
    assert_eq!(snapshot(&outside)?, before);
    Ok(())
}

#[test]
fn a_directory_named_like_a_segment_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let wal = Wal::builder(&dir).open()?;
    wal.append_entry("k", None, Bytes::from("kept"), true)?;
    wal.close()?;
    // Named like the key's next segment, so recovery would take it for a
    // torn creation.
    let imposter = dir.join(format!("k-{}-0002.log", nano_wal::key_hash(b"k")));
    std::fs::create_dir(&imposter)?;
    std::fs::write(imposter.join("inside.txt"), "not the WAL's")?;

    every_open_refuses(&dir, &imposter);
    assert_eq!(
        std::fs::read_to_string(imposter.join("inside.txt"))?,
        "not the WAL's"
    );
    let report = Verifier::new(&dir, None)?.run(&mut |_| {})?;
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    assert_eq!(report.corruptions[0].path, imposter);
    assert!(
        report.corruptions[0].reason.contains("directory"),
        "{report:?}"
    );
    Ok(())
}
