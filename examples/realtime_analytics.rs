//! Real-time analytics: several ingest threads append page views at a high
//! rate into one shared `Wal` (an `Arc`, no Mutex), some of them twice (a
//! client retrying). An aggregator streams the log, drops duplicates by the
//! event id in the record header, and computes one-second tumbling windows of
//! views and latency per page.
//!
//! Run with `cargo run --example realtime_analytics`; exits non-zero if a
//! check fails.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use nano_wal::Wal;

type Error = Box<dyn std::error::Error + Send + Sync>;

const THREADS: usize = 4;
const EVENTS_PER_THREAD: usize = 25_000;
const BATCH: usize = 100;
const PAGES: [&str; 4] = ["/", "/search", "/cart", "/checkout"];
/// Event time of the first event, in milliseconds since the Unix epoch.
const START_MS: u64 = 1_700_000_000_000;
const WINDOW_MS: u64 = 1_000;

/// A page view as the ingest side receives it.
struct View {
    id: usize,
    event_ms: u64,
    page: &'static str,
    latency_ms: u64,
}

/// Deterministic traffic: event `n` of the whole stream. Each page has
/// its own typical latency.
fn view(n: usize) -> View {
    let page = n * 7 % 11 % PAGES.len();
    View {
        id: n,
        // 10,000 views a second of event time.
        event_ms: START_MS + (n / 10) as u64,
        page: PAGES[page],
        latency_ms: [20, 80, 40, 120][page] + (n * 31 % 50) as u64,
    }
}

/// The expected aggregate, computed without the log.
fn expected(total: usize) -> BTreeMap<(u64, &'static str), (u64, u64)> {
    let mut windows = BTreeMap::new();
    for n in 0..total {
        let v = view(n);
        let w: &mut (u64, u64) = windows.entry((v.event_ms / WINDOW_MS, v.page)).or_default();
        *w = (w.0 + 1, w.1 + v.latency_ms);
    }
    windows
}

/// One ingest thread: its share of the events, in batches, every 50th sent
/// again as a retry would.
fn ingest(wal: &Wal, thread: usize) -> Result<usize, Error> {
    let shard = format!("views.{thread}");
    let mut duplicates = 0;
    let mut batch = Vec::with_capacity(BATCH + 2);
    for i in 0..EVENTS_PER_THREAD {
        let v = view(i * THREADS + thread);
        let header = Bytes::from(format!("event-id={}", v.id));
        let body = Bytes::from(format!("{},{},{}", v.event_ms, v.page, v.latency_ms));
        if i % 50 == 49 {
            batch.push((shard.as_str(), Some(header.clone()), body.clone()));
            duplicates += 1;
        }
        batch.push((shard.as_str(), Some(header), body));
        if batch.len() >= BATCH {
            wal.append_batch(batch.drain(..), false)?;
        }
    }
    wal.append_batch(batch, false)?;
    Ok(duplicates)
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(dir.path()).open()?);

    let started = Instant::now();
    let duplicates_sent: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let wal = Arc::clone(&wal);
                s.spawn(move || ingest(&wal, t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "ingest panicked")?)
            .sum::<Result<usize, Error>>()
    })?;
    wal.sync()?; // one fsync for everything ingested
    let ingest_secs = started.elapsed().as_secs_f64();
    let total = THREADS * EVENTS_PER_THREAD;
    println!(
        "ingested {} records from {THREADS} threads in {ingest_secs:.2} s ({:.0} records/s)",
        total + duplicates_sent,
        (total + duplicates_sent) as f64 / ingest_secs
    );

    // Aggregate: stream every shard, deduplicate by header, window by event time.
    let mut seen: HashSet<usize> = HashSet::with_capacity(total);
    let mut duplicates_dropped = 0;
    let mut windows: BTreeMap<(u64, &'static str), (u64, u64)> = BTreeMap::new();
    let mut ingest_span_ms = (u64::MAX, 0);
    for shard in wal.enumerate_keys()? {
        for record in wal.records(&shard)? {
            let record = record?;
            let header = record.header.as_deref().ok_or("every view has a header")?;
            let id: usize = std::str::from_utf8(header)?
                .strip_prefix("event-id=")
                .ok_or("event id")?
                .parse()?;
            if !seen.insert(id) {
                duplicates_dropped += 1;
                continue;
            }
            let text = std::str::from_utf8(&record.content)?;
            let mut fields = text.split(',');
            let mut next = || fields.next().ok_or("three fields");
            let event_ms: u64 = next()?.parse()?;
            let page_text = next()?;
            let page = PAGES
                .iter()
                .copied()
                .find(|p| *p == page_text)
                .ok_or("known page")?;
            let latency_ms: u64 = next()?.parse()?;
            let w = windows.entry((event_ms / WINDOW_MS, page)).or_default();
            *w = (w.0 + 1, w.1 + latency_ms);
            // The engine stamps each record with its append time.
            let t = record.timestamp_unix_ms.ok_or("timestamp")?;
            ingest_span_ms = (ingest_span_ms.0.min(t), ingest_span_ms.1.max(t));
        }
    }

    println!("window  page        views  avg latency");
    for (&(window, page), &(views, latency_sum)) in windows.iter().take(8) {
        let second = window - START_MS / WINDOW_MS;
        println!(
            "{second:>6}  {page:<10} {views:>6}  {:>8.1} ms",
            latency_sum as f64 / views as f64
        );
    }
    println!("... {} windows × pages in all", windows.len());
    println!(
        "dropped {duplicates_dropped} duplicates; records were appended over {} ms",
        ingest_span_ms.1.saturating_sub(ingest_span_ms.0)
    );

    check(seen.len() == total, "every event counted once")?;
    check(duplicates_dropped == duplicates_sent, "every retry dropped")?;
    check(windows == expected(total), "windows match the traffic")?;
    check(
        windows.values().map(|w| w.0).sum::<u64>() == total as u64,
        "views add up",
    )?;
    // Every thread is done with it: take the handle back and close it.
    Arc::try_unwrap(wal)
        .map_err(|_| "the log is still shared")?
        .close()?;
    println!("realtime_analytics: all checks passed");
    Ok(())
}
