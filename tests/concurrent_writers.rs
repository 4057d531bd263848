//! Concurrent writers on one `Arc<Wal>` without any external `Mutex`: every
//! returned `EntryRef` resolves to exactly its record (content and header),
//! each key's log holds every thread's records in that thread's append order
//! with no duplicates and no losses, and all of that survives a reopen. Also
//! guards durable `append_batch` calls spanning many keys from several
//! threads at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::thread;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal};

const THREADS: usize = 8;
const PER_THREAD: usize = 500;
/// Threads below this index write to the shared key; the others to their own.
const SHARED_WRITERS: usize = 4;
const SHARED_KEY: &str = "shared";

#[derive(Debug, Clone)]
struct Appended {
    key: String,
    thread: usize,
    index: usize,
    header: Option<Bytes>,
    content: Bytes,
    entry_ref: EntryRef,
}

fn key_of(thread: usize) -> String {
    if thread < SHARED_WRITERS {
        SHARED_KEY.to_owned()
    } else {
        format!("own-{thread}")
    }
}

/// Content names its writer and position, padded to a varying length so
/// records of different sizes interleave in the shared key's segments.
fn content_of(thread: usize, index: usize) -> Bytes {
    let mut s = format!("t={thread};i={index};");
    let pad = (thread * 31 + index * 17) % 200;
    s.extend(std::iter::repeat_n(
        char::from(b'a' + u8::try_from((thread + index) % 26).expect("small")),
        pad,
    ));
    Bytes::from(s)
}

fn header_of(thread: usize, index: usize) -> Option<Bytes> {
    match index % 3 {
        0 => None,
        1 => Some(Bytes::from(format!("hdr:{thread}:{index}"))),
        // An empty header is still a header, distinct from none.
        _ => Some(Bytes::new()),
    }
}

/// Parse `(thread, index)` back out of a record's content.
fn parse(content: &[u8]) -> (usize, usize) {
    let s = std::str::from_utf8(content).expect("contents are UTF-8");
    let mut parts = s.split(';');
    let t = parts
        .next()
        .and_then(|p| p.strip_prefix("t="))
        .and_then(|p| p.parse().ok())
        .expect("thread field");
    let i = parts
        .next()
        .and_then(|p| p.strip_prefix("i="))
        .and_then(|p| p.parse().ok())
        .expect("index field");
    (t, i)
}

fn write_concurrently(wal: &Arc<Wal>) -> Vec<Appended> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(wal);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let key = key_of(t);
                let mut out = Vec::with_capacity(PER_THREAD);
                barrier.wait();
                for i in 0..PER_THREAD {
                    let header = header_of(t, i);
                    let content = content_of(t, i);
                    // Mixed durability, differently phased per thread.
                    let durable = (i + t) % 5 == 0;
                    let entry_ref = wal
                        .append_entry(key.as_str(), header.clone(), content.clone(), durable)
                        .expect("concurrent append");
                    out.push(Appended {
                        key: key.clone(),
                        thread: t,
                        index: i,
                        header,
                        content,
                        entry_ref,
                    });
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread panicked"))
        .collect()
}

