//! nano-wal 0.5.0 from crates.io.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use nano_wal_05::{EntryRef, Wal, WalOptions};

use super::{Kind, OpenCfg, Res, System, consume};

/// Name in the table.
pub const NAME: &str = "nano-wal 0.5";

/// nano-wal 0.5's `Wal`. Its appends, `sync` and `append_batch` take
/// `&mut self`, so a program that appends from several threads has to put it
/// behind a lock, exactly as here. Single-threaded workloads take the lock
/// uncontended.
pub struct Nano05(Mutex<Wal>);

impl Nano05 {
    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl System for Nano05 {
    type Ref = EntryRef;
    const KEYED: bool = true;

    fn unsupported(_kind: Kind) -> Option<&'static str> {
        None
    }

    /// 0.5 has no descriptor budget: it keeps one file open per key.
    fn open(dir: &Path, _cfg: &OpenCfg) -> Res<Self> {
        let path = dir.to_str().ok_or("temp dir is not UTF-8")?;
        Ok(Self(Mutex::new(Wal::new(path, WalOptions::default())?)))
    }

    fn append(&self, key: &str, content: &Bytes, durable: bool) -> Res<EntryRef> {
        Ok(self
            .wal()
            .append_entry(key, None, content.clone(), durable)?)
    }

    /// 0.5's own `append_batch`: every record appended non-durably, then one
    /// `sync()` of every active segment (all keys, not only the batch's).
    fn append_batch(&self, items: &[(String, Bytes)], durable: bool) -> Res<Vec<EntryRef>> {
        let batch = items.iter().map(|(k, c)| (k.as_str(), None, c.clone()));
        Ok(self.wal().append_batch(batch, durable)?)
    }

    fn sync(&self) -> Res<()> {
        Ok(self.wal().sync()?)
    }

    /// 0.5 lists the directory to find the segment on every read.
    fn read(&self, r: EntryRef) -> Res<usize> {
        Ok(consume(&self.wal().read_entry_at(r)?))
    }

    /// 0.5 reads the whole key into a `Vec` before returning the iterator.
    fn enumerate(&mut self, key: &str) -> Res<(u64, u64)> {
        let (mut n, mut bytes) = (0u64, 0u64);
        for c in self.wal().enumerate_records(key)? {
            n += 1;
            bytes += consume(&c) as u64;
        }
        Ok((n, bytes))
    }

    /// 0.5 has no `close`; dropping the handle closes its files (its writes
    /// are unbuffered, so nothing is lost).
    fn close(self) -> Res<()> {
        drop(self);
        Ok(())
    }
}
