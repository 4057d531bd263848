//! Removing records from a key: `truncate_from` (a record and every later
//! one) and `purge_before` (every earlier one), and finding a key's last
//! record without reading the key (FORMAT.md §7, "Truncation and
//! purging").
//!
//! Both follow retention's order: the change goes into the journal as one
//! frame and is made durable, then it is applied in memory (under the
//! key's writer mutex, so a checkpoint sees it whole), then to the files.
//! A crash after the frame replays it; replay applies it idempotently.

use std::sync::Arc;

use crate::engine::Engine;
use crate::entry_ref::{EntryRef, Record};
use crate::error::{Result, WalError};
use crate::format::journal::FrameBuf;
use crate::iter::Records;
use crate::keylog::KeyLog;
use crate::retention::remove_segments;
use crate::segment::{LastRecord, Segment};
use crate::tail::CutFile;

/// The key of `r` and the segment and position it resolves to.
fn resolve(engine: &Engine, r: EntryRef) -> Result<(Arc<KeyLog>, Arc<Segment>, u64)> {
    let (seg, pos) = engine.locate(r)?;
    let log = engine
        .key_log(r.key_hash)
        .ok_or_else(|| WalError::EntryNotFound(format!("{r}: no such key")))?;
    Ok((log, seg, pos))
}

/// Whether `seg` is still the key's segment and `pos` still inside its
/// visible records (checked again under the writer mutex: another
/// truncation or a compaction may have run in between).
fn still_there(log: &KeyLog, seg: &Arc<Segment>, pos: u64, r: EntryRef) -> Result<()> {
    let current = log.segment(seg.sequence);
    if current.is_some_and(|c| Arc::ptr_eq(&c, seg)) && pos >= seg.start() && pos < seg.end() {
        Ok(())
    } else {
        Err(WalError::EntryNotFound(format!(
            "{r}: removed while this call waited"
        )))
    }
}

/// Durably remove the record `r` names and every later record of its key.
pub(crate) fn truncate_from(engine: &Engine, r: EntryRef) -> Result<()> {
    let (log, seg, pos) = resolve(engine, r)?;
    let mut w = log.lock_writer();
    engine.check_open()?;
    w.check()?;
    still_there(&log, &seg, pos, r)?;
    let later = log.segments_from(seg.sequence + 1);
    let mut frame = FrameBuf::new_in(Vec::new());
    for s in &later {
        frame.push_remove(log.key_hash, s.sequence);
    }
    frame.push_cut(log.key_hash, seg.sequence, pos);
    // IMPORTANT: the cut is durably in the journal before any byte goes:
    // a crash after this point replays it, so the removed records never
    // come back (replay cuts the file again).
    let lsn = engine.journal.append(engine, &mut frame)?;
    engine.journal.make_durable(engine, lsn)?;
    // No offset a reader may have seen is used again: appends go to a new
    // segment, whose sequence is higher than any removed one.
    let cut_file = seg.cut_to(pos, &engine.budget);
    // The records before the cut that wait in the tail reach the file
    // before the key moves on to a new segment.
    let settled = match cut_file {
        CutFile::No => log.settle_tail(&mut w, engine, &seg),
        CutFile::Yes => Ok(()),
    };
    w.retire_active();
    let removed = remove_segments(engine, &log, &mut w, &later);
    // Cutting the file only frees the space: no read goes past the
    // segment's end (here, in the manifest, or from the cut frame that
    // replay applies again), and the key never appends to it again, so the
    // cut need not be durable, and if it fails the truncation still holds.
    // The error is reported all the same.
    let cut = match cut_file {
        CutFile::No => Ok(()),
        CutFile::Yes => engine.cut_file(&seg, pos),
    };
    removed?;
    settled?;
    cut?;
    if !later.is_empty() {
        engine.sync_dir_through(engine.dir_generation())?;
    }
    Ok(())
}

/// Durably remove every record of `r`'s key before the record `r` names.
/// Whole segments are deleted; the rest of a partly purged segment is
/// hidden.
pub(crate) fn purge_before(engine: &Engine, r: EntryRef) -> Result<()> {
    let (log, seg, pos) = resolve(engine, r)?;
    let mut w = log.lock_writer();
    engine.check_open()?;
    w.check()?;
    still_there(&log, &seg, pos, r)?;
    let earlier: Vec<Arc<Segment>> = log
        .segments_from(0)
        .into_iter()
        .take_while(|s| s.sequence < seg.sequence)
        .collect();
    if earlier.is_empty() && pos == seg.start() {
        return Ok(());
    }
    let mut frame = FrameBuf::new_in(Vec::new());
    for s in &earlier {
        frame.push_remove(log.key_hash, s.sequence);
    }
    frame.push_hide(log.key_hash, seg.sequence, pos);
    // IMPORTANT: durable in the journal before anything is removed, as
    // for retention; the hidden start reaches the manifest at the next
    // checkpoint.
    let lsn = engine.journal.append(engine, &mut frame)?;
    engine.journal.make_durable(engine, lsn)?;
    seg.hide_before(pos);
    remove_segments(engine, &log, &mut w, &earlier)?;
    if !earlier.is_empty() {
        engine.sync_dir_through(engine.dir_generation())?;
    }
    Ok(())
}

/// The key's last record, read at its known position; a segment whose
/// last record is not known (opened from an older format) is read once
/// and the position remembered.
pub(crate) fn last_record(engine: &Arc<Engine>, log: &KeyLog) -> Result<Option<Record>> {
    for seg in log.segments_from(0).iter().rev() {
        if !seg.has_records() {
            continue;
        }
        if let LastRecord::At(pos) = seg.last_record()
            && pos >= seg.start()
            && pos < seg.end()
        {
            let r = EntryRef {
                key_hash: seg.key_hash,
                sequence_number: seg.sequence,
                offset: pos - seg.header_len,
            };
            return engine.read_record(r).map(Some);
        }
        let mut last = None;
        for record in Records::new(engine.clone(), vec![seg.clone()], 0) {
            last = Some(record?);
        }
        if let Some(record) = last {
            seg.found_last_record(seg.header_len + record.entry_ref.offset);
            return Ok(Some(record));
        }
    }
    Ok(None)
}
