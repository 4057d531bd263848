//! Reading records out of a segment file through a bounded window, for
//! point reads, streaming iteration, verification and recovery alike.
//!
//! Every length read from disk is checked against the format's limits and the
//! end of the valid data before anything is allocated.

use std::io;

use bytes::{Bytes, BytesMut};

use crate::format::legacy::{self, DefectV1, V1_CONTENT_LEN_LEN, V1_PREFIX_LEN};
use crate::format::record::{self, Binding, Defect, RecordVersion};
use crate::format::{FORMAT_VERSION_LEGACY, FORMAT_VERSION_V2, get_u16};
use crate::segment::{ReadHint, Segment};
use crate::storage::{StorageFile, read_exact_at, read_up_to};

mod search;

/// Bytes buffered per cursor. A v1 record's lengths always fit in it.
pub(crate) const WINDOW_BYTES: usize = 128 * 1024;
const _: () = assert!(WINDOW_BYTES >= V1_PREFIX_LEN + u16::MAX as usize + V1_CONTENT_LEN_LEN);

/// A record read from a segment.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub total_len: u64,
    pub timestamp_ms: Option<u64>,
    pub header: Option<Bytes>,
    pub content: Bytes,
}

/// A verified version-2 record: where it is in the window, or its own
/// buffer when it is larger than the window.
enum Checked {
    InWindow(record::Fixed, std::ops::Range<usize>),
    Owned(RawRecord),
}

impl Checked {
    fn total_len(&self) -> u64 {
        match self {
            Checked::InWindow(fixed, _) => fixed.total_len(),
            Checked::Owned(raw) => raw.total_len,
        }
    }
}

/// Why the bytes at a position are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    Record(Defect),
    V1(DefectV1),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Record(d) => d.fmt(f),
            Bad::V1(d) => d.fmt(f),
        }
    }
}

/// What the cursor needs to know about a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMeta {
    pub key_hash: u64,
    pub sequence: u64,
    pub version: u32,
    /// Version 3's salt (0 before).
    pub salt: u64,
}

impl SegmentMeta {
    /// The layout of the segment's records; `None` for version 1.
    pub fn record_version(&self) -> Option<RecordVersion> {
        match self.version {
            FORMAT_VERSION_LEGACY => None,
            FORMAT_VERSION_V2 => Some(RecordVersion::V2),
            _ => Some(RecordVersion::V3),
        }
    }

    /// The binding of a record at absolute file position `position`.
    pub fn binding(&self, position: u64) -> Binding {
        Binding {
            salt: self.salt,
            key_hash: self.key_hash,
            sequence: self.sequence,
            position,
        }
    }
}

impl From<&Segment> for SegmentMeta {
    fn from(s: &Segment) -> Self {
        Self {
            key_hash: s.key_hash,
            sequence: s.sequence,
            version: s.version,
            salt: s.salt,
        }
    }
}

/// A verified record borrowed from a cursor.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub total_len: u64,
    pub timestamp_ms: Option<u64>,
    pub header: Option<&'a [u8]>,
    pub content: &'a [u8],
}

/// A read-ahead window over one file.
///
/// Records read through it share the window's memory (no copy per record):
/// a record handed out keeps its window alive until it is dropped. Every
/// refill reads into a fresh buffer, so a window is never changed under a
/// record still using it.
#[derive(Debug)]
pub(crate) struct Cursor {
    buf: Bytes,
    /// The last record viewed that did not fit the window (or a v1 record).
    spill: Option<RawRecord>,
    capacity: usize,
    start: u64,
    len: usize,
}

impl Default for Cursor {
    fn default() -> Self {
        Self::with_capacity(WINDOW_BYTES)
    }
}

