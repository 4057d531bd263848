//! Opening: list the directory once, read each segment's header, and scan
//! each key's last segment to find where its valid data ends.
//!
//! Named policy ([`RecoveryMode`]): a damaged record at the end of a key's
//! last segment with nothing valid after it is a torn write and is cut off
//! (`TolerateTornTail`); damage followed by a valid record is corruption and
//! fails the open, naming the file and offset.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cursor::{Cursor, SegmentMeta};
use crate::engine::{Engine, KeyTable};
use crate::error::{Result, WalError, io_at};
use crate::format::segment_header::{self, HeaderDefect, MAX_HEADER_LEN, SegmentHeader};
use crate::format::{FORMAT_VERSION_LEGACY, REC2_FIXED_LEN};
use crate::journal::checkpoint;
use crate::journal::replay;
use crate::journal::{JournalStart, KnownFiles};
use crate::key::parse_segment_file_name;
use crate::keylog::{KeyLog, Writer};
use crate::rules::recovery::{
    DamageVerdict, DamagedHeaderFacts, DamagedHeaderVerdict, GapVerdict, HeaderContext,
    HeaderVerdict, SegmentFacts, judge_damage, judge_damaged_header, judge_gaps, judge_header,
};
use crate::segment::{Segment, SegmentInit};
use crate::storage::{StorageFile, read_exact_at, remove_if_present};

/// What opening found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segment files found.
    pub segments: usize,
    /// Torn writes cut off (or, read-only, ignored) at the end of a key.
    pub torn_tails: Vec<TornTail>,
    /// Expired segments that an interrupted compaction had removed but a
    /// crash brought back; removed again (read-only: ignored).
    pub expired_leftovers: Vec<PathBuf>,
    /// Journal frames replayed into the segments (0 after a clean close).
    pub replayed_frames: u64,
}

/// A torn write found at the end of a key's log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Byte position in the file where the valid data ends.
    pub file_position: u64,
    /// Bytes after it that were not a valid record.
    pub bytes_dropped: u64,
    /// What was wrong with them.
    pub reason: String,
    /// Whether the bytes were removed from disk (a read-only open leaves them).
    pub repaired: bool,
}

pub(crate) fn corrupted(
    path: &std::path::Path,
    position: u64,
    what: impl std::fmt::Display,
) -> WalError {
    WalError::CorruptedData(format!(
        "segment {} at file position {position}: {what}",
        path.display()
    ))
}

/// An engine for `config` with its key table loaded from the directory.
///
/// With a manifest (FORMAT.md §13), the key table comes from it, and after
/// a crash the journal is replayed; without one (a new directory, or one an
/// earlier version wrote), from scanning the segments. A writable open then
/// checkpoints, so the directory has a manifest and no journal.
pub(crate) fn open_engine(
    config: crate::options::Config,
    read_only: Option<String>,
) -> Result<(Arc<Engine>, RecoveryReport)> {
    let engine = Arc::new(Engine::new(config, read_only));
    let mut report = RecoveryReport::default();
    let dir = &engine.config.dir;
    let (names, files) = replay::list(&engine)?;
    let (manifest, highest) = replay::newest_manifest(&engine, &files)?;
    let has_manifest = manifest.is_some();
    let loaded = match manifest {
        Some(m) => replay::load(&engine, m, &names, &files, highest, &mut report)?,
        None => None,
    };
    let (keys, start, needs_checkpoint) = match loaded {
        Some(l) => (l.keys, l.start, l.needs_checkpoint),
        None => {
            if !has_manifest && !files.journals.is_empty() && !engine.is_read_only() {
                let name = files.journals.values().next().cloned().unwrap_or_default();
                return Err(corrupted(
                    &dir.join(name),
                    0,
                    "a journal file without a manifest (the manifest was lost)",
                ));
            }
            let keys = load(&engine, &names, &mut report)?;
            let start = JournalStart {
                next_file: 1,
                next_frame: 0,
                manifest_generation: highest,
                bytes_since_checkpoint: 0,
            };
            (keys, start, !engine.is_read_only())
        }
    };
    engine.install_keys(keys);
    let known = KnownFiles {
        journals: files.journals.keys().copied().collect(),
        manifests: files.manifests.keys().copied().collect(),
    };
    engine.journal.resume(start, known);
    if needs_checkpoint {
        checkpoint::run(&engine, checkpoint::Kind::Clean)?;
    }
    if engine.config.background_checkpoints && engine.budget.enabled() && !engine.is_read_only() {
        crate::tail::Applier::start(&engine);
    }
    Ok((engine, report))
}

