//! Segment rotation. By size: with `max_segment_bytes(4096)` a key's records
//! spread over several segments with increasing, contiguous sequence numbers,
//! no segment file grows past the limit unless it holds one record larger
//! than the limit (which then has a segment of its own), everything reads
//! back in order, also after a reopen, and appends after a reopen continue
//! the sequence. By time: with a `ManualClock`, once the clock passes
//! `retention / segments_per_retention_period` the next append starts a new
//! segment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal};

const LIMIT: u64 = 4096;
const KEY: &str = "rotating";

fn wal_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    (tmp, dir)
}

fn open(dir: &Path) -> Wal {
    Wal::builder(dir)
        .max_segment_bytes(LIMIT)
        .open()
        .expect("open with 4 KiB segments")
}

/// 500 bytes naming record `i`.
fn small(i: usize) -> Bytes {
    let mut v = format!("record {i:05} ").into_bytes();
    v.resize(500, b'a' + u8::try_from(i % 26).expect("small"));
    Bytes::from(v)
}

/// Segment files in `dir` by sequence number (one key per directory here),
/// with their sizes.
fn segment_sizes(dir: &Path) -> BTreeMap<u64, u64> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().into_string().expect("utf-8");
            let stem = name.strip_suffix(".log")?;
            let seq = stem.rsplit_once('-')?.1.parse().expect("sequence in name");
            Some((seq, e.metadata().expect("metadata").len()))
        })
        .collect()
}

/// Sequence numbers start at 1 and go up by at most one from record to
/// record; offsets grow within a segment and restart at 0 in a new one.
fn assert_contiguous(refs: &[EntryRef]) {
    assert_eq!(refs.first().map(|r| r.sequence_number), Some(1));
    assert_eq!(refs.first().map(|r| r.offset), Some(0));
    for w in refs.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.sequence_number == a.sequence_number {
            assert!(b.offset > a.offset, "offsets must grow: {a} then {b}");
        } else {
            assert_eq!(
                b.sequence_number,
                a.sequence_number + 1,
                "sequence numbers must be contiguous: {a} then {b}"
            );
            assert_eq!(b.offset, 0, "a new segment starts at offset 0: {b}");
        }
    }
}

fn assert_reads_back(wal: &Wal, refs: &[EntryRef], contents: &[Bytes]) {
    for (r, c) in refs.iter().zip(contents) {
        assert_eq!(&wal.read_entry_at(*r).expect("read by ref"), c, "at {r}");
    }
    let got: Vec<Bytes> = wal.enumerate_records(KEY).expect("enumerate").collect();
    assert_eq!(got.len(), contents.len());
    assert!(got == contents, "records read back out of order or altered");
    let got_refs: Vec<EntryRef> = wal
        .records(KEY)
        .expect("records")
        .map(|r| r.expect("record").entry_ref)
        .collect();
    assert_eq!(got_refs, refs, "records() yields the refs appends returned");
}

#[test]
fn small_records_fill_several_segments_within_the_limit() {
    let (_tmp, dir) = wal_dir();
    let wal = open(&dir);
    let mut contents: Vec<Bytes> = (0..100).map(small).collect();
    let mut refs: Vec<EntryRef> = contents
        .iter()
        .map(|c| {
            wal.append_entry(KEY, None, c.clone(), false)
                .expect("append")
        })
        .collect();
    assert_contiguous(&refs);
    let segments = refs.last().expect("refs").sequence_number;
    // 100 × 500 bytes of content cannot fit in fewer than 13 segments of 4 KiB.
    assert!(
        segments >= 13,
        "only {segments} segments for 50 KB of records"
    );

    let sizes = segment_sizes(&dir);
    assert_eq!(
        sizes.keys().copied().collect::<Vec<_>>(),
        (1..=segments).collect::<Vec<_>>(),
        "one file per sequence number"
    );
    for (seq, size) in &sizes {
        assert!(
            *size <= LIMIT,
            "segment {seq} is {size} bytes, over {LIMIT}"
        );
        if *seq < segments {
            // Rotated only when the next record would not fit.
            assert!(
                *size > LIMIT - 600,
                "segment {seq} was rotated while {size} bytes full"
            );
        }
    }
    assert_reads_back(&wal, &refs, &contents);
    drop(wal);
    // At rest: the active segment's preallocated space is trimmed on close.
    let at_rest = segment_sizes(&dir);
    assert!(at_rest[&segments] <= sizes[&segments]);

    let wal = open(&dir);
    assert_reads_back(&wal, &refs, &contents);
    assert_eq!(segment_sizes(&dir), at_rest, "reopening changed the files");

    // Appends after a reopen continue the same sequence.
    for i in 100..120 {
        let c = small(i);
        refs.push(
            wal.append_entry(KEY, None, c.clone(), true)
                .expect("append"),
        );
        contents.push(c);
    }
    assert_contiguous(&refs);
    let last_before = refs[99];
    let first_after = refs[100];
    assert!(
        (first_after.sequence_number == last_before.sequence_number
            && first_after.offset > last_before.offset)
            || first_after.sequence_number == last_before.sequence_number + 1,
        "after reopen, {first_after} does not follow {last_before}"
    );
    for (seq, size) in segment_sizes(&dir) {
        assert!(size <= LIMIT, "segment {seq} is {size} bytes, over {LIMIT}");
    }
    assert_reads_back(&wal, &refs, &contents);
    drop(wal);
    let wal = open(&dir);
    assert_reads_back(&wal, &refs, &contents);
}

