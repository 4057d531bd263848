//! nano-wal 0.5's `WalOptions`, the recovery policy, and the builder for
//! everything new.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Result, WalError};
use crate::storage::{StdStorage, Storage};

/// Retention and time-based rotation, exactly as in nano-wal 0.5.
///
/// ```
/// use nano_wal::WalOptions;
/// use std::time::Duration;
/// let options = WalOptions::default()
///     .retention(Duration::from_secs(3600))
///     .segments_per_retention_period(4);
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// How long entries are kept before [`crate::Wal::compact`] may remove
    /// them. Default: 1 week.
    pub entry_retention: Duration,
    /// Segments per retention period: a key's active segment is rotated
    /// after `entry_retention / segments_per_retention_period`. Default: 10.
    pub segments_per_retention_period: u32,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            entry_retention: Duration::from_secs(60 * 60 * 24 * 7),
            segments_per_retention_period: 10,
        }
    }
}

impl WalOptions {
    /// Options with a custom retention and the default segment count.
    pub fn with_retention(retention: Duration) -> Self {
        Self {
            entry_retention: retention,
            ..Self::default()
        }
    }

    /// Options with a custom segment count and the default retention.
    pub fn with_segments_per_retention_period(segments: u32) -> Self {
        Self {
            segments_per_retention_period: segments,
            ..Self::default()
        }
    }

