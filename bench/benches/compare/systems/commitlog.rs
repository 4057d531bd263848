//! commitlog 0.2 from crates.io: a Kafka-like segmented log with a
//! memory-mapped offset index, no keys.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, Offset, ReadLimit};

use super::{Kind, OpenCfg, Res, System, consume};

/// Name in the table.
pub const NAME: &str = "commitlog";

/// Size of commitlog's per-message header.
const HEADER: usize = 20;
/// Bytes asked for per read while enumerating.
const READ_CHUNK: usize = 128 * 1024;

/// A commit log. Appends take `&mut self`, so it sits behind a lock. It has
/// no keys: every key's records go into the one log.
pub struct Clog(Mutex<CommitLog>);

impl Clog {
    fn log(&self) -> MutexGuard<'_, CommitLog> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `CommitLog::flush` msyncs the index but only calls `File::flush` (a
/// no-op) on the segment: nothing makes appended records durable.
const NO_FSYNC: &str = "commitlog 0.2 never fsyncs its segment (flush() is File::flush, a no-op)";

impl System for Clog {
    /// The record's offset and content length.
    type Ref = (Offset, u32);
    const KEYED: bool = false;

    fn unsupported(kind: Kind) -> Option<&'static str> {
        match kind {
            Kind::AppendDurable | Kind::BatchDurable | Kind::Threads | Kind::MultiGroup => {
                Some(NO_FSYNC)
            }
            _ => None,
        }
    }

    fn open(dir: &Path, _cfg: &OpenCfg) -> Res<Self> {
        let mut opts = LogOptions::new(dir);
        // A batch is one message set, bounded by this (default 1 MB).
        opts.message_max_bytes(64 << 20);
        Ok(Self(Mutex::new(CommitLog::new(opts)?)))
    }

    fn append(&self, _key: &str, content: &Bytes, _durable: bool) -> Res<(Offset, u32)> {
        let offset = self.log().append_msg(content)?;
        Ok((offset, u32::try_from(content.len())?))
    }

    /// One message set, written with one `write`.
    fn append_batch(&self, items: &[(String, Bytes)], _durable: bool) -> Res<Vec<(Offset, u32)>> {
        let mut buf = MessageBuf::default();
        for (_, content) in items {
            buf.push(content)
                .map_err(|e| format!("commitlog MessageBuf::push: {e:?}"))?;
        }
        let range = self.log().append(&mut buf)?;
        items
            .iter()
            .zip(range.iter())
            .map(|((_, c), offset)| Ok((offset, u32::try_from(c.len())?)))
            .collect()
    }

    /// Flushes (msyncs) the index; the segment is not fsynced (see
    /// [`NO_FSYNC`]).
    fn sync(&self) -> Res<()> {
        Ok(self.log().flush()?)
    }

    /// Finds the position in the mmapped index, then one `pread` into a fresh
    /// buffer whose CRC is checked. The limit is one byte more than the
    /// message: exactly the message's size fails for the segment's last one.
    fn read(&self, (offset, len): (Offset, u32)) -> Res<usize> {
        let limit = ReadLimit::max_bytes(HEADER + len as usize + 1);
        let buf = self.log().read(offset, limit)?;
        let msg = buf.iter().next().ok_or("commitlog read returned nothing")?;
        Ok(consume(msg.payload()))
    }

    /// Reads of 128 KiB of whole messages from the first offset to the last.
    /// The log holds only this key's records in this workload.
    fn enumerate(&mut self, _key: &str) -> Res<(u64, u64)> {
        let log = self.log();
        let (mut next, end) = (0, log.next_offset());
        let (mut n, mut bytes) = (0u64, 0u64);
        while next < end {
            let buf = log.read(next, ReadLimit::max_bytes(READ_CHUNK))?;
            for msg in buf.iter() {
                n += 1;
                bytes += consume(msg.payload()) as u64;
                next = msg.offset() + 1;
            }
            if buf.is_empty() {
                return Err(format!("commitlog read at {next} returned nothing").into());
            }
        }
        Ok((n, bytes))
    }

    fn close(self) -> Res<()> {
        let mut log = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(log.flush()?)
    }
}