/// Everything the test checks, run before and after a reopen.
fn verify(wal: &Wal, appended: &[Appended]) {
    // Every reference is distinct.
    let unique: HashSet<EntryRef> = appended.iter().map(|a| a.entry_ref).collect();
    assert_eq!(unique.len(), appended.len(), "two appends got the same ref");

    // Every reference resolves to its exact record.
    for a in appended {
        let content = wal.read_entry_at(a.entry_ref).expect("read_entry_at");
        assert_eq!(content, a.content, "content at {}", a.entry_ref);
        let record = wal.read_record_at(a.entry_ref).expect("read_record_at");
        assert_eq!(record.entry_ref, a.entry_ref);
        assert_eq!(record.content, a.content, "content at {}", a.entry_ref);
        assert_eq!(record.header, a.header, "header at {}", a.entry_ref);
    }

    // Per key: each thread's records in its append order, nothing extra.
    let by_ref: HashMap<EntryRef, &Appended> = appended.iter().map(|a| (a.entry_ref, a)).collect();
    let mut keys: Vec<String> = appended.iter().map(|a| a.key.clone()).collect();
    keys.sort();
    keys.dedup();
    for key in &keys {
        let expected_count = appended.iter().filter(|a| &a.key == key).count();
        let mut next_index: HashMap<usize, usize> = HashMap::new();
        let mut seen: HashSet<EntryRef> = HashSet::new();
        let mut last_ref: Option<EntryRef> = None;
        let mut count = 0;
        for record in wal.records(key.as_str()).expect("records") {
            let record = record.expect("record reads back");
            let (t, i) = parse(&record.content);
            assert_eq!(key_of(t), *key, "record of thread {t} under key {key}");
            let expected_next = next_index.entry(t).or_insert(0);
            assert_eq!(
                i, *expected_next,
                "key {key}: thread {t}'s records out of order or missing"
            );
            *expected_next += 1;
            assert!(
                seen.insert(record.entry_ref),
                "duplicate {}",
                record.entry_ref
            );
            if let Some(prev) = last_ref {
                assert!(
                    (record.entry_ref.sequence_number, record.entry_ref.offset)
                        > (prev.sequence_number, prev.offset),
                    "records() went backwards: {prev} then {}",
                    record.entry_ref
                );
            }
            last_ref = Some(record.entry_ref);
            let a = by_ref
                .get(&record.entry_ref)
                .expect("records() yielded a ref no append returned");
            assert_eq!((a.thread, a.index), (t, i), "ref {}", record.entry_ref);
            assert_eq!(record.header, a.header, "header of {}", record.entry_ref);
            count += 1;
        }
        assert_eq!(count, expected_count, "record count of key {key}");
        for (t, n) in &next_index {
            assert_eq!(*n, PER_THREAD, "key {key}: thread {t} record count");
        }
        // The 0.5 view yields the same contents in the same order.
        let contents: Vec<Bytes> = wal
            .enumerate_records(key.as_str())
            .expect("enumerate_records")
            .collect();
        let via_records: Vec<Bytes> = wal
            .records(key.as_str())
            .expect("records")
            .map(|r| r.expect("record").content)
            .collect();
        assert_eq!(
            contents, via_records,
            "enumerate_records vs records for {key}"
        );
    }

    let listed: Vec<String> = wal.enumerate_keys().expect("enumerate_keys").collect();
    assert_eq!(listed, keys, "enumerate_keys");
}

#[test]
fn eight_threads_share_one_wal_without_a_mutex() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let wal = Arc::new(
        Wal::builder(&dir)
            // Small segments, so writers also race on rotation.
            .max_segment_bytes(16 * 1024)
            .open()
            .expect("open"),
    );
    let appended = write_concurrently(&wal);
    assert_eq!(appended.len(), THREADS * PER_THREAD);
    let shared_segments: HashSet<u64> = appended
        .iter()
        .filter(|a| a.key == SHARED_KEY)
        .map(|a| a.entry_ref.sequence_number)
        .collect();
    assert!(
        shared_segments.len() > 1,
        "the shared key should have rotated under concurrent appends"
    );
    verify(&wal, &appended);

    let wal = Arc::try_unwrap(wal).expect("every thread released its handle");
    drop(wal);
    let reopened = Wal::builder(&dir)
        .max_segment_bytes(16 * 1024)
        .open()
        .expect("reopen");
    assert!(
        reopened.recovery_report().torn_tails.is_empty(),
        "a clean shutdown leaves no torn tail: {:?}",
        reopened.recovery_report()
    );
    verify(&reopened, &appended);
}

