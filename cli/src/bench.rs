//! `nano-wal bench`: threads appending to one shared `Wal` for a while, then
//! a summary of throughput, append latency and fsyncs.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nano_wal::storage::{LockGuard, OpenMode, StdStorage, Storage, StorageFile};
use nano_wal::{MAX_CONTENT_BYTES, Wal, WalOptions};

use crate::CliResult;

/// Settings of `nano-wal bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Write into this directory and keep it [default: a temporary
    /// directory, removed afterwards]
    #[arg(long, value_name = "D")]
    dir: Option<PathBuf>,
    /// Number of keys the records are spread over.
    #[arg(long = "keys", value_name = "K", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    key_count: u32,
    /// Content bytes per record.
    #[arg(long = "size", value_name = "B", default_value_t = 256)]
    size_bytes: u32,
    /// Appending threads, all sharing one `Wal`.
    #[arg(long = "threads", value_name = "T", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    thread_count: u32,
    /// Append durably: each append returns after an fsync (shared by
    /// concurrent appenders).
    #[arg(long)]
    durable: bool,
    /// How long to append, in seconds.
    #[arg(long = "seconds", value_name = "S", default_value_t = 5.0)]
    duration_secs: f64,
    /// Stop early once this many MiB of content were appended, so a run
    /// never fills a small disk.
    #[arg(long = "max-mib", value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_mib: u64,
}

/// Counts the fsyncs the engine asks for.
#[derive(Debug, Default)]
struct SyncCounts {
    file: AtomicU64,
    dir: AtomicU64,
}

/// [`StdStorage`] that counts fsyncs.
#[derive(Debug)]
struct CountingStorage {
    counts: Arc<SyncCounts>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn StorageFile>,
    counts: Arc<SyncCounts>,
}

impl StorageFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.counts.file.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }
    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for CountingStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdStorage.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdStorage.list_dir(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(CountingFile {
            inner: StdStorage.open(path, mode)?,
            counts: self.counts.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdStorage.remove_file(path)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        StdStorage.remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.counts.dir.fetch_add(1, Ordering::Relaxed);
        StdStorage.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        StdStorage.try_lock(path)
    }
    fn boot_id(&self) -> io::Result<String> {
        StdStorage.boot_id()
    }
}

/// Latencies in log-linear buckets: 16 per power of two (within ~6%), so
/// memory stays fixed however long the run.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
}

const SUB_BUCKETS: u32 = 16;

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; Self::index(u64::MAX) + 1],
        }
    }

    fn index(ns: u64) -> usize {
        let i = if ns < u64::from(SUB_BUCKETS) {
            ns
        } else {
            let exp = 63 - u64::from(ns.leading_zeros()); // ≥ 4
            let sub = (ns >> (exp - 4)) & u64::from(SUB_BUCKETS - 1);
            (exp - 3) * u64::from(SUB_BUCKETS) + sub
        };
        usize::try_from(i).unwrap_or(usize::MAX)
    }

    /// The largest value that falls in bucket `i`.
    fn upper_bound(i: usize) -> u64 {
        let i = i as u64;
        let sub_buckets = u64::from(SUB_BUCKETS);
        if i < sub_buckets {
            return i;
        }
        let exp = i / sub_buckets + 3;
        let sub = i % sub_buckets;
        let low = (sub_buckets + sub) << (exp - 4);
        low.saturating_add((1u64 << (exp - 4)) - 1)
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// The value at quantile `q` (0..=1), as its bucket's upper bound.
    fn quantile(&self, q: f64) -> Duration {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank between 1 and total"
        )]
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(Self::upper_bound(i));
            }
        }
        Duration::from_nanos(u64::MAX)
    }
}

