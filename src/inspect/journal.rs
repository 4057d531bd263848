//! The journal's state as a reader finds it ([`Inspector::journal_state`]):
//! the manifest recovery would start from, every journal file with its
//! valid frames, and what a crash now would replay (FORMAT.md §11–§13).
//!
//! Read-only, like the rest of `inspect`: files are opened for reading
//! through the inspector's [`Storage`](crate::storage::Storage), nothing is
//! changed and the writer lock is not taken, so it runs beside a live
//! writer.

use std::io;
use std::path::{Path, PathBuf};

use super::Inspector;
use crate::engine::Engine;
use crate::error::{Result, WalError, io_at};
use crate::format::journal::{self as jf, FrameBinding, JH_LEN, JournalHeader};
use crate::format::manifest::Manifest;
use crate::journal::manifest_file_name;
use crate::journal::read::{FrameReader, all_zero_from, scan_rest};
use crate::journal::replay::newest_manifest;
use crate::storage::{OpenMode, StorageFile, read_exact_at};

/// Times the directory is read again when a file listed in it disappears
/// (a writer's checkpoint removed it) before the state is complete.
const LISTING_ATTEMPTS: usize = 8;
/// Times a journal file's frames are read again when non-zero bytes follow
/// them (a live writer may be writing the next frame).
const FRAME_ATTEMPTS: usize = 3;

/// The journal's state: [`Inspector::journal_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalState {
    /// The newest manifest that verifies (the one recovery starts from);
    /// `None` if the directory has none (a new directory, or one an
    /// earlier version wrote).
    pub manifest: Option<ManifestState>,
    /// Manifests newer than [`JournalState::manifest`] that do not verify
    /// (short, or a checksum fails): a checkpoint a crash cut short, which
    /// recovery ignores. Oldest first.
    pub unverified_manifests: Vec<PathBuf>,
    /// Every journal file in the directory, oldest first.
    pub files: Vec<JournalFileState>,
}

impl JournalState {
    /// The journal files a crash now would replay: those at or after the
    /// manifest's start (every journal file if there is no manifest).
    pub fn pending_files(&self) -> impl Iterator<Item = &JournalFileState> {
        self.files.iter().filter(|f| f.pending)
    }

    /// Valid frames a crash now would replay.
    pub fn pending_frames(&self) -> u64 {
        self.pending_files().map(|f| f.frames).sum()
    }

    /// Bytes of journal a crash now would replay: the valid frames of the
    /// pending files, their headers included.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_files().map(|f| f.frame_bytes).sum()
    }
}

/// The manifest recovery starts from (FORMAT.md §12).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestState {
    /// The manifest file.
    pub path: PathBuf,
    /// Its generation (checkpoints count up).
    pub generation: u64,
    /// Written by a clean close (or the checkpoint that ends an open): the
    /// segments held everything and no journal file followed it then. A
    /// live writer's appends go to a journal file after it nonetheless.
    pub clean: bool,
    /// The first journal file recovery would replay.
    pub journal_start: u64,
    /// The number of the first frame in journal file `journal_start`.
    pub next_frame: u64,
    /// Keys it lists.
    pub keys: usize,
    /// Segments it lists, over every key.
    pub segments: usize,
}

impl ManifestState {
    fn of(path: PathBuf, m: &Manifest) -> Self {
        Self {
            path,
            generation: m.generation,
            clean: m.clean,
            journal_start: m.journal_start,
            next_frame: m.next_frame,
            keys: m.keys.len(),
            segments: m.keys.iter().map(|k| k.segments.len()).sum(),
        }
    }
}

/// One journal file (FORMAT.md §11), as a reader finds it.
///
/// Damage is reported, not judged: whether it is a torn tail recovery
/// tolerates or corruption that fails the open depends on where it is
/// (only the newest file can end torn), on the recovery mode, and on
/// whether a frame verifies after it ([`JournalFileState::valid_frame_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalFileState {
    /// The journal file.
    pub path: PathBuf,
    /// Its sequence number, from its name.
    pub sequence: u64,
    /// The file's length (it runs ahead of the frames with zeros).
    pub bytes: u64,
    /// Whether a crash now would replay it: it is at or after the
    /// manifest's [`journal_start`](ManifestState::journal_start) (or there
    /// is no manifest). Older files are leftovers a checkpoint removes.
    pub pending: bool,
    /// Number of its first frame, from its header; `None` if the header
    /// does not verify.
    pub first_frame: Option<u64>,
    /// Why the header does not verify (too short, a checksum, a version,
    /// or a sequence other than the name's); `None` if it does. A newest
    /// file with a bad header is a creation a crash cut short.
    pub header_problem: Option<String>,
    /// Valid frames counted from the header on, up to the first that does
    /// not verify.
    pub frames: u64,
    /// Bytes the header and the valid frames occupy (0 if the header does
    /// not verify): where the valid frames end.
    pub frame_bytes: u64,
    /// The position where valid frames end and non-zero bytes follow (a
    /// torn tail or damage); `None` if only zeros follow. 0 if the header
    /// does not verify and the file holds any non-zero byte.
    pub damage: Option<u64>,
    /// With [`JournalFileState::damage`], the first later position where
    /// a frame verifies (recovery calls damage followed by a valid frame
    /// corruption).
    pub valid_frame_after: Option<u64>,
}

