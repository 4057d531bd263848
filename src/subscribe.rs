//! Following a key as it grows: [`Subscription`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cursor::{SegmentMeta, read_one};
use crate::engine::Engine;
use crate::entry_ref::{EntryRef, Record};
use crate::error::{Result, WalError, io_at};
use crate::key::key_hash;
use crate::recovery::corrupted;
use crate::segment::Segment;

/// How often a read-only handle looks for records another process
/// appended, unless told otherwise.
pub(crate) const READ_ONLY_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where a subscription reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The key's first visible record, whenever the key has one.
    Start,
    /// The record at this absolute file position of segment `sequence`
    /// (or, at the segment's end, whatever follows it).
    At { sequence: u64, pos: u64 },
}

/// The records of one key, from a position on, then every record appended
/// after: a blocking iterator, woken by appends through any handle of this
/// process (no polling), or, on a read-only handle, by
/// [`Wal::refresh`](crate::Wal::refresh) every `poll_interval`.
///
/// Every record comes once, in order, including records appended while the
/// subscription catches up. It holds one record at a time: a slow consumer
/// costs no memory. If the records it was about to read are removed
/// (retention, `purge_before`, `truncate_from`) it returns
/// [`WalError::PositionRemoved`] rather than skipping them.
///
/// As an [`Iterator`], `next()` waits without a limit and ends (`None`)
/// when the handle is closed; [`Subscription::next_timeout`] waits at most
/// a given time.
#[derive(Debug)]
pub struct Subscription {
    engine: Arc<Engine>,
    key: Vec<u8>,
    key_hash: u64,
    at: Position,
    /// Skip the record at `at` (a subscription that starts after it).
    skip_first: bool,
    poll_interval: Option<Duration>,
}

impl Subscription {
    pub(crate) fn new(
        engine: Arc<Engine>,
        key: &[u8],
        from: Option<EntryRef>,
        after: bool,
    ) -> Result<Self> {
        let at = match from {
            None => Position::Start,
            Some(r) => {
                let (seg, pos) = engine.locate(r)?;
                if seg.key_hash != key_hash(key) {
                    return Err(WalError::EntryNotFound(format!(
                        "{r}: not a record of this key"
                    )));
                }
                Position::At {
                    sequence: seg.sequence,
                    pos,
                }
            }
        };
        let poll_interval = engine.is_read_only().then_some(READ_ONLY_POLL_INTERVAL);
        Ok(Self {
            engine,
            key: key.to_vec(),
            key_hash: key_hash(key),
            at,
            skip_first: after && from.is_some(),
            poll_interval,
        })
    }