/// Build the key table by scanning the segments in `names`.
pub(crate) fn load(
    engine: &Engine,
    names: &[String],
    report: &mut RecoveryReport,
) -> Result<KeyTable> {
    let mut groups: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
    for name in names {
        if let Some((hash, seq)) = parse_segment_file_name(name) {
            groups.entry(hash).or_default().insert(seq, name.clone());
        }
    }
    let mut keys = KeyTable::default();
    for (hash, files) in groups {
        report.segments += files.len();
        if let Some(log) = load_key(engine, hash, &files, report)? {
            keys.insert(hash, Arc::new(log));
        }
    }
    Ok(keys)
}

fn load_key(
    engine: &Engine,
    hash: u64,
    files: &BTreeMap<u64, String>,
    report: &mut RecoveryReport,
) -> Result<Option<KeyLog>> {
    let Some((&last_seq, last_name)) = files.last_key_value() else {
        return Ok(None);
    };
    let mut key: Option<Vec<u8>> = None;
    let mut table: BTreeMap<u64, Arc<Segment>> = BTreeMap::new();
    let mut next_sequence = last_seq + 1;
    for (&seq, name) in files {
        let path = engine.config.dir.join(name);
        let opened = read_header(engine, &path)?;
        let ctx = HeaderContext {
            key_hash: hash,
            sequence: seq,
            key: key.as_deref(),
            prev_version: table.values().next_back().map(|s| s.version),
        };
        let header = match (judge_header(&opened.decoded, ctx), opened.decoded) {
            (HeaderVerdict::Usable, Ok(h)) => h,
            (HeaderVerdict::Unsupported(v), _) => {
                return Err(WalError::UnsupportedFormat(format!(
                    "segment {}: {}",
                    path.display(),
                    crate::rules::recovery::unsupported(v)
                )));
            }
            (HeaderVerdict::Unreadable(why), _) => {
                let damaged = DamagedHeader {
                    path: &path,
                    file: &*opened.file,
                    ids: (hash, seq),
                    head: &opened.head,
                    len: opened.len,
                };
                damaged_header(engine, &damaged, seq == last_seq, &why, report)?;
                next_sequence = seq;
                continue;
            }
            (HeaderVerdict::Usable, Err(d)) => return Err(corrupted(&path, 0, d)),
        };
        key.get_or_insert_with(|| header.key.clone());
        let seg = Arc::new(Segment::new(SegmentInit {
            key_hash: hash,
            sequence: seq,
            path,
            version: header.version,
            salt: header.salt,
            header_len: header.len as u64,
            rotate_at_ms: header.rotate_at_ms,
            end: opened.len,
            dir_generation: 1,
            durable_end: 0,
            start: header.len as u64,
            last: crate::segment::LastRecord::Unknown,
        }));
        engine.adopt(&seg, opened.file);
        table.insert(seq, seg);
    }
    drop_compaction_leftovers(engine, &mut table, report)?;
    let Some(key) = key else { return Ok(None) };
    for seg in table.values() {
        let newest = table
            .last_key_value()
            .is_some_and(|(&s, _)| s == seg.sequence);
        // Legacy segments were never synced by 0.5, so any of them may end
        // torn; ours are synced when sealed, so only the last one may.
        if newest || seg.version == FORMAT_VERSION_LEGACY {
            scan_tail(engine, seg, newest, report)?;
        } else {
            sealed_padding(engine, seg)?;
        }
    }
    let active = table
        .values()
        .next_back()
        .filter(|s| s.is_checksummed())
        .cloned();
    let prefix = crate::key::name_prefix(last_name);
    let writer = Writer::recovered(next_sequence, active);
    let segments = table.into_values().collect();
    Ok(Some(KeyLog::new(key, hash, prefix, segments, writer)))
}

/// A segment file, opened, with its first bytes decoded as a header.
pub(crate) struct OpenedHeader {
    pub file: Arc<dyn StorageFile>,
    /// The file's length.
    pub len: u64,
    /// The file's first bytes (up to the longest header).
    pub head: Vec<u8>,
    pub decoded: std::result::Result<SegmentHeader, HeaderDefect>,
}

/// Open a segment file and decode its header.
fn read_header(engine: &Engine, path: &std::path::Path) -> Result<OpenedHeader> {
    let mode = engine.open_mode();
    let file = engine
        .with_descriptor(|| engine.config.storage.open(path, mode))
        .map_err(|e| io_at(path, "open", e))?;
    read_opened_header(path, file)
}