impl Inspector {
    /// The journal's state now: the newest manifest that verifies, every
    /// journal file with its valid frames and any damage after them, and
    /// (through [`JournalState::pending_frames`] and
    /// [`JournalState::pending_bytes`]) what a crash now would replay.
    ///
    /// It reads the directory when called, not when the inspector was
    /// opened, and changes nothing. Beside a live writer it is a snapshot
    /// that may be a moment old: a file a checkpoint removes while it looks
    /// makes it read the directory again, and a frame caught half-written
    /// at the end of the newest file shows as damage.
    ///
    /// # Errors
    /// I/O errors naming the file. A manifest whose header verifies but
    /// whose body does not decode, or whose generation differs from its
    /// name, is [`WalError::CorruptedData`] naming it (opening fails on it
    /// too); one of a version this build does not read is
    /// [`WalError::UnsupportedFormat`]. Damage in journal files is not an
    /// error: it is in the state.
    pub fn journal_state(&self) -> Result<JournalState> {
        let mut attempt = 1;
        loop {
            match snapshot(&self.engine) {
                Err(e) if attempt < LISTING_ATTEMPTS && vanished(&e) => attempt += 1,
                other => return other,
            }
        }
    }
}

/// A file listed a moment ago is gone.
fn vanished(e: &WalError) -> bool {
    matches!(e, WalError::Io(e) if e.kind() == io::ErrorKind::NotFound)
}

fn snapshot(engine: &Engine) -> Result<JournalState> {
    let dir = &engine.config.dir;
    let (_, listed) = crate::journal::replay::list(engine)?;
    let (manifest, _) = newest_manifest(engine, &listed)?;
    let used = manifest.as_ref().map_or(0, |m| m.generation);
    let unverified_manifests = listed
        .manifests
        .range(used.saturating_add(1)..)
        .map(|(_, name)| dir.join(name))
        .collect();
    let mut files = Vec::with_capacity(listed.journals.len());
    for (&sequence, name) in &listed.journals {
        let pending = manifest
            .as_ref()
            .is_none_or(|m| sequence >= m.journal_start);
        files.push(read_journal_file(
            engine,
            &dir.join(name),
            sequence,
            pending,
        )?);
    }
    // Recovery checked that its generation is its name's.
    let manifest =
        manifest.map(|m| ManifestState::of(dir.join(manifest_file_name(m.generation)), &m));
    Ok(JournalState {
        manifest,
        unverified_manifests,
        files,
    })
}

/// Open, check the header, and count the valid frames of one journal file.
fn read_journal_file(
    engine: &Engine,
    path: &Path,
    sequence: u64,
    pending: bool,
) -> Result<JournalFileState> {
    let storage = &engine.config.storage;
    let file = engine
        .with_descriptor(|| storage.open(path, OpenMode::Read))
        .map_err(|e| io_at(path, "open", e))?;
    let bytes = file.file_len().map_err(|e| io_at(path, "stat", e))?;
    let mut state = JournalFileState {
        path: path.to_path_buf(),
        sequence,
        bytes,
        pending,
        first_frame: None,
        header_problem: None,
        frames: 0,
        frame_bytes: 0,
        damage: None,
        valid_frame_after: None,
    };
    match read_header(&*file, path, bytes, sequence)? {
        Ok(header) => {
            state.first_frame = Some(header.first_frame);
            state.frame_bytes = JH_LEN as u64;
            count_frames(&*file, &mut state, header)?;
        }
        Err(why) => {
            state.header_problem = Some(why);
            // Valid frames end before the header: any non-zero byte is
            // damage at 0 (a frame can verify only under a good header).
            state.damage = (!all_zero_from(&*file, path, 0, bytes)?).then_some(0);
        }
    }
    Ok(state)
}

