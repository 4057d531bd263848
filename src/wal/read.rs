//! The read APIs of [`Wal`]: point reads by reference, a key's records as
//! a stream or lent to a callback, and the key listings.

use std::fmt::Display;
use std::hash::Hash;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;

use super::Wal;
use crate::entry_ref::{EntryRef, Record, RecordView};
use crate::error::{Result, WalError};
use crate::iter::{Contents, Records, verify_unchecked};
use crate::key::key_hash;
use crate::segment::Segment;

impl Wal {
    fn locate(&self, r: EntryRef) -> Result<(Arc<Segment>, u64)> {
        self.engine.check_open()?;
        self.engine.locate(r)
    }

    /// Read one record, with its header and timestamp.
    ///
    /// # Errors
    /// [`WalError::EntryNotFound`] for an unknown key, removed segment or
    /// offset past the data; [`WalError::CorruptedData`] if the record fails
    /// its checksum (never wrong bytes).
    pub fn read_record_at(&self, entry_ref: EntryRef) -> Result<Record> {
        self.engine.check_open()?;
        self.engine.read_record(entry_ref)
    }

    /// Read one record's content, as in nano-wal 0.5. O(1) in the number of
    /// keys and segments; the directory is never listed.
    ///
    /// # Errors
    /// As [`Wal::read_record_at`].
    pub fn read_entry_at(&self, entry_ref: EntryRef) -> Result<Bytes> {
        Ok(self.read_record_at(entry_ref)?.content)
    }

    /// Every record of `key`, oldest first, as a fallible stream.
    ///
    /// # Errors
    /// A closed handle. Read errors come from the iterator.
    pub fn records<K: AsRef<[u8]>>(&self, key: K) -> Result<Records> {
        self.engine.check_open()?;
        let segments = self.key_segments(key.as_ref());
        Ok(Records::new(self.engine.clone(), segments, 0))
    }

    /// Visit every record of `key`, oldest first, until `visit` returns
    /// [`ControlFlow::Break`]: the fastest way to read a key. Records are
    /// checked exactly as by [`Wal::records`], but lent to the callback
    /// straight from the read window, with no allocation or reference
    /// count per record; copy what you keep.
    ///
    /// ```
    /// # use std::ops::ControlFlow;
    /// # let dir = tempfile::tempdir()?;
    /// # let wal = nano_wal::Wal::builder(dir.path()).open()?;
    /// wal.append_entry("k", None, bytes::Bytes::from("a"), false)?;
    /// let mut total_bytes = 0;
    /// wal.scan("k", |r| {
    ///     total_bytes += r.content.len();
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(total_bytes, 1);
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// # Errors
    /// A closed handle; [`WalError::CorruptedData`] naming the file and
    /// offset of a damaged record (records before it were visited); I/O
    /// errors.
    pub fn scan<K: AsRef<[u8]>>(
        &self,
        key: K,
        visit: impl FnMut(RecordView<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.engine.check_open()?;
        let segments = self.key_segments(key.as_ref());
        crate::iter::scan(&self.engine, &segments, visit)
    }

    /// The key's segments, oldest first (none for an unknown key).
    fn key_segments(&self, key: &[u8]) -> Vec<Arc<Segment>> {
        self.engine
            .key_log(key_hash(key))
            .filter(|l| l.key == key)
            .map_or_else(Vec::new, |l| l.segments_from(0))
    }

    /// The records of `entry_ref`'s key from that record onward.
    ///
    /// # Errors
    /// [`WalError::EntryNotFound`] if the reference does not resolve.
    pub fn records_from(&self, entry_ref: EntryRef) -> Result<Records> {
        let (seg, _) = self.locate(entry_ref)?;
        let log = self
            .engine
            .key_log(entry_ref.key_hash)
            .ok_or_else(|| WalError::EntryNotFound(format!("{entry_ref}: no such key")))?;
        let segments = log.segments_from(seg.sequence);
        Ok(Records::new(
            self.engine.clone(),
            segments,
            entry_ref.offset,
        ))
    }

    /// The contents of every record of `key`, oldest first, as in nano-wal
    /// 0.5 — but streamed: memory stays flat however large the key is.
    ///
    /// Records not yet checked in this process are checked first, so
    /// corruption is an `Err` here rather than a silently short stream.
    ///
    /// # Errors
    /// [`WalError::CorruptedData`] naming the file and offset, I/O errors.
    pub fn enumerate_records<K: Hash + AsRef<[u8]> + Display>(&self, key: K) -> Result<Contents> {
        self.engine.check_open()?;
        let segments = self.key_segments(key.as_ref());
        verify_unchecked(&self.engine, &segments)?;
        Ok(Contents::new(Records::new(
            self.engine.clone(),
            segments,
            0,
        )))
    }

    /// Every key that has at least one record and is UTF-8, sorted, as
    /// nano-wal 0.5 returned them. A key whose bytes are not UTF-8 has no
    /// `String` that reads it back, so it is left out: [`Wal::keys`] lists
    /// every key.
    ///
    /// # Errors
    /// A closed handle.
    pub fn enumerate_keys(&self) -> Result<std::vec::IntoIter<String>> {
        let keys: Vec<String> = self
            .keys()?
            .into_iter()
            .filter_map(|k| String::from_utf8(k).ok())
            .collect();
        // Sorted already: UTF-8 orders strings as their bytes.
        Ok(keys.into_iter())
    }

    /// Every key that has at least one record, as bytes, sorted bytewise.
    /// Unlike [`Wal::enumerate_keys`] this includes keys that are not UTF-8;
    /// each reads back with [`Wal::records`] or [`Wal::scan`].
    ///
    /// # Errors
    /// A closed handle.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        self.engine.check_open()?;
        let mut keys: Vec<Vec<u8>> = self
            .engine
            .all_keys()
            .iter()
            .filter(|l| l.has_records())
            .map(|l| l.key.clone())
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }
}
