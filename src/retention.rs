//! Retention: which of a key's segments go (by age, by bytes or by record
//! count, per key prefix; `rules::retention` decides), and removing them in
//! an order that is safe against crashes.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Result, io_at};
use crate::format::journal::FrameBuf;
use crate::iter::Records;
use crate::keylog::{KeyLog, Writer};
use crate::options::KeyRetention;
use crate::rules;
use crate::rules::retention::{Removal, SegmentAge};
use crate::segment::Segment;
use crate::storage::remove_if_present;

pub(crate) fn compact(engine: &Arc<Engine>) -> Result<()> {
    let now = engine.config.clock.now_unix_ms();
    let mut removed_any = false;
    for log in engine.all_keys() {
        removed_any |= compact_key(engine, &log, now)?;
    }
    if removed_any {
        // Make the removals durable, so a crash does not bring them back.
        // (Were they to come back, the next compaction would remove them.)
        let generation = engine.dir_changed();
        engine.sync_dir_through(generation)?;
    }
    Ok(())
}

/// What the key's retention removes from `segments` (oldest first).
fn removal_of(
    engine: &Arc<Engine>,
    log: &KeyLog,
    segments: &[Arc<Segment>],
    now: u64,
    may_create_successor: bool,
) -> Result<Removal> {
    let by_amount = |count| Removal {
        count,
        creates_successor: false,
    };
    Ok(match engine.config.retention_of(&log.key) {
        KeyRetention::Forever => by_amount(0),
        KeyRetention::Age(age) => {
            let ages: Vec<SegmentAge> = segments
                .iter()
                .map(|s| SegmentAge {
                    rotate_at_ms: s.rotate_at_ms,
                    has_records: s.has_records(),
                })
                .collect();
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            rules::retention::removal(&ages, now, age_ms, may_create_successor)
        }
        KeyRetention::MaxBytes(keep) => {
            let bytes: Vec<u64> = segments.iter().map(|s| s.end() - s.start()).collect();
            by_amount(rules::retention::removal_by_amount(&bytes, keep))
        }
        KeyRetention::MaxRecords(keep) => {
            let mut counts = Vec::with_capacity(segments.len());
            for seg in segments {
                let mut n = 0u64;
                for r in Records::new(engine.clone(), vec![seg.clone()], 0) {
                    r?;
                    n += 1;
                }
                counts.push(n);
            }
            by_amount(rules::retention::removal_by_amount(&counts, keep))
        }
    })
}

fn compact_key(engine: &Arc<Engine>, log: &KeyLog, now: u64) -> Result<bool> {
    let mut w = log.lock_writer();
    let segments = log.segments_from(0);
    let removal = removal_of(engine, log, &segments, now, !w.is_poisoned())?;
    let doomed = &segments[..removal.count];
    if let (true, Some(last)) = (removal.creates_successor, segments.last()) {
        // The newest segment holds only expired records. Start an empty
        // successor and put its creation in the journal, durably, before
        // removing anything: recovery then always finds the newest
        // sequence and never goes back to an old number.
        if w.is_active(last) {
            log.seal(&mut w, engine, last)?;
        }
        log.create_segment(&mut w, engine, now)?;
        if let Some(lsn) = log.journal_creation(&mut w, engine)? {
            engine.journal.make_durable(engine, lsn)?;
        }
    }
    if doomed.is_empty() {
        return Ok(false);
    }
    // IMPORTANT: the removals are in the journal, durably, before any file
    // is removed: a crash after a removal then replays it, and a file a
    // crash brings back is removed again, never read as a gap.
    let mut frame = FrameBuf::new_in(Vec::new());
    for seg in doomed {
        frame.push_remove(log.key_hash, seg.sequence);
    }
    let lsn = engine.journal.append(engine, &mut frame)?;
    engine.journal.make_durable(engine, lsn)?;
    remove_segments(engine, log, &mut w, doomed)?;
    Ok(true)
}

/// Remove segments whose removal is durably in the journal: from the key
/// first (no reader finds them any more), then their files. Shared by
/// retention, `truncate_from` and `purge_before`.
pub(crate) fn remove_segments(
    engine: &Engine,
    log: &KeyLog,
    w: &mut Writer,
    doomed: &[Arc<Segment>],
) -> Result<()> {
    let mut failed = None;
    for seg in doomed {
        log.remove_segment(seg.sequence);
        seg.tail.discard(&engine.budget);
        engine.cache.forget(seg.id());
        w.forget_active(seg);
        w.forget_unjournaled(seg.sequence);
        if let Err(e) = remove_if_present(&*engine.config.storage, &seg.path) {
            // Removed from the key all the same (its removal is in the
            // journal); the next checkpoint removes the file.
            engine.journal.note_leftover(seg.path.clone());
            failed.get_or_insert(io_at(&seg.path, "remove", e));
        }
        engine.dir_changed();
    }
    failed.map_or(Ok(()), Err)
}
