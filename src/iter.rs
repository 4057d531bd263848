//! Streaming iteration over a key's records. Memory stays bounded by one
//! read window plus the record being returned, however large the key is.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;

use crate::cursor::{Cursor, SegmentMeta};
use crate::engine::Engine;
use crate::entry_ref::{EntryRef, Record, RecordView};
use crate::error::{Result, WalError, io_at};
use crate::recovery::corrupted;
use crate::segment::Segment;
use crate::tail::SegmentReader;

#[derive(Debug)]
struct Open {
    seg: Arc<Segment>,
    file: SegmentReader,
    pos: u64,
    end: u64,
}

/// A fallible, streaming iterator over a key's records, oldest first.
///
/// It yields `Err` at most once, then ends. Records appended to the key's
/// last segment while iterating are seen if the iterator reaches that
/// segment after they were written.
#[derive(Debug)]
pub struct Records {
    engine: Arc<Engine>,
    pending: VecDeque<Arc<Segment>>,
    open: Option<Open>,
    /// Offset (after the header) to start from in the first segment.
    first_offset: u64,
    cursor: Cursor,
    done: bool,
}

impl Records {
    pub(crate) fn new(engine: Arc<Engine>, segments: Vec<Arc<Segment>>, first_offset: u64) -> Self {
        Self {
            engine,
            pending: segments.into(),
            open: None,
            first_offset,
            cursor: Cursor::default(),
            done: false,
        }
    }

    fn open_next(&mut self) -> Result<bool> {
        let Some(seg) = self.pending.pop_front() else {
            return Ok(false);
        };
        let file = self.engine.reader(&seg)?;
        let pos = seg
            .header_len
            .saturating_add(std::mem::take(&mut self.first_offset))
            .max(seg.start());
        let end = seg.end();
        if pos > end {
            return Err(WalError::EntryNotFound(format!(
                "offset {} is past the end of segment {}",
                pos - seg.header_len,
                seg.path.display()
            )));
        }
        self.cursor.reset();
        self.open = Some(Open {
            seg,
            file,
            pos,
            end,
        });
        Ok(true)
    }

    fn step(&mut self) -> Result<Option<Record>> {
        loop {
            let Some(open) = &mut self.open else {
                if self.open_next()? {
                    continue;
                }
                return Ok(None);
            };
            if open.pos >= open.end {
                // Noted once per segment rather than per record: an atomic
                // per record costs more than the rest of the step.
                open.seg.mark_verified(open.pos);
                self.open = None;
                continue;
            }
            let meta = SegmentMeta::from(&*open.seg);
            let raw = self
                .cursor
                .record_at(&open.file, meta, open.pos, open.end)
                .map_err(|e| io_at(&open.seg.path, "read", e))?
                .map_err(|bad| corrupted(&open.seg.path, open.pos, bad))?;
            let entry_ref = EntryRef {
                key_hash: open.seg.key_hash,
                sequence_number: open.seg.sequence,
                offset: open.pos - open.seg.header_len,
            };
            open.pos += raw.total_len;
            return Ok(Some(Record {
                entry_ref,
                header: raw.header,
                content: raw.content,
                timestamp_unix_ms: raw.timestamp_ms,
            }));
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The contents of a key's records, oldest first: what
/// [`crate::Wal::enumerate_records`] returns.
///
/// Every record was checked before this iterator was handed out. Should a
/// read still fail while iterating (an I/O error, or the file changed
/// under us), iteration ends and [`Contents::error`] tells why; use
/// [`crate::Wal::records`] to get errors in-line instead.
#[derive(Debug)]
pub struct Contents {
    inner: Records,
    error: Option<WalError>,
}

impl Contents {
    pub(crate) fn new(inner: Records) -> Self {
        Self { inner, error: None }
    }

    /// The error that ended iteration early, if one did.
    pub fn error(&self) -> Option<&WalError> {
        self.error.as_ref()
    }
}

impl Iterator for Contents {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        match self.inner.next()? {
            Ok(r) => Some(r.content),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// Visit every record of `segments` in order, borrowed from one window,
/// until `visit` breaks; what [`crate::Wal::scan`] does.
pub(crate) fn scan(
    engine: &Arc<Engine>,
    segments: &[Arc<Segment>],
    mut visit: impl FnMut(RecordView<'_>) -> ControlFlow<()>,
) -> Result<()> {
    let mut cursor = Cursor::default();
    for seg in segments {
        let end = seg.end();
        let mut pos = seg.start();
        let file = engine.reader(seg)?;
        let meta = SegmentMeta::from(&**seg);
        cursor.reset();
        while pos < end {
            let view = cursor
                .view_at(&file, meta, pos, end)
                .map_err(|e| io_at(&seg.path, "read", e))?
                .map_err(|bad| corrupted(&seg.path, pos, bad))?;
            let record = RecordView {
                entry_ref: EntryRef {
                    key_hash: seg.key_hash,
                    sequence_number: seg.sequence,
                    offset: pos - seg.header_len,
                },
                header: view.header,
                content: view.content,
                timestamp_unix_ms: view.timestamp_ms,
            };
            pos += view.total_len;
            if visit(record).is_break() {
                return Ok(());
            }
        }
        seg.mark_verified(pos);
    }
    Ok(())
}

/// Check every record of `segments` not yet checked in this process,
/// without holding more than one window in memory.
pub(crate) fn verify_unchecked(engine: &Arc<Engine>, segments: &[Arc<Segment>]) -> Result<()> {
    let mut cursor = Cursor::default();
    for seg in segments {
        let end = seg.end();
        let pos = seg.verified_end().max(seg.start());
        if pos >= end {
            continue;
        }
        let file = engine.reader(seg)?;
        cursor.reset();
        let (valid_end, bad) = cursor
            .valid_end(&file, SegmentMeta::from(&**seg), pos, end)
            .map_err(|e| io_at(&seg.path, "read", e))?;
        if let Some(bad) = bad {
            return Err(corrupted(&seg.path, valid_end, bad));
        }
        seg.mark_verified(valid_end);
    }
    Ok(())
}
