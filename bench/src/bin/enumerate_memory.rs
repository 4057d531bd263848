//! Extra memory while enumerating one large key: writes N × 4 KiB records,
//! reopens, then streams them with `enumerate_records`, and reports how much
//! the peak resident set grew during the read.
//!
//! Run: `cargo run --release -p nano-wal-bench --bin enumerate_memory [N]`

use bytes::Bytes;
use nano_wal::Wal;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(100_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    {
        let wal = Wal::builder(dir.path()).open()?;
        let payload = Bytes::from(vec![0x5Au8; 4096]);
        for chunk in 0..n.div_ceil(1000) {
            let count = 1000.min(n - chunk * 1000);
            wal.append_batch((0..count).map(|_| ("big", None, payload.clone())), false)?;
        }
        wal.close()?;
    }
    let wal = Wal::builder(dir.path()).open()?;
    if !nano_wal_bench::reset_peak_rss() {
        eprintln!("warning: could not reset the peak RSS; the figure includes the write phase");
    }
    let before = nano_wal_bench::rss_kib().unwrap_or(0);
    let start = std::time::Instant::now();
    let (mut count, mut bytes) = (0usize, 0usize);
    for content in wal.enumerate_records("big")? {
        count += 1;
        bytes += content.len();
    }
    let elapsed = start.elapsed();
    let after = nano_wal_bench::peak_rss_kib().unwrap_or(0);
    println!(
        "enumerated {count} records, {} MiB in {elapsed:?}; RSS before {before} KiB, peak during {after} KiB, growth {} KiB",
        bytes >> 20,
        after.saturating_sub(before)
    );
    if count != n {
        return Err(format!("expected {n} records, got {count}").into());
    }
    Ok(())
}
