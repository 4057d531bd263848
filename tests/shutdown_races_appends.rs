//! `shutdown()` racing appends on other threads: it stops new changes and
//! waits for those in flight before it removes anything. It returns `Ok`,
//! the directory (which held only WAL files) is gone, no segment is left
//! behind, every append returns either `Ok` (and happened before the files
//! were removed) or `WalError::Closed`, and once a thread saw `Closed` it
//! never sees anything else.
//!
//! Every fsync is slowed down (the test storage sleeps first), so that
//! shutdown certainly overlaps appends that are in the middle of a sync;
//! the checks do not depend on it. A second test calls shutdown while one
//! append is certainly in the middle of moving to a new segment.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use nano_wal::{Wal, WalError};

/// What one appending thread saw, in order: `true` for `Ok`, `false` for
/// `Closed`. Any other result fails the test.
type Outcomes = Vec<bool>;

/// Append in a loop, in every way, until `Closed` was seen a few times.
fn appender(wal: &Wal, t: usize, appended: &AtomicU64) -> Outcomes {
    let mut seen = Outcomes::new();
    let mut closed_seen = 0;
    let mut i = 0usize;
    while closed_seen < 20 {
        i += 1;
        let content = Bytes::from(vec![b'x'; 300 + i % 200]);
        // A fresh key now and then (each creates a segment file); in
        // between, the key's segments fill up and are sealed and replaced.
        let key = format!("t{t}-k{}", i / 40);
        let result = match i % 5 {
            0 => wal.append_entry(key, None, content, true).map(drop),
            1 => wal
                .append_batch(
                    [(key.clone(), None, content.clone()), (key, None, content)],
                    i.is_multiple_of(2),
                )
                .map(drop),
            2 => wal.sync(),
            _ => wal.append_entry(key, None, content, false).map(drop),
        };
        match result {
            Ok(()) => {
                seen.push(true);
                appended.fetch_add(1, Ordering::SeqCst);
            }
            Err(WalError::Closed) => {
                seen.push(false);
                closed_seen += 1;
            }
            Err(e) => panic!("thread {t}, call {i}: expected Ok or Closed, got {e:?}"),
        }
    }
    seen
}

fn files_under(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map_or_else(
        |_| Vec::new(),
        |entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        },
    )
}

#[test]
fn shutdown_waits_for_appends_in_flight_and_refuses_later_ones() {
    for round in 0..8 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("wal");
        let (storage, faults) = common::FaultyStorage::create();
        faults.sync_delay_ms.store(3, Ordering::SeqCst);
        let wal = Arc::new(
            Wal::builder(&dir)
                .storage(storage)
                .max_segment_bytes(4096)
                .open()
                .expect("open"),
        );
        let appended = Arc::new(AtomicU64::new(0));
        let threads = 3;
        let start = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (wal, appended, start) = (wal.clone(), appended.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    appender(&wal, t, &appended)
                })
            })
            .collect();
        start.wait();
        // Let the appenders get going (a count, not a clock).
        while appended.load(Ordering::SeqCst) < 10 + 10 * round {
            std::thread::yield_now();
        }
        let shut = wal.shutdown();
        let outcomes: Vec<Outcomes> = handles
            .into_iter()
            .map(|h| h.join().expect("appender panicked"))
            .collect();

        assert!(shut.is_ok(), "round {round}: shutdown failed: {shut:?}");
        assert!(
            !dir.exists(),
            "round {round}: the directory held only WAL files but is still there: {:?}",
            files_under(&dir)
        );
        for (t, seen) in outcomes.iter().enumerate() {
            let first_closed = seen.iter().position(|ok| !ok).expect("Closed was seen");
            assert!(
                seen[first_closed..].iter().all(|ok| !ok),
                "round {round}, thread {t}: an append succeeded after one saw Closed"
            );
        }
        // Nothing written after the shutdown, anywhere.
        assert!(files_under(tmp.path()).is_empty(), "round {round}");
        assert!(matches!(
            wal.append_entry("late", None, Bytes::from("x"), false),
            Err(WalError::Closed)
        ));
    }
}

/// One append is inside the fsync that seals its key's full segment when
/// shutdown is called: shutdown waits for it (it was acknowledged, so it
/// must finish before the files go), and then removes everything.
#[test]
fn shutdown_waits_for_an_append_moving_to_a_new_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Arc::new(
        Wal::builder(&dir)
            .storage(storage)
            .max_segment_bytes(4096)
            .open()
            .expect("open"),
    );
    // Non-durable appends that nearly fill the first segment.
    for _ in 0..3 {
        wal.append_entry("k", None, Bytes::from(vec![b'x'; 1000]), false)
            .expect("append");
    }
    // The next append creates segment 2; its header write stalls there,
    // in the middle of the append.
    *faults.stall_writes_to.lock().expect("lock") = Some("-0002.log".into());
    let writes_before = faults.writes.load(Ordering::SeqCst);
    let moving = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            wal.append_entry("k", None, Bytes::from(vec![b'y'; 1000]), false)
        })
    };
    while faults.writes.load(Ordering::SeqCst) == writes_before {
        std::thread::yield_now();
    }
    let shutting = {
        let wal = wal.clone();
        std::thread::spawn(move || wal.shutdown())
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !shutting.is_finished(),
        "shutdown must wait for the append in flight"
    );
    assert!(
        dir.exists(),
        "nothing is removed while an append is in flight"
    );
    *faults.stall_writes_to.lock().expect("lock") = None;
    let r = moving.join().expect("appender panicked");
    let shut = shutting.join().expect("shutdown panicked");

    assert!(shut.is_ok(), "shutdown failed: {shut:?}");
    let r = r.expect("the append in flight finishes before shutdown removes anything");
    assert_eq!(r.sequence_number, 2, "it went to a new segment");
    assert!(!dir.exists(), "left behind: {:?}", files_under(&dir));
    assert!(files_under(tmp.path()).is_empty());
}
