//! Retention and `compact()`, driven by a `ManualClock`: segments whose
//! records are all older than the retention are removed (their references
//! give `EntryNotFound`) while recent records stay; a key whose every record
//! expired disappears from `enumerate_keys`, yet its sequence numbers are
//! never reused, also across a reopen; a clock stepping backwards deletes
//! nothing and never opens a gap; a read-only handle cannot compact.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal, WalError};

/// Some time in November 2023.
const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1000;

fn wal_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    (tmp, dir)
}

/// Retention 100 s in 10 segments: a key's segment rotates every 10 s.
fn open(dir: &Path, clock: &Arc<ManualClock>) -> Wal {
    Wal::builder(dir)
        .clock(clock.clone())
        .retention(Duration::from_secs(100))
        .segments_per_retention_period(10)
        .open()
        .expect("open")
}

fn append(wal: &Wal, key: &str, content: &str) -> EntryRef {
    wal.append_entry(key, None, Bytes::from(content.to_owned()), false)
        .expect("append")
}

fn assert_gone(wal: &Wal, r: EntryRef) {
    match wal.read_entry_at(r) {
        Err(WalError::EntryNotFound(_)) => {}
        other => panic!("{r} should be removed (EntryNotFound), got {other:?}"),
    }
    match wal.read_record_at(r) {
        Err(WalError::EntryNotFound(_)) => {}
        other => panic!("{r} should be removed (EntryNotFound), got {other:?}"),
    }
}

fn contents(wal: &Wal, key: &str) -> Vec<Bytes> {
    wal.enumerate_records(key)
        .expect("enumerate_records")
        .collect()
}

fn keys(wal: &Wal) -> Vec<String> {
    wal.enumerate_keys().expect("enumerate_keys").collect()
}

/// Sequence numbers of `key`'s segment files on disk (file names are
/// `{key}-{key_hash}-{sequence}.log` for the simple keys used here).
fn sequences_on_disk(dir: &Path, key: &str) -> BTreeSet<u64> {
    let prefix = format!("{key}-{}-", nano_wal::key_hash(key.as_bytes()));
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            name.strip_prefix(&prefix)?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn expired_segments_are_removed_and_recent_records_stay() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let wal = open(&dir, &clock);
    let r1 = append(&wal, "events", "e1 at 0 s");
    clock.advance_ms(5 * SECOND);
    let r2 = append(&wal, "events", "e2 at 5 s");
    clock.set_ms(T0 + 15 * SECOND);
    let r3 = append(&wal, "events", "e3 at 15 s");
    clock.set_ms(T0 + 35 * SECOND);
    let r4 = append(&wal, "events", "e4 at 35 s");
    let f1 = append(&wal, "fresh", "f1 at 35 s");
    assert_eq!(
        [r1, r2, r3, r4].map(|r| r.sequence_number),
        [1, 1, 2, 3],
        "time rotation put the records in three segments"
    );

    // Nothing is older than the retention yet: nothing goes.
    clock.set_ms(T0 + 50 * SECOND);
    wal.compact().expect("compact");
    assert_eq!(contents(&wal, "events").len(), 4);
    for r in [r1, r2, r3, r4, f1] {
        wal.read_entry_at(r).expect("not expired yet");
    }

    // At 130 s, e1..e3 (and the periods of their segments) are over 100 s
    // old; e4 and f1 are 95 s old.
    clock.set_ms(T0 + 130 * SECOND);
    wal.compact().expect("compact");
    for r in [r1, r2, r3] {
        assert_gone(&wal, r);
    }
    assert_eq!(
        wal.read_entry_at(r4).expect("recent record stays"),
        "e4 at 35 s"
    );
    assert_eq!(
        wal.read_entry_at(f1).expect("other key stays"),
        "f1 at 35 s"
    );
    assert_eq!(contents(&wal, "events"), vec![Bytes::from("e4 at 35 s")]);
    let refs: Vec<EntryRef> = wal
        .records("events")
        .expect("records")
        .map(|r| r.expect("record").entry_ref)
        .collect();
    assert_eq!(refs, vec![r4]);
    assert_eq!(keys(&wal), vec!["events", "fresh"]);
    assert_eq!(
        sequences_on_disk(&dir, "events"),
        [3].into(),
        "expired segment files must be deleted"
    );
    assert_eq!(sequences_on_disk(&dir, "fresh"), [1].into());
    // The iterator from a removed record's position fails rather than
    // starting somewhere else.
    assert!(matches!(
        wal.records_from(r1),
        Err(WalError::EntryNotFound(_))
    ));
    drop(wal);

    // The removal is permanent.
    let wal = open(&dir, &clock);
    for r in [r1, r2, r3] {
        assert_gone(&wal, r);
    }
    assert_eq!(contents(&wal, "events"), vec![Bytes::from("e4 at 35 s")]);
    assert_eq!(contents(&wal, "fresh"), vec![Bytes::from("f1 at 35 s")]);
    let r5 = append(&wal, "events", "e5 at 130 s");
    assert!(r5.sequence_number > r4.sequence_number);
}

