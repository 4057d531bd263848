//! okaywal from crates.io: one log for all keys, every commit durable, group
//! commit across threads.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use okaywal::{
    Configuration, Entry, EntryId, LogManager, LogPosition, ReadChunkResult, SegmentReader,
    WriteAheadLog,
};

use super::{Kind, OpenCfg, Res, System, consume};

/// Name in the table.
pub const NAME: &str = "okaywal";

/// An okaywal log. It has no keys: every key's records go into the one log.
pub struct Okay {
    wal: Option<WriteAheadLog>,
    config: Configuration,
}

/// The simplest manager that keeps data: recovers every segment (reading each
/// chunk if `read` is set, as an application replaying its log would) and
/// checkpoints by doing nothing.
#[derive(Debug, Default)]
struct Keep {
    read: bool,
    buf: Vec<u8>,
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl LogManager for Keep {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        if !self.read {
            return Ok(());
        }
        loop {
            let mut chunk = match entry.read_chunk()? {
                ReadChunkResult::Chunk(chunk) => chunk,
                ReadChunkResult::EndOfEntry | ReadChunkResult::AbortedEntry => return Ok(()),
            };
            self.buf.clear();
            chunk.read_to_end(&mut self.buf)?;
            if !chunk.check_crc()? {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk crc"));
            }
            self.records.fetch_add(1, Ordering::Relaxed);
            self.bytes
                .fetch_add(consume(&self.buf) as u64, Ordering::Relaxed);
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

impl Okay {
    fn wal(&self) -> Res<&WriteAheadLog> {
        self.wal
            .as_ref()
            .ok_or_else(|| "okaywal log is closed".into())
    }
}

fn config(dir: &Path, keep_all: bool) -> Configuration {
    let config = Configuration::default_for(PathBuf::from(dir));
    // By default a segment is checkpointed (here: handed to a manager that
    // drops it, then recycled) after 768 KiB, and its positions stop
    // resolving. Workloads that read back keep every segment instead.
    if keep_all {
        config.checkpoint_after_bytes(u64::MAX)
    } else {
        config
    }
}

impl System for Okay {
    type Ref = LogPosition;
    const KEYED: bool = false;

    fn unsupported(kind: Kind) -> Option<&'static str> {
        match kind {
            Kind::AppendNonDurable | Kind::ManyKeys => {
                Some("okaywal has no non-durable append: every commit is fsynced")
            }
            _ => None,
        }
    }

    fn open(dir: &Path, cfg: &OpenCfg) -> Res<Self> {
        let config = config(dir, cfg.keep_all);
        let wal = config.clone().open(Keep::default())?;
        Ok(Self {
            wal: Some(wal),
            config,
        })
    }

    fn append(&self, _key: &str, content: &Bytes, _durable: bool) -> Res<LogPosition> {
        let mut entry = self.wal()?.begin_entry()?;
        let chunk = entry.write_chunk(content)?;
        entry.commit()?;
        Ok(chunk.position)
    }

    /// One entry of one chunk per record, committed (and fsynced) once.
    fn append_batch(&self, items: &[(String, Bytes)], _durable: bool) -> Res<Vec<LogPosition>> {
        let mut entry = self.wal()?.begin_entry()?;
        let mut refs = Vec::with_capacity(items.len());
        for (_, content) in items {
            refs.push(entry.write_chunk(content)?.position);
        }
        entry.commit()?;
        Ok(refs)
    }

    fn sync(&self) -> Res<()> {
        Ok(())
    }

    /// `read_at` opens the segment file and wraps it in a `BufReader` per
    /// call; the chunk's CRC is checked, as nano-wal checks its records.
    fn read(&self, r: LogPosition) -> Res<usize> {
        let mut reader = self.wal()?.read_at(r)?;
        let mut buf = Vec::with_capacity(reader.chunk_length() as usize);
        reader.read_to_end(&mut buf)?;
        if !reader.crc_is_valid()? {
            return Err("okaywal chunk crc mismatch".into());
        }
        Ok(consume(&buf))
    }

    /// okaywal can only stream its log through recovery: close it, then
    /// reopen with a manager that reads every chunk (so this includes the
    /// open). The log holds only this key's records in this workload.
    fn enumerate(&mut self, _key: &str) -> Res<(u64, u64)> {
        if let Some(wal) = self.wal.take() {
            wal.shutdown()?;
        }
        let manager = Keep {
            read: true,
            ..Keep::default()
        };
        let (records, bytes) = (manager.records.clone(), manager.bytes.clone());
        self.wal = Some(self.config.clone().open(manager)?);
        Ok((
            records.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed),
        ))
    }

    fn close(mut self) -> Res<()> {
        match self.wal.take() {
            Some(wal) => Ok(wal.shutdown()?),
            None => Ok(()),
        }
    }
}
