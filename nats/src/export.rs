//! [`Exporter`]: the export loop.
//!
//! Per key the stream always holds a prefix of the key's records, in order
//! and without a gap: records are published in order, and if JetStream
//! refuses one, the key's later records it did store are deleted again
//! before the export stops. So the stream's last message for a key says
//! how far the key was exported, whatever happened to the exporter, and a
//! restart resumes after the later of that message and the cursor. A
//! record published again (the exporter died between publishing and
//! learning that it was stored) carries the same `Nats-Msg-Id`, which the
//! stream's duplicate window drops.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, stream::Stream};
use nano_wal::{CONSUMER_KEY_PREFIX, Consumer, EntryRef, Record, Subscription, Wal, WalError};
use tokio::runtime::RuntimeFlavor;

use crate::config::ExportConfig;
use crate::error::ExportError;
use crate::message::{message_size, publish_of};
use crate::stream::{last_exported, open_stream};
use crate::subject::subject_of_key;

/// How long one blocking wait for new records lasts before the stop flag
/// and new keys are looked at again.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportReport {
    /// Records JetStream stored.
    pub published: u64,
    /// Records JetStream already held (published again after a restart,
    /// dropped by the duplicate window).
    pub duplicates: u64,
    /// Keys followed.
    pub keys: usize,
}

/// One key being exported.
#[derive(Debug)]
struct Feed {
    key: Vec<u8>,
    subject: String,
    records: Subscription,
    /// Skip records up to this one (a resume position that was removed,
    /// with `skip_removed`).
    skip_through: Option<EntryRef>,
}

/// A record on its way: which feed, and the record.
struct Outgoing {
    feed: usize,
    record: Record,
}

/// Exports a log's records into a JetStream stream, exactly once per
/// record and in order per key; see the crate's documentation.
#[derive(Debug)]
pub struct Exporter<'w> {
    wal: &'w Wal,
    js: jetstream::Context,
    stream: Stream,
    config: ExportConfig,
    cursor: Option<Consumer>,
    feeds: Vec<Feed>,
    known: HashSet<Vec<u8>>,
    /// The feed a batch starts from (round robin, so no key starves).
    next_feed: usize,
    max_payload: usize,
    report: ExportReport,
}

/// The keys an export of every key follows: all but the log's own
/// consumer positions.
fn exported_keys(wal: &Wal) -> Result<Vec<Vec<u8>>, WalError> {
    let mut keys = wal.keys()?;
    keys.retain(|k| !k.starts_with(CONSUMER_KEY_PREFIX.as_bytes()));
    Ok(keys)
}

/// `a` comes after `b` in their key's order.
fn later(a: EntryRef, b: EntryRef) -> bool {
    (a.sequence_number, a.offset) > (b.sequence_number, b.offset)
}

