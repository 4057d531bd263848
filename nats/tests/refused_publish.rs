//! A record JetStream refuses stops the export, and no later record is
//! stored behind it (each message expects the one before it): once the
//! cause is gone, the next run exports everything, each record once. Two
//! exporters racing on one stream break each other's chain and read the
//! stream again, and still store each record once. More messages in
//! flight than async-nats's default ack permits do not block. A resume
//! position the log no longer holds is reported, or skipped past with
//! `skip_removed`.

mod common;

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use common::{Fixture, TestResult};
use nano_wal_nats::testing::read_stream;
use nano_wal_nats::{ExportConfig, ExportError, Exporter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_leaves_no_gap_and_is_exported_once_the_cause_is_gone() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let js = async_nats::jetstream::new(client.clone());
    let mut stream_config = async_nats::jetstream::stream::Config {
        name: "SMALL".into(),
        subjects: vec!["p.>".into()],
        max_message_size: 600,
        ..Default::default()
    };
    js.create_stream(stream_config.clone()).await?;
    let wal = fx.wal_builder().open()?;
    let mut written = Vec::new();
    for i in 0..6 {
        let size = if i == 2 { 2000 } else { 10 };
        for key in ["k", "other"] {
            let content = Bytes::from(vec![b'a' + i; size]);
            let entry_ref = wal.append_entry(key, None, content.clone(), false)?;
            written.push(common::Written {
                key: key.as_bytes().to_vec(),
                entry_ref,
                header: None,
                content,
            });
        }
    }
    let refused = written[4].entry_ref;
    let config = ExportConfig::new("SMALL", "p").cursor("c");
    for attempt in 0..2 {
        let err = Exporter::new(&wal, client.clone(), config.clone())
            .await?
            .run(&AtomicBool::new(false))
            .await
            .err();
        match &err {
            Some(ExportError::Publish { entry_ref, .. }) => assert_eq!(*entry_ref, refused),
            other => panic!("attempt {attempt}: {other:?}"),
        }
        let messages = read_stream(&client, "SMALL", "p").await?;
        let of_k: Vec<_> = messages
            .iter()
            .filter(|(_, m)| m.key == b"k")
            .map(|(_, m)| m.entry_ref)
            .collect();
        assert_eq!(
            of_k,
            [written[0].entry_ref, written[2].entry_ref],
            "attempt {attempt}: k before the refused record only"
        );
        assert_eq!(wal.consumer("c")?.position("k"), Some(written[2].entry_ref));
    }
    // The cause goes away: the next run exports the rest, each once.
    let stored_before = read_stream(&client, "SMALL", "p").await?.len() as u64;
    stream_config.max_message_size = -1;
    js.update_stream(stream_config).await?;
    let report = Exporter::new(&wal, client.clone(), config)
        .await?
        .run(&AtomicBool::new(false))
        .await?;
    assert_eq!(report.published, 12 - stored_before, "the rest");
    common::assert_exactly_once(&read_stream(&client, "SMALL", "p").await?, &written);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_racing_while_a_writer_appends_store_each_record_once() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = std::sync::Arc::new(fx.wal_builder().open()?);
    let mut written = common::write(&wal, &["a", "b", "c"], 200)?;
    let config = ExportConfig::new("RACE", "race")
        .max_in_flight(16)
        .follow(true);
    // Create the stream first, so that neither racer fails creating it.
    Exporter::new(&wal, client.clone(), config.clone()).await?;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (wal, client, config, stop) =
                (wal.clone(), client.clone(), config.clone(), stop.clone());
            tokio::spawn(async move { Exporter::new(&wal, client, config).await?.run(&stop).await })
        })
        .collect();
    for _ in 0..20 {
        written.extend(common::write(&wal, &["a", "b", "c"], 20)?);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut conflicts = 0;
    for racer in racers {
        match racer.await? {
            Ok(report) => conflicts += report.resyncs,
            // Gave up after three conflicts in a row without progress.
            Err(ExportError::Publish { .. } | ExportError::Duplicate { .. }) => conflicts += 1,
            Err(e) => return Err(e.into()),
        }
    }
    assert!(conflicts > 0, "the racers never got in each other's way");
    let last = Exporter::new(&wal, client.clone(), config.follow(false))
        .await?
        .run(&AtomicBool::new(false))
        .await?;
    assert_eq!(last.resyncs, 0);
    common::assert_exactly_once(&read_stream(&client, "RACE", "race").await?, &written);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_another_publisher_stored_is_resumed_after_not_stored_again() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = fx.wal_builder().open()?;
    let written = common::write(&wal, &["a"], 3)?;
    let config = ExportConfig::new("LEFT", "left").key("a");
    let mut exporter = Exporter::new(&wal, client.clone(), config.clone()).await?;
    // What a killed run had on its way: record 0, stored after this
    // exporter was created but before it publishes.
    let js = async_nats::jetstream::new(client.clone());
    let first = &written[0];
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", first.entry_ref.to_string().as_str());
    headers.insert("Nano-Wal-Header", "");
    headers.insert("Nano-Wal-Timestamp-Ms", "1");
    js.publish_with_headers("left.a", headers, first.content.clone())
        .await?
        .await?;
    let report = exporter.run(&AtomicBool::new(false)).await?;
    assert_eq!(report.published, 2, "records 1 and 2");
    let messages = read_stream(&client, "LEFT", "left").await?;
    let refs: Vec<_> = messages.iter().map(|(_, m)| m.entry_ref).collect();
    assert_eq!(
        refs,
        written.iter().map(|w| w.entry_ref).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_messages_in_flight_than_the_default_ack_permits() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = fx.wal_builder().open()?;
    let written = common::write(&wal, &["k"], 6000)?;
    let config = ExportConfig::new("WIDE", "wide").max_in_flight(6000);
    let stop = AtomicBool::new(false);
    let mut exporter = Exporter::new(&wal, client.clone(), config).await?;
    let report =
        tokio::time::timeout(std::time::Duration::from_secs(60), exporter.run(&stop)).await??;
    assert_eq!(report.published, 6000);
    common::assert_exactly_once(&read_stream(&client, "WIDE", "wide").await?, &written);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_resume_position_is_reported_or_skipped() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = fx.wal_builder().max_segment_bytes(4096).open()?;
    let mut refs = Vec::new();
    for i in 0..40 {
        refs.push(wal.append_entry("k", None, Bytes::from(vec![i; 500]), false)?);
    }
    let stop = AtomicBool::new(false);
    let config = ExportConfig::new("S", "p");
    let report = Exporter::new(&wal, client.clone(), config.clone())
        .await?
        .run(&stop)
        .await?;
    assert_eq!(report.published, 40);
    for i in 40..60 {
        refs.push(wal.append_entry("k", None, Bytes::from(vec![i; 500]), false)?);
    }
    // Remove the last exported record and some after it, unexported.
    wal.purge_before(refs[45])?;
    let err = Exporter::new(&wal, client.clone(), config.clone())
        .await?
        .run(&stop)
        .await
        .err();
    assert!(
        matches!(&err, Some(ExportError::PositionRemoved { position, .. }) if *position == refs[39]),
        "{err:?}"
    );
    let report = Exporter::new(&wal, client.clone(), config.skip_removed(true))
        .await?
        .run(&stop)
        .await?;
    let messages = read_stream(&client, "S", "p").await?;
    let exported: Vec<_> = messages.iter().map(|(_, m)| m.entry_ref).collect();
    let first_kept = wal.records("k")?.next().ok_or("no record")??.entry_ref;
    let resumed_at = refs
        .iter()
        .position(|r| *r == first_kept)
        .ok_or("not found")?;
    assert!(resumed_at > 39);
    assert_eq!(report.published, (60 - resumed_at) as u64);
    assert_eq!(exported[..40], refs[..40]);
    assert_eq!(exported[40..], refs[resumed_at..]);
    Ok(())
}
