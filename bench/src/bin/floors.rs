//! What the disk and the kernel cost for the rows of the compare harness
//! that nano-wal misses, with no log engine at all: the floor under each.
//!
//! - `write`: one `write()` of 100 bytes appended (the raw system's
//!   non-durable append), against one `pwrite` of the 177-byte journal
//!   frame that holds one 100-byte record, into a file grown ahead by
//!   `set_len` (what nano-wal's journal does). A non-durable append must
//!   make one such call: it survives a crash of the process.
//! - `batch sync`: one `pwrite` of 124,000 bytes (a frame of 1,000 records
//!   of 100 bytes) and one `fdatasync`, into blocks the file never had
//!   (grown by `set_len`, as nano-wal's journal and okaywal's log are)
//!   against blocks written before (a recycled file).
//! - `group commit`: a 177-byte write and an `fdatasync` of one shared
//!   file, by 1, 2 or 4 threads at once: whether concurrent syncs overlap.
//! - `files`: 20,000 files created with one 150-byte write each, then each
//!   fdatasync'ed (64 threads, as a checkpoint does) and the directory
//!   synced: one segment file per key, as the "many keys" row makes.
//! - `checksums`: the two CRC32C every record carries (format version 3:
//!   a head over 20 bytes continued over a 32-byte binding, and a body over
//!   100 bytes), for the 100,000 records the scan row reads.
//!
//! `cargo run --release -p nano-wal-bench --bin floors [DIR] [RUNS]`
//! (DIR defaults to a temporary directory; medians of RUNS, default 3).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SMALL_WRITES: usize = 1_000_000;
const FRAME_BYTES: usize = 177;
const BATCH_BYTES: usize = 124_000;
const BATCH_SYNCS: usize = 300;
const GROUP_SYNCS_PER_THREAD: usize = 1_000;
const FILES: usize = 20_000;
const SYNC_THREADS: usize = 64;
const GROW_BYTES: u64 = 4 << 20;
const SCAN_RECORDS: usize = 100_000;

fn create(path: &Path) -> Res<File> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn per_s(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Appends of 100 bytes with `write()`, per second.
fn raw_writes(dir: &Path) -> Res<f64> {
    let mut f = create(&dir.join("raw"))?;
    let buf = vec![7u8; 100];
    let start = Instant::now();
    for _ in 0..SMALL_WRITES {
        f.write_all(&buf)?;
    }
    Ok(per_s(SMALL_WRITES, start.elapsed()))
}

/// `pwrite`s of one frame into a file grown ahead by `set_len`, per second.
fn frame_writes(dir: &Path) -> Res<f64> {
    let f = create(&dir.join("frames"))?;
    let buf = vec![7u8; FRAME_BYTES];
    let (mut pos, mut allocated) = (0u64, 0u64);
    let start = Instant::now();
    for _ in 0..SMALL_WRITES {
        if pos + FRAME_BYTES as u64 > allocated {
            allocated = pos + GROW_BYTES;
            f.set_len(allocated)?;
        }
        f.write_all_at(&buf, pos)?;
        pos += FRAME_BYTES as u64;
    }
    Ok(per_s(SMALL_WRITES, start.elapsed()))
}

/// Median µs of a 124,000-byte `pwrite` plus `fdatasync`; `rewrite` first
/// writes and syncs every block the test will use.
fn batch_syncs(dir: &Path, name: &str, rewrite: bool) -> Res<f64> {
    let f = create(&dir.join(name))?;
    let total = (BATCH_BYTES * BATCH_SYNCS) as u64 + GROW_BYTES;
    if rewrite {
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < total {
            f.write_all_at(&zeros, at)?;
            at += zeros.len() as u64;
        }
        f.sync_all()?;
    }
    let buf = vec![7u8; BATCH_BYTES];
    let (mut pos, mut allocated) = (0u64, if rewrite { total } else { 0 });
    let mut times = Vec::with_capacity(BATCH_SYNCS);
    for _ in 0..BATCH_SYNCS {
        let start = Instant::now();
        if pos + BATCH_BYTES as u64 > allocated {
            allocated = pos + GROW_BYTES;
            f.set_len(allocated)?;
        }
        f.write_all_at(&buf, pos)?;
        f.sync_data()?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
        pos += BATCH_BYTES as u64;
    }
    Ok(median(times))
}

/// fdatasyncs per second of one shared file, `threads` syncing at once,
/// each after its own 177-byte write.
fn group_syncs(dir: &Path, threads: usize) -> Res<f64> {
    let f = create(&dir.join(format!("group-{threads}")))?;
    f.set_len(GROW_BYTES * 4)?;
    let next = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Res<()> {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Res<()> {
                    let buf = vec![7u8; FRAME_BYTES];
                    for _ in 0..GROUP_SYNCS_PER_THREAD {
                        let at = next
                            .fetch_add(FRAME_BYTES as u64, std::sync::atomic::Ordering::Relaxed);
                        f.write_all_at(&buf, at)?;
                        f.sync_data()?;
                    }
                    Ok(())
                })
            })
            .collect();
        join_all(handles)
    })?;
    Ok(per_s(threads * GROUP_SYNCS_PER_THREAD, start.elapsed()))
}

