//! `Wal` methods that remove records from a key, and the key's last record.

use super::Wal;
use crate::entry_ref::{EntryRef, Record};
use crate::error::Result;
use crate::key::key_hash;
use crate::subscribe::{READ_ONLY_POLL_INTERVAL, Subscription, wait_on};
use std::time::{Duration, Instant};

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

    /// Follow `key`: its records from `from` (inclusive; `None`: from its
    /// first record), then every record appended later, as they come.
    /// See [`Subscription`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let wal = std::sync::Arc::new(nano_wal::Wal::builder(dir.path()).open()?);
    /// use std::time::Duration;
    /// wal.append_entry("orders", None, bytes::Bytes::from("one"), false)?;
    /// let mut sub = wal.subscribe("orders", None)?;
    /// let w = wal.clone();
    /// std::thread::spawn(move || w.append_entry("orders", None, bytes::Bytes::from("two"), false));
    /// assert_eq!(sub.next_timeout(Duration::from_secs(5))?.map(|r| r.content), Some("one".into()));
    /// assert_eq!(sub.next_timeout(Duration::from_secs(5))?.map(|r| r.content), Some("two".into()));
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// # Errors
    /// A closed handle; [`WalError::EntryNotFound`](crate::WalError::EntryNotFound)
    /// if `from` does not resolve to a record of `key`.
    pub fn subscribe<K: AsRef<[u8]>>(
        &self,
        key: K,
        from: Option<EntryRef>,
    ) -> Result<Subscription> {
        self.engine.check_open()?;
        Subscription::new(self.engine.clone(), key.as_ref(), from, false)
    }

    /// Follow `key` from the record after `entry_ref` (a consumer resuming
    /// after the last record it processed).
    ///
    /// # Errors
    /// As [`Wal::subscribe`].
    pub fn subscribe_after<K: AsRef<[u8]>>(
        &self,
        key: K,
        entry_ref: EntryRef,
    ) -> Result<Subscription> {
        self.engine.check_open()?;
        Subscription::new(self.engine.clone(), key.as_ref(), Some(entry_ref), true)
    }

    /// Wait for records to arrive, on any key: run `poll` (your check, for
    /// example draining several [`Subscription`]s with `try_next`) until it
    /// returns `Ok(Some(_))` or an error, or `timeout` passes (`Ok(None)`).
    ///
    /// Between two polls it sleeps until an append through any handle of
    /// this process wakes it, without polling on a timer; a wake-up that
    /// comes while `poll` runs is not lost. On a read-only handle it calls
    /// [`Wal::refresh`] and polls every 100 ms instead.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let dir = tempfile::tempdir()?;
    /// # let wal = nano_wal::Wal::builder(dir.path()).open()?;
    /// let mut a = wal.subscribe("a", None)?;
    /// let mut b = wal.subscribe("b", None)?;
    /// wal.append_entry("b", None, bytes::Bytes::from("hello"), false)?;
    /// let got = wal.wait_until(Duration::from_secs(5), || {
    ///     // Ask `b` only if `a` has nothing: a record taken is consumed.
    ///     match a.try_next()? {
    ///         Some(record) => Ok(Some(record)),
    ///         None => b.try_next(),
    ///     }
    /// })?;
    /// assert_eq!(got.map(|r| r.content), Some("hello".into()));
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// # Errors
    /// [`WalError::Closed`](crate::WalError::Closed) once the handle is
    /// closed; whatever `poll` returns; on a read-only handle, errors of
    /// [`Wal::refresh`].
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        poll: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let tick = self
            .engine
            .is_read_only()
            .then_some(READ_ONLY_POLL_INTERVAL);
        wait_on(&self.engine, Some(Instant::now() + timeout), tick, poll)
    }

    /// On a read-only handle, look at the directory again: records, segments
    /// and keys another process (the writer) added since are seen from now
    /// on. Costs a directory listing and a scan of each key's newest
    /// segment. A writable handle sees every change at once; for it this
    /// does nothing.
    ///
    /// # Errors
    /// A closed handle; I/O errors and corruption as at open.
    pub fn refresh(&self) -> Result<()> {
        self.engine.check_open()?;
        self.engine.refresh()
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