impl Cursor {
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Bytes::new(),
            spill: None,
            capacity: cap,
            start: 0,
            len: 0,
        }
    }

    /// Forget the buffered bytes (the next read refills from the file).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Bytes `[pos, min(pos + want, end))`, buffered; `want` ≤ capacity.
    fn window(
        &mut self,
        file: &dyn StorageFile,
        pos: u64,
        want: usize,
        end: u64,
    ) -> io::Result<&[u8]> {
        let range = self.window_range(file, pos, want, end)?;
        Ok(self.buf.get(range).unwrap_or(&[]))
    }

    /// As [`Cursor::window`], as a shared slice of the window.
    fn window_shared(
        &mut self,
        file: &dyn StorageFile,
        pos: u64,
        want: usize,
        end: u64,
    ) -> io::Result<Bytes> {
        let range = self.window_range(file, pos, want, end)?;
        Ok(self.buf.slice(range))
    }

    fn window_range(
        &mut self,
        file: &dyn StorageFile,
        pos: u64,
        want: usize,
        end: u64,
    ) -> io::Result<std::ops::Range<usize>> {
        let avail = usize::try_from(end.saturating_sub(pos)).unwrap_or(usize::MAX);
        let want = want.min(avail).min(self.capacity);
        let buffered_end = self.start + self.len as u64;
        if pos < self.start || pos + want as u64 > buffered_end {
            let fill = self.capacity.min(avail);
            // Reuse the old window's memory if no record handed out still
            // shares it; otherwise start a fresh buffer.
            let mut fresh = match std::mem::take(&mut self.buf).try_into_mut() {
                Ok(mut reused) => {
                    reused.resize(fill, 0);
                    reused
                }
                Err(_) => BytesMut::zeroed(fill),
            };
            let got = read_up_to(file, &mut fresh, pos)?;
            fresh.truncate(got);
            self.buf = fresh.freeze();
            self.start = pos;
            self.len = got;
        }
        let from = usize::try_from(pos - self.start)
            .unwrap_or(usize::MAX)
            .min(self.len);
        let upto = (from + want).min(self.len);
        Ok(from..upto)
    }

    /// Read and verify the record at `pos`, with `end` the end of the valid
    /// data. `Ok(Err(_))` describes bytes that are not a valid record.
    pub fn record_at(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        pos: u64,
        end: u64,
    ) -> io::Result<Result<RawRecord, Bad>> {
        Ok(self
            .checked_at(file, meta, pos, end)?
            .map(|checked| match checked {
                // Only the parts handed out share the window.
                Checked::InWindow(fixed, range) => {
                    let start = range.start;
                    RawRecord {
                        total_len: fixed.total_len(),
                        timestamp_ms: Some(fixed.timestamp_ms),
                        header: fixed
                            .header_range()
                            .map(|h| self.buf.slice(start + h.start..start + h.end)),
                        content: self.buf.slice(start + fixed.content_start()..range.end),
                    }
                }
                Checked::Owned(raw) => raw,
            }))
    }

    /// As [`Cursor::record_at`], borrowing the record instead of sharing
    /// the window: no allocation or reference count per record.
    pub fn view_at(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        pos: u64,
        end: u64,
    ) -> io::Result<Result<View<'_>, Bad>> {
        Ok(match self.checked_at(file, meta, pos, end)? {
            Ok(Checked::InWindow(fixed, range)) => {
                let bytes = &self.buf[range];
                Ok(View {
                    total_len: fixed.total_len(),
                    timestamp_ms: Some(fixed.timestamp_ms),
                    header: fixed.header_range().map(|h| &bytes[h]),
                    content: &bytes[fixed.content_start()..],
                })
            }
            Ok(Checked::Owned(raw)) => {
                let raw = self.spill.insert(raw);
                Ok(View {
                    total_len: raw.total_len,
                    timestamp_ms: raw.timestamp_ms,
                    header: raw.header.as_deref(),
                    content: &raw.content,
                })
            }
            Err(bad) => Err(bad),
        })
    }

    /// As [`Cursor::record_at`], but only the record's length: for scans
    /// that check records without handing them out (recovery, verify).
    pub fn record_len_at(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        pos: u64,
        end: u64,
    ) -> io::Result<Result<u64, Bad>> {
        Ok(self
            .checked_at(file, meta, pos, end)?
            .map(|c| c.total_len()))
    }

    /// Find and verify the record at `pos`, of either version: in place in
    /// the window where it can be.
    fn checked_at(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        pos: u64,
        end: u64,
    ) -> io::Result<Result<Checked, Bad>> {
        match meta.record_version() {
            None => Ok(self.v1_record_at(file, pos, end)?.map(Checked::Owned)),
            Some(version) => self.verify_checksummed(file, meta, version, pos, end),
        }
    }

    /// Find and verify the version-2 or -3 record at `pos`, in place in the
    /// window if it fits there. A version-3 record's fixed fields are
    /// checked (salted head checksum) before anything else is read.
    fn verify_checksummed(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        version: RecordVersion,
        pos: u64,
        end: u64,
    ) -> io::Result<Result<Checked, Bad>> {
        let binding = meta.binding(pos);
        let fixed_len = version.fixed_len();
        let fixed_bytes = self.window(file, pos, fixed_len, end)?;
        if fixed_bytes.len() < fixed_len {
            return Ok(Err(Bad::Record(Defect::PastEnd)));
        }
        let fixed = match record::parse_fixed(version, fixed_bytes)
            .and_then(|f| record::verify_head(fixed_bytes, &f, binding).map(|()| f))
        {
            Ok(f) => f,
            Err(d) => return Ok(Err(Bad::Record(d))),
        };
        let total = fixed.total_len();
        if total > end.saturating_sub(pos) {
            return Ok(Err(Bad::Record(Defect::PastEnd)));
        }
        // `total` fits before `end`, which is at most the file's size, so the
        // allocation below is bounded by real data.
        let total_usize = usize::try_from(total).unwrap_or(usize::MAX);
        if total_usize > self.capacity {
            let mut v = vec![0u8; total_usize];
            read_exact_at(file, &mut v, pos)?;
            return Ok(decode_owned(version, Bytes::from(v), binding).map(Checked::Owned));
        }
        let range = self.window_range(file, pos, total_usize, end)?;
        if range.len() != total_usize {
            return Ok(Err(Bad::Record(Defect::PastEnd)));
        }
        // The fixed fields are already parsed: check the CRC in place.
        match record::verify(&self.buf[range.clone()], &fixed, binding) {
            Ok(()) => Ok(Ok(Checked::InWindow(fixed, range))),
            Err(d) => Ok(Err(Bad::Record(d))),
        }
    }

    fn v1_record_at(
        &mut self,
        file: &dyn StorageFile,
        pos: u64,
        end: u64,
    ) -> io::Result<Result<RawRecord, Bad>> {
        let head = self.window(file, pos, WINDOW_BYTES, end)?;
        let total = match legacy::decode(head) {
            Ok(d) => d.total_len,
            Err(DefectV1::PastEnd) if head.len() >= V1_PREFIX_LEN => {
                // Possibly longer than the window: work the length out from
                // the length fields, which the window always holds.
                match v1_total_len(head) {
                    Some(t) if t <= end.saturating_sub(pos) && t > head.len() as u64 => {
                        usize::try_from(t).unwrap_or(usize::MAX)
                    }
                    _ => return Ok(Err(Bad::V1(DefectV1::PastEnd))),
                }
            }
            Err(d) => return Ok(Err(Bad::V1(d))),
        };
        let whole = if total <= head.len() {
            self.window_shared(file, pos, total, end)?
        } else {
            let mut v = vec![0u8; total];
            read_exact_at(file, &mut v, pos)?;
            Bytes::from(v)
        };
        match legacy::decode(&whole) {
            Ok(d) => {
                let header = d.header.map(|h| whole.slice_ref(h));
                let content = whole.slice_ref(d.content);
                Ok(Ok(RawRecord {
                    total_len: total as u64,
                    timestamp_ms: None,
                    header,
                    content,
                }))
            }
            Err(d) => Ok(Err(Bad::V1(d))),
        }
    }

    /// Walk the valid records from `from`: where they end, and why the bytes
    /// there are not a record (`None` if the records reach `end`).
    pub fn valid_end(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        from: u64,
        end: u64,
    ) -> io::Result<(u64, Option<Bad>)> {
        let mut pos = from;
        while pos < end {
            match self.record_len_at(file, meta, pos, end)? {
                Ok(len) => pos += len,
                Err(bad) => return Ok((pos, Some(bad))),
            }
        }
        Ok((pos, None))
    }

    /// Whether every byte in `[from, end)` is zero: preallocated space
    /// after the last record (FORMAT.md §8), rather than a torn write.
    pub fn zero_through(
        &mut self,
        file: &dyn StorageFile,
        from: u64,
        end: u64,
    ) -> io::Result<bool> {
        let mut pos = from;
        while pos < end {
            let chunk = self.window(file, pos, WINDOW_BYTES, end)?;
            if chunk.is_empty() {
                // The file is shorter than `end`: nothing more to look at.
                return Ok(true);
            }
            if chunk.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += chunk.len() as u64;
        }
        Ok(true)
    }
}

