//! Opening a directory that has a manifest (FORMAT.md §13): the manifest
//! names every segment and where its durable data ends; after a crash the
//! journal files from the manifest on are replayed into the segments.
//!
//! Replay is idempotent: it cuts every segment back to what the manifest
//! and the journal hold (bytes beyond were never acknowledged as durable,
//! and a batch is all or nothing), rewrites the records the journal holds
//! at the positions it names, and only a checkpoint afterwards removes the
//! journal. A crash during replay replays again.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::{Engine, KeyTable};
use crate::error::{Result, WalError, io_at};
use crate::format::manifest::{self, Manifest, ManifestDefect, ManifestSegment};
use crate::journal::frames::Replayer;
use crate::journal::{JournalStart, parse_journal_file_name, parse_manifest_file_name};
use crate::key::parse_segment_file_name;
use crate::keylog::{KeyLog, Writer};
use crate::recovery::{RecoveryReport, TornTail};
use crate::segment::{LastRecord, Segment, SegmentInit};
use crate::storage::{OpenMode, StorageFile, read_exact_at, remove_if_present};

/// The journal's and manifests' files in a directory listing.
#[derive(Debug, Default)]
pub(crate) struct JournalFiles {
    pub journals: BTreeMap<u64, String>,
    pub manifests: BTreeMap<u64, String>,
}

impl JournalFiles {
    pub fn from_listing(names: &[String]) -> Self {
        let mut f = Self::default();
        for name in names {
            if let Some(s) = parse_journal_file_name(name) {
                f.journals.insert(s, name.clone());
            } else if let Some(g) = parse_manifest_file_name(name) {
                f.manifests.insert(g, name.clone());
            }
        }
        f
    }
}

/// What opening from a manifest produced.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub keys: KeyTable,
    pub start: JournalStart,
    /// Replay changed segments (or found a journal): a checkpoint must make
    /// them durable before the journal is trimmed.
    pub needs_checkpoint: bool,
}

#[derive(Debug)]
pub(super) struct SegState {
    pub(super) file_name: String,
    pub(super) version: u32,
    pub(super) header_len: u64,
    pub(super) salt: u64,
    pub(super) rotate_at_ms: u64,
    pub(super) end: u64,
    /// How much of it is known durable (the manifest's end; 0 once replay
    /// wrote to it).
    pub(super) durable_end: u64,
    /// Where its visible records start (`purge_before`).
    pub(super) start: u64,
    /// Where its last record starts, if known.
    pub(super) last: LastRecord,
}

#[derive(Debug)]
pub(super) struct KeyState {
    pub(super) key: Vec<u8>,
    pub(super) next_sequence: u64,
    pub(super) segments: BTreeMap<u64, SegState>,
}

pub(super) type State = BTreeMap<u64, KeyState>;

/// The directory's names, and its journal files and manifests among them.
pub(crate) fn list(engine: &Engine) -> Result<(Vec<String>, JournalFiles)> {
    let dir = &engine.config.dir;
    let names = engine
        .config
        .storage
        .list_dir(dir)
        .map_err(|e| io_at(dir, "list", e))?;
    let files = JournalFiles::from_listing(&names);
    Ok((names, files))
}

/// The newest manifest that decodes, its generation, and the highest
/// generation named in the directory (torn ones included). `None` if no
/// manifest decodes; torn manifests newer than the one used are removed
/// when writable.
pub(crate) fn newest_manifest(
    engine: &Engine,
    files: &JournalFiles,
) -> Result<(Option<Manifest>, u64)> {
    let Some(&highest) = files.manifests.keys().next_back() else {
        return Ok((None, 0));
    };
    for (&generation, name) in files.manifests.iter().rev() {
        let path = engine.config.dir.join(name);
        let bytes = read_whole(engine, &path)?;
        match manifest::decode(&bytes) {
            Ok(m) if m.generation == generation => return Ok((Some(m), highest)),
            Ok(_) => {
                return Err(crate::recovery::corrupted(
                    &path,
                    0,
                    "manifest generation differs from its name",
                ));
            }
            // A manifest a crash cut short: the one before it still holds
            // (checkpoints remove older files only after the new one is
            // durable).
            Err(ManifestDefect::Torn(_)) => {}
            Err(ManifestDefect::Corrupt(why)) => {
                return Err(crate::recovery::corrupted(&path, 0, why));
            }
            Err(ManifestDefect::Unsupported(why)) => {
                return Err(WalError::UnsupportedFormat(format!(
                    "{}: {why}",
                    path.display()
                )));
            }
        }
    }
    Ok((None, highest))
}

