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
use crate::key::parse_segment_file_name;
use crate::keylog::{KeyLog, Writer};
use crate::options::RecoveryMode;
use crate::segment::{Segment, SegmentInit};
use crate::storage::{StorageFile, read_exact_at};

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
pub(crate) fn open_engine(
    config: crate::options::Config,
    read_only: Option<String>,
) -> Result<(Arc<Engine>, RecoveryReport)> {
    let engine = Arc::new(Engine::new(config, read_only));
    let mut report = RecoveryReport::default();
    let keys = load(&engine, &mut report)?;
    *engine
        .keys
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    Ok((engine, report))
}

/// Build the key table from the directory.
pub(crate) fn load(engine: &Engine, report: &mut RecoveryReport) -> Result<KeyTable> {
    let dir = &engine.config.dir;
    let names = engine
        .config
        .storage
        .list_dir(dir)
        .map_err(|e| io_at(dir, "list", e))?;
    let mut groups: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
    for name in names {
        if let Some((hash, seq)) = parse_segment_file_name(&name) {
            groups.entry(hash).or_default().insert(seq, name);
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
        let OpenedHeader {
            file,
            len,
            head,
            decoded,
        } = read_header(engine, &path)?;
        let prev = table.values().next_back().map(|s| s.version);
        let checked =
            decoded.and_then(|h| in_context(&h, hash, seq, key.as_deref(), prev).map(|()| h));
        let header = match checked {
            Ok(h) => h,
            Err(Problem::Unsupported(v)) => {
                return Err(WalError::UnsupportedFormat(format!(
                    "segment {} has format version {v}; this build reads versions 1 and 2",
                    path.display()
                )));
            }
            Err(Problem::Bad(why)) if seq == last_seq => {
                let damaged = DamagedHeader {
                    path: &path,
                    file: &*file,
                    ids: (hash, seq),
                    head: &head,
                    len,
                };
                torn_header(engine, &damaged, &why, report)?;
                next_sequence = seq;
                continue;
            }
            Err(Problem::Bad(why)) => {
                refuse_foreign(&path, &*file, (hash, seq), len)?;
                return Err(corrupted(&path, 0, why));
            }
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
            end: len,
            dir_generation: 1,
        }));
        engine.adopt(&seg, file);
        table.insert(seq, seg);
    }
    drop_compaction_leftovers(engine, &mut table, report)?;
    let Some(key) = key else { return Ok(None) };
    for seg in table.values() {
        let is_last = table
            .last_key_value()
            .is_some_and(|(&s, _)| s == seg.sequence);
        // Legacy segments were never synced by 0.5, so any of them may end
        // torn; ours are synced when sealed, so only the last one may.
        if is_last || seg.version == FORMAT_VERSION_LEGACY {
            scan_tail(engine, seg, report)?;
        } else {
            sealed_padding(engine, seg)?;
        }
    }
    let active = table
        .values()
        .next_back()
        .filter(|s| s.is_checksummed())
        .cloned();
    let prefix = last_name
        .strip_suffix(crate::key::SEGMENT_EXT)
        .and_then(|s| s.rsplitn(3, '-').nth(2))
        .unwrap_or("")
        .to_owned();
    let mut writer = Writer::new(next_sequence);
    writer.active = active;
    Ok(Some(KeyLog::new(key, hash, prefix, table, writer)))
}

/// Why a segment header cannot be used.
pub(crate) enum Problem {
    /// A format version this build does not read.
    Unsupported(u32),
    /// Damaged, or does not fit its file name or key.
    Bad(String),
}

/// A segment file, opened, with its first bytes decoded as a header.
struct OpenedHeader {
    file: Arc<dyn StorageFile>,
    /// The file's length.
    len: u64,
    /// The file's first bytes (up to the longest header).
    head: Vec<u8>,
    decoded: std::result::Result<SegmentHeader, Problem>,
}

/// Open a segment file and decode its header.
fn read_header(engine: &Engine, path: &std::path::Path) -> Result<OpenedHeader> {
    let mode = engine.open_mode();
    let file = engine
        .with_descriptor(|| engine.config.storage.open(path, mode))
        .map_err(|e| io_at(path, "open", e))?;
    let len = file.file_len().map_err(|e| io_at(path, "stat", e))?;
    let mut head = vec![
        0u8;
        usize::try_from(len)
            .unwrap_or(MAX_HEADER_LEN)
            .min(MAX_HEADER_LEN)
    ];
    read_exact_at(&*file, &mut head, 0).map_err(|e| io_at(path, "read", e))?;
    let decoded = segment_header::decode(&head).map_err(|d| match d {
        HeaderDefect::UnsupportedVersion(v) => Problem::Unsupported(v),
        other => Problem::Bad(other.to_string()),
    });
    Ok(OpenedHeader {
        file,
        len,
        head,
        decoded,
    })
}