/// The file's header if it verifies and names this file; else why not.
fn read_header(
    file: &dyn StorageFile,
    path: &Path,
    len: u64,
    sequence: u64,
) -> Result<std::result::Result<JournalHeader, String>> {
    if len < JH_LEN as u64 {
        return Ok(Err(format!("{len} bytes, shorter than a journal header")));
    }
    let mut head = [0u8; JH_LEN];
    read_exact_at(file, &mut head, 0).map_err(|e| io_at(path, "read", e))?;
    Ok(jf::decode_header(&head).and_then(|h| {
        if h.sequence == sequence {
            Ok(h)
        } else {
            Err(format!(
                "the header says journal file {}, the name {sequence}",
                h.sequence
            ))
        }
    }))
}

/// Count the valid frames after the header, then look at what follows
/// them. Non-zero bytes after the last valid frame may be a frame a live
/// writer is writing: the frames are read on from there (the file's
/// length read again) a few times before they are reported as damage.
fn count_frames(
    file: &dyn StorageFile,
    state: &mut JournalFileState,
    header: JournalHeader,
) -> Result<()> {
    let path = state.path.clone();
    for attempt in 1..=FRAME_ATTEMPTS {
        if attempt > 1 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            state.bytes = file.file_len().map_err(|e| io_at(&path, "stat", e))?;
        }
        let before = state.frame_bytes;
        let mut reader = FrameReader::new(file, &path, state.bytes);
        loop {
            let binding = FrameBinding {
                salt: header.salt,
                file_sequence: state.sequence,
                position: state.frame_bytes,
            };
            let number = header.first_frame.saturating_add(state.frames);
            let Some((total, _ops)) = reader.read(binding, number)? else {
                break;
            };
            state.frame_bytes += total;
            state.frames += 1;
        }
        let (pos, len) = (state.frame_bytes, state.bytes);
        let rest = scan_rest(file, &path, pos, len, header.salt, state.sequence)?;
        state.damage = (!rest.all_zero).then_some(pos);
        state.valid_frame_after = rest.valid_frame_at;
        // Stop when nothing follows, or when another look found no new
        // frame (the damage is not a frame being written).
        if rest.all_zero || (attempt > 1 && state.frame_bytes == before) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::format::manifest;
    use crate::wal::Wal;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn journal_path(dir: &Path, seq: u64) -> PathBuf {
        dir.join(crate::journal::journal_file_name(seq))
    }

    /// A dropped writer's journal, its path and the state read from it.
    fn dropped_writer(dir: &Path, appends: usize) -> Result<(PathBuf, JournalState)> {
        let wal = Wal::builder(dir).open()?;
        for i in 0..appends {
            wal.append_entry("k", None, Bytes::from(format!("record {i}")), true)?;
        }
        drop(wal);
        let state = Inspector::open(dir)?.journal_state()?;
        let path = state
            .files
            .last()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        Ok((path, state))
    }

    /// Where each frame of a journal file's bytes starts, and where the
    /// last ends (from the payload lengths in the frames' fixed bytes).
    fn boundaries(bytes: &[u8]) -> Vec<usize> {
        let mut out = vec![JH_LEN];
        let mut at = JH_LEN;
        while at + jf::FH_LEN <= bytes.len() {
            let len = crate::format::get_u32(bytes, at + jf::FH_PAYLOAD_LEN_OFFSET) as usize;
            if len == 0 {
                break;
            }
            at += jf::FH_LEN + len;
            out.push(at);
        }
        out
    }

    /// Every cut of a journal file, and every flipped byte of its header
    /// and frames, is reported (never a panic or an error): the valid
    /// frames before it counted, damage where they end.
    #[test]
    fn every_cut_and_flip_is_reported() -> TestResult {
        let t = tempfile::tempdir()?;
        let (path, whole) = dropped_writer(t.path(), 3)?;
        let f = &whole.files[0];
        assert_eq!(
            (f.frames, f.damage, f.header_problem.as_ref()),
            (3, None, None)
        );
        let end = usize::try_from(f.frame_bytes)?;
        let original = std::fs::read(&path)?[..end].to_vec();
        let starts = boundaries(&original);
        assert_eq!(starts.len(), 4, "{starts:?}");
        assert_eq!(starts[3], end);
        let inspector = Inspector::open(t.path())?;
        for cut in 0..end {
            std::fs::write(&path, &original[..cut])?;
            let f = inspector.journal_state()?.files.remove(0);
            // Whole frames before the cut.
            let whole = starts.iter().filter(|&&s| s <= cut).count();
            let valid_end = if cut < JH_LEN { 0 } else { starts[whole - 1] };
            assert_eq!(f.frame_bytes, valid_end as u64, "cut at {cut}");
            assert_eq!(f.frames, whole.saturating_sub(1) as u64, "cut at {cut}");
            let torn = original[valid_end..cut].iter().any(|&b| b != 0);
            assert_eq!(f.damage, torn.then_some(valid_end as u64), "cut at {cut}");
            assert_eq!(f.valid_frame_after, None, "cut at {cut}");
        }
        for at in 0..end {
            let mut bad = original.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad)?;
            let f = inspector.journal_state()?.files.remove(0);
            assert_eq!(f.header_problem.is_some(), at < JH_LEN, "flip at {at}");
            // The frame holding the flipped byte, and the next one's start.
            let frame = starts.iter().filter(|&&s| s <= at).count();
            let (damage, after) = if at < JH_LEN {
                (0, None)
            } else {
                let next = starts[frame];
                (starts[frame - 1], (next < end).then_some(next as u64))
            };
            assert_eq!(f.damage, Some(damage as u64), "flip at {at}");
            assert_eq!(f.frames, frame.saturating_sub(1) as u64, "flip at {at}");
            assert_eq!(f.valid_frame_after, after, "flip at {at}");
        }
        Ok(())
    }

    #[test]
    fn a_header_naming_another_file_is_reported() -> TestResult {
        let t = tempfile::tempdir()?;
        let (path, _) = dropped_writer(t.path(), 1)?;
        let seq = sequence_of(&path)?;
        std::fs::rename(&path, journal_path(t.path(), seq + 1))?;
        let s = Inspector::open(t.path())?.journal_state()?;
        let f = &s.files[0];
        assert_eq!(f.sequence, seq + 1);
        let why = f.header_problem.as_deref().unwrap_or_default();
        assert!(why.contains(&format!("journal file {seq}")), "{why}");
        assert_eq!((f.frames, f.frame_bytes, f.damage), (0, 0, Some(0)));
        Ok(())
    }

    fn sequence_of(path: &Path) -> std::result::Result<u64, String> {
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::journal::parse_journal_file_name)
            .ok_or_else(|| format!("{} is not a journal file", path.display()))
    }

    /// A newer manifest a crash cut short is listed and skipped; a
    /// manifest whose header verifies but whose body does not decode is
    /// an error naming it.
    #[test]
    fn manifests_that_do_not_verify() -> TestResult {
        let t = tempfile::tempdir()?;
        Wal::builder(t.path()).open()?.close()?;
        let inspector = Inspector::open(t.path())?;
        let m = inspector.journal_state()?.manifest.ok_or("a manifest")?;
        let bytes = std::fs::read(&m.path)?;
        let mut decoded = manifest::decode(&bytes).map_err(|d| format!("{d:?}"))?;
        decoded.generation += 1;
        let newer = t
            .path()
            .join(crate::journal::manifest_file_name(decoded.generation));
        let encoded = manifest::encode(&decoded);
        std::fs::write(&newer, &encoded[..encoded.len() / 2])?;
        let s = inspector.journal_state()?;
        assert_eq!(s.manifest.map(|m| m.generation), Some(m.generation));
        assert_eq!(s.unverified_manifests, vec![newer.clone()]);

        // The header verifies, the body (with its checksum) does not decode.
        let mut bad = encoded[..manifest::MH_LEN].to_vec();
        let body = vec![0xffu8; 16];
        bad[manifest::MH_KEY_COUNT_OFFSET..manifest::MH_KEY_COUNT_OFFSET + 8]
            .copy_from_slice(&1u64.to_le_bytes());
        bad[manifest::MH_BODY_LEN_OFFSET..manifest::MH_BODY_LEN_OFFSET + 8]
            .copy_from_slice(&16u64.to_le_bytes());
        bad[manifest::MH_BODY_CRC_OFFSET..manifest::MH_BODY_CRC_OFFSET + 4]
            .copy_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        let crc = crc32c::crc32c(&bad[..manifest::MH_HEAD_CRC_OFFSET]);
        bad[manifest::MH_HEAD_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        bad.extend_from_slice(&body);
        std::fs::write(&newer, &bad)?;
        match inspector.journal_state() {
            Err(WalError::CorruptedData(why)) => {
                assert!(why.contains(&newer.display().to_string()), "{why}");
            }
            other => return Err(format!("expected CorruptedData, got {other:?}").into()),
        }
        Ok(())
    }
}