    /// How often a subscription on a read-only handle looks for records
    /// another process appended. Default: 100 ms (a writable handle's
    /// subscriptions are woken by its appends instead).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        if self.engine.is_read_only() {
            self.poll_interval = Some(interval.max(Duration::from_millis(1)));
        }
        self
    }

    /// The next record, waiting at most `timeout` for one; `Ok(None)` if
    /// none came.
    ///
    /// # Errors
    /// [`WalError::Closed`] once the handle is closed;
    /// [`WalError::PositionRemoved`] if records it had not read yet were
    /// removed; read errors.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        self.wait(Some(Instant::now() + timeout))
    }

    /// The next record if one is there now, without waiting.
    ///
    /// # Errors
    /// As [`Subscription::next_timeout`].
    pub fn try_next(&mut self) -> Result<Option<Record>> {
        self.engine.check_open()?;
        self.poll()
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<Record>> {
        let engine = self.engine.clone();
        wait_on(&engine, deadline, self.poll_interval, || self.poll())
    }

    /// The key's segments from `sequence` on (none for an unknown key).
    fn segments_from(&self, sequence: u64) -> Vec<Arc<Segment>> {
        self.engine
            .key_log(self.key_hash)
            .filter(|l| l.key == self.key)
            .map_or_else(Vec::new, |l| l.segments_from(sequence))
    }

    /// Read the next record if it is there.
    fn poll(&mut self) -> Result<Option<Record>> {
        loop {
            let (sequence, pos) = match self.at {
                Position::Start => {
                    let segments = self.segments_from(0);
                    let Some(first) = segments.iter().find(|s| s.has_records()) else {
                        return Ok(None);
                    };
                    (first.sequence, first.start())
                }
                Position::At { sequence, pos } => (sequence, pos),
            };
            let segments = self.segments_from(sequence);
            let Some(seg) = segments.first().filter(|s| s.sequence == sequence) else {
                return Err(self.removed(sequence, pos));
            };
            if pos < seg.start() || pos > seg.end() {
                return Err(self.removed(sequence, pos));
            }
            if pos < seg.end() {
                let record = self.read(seg, pos)?;
                let next = pos + record.1;
                self.at = Position::At {
                    sequence,
                    pos: next,
                };
                if std::mem::take(&mut self.skip_first) {
                    continue;
                }
                return Ok(Some(record.0));
            }
            // At the end of this segment. A later segment holding records
            // means this one is final: a key's records reach a later
            // segment only after every record of the earlier ones was
            // published (so its end, read again now, is its last).
            let Some(later) = segments[1..].iter().find(|s| s.has_records()) else {
                return Ok(None);
            };
            if pos < seg.end() {
                continue;
            }
            self.at = Position::At {
                sequence: later.sequence,
                pos: later.start(),
            };
        }
    }

    fn read(&self, seg: &Arc<Segment>, pos: u64) -> Result<(Record, u64)> {
        let file = self.engine.reader(seg)?;
        let raw = read_one(
            &file,
            SegmentMeta::from(&**seg),
            pos,
            seg.end(),
            &seg.read_hint,
        )
        .map_err(|e| io_at(&seg.path, "read", e))?
        .map_err(|bad| corrupted(&seg.path, pos, bad))?;
        let record = Record {
            entry_ref: EntryRef {
                key_hash: seg.key_hash,
                sequence_number: seg.sequence,
                offset: pos - seg.header_len,
            },
            header: raw.header,
            content: raw.content,
            timestamp_unix_ms: raw.timestamp_ms,
        };
        Ok((record, raw.total_len))
    }

    fn removed(&self, sequence: u64, pos: u64) -> WalError {
        WalError::PositionRemoved(format!(
            "key {}: the records from position {pos} of segment {sequence} on were removed \
             (retention, purge_before or truncate_from) before this subscription read them",
            String::from_utf8_lossy(&self.key)
        ))
    }
}

impl Iterator for Subscription {
    type Item = Result<Record>;

    /// Waits for the next record without a limit; `None` once the handle
    /// is closed.
    fn next(&mut self) -> Option<Self::Item> {
        match self.wait(None) {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) | Err(WalError::Closed) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Run `poll` until it finds something (`Ok(Some)`), fails, or `deadline`
/// passes (`Ok(None)`). Without a `tick` (a writable handle), sleep between
/// polls until an append in this process wakes it; with one (a read-only
/// handle, where nothing in this process appends), look at the directory
/// again once per tick. A closed handle ends the wait with
/// [`WalError::Closed`].
pub(crate) fn wait_on<T>(
    engine: &Engine,
    deadline: Option<Instant>,
    tick: Option<Duration>,
    mut poll: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let Some(tick) = tick else {
        return engine.notifier.wait_for(deadline, || {
            engine.check_open()?;
            poll()
        });
    };
    loop {
        engine.check_open()?;
        engine.refresh()?;
        if let Some(found) = poll()? {
            return Ok(Some(found));
        }
        let now = Instant::now();
        let nap = match deadline {
            Some(d) if d <= now => return Ok(None),
            Some(d) => tick.min(d - now),
            None => tick,
        };
        std::thread::sleep(nap);
    }
}