/// A header that decodes must also fit its file name and its key's other
/// segments. A torn version-2 header can look like a version-1 one (0.5
/// wrote zeros where the version now is), which these checks catch.
pub(crate) fn in_context(
    h: &SegmentHeader,
    hash: u64,
    seq: u64,
    key: Option<&[u8]>,
    prev_version: Option<u32>,
) -> std::result::Result<(), Problem> {
    let bad = |s: String| Err(Problem::Bad(s));
    if h.version != FORMAT_VERSION_LEGACY && (h.key_hash != Some(hash) || h.sequence != Some(seq)) {
        return bad(format!(
            "header names key hash {:?} sequence {:?}, the file name {hash} {seq}",
            h.key_hash, h.sequence
        ));
    }
    if h.version == FORMAT_VERSION_LEGACY && crate::key::key_hash(&h.key) != hash {
        return bad(format!("version-1 header's key does not hash to {hash}"));
    }
    if let Some(prev) = prev_version.filter(|&p| p > h.version) {
        return bad(format!(
            "version-{} header after a version-{prev} segment",
            h.version
        ));
    }
    if key.is_some_and(|k| k != h.key) {
        return bad("key differs from the key's other segments".into());
    }
    Ok(())
}

/// Retention removes a key's oldest segments and then syncs the directory;
/// a crash in between can bring back some removed files and not others,
/// leaving a gap. Segments below a gap are such leftovers if every one of
/// them has expired: remove them again. Otherwise a segment is missing
/// from the middle of the log, which is corruption.
fn drop_compaction_leftovers(
    engine: &Engine,
    table: &mut BTreeMap<u64, Arc<Segment>>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let v2: Vec<&Arc<Segment>> = table.values().filter(|s| s.is_checksummed()).collect();
    let Some(after_gap) = v2
        .windows(2)
        .rev()
        .find(|w| w[0].sequence + 1 != w[1].sequence)
        .map(|w| w[1].clone())
    else {
        return Ok(());
    };
    let now = engine.config.clock.now_unix_ms();
    let retention = engine.config.options.retention_ms();
    let below: Vec<Arc<Segment>> = table
        .range(..after_gap.sequence)
        .map(|(_, s)| s.clone())
        .collect();
    if !below
        .iter()
        .all(|s| crate::retention::expired(s, now, retention))
    {
        let missing = below.last().map_or(0, |s| s.sequence + 1);
        return Err(corrupted(
            &after_gap.path,
            0,
            format_args!("segment {missing} of this key is missing"),
        ));
    }
    for seg in below {
        table.remove(&seg.sequence);
        engine.cache.forget(seg.id());
        if engine.read_only.is_none() {
            match engine.config.storage.remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&seg.path, "remove expired", e)),
            }
            engine.dir_changed();
        }
        report.expired_leftovers.push(seg.path.clone());
    }
    Ok(())
}

/// A segment file whose header does not decode.
#[derive(Clone, Copy)]
struct DamagedHeader<'a> {
    path: &'a std::path::Path,
    file: &'a dyn StorageFile,
    /// Key hash and sequence, from the file name.
    ids: (u64, u64),
    head: &'a [u8],
    len: u64,
}

