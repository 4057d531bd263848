//! Baseline: one file, one `write` per record (4-byte length prefix and
//! content), `fdatasync` for durability, `pread` for point reads. No keys, no
//! checksums, no recovery.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{Kind, OpenCfg, Res, System, consume};

/// Name in the table.
pub const NAME: &str = "raw";

/// Size of the length prefix.
const PREFIX: u64 = 4;
/// Read size while enumerating.
const READ_CHUNK: usize = 128 * 1024;

/// The file, for writes behind a lock (threads serialize on it, fsync
/// included), and a second handle for `pread`.
pub struct Raw {
    writer: Mutex<Writer>,
    reader: File,
    path: std::path::PathBuf,
}

struct Writer {
    file: File,
    end: u64,
    buf: Vec<u8>,
}

impl Writer {
    /// One `write` of prefix and content; returns where the content starts.
    fn write(&mut self, content: &[u8]) -> Res<(u64, u32)> {
        let len = u32::try_from(content.len())?;
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(content);
        self.file.write_all(&self.buf)?;
        let at = self.end + PREFIX;
        self.end = at + u64::from(len);
        Ok((at, len))
    }
}

impl Raw {
    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl System for Raw {
    /// Where the content starts, and its length.
    type Ref = (u64, u32);
    const KEYED: bool = false;

    fn unsupported(_kind: Kind) -> Option<&'static str> {
        None
    }

    fn open(dir: &Path, _cfg: &OpenCfg) -> Res<Self> {
        let path = dir.join("raw.log");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let end = file.metadata()?.len();
        let reader = File::open(&path)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                file,
                end,
                buf: Vec::new(),
            }),
            reader,
            path,
        })
    }

    fn append(&self, _key: &str, content: &Bytes, durable: bool) -> Res<(u64, u32)> {
        let mut w = self.writer();
        let r = w.write(content)?;
        if durable {
            w.file.sync_data()?;
        }
        Ok(r)
    }

    /// One `write` per record, then one `fdatasync`.
    fn append_batch(&self, items: &[(String, Bytes)], durable: bool) -> Res<Vec<(u64, u32)>> {
        let mut w = self.writer();
        let refs = items
            .iter()
            .map(|(_, c)| w.write(c))
            .collect::<Res<Vec<_>>>()?;
        if durable {
            w.file.sync_data()?;
        }
        Ok(refs)
    }

    fn sync(&self) -> Res<()> {
        Ok(self.writer().file.sync_data()?)
    }

    /// One `pread` into a fresh buffer.
    fn read(&self, (at, len): (u64, u32)) -> Res<usize> {
        let mut buf = vec![0u8; len as usize];
        self.reader.read_exact_at(&mut buf, at)?;
        Ok(consume(&buf))
    }

    /// The whole file, read sequentially through a 128 KiB buffer.
    fn enumerate(&mut self, _key: &str) -> Res<(u64, u64)> {
        let mut file = BufReader::with_capacity(READ_CHUNK, File::open(&self.path)?);
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut content = Vec::new();
        let mut prefix = [0u8; 4];
        loop {
            match file.read_exact(&mut prefix) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            content.resize(u32::from_le_bytes(prefix) as usize, 0);
            file.read_exact(&mut content)?;
            n += 1;
            bytes += consume(&content) as u64;
        }
        Ok((n, bytes))
    }

    fn close(self) -> Res<()> {
        Ok(self.writer().file.sync_data()?)
    }
}
