//! The journal after a crash: a handle dropped without `close()` leaves its
//! appends in the journal, and the next open replays them into the
//! segments; replaying again changes nothing; a torn frame at the end is a
//! torn tail (nothing in it was durable), and takes a whole batch with it;
//! damage followed by a valid frame is corruption naming the journal file
//! and position.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use nano_wal::{RecoveryMode, Wal, WalError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn files_starting(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn only_journal(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut j = files_starting(dir, "nano-wal.journal-")?;
    if j.len() != 1 {
        return Err(format!("expected one journal file, found {j:?}").into());
    }
    Ok(j.remove(0))
}

fn contents(wal: &Wal, key: &str) -> Result<Vec<Bytes>, WalError> {
    wal.records(key)?.map(|r| r.map(|r| r.content)).collect()
}

/// Where the journal's frames end (the file runs on into zeros).
fn frames_end(journal: &Path) -> Result<usize, std::io::Error> {
    let bytes = std::fs::read(journal)?;
    Ok(bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1))
}

#[test]
fn appends_of_a_dropped_handle_are_replayed_and_kept_until_a_checkpoint() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let (a, b) = {
        let wal = Wal::builder(dir).open()?;
        let a = wal.append_entry("a", None, Bytes::from("one"), false)?;
        let b = wal.append_entry("b", Some(Bytes::from("h")), Bytes::from("two"), true)?;
        wal.append_batch(
            [
                ("a", None, Bytes::from("three")),
                ("c", None, Bytes::from("four")),
            ],
            false,
        )?;
        (a, b)
    };
    let journal = only_journal(dir)?;
    assert!(frames_end(&journal)? > 48, "the appends are in the journal");

    let wal = Wal::builder(dir).open()?;
    assert_eq!(wal.recovery_report().replayed_frames, 3);
    assert_eq!(contents(&wal, "a")?, ["one", "three"]);
    assert_eq!(contents(&wal, "c")?, ["four"]);
    assert_eq!(wal.read_entry_at(a)?, "one");
    assert_eq!(wal.read_record_at(b)?.header.as_deref(), Some(&b"h"[..]));
    // Replay syncs nothing but the journal: the journal keeps what it
    // wrote to the segments until the next checkpoint (here: close).
    assert_eq!(files_starting(dir, "nano-wal.journal-")?, [journal]);
    wal.append_entry("a", None, Bytes::from("five"), false)?;
    assert_eq!(files_starting(dir, "nano-wal.journal-")?.len(), 2);
    wal.close()?;
    assert!(files_starting(dir, "nano-wal.journal-")?.is_empty());
    let wal = Wal::builder(dir).open()?;
    assert_eq!(contents(&wal, "a")?, ["one", "three", "five"]);
    Ok(())
}

#[test]
fn replaying_a_journal_again_changes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        for i in 0..20 {
            wal.append_entry(
                format!("k{}", i % 3),
                None,
                Bytes::from(format!("v{i}")),
                i % 2 == 0,
            )?;
        }
    }
    // Keep the journal and the manifest it follows, as a crash right after
    // replay (before its checkpoint was durable) would.
    let saved: Vec<(PathBuf, Vec<u8>)> = files_starting(dir, "nano-wal.")?
        .into_iter()
        .filter(|p| !p.ends_with("nano-wal.lock"))
        .map(|p| std::fs::read(&p).map(|b| (p, b)))
        .collect::<Result<_, _>>()?;
    let first: Vec<Vec<Bytes>> = {
        let wal = Wal::builder(dir).open()?;
        (0..3)
            .map(|k| contents(&wal, &format!("k{k}")))
            .collect::<Result<_, _>>()?
    };
    for p in files_starting(dir, "nano-wal.manifest-")? {
        std::fs::remove_file(p)?;
    }
    for (p, bytes) in &saved {
        std::fs::write(p, bytes)?;
    }
    let wal = Wal::builder(dir).open()?;
    assert_eq!(wal.recovery_report().replayed_frames, 20);
    let second: Vec<Vec<Bytes>> = (0..3)
        .map(|k| contents(&wal, &format!("k{k}")))
        .collect::<Result<_, _>>()?;
    assert_eq!(first, second);
    assert_eq!(second.iter().map(Vec::len).sum::<usize>(), 20);
    Ok(())
}

#[test]
fn a_torn_batch_frame_takes_the_whole_batch_with_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        wal.append_entry("x", None, Bytes::from("before"), true)?;
        let batch = (0..3).map(|k| (format!("k{k}"), None, Bytes::from(vec![b'b'; 300])));
        wal.append_batch(batch, false)?;
    }
    let journal = only_journal(dir)?;
    let end = frames_end(&journal)?;
    // A crash that wrote every segment but only part of the batch's frame.
    let file = std::fs::OpenOptions::new().write(true).open(&journal)?;
    file.set_len(u64::try_from(end - 100)?)?;

    let wal = Wal::builder(dir).open()?;
    let report = wal.recovery_report();
    // The torn frame, and the three segments it would have created, whose
    // files the crash left: removed, since no durable frame names them.
    assert_eq!(report.torn_tails.len(), 4, "{report:?}");
    assert_eq!(report.torn_tails[0].path, journal);
    assert!(
        report.torn_tails[1..]
            .iter()
            .all(|t| t.repaired && t.file_position == 0)
    );
    assert_eq!(contents(&wal, "x")?, ["before"]);
    for k in 0..3 {
        assert!(
            contents(&wal, &format!("k{k}"))?.is_empty(),
            "key k{k}: no record of a batch whose frame is torn"
        );
    }
    Ok(())
}

