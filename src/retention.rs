//! Time-based retention: which segments have expired, and removing them in
//! an order that is safe against crashes.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Result, io_at};
use crate::keylog::KeyLog;
use crate::rules;
use crate::rules::retention::SegmentAge;

pub(crate) fn compact(engine: &Arc<Engine>) -> Result<()> {
    let now = engine.config.clock.now_unix_ms();
    let retention = engine.config.options.retention_ms();
    let mut removed_any = false;
    for log in engine.all_keys() {
        removed_any |= compact_key(engine, &log, now, retention)?;
    }
    if removed_any {
        // Make the removals durable, so a crash does not bring them back.
        // (Were they to come back, the next compaction would remove them.)
        let generation = engine.dir_changed();
        engine.sync_dir_through(generation)?;
    }
    Ok(())
}

fn compact_key(engine: &Arc<Engine>, log: &KeyLog, now: u64, retention: u64) -> Result<bool> {
    let mut w = log.lock_writer();
    let segments = log.segments_from(0);
    let ages: Vec<SegmentAge> = segments
        .iter()
        .map(|s| SegmentAge {
            rotate_at_ms: s.rotate_at_ms,
            has_records: s.has_records(),
        })
        .collect();
    let removal = rules::retention::removal(&ages, now, retention, !w.is_poisoned());
    let doomed = &segments[..removal.count];
    if let (true, Some(last)) = (removal.creates_successor, segments.last()) {
        // The newest segment holds only expired records. Start an empty
        // successor and make it durable, name and header, before removing
        // anything: recovery then always finds the newest sequence, never
        // goes back to an old number, and sees any segment a crash brings
        // back as a gap below it.
        if w.is_active(last) {
            log.seal(&mut w, engine, last)?;
        }
        let next = log.create_segment(&mut w, engine, now)?;
        engine.make_durable(&next, next.end())?;
    }
    if let (false, Some(newest)) = (doomed.is_empty(), log.segments_from(0).last()) {
        // The newest surviving segment must be durable (name and header)
        // before anything is removed: removals not yet made durable can come
        // back after a crash, and recovery recognizes such leftovers only
        // as a gap below a segment that is certain to be there.
        engine.make_durable(newest, newest.header_len)?;
    }
    for seg in doomed {
        log.remove_segment(seg.sequence);
        engine.cache.forget(seg.id());
        w.forget_active(seg);
        match engine.config.storage.remove_file(&seg.path) {
            Ok(()) => {}
            // Already gone: the state we want holds.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&seg.path, "remove", e)),
        }
        engine.dir_changed();
    }
    Ok(!doomed.is_empty())
}
