//! A record JetStream refuses stops the export, and the key's records it
//! stored after the refused one are deleted again: the stream still holds
//! a gap-free prefix of every key, so a restart cannot skip the refused
//! record. A resume position the log no longer holds is reported, or
//! skipped past with `skip_removed`.

mod common;

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use common::TestResult;
use nano_wal::Wal;
use nano_wal_nats::testing::{NatsServer, read_stream};
use nano_wal_nats::{ExportConfig, ExportError, Exporter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_leaves_no_gap_behind_it() -> TestResult {
    let server = NatsServer::start()?;
    let client = async_nats::connect(server.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SMALL".into(),
        subjects: vec!["p.>".into()],
        max_message_size: 600,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    let mut refs = Vec::new();
    for i in 0..6 {
        let size = if i == 2 { 2000 } else { 10 };
        refs.push(wal.append_entry("k", None, Bytes::from(vec![b'a' + i; size]), false)?);
        wal.append_entry("other", None, Bytes::from(format!("o{i}")), false)?;
    }
    let config = ExportConfig::new("SMALL", "p").cursor("c");
    for attempt in 0..2 {
        let err = Exporter::new(&wal, client.clone(), config.clone())
            .await?
            .run(&AtomicBool::new(false))
            .await
            .err();
        match &err {
            Some(ExportError::Publish { entry_ref, .. }) => assert_eq!(*entry_ref, refs[2]),
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
            refs[..2],
            "attempt {attempt}: k's records before the refused one only"
        );
        assert_eq!(wal.consumer("c")?.position("k"), Some(refs[1]));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_resume_position_is_reported_or_skipped() -> TestResult {
    let server = NatsServer::start()?;
    let client = async_nats::connect(server.url()).await?;
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).max_segment_bytes(4096).open()?;
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
