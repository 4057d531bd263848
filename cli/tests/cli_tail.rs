//! `nano-wal tail` follows a key that a writer (here, this test process)
//! appends to: with --from-start it prints the records already there, then
//! the new ones as they come; by default only the new ones; in dump's
//! format, flushed record by record.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use nano_wal::Wal;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn spawn_tail(dir: &std::path::Path, extra: &[&str]) -> std::io::Result<std::process::Child> {
    Command::new(env!("CARGO_BIN_EXE_nano-wal"))
        .arg("tail")
        .arg(dir)
        .arg("orders")
        .args(["--poll-ms", "10"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// The content column of each line (the last tab-separated field).
fn contents(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l.rsplit('\t').next().unwrap_or_default())
        .collect()
}

#[test]
fn tail_prints_records_as_a_writer_appends_them() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    let first = wal.append_entry("orders", None, Bytes::from("before 1"), true)?;
    wal.append_entry("orders", None, Bytes::from("before 2"), true)?;

    let mut all = spawn_tail(tmp.path(), &["--from-start", "--limit", "5"])?;
    let new_only = spawn_tail(tmp.path(), &["--limit", "3"])?;
    let stdout = all.stdout.take().ok_or("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // The records already there come first, before anything new is written.
    let early: Vec<String> = (&mut lines).take(2).collect::<Result<_, _>>()?;
    assert_eq!(contents(&early), ["before 1", "before 2"]);
    assert!(
        early[0].starts_with(&first.to_string()),
        "dump's format: {}",
        early[0]
    );
    // Give the new-only tail time to find the key's end before appending.
    std::thread::sleep(Duration::from_millis(300));
    for i in 1..=3 {
        wal.append_entry("orders", None, Bytes::from(format!("live {i}")), false)?;
        std::thread::sleep(Duration::from_millis(30));
    }
    let rest: Vec<String> = lines.collect::<Result<_, _>>()?;
    assert_eq!(contents(&rest), ["live 1", "live 2", "live 3"]);
    assert!(all.wait()?.success());
    let out = new_only.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(contents(&lines), ["live 1", "live 2", "live 3"]);
    Ok(())
}