#[test]
fn default_segments_and_all_durable_from_many_threads() {
    // Same shape with every append durable and default segment size: group
    // commit must not lose or reorder anything.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let wal = Arc::new(Wal::builder(&dir).open().expect("open"));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        let r = wal
                            .log_entry(key_of(t), header_of(t, i), content_of(t, i))
                            .expect("durable append");
                        Appended {
                            key: key_of(t),
                            thread: t,
                            index: i,
                            header: header_of(t, i),
                            content: content_of(t, i),
                            entry_ref: r,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let appended: Vec<Appended> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread"))
        .collect();
    for key in ["shared", "own-4", "own-7"] {
        let n = wal.records(key).expect("records").count();
        let expected = if key == "shared" {
            SHARED_WRITERS * 100
        } else {
            100
        };
        assert_eq!(n, expected, "count of {key}");
    }
    for a in &appended {
        assert_eq!(wal.read_entry_at(a.entry_ref).expect("read"), a.content);
    }
    drop(wal);
    let reopened = Wal::builder(&dir).open().expect("reopen");
    for a in &appended {
        let rec = reopened.read_record_at(a.entry_ref).expect("read");
        assert_eq!(
            (rec.content, rec.header),
            (a.content.clone(), a.header.clone())
        );
    }
}

const BATCH_THREADS: usize = 4;
const BATCHES: usize = 25;
const BATCH_KEYS: usize = 16;

fn batch_key(k: usize) -> String {
    format!("batch-{k:02}")
}

fn batch_content(t: usize, b: usize, k: usize) -> Bytes {
    Bytes::from(format!(
        "t={t};i={b};k={k};{}",
        "z".repeat((t + b + k) % 50)
    ))
}

#[test]
fn durable_batches_spanning_many_keys_from_several_threads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let wal = Arc::new(Wal::builder(&dir).open().expect("open"));
    let barrier = Arc::new(Barrier::new(BATCH_THREADS));
    let handles: Vec<_> = (0..BATCH_THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut out = Vec::new();
                for b in 0..BATCHES {
                    // Each thread walks the keys in its own rotated order, and
                    // one key appears twice per batch.
                    let mut entries: Vec<(String, Option<Bytes>, Bytes)> = (0..BATCH_KEYS)
                        .map(|j| {
                            let k = (j + t * 5 + b) % BATCH_KEYS;
                            let header = k
                                .is_multiple_of(2)
                                .then(|| Bytes::from(format!("h{t}.{b}")));
                            (batch_key(k), header, batch_content(t, b, k))
                        })
                        .collect();
                    let dup_k = (t + b) % BATCH_KEYS;
                    entries.push((
                        batch_key(dup_k),
                        None,
                        Bytes::from(format!("t={t};i={b};k={dup_k};second")),
                    ));
                    let refs = wal
                        .append_batch(
                            entries
                                .iter()
                                .map(|(key, h, c)| (key.as_str(), h.clone(), c.clone())),
                            true,
                        )
                        .expect("durable batch");
                    assert_eq!(refs.len(), entries.len(), "one ref per entry");
                    for ((key, h, c), r) in entries.into_iter().zip(refs) {
                        out.push((key, h, c, r));
                    }
                }
                out
            })
        })
        .collect();
    let appended: Vec<(String, Option<Bytes>, Bytes, EntryRef)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("batch thread panicked"))
        .collect();
    let per_batch = BATCH_KEYS + 1;
    assert_eq!(appended.len(), BATCH_THREADS * BATCHES * per_batch);

    let check = |wal: &Wal| {
        let unique: HashSet<EntryRef> = appended.iter().map(|a| a.3).collect();
        assert_eq!(unique.len(), appended.len(), "duplicate refs");
        for (key, header, content, r) in &appended {
            assert_eq!(r.key_hash, nano_wal::key_hash(key.as_bytes()), "{r}");
            let rec = wal.read_record_at(*r).expect("batch ref resolves");
            assert_eq!(&rec.content, content, "content at {r}");
            assert_eq!(&rec.header, header, "header at {r}");
        }
        for k in 0..BATCH_KEYS {
            let key = batch_key(k);
            // Per thread, the (batch, first-before-second) sequence of records.
            let mut last: HashMap<usize, (usize, u8)> = HashMap::new();
            let mut count = 0;
            let mut firsts = 0;
            for rec in wal.records(key.as_str()).expect("records") {
                let rec = rec.expect("record");
                let s = std::str::from_utf8(&rec.content).expect("utf-8");
                let (t, b) = parse(s.as_bytes());
                let order = u8::from(s.ends_with("second"));
                firsts += usize::from(order == 0);
                if let Some(prev) = last.get(&t) {
                    assert!(
                        (b, order) > *prev,
                        "key {key}: thread {t}'s batch records out of order"
                    );
                }
                last.insert(t, (b, order));
                count += 1;
            }
            let expected = appended.iter().filter(|a| a.0 == key).count();
            assert_eq!(count, expected, "record count of {key}");
            assert_eq!(
                firsts,
                BATCH_THREADS * BATCHES,
                "{key} gets one record from every batch"
            );
        }
    };
    check(&wal);
    drop(Arc::try_unwrap(wal).expect("threads released the handle"));
    let reopened = Wal::builder(&dir).open().expect("reopen");
    check(&reopened);
}
