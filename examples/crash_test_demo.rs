//! Crash test: a child process (this example run again as `crash_test_demo
//! child DIR`) appends records durably and prints an acknowledgement after
//! each append returns. The parent kills it with SIGKILL while it is writing,
//! reopens the log and checks that every acknowledged record is there and
//! that the log is an in-order prefix of what the child appended: no gaps,
//! no reordering, no altered bytes. Three rounds; each child continues where
//! the log ends.
//!
//! Run with `cargo run --example crash_test_demo`; exits non-zero if a check
//! fails.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal};

type Error = Box<dyn std::error::Error>;

const KEY: &str = "crash-test";
const ROUNDS: usize = 3;
/// Acknowledgements the parent reads before it kills the child.
const ACKS_BEFORE_KILL: usize = 150;

/// Content of record `n`: its number, and a length that varies so records
/// straddle segment boundaries.
fn content(n: usize) -> String {
    format!("record {n:06} {}", "x".repeat(n * 37 % 500))
}

/// The child: append durably forever, acknowledging each record on stdout.
fn child(dir: &Path) -> Result<(), Error> {
    let wal = Wal::builder(dir).max_segment_bytes(16 * 1024).open()?;
    let start = wal.records(KEY)?.count();
    let mut out = std::io::stdout().lock();
    for n in start.. {
        let r = wal.append_entry(KEY, None, Bytes::from(content(n)), true)?;
        // Only now is the record acknowledged: it is on stable storage.
        writeln!(out, "ack {n} {r}")?;
        out.flush()?;
    }
    Ok(())
}

fn parse_ack(line: &str) -> Result<(usize, EntryRef), Error> {
    let mut parts = line.split(' ');
    if parts.next() != Some("ack") {
        return Err(format!("unexpected line from the child: {line:?}").into());
    }
    let n = parts.next().ok_or("ack number")?.parse()?;
    let r = parts.next().ok_or("ack reference")?.parse()?;
    Ok((n, r))
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

fn parent() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut acked: Vec<(usize, EntryRef)> = Vec::new();
    for round in 1..=ROUNDS {
        let mut child = Command::new(&exe)
            .arg("child")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("the child's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        for _ in 0..ACKS_BEFORE_KILL {
            let line = lines
                .next()
                .ok_or("the child exited before it was killed")??;
            acked.push(parse_ack(&line)?);
        }
        // SIGKILL on Unix: no destructor, no final sync, mid-append.
        child.kill()?;
        let status = child.wait()?;
        check(!status.success(), "the child was killed")?;
        // Acknowledgements printed before it died are still in the pipe.
        for line in lines {
            acked.push(parse_ack(&line?)?);
        }

        let wal = Wal::builder(dir.path()).open()?;
        let mut on_disk = 0;
        for (i, record) in wal.records(KEY)?.enumerate() {
            let record = record?;
            check(
                record.content == content(i),
                "the log is an in-order prefix",
            )?;
            on_disk += 1;
        }
        for &(n, r) in &acked {
            check(n < on_disk, "every acknowledged record survived")?;
            check(
                wal.read_entry_at(r)? == content(n),
                "every ack resolves to its record",
            )?;
        }
        let last_ack = acked.last().map_or(0, |a| a.0 + 1);
        let segments = wal.recovery_report().segments;
        let torn = wal.recovery_report().torn_tails.len();
        println!(
            "round {round}: SIGKILL after {ACKS_BEFORE_KILL} acks; {} acked in all, {on_disk} \
             records on disk ({} after the last ack seen), {segments} segments, {torn} torn tail(s)",
            acked.len(),
            on_disk.saturating_sub(last_ack)
        );
        wal.close()?;
    }
    check(acked.len() >= ROUNDS * ACKS_BEFORE_KILL, "all rounds ran")?;
    println!("crash_test_demo: all checks passed");
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("child") => child(Path::new(
            args.get(2).ok_or("usage: crash_test_demo child DIR")?,
        )),
        _ => parent(),
    }
}
