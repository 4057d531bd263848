//! Reopen time against the size of a torn record.
//!
//! For each size N: append one record of N MiB (mostly zeros: a
//! little-endian `u32` array in which every 64th value is a small integer,
//! `j % 251 + 1` for the j-th of them) and drop the handle without
//! `close()`, so the record lives in the journal (no checkpoint runs); cut
//! 64 KiB off the end of its journal frame (as a crash in the middle of the
//! append would leave it), then time `Wal::builder(dir).open()`, whose
//! default recovery (`TolerateTornTail`) finds the torn frame and cuts it
//! off. Only the open is timed; each run uses a fresh directory and opens it
//! in a fresh child process (this binary with `--child DIR`), so a run that
//! exceeds `--timeout-s` is killed and the larger sizes are skipped. A
//! reopen that does not report exactly one torn tail in the journal, of the
//! expected size, and an empty key, is an error (exit status 1): a broken
//! recovery is never timed. (The segment file the torn frame would have
//! created is removed and reported too.)
//!
//! Run:
//! `cargo bench -p nano-wal-bench --bench torn_reopen -- [--sizes-mib 4,16,64,256]
//! [--runs 5] [--timeout-s 120] [--smoke]`
//!
//! `--smoke` is one run of 1 MiB (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nano_wal::Wal;

/// Bytes cut off the end of the journal frame.
const CUT_BYTES: u64 = 64 << 10;
/// A journal file's header (FORMAT.md §11); its first frame follows.
const JOURNAL_HEADER_BYTES: u64 = 48;
/// Journal file names start with this (FORMAT.md §11).
const JOURNAL_PREFIX: &str = "nano-wal.journal-";
/// The key the record is appended to.
const KEY: &str = "torn";

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug)]
struct Args {
    sizes_mib: Vec<u64>,
    runs: usize,
    timeout: Duration,
    child: Option<PathBuf>,
}

impl Args {
    /// Parse `std::env::args`, ignoring what it does not know (`--bench`).
    fn parse() -> Result<Self, String> {
        let mut sizes_mib = None;
        let mut runs = None;
        let mut timeout_s = 120.0_f64;
        let mut smoke = false;
        let mut child = None;
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--sizes-mib" => {
                    let list = value("--sizes-mib")?;
                    let sizes = list
                        .split(',')
                        .map(|s| s.trim().parse::<u64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("--sizes-mib {list}: {e}"))?;
                    sizes_mib = Some(sizes);
                }
                "--runs" => {
                    runs = Some(
                        value("--runs")?
                            .parse()
                            .map_err(|e| format!("--runs: {e}"))?,
                    );
                }
                "--timeout-s" => {
                    timeout_s = value("--timeout-s")?
                        .parse()
                        .map_err(|e| format!("--timeout-s: {e}"))?;
                }
                "--smoke" => smoke = true,
                "--child" => child = Some(PathBuf::from(value("--child")?)),
                _ => {}
            }
        }
        let default_sizes = if smoke { vec![1] } else { vec![4, 16, 64, 256] };
        let sizes_mib = sizes_mib.unwrap_or(default_sizes);
        let runs = runs.unwrap_or(if smoke { 1 } else { 5 });
        if runs == 0 {
            return Err("--runs must be at least 1".to_owned());
        }
        // The cut must fall inside the record's content.
        if sizes_mib.iter().any(|&s| s == 0 || s > 1024) {
            return Err("--sizes-mib: each size must be 1 to 1024 MiB".to_owned());
        }
        if !(timeout_s.is_finite() && timeout_s > 0.0) {
            return Err("--timeout-s must be positive".to_owned());
        }
        Ok(Self {
            sizes_mib,
            runs,
            timeout: Duration::from_secs_f64(timeout_s),
            child,
        })
    }
}

/// The record's content: `size` bytes of little-endian `u32`s, every 64th
/// one a small integer, the rest 0.
fn sparse_content(size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    for (j, word) in v.chunks_exact_mut(4).step_by(64).enumerate() {
        let small = u32::try_from(j % 251 + 1).unwrap_or(1);
        word.copy_from_slice(&small.to_le_bytes());
    }
    Bytes::from(v)
}

/// The one journal file of `dir`.
fn journal_file(dir: &Path) -> Res<PathBuf> {
    let mut journals = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(JOURNAL_PREFIX)
        {
            journals.push(entry.path());
        }
    }
    match <[PathBuf; 1]>::try_from(journals) {
        Ok([one]) => Ok(one),
        Err(all) => Err(format!(
            "expected one journal file in {}, found {all:?}",
            dir.display()
        )
        .into()),
    }
}