#[test]
fn a_fully_expired_key_vanishes_but_never_reuses_a_sequence_number() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let wal = open(&dir, &clock);
    let r1 = append(&wal, "solo", "one");
    let r2 = append(&wal, "solo", "two");
    clock.advance_ms(15 * SECOND);
    let r3 = append(&wal, "solo", "three");
    let o1 = append(&wal, "other", "other one");
    let old = [r1, r2, r3];
    let max_old = old.iter().map(|r| r.sequence_number).max().expect("refs");
    assert_eq!(max_old, 2);

    clock.set_ms(T0 + 1000 * SECOND);
    wal.compact().expect("compact");
    assert!(contents(&wal, "solo").is_empty(), "every record expired");
    assert!(wal.records("solo").expect("records").next().is_none());
    assert!(
        keys(&wal).is_empty(),
        "keys without records are not listed: {:?}",
        keys(&wal)
    );
    for r in old.into_iter().chain([o1]) {
        assert_gone(&wal, r);
    }
    // Compacting again changes nothing.
    wal.compact().expect("compact again");
    assert!(keys(&wal).is_empty());

    let r4 = append(&wal, "solo", "four");
    assert!(
        r4.sequence_number > max_old,
        "new record {r4} reuses a sequence number at or below {max_old}"
    );
    assert_eq!(wal.read_entry_at(r4).expect("read"), "four");
    for r in old {
        // An old reference never resolves to the new record.
        assert_gone(&wal, r);
    }
    assert_eq!(contents(&wal, "solo"), vec![Bytes::from("four")]);
    assert_eq!(keys(&wal), vec!["solo"]);
    drop(wal);

    let wal = open(&dir, &clock);
    assert_eq!(keys(&wal), vec!["solo"]);
    assert_eq!(contents(&wal, "solo"), vec![Bytes::from("four")]);
    for r in old {
        assert_gone(&wal, r);
    }
    let r5 = append(&wal, "solo", "five");
    assert!(
        (r5.sequence_number, r5.offset) > (r4.sequence_number, r4.offset),
        "{r5} must come after {r4}"
    );
    assert_eq!(
        contents(&wal, "solo"),
        vec![Bytes::from("four"), Bytes::from("five")]
    );
}

#[test]
fn a_fully_expired_key_reopened_before_any_append_keeps_counting_up() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let wal = open(&dir, &clock);
    let r1 = append(&wal, "k", "first");
    clock.advance_ms(15 * SECOND);
    let r2 = append(&wal, "k", "second");
    assert_eq!((r1.sequence_number, r2.sequence_number), (1, 2));
    clock.set_ms(T0 + 1000 * SECOND);
    wal.compact().expect("compact");
    drop(wal);

    let wal = open(&dir, &clock);
    assert!(
        keys(&wal).is_empty(),
        "no records, so no keys: {:?}",
        keys(&wal)
    );
    assert!(contents(&wal, "k").is_empty());
    assert_gone(&wal, r1);
    assert_gone(&wal, r2);
    // Later still, compact and reopen once more before appending.
    clock.set_ms(T0 + 5000 * SECOND);
    wal.compact().expect("compact after reopen");
    drop(wal);
    let wal = open(&dir, &clock);
    assert!(keys(&wal).is_empty());

    let r3 = append(&wal, "k", "third");
    assert!(
        r3.sequence_number > r2.sequence_number,
        "after compaction and reopen, {r3} reuses a sequence number of {r2}"
    );
    assert_gone(&wal, r1);
    assert_gone(&wal, r2);
    assert_eq!(contents(&wal, "k"), vec![Bytes::from("third")]);
    drop(wal);
    let wal = open(&dir, &clock);
    assert_eq!(wal.read_entry_at(r3).expect("read after reopen"), "third");
    assert_eq!(keys(&wal), vec!["k"]);
}

