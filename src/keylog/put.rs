//! Putting a key's records into its segment: into the segment's in-memory
//! tail or its file, applying the tail, cutting back what no frame covers.

use std::sync::Arc;

use super::{KeyLog, Writer};
use crate::engine::Engine;
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::segment::Segment;
use crate::storage::{StorageFile, write_all_at};
use crate::tail::{CutFile, FLUSH_BYTES, Pushed};

impl KeyLog {
    /// Put whole records at `pos`, the segment's end: into its tail (one
    /// copy in memory) while they are short and the tail and the handle's
    /// `max_unapplied_bytes` have room, else into the file with one call,
    /// after the tail. Not yet visible nor in the journal.
    pub(super) fn put(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
        bytes: &[u8],
        pos: u64,
    ) -> Result<()> {
        if let Some(retired) = w.retired_tail.clone() {
            self.apply_tail(w, engine, &retired)?;
            w.retired_tail = None;
        }
        if !engine.budget.enabled() {
            self.write_at(w, engine, seg, bytes, pos)?;
            seg.tail.wrote(pos, bytes.len());
            return Ok(());
        }
        // Only the active segment holds a tail: a segment the key moved on
        // from is complete in its file, so no process ever reads a key's
        // newer segment while an older one still lacks records.
        let buffered = bytes.len() < FLUSH_BYTES && w.is_active(seg);
        if buffered && self.try_buffer(w, engine, seg, bytes, pos)? {
            return Ok(());
        }
        // Back-pressure: this key's tail goes to its file first.
        self.apply_tail(w, engine, seg)?;
        if buffered && self.try_buffer(w, engine, seg, bytes, pos)? {
            return Ok(());
        }
        self.write_at(w, engine, seg, bytes, pos)?;
        seg.tail.wrote(pos, bytes.len());
        Ok(())
    }

    /// Buffer the records in the segment's tail if it has room; false if
    /// it has none.
    fn try_buffer(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
        bytes: &[u8],
        pos: u64,
    ) -> Result<bool> {
        match seg.tail.try_push(bytes, pos, &engine.budget) {
            Pushed::Buffered { list } => {
                if list {
                    engine.applier.list(seg);
                }
                Ok(true)
            }
            Pushed::NoRoom => Ok(false),
            Pushed::Failed(cause) => {
                w.poisoned = Some(cause.clone());
                Err(WalError::Poisoned(cause))
            }
        }
    }

    /// Write the segment's tail to its file. The key goes on after a full
    /// disk (the tail stays, to be written by the next try) and is poisoned
    /// by any other failure.
    pub(super) fn apply_tail(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
    ) -> Result<()> {
        if seg.tail.len() == 0 {
            return Ok(());
        }
        let file = self.handle(w, engine, seg)?;
        seg.tail.apply(&*file, &engine.budget).map_err(|e| {
            let err = io_at(&seg.path, "write", e);
            if !matches!(err, WalError::StorageFull(_)) {
                w.poisoned = Some(PoisonCause::describing(&err));
            }
            err
        })
    }

    /// The segment's open handle: the writer's own for its active segment,
    /// else the cache's.
    fn handle(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
    ) -> Result<Arc<dyn StorageFile>> {
        let cached = match &w.active_file {
            Some((id, weak)) if *id == seg.id() => weak.upgrade(),
            _ => None,
        };
        let file = match cached {
            Some(f) => {
                engine.cache.touch(seg);
                Ok(f)
            }
            None => engine.file(seg).inspect(|f| {
                w.active_file = Some((seg.id(), Arc::downgrade(f)));
            }),
        };
        file.inspect_err(|err| w.poisoned = Some(PoisonCause::describing(err)))
    }

    /// One positional write of whole records, not yet visible nor in the
    /// journal. On failure the file is cut back to `pos`; the key goes on
    /// after a full disk if the cut worked, and is poisoned otherwise (its
    /// end is no longer certain).
    fn write_at(
        &self,
        w: &mut Writer,
        engine: &Engine,
        seg: &Arc<Segment>,
        bytes: &[u8],
        pos: u64,
    ) -> Result<()> {
        let file = self.handle(w, engine, seg)?;
        write_all_at(&*file, bytes, pos).map_err(|e| {
            let err = io_at(&seg.path, "write", e);
            // Cut whatever part reached the file, so it ends at a record
            // boundary again.
            let cut = file.set_len(pos);
            if cut.is_err() || !matches!(err, WalError::StorageFull(_)) {
                w.poisoned = Some(PoisonCause::describing(&err));
            }
            // A reader may have seen the cut bytes: their offsets are
            // never used again, the key's next append starts a segment.
            w.forget_active(seg);
            err
        })
    }

    /// Cut records put by [`KeyLog::put`] whose frame did not reach the
    /// journal: from the tail alone if they are all still there, else from
    /// the file too; if even that fails the key is poisoned, as its file's
    /// end is no longer certain.
    pub(super) fn cut_back(&self, w: &mut Writer, engine: &Engine, seg: &Arc<Segment>, pos: u64) {
        if seg.tail.cut(pos, &engine.budget) == CutFile::No {
            // The cut records never reached the file nor any reader (they
            // were not published): the key goes on in this segment.
            return;
        }
        if let Err(err) = engine.cut_file(seg, pos) {
            w.poisoned = Some(PoisonCause::describing(&err));
        }
        // A reader may have seen the cut records: their offsets are never
        // used again, the key's next append starts a segment.
        w.forget_active(seg);
    }
}