/// Decode the header of an opened segment file (recovery and `verify`).
pub(crate) fn read_opened_header(
    path: &std::path::Path,
    file: Arc<dyn StorageFile>,
) -> Result<OpenedHeader> {
    let len = file.file_len().map_err(|e| io_at(path, "stat", e))?;
    let mut head = vec![
        0u8;
        usize::try_from(len)
            .unwrap_or(MAX_HEADER_LEN)
            .min(MAX_HEADER_LEN)
    ];
    read_exact_at(&*file, &mut head, 0).map_err(|e| io_at(path, "read", e))?;
    let decoded = segment_header::decode(&head);
    Ok(OpenedHeader {
        file,
        len,
        head,
        decoded,
    })
}

/// Remove the leftovers of a compaction a crash interrupted, or fail the
/// open if a segment is missing from the middle of the log (the rule is
/// `rules::recovery::judge_gaps`).
fn drop_compaction_leftovers(
    engine: &Engine,
    table: &mut BTreeMap<u64, Arc<Segment>>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let segments: Vec<Arc<Segment>> = table.values().cloned().collect();
    let facts: Vec<SegmentFacts> = segments.iter().map(|s| segment_facts(s)).collect();
    let now = engine.config.clock.now_unix_ms();
    let retention = engine.config.options.retention_ms();
    let count = match judge_gaps(&facts, now, retention) {
        GapVerdict::Contiguous => return Ok(()),
        GapVerdict::Missing { missing, after } => {
            return Err(corrupted(
                &segments[after].path,
                0,
                format_args!("segment {missing} of this key is missing"),
            ));
        }
        GapVerdict::Leftovers { count } => count,
    };
    for seg in &segments[..count] {
        table.remove(&seg.sequence);
        engine.cache.forget(seg.id());
        if !engine.is_read_only() {
            remove_if_present(&*engine.config.storage, &seg.path)
                .map_err(|e| io_at(&seg.path, "remove expired", e))?;
            engine.dir_changed();
        }
        report.expired_leftovers.push(seg.path.clone());
    }
    Ok(())
}

/// A segment's facts for the gap rule.
fn segment_facts(seg: &Segment) -> SegmentFacts {
    SegmentFacts {
        sequence: seg.sequence,
        version: seg.version,
        rotate_at_ms: seg.rotate_at_ms,
    }
}

/// A segment file whose header does not decode.
#[derive(Clone, Copy)]
pub(crate) struct DamagedHeader<'a> {
    pub path: &'a std::path::Path,
    pub file: &'a dyn StorageFile,
    /// Key hash and sequence, from the file name.
    pub ids: (u64, u64),
    pub head: &'a [u8],
    pub len: u64,
}

impl DamagedHeader<'_> {
    /// What the rules need to judge it: whether this WAL could have written
    /// it and, if so and it is the newest segment, whether a verifiable
    /// record follows the damage.
    pub fn facts(&self, newest: bool) -> Result<DamagedHeaderFacts> {
        let read_err = |e| io_at(self.path, "read", e);
        let foreign =
            crate::origin::foreign(self.file, self.ids, self.head, self.len).map_err(read_err)?;
        let valid_record_at = if foreign.is_none() && newest {
            Cursor::default()
                .valid_record_after_damaged_header(self.file, self.ids, self.head, self.len)
                .map_err(read_err)?
        } else {
            None
        };
        Ok(DamagedHeaderFacts {
            newest,
            foreign,
            valid_record_at,
        })
    }
}

/// A segment's header is unreadable: refuse a file this WAL cannot have
/// written (never deleted), fail on corruption, and remove the newest
/// segment whose creation a crash cut short (it never held an acknowledged
/// record; the rule is `rules::recovery::judge_damaged_header`).
fn damaged_header(
    engine: &Engine,
    damaged: &DamagedHeader<'_>,
    newest: bool,
    defect: &str,
    report: &mut RecoveryReport,
) -> Result<()> {
    let path = damaged.path;
    match judge_damaged_header(&damaged.facts(newest)?, defect, engine.config.recovery) {
        DamagedHeaderVerdict::Foreign(reason) => {
            return Err(WalError::ForeignFile {
                path: path.to_path_buf(),
                reason,
            });
        }
        DamagedHeaderVerdict::Corrupt(reason) => return Err(corrupted(path, 0, reason)),
        DamagedHeaderVerdict::TornCreation => {}
    }
    let repaired = !engine.is_read_only();
    if repaired {
        engine
            .config
            .storage
            .remove_file(path)
            .map_err(|e| io_at(path, "remove torn", e))?;
        engine.dir_changed();
    }
    report.torn_tails.push(TornTail {
        path: path.to_path_buf(),
        file_position: 0,
        bytes_dropped: damaged.len,
        reason: defect.to_owned(),
        repaired,
    });
    Ok(())
}