/// Run the benchmark and print the summary.
pub fn run(args: &BenchArgs, options: WalOptions, out: &mut dyn Write) -> CliResult<()> {
    if !(args.duration_secs.is_finite() && args.duration_secs > 0.0) {
        return Err(format!("--seconds must be positive, not {}", args.duration_secs).into());
    }
    let size_bytes = usize::try_from(args.size_bytes)?;
    if size_bytes > MAX_CONTENT_BYTES {
        return Err(
            format!("--size {size_bytes} exceeds the record limit {MAX_CONTENT_BYTES}").into(),
        );
    }
    let duration = Duration::from_secs_f64(args.duration_secs);
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("nano-wal-bench-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let counts = Arc::new(SyncCounts::default());
    let storage = Arc::new(CountingStorage {
        counts: counts.clone(),
    });
    let wal = Wal::builder(&dir)
        .options(options)
        .storage(storage)
        .open()?;
    let keys: Vec<String> = (0..args.key_count).map(|k| format!("bench-{k}")).collect();
    let payload = Bytes::from(vec![b'x'; size_bytes]);
    let stop = AtomicBool::new(false);
    let appended = AtomicU64::new(0);

    let bar = if io::stderr().is_terminal() {
        ProgressBar::with_draw_target(
            Some(u64::try_from(duration.as_millis())?),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")?.progress_chars("=> "),
    );

    // Only the run's fsyncs count: not the checkpoint that opening a new
    // directory writes (its first manifest).
    let (file_at_open, dir_at_open) = (
        counts.file.load(Ordering::Relaxed),
        counts.dir.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let (histogram, failure) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.thread_count)
            .map(|t| {
                let (wal, keys, payload) = (&wal, &keys, &payload);
                let (stop, appended) = (&stop, &appended);
                s.spawn(move || {
                    let mut histogram = Histogram::new();
                    let mut i = t as usize;
                    let max_records = (args.max_mib << 20) / u64::from(args.size_bytes.max(1));
                    while !stop.load(Ordering::Relaxed) {
                        if appended.load(Ordering::Relaxed) >= max_records {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        let key = keys[i % keys.len()].as_str();
                        i += 1;
                        let t0 = Instant::now();
                        if let Err(e) = wal.append_entry(key, None, payload.clone(), args.durable) {
                            stop.store(true, Ordering::Relaxed);
                            return (histogram, Some(e));
                        }
                        histogram.record(t0.elapsed());
                        appended.fetch_add(1, Ordering::Relaxed);
                    }
                    (histogram, None)
                })
            })
            .collect();
        while !stop.load(Ordering::Relaxed) {
            let elapsed = started.elapsed();
            if elapsed >= duration {
                break;
            }
            std::thread::sleep((duration - elapsed).min(Duration::from_millis(100)));
            bar.set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            bar.set_message(format!("{} records", appended.load(Ordering::Relaxed)));
        }
        stop.store(true, Ordering::Relaxed);
        let mut all = Histogram::new();
        let mut failure = None;
        for w in workers {
            match w.join() {
                Ok((h, e)) => {
                    all.merge(&h);
                    failure = failure.or(e.map(|e| e.to_string()));
                }
                Err(_) => failure = Some("a benchmark thread panicked".to_owned()),
            }
        }
        (all, failure)
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let file_syncs = counts.file.load(Ordering::Relaxed) - file_at_open;
    let dir_syncs = counts.dir.load(Ordering::Relaxed) - dir_at_open;
    wal.close()?;
    if let Some(e) = failure {
        return Err(e.into());
    }

    let records = appended.load(Ordering::Relaxed);
    #[expect(clippy::cast_precision_loss, reason = "rates for display")]
    let (per_sec, mb_per_sec) = {
        let secs = elapsed.as_secs_f64();
        let rate = records as f64 / secs;
        (rate, rate * size_bytes as f64 / 1e6)
    };
    writeln!(
        out,
        "nano-wal bench: {} thread(s), {} key(s), {size_bytes}-byte records, {}, {:.1} s",
        args.thread_count,
        args.key_count,
        if args.durable {
            "durable"
        } else {
            "non-durable"
        },
        elapsed.as_secs_f64()
    )?;
    writeln!(out, "records      {records} ({per_sec:.0} records/s)")?;
    writeln!(out, "throughput   {mb_per_sec:.2} MB/s of content")?;
    writeln!(
        out,
        "latency      p50 {:.1?}, p99 {:.1?} per append",
        histogram.quantile(0.50),
        histogram.quantile(0.99)
    )?;
    writeln!(
        out,
        "fsyncs       {} ({file_syncs} data, {dir_syncs} directory)",
        file_syncs + dir_syncs
    )?;
    let fate = if args.dir.is_some() {
        "kept"
    } else {
        "removed"
    };
    writeln!(out, "directory    {} ({fate})", dir.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values_within_a_sixteenth() {
        for ns in [0, 1, 15, 16, 17, 31, 32, 1_000, 123_456, 10_000_000_000] {
            let i = Histogram::index(ns);
            let upper = Histogram::upper_bound(i);
            assert!(upper >= ns, "{ns} above its bucket's bound {upper}");
            assert!(upper - ns <= ns / 16, "{ns}: bound {upper} too loose");
            if i > 0 {
                assert!(Histogram::upper_bound(i - 1) < ns, "{ns} in a later bucket");
            }
        }
        assert_eq!(
            Histogram::index(u64::MAX),
            Histogram::new().counts.len() - 1
        );
    }

    #[test]
    fn quantiles_pick_ranks() {
        let mut h = Histogram::new();
        for ns in 1..=100 {
            h.record(Duration::from_nanos(ns * 1000));
        }
        let p50 = h.quantile(0.5).as_nanos();
        let p99 = h.quantile(0.99).as_nanos();
        assert!((50_000..=53_200).contains(&p50), "{p50}");
        assert!((99_000..=105_300).contains(&p99), "{p99}");
        assert_eq!(Histogram::new().quantile(0.5), Duration::ZERO);
    }
}