fn read_whole(engine: &Engine, path: &std::path::Path) -> Result<Vec<u8>> {
    let file = engine
        .with_descriptor(|| engine.config.storage.open(path, OpenMode::Read))
        .map_err(|e| io_at(path, "open", e))?;
    let len = file.file_len().map_err(|e| io_at(path, "stat", e))?;
    let len = usize::try_from(len).map_err(|_| {
        crate::recovery::corrupted(path, 0, format_args!("{len} bytes is too long"))
    })?;
    let mut buf = vec![0u8; len];
    read_exact_at(&*file, &mut buf, 0).map_err(|e| io_at(path, "read", e))?;
    Ok(buf)
}

/// The manifest's keys, moved out of it (its other fields stay).
fn state_from(m: &mut Manifest) -> State {
    let mut st = State::new();
    for k in std::mem::take(&mut m.keys) {
        let segments = k.segments.into_iter().map(seg_state).collect();
        st.insert(
            k.key_hash,
            KeyState {
                key: k.key,
                next_sequence: k.next_sequence,
                segments,
            },
        );
    }
    st
}

/// A manifest's segment as replay tracks it (durable up to its end).
fn seg_state(s: ManifestSegment) -> (u64, SegState) {
    let seg = SegState {
        version: s.version,
        header_len: s.header_len,
        salt: s.salt,
        rotate_at_ms: s.rotate_at_ms,
        end: s.end,
        durable_end: s.end,
        start: s.start,
        last: LastRecord::from_raw(s.last),
        file_name: s.file_name,
    };
    (s.sequence, seg)
}

/// Whether the listing's segment files are exactly the manifest's (by key
/// hash and sequence, as [`listed_segments`] counts them).
fn lists_exactly(m: &Manifest, names: &[String]) -> bool {
    let mut on_disk: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    on_disk.sort_unstable();
    on_disk.dedup();
    let mut listed = 0;
    for k in &m.keys {
        for s in &k.segments {
            if on_disk.binary_search(&(k.key_hash, s.sequence)).is_err() {
                return false;
            }
            listed += 1;
        }
    }
    listed == on_disk.len()
}

/// The segment files of a listing (their names), by key hash and sequence.
type OnDisk<'a> = BTreeMap<(u64, u64), &'a str>;

/// The segment files of the listing, by key hash and sequence.
fn listed_segments(names: &[String]) -> OnDisk<'_> {
    names
        .iter()
        .filter_map(|n| parse_segment_file_name(n).map(|ids| (ids, n.as_str())))
        .collect()
}

