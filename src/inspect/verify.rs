//! `nano-wal verify`'s library side: every record of every segment checked,
//! each damaged file reported with its position, continuing past damage.

use crate::cursor::{Cursor, SegmentMeta};
use crate::error::{Result, WalError, io_at};
use crate::format::FORMAT_VERSION_LEGACY;
use crate::format::segment_header::{self, HeaderDefect, MAX_HEADER_LEN};
use crate::key::{key_hash, parse_segment_file_name};
use crate::options::WalBuilder;
use crate::recovery::TornTail;
use crate::recovery::{Problem, in_context};
use crate::storage::{OpenMode, Storage, StorageFile, read_exact_at, refused_file_type};
use crate::wal::Wal;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

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
/// It applies the recovery rules of FORMAT.md §8 read-only: damage at the end
/// of a key's newest segment with no verifiable record after it is a torn
/// tail; expired segments below a gap are leftovers of an interrupted
/// compaction; any other damage is corruption. As a safeguard, a whole
/// directory that passes these checks is also opened read-only, and a
/// failure to open is reported as corruption too.
#[derive(Debug)]
pub struct Verifier {
    builder: WalBuilder,
    whole_directory: bool,
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
            whole_directory: key.is_none(),
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
            report: VerifyReport::default(),
            progress,
        };
        for (&hash, files) in &self.keys {
            run.report.keys += 1;
            run.key(hash, files)?;
        }
        let mut report = run.report;
        if self.whole_directory && report.is_ok() {
            // Should these checks and recovery ever disagree, say so.
            if let Err(e) = Inspector::from_builder(self.builder.clone()) {
                report.corruptions.push(Corruption {
                    path: self.builder.config.dir.clone(),
                    file_position: 0,
                    reason: format!("opening the directory fails: {e}"),
                });
            }
        }
        Ok(report)
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

    /// Report a segment-named file with an unusable header as foreign if
    /// this WAL cannot have written it (the rule recovery applies); true if
    /// it was.
    fn refused_foreign(
        &mut self,
        path: &Path,
        file: &dyn StorageFile,
        hash: u64,
        seq: u64,
        len: u64,
    ) -> Result<bool> {
        match crate::origin::foreign(file, (hash, seq), len).map_err(|e| io_at(path, "read", e))? {
            Some(reason) => {
                self.foreign(path, reason);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Check one key's segments: their headers first, as recovery does,
    /// then every record.
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
            let len = file.file_len().map_err(|e| io_at(&path, "stat", e))?;
            let mut head =
                vec![0u8; usize::try_from(len).map_or(MAX_HEADER_LEN, |l| l.min(MAX_HEADER_LEN))];
            read_exact_at(&*file, &mut head, 0).map_err(|e| io_at(&path, "read", e))?;
            let prev_version = opened.last().map(|o| o.meta.version);
            let checked = segment_header::decode(&head)
                .map_err(|d| match d {
                    HeaderDefect::UnsupportedVersion(v) => Problem::Unsupported(v),
                    other => Problem::Bad(other.to_string()),
                })
                .and_then(|h| in_context(&h, hash, seq, key.as_deref(), prev_version).map(|()| h));
            let header = match checked {
                Ok(h) => h,
                Err(Problem::Unsupported(v)) => {
                    let why = format!("format version {v}; this build reads versions 1 and 2");
                    self.corrupt(&path, 0, why);
                    self.advance(len);
                    continue;
                }
                Err(Problem::Bad(_)) if self.refused_foreign(&path, &*file, hash, seq, len)? => {
                    self.advance(len);
                    continue;
                }
                Err(Problem::Bad(why)) if seq == last_seq => {
                    // Nothing valid after an unreadable newest header: a
                    // segment whose creation a crash cut short.
                    match Cursor::default()
                        .valid_record_after_damaged_header(&*file, (hash, seq), &head, len)
                        .map_err(|e| io_at(&path, "read", e))?
                    {
                        Some(q) => self.corrupt(
                            &path,
                            0,
                            format_args!("{why}, yet a valid record follows at {q}"),
                        ),
                        None => self.torn(&path, 0, len, why),
                    }
                    self.advance(len);
                    continue;
                }
                Err(Problem::Bad(why)) => {
                    self.corrupt(&path, 0, why);
                    self.advance(len);
                    continue;
                }
            };
            key.get_or_insert_with(|| header.key.clone());
            opened.push(Opened {
                path,
                file,
                len,
                meta: SegmentMeta {
                    key_hash: hash,
                    sequence: seq,
                    version: header.version,
                    salt: header.salt,
                },
                header_len: header.len as u64,
                rotate_at_ms: header.rotate_at_ms,
            });
        }
        self.gaps(&mut opened);
        let newest = opened.last().map(|o| o.meta.sequence);
        for seg in &opened {
            self.records(seg, Some(seg.meta.sequence) == newest)?;
        }
        Ok(())
    }

    /// A version-2 segment missing between two present ones: if every
    /// segment below the (last) gap has expired, they are leftovers of a
    /// compaction a crash interrupted; otherwise part of the log is missing.
    fn gaps(&mut self, opened: &mut Vec<Opened>) {
        let v2: Vec<&Opened> = opened
            .iter()
            .filter(|o| o.meta.version != FORMAT_VERSION_LEGACY)
            .collect();
        let Some(after_gap) = v2
            .windows(2)
            .rev()
            .find(|w| w[0].meta.sequence + 1 != w[1].meta.sequence)
            .map(|w| w[1].meta.sequence)
        else {
            return;
        };
        let below = opened
            .iter()
            .take_while(|o| o.meta.sequence < after_gap)
            .count();
        let expired = opened[..below].iter().all(|o| {
            crate::rules::retention::expired(o.rotate_at_ms, self.now_unix_ms, self.retention_ms)
        });
        if expired {
            for leftover in opened.drain(..below) {
                self.report.expired_leftovers.push(leftover.path);
                self.advance(leftover.len);
            }
        } else if let Some(after) = opened.get(below) {
            let missing = opened[below - 1].meta.sequence + 1;
            let path = after.path.clone();
            self.corrupt(
                &path,
                0,
                format_args!("segment {missing} of this key is missing"),
            );
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
            let legacy = seg.meta.version == FORMAT_VERSION_LEGACY;
            if newest
                && !legacy
                && cursor
                    .zero_through(&*seg.file, pos, seg.len)
                    .map_err(read_err)?
            {
                // Preallocated space after the newest segment's last record
                // (a live writer's, or one that crashed): the data ends here.
                self.advance(seg.len - pos);
                break;
            }
            let resume_at = if legacy {
                // nano-wal 0.5 never synced and stored no checksum: its data
                // ends at the first record that does not decode.
                None
            } else {
                cursor
                    .any_valid_after(&*seg.file, seg.meta, pos + 1, seg.len)
                    .map_err(read_err)?
            };
            match resume_at {
                // Nothing valid after the damage: at the end of the newest
                // segment (or of a 0.5 segment) that is a torn write; in a
                // sealed segment it is corruption.
                None if newest || legacy => self.torn(&seg.path, pos, seg.len, bad),
                None => self.corrupt(&seg.path, pos, bad),
                Some(q) => {
                    self.corrupt(
                        &seg.path,
                        pos,
                        format_args!("{bad}; a valid record follows at {q}"),
                    );
                    // Go on checking from there.
                    self.advance(q - pos);
                    pos = q;
                    continue;
                }
            }
            self.advance(seg.len - pos);
            break;
        }
        Ok(())
    }
}
