//! The JetStream exporter against a real `nats-server -js` on 127.0.0.1,
//! in one run: records/s exporting what is there (one key and 100 keys,
//! with and without a cursor), records/s following a writer that appends as fast as it can,
//! and the delay from an append to the message in the stream (seen by a
//! JetStream consumer) for a follower on the writing handle and for a
//! read-only follower (what `nano-wal export nats` without `--cursor` is
//! next to a writer in another process). 100-byte records.
//! Medians of `--runs` (default 5) runs.
//!
//! `cargo bench -p nano-wal-nats --bench export -- --runs 5`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nano_wal::Wal;
use nano_wal_nats::async_nats;
use nano_wal_nats::async_nats::jetstream::consumer::push::OrderedConfig;
use nano_wal_nats::testing::NatsServer;
use nano_wal_nats::{ExportConfig, Exporter};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

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

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = v.len().saturating_sub(1) * 99 / 100;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn content() -> Bytes {
    Bytes::from(vec![b'x'; 100])
}

async fn stored(js: &async_nats::jetstream::Context, stream: &str) -> Res<u64> {
    Ok(match js.get_stream(stream).await {
        Ok(mut s) => s.info().await?.state.messages,
        Err(_) => 0,
    })
}

/// Export `n` records that are already there, spread over `keys` keys,
/// into a new stream.
async fn export_existing(
    client: &async_nats::Client,
    run: u64,
    (n, keys): (u64, u64),
    cursor: bool,
) -> Res<f64> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;
    let batch: Vec<_> = (0..n)
        .map(|i| (format!("k{}", i % keys), None, content()))
        .collect();
    wal.append_batch(batch, true)?;
    let stream = format!("E{run}K{keys}{}", if cursor { "C" } else { "" });
    let mut config = ExportConfig::new(&stream, stream.to_lowercase());
    if cursor {
        config = config.cursor("bench");
    }
    let mut exporter = Exporter::new(&wal, client.clone(), config).await?;
    let start = Instant::now();
    let report = exporter.run(&AtomicBool::new(false)).await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.published, n);
    Ok(n as f64 / secs)
}

/// A writer appends `n` records as fast as it can while the exporter
/// follows; time from the first append to the last message stored.
async fn export_following(client: &async_nats::Client, run: u64, n: u64) -> Res<f64> {
    let dir = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(dir.path()).open()?);
    let stream = format!("F{run}");
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (wal, stop, client) = (wal.clone(), stop.clone(), client.clone());
        let config = ExportConfig::new(&stream, stream.to_lowercase()).follow(true);
        tokio::spawn(async move {
            let mut exporter = Exporter::new(&wal, client, config).await?;
            exporter.run(&stop).await.map(|r| r.published)
        })
    };
    let js = async_nats::jetstream::new(client.clone());
    while js.get_stream(&stream).await.is_err() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || -> Res<()> {
            for _ in 0..n {
                wal.append_entry("k", None, content(), false)?;
            }
            Ok(())
        })
    };
    while stored(&js, &stream).await? < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    writer.join().map_err(|_| "writer panicked")??;
    stop.store(true, Ordering::Relaxed);
    task.await??;
    Ok(n as f64 / secs)
}

/// `samples` appends, each timed until a JetStream consumer receives it:
/// milliseconds. Appends are 2 ms apart plus a pseudo-random 0–100 ms, so
/// that they fall anywhere in a read-only follower's 100 ms tick.
async fn latency(
    client: &async_nats::Client,
    run: u64,
    samples: u64,
    read_only: bool,
) -> Res<Vec<f64>> {
    let dir = tempfile::tempdir()?;
    let writer = Arc::new(Wal::builder(dir.path()).open()?);
    writer.append_entry("k", None, content(), true)?;
    let follower = if read_only {
        Arc::new(Wal::builder(dir.path()).read_only(true).open()?)
    } else {
        writer.clone()
    };
    let stream = format!("L{run}{}", if read_only { "R" } else { "" });
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (follower, stop, client) = (follower.clone(), stop.clone(), client.clone());
        let config = ExportConfig::new(&stream, stream.to_lowercase()).follow(true);
        tokio::spawn(async move {
            let mut exporter = Exporter::new(&follower, client, config).await?;
            exporter.run(&stop).await.map(|r| r.published)
        })
    };
    let js = async_nats::jetstream::new(client.clone());
    while stored(&js, &stream).await? < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let consumer = js
        .get_stream(&stream)
        .await?
        .create_consumer(OrderedConfig {
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    messages.next().await.ok_or("no first message")??;
    let mut delays = Vec::new();
    let mut jitter: u64 = 0x2545_f491_4f6c_dd1d ^ run;
    for _ in 0..samples {
        let sent = Instant::now();
        writer.append_entry("k", None, content(), false)?;
        messages.next().await.ok_or("stream ended")??;
        delays.push(sent.elapsed().as_secs_f64() * 1e3);
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        tokio::time::sleep(Duration::from_millis(2 + jitter % 100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    task.await??;
    Ok(delays)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let runs = arg("--runs", 5);
    let n = arg("--records", 100_000);
    let samples = arg("--samples", 100);
    let server = NatsServer::start()?;
    let client = async_nats::connect(server.url()).await?;
    let (mut plain, mut cursor, mut follow) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wide, mut wide_cursor) = (Vec::new(), Vec::new());
    let (mut lat, mut ro) = (Vec::new(), Vec::new());
    for run in 0..runs {
        plain.push(export_existing(&client, run, (n, 1), false).await?);
        cursor.push(export_existing(&client, run, (n, 1), true).await?);
        wide.push(export_existing(&client, run, (n, 100), false).await?);
        wide_cursor.push(export_existing(&client, run, (n, 100), true).await?);
        follow.push(export_following(&client, run, n).await?);
        lat.extend(latency(&client, run, samples, false).await?);
        ro.extend(latency(&client, run, samples, true).await?);
        eprintln!("run {} of {runs} done", run + 1);
    }
    println!("| export, 100 B records ({runs} runs) | figure |");
    println!("|---|---|");
    println!(
        "| {n} records already there, no cursor | {:.0} records/s (median) |",
        median(plain)
    );
    println!(
        "| {n} records already there, `--cursor` | {:.0} records/s (median) |",
        median(cursor)
    );
    println!(
        "| {n} records over 100 keys already there, no cursor | {:.0} records/s (median) |",
        median(wide)
    );
    println!(
        "| {n} records over 100 keys already there, `--cursor` | {:.0} records/s (median) |",
        median(wide_cursor)
    );
    println!(
        "| following a writer appending {n} records | {:.0} records/s (median) |",
        median(follow)
    );
    println!(
        "| append → stream, follower on the writing handle | {:.2} ms median, {:.2} ms p99 ({} samples) |",
        median(lat.clone()),
        p99(lat.clone()),
        lat.len()
    );
    println!(
        "| append → stream, read-only follower (looks every 100 ms) | {:.1} ms median, {:.1} ms p99 ({} samples) |",
        median(ro.clone()),
        p99(ro.clone()),
        ro.len()
    );
    Ok(())
}