/// Decode and verify a record that is exactly `whole`.
fn decode_owned(version: RecordVersion, whole: Bytes, binding: Binding) -> Result<RawRecord, Bad> {
    let fixed = record::decode(version, &whole, binding)
        .map_err(Bad::Record)?
        .fixed;
    Ok(owned_record(whole, &fixed))
}

/// A verified record that is exactly `whole`, handed out without sharing:
/// the content keeps the buffer by moving its start, which (unlike a shared
/// slice) needs no allocation for a reference count; a header is copied.
fn owned_record(mut whole: Bytes, fixed: &record::Fixed) -> RawRecord {
    let header = fixed
        .header_range()
        .map(|h| Bytes::copy_from_slice(&whole[h]));
    bytes::Buf::advance(&mut whole, fixed.content_start());
    RawRecord {
        total_len: fixed.total_len(),
        timestamp_ms: Some(fixed.timestamp_ms),
        header,
        content: whole,
    }
}

/// Read and verify the one record at `pos` for a point read: one positional
/// read of `hint.bytes()` for a record up to that size, two for a longer one,
/// into a buffer of the record's own size (nothing shared with other reads).
/// The record's size then updates the hint. Kept apart from [`Cursor`]'s
/// window (which would do the same checks) as the hot path of random reads:
/// the window's bookkeeping cost ~10% of their throughput when measured.
pub(crate) fn read_one(
    file: &dyn StorageFile,
    meta: SegmentMeta,
    pos: u64,
    end: u64,
    hint: &ReadHint,
) -> io::Result<Result<RawRecord, Bad>> {
    let Some(version) = meta.record_version() else {
        return Cursor::default().record_at(file, meta, pos, end);
    };
    let binding = meta.binding(pos);
    let fixed_len = version.fixed_len();
    let avail = usize::try_from(end.saturating_sub(pos)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; avail.min(hint.bytes())];
    let got = read_up_to(file, &mut buf, pos)?;
    let Some(fixed_bytes) = buf.get(..fixed_len).filter(|_| got >= fixed_len) else {
        return Ok(Err(Bad::Record(Defect::PastEnd)));
    };
    // A reference into the middle of a record (forged, or stale) fails
    // here, from the fixed fields alone, before the buffer grows.
    let total = match record::parse_fixed(version, fixed_bytes)
        .and_then(|f| record::verify_head(fixed_bytes, &f, binding).map(|()| f))
    {
        Ok(f) => f.total_len(),
        Err(d) => return Ok(Err(Bad::Record(d))),
    };
    // Checked against the end of the valid data (never past the file's
    // size) before the buffer grows to it.
    let Some(total) = usize::try_from(total).ok().filter(|&t| t <= avail) else {
        return Ok(Err(Bad::Record(Defect::PastEnd)));
    };
    if total > got {
        buf.resize(total, 0);
        read_exact_at(file, &mut buf[got..], pos + got as u64)?;
    }
    buf.truncate(total);
    let record = decode_owned(version, Bytes::from(buf), binding);
    if record.is_ok() {
        hint.note(total as u64);
    }
    Ok(record)
}

/// Total length of a v1 record from its length fields, if they are present.
fn v1_total_len(head: &[u8]) -> Option<u64> {
    let header_len = usize::from(get_u16(head, crate::format::V1_REC_HEADER_LEN_OFFSET));
    let at = V1_PREFIX_LEN + header_len;
    let len_bytes = head.get(at..at + V1_CONTENT_LEN_LEN)?;
    let content_len = crate::format::get_u64(len_bytes, 0);
    if content_len > crate::format::MAX_CONTENT_BYTES as u64 {
        return None;
    }
    Some((at + V1_CONTENT_LEN_LEN) as u64 + content_len)
}
