//! Every read command on a directory written by nano-wal 0.5 itself (format
//! version 1: no checksums, no timestamps): references resolve to 0.5's
//! bytes, and nothing is changed.

mod common;
use common::ok;

use std::error::Error;
use std::ffi::OsStr;

use bytes::Bytes;
use serde_json::Value;

type TestResult = Result<(), Box<dyn Error>>;

/// Every file's name and bytes, sorted by name.
type Snapshot = Vec<(String, Vec<u8>)>;

fn snapshot(dir: &std::path::Path) -> Result<Snapshot, Box<dyn Error>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path())?,
        ));
    }
    files.sort();
    Ok(files)
}

#[test]
fn a_directory_written_by_nano_wal_0_5_reads_back() -> TestResult {
    let t = tempfile::tempdir()?;
    let path = t.path().join("wal");
    let path_str = path.to_str().ok_or("utf-8 path")?;
    let mut written = Vec::new();
    {
        let mut wal = nano_wal_05::Wal::new(path_str, nano_wal_05::WalOptions::default())?;
        for i in 0..3 {
            for key in ["events", "user:7"] {
                let header = (i == 1).then(|| Bytes::from(format!("h{i}")));
                let content = Bytes::from(format!("{key} #{i}"));
                let r = wal.append_entry(key, header.clone(), content.clone(), true)?;
                written.push((key, r, header, content));
            }
        }
    }
    let before = snapshot(&path)?;
    let dir = path.as_os_str();

    assert_eq!(ok([OsStr::new("keys"), dir])?, "events\nuser:7\n");

    let v: Value = serde_json::from_str(&ok([OsStr::new("stats"), dir, OsStr::new("--json")])?)?;
    assert_eq!(v["totals"]["records"], 6);
    assert_eq!(v["keys"][0]["records"], 3);
    assert_eq!(
        v["keys"][0]["oldest_record_unix_ms"],
        Value::Null,
        "0.5 stored no times"
    );
    assert_eq!(v["keys"][0]["segment_files"][0]["format_version"], 1);
    assert!(v["keys"][0]["next_expiry_unix_ms"].as_u64().is_some());
    ok([OsStr::new("stats"), dir])?;

    let dump = ok([
        OsStr::new("dump"),
        dir,
        OsStr::new("events"),
        OsStr::new("--headers"),
    ])?;
    let expected: Vec<String> = written
        .iter()
        .filter(|w| w.0 == "events")
        .map(|(_, r, h, c)| {
            let r = format!("{}:{}:{}", r.key_hash, r.sequence_number, r.offset);
            let h = h
                .as_ref()
                .map_or("-".to_owned(), |h| String::from_utf8_lossy(h).into_owned());
            format!("{r}\t-\t{h}\t{}", String::from_utf8_lossy(c))
        })
        .collect();
    assert_eq!(dump.lines().collect::<Vec<_>>(), expected);

    for (_, r, header, content) in &written {
        let r = format!("{}:{}:{}", r.key_hash, r.sequence_number, r.offset);
        let v: Value = serde_json::from_str(&ok([
            OsStr::new("get"),
            dir,
            OsStr::new(&r),
            OsStr::new("--format"),
            OsStr::new("json"),
        ])?)?;
        assert_eq!(v["content"], String::from_utf8_lossy(content).as_ref());
        assert_eq!(
            v["header"],
            header.as_ref().map_or(Value::Null, |h| Value::String(
                String::from_utf8_lossy(h).into_owned()
            ))
        );
        assert_eq!(v["timestamp_unix_ms"], Value::Null);
    }

    let verify = ok([OsStr::new("verify"), dir])?;
    assert!(
        verify.starts_with("ok: 2 keys, 2 segments, 6 records,"),
        "{verify}"
    );
    let plan = ok([OsStr::new("compact"), dir, OsStr::new("--dry-run")])?;
    assert!(plan.contains("nothing has expired"), "{plan}");

    assert_eq!(snapshot(&path)?, before, "read-only: nothing changed");
    Ok(())
}
