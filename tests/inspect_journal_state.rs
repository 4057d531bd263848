//! `Inspector::journal_state` reports the journal as it is on disk, read-only
//! and beside a live writer: a live or dropped writer's frames are counted
//! exactly (what a crash now would replay); after `close()` the manifest is
//! clean and no journal file is pending; files before the manifest's start
//! are leftovers, not pending; a torn tail or damage is reported at the
//! position where the valid frames end, where recovery finds it too.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::Wal;
use nano_wal::inspect::{Inspector, JournalState};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Size of a journal file's header (FORMAT.md §11).
const JOURNAL_HEADER_BYTES: u64 = 48;

fn state(dir: &Path) -> Result<JournalState, nano_wal::WalError> {
    Inspector::open(dir)?.journal_state()
}

/// Every file in `dir` and its bytes.
fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>, std::io::Error> {
    std::fs::read_dir(dir)?
        .map(|e| {
            let path = e?.path();
            std::fs::read(&path).map(|bytes| (path, bytes))
        })
        .collect()
}

fn segment_files(dir: &Path) -> Result<usize, std::io::Error> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count())
}

/// Appends over two keys: five single appends and one batch, six frames.
fn append_six_frames(wal: &Wal) -> Result<(), nano_wal::WalError> {
    for i in 0..5 {
        let key = if i % 2 == 0 { "orders" } else { "users" };
        wal.append_entry(key, None, Bytes::from(format!("record {i}")), i == 4)?;
    }
    wal.append_batch(
        [
            ("orders", None, Bytes::from("batch a")),
            ("users", Some(Bytes::from("h")), Bytes::from("batch b")),
        ],
        false,
    )?;
    Ok(())
}

#[test]
fn a_live_and_then_dropped_writers_frames_are_counted() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wal = Wal::builder(dir).open()?;
    append_six_frames(&wal)?;
    let metrics = wal.metrics();
    assert_eq!(metrics.journal_frames, 6, "setup: one frame per call");

    let before = snapshot(dir)?;
    let live = state(dir)?;
    assert_eq!(snapshot(dir)?, before, "reading it changed nothing");
    // The open's checkpoint wrote manifest 1 (clean: no journal followed
    // it then); the appends went to the journal file it starts replay at.
    let m = live.manifest.as_ref().ok_or("a manifest")?;
    assert_eq!((m.generation, m.clean, m.journal_start), (1, true, 1));
    assert_eq!((m.keys, m.segments), (0, 0));
    assert!(live.unverified_manifests.is_empty());
    assert_eq!(live.files.len(), 1, "{live:?}");
    let f = &live.files[0];
    assert_eq!(f.sequence, m.journal_start);
    assert!(f.pending);
    assert_eq!(f.first_frame, Some(m.next_frame));
    assert_eq!(f.header_problem, None);
    assert_eq!(f.frames, 6);
    assert_eq!(f.frame_bytes, JOURNAL_HEADER_BYTES + metrics.journal_bytes);
    assert!(f.bytes > f.frame_bytes, "the file runs ahead with zeros");
    assert_eq!((f.damage, f.valid_frame_after), (None, None));
    assert_eq!(live.pending_frames(), 6);
    assert_eq!(
        live.pending_bytes(),
        JOURNAL_HEADER_BYTES + metrics.journal_bytes_since_checkpoint
    );

    // Dropped without close(): the same journal is what a crash replays.
    drop(wal);
    let dropped = state(dir)?;
    assert_eq!(dropped, live);
    assert_eq!(
        Wal::builder(dir).open()?.recovery_report().replayed_frames,
        6
    );
    Ok(())
}