/// A sealed segment should end at its last record: sealing cuts the
/// preallocated zeros off before the next segment is created. Should a file
/// still end in zeros (a cut that did not take), find where its records
/// end; if the rules call what follows padding, the data ends there (a
/// writer cuts it off). Damage is left for reads to report: opening does
/// not read every sealed segment.
fn sealed_padding(engine: &Engine, seg: &Arc<Segment>) -> Result<()> {
    let end = seg.end();
    let meta = SegmentMeta::from(&**seg);
    let Some(fixed_len) = meta.record_version().map(|v| v.fixed_len() as u64) else {
        return Ok(());
    };
    if end < seg.header_len + fixed_len {
        return Ok(());
    }
    let file = engine.file(seg)?;
    let read_err = |e| io_at(&seg.path, "read", e);
    let mut last = [0u8; REC2_FIXED_LEN];
    read_exact_at(&*file, &mut last, end - REC2_FIXED_LEN as u64).map_err(read_err)?;
    if last.iter().any(|&b| b != 0) {
        return Ok(());
    }
    let mut cursor = Cursor::default();
    let (pos, bad) = cursor
        .valid_end(&*file, meta, seg.header_len, end)
        .map_err(read_err)?;
    let Some(bad) = bad else { return Ok(()) };
    let facts = cursor
        .damage_facts(&*file, meta, (pos, end), bad, false, false)
        .map_err(read_err)?;
    if judge_damage(&facts, engine.config.recovery) == DamageVerdict::Padding {
        cut_padding(engine, seg, &*file, pos)?;
        seg.set_end(pos, &engine.budget);
        seg.mark_verified(pos);
    }
    Ok(())
}

/// Preallocated space after the last record (FORMAT.md §8): a writer cuts
/// it off, durably, so that only a key's newest segment ever ends in zeros;
/// nothing is reported.
fn cut_padding(engine: &Engine, seg: &Segment, file: &dyn StorageFile, pos: u64) -> Result<()> {
    if !engine.is_read_only() {
        cut_durably(engine, seg, file, pos)?;
    }
    Ok(())
}

/// Truncate the segment's file at `pos` and make the cut durable.
fn cut_durably(engine: &Engine, seg: &Segment, file: &dyn StorageFile, pos: u64) -> Result<()> {
    file.set_len(pos)
        .map_err(|e| io_at(&seg.path, "truncate", e))?;
    engine
        .sync_file(file)
        .map_err(|e| io_at(&seg.path, "sync", e))
}

/// Find where the segment's valid data ends and act on the rules' verdict:
/// padding and torn tails are cut off, corruption fails the open.
fn scan_tail(
    engine: &Engine,
    seg: &Arc<Segment>,
    newest: bool,
    report: &mut RecoveryReport,
) -> Result<()> {
    let file = engine.file(seg)?;
    let meta = SegmentMeta::from(&**seg);
    let end = seg.end();
    let mut cursor = Cursor::default();
    let read_err = |e| io_at(&seg.path, "read", e);
    let (pos, bad) = cursor
        .valid_end(&*file, meta, seg.header_len, end)
        .map_err(read_err)?;
    if let Some(bad) = bad {
        let facts = cursor
            .damage_facts(&*file, meta, (pos, end), bad, newest, true)
            .map_err(read_err)?;
        match judge_damage(&facts, engine.config.recovery) {
            DamageVerdict::Padding => cut_padding(engine, seg, &*file, pos)?,
            DamageVerdict::Corrupt { reason, .. } => {
                return Err(corrupted(&seg.path, pos, reason));
            }
            DamageVerdict::TornTail => {
                let repaired = !engine.is_read_only() && seg.is_checksummed();
                if repaired {
                    // Cut the torn bytes and make the cut durable, so a later
                    // crash cannot put them back behind records appended
                    // after this open.
                    cut_durably(engine, seg, &*file, pos)?;
                }
                report.torn_tails.push(TornTail {
                    path: seg.path.clone(),
                    file_position: pos,
                    bytes_dropped: end - pos,
                    reason: facts.defect,
                    repaired,
                });
            }
        }
    }
    seg.set_end(pos, &engine.budget);
    seg.mark_verified(pos);
    Ok(())
}
