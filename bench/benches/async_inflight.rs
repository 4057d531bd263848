//! One task with 64 durable appends in flight (`AsyncWal`, feature `tokio`)
//! against 16 threads appending durably (the compare harness's blocking
//! row), in one run: records/s, median of `--runs` (default 5) runs of
//! `--seconds` (default 2) each, 100-byte records, one key and 16 keys.
//!
//! `cargo bench -p nano-wal-bench --bench async_inflight -- --runs 5`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nano_wal::{AsyncWal, Wal};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const IN_FLIGHT: usize = 64;
const THREADS: usize = 16;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn blocking(keys: usize, budget: Duration) -> Res<f64> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;
    let content = Bytes::from(vec![b'x'; 100]);
    let start = Instant::now();
    let total: usize = std::thread::scope(|scope| -> Res<usize> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (wal, content) = (&wal, content.clone());
                scope.spawn(move || -> Res<usize> {
                    let key = format!("k{}", t % keys);
                    let mut n = 0;
                    while start.elapsed() < budget {
                        wal.append_entry(key.as_str(), None, content.clone(), true)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "thread panicked")?)
            .sum()
    })?;
    let rate = total as f64 / start.elapsed().as_secs_f64();
    wal.close()?;
    Ok(rate)
}

fn in_flight(keys: usize, budget: Duration) -> Res<f64> {
    let dir = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(dir.path()).open()?);
    let front = AsyncWal::new(wal.clone())?;
    let content = Bytes::from(vec![b'x'; 100]);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let total = rt.block_on(async {
        let mut pending = std::collections::VecDeque::new();
        let (start, mut n, mut i) = (Instant::now(), 0usize, 0usize);
        while start.elapsed() < budget {
            while pending.len() < IN_FLIGHT {
                let key = format!("k{}", i % keys);
                pending.push_back(front.append(key, None, content.clone()));
                i += 1;
            }
            if let Some(oldest) = pending.pop_front() {
                oldest.await?;
                n += 1;
            }
        }
        for p in pending {
            p.await?;
            n += 1;
        }
        Ok::<_, nano_wal::WalError>((n, start.elapsed()))
    })?;
    drop(front);
    let rate = total.0 as f64 / total.1.as_secs_f64();
    Arc::try_unwrap(wal).map_err(|_| "still shared")?.close()?;
    Ok(rate)
}

fn main() -> Res<()> {
    let runs = arg("--runs", 5);
    let budget = Duration::from_secs(arg("--seconds", 2));
    println!(
        "| keys | 16 threads, blocking (records/s) | 1 task, {IN_FLIGHT} in flight (records/s) | ratio |"
    );
    println!("|---|---:|---:|---:|");
    for keys in [1, 16] {
        let (mut b, mut a) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            b.push(blocking(keys, budget)?);
            a.push(in_flight(keys, budget)?);
        }
        let (b, a) = (median(b), median(a));
        println!("| {keys} | {b:.0} | {a:.0} | {:.2}× |", a / b);
    }
    Ok(())
}
