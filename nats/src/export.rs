//! [`Exporter`]: the export loop.
//!
//! The stream is the record of what was exported: per key it holds the
//! key's records in order and without a gap (each message expects its
//! subject's last sequence, [`crate::publish`]), so the stream's last
//! message of a key says how far the key was exported, whatever happened
//! to the exporter. Each run, and each time another publisher got in the
//! way, the exporter reads the stream again and resumes every key after
//! the later of that message and the cursor's position.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::time::Instant;

use async_nats::jetstream::{self, context::ContextBuilder, stream::Stream};
use nano_wal::{CONSUMER_KEY_PREFIX, Consumer, EntryRef, Record, Subscription, Wal, WalError};
use tokio::runtime::RuntimeFlavor;

use crate::config::ExportConfig;
use crate::error::{ExportError, lossy};
use crate::publish::{Message, publish};
use crate::stream::{last_exported, open_stream};
use crate::subject::{MAX_SUBJECT_BYTES, subject_of_key};

/// How long one blocking wait for new records lasts before the stop flag
/// and new keys are looked at again.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// The cursor is committed at least this often while positions wait
/// (and at the end of every run).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// ... or once this many keys' positions wait.
const COMMIT_KEYS: usize = 1024;

/// How often a read-only handle looks for the writer's new records when
/// the exporter runs on a current-thread runtime.
const READ_ONLY_TICK: Duration = Duration::from_millis(100);