#[test]
fn content_that_holds_frames_does_not_make_a_torn_frame_corruption() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        for i in 0..10 {
            wal.append_entry("k", None, Bytes::from(format!("record {i}")), true)?;
        }
        // Content made of the journal's own valid frames, and then torn.
        let journal = only_journal(dir)?;
        let frames = std::fs::read(&journal)?[..frames_end(&journal)?].to_vec();
        let hostile: Vec<u8> = frames
            .iter()
            .cycle()
            .take(8 * frames.len())
            .copied()
            .collect();
        wal.append_entry("k", None, Bytes::from(hostile), false)?;
    }
    let journal = only_journal(dir)?;
    let end = frames_end(&journal)?;
    let file = std::fs::OpenOptions::new().write(true).open(&journal)?;
    file.set_len(u64::try_from(end - 7)?)?;

    let wal = Wal::builder(dir).open()?;
    assert_eq!(wal.recovery_report().torn_tails.len(), 1);
    assert_eq!(contents(&wal, "k")?.len(), 10);
    Ok(())
}

#[test]
fn damage_followed_by_a_valid_frame_is_corruption_naming_the_journal() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        for i in 0..3 {
            wal.append_entry("k", None, Bytes::from(format!("record {i}")), true)?;
        }
    }
    let journal = only_journal(dir)?;
    let mut bytes = std::fs::read(&journal)?;
    // The second frame starts after the 48-byte file header and the first
    // frame (24 fixed bytes and the payload length at offset 8, FORMAT.md
    // §11); flip a byte in the middle of its payload.
    let payload_len = |at: usize| -> usize {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at + 8..at + 12]);
        u32::from_le_bytes(b) as usize
    };
    let second = 48 + 24 + payload_len(48);
    let at = second + 24 + payload_len(second) / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&journal, &bytes)?;

    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        match Wal::builder(dir).recovery(mode).open() {
            Err(WalError::CorruptedData(msg)) => {
                let name = journal
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                assert!(msg.contains(name.as_deref().unwrap_or("?")), "{msg}");
                assert!(msg.contains(&second.to_string()), "{msg}");
            }
            other => panic!("{mode:?}: expected CorruptedData, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(&journal)?,
        bytes,
        "a refused open changes nothing"
    );
    Ok(())
}

#[test]
fn absolute_consistency_refuses_a_torn_journal_tail() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        wal.append_entry("k", None, Bytes::from("kept"), true)?;
        wal.append_entry("k", None, Bytes::from("torn"), false)?;
    }
    let journal = only_journal(dir)?;
    let end = frames_end(&journal)?;
    let file = std::fs::OpenOptions::new().write(true).open(&journal)?;
    file.set_len(u64::try_from(end - 3)?)?;
    let opened = Wal::builder(dir)
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open();
    assert!(
        matches!(opened, Err(WalError::CorruptedData(_))),
        "{opened:?}"
    );
    let wal = Wal::builder(dir).open()?;
    assert_eq!(contents(&wal, "k")?, ["kept"]);
    Ok(())
}

#[test]
fn a_newest_journal_file_with_a_torn_header_is_removed_or_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    {
        let wal = Wal::builder(dir).open()?;
        wal.append_entry("k", None, Bytes::from("kept"), true)?;
    }
    // What a crash while creating the next journal file leaves: its name,
    // and a header cut short (headers are durable before any frame).
    let journal = only_journal(dir)?;
    let name = journal
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("a journal name")?;
    let sequence: u64 = name.trim_start_matches("nano-wal.journal-").parse()?;
    let next = dir.join(format!("nano-wal.journal-{:020}", sequence + 1));
    std::fs::write(&next, b"nano-wal journal, torn")?;

    let refused = Wal::builder(dir)
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open();
    assert!(
        matches!(&refused, Err(WalError::CorruptedData(c)) if c.to_string().contains("journal")),
        "{refused:?}"
    );
    assert!(next.exists(), "a refusing open changes nothing");

    let wal = Wal::builder(dir).open()?;
    assert!(!next.exists(), "it held nothing: removed");
    assert_eq!(contents(&wal, "k")?, ["kept"]);
    wal.append_entry("k", None, Bytes::from("after"), true)?;
    drop(wal);
    let wal = Wal::builder(dir).open()?;
    assert_eq!(contents(&wal, "k")?, ["kept", "after"]);
    Ok(())
}