/// Open from manifest `m`. A clean manifest with no journal after it and
/// exactly its segments on disk opens without touching a segment file;
/// anything else is replayed (writable handles only: the caller opens
/// read-only handles another way then).
pub(crate) fn load(
    engine: &Engine,
    mut m: Manifest,
    names: &[String],
    files: &JournalFiles,
    highest_generation: u64,
    report: &mut RecoveryReport,
) -> Result<Option<Loaded>> {
    let journals: Vec<(u64, &String)> = files
        .journals
        .range(m.journal_start..)
        .map(|(s, n)| (*s, n))
        .collect();
    let mut start = JournalStart {
        next_file: m.journal_start,
        next_frame: m.next_frame,
        manifest_generation: highest_generation,
        bytes_since_checkpoint: 0,
    };
    if m.clean && journals.is_empty() && lists_exactly(&m, names) {
        // The fast path: the key table straight from the manifest.
        report.segments = m.keys.iter().map(|k| k.segments.len()).sum();
        let mut keys = KeyTable::default();
        keys.reserve(m.keys.len());
        for k in std::mem::take(&mut m.keys) {
            let segments = k.segments.into_iter().map(seg_state);
            if let Some(log) = key_log(engine, k.key_hash, k.key, k.next_sequence, segments) {
                keys.insert(k.key_hash, log);
            }
        }
        let stale = files.journals.keys().next().is_some() || files.manifests.len() > 1;
        return Ok(Some(Loaded {
            keys,
            start,
            needs_checkpoint: stale && !engine.is_read_only(),
        }));
    }
    let mut st = state_from(&mut m);
    let on_disk = listed_segments(names);
    if m.clean && journals.is_empty() {
        refuse_unlisted(engine, &st, &on_disk)?;
    }
    if engine.is_read_only() {
        return Ok(None);
    }
    report.segments = on_disk.len();
    // Everything that can refuse the open is checked before anything on
    // disk changes: the strays, then every frame (read, not applied); then
    // the newest journal file is sealed (torn tail cut, fdatasync'ed), so
    // that every frame the second pass applies is durable.
    let strays = check_strays(engine, &st, &on_disk)?;
    let mut replayer = Replayer::new(engine, &mut st, report);
    replayer.replay_all(&journals, &m)?;
    replayer.apply = true;
    cut_to_manifest(engine, replayer.st, &on_disk, &replayer.cuts)?;
    start.next_frame = replayer.replay_all(&journals, &m)?;
    start.next_file = match journals.last() {
        Some((s, _)) if replayer.dropped_last_file => *s,
        Some((s, _)) => s + 1,
        None => m.journal_start,
    };
    start.bytes_since_checkpoint = replayer.frame_bytes;
    drop(replayer);
    remove_strays(engine, &st, strays, report)?;
    check_present(engine, &st, &on_disk)?;
    let keys = build(engine, st)?;
    // No checkpoint here: the journal still holds everything replay wrote
    // (its last file is durable), so the segments need not be synced now;
    // a crash before the next checkpoint replays the same frames again.
    Ok(Some(Loaded {
        keys,
        start,
        needs_checkpoint: false,
    }))
}

/// Cut each key's newest listed segment back to the manifest's end: bytes
/// after it were written after the checkpoint, and the journal holds
/// whatever of them counts.
fn cut_to_manifest(
    engine: &Engine,
    st: &State,
    on_disk: &OnDisk<'_>,
    cuts: &std::collections::HashMap<(u64, u64), u64>,
) -> Result<()> {
    for (hash, k) in st {
        let Some((seq, seg)) = k.segments.iter().next_back() else {
            continue;
        };
        if !on_disk.contains_key(&(*hash, *seq)) {
            continue;
        }
        let path = engine.config.dir.join(&seg.file_name);
        let file = open_rw(engine, &path)?;
        let len = file.file_len().map_err(|e| io_at(&path, "stat", e))?;
        // A truncation in the journal may have cut it already (the second
        // pass cuts it again, to the same place).
        let cut_by_journal = cuts.get(&(*hash, *seq)).is_some_and(|&c| c <= len);
        if len < seg.end && !cut_by_journal {
            return Err(crate::recovery::corrupted(
                &path,
                len,
                format_args!("the checkpoint made {} bytes durable", seg.end),
            ));
        }
        if len > seg.end {
            file.set_len(seg.end)
                .map_err(|e| io_at(&path, "truncate", e))?;
        }
    }
    Ok(())
}

/// After a clean close no crash of this WAL can have left a segment the
/// manifest does not list (a writer makes its journal file before its
/// first new segment): such a file was written by something else, perhaps
/// an earlier version of this crate, and is never deleted.
fn refuse_unlisted(engine: &Engine, st: &State, on_disk: &OnDisk<'_>) -> Result<()> {
    let unlisted = on_disk
        .iter()
        .find(|((hash, seq), _)| !st.get(hash).is_some_and(|k| k.segments.contains_key(seq)));
    match unlisted {
        Some((_, name)) => Err(WalError::ForeignFile {
            path: engine.config.dir.join(name),
            reason: "a segment-named file that the manifest of a clean close does not list: \
                     this WAL did not write it (an earlier version writing the directory \
                     after this one? remove the manifest files to open it by scanning \
                     the segments)"
                .into(),
        }),
        None => Ok(()),
    }
}

/// A segment file the manifest does not list.
struct Stray {
    ids: (u64, u64),
    path: std::path::PathBuf,
    len: u64,
}

