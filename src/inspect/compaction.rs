//! What retention removes: [`Inspector::compaction_plan`] from segment
//! metadata, and [`compact`], which removes it as the directory's writer.
//! The rule is `rules::retention::removal`, the one `Wal::compact` applies.

use std::collections::{BTreeMap, BTreeSet};

use super::{Inspector, KeySegments, SegmentInfo};
use crate::error::{Result, io_at};
use crate::options::WalBuilder;
use crate::rules::retention::{self as retention_rules, SegmentAge};

/// What retention removes from one key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCompaction {
    /// The key, as text.
    pub key: String,
    /// The key's hash.
    pub key_hash: u64,
    /// The segments removed, oldest first.
    pub removed: Vec<SegmentInfo>,
    /// Segments of the key that stay.
    pub kept_segments: usize,
    /// Every segment, the newest included, had expired, so an empty successor
    /// segment is created first (a key's sequence never goes back).
    pub creates_successor: bool,
}

/// What a compaction removes (or, after [`compact`], removed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionPlan {
    /// The time the plan was made for, in milliseconds since the Unix epoch.
    pub now_unix_ms: u64,
    /// The retention, in milliseconds.
    pub retention_ms: u64,
    /// The keys that lose at least one segment, sorted by key.
    pub keys: Vec<KeyCompaction>,
}

impl CompactionPlan {
    /// Number of segment files removed.
    pub fn segments_removed(&self) -> usize {
        self.keys.iter().map(|k| k.removed.len()).sum()
    }

    /// Bytes of valid data in the removed segment files.
    pub fn bytes_removed(&self) -> u64 {
        self.keys
            .iter()
            .flat_map(|k| &k.removed)
            .map(|s| s.size_bytes)
            .sum()
    }

    /// Whether nothing is removed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Inspector {
    /// What [`Wal::compact`](crate::Wal::compact) would remove now (by the inspector's clock)
    /// with the inspector's retention, from segment metadata alone.
    ///
    /// The rule is the engine's: a segment has expired once its
    /// `rotate_at` time plus the retention has passed; only a key's oldest
    /// segments are removed, up to the first one that has not expired; if
    /// every segment has expired, the newest is removed too only if it holds
    /// records, after an empty successor is created.
    pub fn compaction_plan(&self) -> CompactionPlan {
        let retention_ms = self.retention_ms();
        let now_unix_ms = self.engine.config.clock.now_unix_ms();
        let keys = self
            .segments()
            .into_iter()
            .filter_map(|k| {
                let ages: Vec<SegmentAge> = k
                    .segments
                    .iter()
                    .map(|s| SegmentAge {
                        rotate_at_ms: s.rotate_at_unix_ms,
                        has_records: s.has_records(),
                    })
                    .collect();
                let removal = retention_rules::removal(&ages, now_unix_ms, retention_ms, true);
                (removal.count > 0).then(|| KeyCompaction {
                    kept_segments: k.segments.len() - removal.count,
                    removed: k.segments[..removal.count].to_vec(),
                    key: k.key,
                    key_hash: k.key_hash,
                    creates_successor: removal.creates_successor,
                })
            })
            .collect();
        CompactionPlan {
            now_unix_ms,
            retention_ms,
            keys,
        }
    }
}

/// Open the directory as its writer with `builder`'s settings (retention,
/// clock), remove what retention allows ([`Wal::compact`](crate::Wal::compact)), close it, and
/// return what was removed.
///
/// Opening as the writer repairs torn tails, as any writer's open does.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # nano_wal::Wal::builder(dir.path()).open()?.close()?;
/// use nano_wal::{Wal, inspect};
/// let removed = inspect::compact(Wal::builder(dir.path()))?;
/// assert!(removed.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// A missing directory, [`WalError::Locked`](crate::WalError::Locked) if another writer holds the
/// directory, invalid options, I/O errors, corruption.
pub fn compact(builder: WalBuilder) -> Result<CompactionPlan> {
    builder.validate()?;
    let dir = builder.config.dir.clone();
    // A writer's open creates a missing directory; compacting one is a mistake.
    std::fs::read_dir(&dir).map_err(|e| io_at(&dir, "list", e))?;
    let retention_ms = builder.config.options.retention_ms();
    let now_unix_ms = builder.config.clock.now_unix_ms();
    let wal = builder.clone().open()?;
    let before = Inspector::from_builder(builder.clone())?.segments();
    wal.compact()?;
    wal.close()?;
    let after = Inspector::from_builder(builder)?.segments();
    let after: BTreeMap<u64, KeySegments> = after.into_iter().map(|k| (k.key_hash, k)).collect();
    let keys = before
        .into_iter()
        .filter_map(|k| {
            let remaining = after.get(&k.key_hash);
            let kept: BTreeSet<u64> = remaining
                .map(|a| a.segments.iter().map(|s| s.sequence).collect())
                .unwrap_or_default();
            let newest_before = k.segments.last().map_or(0, |s| s.sequence);
            let creates_successor = kept.last().is_some_and(|&s| s > newest_before);
            let (removed, stayed): (Vec<SegmentInfo>, Vec<SegmentInfo>) = k
                .segments
                .into_iter()
                .partition(|s| !kept.contains(&s.sequence));
            (!removed.is_empty()).then_some(KeyCompaction {
                key: k.key,
                key_hash: k.key_hash,
                removed,
                kept_segments: stayed.len(),
                creates_successor,
            })
        })
        .collect();
    Ok(CompactionPlan {
        now_unix_ms,
        retention_ms,
        keys,
    })
}
