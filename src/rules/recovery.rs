//! What opening and `verify` conclude from what they find in a key's
//! segment files (FORMAT.md §8). Pure: the callers read the files and hand
//! in the facts; these functions decide. Opening acts on the verdicts
//! (cuts, removes, refuses), `verify` reports them, so the two never
//! disagree.

use crate::format::segment_header::{HeaderDefect, SegmentHeader};
use crate::format::{FORMAT_VERSION_CURRENT, FORMAT_VERSION_LEGACY};
use crate::options::RecoveryMode;

/// Where a segment file sits in its key's log, from its name and the
/// segments before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderContext<'a> {
    /// Key hash and sequence from the file name.
    pub key_hash: u64,
    pub sequence: u64,
    /// The key of the key's earlier segments, if any was readable.
    pub key: Option<&'a [u8]>,
    /// The format version of the previous readable segment.
    pub prev_version: Option<u32>,
}

/// What a segment header's bytes mean in their context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderVerdict {
    /// The header is sound and fits its file name and key.
    Usable,
    /// A format version this build does not read: refused, never guessed.
    Unsupported(u32),
    /// Damaged, or does not fit its file name or key.
    Unreadable(String),
}

/// Judge a decoded header. A header that decodes must also fit its file
/// name and its key's other segments: a torn version-2 or -3 header can look
/// like a version-1 one (0.5 wrote zeros where the version now is), which
/// these checks catch.
pub(crate) fn judge_header(
    decoded: &Result<SegmentHeader, HeaderDefect>,
    ctx: HeaderContext<'_>,
) -> HeaderVerdict {
    let h = match decoded {
        Ok(h) => h,
        Err(HeaderDefect::UnsupportedVersion(v)) => return HeaderVerdict::Unsupported(*v),
        Err(other) => return HeaderVerdict::Unreadable(other.to_string()),
    };
    let (hash, seq) = (ctx.key_hash, ctx.sequence);
    let bad = HeaderVerdict::Unreadable;
    if h.version != FORMAT_VERSION_LEGACY && (h.key_hash != Some(hash) || h.sequence != Some(seq)) {
        return bad(format!(
            "header names key hash {:?} sequence {:?}, the file name {hash} {seq}",
            h.key_hash, h.sequence
        ));
    }
    if h.version == FORMAT_VERSION_LEGACY && crate::key::key_hash(&h.key) != hash {
        return bad(format!("version-1 header's key does not hash to {hash}"));
    }
    if let Some(prev) = ctx.prev_version.filter(|&p| p > h.version) {
        return bad(format!(
            "version-{} header after a version-{prev} segment",
            h.version
        ));
    }
    if ctx.key.is_some_and(|k| k != h.key) {
        return bad("key differs from the key's other segments".into());
    }
    HeaderVerdict::Usable
}

/// The message for a version this build does not read.
pub(crate) fn unsupported(version: u32) -> String {
    format!("format version {version}; this build reads versions 1 to {FORMAT_VERSION_CURRENT}")
}

/// What is known of a segment file whose header is unreadable.
#[derive(Debug, Clone)]
pub(crate) struct DamagedHeaderFacts {
    /// It is its key's newest segment.
    pub newest: bool,
    /// Why its bytes cannot be the start of a segment this WAL wrote, if
    /// they cannot (`origin::foreign`).
    pub foreign: Option<String>,
    /// A verifiable record after the damaged header, if any (only looked
    /// for when the file could be ours).
    pub valid_record_at: Option<u64>,
}

/// What to make of an unreadable header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DamagedHeaderVerdict {
    /// Not a file this WAL wrote: refused by name, never deleted.
    Foreign(String),
    /// Damage that loses data: opening fails.
    Corrupt(String),
    /// The newest segment's creation was cut short by a crash: it never
    /// held an acknowledged record, so it is removed (reported).
    TornCreation,
}