/// The segment files the manifest does not list: created after the
/// checkpoint, they are rebuilt from the journal if it names them, and
/// removed otherwise. A file this WAL cannot have written is refused before
/// anything changes, never removed.
fn check_strays(engine: &Engine, st: &State, on_disk: &OnDisk<'_>) -> Result<Vec<Stray>> {
    let mut strays = Vec::new();
    for (&(hash, seq), name) in on_disk {
        if st.get(&hash).is_some_and(|k| k.segments.contains_key(&seq)) {
            continue;
        }
        let path = engine.config.dir.join(name);
        let file = open_rw(engine, &path)?;
        let opened = crate::recovery::read_opened_header(&path, file)?;
        let foreign = crate::origin::foreign(&*opened.file, (hash, seq), &opened.head, opened.len)
            .map_err(|e| io_at(&path, "read", e))?;
        if let Some(reason) = foreign {
            return Err(WalError::ForeignFile { path, reason });
        }
        strays.push(Stray {
            ids: (hash, seq),
            path,
            len: opened.len,
        });
    }
    Ok(strays)
}

/// Remove the strays replay did not rebuild, reporting each: what a crash
/// left of a segment whose creation no durable frame names.
fn remove_strays(
    engine: &Engine,
    st: &State,
    strays: Vec<Stray>,
    report: &mut RecoveryReport,
) -> Result<()> {
    for stray in strays {
        let (hash, seq) = stray.ids;
        if st.get(&hash).is_some_and(|k| k.segments.contains_key(&seq)) {
            continue;
        }
        let removed = remove_if_present(&*engine.config.storage, &stray.path)
            .map_err(|e| io_at(&stray.path, "remove", e))?;
        if !removed {
            // Rebuilt by a frame, then removed by a later one (retention).
            continue;
        }
        engine.dir_changed();
        report.torn_tails.push(TornTail {
            path: stray.path,
            file_position: 0,
            bytes_dropped: stray.len,
            reason: "a segment created after the last checkpoint that no durable journal \
                     frame names"
                .into(),
            repaired: true,
        });
    }
    Ok(())
}

/// Every segment still in the state must exist on disk (or have been made
/// by replay).
fn check_present(engine: &Engine, st: &State, on_disk: &OnDisk<'_>) -> Result<()> {
    for (hash, k) in st {
        for (seq, seg) in &k.segments {
            if seg.durable_end > 0 && !on_disk.contains_key(&(*hash, *seq)) {
                let path = engine.config.dir.join(&seg.file_name);
                return Err(crate::recovery::corrupted(
                    &path,
                    0,
                    "the manifest lists this segment but it is missing",
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn open_rw(engine: &Engine, path: &std::path::Path) -> Result<Arc<dyn StorageFile>> {
    engine
        .with_descriptor(|| engine.config.storage.open(path, OpenMode::ReadWrite))
        .map_err(|e| io_at(path, "open", e))
}

/// Build the key table from the replayed state.
fn build(engine: &Engine, st: State) -> Result<KeyTable> {
    let mut keys = KeyTable::default();
    keys.reserve(st.len());
    for (hash, k) in st {
        if let Some(log) = key_log(engine, hash, k.key, k.next_sequence, k.segments.into_iter()) {
            keys.insert(hash, log);
        }
    }
    Ok(keys)
}

/// One key's log over `segments` (sorted by sequence, oldest first);
/// `None` if it has none.
fn key_log(
    engine: &Engine,
    hash: u64,
    key: Vec<u8>,
    next_sequence: u64,
    segments: impl ExactSizeIterator<Item = (u64, SegState)>,
) -> Option<Arc<KeyLog>> {
    let mut table: Vec<Arc<Segment>> = Vec::with_capacity(segments.len());
    let mut newest_name = None;
    for (seq, s) in segments {
        let seg = Segment::new(SegmentInit {
            key_hash: hash,
            sequence: seq,
            path: engine.config.dir.join(&s.file_name),
            version: s.version,
            salt: s.salt,
            header_len: s.header_len,
            rotate_at_ms: s.rotate_at_ms,
            end: s.end,
            dir_generation: 1,
            durable_end: s.durable_end,
            start: s.start,
            last: s.last,
        });
        table.push(Arc::new(seg));
        newest_name = Some(s.file_name);
    }
    let prefix = crate::key::into_name_prefix(newest_name?);
    let active = table.last().filter(|s| s.is_checksummed()).cloned();
    let next = next_sequence.max(table.last().map_or(1, |s| s.sequence + 1));
    let writer = Writer::recovered(next, active);
    Some(Arc::new(KeyLog::new(key, hash, prefix, table, writer)))
}