#[test]
fn an_oversized_record_gets_a_segment_of_its_own() {
    let (_tmp, dir) = wal_dir();
    let wal = open(&dir);
    let big = |n: u8| Bytes::from(vec![n; 10_000]);
    let mut contents = Vec::new();
    let mut refs = Vec::new();
    let mut push = |wal: &Wal, c: Bytes| {
        refs.push(
            wal.append_entry(KEY, None, c.clone(), false)
                .expect("append"),
        );
        contents.push(c);
    };
    // An oversized record as the very first record, then after small ones,
    // then two in a row.
    push(&wal, big(1));
    for i in 0..3 {
        push(&wal, small(i));
    }
    push(&wal, big(2));
    push(&wal, big(3));
    for i in 3..6 {
        push(&wal, small(i));
    }
    assert_contiguous(&refs);
    let big_at = [0, 4, 5];
    for &i in &big_at {
        let r = refs[i];
        assert_eq!(r.offset, 0, "oversized record {i} starts its segment: {r}");
        for (j, other) in refs.iter().enumerate() {
            if j != i {
                assert_ne!(
                    other.sequence_number, r.sequence_number,
                    "record {j} shares a segment with oversized record {i}"
                );
            }
        }
    }
    let big_segments: Vec<u64> = big_at.iter().map(|&i| refs[i].sequence_number).collect();
    for (seq, size) in segment_sizes(&dir) {
        if big_segments.contains(&seq) {
            assert!(size > 10_000, "segment {seq} holds a 10,000-byte record");
        } else {
            assert!(size <= LIMIT, "segment {seq} is {size} bytes, over {LIMIT}");
        }
    }
    assert_reads_back(&wal, &refs, &contents);
    drop(wal);
    let wal = open(&dir);
    assert_reads_back(&wal, &refs, &contents);
    // After reopen, the next small record does not join the last segment's
    // small records if that would pass the limit, and never an oversized one.
    let r = wal
        .append_entry(KEY, None, small(99), false)
        .expect("append");
    assert!(!big_segments.contains(&r.sequence_number));
    for (seq, size) in segment_sizes(&dir) {
        if !big_segments.contains(&seq) {
            assert!(size <= LIMIT, "segment {seq} is {size} bytes, over {LIMIT}");
        }
    }
}

#[test]
fn a_batch_is_split_across_segments() {
    let (_tmp, dir) = wal_dir();
    let wal = open(&dir);
    let contents: Vec<Bytes> = (0..30).map(small).collect();
    let refs = wal
        .append_batch(contents.iter().map(|c| (KEY, None, c.clone())), true)
        .expect("durable batch");
    assert_eq!(refs.len(), contents.len());
    assert_contiguous(&refs);
    assert!(refs.last().expect("refs").sequence_number >= 4);
    for (seq, size) in segment_sizes(&dir) {
        assert!(size <= LIMIT, "segment {seq} is {size} bytes, over {LIMIT}");
    }
    assert_reads_back(&wal, &refs, &contents);
    drop(wal);
    let wal = open(&dir);
    assert_reads_back(&wal, &refs, &contents);
}

#[test]
fn an_oversized_record_in_a_batch_gets_a_segment_of_its_own() {
    let (_tmp, dir) = wal_dir();
    let wal = open(&dir);
    let big = Bytes::from(vec![b'B'; 10_000]);
    let contents = vec![small(0), small(1), big, small(2), small(3)];
    let refs = wal
        .append_batch(contents.iter().map(|c| (KEY, None, c.clone())), true)
        .expect("batch");
    assert_contiguous(&refs);
    let big_ref = refs[2];
    assert_eq!(big_ref.offset, 0, "the oversized record starts its segment");
    for (i, r) in refs.iter().enumerate() {
        if i != 2 {
            assert_ne!(r.sequence_number, big_ref.sequence_number, "record {i}");
        }
    }
    for (seq, size) in segment_sizes(&dir) {
        if seq != big_ref.sequence_number {
            assert!(size <= LIMIT, "segment {seq} is {size} bytes, over {LIMIT}");
        }
    }
    assert_reads_back(&wal, &refs, &contents);
    drop(wal);
    let wal = open(&dir);
    assert_reads_back(&wal, &refs, &contents);
}

