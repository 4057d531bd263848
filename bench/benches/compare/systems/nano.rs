//! `nano-wal` from this workspace.

use std::ops::ControlFlow;
use std::path::Path;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal};

use super::{Kind, OpenCfg, Res, System, consume};

/// Name in the table.
pub const NAME: &str = "nano-wal";
/// Name in the table of the same with in-memory tails.
pub const TAILS_NAME: &str = "nano-wal tails";

/// This crate's `Wal` with `max_unapplied_bytes(UNAPPLIED)`: every method
/// takes `&self`, so threads share it as is.
pub struct Nano<const UNAPPLIED: u64>(Wal);

/// The default settings (no in-memory tails).
pub type NanoDefault = Nano<0>;
/// In-memory segment tails of up to 16 MiB.
pub type NanoTails = Nano<{ 16 << 20 }>;

impl<const UNAPPLIED: u64> System for Nano<UNAPPLIED> {
    type Ref = EntryRef;
    const KEYED: bool = true;

    fn unsupported(_kind: Kind) -> Option<&'static str> {
        None
    }

    fn open(dir: &Path, cfg: &OpenCfg) -> Res<Self> {
        let mut builder = Wal::builder(dir).max_unapplied_bytes(UNAPPLIED);
        if let Some(n) = cfg.max_open_files {
            builder = builder.max_open_files(n);
        }
        Ok(Self(builder.open()?))
    }

    fn append(&self, key: &str, content: &Bytes, durable: bool) -> Res<EntryRef> {
        Ok(self.0.append_entry(key, None, content.clone(), durable)?)
    }

    fn append_batch(&self, items: &[(String, Bytes)], durable: bool) -> Res<Vec<EntryRef>> {
        let batch = items.iter().map(|(k, c)| (k.as_str(), None, c.clone()));
        Ok(self.0.append_batch(batch, durable)?)
    }

    fn sync(&self) -> Res<()> {
        Ok(self.0.sync()?)
    }

    fn read(&self, r: EntryRef) -> Res<usize> {
        Ok(consume(&self.0.read_entry_at(r)?))
    }

    /// `enumerate_records`, the call nano-wal 0.5 also has (streamed here).
    fn enumerate(&mut self, key: &str) -> Res<(u64, u64)> {
        let mut contents = self.0.enumerate_records(key)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        for c in contents.by_ref() {
            n += 1;
            bytes += consume(&c) as u64;
        }
        match contents.error() {
            Some(e) => Err(format!("enumerate_records stopped: {e}").into()),
            None => Ok((n, bytes)),
        }
    }

    /// `Wal::scan`: records lent to a callback from the read window.
    fn scan(&mut self, key: &str) -> Res<(u64, u64)> {
        let (mut n, mut bytes) = (0u64, 0u64);
        self.0.scan(key, |r| {
            n += 1;
            bytes += consume(r.content) as u64;
            ControlFlow::Continue(())
        })?;
        Ok((n, bytes))
    }

    fn close(self) -> Res<()> {
        Ok(self.0.close()?)
    }
}
