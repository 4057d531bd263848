//! Exporting a log into a real JetStream stream: every record once, in
//! order per key, with its header, reference and time; a second run
//! exports only what is new (resuming from the stream, or the cursor);
//! every key but the log's own consumer positions; a stream that does not
//! cover the prefix is refused.

mod common;

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use common::{Fixture, TestResult, assert_exactly_once, write};
use nano_wal_nats::testing::read_stream;
use nano_wal_nats::{ExportConfig, ExportError, Exporter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_once_in_order_then_only_new_ones() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = fx.wal_builder().open()?;
    let mut written = write(&wal, &["orders", "raft/1/log", "price.eur"], 300)?;
    let config = ExportConfig::new("EVENTS", "wal.events").max_in_flight(64);
    let stop = AtomicBool::new(false);

    let report = Exporter::new(&wal, client.clone(), config.clone())
        .await?
        .run(&stop)
        .await?;
    assert_eq!((report.published, report.resyncs, report.keys), (900, 0, 3));
    let messages = read_stream(&client, "EVENTS", "wal.events").await?;
    assert_exactly_once(&messages, &written);
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream("EVENTS").await?;
    let info = stream.info().await?.clone();
    assert_eq!(info.config.subjects, vec!["wal.events.>".to_owned()]);
    assert_eq!(info.config.duplicate_window.as_secs(), 120);
    for subject in [
        "wal.events.orders",
        "wal.events.raft%2F1%2Flog",
        "wal.events.price%2Eeur",
    ] {
        let last = stream.get_last_raw_message_by_subject(subject).await?;
        assert_eq!(last.subject.as_str(), subject);
    }

    // Nothing new: nothing published. Then only the new records.
    let again = Exporter::new(&wal, client.clone(), config.clone())
        .await?
        .run(&stop)
        .await?;
    assert_eq!((again.published, again.resyncs), (0, 0));
    written.extend(write(&wal, &["orders", "new-key"], 5)?);
    let more = Exporter::new(&wal, client.clone(), config)
        .await?
        .run(&stop)
        .await?;
    assert_eq!((more.published, more.resyncs, more.keys), (10, 0, 4));
    assert_exactly_once(
        &read_stream(&client, "EVENTS", "wal.events").await?,
        &written,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_holds_positions_and_skips_what_it_committed() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = fx.wal_builder().open()?;
    let written = write(&wal, &["a", "b"], 50)?;
    let stop = AtomicBool::new(false);
    let config = ExportConfig::new("S", "p").key("a").cursor("nats");
    let report = Exporter::new(&wal, client.clone(), config.clone())
        .await?
        .run(&stop)
        .await?;
    assert_eq!((report.published, report.keys), (50, 1), "only key a");
    let cursor = wal.consumer("nats")?;
    let last_a = written
        .iter()
        .filter(|w| w.key == b"a")
        .last()
        .ok_or("no a")?
        .entry_ref;
    assert_eq!(cursor.position("a"), Some(last_a));
    assert_eq!(cursor.position("b"), None);

    // The stream loses its messages; the cursor alone keeps the export
    // from starting over.
    let js = async_nats::jetstream::new(client.clone());
    js.get_stream("S").await?.purge().await?;
    let report = Exporter::new(&wal, client.clone(), config)
        .await?
        .run(&stop)
        .await?;
    assert_eq!(report.published, 0);

    // Every key: the consumer's own key is not exported.
    let all = ExportConfig::new("S", "p").cursor("nats");
    let report = Exporter::new(&wal, client.clone(), all)
        .await?
        .run(&stop)
        .await?;
    assert_eq!(
        (report.published, report.keys),
        (50, 2),
        "key b, from its start"
    );
    let messages = read_stream(&client, "S", "p").await?;
    assert!(messages.iter().all(|(_, m)| m.key == b"b"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_and_foreign_streams_are_refused() -> TestResult {
    let fx = Fixture::start().await?;
    let client = fx.client.clone();
    let wal = fx.wal_builder().open()?;
    wal.append_entry("k", None, Bytes::from("x"), true)?;
    for config in [
        ExportConfig::new("S", "bad.*.prefix"),
        ExportConfig::new("S", ""),
        ExportConfig::new("has.dot", "p"),
        ExportConfig::new("S", "p").max_in_flight(0),
    ] {
        let err = Exporter::new(&wal, client.clone(), config.clone())
            .await
            .err();
        assert!(
            matches!(err, Some(ExportError::InvalidConfig(_))),
            "{config:?}: {err:?}"
        );
    }
    let config = ExportConfig::new("S", "p").cursor("bad/name");
    let err = Exporter::new(&wal, client.clone(), config).await.err();
    assert!(
        matches!(
            err,
            Some(ExportError::Wal(nano_wal::WalError::InvalidConfig(_)))
        ),
        "{err:?}"
    );
    // A key whose subject would be too long for the server.
    let long = "/".repeat(2000);
    wal.append_entry(long.as_str(), None, Bytes::from("x"), true)?;
    let config = ExportConfig::new("S", "p").key(&long);
    let err = Exporter::new(&wal, client.clone(), config)
        .await?
        .run(&AtomicBool::new(false))
        .await
        .err();
    assert!(
        matches!(err, Some(ExportError::SubjectTooLong { .. })),
        "{err:?}"
    );
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "OTHER".into(),
        subjects: vec!["other.>".into()],
        ..Default::default()
    })
    .await?;
    let err = Exporter::new(&wal, client.clone(), ExportConfig::new("OTHER", "p"))
        .await
        .err();
    assert!(matches!(err, Some(ExportError::Stream { .. })), "{err:?}");
    // A stream with more subjects than the export's: others could break
    // the chain.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "WIDER".into(),
        subjects: vec!["w.>".into(), "elsewhere".into()],
        ..Default::default()
    })
    .await?;
    let err = Exporter::new(&wal, client.clone(), ExportConfig::new("WIDER", "w"))
        .await
        .err();
    assert!(matches!(err, Some(ExportError::Stream { .. })), "{err:?}");

    // A message under the prefix the exporter did not write.
    let config = ExportConfig::new("S", "p").key("k");
    Exporter::new(&wal, client.clone(), config.clone()).await?;
    js.publish("p.k", Bytes::from("not from the log"))
        .await?
        .await?;
    let err = Exporter::new(&wal, client.clone(), config)
        .await?
        .run(&AtomicBool::new(false))
        .await
        .err();
    assert!(
        matches!(err, Some(ExportError::ForeignMessage { .. })),
        "{err:?}"
    );

    // A read-only handle cannot commit a cursor.
    let reader = fx.wal_builder().read_only(true).open()?;
    let err = Exporter::new(&reader, client, ExportConfig::new("S", "p").cursor("c"))
        .await
        .err();
    assert!(
        matches!(err, Some(ExportError::InvalidConfig(_))),
        "{err:?}"
    );
    Ok(())
}