const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1000;

fn open_with_clock(dir: &Path, clock: &Arc<ManualClock>) -> Wal {
    // Rotate every 100 s / 10 = 10 s.
    Wal::builder(dir)
        .clock(clock.clone())
        .retention(Duration::from_secs(100))
        .segments_per_retention_period(10)
        .open()
        .expect("open with a manual clock")
}

#[test]
fn time_based_rotation_follows_the_clock() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let wal = open_with_clock(&dir, &clock);
    let append = |wal: &Wal, s: &str| {
        wal.append_entry(KEY, None, Bytes::from(s.to_owned()), false)
            .expect("append")
    };
    let mut refs = vec![append(&wal, "at 0 s")];
    assert_eq!(refs[0].sequence_number, 1);
    clock.advance_ms(9 * SECOND);
    refs.push(append(&wal, "at 9 s"));
    assert_eq!(
        refs[1].sequence_number, 1,
        "before the period ends: same segment"
    );
    clock.advance_ms(2 * SECOND);
    refs.push(append(&wal, "at 11 s"));
    assert_eq!(refs[2].sequence_number, 2, "past the period: a new segment");
    assert_eq!(refs[2].offset, 0);
    // Skipping several periods starts one new segment, not one per period.
    clock.advance_ms(35 * SECOND);
    refs.push(append(&wal, "at 46 s"));
    assert_eq!(refs[3].sequence_number, 3);
    // A clock stepping backwards neither rotates nor reorders.
    clock.set_ms(T0);
    refs.push(append(&wal, "back at 0 s"));
    assert_eq!(refs[4].sequence_number, 3);
    assert!(refs[4].offset > refs[3].offset);

    let stamps: Vec<Option<u64>> = wal
        .records(KEY)
        .expect("records")
        .map(|r| r.expect("record").timestamp_unix_ms)
        .collect();
    assert_eq!(
        stamps,
        [0, 9, 11, 46, 0].map(|s| Some(T0 + s * SECOND)).to_vec(),
        "records carry the clock's time"
    );
    let contents: Vec<Bytes> = wal.enumerate_records(KEY).expect("enumerate").collect();
    assert_eq!(
        contents,
        ["at 0 s", "at 9 s", "at 11 s", "at 46 s", "back at 0 s"].map(Bytes::from)
    );
    drop(wal);

    // A reopened WAL never appends to an earlier process's segment (so
    // offsets cut from a torn tail are never reused): even within segment
    // 3's period, the first append after a reopen starts segment 4.
    clock.set_ms(T0 + 50 * SECOND);
    let wal = open_with_clock(&dir, &clock);
    let r = append(&wal, "at 50 s");
    assert_eq!(
        (r.sequence_number, r.offset),
        (4, 0),
        "a new segment after reopening"
    );
    drop(wal);
    // Segment 4 runs from 50 s to 60 s; past that the next append rotates.
    clock.set_ms(T0 + 61 * SECOND);
    let wal = open_with_clock(&dir, &clock);
    let r = append(&wal, "at 61 s");
    assert_eq!(r.sequence_number, 5, "segment 4's period ended at 60 s");
    assert_eq!(r.offset, 0);
    clock.set_ms(T0 + 65 * SECOND);
    assert_eq!(
        append(&wal, "at 65 s").sequence_number,
        5,
        "within segment 5's period"
    );
    clock.set_ms(T0 + 71 * SECOND);
    assert_eq!(
        append(&wal, "at 71 s").sequence_number,
        6,
        "segment 5's period ended at 71 s"
    );
    assert_eq!(wal.enumerate_records(KEY).expect("enumerate").count(), 9);
}

#[test]
fn time_and_size_rotation_together() {
    let (_tmp, dir) = wal_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let wal = Wal::builder(&dir)
        .clock(clock.clone())
        .retention(Duration::from_secs(100))
        .segments_per_retention_period(10)
        .max_segment_bytes(LIMIT)
        .open()
        .expect("open");
    let mut refs = Vec::new();
    for i in 0..40 {
        // 1 s per record: time rotates every 10 records, size every ~7.
        refs.push(
            wal.append_entry(KEY, None, small(i), false)
                .expect("append"),
        );
        clock.advance_ms(SECOND);
    }
    assert_contiguous(&refs);
    for (seq, size) in segment_sizes(&dir) {
        assert!(size <= LIMIT, "segment {seq} is {size} bytes, over {LIMIT}");
    }
    let contents: Vec<Bytes> = (0..40).map(small).collect();
    assert_reads_back(&wal, &refs, &contents);
}
