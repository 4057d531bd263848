//! `shutdown()` removes the WAL's own files (its segments, `nano-wal.lock`,
//! `nano-wal.fsync-failed`) and then the directory only if that left it
//! empty: anything else in it (a `README.txt`, a `notes/` folder) stays, and
//! shutdown still succeeds.

use std::error::Error;
use std::path::Path;

use bytes::Bytes;
use nano_wal::{LOCK_FILE_NAME, Wal};

type TestResult = Result<(), Box<dyn Error>>;

fn names(dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        out.push(e?.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

#[test]
fn shutdown_next_to_user_files_keeps_them_and_removes_every_wal_file() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    std::fs::create_dir_all(dir.join("notes"))?;
    std::fs::write(dir.join("README.txt"), "what this directory is")?;
    std::fs::write(dir.join("notes").join("todo.txt"), "keep me")?;
    // Not named like a segment, so not the WAL's either.
    std::fs::write(dir.join("export.log"), "an application's log")?;

    // Several keys, several segments each, one reopen in between.
    for round in 0..2 {
        let wal = Wal::builder(&dir).max_segment_bytes(4096).open()?;
        for (i, fill) in (b'a'..=b'z').cycle().take(40).enumerate() {
            let key = ["orders", "users", "audit"][i % 3];
            let content = Bytes::from(vec![fill; 500]);
            wal.append_entry(key, None, content, i % 2 == round)?;
        }
        if round == 0 {
            wal.close()?;
        } else {
            let segments = names(&dir)?
                .iter()
                .filter(|n| n.ends_with(".log") && n.as_str() != "export.log")
                .count();
            assert!(segments > 6, "{:?}", names(&dir)?);
            wal.shutdown()?;
        }
    }

    assert_eq!(
        names(&dir)?,
        vec!["README.txt", "export.log", "notes"],
        "every WAL file is removed, nothing else"
    );
    assert!(!dir.join(LOCK_FILE_NAME).exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("README.txt"))?,
        "what this directory is"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes").join("todo.txt"))?,
        "keep me"
    );

    // The directory is a fresh, empty WAL's now.
    let wal = Wal::builder(&dir).open()?;
    assert_eq!(wal.keys()?.len(), 0);
    assert!(wal.recovery_report().torn_tails.is_empty());
    Ok(())
}

#[test]
fn shutdown_of_a_directory_holding_only_wal_files_removes_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let wal = Wal::builder(&dir).open()?;
    wal.append_entry("k", None, Bytes::from("x"), true)?;
    // The directory also holds an empty subdirectory the user made: not
    // the WAL's, so it stays, and with it the directory.
    std::fs::create_dir(dir.join("empty"))?;
    wal.shutdown()?;
    assert_eq!(names(&dir)?, vec!["empty"]);
    std::fs::remove_dir(dir.join("empty"))?;

    let wal = Wal::builder(&dir).open()?;
    wal.append_entry("k", None, Bytes::from("x"), false)?;
    wal.shutdown()?;
    assert!(!dir.exists(), "only WAL files: the directory goes too");
    assert!(tmp.path().exists());
    Ok(())
}