    /// Set the retention (chainable).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.entry_retention = retention;
        self
    }

    /// Set the segments per retention period (chainable).
    #[must_use]
    pub fn segments_per_retention_period(mut self, segments: u32) -> Self {
        self.segments_per_retention_period = segments;
        self
    }

    /// Check the options.
    ///
    /// # Errors
    /// [`WalError::InvalidConfig`] if the retention is under a second or the
    /// segment count is zero.
    pub fn validate(&self) -> Result<()> {
        if self.entry_retention.as_secs() == 0 {
            return Err(WalError::InvalidConfig(
                "entry_retention must be greater than 0".into(),
            ));
        }
        if self.segments_per_retention_period == 0 {
            return Err(WalError::InvalidConfig(
                "segments_per_retention_period must be greater than 0".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn retention_ms(&self) -> u64 {
        u64::try_from(self.entry_retention.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn segment_period_ms(&self) -> u64 {
        (self.retention_ms() / u64::from(self.segments_per_retention_period)).max(1)
    }
}

/// What opening does with damaged data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// A damaged or incomplete record at the very end of a key's last
    /// segment, with no valid record after it, is a torn write from a crash:
    /// it is cut off and reported in [`crate::RecoveryReport`]. Damage with
    /// valid records after it is corruption and fails the open.
    #[default]
    TolerateTornTail,
    /// Any damage, even a torn tail, fails the open. Nothing is changed.
    AbsoluteConsistency,
}

/// How [`crate::Wal::compact`] treats the keys that start with a prefix
/// (set with [`WalBuilder::key_retention`]).
///
/// Only whole segments are removed, oldest first, and never a key's newest
/// segment (so sequence numbers are never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRetention {
    /// Never removed by `compact()`: for a Raft log and its state, which
    /// only their owner removes (`purge_before`, `truncate_from`).
    Forever,
    /// Segments whose records are all older than this go, as with the WAL's
    /// [`WalBuilder::retention`]. At least one second.
    Age(std::time::Duration),
    /// The oldest segments go while the key's other segments still hold at
    /// least this many bytes of records: the newest `bytes` are kept.
    MaxBytes(u64),
    /// The oldest segments go while the key's other segments still hold at
    /// least this many records: the newest `records` are kept. Counting
    /// reads the key's segments (compaction only).
    MaxRecords(u64),
}

/// Smallest accepted `max_segment_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
/// Default `max_segment_bytes`: 64 MiB.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Default `max_open_files`.
pub const DEFAULT_MAX_OPEN_FILES: usize = 1024;
/// Default `journal_checkpoint_bytes`: 64 MiB.
pub const DEFAULT_JOURNAL_CHECKPOINT_BYTES: u64 = 64 << 20;
/// Default `max_unapplied_bytes`: 0, every record is written to its
/// segment file by its append.
pub const DEFAULT_MAX_UNAPPLIED_BYTES: u64 = 0;
/// Smallest accepted `journal_checkpoint_bytes`.
pub const MIN_JOURNAL_CHECKPOINT_BYTES: u64 = 4096;

/// Everything the engine is configured with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub dir: PathBuf,
    pub options: WalOptions,
    pub max_segment_bytes: u64,
    pub max_open_files: usize,
    pub journal_checkpoint_bytes: u64,
    pub background_checkpoints: bool,
    pub max_unapplied_bytes: u64,
    pub recovery: RecoveryMode,
    pub read_only: bool,
    pub clock: Arc<dyn Clock>,
    pub storage: Arc<dyn Storage>,
    /// Retention by key prefix; the longest matching prefix applies.
    pub key_retention: Vec<(Vec<u8>, KeyRetention)>,
}

impl Config {
    /// The retention of `key`: its longest matching prefix's, or the WAL's
    /// age-based retention.
    pub fn retention_of(&self, key: &[u8]) -> KeyRetention {
        // Consumer positions are removed only with their consumer.
        if key.starts_with(crate::consumer::CONSUMER_KEY_PREFIX.as_bytes()) {
            return KeyRetention::Forever;
        }
        self.key_retention
            .iter()
            .filter(|(prefix, _)| key.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(KeyRetention::Age(self.options.entry_retention), |(_, r)| *r)
    }
}

/// Builds a [`crate::Wal`] with settings beyond nano-wal 0.5's.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use nano_wal::Wal;
/// use std::time::Duration;
/// let wal = Wal::builder(dir.path())
///     .retention(Duration::from_secs(3600))
///     .max_segment_bytes(1 << 20)
///     .max_open_files(64)
///     .open()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct WalBuilder {
    pub(crate) config: Config,
}

impl WalBuilder {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            config: Config {
                dir: dir.into(),
                options: WalOptions::default(),
                max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
                max_open_files: DEFAULT_MAX_OPEN_FILES,
                journal_checkpoint_bytes: DEFAULT_JOURNAL_CHECKPOINT_BYTES,
                background_checkpoints: true,
                max_unapplied_bytes: DEFAULT_MAX_UNAPPLIED_BYTES,
                recovery: RecoveryMode::default(),
                read_only: false,
                clock: Arc::new(SystemClock),
                storage: Arc::new(StdStorage),
                key_retention: Vec::new(),
            },
        }
    }

    /// Retention and rotation as a 0.5 [`WalOptions`]. Default: `WalOptions::default()`.
    pub fn options(mut self, options: WalOptions) -> Self {
        self.config.options = options;
        self
    }

    /// How long entries are kept. Default: 1 week.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config.options.entry_retention = retention;
        self
    }

    /// Segments per retention period (time-based rotation). Default: 10.
    pub fn segments_per_retention_period(mut self, segments: u32) -> Self {
        self.config.options.segments_per_retention_period = segments;
        self
    }

    /// A key's active segment is rotated before it would grow past this many
    /// bytes; a single larger record gets a segment of its own. At least
    /// [`MIN_SEGMENT_BYTES`]. Default: 64 MiB.
    pub fn max_segment_bytes(mut self, bytes: u64) -> Self {
        self.config.max_segment_bytes = bytes;
        self
    }

    /// Most segment files held open at once (those not used lately are closed,
    /// a sixteenth of them at a time, syncing any with unsynced writes).
    /// If the process runs out of descriptors first, the cache shrinks.
    /// Default: 1024.
    pub fn max_open_files(mut self, files: usize) -> Self {
        self.config.max_open_files = files;
        self
    }

    /// Retention for the keys that start with `prefix` (an empty prefix
    /// matches every key); the longest matching prefix applies, and a
    /// later call for the same prefix replaces the earlier one. Keys no
    /// prefix matches use [`WalBuilder::retention`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use nano_wal::{KeyRetention, Wal};
    /// let wal = Wal::builder(dir.path())
    ///     .key_retention("raft/", KeyRetention::Forever)
    ///     .key_retention("metrics/", KeyRetention::MaxBytes(64 << 20))
    ///     .open()?;
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// Default: none (every key uses [`WalBuilder::retention`]).
    pub fn key_retention(mut self, prefix: impl AsRef<[u8]>, retention: KeyRetention) -> Self {
        let prefix = prefix.as_ref().to_vec();
        self.config.key_retention.retain(|(p, _)| *p != prefix);
        self.config.key_retention.push((prefix, retention));
        self
    }

    /// Once the journal has grown by this many bytes since the last
    /// checkpoint, the append that crosses the bound starts a checkpoint: it
    /// makes the segments written since durable and removes the journal
    /// files before it. A larger bound means fewer checkpoints and a longer
    /// replay after a crash. At least [`MIN_JOURNAL_CHECKPOINT_BYTES`].
    /// Default: [`DEFAULT_JOURNAL_CHECKPOINT_BYTES`] (64 MiB).
    pub fn journal_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.config.journal_checkpoint_bytes = bytes;
        self
    }

    /// Run checkpoints on a thread of their own (one at a time), so the
    /// append that starts one returns at once. Appends wait for it only if
    /// the journal grows by twice `journal_checkpoint_bytes` before it
    /// ends. With `false` the append that crosses the bound runs the
    /// checkpoint itself, and no background thread applies buffered records
    /// to their segments after a delay (see
    /// [`WalBuilder::max_unapplied_bytes`]): every I/O happens on the
    /// calling threads, in a deterministic order, which the simulated disk
    /// uses. `close()` and dropping the handle wait for a running
    /// checkpoint. Default: true.
    pub fn background_checkpoints(mut self, background: bool) -> Self {
        self.config.background_checkpoints = background;
        self
    }

    /// How many bytes of records the handle may hold in memory, written to
    /// the journal but not yet to their segment files (*unapplied*).
    ///
    /// With a bound above 0, an append writes its journal frame with one
    /// call and puts a record shorter than 16 KiB in its segment's
    /// in-memory tail instead of writing it to the file. A tail is written
    /// to its file with one call once it holds 16 KiB; when the handle's
    /// tails reach this bound (the appending key's tail goes to its file
    /// first, and the record too if there is still no room: back-pressure,
    /// never growth; appends racing on other keys can pass the bound by at
    /// most one record each); when its key moves on to a new segment (only
    /// the newest segment of a key waits in memory, so another process
    /// never sees a key's newer records before its older ones); by every
    /// checkpoint and by `close()`; and, with
    /// [`WalBuilder::background_checkpoints`], by a background thread once
    /// its oldest record is 50 ms old.
    ///
    /// Every read API of this handle sees buffered records at once, and
    /// durability is unchanged (it comes from the journal; a crash replays
    /// it into the segments). What changes is what *other* handles see: a
    /// read-only handle or a second process (the CLI, `wait_until` in a
    /// reader) sees a record once its tail reached the file, about 50 ms
    /// later with background checkpoints, at the next checkpoint without.
    /// A full disk met while writing a tail fails the append that needed
    /// the room (the tail keeps its records and is tried again); any other
    /// write failure poisons the key.
    ///
    /// Many small non-durable appends gain most: one write call per append
    /// instead of two, and one per 16 KiB for each key. 0 writes every
    /// record to its segment file in the append, so every other handle
    /// sees it when the append returns. Default:
    /// [`DEFAULT_MAX_UNAPPLIED_BYTES`] (0).
    pub fn max_unapplied_bytes(mut self, bytes: u64) -> Self {
        self.config.max_unapplied_bytes = bytes;
        self
    }

    /// What opening does with damaged data. Default: [`RecoveryMode::TolerateTornTail`].
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.config.recovery = mode;
        self
    }

    /// Open without taking the writer lock and without changing anything on
    /// disk; every change fails with [`WalError::ReadOnly`]. Default: false.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.read_only = read_only;
        self
    }

    /// The clock used for record timestamps, rotation and retention.
    /// Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }

    /// The file system under the engine; for fault-injection tests.
    /// Default: [`StdStorage`].
    #[doc(hidden)]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.config.storage = storage;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.config.dir.as_os_str().is_empty() {
            // Would put the lock and the segments in the current directory.
            return Err(WalError::InvalidConfig(
                "the WAL directory path is empty".into(),
            ));
        }
        self.config.options.validate()?;
        if self.config.max_segment_bytes < MIN_SEGMENT_BYTES {
            return Err(WalError::InvalidConfig(format!(
                "max_segment_bytes must be at least {MIN_SEGMENT_BYTES}"
            )));
        }
        if self.config.journal_checkpoint_bytes < MIN_JOURNAL_CHECKPOINT_BYTES {
            return Err(WalError::InvalidConfig(format!(
                "journal_checkpoint_bytes must be at least {MIN_JOURNAL_CHECKPOINT_BYTES}"
            )));
        }
        for (prefix, r) in &self.config.key_retention {
            if matches!(r, KeyRetention::Age(d) if d.as_secs() == 0) {
                return Err(WalError::InvalidConfig(format!(
                    "key retention of prefix {:?}: an age under a second",
                    String::from_utf8_lossy(prefix)
                )));
            }
        }
        if self.config.max_open_files == 0 {
            return Err(WalError::InvalidConfig(
                "max_open_files must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Open the WAL. A writer takes the directory's lock and fails with
    /// [`WalError::Locked`] if another writer holds it.
    ///
    /// # Errors
    /// Invalid configuration ([`WalError::InvalidConfig`], also for an empty
    /// path), a held lock, I/O errors, corruption that the recovery mode does
    /// not tolerate, and [`WalError::ForeignFile`] for a file in the
    /// directory that the WAL will not touch (a symbolic link, a directory
    /// named like a segment, a segment-named file it did not write).
    pub fn open(self) -> Result<crate::Wal> {
        crate::Wal::open_with(self, false)
    }
}
