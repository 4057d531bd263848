//! One segment file's in-memory state: where its valid data ends, and how
//! much of it is known to be durable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::cache::HandleSlot;
use crate::format::FORMAT_VERSION_LEGACY;
use crate::format::record::Binding;
use crate::tail::{Budget, CutFile, Tail};
use crate::watermark::Watermark;

/// How many bytes a point read in a segment fetches with its first call:
/// the size of the segment's most recently read or written record, rounded
/// up. A right-sized first read copies no more than the record (the copy out
/// of the page cache is most of a point read's cost) and still needs no
/// second call for a record of the usual size.
#[derive(Debug)]
pub(crate) struct ReadHint(AtomicU32);

impl ReadHint {
    /// Hints are multiples of this, so records of nearly the same size share one.
    const GRANULE_BYTES: u32 = 64;
    /// Smallest first read.
    const MIN_BYTES: u32 = 128;
    /// Largest first read: a longer record takes a second call.
    const MAX_BYTES: u32 = 64 * 1024;
    /// First read before any record of the segment was seen.
    const INITIAL_BYTES: u32 = 512;

    /// Bytes for the next first read.
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::Relaxed) as usize
    }

    /// Note a record of `total_bytes` (fixed fields included). Stores only
    /// when the hint changes, so a stream of like records writes nothing.
    pub fn note(&self, total_bytes: u64) {
        let capped = u32::try_from(total_bytes)
            .unwrap_or(u32::MAX)
            .min(Self::MAX_BYTES);
        let hint = capped
            .next_multiple_of(Self::GRANULE_BYTES)
            .clamp(Self::MIN_BYTES, Self::MAX_BYTES);
        if self.0.load(Ordering::Relaxed) != hint {
            self.0.store(hint, Ordering::Relaxed);
        }
    }
}

impl Default for ReadHint {
    fn default() -> Self {
        Self(AtomicU32::new(Self::INITIAL_BYTES))
    }
}

/// A segment's identity: the key's hash and the segment's sequence number.
pub(crate) type SegmentId = (u64, u64);

/// What a segment is made from: its header's facts and where its data ends.
#[derive(Debug)]
pub(crate) struct SegmentInit {
    pub key_hash: u64,
    pub sequence: u64,
    pub path: PathBuf,
    pub version: u32,
    pub salt: u64,
    /// Bytes before the first record.
    pub header_len: u64,
    pub rotate_at_ms: u64,
    /// End of the valid data as far as known (the file's length at open).
    pub end: u64,
    /// The directory change that created the file (1: before this open).
    pub dir_generation: u64,
    /// How much of the file is known durable already (a checkpoint's end).
    pub durable_end: u64,
    /// Where the visible records start: `header_len`, or later once
    /// `purge_before` hid the records before it.
    pub start: u64,
    /// Where the last record starts, if known (a [`LastRecord`]).
    pub last: LastRecord,
}

/// Where a segment's last record starts, as far as this process knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastRecord {
    /// Not known: found by reading the segment when asked.
    Unknown,
    /// At this absolute file position.
    At(u64),
}

impl LastRecord {
    /// The manifest's encoding: 0 for unknown (no record starts at 0).
    pub fn to_raw(self) -> u64 {
        match self {
            LastRecord::Unknown => 0,
            LastRecord::At(pos) => pos,
        }
    }

    pub fn from_raw(raw: u64) -> Self {
        if raw == 0 {
            LastRecord::Unknown
        } else {
            LastRecord::At(raw)
        }
    }
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub key_hash: u64,
    pub sequence: u64,
    pub path: PathBuf,
    /// 1 (nano-wal 0.5) and 2 (nano-wal 0.6) are read only; 3 is written.
    pub version: u32,
    /// Folded into every version-3 record's checksum (0 before version 3).
    pub salt: u64,
    /// Bytes before the first record; `EntryRef::offset` counts from here.
    pub header_len: u64,
    /// No record in this segment is stamped at or after this time.
    pub rotate_at_ms: u64,
    /// The directory change that created this file; it must be durable
    /// before a record in the file is acknowledged as durable.
    pub dir_generation: u64,
    /// End of the valid data: readers never look past it.
    end: AtomicU64,
    /// Where the visible records start (`purge_before` moves it forward).
    start: AtomicU64,
    /// Where the last record starts ([`LastRecord::to_raw`]).
    last: AtomicU64,
    /// Group commit for this file's data.
    pub durability: Watermark,
    /// Records before this position passed their checks in this process.
    verified_end: AtomicU64,
    /// This process wrote to the file (so closing its handle must not lose a
    /// write-back error).
    written_here: AtomicBool,
    /// A sync failed and the file was cut back to its durable prefix.
    quarantined: AtomicBool,
    /// The open handle, while the handle cache holds one.
    pub handle: HandleSlot,
    /// Size of a point read's first call in this segment.
    pub read_hint: ReadHint,
    /// Records past the file's written end, not yet applied to it.
    pub tail: Tail,
}