/// Write the torn directory: one record of `size_mib` MiB in the journal
/// (the handle dropped without `close()`), the last 64 KiB of its frame cut
/// off, everything synced. Returns the bytes a correct recovery drops from
/// the journal (what is left of the frame).
fn write_torn(dir: &Path, size_mib: u64) -> Res<u64> {
    let size = usize::try_from(size_mib << 20)?;
    let wal = Wal::builder(dir).journal_checkpoint_bytes(4 << 30).open()?;
    wal.append_entry(KEY, None, sparse_content(size), true)?;
    let frame_bytes = wal.metrics().journal_bytes;
    drop(wal);
    let journal = journal_file(dir)?;
    let file = std::fs::OpenOptions::new().write(true).open(&journal)?;
    // The file runs on past its frame with zeros (it grows ahead).
    let frame_end = JOURNAL_HEADER_BYTES + frame_bytes;
    file.set_len(frame_end - CUT_BYTES)?;
    file.sync_all()?;
    Ok(frame_end - CUT_BYTES - JOURNAL_HEADER_BYTES)
}

/// In the child: time the open of `dir` and print `RESULT <ms> <torn tails>
/// <bytes dropped>`.
fn child_main(dir: &Path) -> Res<()> {
    let start = Instant::now();
    let wal = Wal::builder(dir).open()?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let report = wal.recovery_report();
    let in_journal: Vec<_> = report
        .torn_tails
        .iter()
        .filter(|t| {
            t.path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(JOURNAL_PREFIX))
        })
        .collect();
    let dropped: u64 = in_journal.iter().map(|t| t.bytes_dropped).sum();
    let repaired = report.torn_tails.iter().all(|t| t.repaired);
    let records = wal.records(KEY)?.count();
    println!(
        "RESULT {ms} {} {dropped} {repaired} {records}",
        in_journal.len()
    );
    wal.close()?;
    Ok(())
}

/// One timed run.
enum Outcome {
    Ms(f64),
    TimedOut,
}

/// In the parent: open `dir` in a child, check what recovery reported.
fn run_child(dir: &Path, expect_dropped: u64, timeout: Duration) -> Res<Outcome> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--child").arg(dir);
    let Some(run) = nano_wal_bench::run_child(&mut cmd, timeout)? else {
        return Ok(Outcome::TimedOut);
    };
    let (status, out, err) = (run.status, run.stdout, run.stderr);
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT "));
    let (Some(line), true) = (line, status.success()) else {
        return Err(format!("reopen failed ({status}): {}", err.trim()).into());
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let [ms, tails, dropped, repaired, records] = f[..] else {
        return Err(format!("bad child output {line:?}").into());
    };
    let expected = format!("1 {expect_dropped} true 0");
    let got = format!("{tails} {dropped} {repaired} {records}");
    if got != expected {
        return Err(format!(
            "recovery did not report exactly one repaired torn journal tail of {expect_dropped} \
             bytes and an empty key: got (torn tails, bytes dropped, repaired, records) = {got}"
        )
        .into());
    }
    Ok(Outcome::Ms(ms.parse()?))
}

/// Median of a non-empty, sorted slice.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn measure(args: &Args) -> Res<()> {
    let timeout_s = args.timeout.as_secs_f64();
    println!(
        "torn_reopen: one record of N MiB (sparse u32 content) in the journal, last {} KiB of its frame cut; \
         time of Wal::builder(dir).open() (TolerateTornTail cuts the torn record), \
         median of {} run(s), each in a fresh directory and process; timeout {timeout_s} s per open",
        CUT_BYTES >> 10,
        args.runs
    );
    println!();
    println!("| size MiB | median ms | min–max ms | ms per MiB |");
    println!("|---:|---:|---:|---:|");
    let mut sizes = args.sizes_mib.iter();
    for &size in sizes.by_ref() {
        let mut times = Vec::with_capacity(args.runs);
        let mut timed_out = false;
        for run in 0..args.runs {
            let dir = tempfile::tempdir()?;
            let expect_dropped = write_torn(dir.path(), size)?;
            match run_child(dir.path(), expect_dropped, args.timeout)? {
                Outcome::Ms(ms) => {
                    eprintln!("{size} MiB run {}/{}: {ms:.1} ms", run + 1, args.runs);
                    times.push(ms);
                }
                Outcome::TimedOut => {
                    eprintln!("{size} MiB run {}/{}: timed out", run + 1, args.runs);
                    timed_out = true;
                    break;
                }
            }
        }
        if timed_out {
            println!("| {size} | > {timeout_s} s | | |");
            break;
        }
        times.sort_by(f64::total_cmp);
        let med = median(&times);
        let (min, max) = (times[0], times[times.len() - 1]);
        // u64 → f64 is exact for any size accepted here.
        let per_mib = med / size as f64;
        println!(
            "| {size} | {} | {}–{} | {} |",
            fmt_ms(med),
            fmt_ms(min),
            fmt_ms(max),
            fmt_ms(per_mib)
        );
    }
    for size in sizes {
        println!("| {size} | skipped (a smaller size timed out) | | |");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("torn_reopen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.child {
        Some(dir) => child_main(dir),
        None => measure(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torn_reopen: error: {e}");
            ExitCode::FAILURE
        }
    }
}
