//! Checkpoints: make the segments durable and trim the journal.
//!
//! 1. Rotate the journal: sync its file in full and start the next one
//!    (a clean close starts none).
//! 2. Snapshot every key's segments and ends, taking each key's writer
//!    lock in turn: an append holds it from its segment write to its
//!    publication, so every record whose frame is in an earlier journal
//!    file is in the snapshot.
//! 3. fdatasync every segment with unsynced bytes (in parallel), first
//!    writing what its tail holds (`tail`), and the directory.
//! 4. Write the next manifest (the snapshot and where replay starts) and
//!    make it durable, name included.
//! 5. Remove older manifests and journal files. Until step 4 is durable
//!    they are what recovery uses, so a crash at any step loses nothing.

use std::sync::Arc;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::format::manifest::{self, Manifest, ManifestKey, ManifestSegment};
use crate::journal::{journal_file_name, manifest_file_name};
use crate::metrics::Count;
use crate::segment::LastRecord;
use crate::segment::Segment;
use crate::storage::{OpenMode, remove_if_present, write_all_at};

/// Whether a checkpoint leaves a journal behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// While appends go on: a new journal file takes them.
    Running,
    /// Closing, or just after recovery: no journal file is left; the next
    /// open reads the manifest alone.
    Clean,
}

/// After an append: start a checkpoint if one is due. By default it runs
/// on a thread of its own, so the appending thread goes on; an append
/// waits only when the journal has grown by twice its bound meanwhile
/// (back-pressure), and then runs the next checkpoint itself.
///
/// The append's record is in the journal whatever happens here, so its
/// caller is not told of a failure (a retry would store it twice): a full
/// disk leaves everything as it was, to be tried again after another
/// `journal_checkpoint_bytes`; any other failure has poisoned every writer,
/// and the next call reports it. Both are counted in
/// `Metrics::checkpoint_failures`.
pub(crate) fn after_append(engine: &Arc<Engine>) {
    if !engine.journal.checkpoint_due() {
        return;
    }
    if engine.config.background_checkpoints && !engine.journal.checkpoint_overdue() {
        start_background(engine);
        return;
    }
    // Inline: configured so, or back-pressure (this waits for a running
    // checkpoint, then runs the next one if it is still due).
    counted(engine, run_if_due(engine, engine.journal.checkpoint_lock()));
}

/// Count a failed checkpoint that an append started; see [`after_append`].
fn counted(engine: &Engine, result: Result<()>) {
    if result.is_err() {
        engine.count(Count::CheckpointFailures, 1);
    }
}

/// Start the background checkpoint unless it is running.
fn start_background(engine: &Arc<Engine>) {
    let mut slot = engine.journal.background();
    if slot.as_ref().is_some_and(|h| !h.is_finished()) {
        return;
    }
    if let Some(finished) = slot.take() {
        note_join(engine, finished);
    }
    let owned = Arc::clone(engine);
    let spawned = std::thread::Builder::new()
        .name("nano-wal-checkpoint".into())
        .spawn(move || counted(&owned, maybe_run(&owned)));
    match spawned {
        Ok(handle) => *slot = Some(handle),
        Err(_) => {
            // No thread to be had: run it here.
            drop(slot);
            counted(engine, maybe_run(engine));
        }
    }
}

/// Wait for the background checkpoint, if one is running: closing and
/// dropping a handle do, before they release the directory's lock.
pub(crate) fn wait_background(engine: &Engine) {
    let handle = engine.journal.background().take();
    if let Some(handle) = handle {
        note_join(engine, handle);
    }
}

/// Join a finished (or finishing) checkpoint thread. A panic there is a
/// bug; what it leaves cannot be trusted, so every writer is poisoned.
fn note_join(engine: &Engine, handle: std::thread::JoinHandle<()>) {
    if handle.join().is_err() {
        engine.count(Count::CheckpointFailures, 1);
        engine.journal.poison(PoisonCause::message(
            "the background checkpoint panicked".into(),
        ));
    }
}

