//! Command line and the sizes of every workload.

use std::path::PathBuf;
use std::time::Duration;

/// Every size the workloads use, in one place.
#[derive(Clone, Debug)]
pub struct Scale {
    /// Keys of the multi-key append and batch workloads.
    pub keys: usize,
    /// Records of a non-durable 100 B append run.
    pub small_appends: usize,
    /// Records of a non-durable 4 KiB append run.
    pub large_appends: usize,
    /// Records of the fsync-per-record run.
    pub durable_appends: usize,
    /// Batches timed, and records per batch.
    pub batches: usize,
    /// Records in one batch.
    pub batch_size: usize,
    /// Durable appends per thread.
    pub per_thread: usize,
    /// Synced batches per thread of the multi-group workload.
    pub group_batches: usize,
    /// (keys, records per key) of the two random-read layouts.
    pub read_layouts: [(usize, usize); 2],
    /// Random reads per run.
    pub reads: usize,
    /// Records of the enumerated key.
    pub enumerate: usize,
    /// (keys, records per key) written before the reopen.
    pub reopen: (usize, usize),
    /// Records per key (of `reopen`'s keys) for the reopen after a crash
    /// with a full journal: written in batches of 1,000 records (one per
    /// key), 430 frames of 153 KB are 65.8 MB, just under nano-wal's
    /// 64 MiB (67.1 MB) checkpoint bound, so nothing was checkpointed and
    /// the whole journal is replayed.
    pub reopen_full_per_key: usize,
    /// Keys of the many-keys workload.
    pub many_keys: usize,
    /// A timed loop stops early after this long (slow systems).
    pub budget: Duration,
}

impl Scale {
    /// The real measurement.
    pub fn full() -> Self {
        Self {
            keys: 1000,
            small_appends: 500_000,
            large_appends: 100_000,
            durable_appends: 5_000,
            batches: 20,
            batch_size: 1000,
            per_thread: 500,
            // 16 threads × 200 × 50 KiB: about 160 MB, a second or more, so
            // the row measures writing rather than creating the files.
            group_batches: 200,
            read_layouts: [(10, 10_000), (1000, 100)],
            reads: 200_000,
            enumerate: 100_000,
            reopen: (1000, 100),
            reopen_full_per_key: 430,
            many_keys: 20_000,
            budget: Duration::from_secs(3),
        }
    }

    /// Tiny counts, to prove the harness works (CI).
    pub fn smoke() -> Self {
        Self {
            keys: 10,
            small_appends: 200,
            large_appends: 200,
            durable_appends: 20,
            batches: 3,
            batch_size: 50,
            per_thread: 5,
            group_batches: 2,
            read_layouts: [(2, 100), (10, 20)],
            reads: 200,
            enumerate: 200,
            reopen: (10, 10),
            reopen_full_per_key: 20,
            many_keys: 200,
            budget: Duration::from_millis(500),
        }
    }
}

/// Parsed command line.
#[derive(Clone, Debug)]
pub struct Args {
    /// Repetitions of the whole matrix (default 3; 1 with `--smoke`).
    pub runs: Option<usize>,
    /// Only workloads whose name contains this.
    pub only: Option<String>,
    /// Only these systems (names as in the table).
    pub systems: Option<Vec<String>>,
    /// Tiny sizes.
    pub smoke: bool,
    /// Directory for the table and the raw measurements.
    pub out: Option<PathBuf>,
    /// Internal: run one (workload index, system) in this process.
    pub child: Option<(usize, String)>,
    /// Internal: the directory a child's first phase populated.
    pub input: Option<PathBuf>,
}

impl Args {
    /// Parse `std::env::args`, ignoring what it does not know (`--bench`).
    pub fn parse() -> Result<Self, String> {
        let mut args = Self {
            runs: None,
            only: None,
            systems: None,
            smoke: false,
            out: None,
            child: None,
            input: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--runs" => {
                    let runs = value("--runs")?
                        .parse()
                        .map_err(|e| format!("--runs: {e}"))?;
                    args.runs = Some(runs);
                }
                "--only" => args.only = Some(value("--only")?),
                "--systems" => {
                    let list = value("--systems")?;
                    args.systems = Some(list.split(',').map(|s| s.trim().to_owned()).collect());
                }
                "--smoke" => args.smoke = true,
                "--out" => args.out = Some(PathBuf::from(value("--out")?)),
                "--input" => args.input = Some(PathBuf::from(value("--input")?)),
                "--child" => {
                    let index = value("--child")?
                        .parse()
                        .map_err(|e| format!("--child: {e}"))?;
                    args.child = Some((index, value("--child")?));
                }
                _ => {}
            }
        }
        if args.runs == Some(0) {
            return Err("--runs must be at least 1".to_owned());
        }
        Ok(args)
    }

    /// Repetitions of the whole matrix.
    pub fn runs(&self) -> usize {
        self.runs.unwrap_or(if self.smoke { 1 } else { 3 })
    }

    /// The sizes to use.
    pub fn scale(&self) -> Scale {
        if self.smoke {
            Scale::smoke()
        } else {
            Scale::full()
        }
    }
}
