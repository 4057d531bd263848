//! The async front (feature `tokio`): many durable appends in flight from
//! one task share fsyncs and each resolves once durable; batches likewise;
//! a subscription is a `Stream` that sees records appended after it.

#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{AsyncWal, Wal};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Poll a stream for its next item (no `futures` dependency needed).
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::test(flavor = "current_thread")]
async fn many_durable_appends_in_flight_from_one_task_share_fsyncs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(tmp.path()).open()?);
    let front = AsyncWal::new(wal.clone())?;
    let syncs_before = wal.metrics().journal_syncs;
    // 256 appends written at once, awaited together, on one thread.
    let pending: Vec<_> = (0..256)
        .map(|i| front.append(format!("k{}", i % 8), None, Bytes::from(format!("v{i}"))))
        .collect();
    let mut refs = Vec::new();
    for p in pending {
        refs.push(p.await?);
    }
    let syncs = wal.metrics().journal_syncs - syncs_before;
    assert!(syncs >= 1, "durability took an fsync");
    assert!(
        syncs < 256,
        "{syncs} fsyncs for 256 appends in flight: they are shared"
    );
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, format!("v{i}"));
    }
    let batch = front
        .append_batch([("a", None, Bytes::from("1")), ("b", None, Bytes::from("2"))])
        .await?;
    assert_eq!(batch.len(), 2);
    assert_eq!(wal.metrics().durable_records, 258);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn a_subscription_is_a_stream() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(tmp.path()).open()?);
    let front = AsyncWal::new(wal.clone())?;
    front.append("k", None, Bytes::from("before")).await?;
    let mut stream = front.subscribe("k", None)?;
    let writer = front.clone();
    let appending = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.append("k", None, Bytes::from("after")).await
    });
    let first = tokio::time::timeout(Duration::from_secs(5), next(&mut stream)).await?;
    assert_eq!(first.ok_or("ended")??.content, "before");
    let second = tokio::time::timeout(Duration::from_secs(5), next(&mut stream)).await?;
    assert_eq!(second.ok_or("ended")??.content, "after");
    appending.await??;
    Ok(())
}
