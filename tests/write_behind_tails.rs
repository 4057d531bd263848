//! `max_unapplied_bytes`: short records wait in memory (their segment's
//! tail) after their journal frame is written. Every read API of the
//! handle sees them at once; the memory they hold never passes the bound
//! (the appending key's tail goes to its file first); a tail reaches its
//! file at 16 KiB, at a checkpoint, at `close()` and through the background
//! applier; a crash replays them from the journal; truncation and purge
//! work inside a tail; and a full disk met while writing a tail fails only
//! the append that needed the room.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalBuilder, WalError};

/// A builder with tails of up to `bytes` and no background thread, so
/// tails move only when a test makes them.
fn with_tails(dir: &Path, bytes: u64) -> WalBuilder {
    Wal::builder(dir)
        .max_unapplied_bytes(bytes)
        .background_checkpoints(false)
}

fn rec(i: usize) -> Bytes {
    Bytes::from(format!("record-{i:04}-{}", "x".repeat(i % 40)))
}

/// Bytes of records in `key`'s segment files (file lengths, headers
/// included).
fn segment_file_bytes(dir: &Path, key: &str) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{key}-")) && name.ends_with(".log") {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

fn all(wal: &Wal, key: &str) -> Result<Vec<Bytes>, WalError> {
    Ok(wal.enumerate_records(key)?.collect())
}

#[test]
fn every_read_api_sees_buffered_records_and_close_writes_them() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = with_tails(dir.path(), 1 << 20).open()?;
    let mut refs: Vec<EntryRef> = Vec::new();
    for i in 0..50 {
        refs.push(wal.append_entry("k", Some(Bytes::from("h")), rec(i), false)?);
    }
    let header_only = segment_file_bytes(dir.path(), "k")?;
    assert!(wal.metrics().unapplied_bytes > 0, "records wait in memory");
    // No background thread here: the oldest record waits on.
    std::thread::sleep(Duration::from_millis(30));
    assert!(wal.metrics().unapplied_oldest_ms >= 30);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, rec(i));
        assert_eq!(wal.read_record_at(*r)?.header.as_deref(), Some(&b"h"[..]));
    }
    let want: Vec<Bytes> = (0..50).map(rec).collect();
    assert_eq!(all(&wal, "k")?, want);
    let from: Vec<Bytes> = wal
        .records_from(refs[30])?
        .map(|r| r.map(|r| r.content))
        .collect::<Result<_, _>>()?;
    assert_eq!(from, want[30..]);
    let mut scanned = Vec::new();
    wal.scan("k", |r| {
        scanned.push(Bytes::copy_from_slice(r.content));
        std::ops::ControlFlow::Continue(())
    })?;
    assert_eq!(scanned, want);
    assert_eq!(wal.last_record("k")?.map(|r| r.content), Some(rec(49)));
    assert_eq!(
        segment_file_bytes(dir.path(), "k")?,
        header_only,
        "nothing was written to the segment file yet"
    );
    wal.close()?;
    assert!(segment_file_bytes(dir.path(), "k")? > header_only);
    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(wal.recovery_report().replayed_frames, 0, "closed cleanly");
    assert_eq!(all(&wal, "k")?, want);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, rec(i));
    }
    Ok(())
}

#[test]
fn a_crash_replays_buffered_records_from_the_journal() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = with_tails(dir.path(), 1 << 20).open()?;
    let mut refs = Vec::new();
    for i in 0..30 {
        let key = ["a", "b", "c"][i % 3];
        refs.push((key, wal.append_entry(key, None, rec(i), i % 5 == 0)?));
    }
    assert!(wal.metrics().unapplied_bytes > 0);
    // Dropped without close(): the tails are lost with the process's
    // memory, the journal frames are not.
    drop(wal);
    let wal = Wal::builder(dir.path()).open()?;
    assert!(wal.recovery_report().replayed_frames > 0);
    for (i, (key, r)) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, rec(i), "{key} {r}");
    }
    Ok(())
}

#[test]
fn the_bound_holds_while_many_keys_append() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let bound = 4096;
    let wal = with_tails(dir.path(), bound).open()?;
    let mut refs = Vec::new();
    for i in 0..2000 {
        let key = format!("key-{}", i % 50);
        refs.push(wal.append_entry(key.as_str(), None, rec(i), false)?);
        let held = wal.metrics().unapplied_bytes;
        assert!(held <= bound, "{held} bytes held after append {i}");
    }
    assert!(wal.metrics().unapplied_bytes > 0);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, rec(i));
    }
    Ok(())
}

#[test]
fn a_tail_goes_to_its_file_at_16_kib_and_long_records_at_once() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = with_tails(dir.path(), 1 << 20).open()?;
    let one_kib = Bytes::from(vec![b'r'; 1024]);
    wal.append_entry("k", None, one_kib.clone(), false)?;
    let header_only = segment_file_bytes(dir.path(), "k")?;
    for _ in 0..40 {
        wal.append_entry("k", None, one_kib.clone(), false)?;
    }
    let held = wal.metrics().unapplied_bytes;
    assert!(held > 0 && held <= 16 * 1024, "{held}");
    let written = segment_file_bytes(dir.path(), "k")? - header_only;
    assert!(written >= 16 * 1024, "a full tail was written: {written}");
    // A record of 16 KiB or more goes to the file in its append, after the
    // tail before it.
    let long = Bytes::from(vec![b'L'; 20 * 1024]);
    let r = wal.append_entry("k", None, long.clone(), false)?;
    let m = wal.metrics();
    assert_eq!((m.unapplied_bytes, m.unapplied_oldest_ms), (0, 0));
    assert!(segment_file_bytes(dir.path(), "k")? - header_only >= 41 * 1024 + 20 * 1024);
    assert_eq!(wal.read_entry_at(r)?, long);
    assert_eq!(all(&wal, "k")?.len(), 42);
    Ok(())
}