/// Resyncs in a row without a stored message before the export gives up
/// (another publisher keeps writing to the export's subjects, or a
/// record's `Nats-Msg-Id` is in the duplicate window but not in the
/// stream).
const MAX_FRUITLESS_RESYNCS: u32 = 3;

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportReport {
    /// Records JetStream stored.
    pub published: u64,
    /// Times the exporter read the stream again because a key's subject
    /// did not end where it expected (a message of an earlier run, or of
    /// another publisher, came first).
    pub resyncs: u64,
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
    /// The stream sequence of the key's last message (0: none): what its
    /// next message expects.
    last_sequence: u64,
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
    /// Positions JetStream acknowledged that the cursor does not hold yet,
    /// by key (the stream already says how far each key got; the cursor
    /// matters only if the stream loses a key's messages).
    uncommitted: BTreeMap<Vec<u8>, EntryRef>,
    committed_at: Instant,
    /// When keys were last looked for (exporting every key).
    discovered_at: Instant,
    /// When a read-only handle last looked at the directory (current-thread
    /// runtimes).
    refreshed_at: Instant,
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

impl<'w> Exporter<'w> {
    /// Check `config`, open (or create) its stream through `client`, and
    /// open the cursor, if any.
    ///
    /// # Errors
    /// A bad configuration; a cursor on a read-only handle; a stream that
    /// cannot be created, or whose subjects are not exactly `PREFIX.>`; the
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
        // One ack permit per message in flight: the batch is published
        // before any acknowledgement is awaited.
        let js = ContextBuilder::new()
            .max_ack_inflight(config.max_in_flight)
            .backpressure_on_inflight(true)
            .build(client);
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
            uncommitted: BTreeMap::new(),
            committed_at: Instant::now(),
            discovered_at: Instant::now(),
            refreshed_at: Instant::now(),
        })
    }

    /// Export until every key is exported (or, with `follow`, until `stop`
    /// is set; it is looked at between batches and at least every 250 ms
    /// while idle). On a multi-thread runtime a follower sleeps until an
    /// append wakes it; on a current-thread runtime it looks every 10 ms
    /// (a read-only handle refreshes every 100 ms).
    ///
    /// With a writable handle, each batch is made durable (one shared
    /// fdatasync, [`Wal::sync`]) before it is published, so the stream never
    /// holds a record a power loss could take from the log. A read-only
    /// handle cannot do that: it exports what the writer has written.
    ///
    /// Each call starts from what the stream and the cursor hold, so calling
    /// it again after an error is safe.
    ///
    /// # Errors
    /// See [`ExportError`]; what was acknowledged before an error stays
    /// exported, and its positions are committed.
    pub async fn run(&mut self, stop: &AtomicBool) -> Result<ExportReport, ExportError> {
        let result = self.run_until(stop).await;
        // Whatever ended the run, what JetStream acknowledged goes to the
        // cursor (an error of the run wins over one of this commit).
        let committed = self.commit(true);
        let report = result?;
        committed?;
        Ok(report)
    }

    async fn run_until(&mut self, stop: &AtomicBool) -> Result<ExportReport, ExportError> {
        self.resync().await?;
        let mut fruitless = 0;
        while !stop.load(Ordering::Relaxed) {
            if self.config.keys.is_empty() && self.discovered_at.elapsed() >= WAIT_SLICE {
                self.discover().await?;
            }
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
            let (stored, conflict) = self.publish(&batch).await?;
            if stored > 0 {
                fruitless = 0;
            }
            if let Some(why) = conflict {
                fruitless += 1;
                if fruitless >= MAX_FRUITLESS_RESYNCS {
                    return Err(why);
                }
                self.report.resyncs += 1;
                self.resync().await?;
            }
        }
        Ok(self.report.clone())
    }

    /// Forget every key's position and read the stream again.
    async fn resync(&mut self) -> Result<(), ExportError> {
        self.feeds.clear();
        self.known.clear();
        self.next_feed = 0;
        self.discover().await
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
        self.report.keys = self.report.keys.max(self.feeds.len());
        self.discovered_at = Instant::now();
        Ok(())
    }

    /// Follow `key` after what is already exported: the later of the
    /// cursor's position and the stream's last message.
    async fn open_feed(&self, key: Vec<u8>) -> Result<Feed, ExportError> {
        let subject = subject_of_key(&self.config.subject_prefix, &key);
        if subject.len() > MAX_SUBJECT_BYTES {
            return Err(ExportError::SubjectTooLong {
                key: lossy(&key),
                bytes: subject.len(),
                max: MAX_SUBJECT_BYTES,
            });
        }
        let committed = self.cursor.as_ref().and_then(|c| c.position(&key));
        let last = last_exported(&self.stream, &self.config, &subject).await?;
        let in_stream = last.map(|(at, _)| at);
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
            last_sequence: last.map_or(0, |(_, sequence)| sequence),
        })
    }

    /// Take the next record of as many keys as have one now, up to
    /// `max_in_flight`, round robin (a key has at most one message in
    /// flight, [`crate::publish`]).
    fn collect(&mut self) -> Result<Vec<Outgoing>, WalError> {
        let mut batch = Vec::new();
        let n = self.feeds.len();
        for step in 0..n {
            if batch.len() >= self.config.max_in_flight {
                self.next_feed = (self.next_feed + step) % n;
                return Ok(batch);
            }
            let i = (self.next_feed + step) % n;
            let feed = &mut self.feeds[i];
            while let Some(record) = feed.records.try_next()? {
                match feed.skip_through {
                    Some(through) if !later(record.entry_ref, through) => continue,
                    _ => feed.skip_through = None,
                }
                batch.push(Outgoing { feed: i, record });
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
            if self.wal.is_read_only() && self.refreshed_at.elapsed() >= READ_ONLY_TICK {
                self.wal.refresh()?;
                self.refreshed_at = Instant::now();
            }
            return Ok(self.collect()?);
        }
        let wal = self.wal;
        let every_key = self.config.keys.is_empty();
        let known = self.known.len();
        tokio::task::block_in_place(|| {
            let found = wal.wait_until(WAIT_SLICE, || {
                let batch = self.collect()?;
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

    /// Make the batch durable (a writable handle), publish it, commit what
    /// was stored; returns how many records were stored and, if another
    /// publisher got in the way, why the stream must be read again.
    async fn publish(
        &mut self,
        batch: &[Outgoing],
    ) -> Result<(u64, Option<ExportError>), ExportError> {
        if !self.wal.is_read_only() {
            self.wal.sync()?;
        }
        let messages: Vec<Message<'_>> = batch
            .iter()
            .map(|out| {
                let feed = &self.feeds[out.feed];
                Message {
                    feed: out.feed,
                    key: &feed.key,
                    subject: &feed.subject,
                    record: &out.record,
                    after_sequence: feed.last_sequence,
                }
            })
            .collect();
        let settled = publish(&self.js, &messages, self.max_payload).await;
        for stored in &settled.stored {
            let feed = &mut self.feeds[stored.feed];
            feed.last_sequence = stored.sequence;
            // Positions wait only for a cursor (without one, the stream
            // alone says how far each key got).
            if self.cursor.is_some() {
                self.uncommitted.insert(feed.key.clone(), stored.entry_ref);
            }
        }
        let stored = settled.stored.len() as u64;
        self.report.published += stored;
        self.commit(false)?;
        match settled.error {
            Some(e) => Err(e),
            None => Ok((stored, settled.conflict)),
        }
    }

    /// Commit the acknowledged positions to the cursor, as one durable
    /// batch, if `now` or if enough wait or they waited long enough.
    fn commit(&mut self, now: bool) -> Result<(), ExportError> {
        let Some(cursor) = &self.cursor else {
            return Ok(());
        };
        let due = now
            || self.uncommitted.len() >= COMMIT_KEYS
            || self.committed_at.elapsed() >= COMMIT_INTERVAL;
        if !due || self.uncommitted.is_empty() {
            return Ok(());
        }
        cursor.commit_all(std::mem::take(&mut self.uncommitted))?;
        self.committed_at = Instant::now();
        Ok(())
    }
}