/// `ForeignFile` for a segment-named file whose header is unusable and
/// whose bytes this WAL cannot have written (`origin::foreign`).
fn refuse_foreign(
    path: &std::path::Path,
    file: &dyn StorageFile,
    ids: (u64, u64),
    len: u64,
) -> Result<()> {
    match crate::origin::foreign(file, ids, len).map_err(|e| io_at(path, "read", e))? {
        Some(reason) => Err(WalError::ForeignFile {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The last segment's header is unreadable. A file this WAL cannot have
/// written is refused, never deleted. With nothing valid after the header,
/// it is a segment whose creation was torn by a crash: it never held an
/// acknowledged record, so it is removed. Otherwise it is corruption.
fn torn_header(
    engine: &Engine,
    damaged: &DamagedHeader<'_>,
    defect: &str,
    report: &mut RecoveryReport,
) -> Result<()> {
    let DamagedHeader {
        path,
        file,
        ids,
        head,
        len,
    } = *damaged;
    refuse_foreign(path, file, ids, len)?;
    if let Some(q) = Cursor::default()
        .valid_record_after_damaged_header(file, ids, head, len)
        .map_err(|e| io_at(path, "read", e))?
    {
        return Err(corrupted(
            path,
            0,
            format_args!("{defect}, yet a valid record follows at {q}"),
        ));
    }
    if engine.config.recovery == RecoveryMode::AbsoluteConsistency {
        return Err(corrupted(
            path,
            0,
            format_args!("{defect} (torn segment creation refused by AbsoluteConsistency)"),
        ));
    }
    let repaired = engine.read_only.is_none();
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
        bytes_dropped: len,
        reason: defect.to_owned(),
        repaired,
    });
    Ok(())
}

/// A sealed segment should end at its last record: sealing cuts the
/// preallocated zeros off before the next segment is created. Should a file
/// still end in zeros (a cut that did not take), find where its records
/// end; if only zeros follow, the data ends there (a writer cuts them off).
/// Anything else is left for reads to report as corruption.
fn sealed_padding(engine: &Engine, seg: &Arc<Segment>) -> Result<()> {
    let end = seg.end();
    let Some(fixed_len) = SegmentMeta::from(&**seg)
        .record_version()
        .map(|v| v.fixed_len() as u64)
    else {
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
        .valid_end(&*file, SegmentMeta::from(&**seg), seg.header_len, end)
        .map_err(read_err)?;
    if bad.is_some() && ends_in_padding(engine, seg, &*file, &mut cursor, pos)? {
        seg.set_end(pos);
        seg.mark_verified(pos);
    }
    Ok(())
}

/// Whether everything from `pos` to the segment's end is zeros, that is
/// preallocated space after its last record (FORMAT.md §8). A writer cuts
/// them off, durably, so that only a key's newest segment ever ends in
/// zeros; nothing is reported.
fn ends_in_padding(
    engine: &Engine,
    seg: &Segment,
    file: &dyn StorageFile,
    cursor: &mut Cursor,
    pos: u64,
) -> Result<bool> {
    let padding = seg.is_checksummed()
        && cursor
            .zero_through(file, pos, seg.end())
            .map_err(|e| io_at(&seg.path, "read", e))?;
    if padding && engine.read_only.is_none() {
        cut_durably(seg, file, pos)?;
    }
    Ok(padding)
}

/// Truncate the segment's file at `pos` and make the cut durable.
fn cut_durably(seg: &Segment, file: &dyn StorageFile, pos: u64) -> Result<()> {
    file.set_len(pos)
        .map_err(|e| io_at(&seg.path, "truncate", e))?;
    file.sync_data().map_err(|e| io_at(&seg.path, "sync", e))
}

/// Find where the segment's valid data ends and cut off a torn tail.
fn scan_tail(engine: &Engine, seg: &Arc<Segment>, report: &mut RecoveryReport) -> Result<()> {
    let file = engine.file(seg)?;
    let meta = SegmentMeta::from(&**seg);
    let end = seg.end();
    let mut cursor = Cursor::default();
    let read_err = |e| io_at(&seg.path, "read", e);
    let (pos, bad) = cursor
        .valid_end(&*file, meta, seg.header_len, end)
        .map_err(read_err)?;
    if let Some(bad) = bad
        && !ends_in_padding(engine, seg, &*file, &mut cursor, pos)?
    {
        if let Some(q) = cursor
            .any_valid_after(&*file, meta, pos + 1, end)
            .map_err(read_err)?
        {
            return Err(corrupted(
                &seg.path,
                pos,
                format_args!("{bad}; a valid record follows at {q}"),
            ));
        }
        if engine.config.recovery == RecoveryMode::AbsoluteConsistency {
            return Err(corrupted(
                &seg.path,
                pos,
                format_args!("torn tail ({bad}) refused by AbsoluteConsistency"),
            ));
        }
        let repaired = engine.read_only.is_none() && seg.is_checksummed();
        if repaired {
            // Cut the torn bytes and make the cut durable, so a later crash
            // cannot put them back behind records appended after this open.
            cut_durably(seg, &*file, pos)?;
        }
        report.torn_tails.push(TornTail {
            path: seg.path.clone(),
            file_position: pos,
            bytes_dropped: end - pos,
            reason: bad.to_string(),
            repaired,
        });
    }
    seg.set_end(pos);
    seg.mark_verified(pos);
    Ok(())
}
