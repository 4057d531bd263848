//! The `Wal` handle: thin public methods over the engine.

mod batch;
mod edit;
mod read;
mod shared;

use std::fmt::Display;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::engine::Engine;
use crate::entry_ref::EntryRef;
use crate::error::{Result, WalError, io_at};
use crate::journal::checkpoint;
use crate::journal::replay::JournalFiles;
use crate::key::{key_hash, sanitize};
use crate::keylog::{KeyLog, Writer};
use crate::metrics::{Count, Metrics};
use crate::options::{WalBuilder, WalOptions};
use crate::recovery::{self, RecoveryReport};
use crate::rules::write as write_rules;
use crate::storage::{LockGuard, remove_if_present};

/// Name of the lock file a writer holds in the WAL directory.
pub const LOCK_FILE_NAME: &str = "nano-wal.lock";

/// A write-ahead log with one segment set per key.
///
/// Every method takes `&self`; share a `Wal` between threads with an
/// [`Arc`]. See the crate docs for the guarantees.
#[derive(Debug)]
pub struct Wal {
    engine: Arc<Engine>,
    /// Shared by every handle of this process on the directory.
    owner: Arc<shared::Owner>,
}

impl Wal {
    /// Open (creating if needed) the WAL in directory `filepath`, as in
    /// nano-wal 0.5.
    ///
    /// If another writer holds the directory's lock, the handle opens
    /// read-only: it can read, and its first change fails with
    /// [`WalError::ReadOnly`]. Use [`Wal::builder`] to fail instead.
    ///
    /// # Errors
    /// Invalid options (an empty path among them: it would put the WAL's
    /// files in the current directory), I/O errors, corruption (see
    /// [`crate::RecoveryMode`]), and [`WalError::ForeignFile`] for a file in
    /// the directory that the WAL will not touch.
    pub fn new(filepath: &str, options: WalOptions) -> Result<Self> {
        Self::open_with(WalBuilder::new(filepath).options(options), true)
    }

    /// A builder for settings beyond nano-wal 0.5's.
    pub fn builder(dir: impl AsRef<Path>) -> WalBuilder {
        WalBuilder::new(dir.as_ref())
    }

    pub(crate) fn open_with(builder: WalBuilder, fall_back_to_read_only: bool) -> Result<Self> {
        builder.validate()?;
        let config = builder.config;
        if config.read_only {
            return Self::open_unshared(config, fall_back_to_read_only);
        }
        let dir = config.dir.clone();
        config
            .storage
            .create_dir_all(&dir)
            .map_err(|e| io_at(&dir, "create directory", e))?;
        let key = config
            .storage
            .shared_handle_key(&dir)
            .map_err(|e| io_at(&dir, "resolve", e))?;
        let Some(key) = key else {
            return Self::open_unshared(config, fall_back_to_read_only);
        };
        let mut open = shared::registry();
        if let Some(owner) = shared::find(&mut open, &key) {
            // The settings of this open are not applied: the log keeps the
            // ones it was opened with.
            return Ok(Self {
                engine: owner.engine.clone(),
                owner,
            });
        }
        let wal = Self::open_unshared(config, fall_back_to_read_only)?;
        if !wal.engine.is_read_only() {
            open.push((key, Arc::downgrade(&wal.owner)));
        }
        Ok(wal)
    }

    fn open_unshared(config: crate::options::Config, fall_back_to_read_only: bool) -> Result<Self> {
        let dir = config.dir.clone();
        let storage = config.storage.clone();
        let (lock, read_only) = if config.read_only {
            (None, Some("opened read-only".to_owned()))
        } else {
            storage
                .create_dir_all(&dir)
                .map_err(|e| io_at(&dir, "create directory", e))?;
            let lock_path = dir.join(LOCK_FILE_NAME);
            match storage
                .try_lock(&lock_path)
                .map_err(|e| io_at(&lock_path, "lock", e))?
            {
                Some(guard) => (Some(guard), None),
                None if fall_back_to_read_only => (
                    None,
                    Some(format!(
                        "another writer held the lock on {} when it was opened",
                        dir.display()
                    )),
                ),
                None => return Err(WalError::Locked(dir.display().to_string())),
            }
        };
        if read_only.is_none() {
            crate::marker::check(&config)?;
        }
        let (engine, report) = recovery::open_engine(config, read_only)?;
        Ok(Self {
            engine: engine.clone(),
            owner: Arc::new(shared::Owner {
                engine,
                lock: Mutex::new(lock),
                report,
            }),
        })
    }

