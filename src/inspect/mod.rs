//! Read-only inspection of a WAL directory, for tools such as the `nano-wal`
//! command line: what the directory holds ([`Inspector::describe`]), a key's
//! records ([`Inspector::dump`]), whether every record passes its checks
//! ([`Verifier`]), what retention would remove
//! ([`Inspector::compaction_plan`], [`compact`]), and the journal's state:
//! what a crash now would replay ([`Inspector::journal_state`]).
//!
//! Everything here returns plain data and prints nothing. Nothing takes the
//! writer lock or changes the directory, except [`compact`], which opens the
//! directory as its writer. Inspection works on a directory another process
//! is writing: it sees the records that were complete when it looked, and
//! reports a record caught half-written as a torn tail.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use nano_wal::inspect::{Inspector, Verifier};
//! let wal = nano_wal::Wal::builder(dir.path()).open()?;
//! wal.append_entry("orders", None, bytes::Bytes::from("order #1"), true)?;
//!
//! // Another handle, or another process, inspects it while it is open.
//! let stats = Inspector::open(dir.path())?.describe()?;
//! assert_eq!(stats.keys[0].key, "orders");
//! assert_eq!(stats.total_records(), 1);
//! let report = Verifier::new(dir.path(), None)?.run(&mut |_bytes_checked| {})?;
//! assert!(report.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::Engine;
use crate::entry_ref::{EntryRef, Record};
use crate::error::{Result, WalError};
use crate::iter::Records;
use crate::key::key_hash;
use crate::keylog::KeyLog;
use crate::options::WalBuilder;
use crate::recovery::{self, RecoveryReport, TornTail};
use crate::segment::Segment;
use crate::wal::Wal;

/// A read-only view of a WAL directory.
///
/// Opening one is what `Wal::builder(dir).read_only(true).open()` does: it
/// never takes the writer lock and never changes anything on disk, and it
/// fails the same way on corruption that such an open fails.
#[derive(Debug)]
pub struct Inspector {
    engine: Arc<Engine>,
    report: RecoveryReport,
}

/// One segment file, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// The segment's sequence number; a key's first segment is 1.
    pub sequence: u64,
    /// On-disk format version: 1 (written by nano-wal 0.5) or 2.
    pub format_version: u32,
    /// Length of the segment header; record offsets count from its end.
    pub header_bytes: u64,
    /// Bytes of valid data in the file: the header and whole records. A torn
    /// tail is not counted.
    pub size_bytes: u64,
    /// Every record in the segment was stamped before this time
    /// (milliseconds since the Unix epoch); retention removes the segment
    /// once this time plus the retention has passed.
    pub rotate_at_unix_ms: u64,
}

impl SegmentInfo {
    /// Bytes of records in the segment (its size without the header).
    pub fn record_bytes(&self) -> u64 {
        self.size_bytes.saturating_sub(self.header_bytes)
    }

    /// Whether the segment holds at least one record.
    pub fn has_records(&self) -> bool {
        self.size_bytes > self.header_bytes
    }

    fn of(seg: &Segment) -> Self {
        Self {
            path: seg.path.clone(),
            sequence: seg.sequence,
            format_version: seg.version,
            header_bytes: seg.header_len,
            size_bytes: seg.end(),
            rotate_at_unix_ms: seg.rotate_at_ms,
        }
    }
}

/// A key and its segments, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySegments {
    /// The key, as text (bytes that are not UTF-8 are replaced, as in
    /// [`Wal::enumerate_keys`]).
    pub key: String,
    /// The key's hash, as in file names and [`EntryRef::key_hash`].
    pub key_hash: u64,
    /// The key's segments, oldest first.
    pub segments: Vec<SegmentInfo>,
}