#[test]
fn a_clock_stepping_backwards_deletes_nothing() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let open_small = || {
        Wal::builder(&dir)
            .clock(clock.clone())
            .retention(Duration::from_secs(100))
            .segments_per_retention_period(10)
            .max_segment_bytes(4096)
            .open()
            .expect("open")
    };
    let wal = open_small();
    let big = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.resize(3000, b'.');
        Bytes::from(v)
    };
    let mut refs = vec![
        wal.append_entry("k", None, big("a at 0 s"), false)
            .expect("append"),
    ];
    clock.set_ms(T0 + 15 * SECOND);
    refs.push(
        wal.append_entry("k", None, big("b at 15 s"), false)
            .expect("append"),
    );
    // The clock jumps back 500 s; a size rotation then makes a segment whose
    // period ends before its predecessor's.
    clock.set_ms(T0 - 500 * SECOND);
    refs.push(
        wal.append_entry("k", None, big("c at -500 s"), false)
            .expect("append"),
    );
    refs.push(
        wal.append_entry("k", None, big("d at -500 s"), false)
            .expect("append"),
    );
    let seqs: Vec<u64> = refs.iter().map(|r| r.sequence_number).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3, 4],
        "size rotation under a backwards clock"
    );
    let all = contents(&wal, "k");
    assert_eq!(all.len(), 4);

    for now in [
        0,
        T0 - 1000 * SECOND,
        T0 - 500 * SECOND,
        T0,
        T0 + 20 * SECOND,
    ] {
        clock.set_ms(now);
        wal.compact().expect("compact");
        assert_eq!(contents(&wal, "k"), all, "compact at {now} removed records");
        for r in &refs {
            wal.read_entry_at(*r).expect("still there");
        }
        assert_eq!(sequences_on_disk(&dir, "k"), (1..=4).collect());
    }

    // Segments 3 and 4 have expired by their own time, but segment 1 before
    // them has not: removing them would open a gap, so nothing goes.
    clock.set_ms(T0 + 50 * SECOND);
    wal.compact().expect("compact");
    assert_eq!(contents(&wal, "k"), all, "compaction opened a gap");
    drop(wal);
    let wal = open_small();
    assert_eq!(contents(&wal, "k"), all, "after reopen");
}

#[test]
fn a_read_only_handle_cannot_compact() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let writer = open(&dir, &clock);
    let r = append(&writer, "k", "from 2023");
    clock.advance_ms(15 * SECOND);
    let r2 = append(&writer, "k", "also from 2023");

    // Wal::new uses the system clock and a week's retention: by its clock
    // these records expired long ago, and it must still not touch them.
    // (A second open in this process would share the writer's log.)
    let reader = Wal::builder(&dir).read_only(true).open().expect("reader");
    assert!(reader.is_read_only());
    match reader.compact() {
        Err(WalError::ReadOnly(_)) => {}
        other => panic!("compact on a read-only handle: {other:?}"),
    }
    drop(reader);
    assert_eq!(sequences_on_disk(&dir, "k"), [1, 2].into());
    drop(writer);

    // An explicitly read-only handle whose clock says everything expired.
    clock.set_ms(T0 + 1000 * SECOND);
    let reader = Wal::builder(&dir)
        .read_only(true)
        .clock(clock.clone())
        .retention(Duration::from_secs(100))
        .open()
        .expect("read-only open");
    assert!(reader.is_read_only());
    match reader.compact() {
        Err(WalError::ReadOnly(_)) => {}
        other => panic!("compact on a read-only handle: {other:?}"),
    }
    assert_eq!(
        reader.read_entry_at(r).expect("still readable"),
        "from 2023"
    );
    assert_eq!(sequences_on_disk(&dir, "k"), [1, 2].into());
    drop(reader);

    // A writer with the same clock does remove them: there was something
    // to protect.
    let writer = open(&dir, &clock);
    writer.compact().expect("compact");
    assert_gone(&writer, r);
    assert_gone(&writer, r2);
}
