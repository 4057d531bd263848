//! Counters an operator reads through [`crate::Wal::metrics`]. Dependency
//! free: the engine counts, a snapshot copies.
//!
//! Appends are counted per key under the key's writer lock (no shared
//! atomic on the append path); syncs, which cost an fsync each anyway, and
//! durable acknowledgements are counted in shared atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what a [`crate::Wal`] handle has done since it was opened.
///
/// Short records wait in memory for their segment file (`unapplied_bytes`,
/// at most `max_unapplied_bytes`; a background thread writes each within
/// about 50 ms). What is not yet durable in the segments is in the
/// journal: `journal_bytes_since_checkpoint`.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let wal = nano_wal::Wal::builder(dir.path()).open()?;
/// wal.log_entry("k", None, bytes::Bytes::from("v"))?;
/// let m = wal.metrics();
/// assert_eq!((m.records_appended, m.durable_records), (1, 1));
/// assert!(m.journal_syncs >= 1);
/// # Ok::<(), nano_wal::WalError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Records appended, by every write method.
    pub records_appended: u64,
    /// Bytes written for them: encoded records (fixed fields, header and
    /// content).
    pub bytes_appended: u64,
    /// Records whose append call returned after an fsync covering them
    /// (durable appends, and the records of durable batches).
    pub durable_records: u64,
    /// `append_batch` calls that wrote.
    pub batches: u64,
    /// fdatasyncs of segment files: checkpoints, handles closed with
    /// unsynced writes, and recovery's cuts. Never one per append.
    pub segment_syncs: u64,
    /// fsyncs of the WAL directory (new journal files, checkpoints).
    pub directory_syncs: u64,
    /// Segment files created.
    pub segments_created: u64,
    /// Frames written to the journal: one per append call or batch.
    pub journal_frames: u64,
    /// Bytes written to the journal (frames, their records included).
    pub journal_bytes: u64,
    /// fdatasyncs of the journal: group commits of durable appends, batches
    /// and `sync()`, one per journal file made or left. `durable_records /
    /// journal_syncs` is the records each fsync covered.
    pub journal_syncs: u64,
    /// Journal bytes written since the last checkpoint: what a crash now
    /// would replay.
    pub journal_bytes_since_checkpoint: u64,
    /// Checkpoints completed (including the one each writable open and each
    /// `close()` runs); each writes one manifest, with one fdatasync.
    pub checkpoints: u64,
    /// Microseconds spent in those checkpoints, in total.
    pub checkpoint_micros: u64,
    /// Checkpoints that an append started and that failed. A full disk
    /// leaves the journal as it was (the checkpoint is tried again once the
    /// journal has grown by `journal_checkpoint_bytes` more); any other
    /// failure poisons every writer, and the next call reports it. The
    /// append that started the checkpoint succeeded either way.
    pub checkpoint_failures: u64,
    /// Bytes of records in the journal and in memory, not yet written to
    /// their segment files (at most `max_unapplied_bytes`).
    pub unapplied_bytes: u64,
    /// How long the oldest of those records has waited, in milliseconds
    /// (0 if none): the applier's lag, about 50 ms at most while the
    /// background thread runs.
    pub unapplied_oldest_ms: u64,
    /// Segment files open right now (at most `max_open_files`).
    pub open_files: usize,
    /// Keys this handle knows, with or without records.
    pub keys: usize,
}

/// Per-key append counts, kept by the key's writer under its lock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AppendCounts {
    pub records: u64,
    pub bytes: u64,
}

impl AppendCounts {
    /// Count `records` records of `bytes` encoded bytes.
    pub fn add(&mut self, records: u64, bytes: u64) {
        self.records += records;
        self.bytes += bytes;
    }
}

/// The engine's shared counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    durable_records: AtomicU64,
    batches: AtomicU64,
    segment_syncs: AtomicU64,
    directory_syncs: AtomicU64,
    segments_created: AtomicU64,
    journal_frames: AtomicU64,
    journal_bytes: AtomicU64,
    journal_syncs: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_micros: AtomicU64,
    checkpoint_failures: AtomicU64,
}

/// Which shared counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    DurableRecords,
    Batches,
    SegmentSyncs,
    DirectorySyncs,
    SegmentsCreated,
    JournalFrames,
    JournalBytes,
    JournalSyncs,
    Checkpoints,
    CheckpointMicros,
    CheckpointFailures,
}

impl Counters {
    /// Add `n` to a counter. Relaxed: counters order nothing.
    pub fn add(&self, which: Count, n: u64) {
        self.counter(which).fetch_add(n, Ordering::Relaxed);
    }

    fn counter(&self, which: Count) -> &AtomicU64 {
        match which {
            Count::DurableRecords => &self.durable_records,
            Count::Batches => &self.batches,
            Count::SegmentSyncs => &self.segment_syncs,
            Count::DirectorySyncs => &self.directory_syncs,
            Count::SegmentsCreated => &self.segments_created,
            Count::JournalFrames => &self.journal_frames,
            Count::JournalBytes => &self.journal_bytes,
            Count::JournalSyncs => &self.journal_syncs,
            Count::Checkpoints => &self.checkpoints,
            Count::CheckpointMicros => &self.checkpoint_micros,
            Count::CheckpointFailures => &self.checkpoint_failures,
        }
    }

    /// A snapshot with the shared counters and `appends`, the per-key
    /// counts summed; the caller fills in what it knows (open files, keys).
    pub fn snapshot(&self, appends: AppendCounts) -> Metrics {
        let get = |which| self.counter(which).load(Ordering::Relaxed);
        Metrics {
            records_appended: appends.records,
            bytes_appended: appends.bytes,
            durable_records: get(Count::DurableRecords),
            batches: get(Count::Batches),
            segment_syncs: get(Count::SegmentSyncs),
            directory_syncs: get(Count::DirectorySyncs),
            segments_created: get(Count::SegmentsCreated),
            journal_frames: get(Count::JournalFrames),
            journal_bytes: get(Count::JournalBytes),
            journal_syncs: get(Count::JournalSyncs),
            journal_bytes_since_checkpoint: 0,
            checkpoints: get(Count::Checkpoints),
            checkpoint_micros: get(Count::CheckpointMicros),
            checkpoint_failures: get(Count::CheckpointFailures),
            unapplied_bytes: 0,
            unapplied_oldest_ms: 0,
            open_files: 0,
            keys: 0,
        }
    }
}