/// What one key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStats {
    /// The key, as text (bytes that are not UTF-8 are replaced).
    pub key: String,
    /// The key's hash, as in file names and [`EntryRef::key_hash`].
    pub key_hash: u64,
    /// The key's segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Number of records.
    pub records: u64,
    /// Bytes of record content (headers and framing not counted).
    pub content_bytes: u64,
    /// Bytes of valid data in the key's segment files.
    pub size_bytes: u64,
    /// Timestamp of the oldest record, in milliseconds since the Unix epoch;
    /// `None` if no record has one (nano-wal 0.5 stored none).
    pub oldest_record_unix_ms: Option<u64>,
    /// Timestamp of the newest record, in milliseconds since the Unix epoch.
    pub newest_record_unix_ms: Option<u64>,
    /// When compaction will first remove a segment of this key under the
    /// inspector's retention (it may already have passed); `None` if the key
    /// has nothing to remove.
    pub next_expiry_unix_ms: Option<u64>,
}

/// What a directory holds: [`Inspector::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalStats {
    /// The WAL directory.
    pub dir: PathBuf,
    /// The retention used for [`KeyStats::next_expiry_unix_ms`], in milliseconds.
    pub retention_ms: u64,
    /// Every key with at least one segment, sorted by key.
    pub keys: Vec<KeyStats>,
    /// Torn writes at the end of a key, found when opening (left on disk).
    pub torn_tails: Vec<TornTail>,
    /// Expired segments an interrupted compaction left behind, skipped when
    /// opening (left on disk; a writer's open removes them).
    pub expired_leftovers: Vec<PathBuf>,
}

impl WalStats {
    /// Segment files in the directory.
    pub fn total_segments(&self) -> usize {
        self.keys.iter().map(|k| k.segments.len()).sum()
    }

    /// Records in the directory.
    pub fn total_records(&self) -> u64 {
        self.keys.iter().map(|k| k.records).sum()
    }

    /// Bytes of valid data in the directory's segment files.
    pub fn total_size_bytes(&self) -> u64 {
        self.keys.iter().map(|k| k.size_bytes).sum()
    }

    /// Timestamp of the oldest record of any key.
    pub fn oldest_record_unix_ms(&self) -> Option<u64> {
        self.keys
            .iter()
            .filter_map(|k| k.oldest_record_unix_ms)
            .min()
    }

    /// Timestamp of the newest record of any key.
    pub fn newest_record_unix_ms(&self) -> Option<u64> {
        self.keys
            .iter()
            .filter_map(|k| k.newest_record_unix_ms)
            .max()
    }
}

