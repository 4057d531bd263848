//! `Wal` methods that remove records from a key, and the key's last record.

use super::Wal;
use crate::entry_ref::{EntryRef, Record};
use crate::error::Result;
use crate::key::key_hash;

impl Wal {
    /// Durably remove the record `entry_ref` names and every later record
    /// of its key, as a Raft log does when a new leader overwrites its
    /// tail. Returns once the removal is durable.
    ///
    /// The key's next append starts a new segment, so a reference into the
    /// removed part never resolves to a newer record: it gives
    /// [`WalError::EntryNotFound`](crate::WalError::EntryNotFound), now and
    /// after reopening.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let wal = nano_wal::Wal::builder(dir.path()).open()?;
    /// let a = wal.append_entry("log", None, bytes::Bytes::from("a"), false)?;
    /// let b = wal.append_entry("log", None, bytes::Bytes::from("b"), false)?;
    /// wal.truncate_from(b)?;
    /// assert!(wal.read_entry_at(b).is_err());
    /// assert_eq!(wal.read_entry_at(a)?, "a");
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// # Errors
    /// [`WalError::EntryNotFound`](crate::WalError::EntryNotFound) if the
    /// reference does not resolve (never written, removed, or purged); a
    /// read-only or closed handle; I/O errors. An error after the truncation
    /// reached the journal (removing a later segment's file, cutting this
    /// one) leaves it in effect: no read returns the removed records, and
    /// the next checkpoint or open finishes the removal.
    pub fn truncate_from(&self, entry_ref: EntryRef) -> Result<()> {
        let _gate = self.engine.enter(true)?;
        crate::trim::truncate_from(&self.engine, entry_ref)
    }

    /// Durably remove every record of `entry_ref`'s key before the record
    /// it names, as a Raft log does after a snapshot. Whole segments are
    /// deleted; the records left in a partly purged segment are hidden
    /// from every read, now and after reopening. Purging before the key's
    /// first visible record does nothing.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let wal = nano_wal::Wal::builder(dir.path()).open()?;
    /// let a = wal.append_entry("log", None, bytes::Bytes::from("a"), false)?;
    /// let b = wal.append_entry("log", None, bytes::Bytes::from("b"), false)?;
    /// wal.purge_before(b)?;
    /// assert!(wal.read_entry_at(a).is_err());
    /// let left: Vec<_> = wal.enumerate_records("log")?.collect();
    /// assert_eq!(left, vec![bytes::Bytes::from("b")]);
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Wal::truncate_from`].
    pub fn purge_before(&self, entry_ref: EntryRef) -> Result<()> {
        let _gate = self.engine.enter(true)?;
        crate::trim::purge_before(&self.engine, entry_ref)
    }

    /// The key's last record, read directly at its known position (no scan
    /// of the key): for keys that hold state, such as a vote or a commit
    /// index. `None` for an unknown key or one with no records left.
    ///
    /// The position is known for every segment this crate wrote or replayed
    /// and is kept in the manifest; a segment from an earlier format is read
    /// once, the first time it is asked.
    ///
    /// # Errors
    /// A closed handle; [`WalError::CorruptedData`](crate::WalError::CorruptedData)
    /// or I/O errors reading the record.
    pub fn last_record<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Record>> {
        self.engine.check_open()?;
        let key = key.as_ref();
        match self.engine.key_log(key_hash(key)).filter(|l| l.key == key) {
            Some(log) => crate::trim::last_record(&self.engine, &log),
            None => Ok(None),
        }
    }
}