impl Segment {
    pub fn new(init: SegmentInit) -> Self {
        Self {
            key_hash: init.key_hash,
            sequence: init.sequence,
            path: init.path,
            version: init.version,
            salt: init.salt,
            header_len: init.header_len,
            rotate_at_ms: init.rotate_at_ms,
            dir_generation: init.dir_generation,
            end: AtomicU64::new(init.end),
            start: AtomicU64::new(init.start.max(init.header_len)),
            last: AtomicU64::new(init.last.to_raw()),
            // Nothing is assumed durable unless a checkpoint made it so.
            durability: Watermark::new(init.durable_end),
            verified_end: AtomicU64::new(init.header_len),
            written_here: AtomicBool::new(false),
            quarantined: AtomicBool::new(false),
            handle: HandleSlot::default(),
            read_hint: ReadHint::default(),
            tail: Tail::new(init.end),
        }
    }

    pub fn verified_end(&self) -> u64 {
        self.verified_end.load(Ordering::Acquire)
    }

    /// Note that the records before `pos` passed their checks.
    pub fn mark_verified(&self, pos: u64) {
        self.verified_end.fetch_max(pos, Ordering::AcqRel);
    }

    /// The binding of a record at absolute file position `position`.
    pub fn binding(&self, position: u64) -> Binding {
        crate::cursor::SegmentMeta::from(self).binding(position)
    }

    pub fn id(&self) -> SegmentId {
        (self.key_hash, self.sequence)
    }

    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Set where the valid data ends, the file holding exactly that
    /// (recovery after scanning, a quarantine after cutting the file):
    /// nothing stays buffered in the tail.
    pub fn set_end(&self, end: u64, budget: &Budget) {
        self.tail.reset(end, budget);
        self.end.store(end, Ordering::Release);
    }

    /// Where the visible records start.
    pub fn start(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// Hide the records before `pos` (`purge_before`); only the key's
    /// writer calls this.
    pub fn hide_before(&self, pos: u64) {
        self.start.fetch_max(pos, Ordering::AcqRel);
    }

    /// Where the last record starts, as far as known.
    pub fn last_record(&self) -> LastRecord {
        LastRecord::from_raw(self.last.load(Ordering::Acquire))
    }

    /// Note where the last record starts (an append, or a read that found it).
    pub fn note_last_record(&self, pos: u64) {
        self.last.store(pos, Ordering::Release);
    }

    /// Remember where a read found the last record, unless the writer
    /// noted one meanwhile (an append or a cut won the race).
    pub fn found_last_record(&self, pos: u64) {
        let _ = self
            .last
            .compare_exchange(0, pos, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Cut the valid data back to `end` (`truncate_from`), in the tail
    /// too; only the key's writer calls this. Says whether the file must be
    /// cut as well. The last record before the cut is found by reading when
    /// asked.
    pub fn cut_to(&self, end: u64, budget: &Budget) -> CutFile {
        self.end.store(end, Ordering::Release);
        self.last.store(0, Ordering::Release);
        self.tail.cut(end, budget)
    }

    /// Note a write by this process; only the key's writer calls this.
    pub fn note_written(&self) {
        self.written_here.store(true, Ordering::Release);
    }

    /// Publish new valid data; only the key's writer calls this, after the
    /// bytes were written.
    pub fn publish(&self, end: u64) {
        self.note_written();
        self.end.store(end, Ordering::Release);
    }

    /// Whether this process created the file (and so may append to it).
    pub fn created_here(&self) -> bool {
        self.written_here.load(Ordering::Acquire)
    }

    /// Claim the one-time cleanup after a failed sync; true for the first caller.
    pub fn claim_quarantine(&self) -> bool {
        !self.quarantined.swap(true, Ordering::AcqRel)
    }

    /// Whether any visible record is left.
    pub fn has_records(&self) -> bool {
        self.end() > self.start()
    }

    /// Whether records carry checksums (versions 2 and 3; not nano-wal 0.5's).
    pub fn is_checksummed(&self) -> bool {
        self.version != FORMAT_VERSION_LEGACY
    }
}

#[cfg(test)]
mod tests {
    use super::ReadHint;

    #[test]
    fn read_hint_rounds_up_and_stays_within_bounds() {
        let hint = ReadHint::default();
        assert_eq!(hint.bytes(), 512);
        hint.note(140);
        assert_eq!(hint.bytes(), 192);
        hint.note(192);
        assert_eq!(hint.bytes(), 192);
        hint.note(20);
        assert_eq!(hint.bytes(), 128);
        hint.note(4096 + 20);
        assert_eq!(hint.bytes(), 4096 + 64);
        hint.note(u64::MAX);
        assert_eq!(hint.bytes(), 64 * 1024);
    }
}
