//! `nano-wal bench`: the summary's numbers agree with what is on disk, durable
//! runs count their fsyncs, and the temporary directory is removed.

use std::error::Error;
use std::process::{Command, Output};

use serde_json::Value;

type TestResult = Result<(), Box<dyn Error>>;

fn bench(args: &[&str], tmpdir: Option<&std::path::Path>) -> Result<Output, Box<dyn Error>> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nano-wal"));
    cmd.arg("bench").args(args);
    if let Some(t) = tmpdir {
        cmd.env("TMPDIR", t);
    }
    Ok(cmd.output()?)
}

/// The first number after `label` on its line.
fn number(out: &str, label: &str) -> Result<u64, Box<dyn Error>> {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .ok_or(format!("no {label} line in {out}"))?;
    let n = line[label.len()..]
        .split_whitespace()
        .next()
        .ok_or("a number")?;
    Ok(n.parse()?)
}

#[test]
fn a_durable_run_into_a_directory_reports_what_it_wrote() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("bench");
    let dir_arg = dir.to_str().ok_or("utf-8 path")?;
    let out = bench(
        &[
            "--dir",
            dir_arg,
            "--keys",
            "3",
            "--size",
            "64",
            "--threads",
            "2",
            "--durable",
            "--seconds",
            "0.5",
        ],
        None,
    )?;
    let stdout = String::from_utf8(out.stdout)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "no progress bar when stderr is not a terminal");
    assert!(stdout.starts_with("nano-wal bench: 2 thread(s), 3 key(s), 64-byte records, durable,"));
    let records = number(&stdout, "records")?;
    assert!(records > 0, "{stdout}");
    assert!(stdout.contains(" records/s)"), "{stdout}");
    assert!(stdout.contains(" MB/s of content"), "{stdout}");
    assert!(stdout.contains("latency      p50 "), "{stdout}");
    assert!(stdout.contains(", p99 "), "{stdout}");
    // "fsyncs       N (D data, R directory)": durable appends need data
    // fsyncs, and the segment files' directory entries a directory fsync.
    let fsyncs = number(&stdout, "fsyncs")?;
    let line = stdout
        .lines()
        .find(|l| l.starts_with("fsyncs"))
        .ok_or("fsyncs line")?;
    let (_, detail) = line.split_once('(').ok_or("breakdown")?;
    let counts: Vec<u64> = detail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [data, directory] = counts[..] else {
        return Err(format!("data and directory counts in {line}").into());
    };
    assert!(data > 0 && directory > 0, "{line}");
    assert_eq!(fsyncs, data + directory, "{line}");
    assert!(stdout.contains("(kept)"), "{stdout}");

    // What the summary counted is what the directory holds.
    let stats = Command::new(env!("CARGO_BIN_EXE_nano-wal"))
        .args(["stats", dir_arg, "--json"])
        .output()?;
    let v: Value = serde_json::from_slice(&stats.stdout)?;
    assert_eq!(v["totals"]["records"], records);
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .filter_map(|k| k["key"].as_str())
        .collect();
    assert_eq!(keys, ["bench-0", "bench-1", "bench-2"]);
    let size_bytes = v["totals"]["size_bytes"].as_u64().ok_or("size")?;
    assert!(
        size_bytes > records * 64,
        "{size_bytes} bytes hold the content"
    );
    Ok(())
}

#[test]
fn a_non_durable_run_syncs_only_its_journal_file_creation_and_removes_its_directory() -> TestResult
{
    let tmp = tempfile::tempdir()?;
    // At most 16 MiB of content: the journal stays under its 64 MiB
    // checkpoint bound however fast the machine (a checkpoint's syncs are
    // not an append's).
    let out = bench(
        &[
            "--seconds",
            "0.3",
            "--threads",
            "1",
            "--keys",
            "8",
            "--max-mib",
            "16",
        ],
        Some(tmp.path()),
    )?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{}", String::from_utf8(out.stderr)?);
    assert!(number(&stdout, "records")? > 0, "{stdout}");
    // The journal file's header and name are made durable once, when the
    // first append creates it; no append syncs anything.
    assert!(
        stdout.contains("fsyncs       2 (1 data, 1 directory)"),
        "{stdout}"
    );
    assert!(stdout.contains("(removed)"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(tmp.path())?.count(),
        0,
        "the temporary directory is gone"
    );
    Ok(())
}

#[test]
fn bad_settings_are_one_line_errors() -> TestResult {
    for args in [
        &["--seconds", "0"][..],
        &["--seconds", "NaN"],
        &["--size", "2000000000"],
    ] {
        let out = bench(args, None)?;
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    Ok(())
}