impl Inspector {
    /// Open `dir` read-only with the default settings
    /// (`WalOptions::default()`'s retention, the system clock).
    ///
    /// # Errors
    /// As [`Inspector::from_builder`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_builder(Wal::builder(dir))
    }

    /// Open the builder's directory read-only with its retention and clock
    /// (whatever it says about `read_only`).
    ///
    /// The retention matters to recovery: segments an interrupted compaction
    /// left behind below a gap are skipped if they have all expired, and are
    /// otherwise a missing segment, which fails the open. It is also what
    /// [`Inspector::describe`] and [`Inspector::compaction_plan`] use.
    ///
    /// # Errors
    /// A directory that cannot be listed (missing, not a directory, no
    /// permission), I/O errors, and corruption that makes a read-only
    /// [`Wal`] open fail ([`WalError::CorruptedData`] naming the file and
    /// position).
    pub fn from_builder(builder: WalBuilder) -> Result<Self> {
        // The same steps as `builder.read_only(true).open()`, kept here so
        // the inspector can see segment metadata the `Wal` keeps private.
        let builder = builder.read_only(true);
        builder.validate()?;
        let read_only = Some("opened read-only for inspection".to_owned());
        let (engine, report) = recovery::open_engine(builder.config, read_only)?;
        Ok(Self { engine, report })
    }

    fn retention_ms(&self) -> u64 {
        self.engine.config.options.retention_ms()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.engine.config.dir
    }

    /// What opening found: segment count, torn tails and expired leftovers
    /// of an interrupted compaction (all left on disk).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    fn sorted_logs(&self) -> Vec<(String, Arc<KeyLog>)> {
        let mut logs: Vec<(String, Arc<KeyLog>)> = self
            .engine
            .all_keys()
            .into_iter()
            .map(|l| (String::from_utf8_lossy(&l.key).into_owned(), l))
            .collect();
        logs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.key.cmp(&b.1.key)));
        logs
    }

    /// Every key that has at least one record, sorted, for display: a key
    /// that is not UTF-8 is shown lossily (unlike [`Wal::enumerate_keys`],
    /// which leaves it out; [`Wal::keys`] has its bytes).
    pub fn keys(&self) -> Vec<String> {
        self.sorted_logs()
            .into_iter()
            .filter(|(_, l)| l.has_records())
            .map(|(k, _)| k)
            .collect()
    }

    /// Every key with at least one segment, and its segments, from the
    /// segment headers alone (no record is read).
    pub fn segments(&self) -> Vec<KeySegments> {
        self.sorted_logs()
            .into_iter()
            .map(|(key, log)| KeySegments {
                key,
                key_hash: log.key_hash,
                segments: log
                    .segments_from(0)
                    .iter()
                    .map(|s| SegmentInfo::of(s))
                    .collect(),
            })
            .collect()
    }

    /// Count every key's records and find their oldest and newest
    /// timestamps. Reads (and so checks) every record.
    ///
    /// # Errors
    /// [`WalError::CorruptedData`] naming the file and position if a record
    /// fails its checks, I/O errors.
    pub fn describe(&self) -> Result<WalStats> {
        let retention_ms = self.retention_ms();
        let mut keys = Vec::new();
        for (key, log) in self.sorted_logs() {
            let segments = log.segments_from(0);
            let mut stats = KeyStats {
                key,
                key_hash: log.key_hash,
                segments: segments.iter().map(|s| SegmentInfo::of(s)).collect(),
                records: 0,
                content_bytes: 0,
                size_bytes: segments.iter().map(|s| s.end()).sum(),
                oldest_record_unix_ms: None,
                newest_record_unix_ms: None,
                next_expiry_unix_ms: None,
            };
            for record in Records::new(self.engine.clone(), segments.clone(), 0) {
                let record = record?;
                stats.records += 1;
                stats.content_bytes += record.content.len() as u64;
                if let Some(t) = record.timestamp_unix_ms {
                    stats.oldest_record_unix_ms =
                        Some(stats.oldest_record_unix_ms.map_or(t, |o| o.min(t)));
                    stats.newest_record_unix_ms =
                        Some(stats.newest_record_unix_ms.map_or(t, |n| n.max(t)));
                }
            }
            // Compaction removes the oldest segment first; it removes a
            // key's only segment only if that one holds records.
            stats.next_expiry_unix_ms = stats
                .segments
                .first()
                .filter(|first| stats.segments.len() > 1 || first.has_records())
                .map(|first| {
                    crate::rules::retention::expires_at_ms(first.rotate_at_unix_ms, retention_ms)
                });
            keys.push(stats);
        }
        Ok(WalStats {
            dir: self.path().to_path_buf(),
            retention_ms,
            keys,
            torn_tails: self.report.torn_tails.clone(),
            expired_leftovers: self.report.expired_leftovers.clone(),
        })
    }

    /// The records of `key`, oldest first, as a fallible stream; from the
    /// record `from` onward if given.
    ///
    /// # Errors
    /// [`WalError::EntryNotFound`] if the directory has no such key, or
    /// `from` is not a record of `key`. Read errors come from the iterator.
    pub fn dump(&self, key: &[u8], from: Option<EntryRef>) -> Result<Records> {
        let hash = key_hash(key);
        let log = self
            .engine
            .key_log(hash)
            .filter(|l| l.key == key)
            .ok_or_else(|| {
                WalError::EntryNotFound(format!(
                    "no key {:?} in {}",
                    String::from_utf8_lossy(key),
                    self.path().display()
                ))
            })?;
        let Some(from) = from else {
            return Ok(Records::new(self.engine.clone(), log.segments_from(0), 0));
        };
        if from.key_hash != hash {
            return Err(WalError::EntryNotFound(format!(
                "{from} is not a record of key {:?} (whose hash is {hash})",
                String::from_utf8_lossy(key)
            )));
        }
        let (seg, _) = self.locate(from)?;
        Ok(Records::new(
            self.engine.clone(),
            log.segments_from(seg.sequence),
            from.offset,
        ))
    }

    /// The key whose hash is `key_hash`, as text.
    pub fn key_of(&self, key_hash: u64) -> Option<String> {
        self.engine
            .key_log(key_hash)
            .map(|l| String::from_utf8_lossy(&l.key).into_owned())
    }

    fn locate(&self, r: EntryRef) -> Result<(Arc<Segment>, u64)> {
        self.engine.locate(r)
    }

    /// Read one record, as [`Wal::read_record_at`] does.
    ///
    /// # Errors
    /// [`WalError::EntryNotFound`] if the reference does not resolve,
    /// [`WalError::CorruptedData`] if the record fails its checks.
    pub fn read_record_at(&self, entry_ref: EntryRef) -> Result<Record> {
        self.engine.read_record(entry_ref)
    }
}