/// Judge an unreadable header; `defect` says what is wrong with it.
pub(crate) fn judge_damaged_header(
    facts: &DamagedHeaderFacts,
    defect: &str,
    mode: RecoveryMode,
) -> DamagedHeaderVerdict {
    if let Some(reason) = &facts.foreign {
        return DamagedHeaderVerdict::Foreign(reason.clone());
    }
    if !facts.newest {
        return DamagedHeaderVerdict::Corrupt(defect.to_owned());
    }
    if let Some(q) = facts.valid_record_at {
        return DamagedHeaderVerdict::Corrupt(format!(
            "{defect}, yet a valid record follows at {q}"
        ));
    }
    if mode == RecoveryMode::AbsoluteConsistency {
        return DamagedHeaderVerdict::Corrupt(format!(
            "{defect} (torn segment creation refused by AbsoluteConsistency)"
        ));
    }
    DamagedHeaderVerdict::TornCreation
}

/// A readable segment, for the gap rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentFacts {
    pub sequence: u64,
    pub version: u32,
    pub rotate_at_ms: u64,
}

/// Whether a key's segments run without a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GapVerdict {
    /// No checksummed segment is missing between two present ones.
    Contiguous,
    /// The first `count` segments lie below the last gap and have all
    /// expired: leftovers of a compaction a crash interrupted (removals not
    /// yet durable come back independently). Removed again, reported.
    Leftovers { count: usize },
    /// Segment `missing` is gone from the middle of the log, before the
    /// segment at index `after`: corruption.
    Missing { missing: u64, after: usize },
}

/// Judge a key's readable segments, oldest first. Retention removes only a
/// key's oldest segments, so a version-2 or -3 segment missing between two
/// present ones is either a compaction's leftovers or lost data.
pub(crate) fn judge_gaps(segments: &[SegmentFacts], now_ms: u64, retention_ms: u64) -> GapVerdict {
    let checksummed: Vec<&SegmentFacts> = segments
        .iter()
        .filter(|s| s.version != FORMAT_VERSION_LEGACY)
        .collect();
    let Some(after_gap) = checksummed
        .windows(2)
        .rev()
        .find(|w| w[0].sequence + 1 != w[1].sequence)
        .map(|w| w[1].sequence)
    else {
        return GapVerdict::Contiguous;
    };
    let count = segments
        .iter()
        .take_while(|s| s.sequence < after_gap)
        .count();
    let expired = segments[..count]
        .iter()
        .all(|s| super::retention::expired(s.rotate_at_ms, now_ms, retention_ms));
    if expired {
        GapVerdict::Leftovers { count }
    } else {
        GapVerdict::Missing {
            missing: segments[count - 1].sequence + 1,
            after: count,
        }
    }
}

/// What is known where a segment's valid records stop before its end.
#[derive(Debug, Clone)]
pub(crate) struct DamageFacts {
    /// It is its key's newest segment.
    pub newest: bool,
    /// Its format version.
    pub version: u32,
    /// Why the bytes there are not a record.
    pub defect: String,
    /// Everything from there to the end is zeros.
    pub zeros_to_end: bool,
    /// A verifiable record after the damage, if any (not looked for when
    /// only zeros follow).
    pub valid_record_at: Option<u64>,
}

/// What to make of the bytes after a segment's last valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DamageVerdict {
    /// Preallocated space: the data ends here, nothing is lost or reported;
    /// a writer cuts the zeros off.
    Padding,
    /// A write a crash cut short: the data ends here; reported; a writer
    /// cuts it off.
    TornTail,
    /// Damage that loses data. `resume_at`: a verifiable record after it.
    Corrupt {
        reason: String,
        resume_at: Option<u64>,
    },
}