#[test]
fn past_a_checkpoint_only_the_newest_journal_file_is_pending() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wal = Wal::builder(dir)
        .journal_checkpoint_bytes(4096)
        .background_checkpoints(false)
        .open()?;
    let mut appends = 0;
    while wal.metrics().checkpoints < 2 {
        wal.append_entry("k", None, Bytes::from(vec![b'x'; 500]), false)?;
        appends += 1;
    }
    wal.append_entry("k", None, Bytes::from("after"), false)?;
    let metrics = wal.metrics();
    let s = state(dir)?;
    let m = s.manifest.as_ref().ok_or("a manifest")?;
    assert_eq!((m.generation, m.clean), (2, false), "{m:?}");
    assert_eq!((m.keys, m.segments), (1, 1));
    assert_eq!(s.files.len(), 1, "the checkpoint removed the older file");
    let f = &s.files[0];
    assert_eq!((f.sequence, f.pending), (m.journal_start, true));
    assert_eq!(f.first_frame, Some(m.next_frame));
    assert_eq!(m.next_frame, appends, "every earlier frame is checkpointed");
    assert_eq!(f.frames, 1);
    assert_eq!(
        s.pending_bytes(),
        JOURNAL_HEADER_BYTES + metrics.journal_bytes_since_checkpoint
    );
    Ok(())
}

#[test]
fn after_close_the_manifest_is_clean_and_nothing_is_pending() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wal = Wal::builder(dir).open()?;
    append_six_frames(&wal)?;
    let journal = state(dir)?.files.remove(0);
    let kept = std::fs::read(&journal.path)?;
    wal.close()?;

    let s = state(dir)?;
    let m = s.manifest.as_ref().ok_or("a manifest")?;
    assert_eq!((m.generation, m.clean), (2, true));
    assert_eq!(m.journal_start, journal.sequence + 1);
    assert_eq!(m.next_frame, 6);
    assert_eq!((m.keys, m.segments), (2, segment_files(dir)?));
    assert!(s.files.is_empty(), "close removed the journal: {s:?}");
    assert_eq!((s.pending_frames(), s.pending_bytes()), (0, 0));

    // A journal file before the manifest's start is a leftover a
    // checkpoint removes: listed with its frames, not pending.
    std::fs::write(&journal.path, &kept)?;
    let s = state(dir)?;
    assert_eq!(s.files.len(), 1);
    assert_eq!(s.files[0].frames, 6);
    assert!(!s.files[0].pending);
    assert_eq!((s.pending_frames(), s.pending_bytes()), (0, 0));
    Ok(())
}

#[test]
fn a_torn_tail_is_reported_where_the_valid_frames_end() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let two_frames_end = {
        let wal = Wal::builder(dir).open()?;
        wal.append_entry("k", None, Bytes::from("one"), true)?;
        wal.append_entry("k", None, Bytes::from("two"), true)?;
        let end = state(dir)?.files[0].frame_bytes;
        wal.append_entry("k", None, Bytes::from(vec![b'3'; 300]), false)?;
        end
    };
    let whole = state(dir)?.files.remove(0);
    assert_eq!((whole.frames, whole.damage), (3, None));

    // Garbage in the zeros after the last frame.
    let mut bytes = std::fs::read(&whole.path)?;
    let garbage_at = usize::try_from(whole.frame_bytes)? + 100;
    bytes[garbage_at..garbage_at + 7].copy_from_slice(b"garbage");
    std::fs::write(&whole.path, &bytes)?;
    let s = state(dir)?;
    let f = &s.files[0];
    assert_eq!(f.frames, 3);
    assert_eq!(f.damage, Some(whole.frame_bytes));
    assert_eq!(f.valid_frame_after, None);
    assert_eq!(s.pending_frames(), 3, "the damage is not replayed");

    // The last frame cut short: the valid frames end before it.
    let file = OpenOptions::new().write(true).open(&whole.path)?;
    file.set_len(whole.frame_bytes - 10)?;
    let s = state(dir)?;
    let f = &s.files[0];
    assert_eq!((f.frames, f.frame_bytes), (2, two_frames_end));
    assert_eq!(f.damage, Some(two_frames_end));
    assert_eq!(f.valid_frame_after, None);
    assert_eq!(f.bytes, whole.frame_bytes - 10);
    assert_eq!(s.pending_bytes(), two_frames_end);

    // Recovery finds the torn tail at the same position.
    let wal = Wal::builder(dir).open()?;
    let torn = &wal.recovery_report().torn_tails;
    assert_eq!(torn.len(), 1, "{torn:?}");
    assert_eq!(torn[0].path, whole.path);
    assert_eq!(torn[0].file_position, two_frames_end);
    assert_eq!(wal.recovery_report().replayed_frames, 2);
    Ok(())
}