mod compaction;
pub use compaction::{CompactionPlan, KeyCompaction, compact};
mod journal;
pub use journal::{JournalFileState, JournalState, ManifestState};
mod verify;
pub use verify::{Corruption, Verifier, VerifyReport};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{Clock, ManualClock};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    const DAY_MS: u64 = 24 * 3600 * 1000;

    fn removed(plan: &CompactionPlan) -> Vec<(String, Vec<u64>, bool)> {
        plan.keys
            .iter()
            .map(|k| {
                let seqs = k.removed.iter().map(|s| s.sequence).collect();
                (k.key.clone(), seqs, k.creates_successor)
            })
            .collect()
    }

    /// The plan made from segment metadata is what the engine's compaction
    /// then removes, round after round as the clock moves.
    #[test]
    fn compaction_plan_matches_what_compaction_removes() -> TestResult {
        let t = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(1_000 * DAY_MS));
        let builder = || Wal::builder(t.path()).clock(clock.clone());
        {
            let wal = builder().open()?;
            for day in 0..5 {
                wal.append_entry("daily", None, Bytes::from(format!("day {day}")), true)?;
                if day < 2 {
                    wal.append_entry("early", None, Bytes::from("x"), true)?;
                }
                clock.advance_ms(DAY_MS);
            }
            wal.close()?;
        }
        let mut rounds = Vec::new();
        // Compact at days 5, 8, 11, 14 and 44.
        for advance_days in [3, 3, 3, 30, 0] {
            let now = clock.now_unix_ms();
            let plan = Inspector::from_builder(builder())?.compaction_plan();
            let done = compact(builder())?;
            assert_eq!(removed(&plan), removed(&done), "at day {}", now / DAY_MS);
            assert_eq!(plan.bytes_removed(), done.bytes_removed());
            rounds.push(removed(&done));
            clock.advance_ms(advance_days * DAY_MS);
        }
        // Segment `d` of a key was created on day d - 1 and rotates 0.7 days
        // later; it expires a week after that.
        let s = |k: &str, seqs: &[u64], successor: bool| (k.to_owned(), seqs.to_vec(), successor);
        assert_eq!(
            rounds,
            vec![
                vec![],
                vec![s("daily", &[1], false), s("early", &[1], false)],
                vec![s("daily", &[2, 3, 4], false), s("early", &[2], true)],
                vec![s("daily", &[5], true)],
                // Only empty successors are left: expired, but kept.
                vec![],
            ]
        );
        let stats = Inspector::from_builder(builder())?.describe()?;
        assert!(stats.keys.iter().all(|k| k.records == 0));
        assert!(stats.keys.iter().all(|k| k.next_expiry_unix_ms.is_none()));
        assert_eq!(stats.total_segments(), 2);
        Ok(())
    }

    #[test]
    fn verifier_tells_a_torn_segment_creation_from_a_damaged_old_header() -> TestResult {
        let t = tempfile::tempdir()?;
        let wal = Wal::builder(t.path()).max_segment_bytes(4096).open()?;
        for _ in 0..3 {
            wal.append_entry("k", None, Bytes::from(vec![7u8; 3000]), true)?;
        }
        wal.close()?;
        // As a version without the journal left it: after a clean close with
        // a manifest no crash can leave a half-made segment.
        for e in std::fs::read_dir(t.path())? {
            let p = e?.path();
            if p.to_string_lossy().contains("nano-wal.manifest-") {
                std::fs::remove_file(p)?;
            }
        }
        let hash = key_hash(b"k");
        let seg = |seq: u64| t.path().join(format!("k-{hash}-{seq:04}.log"));
        // A crash while creating segment 4: half a header.
        let header = std::fs::read(seg(3))?;
        std::fs::write(seg(4), &header[..20])?;

        let report = Verifier::new(t.path(), None)?.run(&mut |_| {})?;
        assert!(report.is_ok(), "{report:?}");
        assert_eq!((report.segments, report.records), (4, 3));
        assert_eq!(report.torn_tails.len(), 1);
        assert_eq!(report.torn_tails[0].path, seg(4));
        assert_eq!(report.torn_tails[0].file_position, 0);
        assert_eq!(report.torn_tails[0].bytes_dropped, 20);
        assert!(!report.torn_tails[0].repaired);
        // The engine agrees: a read-only open reports the same torn tail.
        let inspector = Inspector::open(t.path())?;
        assert_eq!(inspector.recovery_report().torn_tails, report.torn_tails);

        // A damaged header in an older segment is corruption; the records
        // of the other segments are still checked.
        let mut bytes = std::fs::read(seg(1))?;
        bytes[30] ^= 1;
        std::fs::write(seg(1), bytes)?;
        let mut last_progress = 0;
        let verifier = Verifier::new(t.path(), Some(b"k"))?;
        let total = verifier.total_bytes();
        let report = verifier.run(&mut |b| last_progress = b)?;
        assert_eq!(report.records, 2);
        assert_eq!(report.corruptions.len(), 1);
        assert_eq!(report.corruptions[0].path, seg(1));
        assert_eq!(report.corruptions[0].file_position, 0);
        assert!(report.corruptions[0].reason.contains("checksum"));
        assert_eq!(last_progress, total, "progress reaches the total");
        assert_eq!(report.bytes_checked, total);
        assert!(Inspector::open(t.path()).is_err(), "opening fails too");
        Ok(())
    }

    /// Segments below a gap are an interrupted compaction's leftovers if all
    /// of them expired, and a missing segment otherwise; the verifier and
    /// recovery agree on which.
    #[test]
    fn verifier_and_recovery_agree_on_gaps() -> TestResult {
        let t = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(1_000 * DAY_MS));
        let builder = || Wal::builder(t.path()).clock(clock.clone());
        let wal = builder().open()?;
        for _ in 0..4 {
            wal.append_entry("k", None, Bytes::from("x"), true)?;
            clock.advance_ms(DAY_MS);
        }
        wal.close()?;
        let seg = |seq: u64| t.path().join(format!("k-{}-{seq:04}.log", key_hash(b"k")));
        // Segment 2 gone, 1 still there: as if a crash undid one removal.
        std::fs::remove_file(seg(2))?;

        // On day 1004 segment 1 (rotated on day 1000.7) has not expired.
        let report = Verifier::from_builder(builder(), None)?.run(&mut |_| {})?;
        assert_eq!(report.corruptions.len(), 1, "{report:?}");
        assert_eq!(report.corruptions[0].path, seg(3));
        assert_eq!(
            report.corruptions[0].reason,
            "segment 2 of this key is missing"
        );
        assert_eq!(report.records, 3, "the records are still checked");
        let err = Inspector::from_builder(builder())
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("segment 2 of this key is missing")));

        // A week later it has: a leftover, fine, and skipped by both.
        clock.advance_ms(7 * DAY_MS);
        let report = Verifier::from_builder(builder(), None)?.run(&mut |_| {})?;
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.expired_leftovers, vec![seg(1)]);
        assert_eq!(report.records, 2);
        let inspector = Inspector::from_builder(builder())?;
        assert_eq!(inspector.recovery_report().expired_leftovers, vec![seg(1)]);
        assert_eq!(inspector.describe()?.expired_leftovers, vec![seg(1)]);
        assert!(seg(1).exists(), "read-only: left on disk");
        Ok(())
    }
}