/// Judge where a segment's records stop. Only a key's newest segment can
/// end torn (sealing syncs a segment before the next exists), except
/// version-1 segments, which nano-wal 0.5 never synced and which carry no
/// checksum to find records after damage with.
pub(crate) fn judge_damage(facts: &DamageFacts, mode: RecoveryMode) -> DamageVerdict {
    let legacy = facts.version == FORMAT_VERSION_LEGACY;
    if !legacy && facts.zeros_to_end {
        return DamageVerdict::Padding;
    }
    let defect = &facts.defect;
    if let Some(q) = facts.valid_record_at {
        return DamageVerdict::Corrupt {
            reason: format!("{defect}; a valid record follows at {q}"),
            resume_at: Some(q),
        };
    }
    if !facts.newest && !legacy {
        return DamageVerdict::Corrupt {
            reason: defect.clone(),
            resume_at: None,
        };
    }
    if mode == RecoveryMode::AbsoluteConsistency {
        return DamageVerdict::Corrupt {
            reason: format!("torn tail ({defect}) refused by AbsoluteConsistency"),
            resume_at: None,
        };
    }
    DamageVerdict::TornTail
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANT: RecoveryMode = RecoveryMode::TolerateTornTail;
    const STRICT: RecoveryMode = RecoveryMode::AbsoluteConsistency;

    fn damage(newest: bool, version: u32) -> DamageFacts {
        DamageFacts {
            newest,
            version,
            defect: "checksum mismatch".into(),
            zeros_to_end: false,
            valid_record_at: None,
        }
    }

    #[test]
    fn only_the_newest_segment_ends_torn_and_only_when_nothing_valid_follows() {
        assert_eq!(
            judge_damage(&damage(true, 3), TOLERANT),
            DamageVerdict::TornTail
        );
        assert!(matches!(
            judge_damage(&damage(false, 3), TOLERANT),
            DamageVerdict::Corrupt {
                resume_at: None,
                ..
            }
        ));
        let followed = DamageFacts {
            valid_record_at: Some(99),
            ..damage(true, 3)
        };
        assert!(matches!(
            judge_damage(&followed, TOLERANT),
            DamageVerdict::Corrupt {
                resume_at: Some(99),
                ..
            }
        ));
        assert!(matches!(
            judge_damage(&damage(true, 3), STRICT),
            DamageVerdict::Corrupt { .. }
        ));
        // nano-wal 0.5 never synced: any of its segments may end torn.
        assert_eq!(
            judge_damage(&damage(false, 1), TOLERANT),
            DamageVerdict::TornTail
        );
    }

    #[test]
    fn zeros_to_the_end_are_padding_in_every_mode_but_not_in_version_1() {
        for newest in [true, false] {
            let zeros = DamageFacts {
                zeros_to_end: true,
                ..damage(newest, 3)
            };
            assert_eq!(judge_damage(&zeros, STRICT), DamageVerdict::Padding);
        }
        let v1 = DamageFacts {
            zeros_to_end: true,
            ..damage(true, 1)
        };
        assert_eq!(judge_damage(&v1, TOLERANT), DamageVerdict::TornTail);
    }

    #[test]
    fn a_damaged_header_is_foreign_corrupt_or_a_torn_creation() {
        let facts = |newest, foreign: Option<&str>, valid| DamagedHeaderFacts {
            newest,
            foreign: foreign.map(str::to_owned),
            valid_record_at: valid,
        };
        assert_eq!(
            judge_damaged_header(&facts(true, Some("text"), None), "bad", TOLERANT),
            DamagedHeaderVerdict::Foreign("text".into())
        );
        assert_eq!(
            judge_damaged_header(&facts(true, None, None), "bad", TOLERANT),
            DamagedHeaderVerdict::TornCreation
        );
        for (f, mode) in [
            (facts(false, None, None), TOLERANT),
            (facts(true, None, Some(80)), TOLERANT),
            (facts(true, None, None), STRICT),
        ] {
            assert!(matches!(
                judge_damaged_header(&f, "bad", mode),
                DamagedHeaderVerdict::Corrupt(_)
            ));
        }
    }

    #[test]
    fn a_gap_is_leftovers_only_if_everything_below_it_expired() {
        let seg = |sequence, rotate_at_ms| SegmentFacts {
            sequence,
            version: 3,
            rotate_at_ms,
        };
        let run = [seg(1, 10), seg(2, 20), seg(3, 30)];
        assert_eq!(judge_gaps(&run, 1_000, 100), GapVerdict::Contiguous);
        let gap = [seg(1, 10), seg(2, 20), seg(4, 40)];
        assert_eq!(
            judge_gaps(&gap, 1_000, 100),
            GapVerdict::Leftovers { count: 2 }
        );
        assert_eq!(
            judge_gaps(&gap, 110, 100),
            GapVerdict::Missing {
                missing: 3,
                after: 2
            }
        );
        // nano-wal 0.5's segments are not part of the rule.
        let legacy = [
            SegmentFacts {
                sequence: 1,
                version: 1,
                rotate_at_ms: 0,
            },
            seg(3, 30),
        ];
        assert_eq!(judge_gaps(&legacy, 0, 100), GapVerdict::Contiguous);
    }
}
