//! `nano-wal verify`'s library side: every record of every segment checked,
//! each damaged file reported with its position, continuing past damage.

use crate::cursor::{Cursor, SegmentMeta};
use crate::error::{Result, WalError, io_at};
use crate::key::{key_hash, parse_segment_file_name};
use crate::options::{RecoveryMode, WalBuilder};
use crate::recovery::{DamagedHeader, OpenedHeader, TornTail, read_opened_header};
use crate::rules::recovery::{
    DamageVerdict, DamagedHeaderVerdict, GapVerdict, HeaderContext, HeaderVerdict, SegmentFacts,
    judge_damage, judge_damaged_header, judge_gaps, judge_header, unsupported,
};
use crate::storage::{OpenMode, Storage, StorageFile, refused_file_type};
use crate::wal::Wal;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Damage found by [`Verifier::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Corruption {
    /// The segment file (the directory, for a failure to open it that the
    /// checks of the files did not find).
    pub path: PathBuf,
    /// Byte position in the file where the damage starts.
    pub file_position: u64,
    /// What is wrong.
    pub reason: String,
}

/// What [`Verifier::run`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Keys checked.
    pub keys: usize,
    /// Segment files checked.
    pub segments: usize,
    /// Records that passed their checks.
    pub records: u64,
    /// Bytes read from segment files.
    pub bytes_checked: u64,
    /// Torn writes at the end of a key: a crash cut a write short. Not an
    /// error; a writer's open cuts them off.
    pub torn_tails: Vec<TornTail>,
    /// Expired segments an interrupted compaction left behind. Not an
    /// error; a writer's open removes them.
    pub expired_leftovers: Vec<PathBuf>,
    /// Damage that is not a torn tail: opening the directory, or reading the
    /// records past it, fails.
    pub corruptions: Vec<Corruption>,
}

impl VerifyReport {
    /// Whether no corruption was found (torn tails and leftovers are fine).
    pub fn is_ok(&self) -> bool {
        self.corruptions.is_empty()
    }
}

/// Checks every record of a directory (or of one key) against its checksum,
/// and every segment header, file by file rather than through a [`Wal`]
/// open: so it reports every damaged segment, also where opening stops at
/// the first.
///
/// It reports the verdicts of the rules opening applies (FORMAT.md §8, one
/// module for both), in the builder's recovery mode: damage at the end of a
/// key's newest segment with no verifiable record after it is a torn tail;
/// zeros after the last record are preallocated space; expired segments
/// below a gap are leftovers of an interrupted compaction; a file this WAL
/// did not write is foreign; any other damage is corruption.
#[derive(Debug)]
pub struct Verifier {
    builder: WalBuilder,
    /// key hash → sequence → file name.
    keys: BTreeMap<u64, BTreeMap<u64, String>>,
    total_bytes: u64,
}

impl Verifier {
    /// List `dir`'s segments (only `key`'s, if given), with the default
    /// settings.
    ///
    /// # Errors
    /// As [`Verifier::from_builder`].
    pub fn new(dir: impl AsRef<Path>, key: Option<&[u8]>) -> Result<Self> {
        Self::from_builder(Wal::builder(dir), key)
    }

    /// List the builder's directory's segments (only `key`'s, if given). The
    /// builder's retention and clock decide which segments below a gap are
    /// expired leftovers.
    ///
    /// # Errors
    /// A directory that cannot be listed; [`WalError::EntryNotFound`] if
    /// `key` is given and has no segment.
    pub fn from_builder(builder: WalBuilder, key: Option<&[u8]>) -> Result<Self> {
        builder.validate()?;
        let dir = builder.config.dir.clone();
        let storage = builder.config.storage.clone();
        let names = storage.list_dir(&dir).map_err(|e| io_at(&dir, "list", e))?;
        let only = key.map(key_hash);
        let mut keys: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
        let mut total_bytes = 0;
        for name in names {
            let Some((hash, seq)) = parse_segment_file_name(&name) else {
                continue;
            };
            if only.is_some_and(|h| h != hash) {
                continue;
            }
            // A file removed since the listing counts as empty here and is
            // skipped when checked.
            total_bytes += storage
                .open(&dir.join(&name), OpenMode::Read)
                .and_then(|f| f.file_len())
                .unwrap_or(0);
            keys.entry(hash).or_default().insert(seq, name);
        }
        if let (Some(key), true) = (key, keys.is_empty()) {
            return Err(WalError::EntryNotFound(format!(
                "no key {:?} in {}",
                String::from_utf8_lossy(key),
                dir.display()
            )));
        }
        Ok(Self {
            builder,
            keys,
            total_bytes,
        })
    }

    /// Bytes in the segment files to check (for a progress bar).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Segment files to check.
    pub fn segment_count(&self) -> usize {
        self.keys.values().map(BTreeMap::len).sum()
    }

    /// Check everything. `progress` is called with the number of bytes
    /// checked so far, often.
    ///
    /// # Errors
    /// I/O errors. Damage is not an error: it is in the report.
    pub fn run(self, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        let config = &self.builder.config;
        let mut run = Run {
            dir: &config.dir,
            storage: &*config.storage,
            retention_ms: config.options.retention_ms(),
            now_unix_ms: config.clock.now_unix_ms(),
            mode: config.recovery,
            report: VerifyReport::default(),
            progress,
        };
        for (&hash, files) in &self.keys {
            run.report.keys += 1;
            run.key(hash, files)?;
        }
        // The verdicts are opening's own (`rules::recovery`), so a directory
        // whose report is ok opens; the simulator's arbitrary-directory
        // oracle checks that on every input it makes.
        Ok(run.report)
    }
}

/// A segment file whose header was read and accepted.
struct Opened {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    len: u64,
    meta: SegmentMeta,
    header_len: u64,
    rotate_at_ms: u64,
}

struct Run<'a> {
    dir: &'a Path,
    storage: &'a dyn Storage,
    retention_ms: u64,
    now_unix_ms: u64,
    /// The recovery mode whose verdicts are reported.
    mode: RecoveryMode,
    report: VerifyReport,
    progress: &'a mut dyn FnMut(u64),
}

impl Run<'_> {
    fn advance(&mut self, bytes: u64) {
        self.report.bytes_checked += bytes;
        (self.progress)(self.report.bytes_checked);
    }

    fn corrupt(&mut self, path: &Path, file_position: u64, reason: impl ToString) {
        self.report.corruptions.push(Corruption {
            path: path.to_path_buf(),
            file_position,
            reason: reason.to_string(),
        });
    }

    fn torn(&mut self, path: &Path, file_position: u64, len: u64, reason: impl ToString) {
        self.report.torn_tails.push(TornTail {
            path: path.to_path_buf(),
            file_position,
            bytes_dropped: len - file_position,
            reason: reason.to_string(),
            repaired: false,
        });
    }

    /// A file the WAL will not touch: opening fails with `ForeignFile`.
    fn foreign(&mut self, path: &Path, reason: impl std::fmt::Display) {
        self.corrupt(
            path,
            0,
            format_args!("foreign file: {reason}; nano-wal does not touch it"),
        );
    }

    /// Check one key's segments: their headers first, as recovery does,
    /// then every record. Every verdict comes from `rules::recovery`, the
    /// rules opening applies.
    fn key(&mut self, hash: u64, files: &BTreeMap<u64, String>) -> Result<()> {
        let last_seq = files.last_key_value().map_or(0, |(&s, _)| s);
        let mut opened: Vec<Opened> = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        for (&seq, name) in files {
            let path = self.dir.join(name);
            let file = match self.storage.open(&path, OpenMode::Read) {
                Ok(f) => f,
                // Removed by a writer's retention since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => match refused_file_type(&e) {
                    Some(kind) => {
                        self.report.segments += 1;
                        self.foreign(&path, format!("it is {kind}, not a regular file"));
                        continue;
                    }
                    None => return Err(io_at(&path, "open", e)),
                },
            };
            self.report.segments += 1;
            let header = read_opened_header(&path, file)?;
            let ctx = HeaderContext {
                key_hash: hash,
                sequence: seq,
                key: key.as_deref(),
                prev_version: opened.last().map(|o| o.meta.version),
            };
            let decoded = match (judge_header(&header.decoded, ctx), &header.decoded) {
                (HeaderVerdict::Usable, Ok(h)) => h.clone(),
                (HeaderVerdict::Unsupported(v), _) => {
                    self.corrupt(&path, 0, unsupported(v));
                    self.advance(header.len);
                    continue;
                }
                (HeaderVerdict::Unreadable(why), _) => {
                    self.damaged_header(&path, &header, (hash, seq), seq == last_seq, &why)?;
                    self.advance(header.len);
                    continue;
                }
                (HeaderVerdict::Usable, Err(d)) => {
                    self.corrupt(&path, 0, d);
                    self.advance(header.len);
                    continue;
                }
            };
            key.get_or_insert_with(|| decoded.key.clone());
            opened.push(Opened {
                path,
                file: header.file,
                len: header.len,
                meta: SegmentMeta {
                    key_hash: hash,
                    sequence: seq,
                    version: decoded.version,
                    salt: decoded.salt,
                },
                header_len: decoded.len as u64,
                rotate_at_ms: decoded.rotate_at_ms,
            });
        }
        self.gaps(&mut opened);
        let newest = opened.last().map(|o| o.meta.sequence);
        for seg in &opened {
            self.records(seg, Some(seg.meta.sequence) == newest)?;
        }
        Ok(())
    }

    /// Report an unreadable header as recovery judges it: a foreign file,
    /// corruption, or a torn creation.
    fn damaged_header(
        &mut self,
        path: &Path,
        header: &OpenedHeader,
        ids: (u64, u64),
        newest: bool,
        why: &str,
    ) -> Result<()> {
        let damaged = DamagedHeader {
            path,
            file: &*header.file,
            ids,
            head: &header.head,
            len: header.len,
        };
        match judge_damaged_header(&damaged.facts(newest)?, why, self.mode) {
            DamagedHeaderVerdict::Foreign(reason) => self.foreign(path, reason),
            DamagedHeaderVerdict::Corrupt(reason) => self.corrupt(path, 0, reason),
            DamagedHeaderVerdict::TornCreation => self.torn(path, 0, header.len, why),
        }
        Ok(())
    }

    /// Leftovers of an interrupted compaction, or a segment missing from the
    /// middle of the log (`rules::recovery::judge_gaps`).
    fn gaps(&mut self, opened: &mut Vec<Opened>) {
        let facts: Vec<SegmentFacts> = opened
            .iter()
            .map(|o| SegmentFacts {
                sequence: o.meta.sequence,
                version: o.meta.version,
                rotate_at_ms: o.rotate_at_ms,
            })
            .collect();
        match judge_gaps(&facts, self.now_unix_ms, self.retention_ms) {
            GapVerdict::Contiguous => {}
            GapVerdict::Leftovers { count } => {
                for leftover in opened.drain(..count) {
                    self.report.expired_leftovers.push(leftover.path);
                    self.advance(leftover.len);
                }
            }
            GapVerdict::Missing { missing, after } => {
                let path = opened[after].path.clone();
                self.corrupt(
                    &path,
                    0,
                    format_args!("segment {missing} of this key is missing"),
                );
            }
        }
    }

    /// Check every record of one segment.
    fn records(&mut self, seg: &Opened, newest: bool) -> Result<()> {
        let read_err = |e| io_at(&seg.path, "read", e);
        let mut cursor = Cursor::default();
        let mut pos = seg.header_len;
        self.advance(seg.header_len.min(seg.len));
        while pos < seg.len {
            let bad = match cursor
                .record_len_at(&*seg.file, seg.meta, pos, seg.len)
                .map_err(read_err)?
            {
                Ok(len) => {
                    pos += len;
                    self.report.records += 1;
                    self.advance(len);
                    continue;
                }
                Err(bad) => bad,
            };
            let facts = cursor
                .damage_facts(&*seg.file, seg.meta, (pos, seg.len), bad, newest, true)
                .map_err(read_err)?;
            match judge_damage(&facts, self.mode) {
                // Preallocated space after the last record (a live
                // writer's, or one that crashed): the data ends here.
                DamageVerdict::Padding => {}
                DamageVerdict::TornTail => self.torn(&seg.path, pos, seg.len, &facts.defect),
                DamageVerdict::Corrupt { reason, resume_at } => {
                    self.corrupt(&seg.path, pos, reason);
                    if let Some(q) = resume_at {
                        // Go on checking from there.
                        self.advance(q - pos);
                        pos = q;
                        continue;
                    }
                }
            }
            self.advance(seg.len - pos);
            break;
        }
        Ok(())
    }
}
