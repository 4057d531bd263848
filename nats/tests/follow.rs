//! Following: records appended while the exporter runs (on keys that
//! existed and on keys created meanwhile) reach the stream, each once; the
//! stop flag ends the export with a report. Also on a current-thread
//! runtime, where the follower polls instead of sleeping on appends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Fixture, TestResult, Written, assert_exactly_once, write};
use nano_wal::Wal;
use nano_wal_nats::testing::read_stream;
use nano_wal_nats::{ExportConfig, Exporter};

async fn wait_for_count(client: &async_nats::Client, stream: &str, want: u64) -> TestResult {
    let js = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The exporter may not have created the stream yet.
        let have = match js.get_stream(stream).await {
            Ok(mut s) => s.info().await?.state.messages,
            Err(_) => 0,
        };
        if have == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("stream holds {have} messages, want {want}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn follow_and_append(wal: Arc<Wal>, client: async_nats::Client) -> TestResult {
    let mut written: Vec<Written> = write(&wal, &["a"], 10)?;
    let stop = Arc::new(AtomicBool::new(false));
    let exporter = {
        let (wal, client, stop) = (wal.clone(), client.clone(), stop.clone());
        tokio::spawn(async move {
            let config = ExportConfig::new("LIVE", "live")
                .follow(true)
                .cursor("live");
            Exporter::new(&wal, client, config).await?.run(&stop).await
        })
    };
    wait_for_count(&client, "LIVE", 10).await?;
    for round in 0..5 {
        let keys: &[&str] = if round < 2 { &["a"] } else { &["a", "late"] };
        written.extend(write(&wal, keys, 7)?);
        wait_for_count(&client, "LIVE", written.len() as u64).await?;
    }
    stop.store(true, Ordering::Relaxed);
    let report = exporter.await??;
    assert_eq!(
        (report.published, report.resyncs, report.keys),
        (written.len() as u64, 0, 2)
    );
    assert_exactly_once(&read_stream(&client, "LIVE", "live").await?, &written);
    let last = written.last().ok_or("none")?;
    assert_eq!(
        wal.consumer("live")?.position(&last.key),
        Some(last.entry_ref)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_records_and_new_keys_are_exported_as_they_come() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = Arc::new(fx.wal_builder().open()?);
    follow_and_append(wal, client).await
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_follows_too() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = Arc::new(fx.wal_builder().open()?);
    follow_and_append(wal, client).await
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_only_exporter_on_a_current_thread_runtime_sees_the_writer() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let writer = fx.wal_builder().open()?;
    let mut written = write(&writer, &["a"], 5)?;
    writer.sync()?;
    let reader = Arc::new(fx.wal_builder().read_only(true).open()?);
    let stop = Arc::new(AtomicBool::new(false));
    let exporter = {
        let (reader, client, stop) = (reader.clone(), client.clone(), stop.clone());
        tokio::spawn(async move {
            let config = ExportConfig::new("RO", "ro").follow(true);
            Exporter::new(&reader, client, config)
                .await?
                .run(&stop)
                .await
        })
    };
    wait_for_count(&client, "RO", 5).await?;
    written.extend(write(&writer, &["a", "new"], 4)?);
    writer.sync()?;
    wait_for_count(&client, "RO", 13).await?;
    stop.store(true, Ordering::Relaxed);
    let report = exporter.await??;
    assert_eq!((report.published, report.keys), (13, 2));
    assert_exactly_once(&read_stream(&client, "RO", "ro").await?, &written);
    Ok(())
}