    /// Another handle to the same open log (for [`crate::Consumer`]).
    pub(crate) fn clone_handle(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            owner: self.owner.clone(),
        }
    }

    /// The WAL's directory.
    pub fn path(&self) -> &Path {
        &self.engine.config.dir
    }

    /// What opening found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.owner.report
    }

    /// What this handle has done since it was opened: appends, bytes,
    /// durable acknowledgements, fsyncs of segments and of the directory,
    /// segments created, and the files and keys it holds now. A snapshot:
    /// cheap enough to poll (it takes each key's writer lock briefly).
    pub fn metrics(&self) -> Metrics {
        self.engine.metrics()
    }

    /// Segment files this handle holds open right now (bounded by
    /// [`WalBuilder::max_open_files`]).
    pub fn open_file_count(&self) -> usize {
        self.engine.cache.len()
    }

    /// Whether this handle can only read.
    pub fn is_read_only(&self) -> bool {
        self.engine.is_read_only()
    }

    fn key_log_for(&self, key: &[u8], display: &dyn Display) -> Result<Arc<KeyLog>> {
        let hash = key_hash(key);
        let log = self.engine.key_log_or_insert(hash, || {
            let name = sanitize(&display.to_string());
            Arc::new(KeyLog::new(
                key.to_vec(),
                hash,
                name,
                Vec::new(),
                Writer::new(1),
            ))
        });
        if log.key != key {
            return Err(WalError::InvalidConfig(format!(
                "key {display} has the same hash {hash} as another key in this WAL"
            )));
        }
        Ok(log)
    }

    /// Append a record to `key`'s log and return its reference.
    ///
    /// The record is written to the shared journal as one frame, then to
    /// its key's segment. With `durable = false` it has reached the
    /// operating system when this returns: it survives a crash of the
    /// process, not of the machine. With `durable = true` it returns after
    /// an fdatasync of the journal that covers it, shared with every thread
    /// waiting at the time, whatever its key (group commit).
    ///
    /// # Errors
    /// Limits ([`WalError::HeaderTooLarge`] and friends), a read-only or
    /// poisoned handle, and I/O errors.
    pub fn append_entry<K: Hash + AsRef<[u8]> + Display>(
        &self,
        key: K,
        header: Option<Bytes>,
        content: Bytes,
        durable: bool,
    ) -> Result<EntryRef> {
        // A durable append holds the gate through its sync, so closing waits
        // for it; a non-durable one is covered by its key's writer lock
        // (see `Engine::close`), keeping the hot path free of shared atomics.
        let gate = if durable {
            Some(self.engine.enter(true)?)
        } else {
            self.engine.check_writable()?;
            None
        };
        let record = write_rules::check(key.as_ref(), header.as_deref(), &content)?;
        let now = self.engine.config.clock.now_unix_ms();
        let log = self.key_log_for(key.as_ref(), &key)?;
        // Counted before the write, so a sync leader that sees the frame
        // also knows to expect this appender.
        let joining = durable.then(|| self.engine.journal.join());
        let appended = log.append_one(&self.engine, record, now)?;
        if durable {
            self.engine
                .journal
                .make_durable(&self.engine, appended.lsn)?;
            self.engine.count(Count::DurableRecords, 1);
        }
        drop(joining);
        drop(gate);
        self.engine.notifier.notify();
        checkpoint::after_append(&self.engine);
        Ok(appended.entry_ref)
    }

    /// Append durably: `append_entry(key, header, content, true)`.
    ///
    /// # Errors
    /// As [`Wal::append_entry`].
    pub fn log_entry<K: Hash + AsRef<[u8]> + Display>(
        &self,
        key: K,
        header: Option<Bytes>,
        content: Bytes,
    ) -> Result<EntryRef> {
        self.append_entry(key, header, content, true)
    }

    /// Append many records, atomically; references come back in input
    /// order.
    ///
    /// Every record is checked against the limits before anything is
    /// written. The whole batch, every key in it, is one journal frame
    /// written with one call: after any crash, of the process or the
    /// machine, a reopened WAL holds every record of the batch or none.
    /// Then each key's records are written to its segment with one call per
    /// segment. With `durable`, it returns after one fdatasync of the
    /// journal, whatever the number of keys. If an I/O error stops the
    /// batch, it is reported, no record of it is reported durable, and a
    /// reopened WAL holds all of it or none.
    ///
    /// # Errors
    /// As [`Wal::append_entry`].
    pub fn append_batch<K, I>(&self, entries: I, durable: bool) -> Result<Vec<EntryRef>>
    where
        K: Hash + AsRef<[u8]> + Display,
        I: IntoIterator<Item = (K, Option<Bytes>, Bytes)>,
    {
        let gate = self.engine.enter(true)?;
        let (out, lsn) = self.batch_written(entries)?;
        if durable && !out.is_empty() {
            self.engine.journal.make_durable(&self.engine, lsn)?;
            self.engine.count(Count::DurableRecords, out.len() as u64);
        }
        drop(gate);
        checkpoint::after_append(&self.engine);
        Ok(out)
    }

    /// A batch written without waiting (the async front): its references
    /// and the journal position that makes it durable.
    #[cfg(feature = "tokio")]
    pub(crate) fn append_batch_unsynced<K, I>(&self, entries: I) -> Result<(Vec<EntryRef>, u64)>
    where
        K: Hash + AsRef<[u8]> + Display,
        I: IntoIterator<Item = (K, Option<Bytes>, Bytes)>,
    {
        self.engine.check_writable()?;
        let written = self.batch_written(entries)?;
        checkpoint::after_append(&self.engine);
        Ok(written)
    }

    /// One record written without waiting (the async front): its reference
    /// and the journal position that makes it durable.
    #[cfg(feature = "tokio")]
    pub(crate) fn append_unsynced<K: Hash + AsRef<[u8]> + Display>(
        &self,
        key: K,
        header: Option<Bytes>,
        content: Bytes,
    ) -> Result<(EntryRef, u64)> {
        self.engine.check_writable()?;
        let record = write_rules::check(key.as_ref(), header.as_deref(), &content)?;
        let now = self.engine.config.clock.now_unix_ms();
        let log = self.key_log_for(key.as_ref(), &key)?;
        let appended = log.append_one(&self.engine, record, now)?;
        self.engine.notifier.notify();
        checkpoint::after_append(&self.engine);
        Ok((appended.entry_ref, appended.lsn))
    }

    /// Make the journal durable through `lsn` (one fdatasync shared with
    /// every waiter), for `records` appended without waiting.
    #[cfg(feature = "tokio")]
    pub(crate) fn durable_through(&self, lsn: u64, records: usize) -> Result<()> {
        let _gate = self.engine.enter(false)?;
        self.engine.journal.make_durable(&self.engine, lsn)?;
        self.engine.count(Count::DurableRecords, records as u64);
        Ok(())
    }

    /// Make every record appended so far, of every key, durable: one
    /// fdatasync of the journal (shared with any other thread waiting).
    ///
    /// # Errors
    /// [`WalError::Poisoned`] if a write or fsync of the journal failed.
    pub fn sync(&self) -> Result<()> {
        let _gate = self.engine.enter(false)?;
        self.engine.journal.sync_all(&self.engine)
    }

    /// Remove segments whose records are all older than the retention.
    ///
    /// Only a key's oldest segments are removed, so no gap ever opens in a
    /// log; a key's newest segment is kept (if it has expired records, an
    /// empty successor is created first), so sequence numbers are never
    /// reused and old references never resolve to new records.
    ///
    /// # Errors
    /// A read-only handle, I/O errors.
    pub fn compact(&self) -> Result<()> {
        let _gate = self.engine.enter(true)?;
        crate::retention::compact(&self.engine)
    }

    /// Number of keys with an open active segment.
    pub fn active_segment_count(&self) -> usize {
        self.engine
            .all_keys()
            .iter()
            .filter(|l| l.lock_writer().active().is_some())
            .count()
    }

    /// Close the handle and delete the WAL's data, as nano-wal 0.5
    /// documents. Use [`Wal::close`] to keep the data.
    ///
    /// First it stops new changes and waits for the ones in flight: appends,
    /// batches, syncs and compactions running on other threads finish
    /// before anything is removed, and every later one fails with
    /// [`WalError::Closed`]. No append is acknowledged and then left behind.
    ///
    /// Then it removes only the WAL's own files: the segments this handle
    /// knows (those it opened or created and still holds), the journal files
    /// and manifests, the `nano-wal.fsync-failed` note and `nano-wal.lock`,
    /// and finally the
    /// directory itself if that left it empty. Anything else in the
    /// directory (a `README.txt`, a `notes/` folder) stays, and so does the
    /// directory then, without an error.
    ///
    /// # Errors
    /// A read-only handle (it never deletes another writer's data), a closed
    /// handle, I/O errors removing a file (the others are still removed).
    pub fn shutdown(&self) -> Result<()> {
        self.engine.check_writable()?;
        if !self.engine.close() {
            return Err(WalError::Closed);
        }
        checkpoint::wait_background(&self.engine);
        self.engine.applier.stop();
        let engine = &self.engine;
        let storage = &engine.config.storage;
        let dir = &engine.config.dir;
        // No checkpoint may create a journal file or manifest meanwhile.
        let _checkpoint = engine.journal.checkpoint_lock();
        let mut doomed: Vec<PathBuf> = engine
            .all_keys()
            .iter()
            .flat_map(|log| log.segments_from(0))
            .map(|seg| seg.path.clone())
            .collect();
        let names = storage.list_dir(dir).map_err(|e| io_at(dir, "list", e))?;
        let journal_files = JournalFiles::from_listing(&names);
        doomed.extend(
            journal_files
                .journals
                .values()
                .chain(journal_files.manifests.values())
                .map(|name| dir.join(name)),
        );
        doomed.push(dir.join(crate::marker::FSYNC_FAILED_FILE_NAME));
        // Removed while we still hold the lock: removed after unlocking, it
        // could be another writer's lock file by then.
        doomed.push(dir.join(LOCK_FILE_NAME));
        // No trim: the files are about to be removed.
        drop_files(&self.engine);
        let mut removed = Ok(());
        for path in &doomed {
            if let Err(e) = remove_if_present(&**storage, path) {
                removed = removed.and(Err(io_at(path, "remove", e)));
            }
        }
        unlock(&self.owner.lock);
        removed?;
        match storage.remove_dir(dir) {
            Ok(()) => Ok(()),
            // Files that are not the WAL's stay, and with them the directory.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::DirectoryNotEmpty
                        | io::ErrorKind::AlreadyExists
                        | io::ErrorKind::NotFound
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(io_at(dir, "remove", e)),
        }
    }

    /// Close the handle, keeping the data: wait for changes in flight, run
    /// a last checkpoint (every segment made durable, a manifest that marks
    /// the close as clean, the journal removed), close every file and
    /// release the lock. The next open then reads the manifest alone: no
    /// journal to replay, no segment to scan.
    ///
    /// If other handles of this process share the log (a second open of the
    /// same directory), only this handle goes: the last one to close closes
    /// the log.
    ///
    /// Dropping a `Wal` also closes it, without the checkpoint: what was
    /// appended stays in the journal, and the next open replays it.
    ///
    /// # Errors
    /// A failed checkpoint (the journal stays, and the next open replays
    /// it); the handle is closed either way.
    pub fn close(self) -> Result<()> {
        let Self { engine, owner } = self;
        drop(engine);
        match Arc::try_unwrap(owner) {
            // The last handle: close the log, then drop the owner (whose
            // own release finds the log closed already).
            Ok(owner) => release(&owner.engine, &owner.lock, true),
            Err(_) => Ok(()),
        }
    }
}

/// Close the log (waiting for changes in flight), optionally run the
/// closing checkpoint, close every file and release the lock.
fn release(
    engine: &Arc<Engine>,
    lock: &Mutex<Option<Box<dyn LockGuard>>>,
    checkpoint: bool,
) -> Result<()> {
    if !engine.close() {
        return Ok(());
    }
    // A background checkpoint must end before the lock is released, and
    // so must the applier (the closing checkpoint applies every tail).
    checkpoint::wait_background(engine);
    engine.applier.stop();
    let done = if checkpoint && !engine.is_read_only() {
        checkpoint::run(engine, checkpoint::Kind::Clean)
    } else {
        Ok(())
    };
    drop_files(engine);
    unlock(lock);
    done
}

/// Close every file handle and forget the key table (after `close`).
fn drop_files(engine: &Engine) {
    engine.journal.drop_file();
    drop(engine.cache.drain());
    engine.clear_keys();
}

/// Release the directory's lock.
fn unlock(lock: &Mutex<Option<Box<dyn LockGuard>>>) {
    drop(lock.lock().unwrap_or_else(PoisonError::into_inner).take());
}