/// Wait for every thread; the first error or panic.
fn join_all(handles: Vec<std::thread::ScopedJoinHandle<'_, Res<()>>>) -> Res<()> {
    for h in handles {
        h.join().map_err(|_| "sync thread panicked")??;
    }
    Ok(())
}

/// (ms to create and write the files, ms to sync them and the directory).
fn many_files(dir: &Path) -> Res<(f64, f64)> {
    let dir = tempfile::tempdir_in(dir)?;
    let paths: Vec<_> = (0..FILES)
        .map(|i| dir.path().join(format!("key-{i:08}.seg")))
        .collect();
    let buf = vec![7u8; 150];
    let start = Instant::now();
    for p in &paths {
        create(p)?.write_all_at(&buf, 0)?;
    }
    let created = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    std::thread::scope(|s| -> Res<()> {
        let handles: Vec<_> = paths
            .chunks(FILES.div_ceil(SYNC_THREADS))
            .map(|chunk| {
                s.spawn(move || -> Res<()> {
                    for p in chunk {
                        File::open(p)?.sync_data()?;
                    }
                    Ok(())
                })
            })
            .collect();
        join_all(handles)
    })?;
    File::open(dir.path())?.sync_all()?;
    Ok((created, start.elapsed().as_secs_f64() * 1e3))
}

/// ms to compute both checksums of every record the scan row reads.
fn record_checksums() -> f64 {
    let records = vec![7u8; SCAN_RECORDS * 124];
    let start = Instant::now();
    let mut fold = 0u32;
    for (i, record) in records.chunks_exact(124).enumerate() {
        let body = crc32c::crc32c(&record[24..]);
        let mut binding = [0u8; 32];
        binding[24..].copy_from_slice(&(i as u64 * 124).to_le_bytes());
        let head = crc32c::crc32c_append(crc32c::crc32c(&record[4..24]), &binding);
        fold ^= body ^ head;
    }
    let took = start.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(fold);
    took
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().map(std::path::PathBuf::from);
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let mut rows: Vec<(&str, Vec<f64>)> = [
        "write() of 100 B appended, calls/s",
        "pwrite of a 177-B frame, file grown by set_len, calls/s",
        "pwrite 124,000 B + fdatasync, new blocks, µs",
        "pwrite 124,000 B + fdatasync, blocks written before, µs",
        "fdatasync of one file, 1 thread, syncs/s",
        "fdatasync of one file, 2 threads at once, syncs/s",
        "fdatasync of one file, 4 threads at once, syncs/s",
        "create 20,000 files with one write each, ms",
        "fdatasync those 20,000 files (64 threads) and the directory, ms",
        "both CRC32C of 100,000 records of 100 B (the scan row's checks), ms",
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    for run in 0..runs {
        let dir = match &base {
            Some(b) => tempfile::tempdir_in(b)?,
            None => tempfile::tempdir()?,
        };
        let d = dir.path();
        let (created, synced) = many_files(d)?;
        let values = [
            raw_writes(d)?,
            frame_writes(d)?,
            batch_syncs(d, "sparse", false)?,
            batch_syncs(d, "rewritten", true)?,
            group_syncs(d, 1)?,
            group_syncs(d, 2)?,
            group_syncs(d, 4)?,
            created,
            synced,
            record_checksums(),
        ];
        for (row, v) in rows.iter_mut().zip(values) {
            row.1.push(v);
        }
        eprintln!("run {} of {runs} done", run + 1);
    }
    println!("| floor | median of {runs} runs (min–max) |\n|---|---:|");
    for (name, v) in rows {
        let (lo, hi) = (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        );
        let digits = if hi < 10.0 { 2 } else { 0 };
        println!(
            "| {name} | {:.digits$} ({lo:.digits$}–{hi:.digits$}) |",
            median(v)
        );
    }
    Ok(())
}