/// Run a checkpoint if one is due and none is running.
fn maybe_run(engine: &Engine) -> Result<()> {
    if !engine.journal.checkpoint_due() {
        return Ok(());
    }
    match engine.journal.try_checkpoint_lock() {
        Some(guard) => run_if_due(engine, guard),
        None => Ok(()),
    }
}

/// Holding the checkpoint lock: run a checkpoint if one is still due (the
/// one that held the lock before may have run it) and the handle may still
/// write.
fn run_if_due(engine: &Engine, guard: std::sync::MutexGuard<'_, ()>) -> Result<()> {
    if !engine.journal.checkpoint_due() || engine.check_writable().is_err() {
        return Ok(());
    }
    run_locked(engine, Kind::Running, guard)
}

/// Run a checkpoint now, waiting for one that is running.
pub(crate) fn run(engine: &Engine, kind: Kind) -> Result<()> {
    let guard = engine.journal.checkpoint_lock();
    run_locked(engine, kind, guard)
}

fn run_locked(engine: &Engine, kind: Kind, _guard: std::sync::MutexGuard<'_, ()>) -> Result<()> {
    let started = Instant::now();
    let start = engine.journal.rotate(engine, kind == Kind::Clean)?;
    let leftovers_remain = remove_leftovers(engine);
    let (keys, segments) = snapshot(engine);
    // IMPORTANT: the snapshot visits one key at a time, so a batch can land
    // between two visits: in the later key's snapshot but not the earlier
    // one's, its frame in the journal file the rotation started. That
    // frame must be durable before the manifest is, or a power loss would
    // keep the later key's records (in a synced segment) and lose the
    // earlier key's (only in the frame): half a batch. One fdatasync of the
    // journal covers every frame the snapshot saw.
    let durable = engine
        .journal
        .sync_all(engine)
        .and_then(|()| make_segments_durable(engine, &segments));
    if let Err(e) = durable {
        // A full disk stopped a tail's write: everything stays as it was
        // (the tail keeps its records, the journal files stay), to be
        // tried again by the next checkpoint. Anything else poisons.
        if !matches!(e, WalError::StorageFull(_)) {
            engine.journal.poison(PoisonCause::describing(&e));
        }
        return Err(e);
    }
    let generation = engine.journal.next_manifest_generation();
    let m = Manifest {
        generation,
        // A clean manifest lists every segment file on disk; with a
        // leftover the next open takes the crash path, which removes it.
        clean: kind == Kind::Clean && !leftovers_remain,
        journal_start: start.next_file,
        next_frame: start.next_frame,
        keys,
    };
    if let Err(e) = write_manifest(engine, &m) {
        // A full disk costs only this manifest, if none of it is left
        // behind: the journal files it would replace are all still there.
        if !matches!(e, WalError::StorageFull(_)) || !remove_manifest(engine, generation) {
            engine.journal.poison(PoisonCause::describing(&e));
        }
        return Err(e);
    }
    engine.journal.note_manifest(generation);
    // The tails this checkpoint wrote leave the applier's list.
    engine.applier.prune();
    remove_older(engine, start.next_file, generation)?;
    engine.count(Count::Checkpoints, 1);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    engine.count(Count::CheckpointMicros, micros);
    Ok(())
}

/// Try again to remove segment files whose removal retention put in the
/// journal but could not carry out; true if any is still there. Before the
/// directory sync of [`make_segments_durable`], which makes the removals
/// durable.
fn remove_leftovers(engine: &Engine) -> bool {
    let mut remain = false;
    for path in engine.journal.take_leftovers() {
        match remove_if_present(&*engine.config.storage, &path) {
            Ok(true) => {
                engine.dir_changed();
            }
            Ok(false) => {}
            Err(_) => {
                // Reported when it first failed; tried again next time.
                engine.journal.note_leftover(path);
                remain = true;
            }
        }
    }
    remain
}