fn lossy(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl<'w> Exporter<'w> {
    /// Check `config`, open (or create) its stream through `client`, and
    /// open the cursor, if any.
    ///
    /// # Errors
    /// A bad configuration; a cursor on a read-only handle; a stream that
    /// cannot be created or whose subjects do not cover the prefix; the
    /// server's errors.
    pub async fn new(
        wal: &'w Wal,
        client: async_nats::Client,
        config: ExportConfig,
    ) -> Result<Self, ExportError> {
        config.check()?;
        let cursor = match &config.cursor {
            Some(_) if wal.is_read_only() => {
                return Err(ExportError::InvalidConfig(
                    "a cursor is committed into the log, which this handle cannot write (another \
                     process holds it); export without a cursor (it resumes from the stream) or \
                     from the writing process"
                        .into(),
                ));
            }
            Some(name) => Some(wal.consumer(name)?),
            None => None,
        };
        let max_payload = client.server_info().max_payload;
        let js = jetstream::new(client);
        let stream = open_stream(&js, &config).await?;
        Ok(Self {
            wal,
            js,
            stream,
            config,
            cursor,
            feeds: Vec::new(),
            known: HashSet::new(),
            next_feed: 0,
            max_payload,
            report: ExportReport::default(),
        })
    }

    /// Export until every key is exported (or, with `follow`, until `stop`
    /// is set; it is looked at least every 250 ms). On a multi-thread
    /// runtime a follower sleeps until an append wakes it; on a
    /// current-thread runtime it looks every 10 ms.
    ///
    /// # Errors
    /// See [`ExportError`]; what was acknowledged before an error stays
    /// exported, and its positions are committed.
    pub async fn run(&mut self, stop: &AtomicBool) -> Result<ExportReport, ExportError> {
        self.discover().await?;
        while !stop.load(Ordering::Relaxed) {
            let mut batch = self.collect()?;
            if batch.is_empty() {
                if !self.config.follow {
                    break;
                }
                batch = self.wait().await?;
                if batch.is_empty() {
                    self.discover().await?;
                    continue;
                }
            }
            self.publish(batch).await?;
        }
        Ok(self.report.clone())
    }

    /// The report so far.
    pub fn report(&self) -> &ExportReport {
        &self.report
    }

    /// Start following keys not followed yet.
    async fn discover(&mut self) -> Result<(), ExportError> {
        let keys = if self.config.keys.is_empty() {
            exported_keys(self.wal)?
        } else {
            self.config.keys.clone()
        };
        for key in keys {
            if self.known.insert(key.clone()) {
                let feed = self.open_feed(key).await?;
                self.feeds.push(feed);
            }
        }
        self.report.keys = self.feeds.len();
        Ok(())
    }

    /// Follow `key` after what is already exported: the later of the
    /// cursor's position and the stream's last message.
    async fn open_feed(&self, key: Vec<u8>) -> Result<Feed, ExportError> {
        let subject = subject_of_key(&self.config.subject_prefix, &key);
        let committed = self.cursor.as_ref().and_then(|c| c.position(&key));
        let in_stream = last_exported(&self.stream, &self.config, &subject).await?;
        let resume = match (committed, in_stream) {
            (Some(a), Some(b)) => Some(if later(a, b) { a } else { b }),
            (a, b) => a.or(b),
        };
        let (records, skip_through) = match resume {
            None => (self.wal.subscribe(&key, None)?, None),
            Some(at) => match self.wal.subscribe_after(&key, at) {
                Ok(records) => (records, None),
                Err(WalError::EntryNotFound(_)) if self.config.skip_removed => {
                    (self.wal.subscribe(&key, None)?, Some(at))
                }
                Err(WalError::EntryNotFound(_)) => {
                    return Err(ExportError::PositionRemoved {
                        key: lossy(&key),
                        position: at,
                    });
                }
                Err(e) => return Err(e.into()),
            },
        };
        Ok(Feed {
            key,
            subject,
            records,
            skip_through,
        })
    }

    /// Take up to `max_in_flight` records that are there now, round robin
    /// over the keys.
    fn collect(&mut self) -> Result<Vec<Outgoing>, ExportError> {
        let mut batch = Vec::new();
        let n = self.feeds.len();
        for step in 0..n {
            let i = (self.next_feed + step) % n;
            let feed = &mut self.feeds[i];
            while batch.len() < self.config.max_in_flight {
                let Some(record) = feed.records.try_next()? else {
                    break;
                };
                if let Some(through) = feed.skip_through {
                    if !later(record.entry_ref, through) {
                        continue;
                    }
                    feed.skip_through = None;
                }
                batch.push(Outgoing { feed: i, record });
            }
            if batch.len() >= self.config.max_in_flight {
                self.next_feed = (i + 1) % n;
                break;
            }
        }
        Ok(batch)
    }

    /// Wait (at most [`WAIT_SLICE`]) for records; an empty batch when none
    /// came or, exporting every key, when keys were added.
    async fn wait(&mut self) -> Result<Vec<Outgoing>, ExportError> {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
        if !multi_thread {
            tokio::time::sleep(Duration::from_millis(10)).await;
            return self.collect();
        }
        let wal = self.wal;
        let every_key = self.config.keys.is_empty();
        let known = self.known.len();
        tokio::task::block_in_place(|| {
            let found = wal.wait_until(WAIT_SLICE, || {
                let batch = self.collect().map_err(into_wal_error)?;
                if !batch.is_empty() {
                    return Ok(Some(batch));
                }
                let added = every_key && exported_keys(wal)?.len() > known;
                Ok(added.then(Vec::new))
            });
            found.map(Option::unwrap_or_default)
        })
        .map_err(ExportError::from)
    }

    /// Publish a batch, await every acknowledgement in order, commit the
    /// acknowledged positions; on a refusal keep each key's stored
    /// messages gap-free (see the module's documentation) and stop.
    async fn publish(&mut self, batch: Vec<Outgoing>) -> Result<(), ExportError> {
        let mut pending: Vec<(usize, EntryRef, Option<PublishAckFuture>)> = Vec::new();
        let mut first_error: Option<ExportError> = None;
        for out in &batch {
            let feed = &self.feeds[out.feed];
            let size = message_size(&out.record);
            if size > self.max_payload {
                first_error = Some(ExportError::RecordTooLarge {
                    key: lossy(&feed.key),
                    entry_ref: out.record.entry_ref,
                    size,
                    max: self.max_payload,
                });
                break;
            }
            match self
                .js
                .send_publish(feed.subject.clone(), publish_of(&out.record))
                .await
            {
                Ok(ack) => pending.push((out.feed, out.record.entry_ref, Some(ack))),
                Err(e) => {
                    pending.push((out.feed, out.record.entry_ref, None));
                    first_error = Some(self.publish_error(out.feed, out.record.entry_ref, e));
                    break;
                }
            }
        }
        let outcome = self.settle(pending).await;
        self.commit(&outcome.positions)?;
        match first_error.or(outcome.error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn publish_error(
        &self,
        feed: usize,
        entry_ref: EntryRef,
        e: impl Into<async_nats::Error>,
    ) -> ExportError {
        ExportError::Publish {
            key: lossy(&self.feeds[feed].key),
            entry_ref,
            source: e.into(),
        }
    }

    /// Await the acknowledgements in order. Per feed, positions advance
    /// while every acknowledgement succeeds; after a feed's first failure,
    /// its later messages that JetStream stored are deleted.
    async fn settle(
        &mut self,
        pending: Vec<(usize, EntryRef, Option<PublishAckFuture>)>,
    ) -> Settled {
        let mut settled = Settled::default();
        let mut failed: HashSet<usize> = HashSet::new();
        for (feed, entry_ref, ack) in pending {
            let result = match ack {
                Some(ack) => ack.await.map_err(async_nats::Error::from),
                None => Err("not sent".into()),
            };
            match result {
                Ok(ack) if failed.contains(&feed) => {
                    if !ack.duplicate {
                        // A message stored after its key's refused one:
                        // delete it, so no gap precedes it in the stream.
                        if let Err(e) = self.stream.delete_message(ack.sequence).await {
                            settled.error.get_or_insert(ExportError::nats(
                                format!("deleting message {} after a refused one", ack.sequence),
                                e,
                            ));
                        }
                    }
                }
                Ok(ack) => {
                    if ack.duplicate {
                        self.report.duplicates += 1;
                    } else {
                        self.report.published += 1;
                    }
                    settled.set(feed, entry_ref);
                }
                Err(e) => {
                    failed.insert(feed);
                    if settled.error.is_none() {
                        settled.error = Some(self.publish_error(feed, entry_ref, e));
                    }
                }
            }
        }
        settled
    }

    /// Commit acknowledged positions to the cursor, as one batch.
    fn commit(&self, positions: &[(usize, EntryRef)]) -> Result<(), ExportError> {
        let Some(cursor) = &self.cursor else {
            return Ok(());
        };
        let keyed = positions
            .iter()
            .map(|(feed, at)| (self.feeds[*feed].key.as_slice(), *at));
        cursor.commit_all(keyed)?;
        Ok(())
    }
}

/// What awaiting a batch's acknowledgements found.
#[derive(Default)]
struct Settled {
    /// Per feed, the last record acknowledged without an earlier failure.
    positions: Vec<(usize, EntryRef)>,
    error: Option<ExportError>,
}

impl Settled {
    fn set(&mut self, feed: usize, at: EntryRef) {
        match self.positions.iter_mut().find(|(f, _)| *f == feed) {
            Some(slot) => slot.1 = at,
            None => self.positions.push((feed, at)),
        }
    }
}

/// `wait_until`'s poll returns `WalError`s; an export error met there
/// (only ever a read error of the log) passes through as one.
fn into_wal_error(e: ExportError) -> WalError {
    match e {
        ExportError::Wal(w) => w,
        other => WalError::InvalidConfig(other.to_string()),
    }
}