#[test]
fn the_background_applier_shows_records_to_another_handle() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path())
        .max_unapplied_bytes(1 << 20)
        .open()?;
    wal.append_entry("k", None, Bytes::from("first"), false)?;
    let reader = Wal::builder(dir.path()).read_only(true).open()?;
    wal.append_entry("k", None, Bytes::from("second"), false)?;
    // Within about 50 ms the applier writes the tail; allow far more.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        reader.refresh()?;
        let seen = all(&reader, "k").unwrap_or_default();
        if seen.len() == 2 {
            assert_eq!(seen, ["first", "second"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reader never saw the records"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(wal.metrics().unapplied_bytes, 0);
    Ok(())
}

#[test]
fn truncate_and_purge_inside_a_tail() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = with_tails(dir.path(), 1 << 20).open()?;
    let refs: Vec<EntryRef> = (0..10)
        .map(|i| wal.append_entry("k", None, rec(i), false))
        .collect::<Result<_, _>>()?;
    wal.truncate_from(refs[6])?;
    assert!(wal.read_entry_at(refs[7]).is_err());
    let later = wal.append_entry("k", None, rec(100), false)?;
    wal.purge_before(refs[2])?;
    let want: Vec<Bytes> = (2..6).map(rec).chain([rec(100)]).collect();
    assert_eq!(all(&wal, "k")?, want);
    assert_eq!(wal.read_entry_at(later)?, rec(100));
    wal.close()?;
    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(all(&wal, "k")?, want);
    for r in [refs[0], refs[1], refs[6], refs[9]] {
        assert!(wal.read_entry_at(r).is_err(), "{r} was removed");
    }
    Ok(())
}

#[test]
fn a_full_disk_while_writing_a_tail_fails_only_the_append_that_needed_room() -> Result<(), WalError>
{
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    // Room for one record in memory: the second must write the tail first.
    let wal = with_tails(dir.path(), 1200).storage(storage).open()?;
    let r1 = wal.append_entry("k", None, Bytes::from(vec![b'1'; 1000]), false)?;
    *faults.full_files.lock().expect("not poisoned") = Some(".log".into());
    let err = wal.append_entry("k", None, Bytes::from(vec![b'2'; 1000]), false);
    assert!(matches!(err, Err(WalError::StorageFull(_))), "{err:?}");
    assert_eq!(wal.read_entry_at(r1)?, vec![b'1'; 1000], "still readable");
    *faults.full_files.lock().expect("not poisoned") = None;
    let r3 = wal.append_entry("k", None, Bytes::from(vec![b'3'; 1000]), false)?;
    let want = [vec![b'1'; 1000], vec![b'3'; 1000]];
    assert_eq!(all(&wal, "k")?, want);
    wal.close()?;
    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(all(&wal, "k")?, want);
    assert_eq!(wal.read_entry_at(r3)?, vec![b'3'; 1000]);
    Ok(())
}

#[test]
fn a_full_disk_in_a_checkpoint_keeps_the_tails_and_the_journal() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = with_tails(dir.path(), 1 << 20)
        .storage(storage)
        .journal_checkpoint_bytes(8192)
        .open()?;
    // The segment file exists before the disk fills.
    let mut refs = vec![wal.append_entry("k", None, rec(0), false)?];
    *faults.full_files.lock().expect("not poisoned") = Some(".log".into());
    // Past the checkpoint bound: the checkpoint cannot write the tails,
    // and the appends that started it still succeed.
    for i in 1..100 {
        refs.push(wal.append_entry("k", None, rec(i), false)?);
    }
    assert!(wal.metrics().checkpoint_failures > 0);
    *faults.full_files.lock().expect("not poisoned") = None;
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(wal.read_entry_at(*r)?, rec(i));
    }
    wal.close()?;
    let wal = Wal::builder(dir.path()).open()?;
    let want: Vec<Bytes> = (0..100).map(rec).collect();
    assert_eq!(all(&wal, "k")?, want);
    Ok(())
}

#[test]
fn another_handle_sees_a_gap_free_prefix_across_segments() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = with_tails(dir.path(), 1 << 20)
        .max_segment_bytes(4096)
        .open()?;
    let mut appended = Vec::new();
    for i in 0..300 {
        let content = Bytes::from(format!("{i:05}-{}", "y".repeat(150 + i % 50)));
        wal.append_entry("k", None, content.clone(), false)?;
        appended.push(content);
        if i % 37 == 36 {
            // A long record goes to its (new) segment's file at once.
            let long = Bytes::from(vec![b"0123456789"[i % 10]; 20 * 1024]);
            wal.append_entry("k", None, long.clone(), false)?;
            appended.push(long);
        }
        if i % 23 == 0 {
            let reader = Wal::builder(dir.path()).read_only(true).open()?;
            let seen = all(&reader, "k")?;
            assert!(
                seen == appended[..seen.len()],
                "a gap after append {i}: the first {} records seen are not the first appended",
                seen.len()
            );
            // Everything but the active segment's tail is in the files.
            assert!(
                appended.len() - seen.len() <= 4096 / 150,
                "{} of {} seen",
                seen.len(),
                appended.len()
            );
        }
    }
    Ok(())
}