/// Every key's segments as they stand, and each segment with the end it
/// must be durable through.
fn snapshot(engine: &Engine) -> (Vec<ManifestKey>, Vec<(Arc<Segment>, u64)>) {
    let mut keys = Vec::new();
    let mut all = Vec::new();
    let mut logs = engine.all_keys();
    // Deterministic order: the simulated disk replays runs exactly.
    logs.sort_unstable_by_key(|l| l.key_hash);
    for log in logs {
        let w = log.lock_writer();
        let segments = log.segments_from(0);
        if segments.is_empty() {
            continue;
        }
        let mut listed = Vec::with_capacity(segments.len());
        for seg in segments {
            let end = seg.end();
            listed.push(ManifestSegment {
                sequence: seg.sequence,
                version: seg.version,
                file_name: seg
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                header_len: seg.header_len,
                salt: seg.salt,
                rotate_at_ms: seg.rotate_at_ms,
                end,
                start: seg.start().min(end),
                last: match seg.last_record() {
                    LastRecord::At(pos) if pos < end => pos,
                    _ => 0,
                },
            });
            all.push((seg, end));
        }
        keys.push(ManifestKey {
            key: log.key.clone(),
            key_hash: log.key_hash,
            next_sequence: w.next_sequence(),
            segments: listed,
        });
        drop(w);
    }
    (keys, all)
}

/// fdatasync every segment with bytes not yet durable, then the directory.
fn make_segments_durable(engine: &Engine, segments: &[(Arc<Segment>, u64)]) -> Result<()> {
    let dirty: Vec<(Arc<Segment>, u64)> = segments
        .iter()
        .filter(|(s, end)| s.durability.synced_through() < *end || s.durability.failure().is_some())
        .cloned()
        .collect();
    engine.make_all_durable(&dirty)?;
    // Segment names created or removed since the last directory sync.
    engine.sync_dir_through(engine.dir_generation())
}

/// Write manifest `m` and make it durable, name included.
fn write_manifest(engine: &Engine, m: &Manifest) -> Result<()> {
    let storage = &engine.config.storage;
    let dir = &engine.config.dir;
    let path = dir.join(manifest_file_name(m.generation));
    let bytes = manifest::encode(m);
    let file = engine
        .with_descriptor(|| storage.open(&path, OpenMode::CreateNew))
        .map_err(|e| io_at(&path, "create", e))?;
    write_all_at(&*file, &bytes, 0).map_err(|e| io_at(&path, "write", e))?;
    // IMPORTANT: the manifest replaces the journal files before it; it must
    // survive power loss, name included, before any of them is removed.
    file.sync_data().map_err(|e| io_at(&path, "fdatasync", e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| io_at(dir, "fsync directory", e))?;
    engine.count(Count::DirectorySyncs, 1);
    Ok(())
}

/// Remove manifest `generation` that could not be written in full; false
/// if it may still be there.
fn remove_manifest(engine: &Engine, generation: u64) -> bool {
    let path = engine.config.dir.join(manifest_file_name(generation));
    remove_if_present(&*engine.config.storage, &path).is_ok()
}

/// Remove journal files before `journal_start` and manifests before
/// `generation`. Not synced: should a removal be undone by a crash,
/// recovery ignores and removes the file again.
fn remove_older(engine: &Engine, journal_start: u64, generation: u64) -> Result<()> {
    let storage = &engine.config.storage;
    let dir = &engine.config.dir;
    let old = engine.journal.take_older(journal_start, generation);
    let names = old
        .journals
        .iter()
        .map(|&s| journal_file_name(s))
        .chain(old.manifests.iter().map(|&g| manifest_file_name(g)));
    for name in names {
        let path = dir.join(&name);
        remove_if_present(&**storage, &path).map_err(|e| io_at(&path, "remove", e))?;
    }
    Ok(())
}
