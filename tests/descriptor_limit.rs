//! Open file handles are bounded: with `max_open_files(n)` the handle cache
//! never holds more than `n` segment files however many keys there are, and
//! every record still reads back; and when the process's descriptor limit
//! (`ulimit -n`) is below the cache size, the engine shrinks its cache on
//! `EMFILE` instead of failing.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal};

const CHILD_DIR_ENV: &str = "NANO_WAL_TEST_FD_CHILD_DIR";
const CHILD_TEST: &str = "child_many_keys";

fn content(k: usize) -> Bytes {
    Bytes::from(format!("value of key {k}: {}", "#".repeat(k % 37)))
}

fn key(k: usize) -> String {
    format!("key-{k:05}")
}

/// Descriptors this process holds right now (Linux only).
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count)
}

#[test]
fn handle_cache_stays_within_max_open_files() {
    const KEYS: usize = 2_000;
    const CAP: usize = 16;
    // Other tests in this binary may hold a few descriptors meanwhile.
    const SLACK: usize = 16;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let open = || {
        Wal::builder(&dir)
            .max_open_files(CAP)
            .open()
            .expect("open with a small handle cache")
    };
    let fds_before = open_fds();
    let check_bounds = |wal: &Wal, what: &str| {
        let n = wal.open_file_count();
        assert!(n <= CAP, "{what}: {n} files open, cap is {CAP}");
        if let (Some(before), Some(now)) = (fds_before, open_fds()) {
            assert!(
                now <= before + CAP + SLACK,
                "{what}: process holds {now} descriptors, {before} before the WAL opened"
            );
        }
    };

    let wal = open();
    let mut refs: Vec<EntryRef> = Vec::with_capacity(KEYS);
    for k in 0..KEYS {
        // Now and then durable, which needs a handle to an evicted segment.
        let durable = k % 250 == 0;
        let r = wal
            .append_entry(key(k), None, content(k), durable)
            .expect("append");
        refs.push(r);
        check_bounds(&wal, "after append");
    }
    // A second record for some early keys, long after their files were evicted.
    let mut extra: Vec<(usize, EntryRef)> = Vec::new();
    for k in (0..KEYS).step_by(97) {
        let r = wal
            .append_entry(key(k), Some(Bytes::from("again")), content(k + 1), false)
            .expect("append to an evicted key");
        extra.push((k, r));
        check_bounds(&wal, "after second append");
    }

    let read_all = |wal: &Wal| {
        // Visit the keys in a scattered order (7919 is prime, coprime to KEYS).
        for i in 0..KEYS {
            let k = (i * 7919 + 13) % KEYS;
            assert_eq!(
                wal.read_entry_at(refs[k]).expect("read by ref"),
                content(k),
                "key {k}"
            );
            check_bounds(wal, "after read");
        }
        for &(k, r) in &extra {
            let rec = wal.read_record_at(r).expect("read second record");
            assert_eq!(rec.content, content(k + 1));
            assert_eq!(rec.header, Some(Bytes::from("again")));
            let all: Vec<Bytes> = wal.enumerate_records(key(k)).expect("enumerate").collect();
            assert_eq!(all, vec![content(k), content(k + 1)], "key {k}");
            check_bounds(wal, "after enumerate");
        }
        assert_eq!(wal.enumerate_keys().expect("keys").count(), KEYS);
        check_bounds(wal, "after enumerate_keys");
    };
    read_all(&wal);
    wal.sync()
        .expect("sync every dirty segment through evicted handles");
    check_bounds(&wal, "after sync");
    drop(wal);

    let segment_files = std::fs::read_dir(&dir)
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    assert_eq!(segment_files, KEYS, "one segment file per key");

    // Opening 2,000 segments must not hold them all open either.
    let wal = open();
    check_bounds(&wal, "after reopen");
    read_all(&wal);
}

// ---- A real descriptor limit ------------------------------------------------------
//
// The children run this test binary again under `ulimit -n 256`, with the
// default cache size of 1024 (over the limit), so the engine meets EMFILE.

/// Keys in the real-limit tests, as the requirement states: far more than
/// descriptors. (With more keys than cached handles each new key evicts a
/// dirty segment, which the engine fsyncs before closing it, so this takes
/// about 15 s.)
const LIMIT_KEYS: usize = 20_000;
const FD_LIMIT: &str = "256";
const CHILD_MODE_ENV: &str = "NANO_WAL_TEST_FD_CHILD_MODE";
// The default cache must exceed the limit for these tests to mean anything.
const _: () = assert!(nano_wal::DEFAULT_MAX_OPEN_FILES > 256);

/// Run [`child_many_keys`] in `mode`, under `ulimit -n 256` unless the
/// mode is `prepare`, and check it reports OK.
fn run_child(dir: &Path, mode: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let limit = if mode == "prepare" {
        String::new()
    } else {
        format!("ulimit -n {FD_LIMIT} && ")
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{limit}exec \"$0\" --exact {CHILD_TEST} --ignored --nocapture"
        ))
        .arg(&exe)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
        .output()
        .expect("run child under ulimit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child ({mode}) failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.lines().any(|l| l.trim_end() == "OK"),
        "child ({mode}) did not report OK:\n{stdout}"
    );
}

/// Appending to thousands of new keys under the limit: every new key
/// creates a segment file, so the engine must make room in its cache.
#[test]
fn real_descriptor_limit_appending_to_many_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    run_child(&tmp.path().join("wal"), "append");
}

/// Opening a directory with thousands of segments under the limit.
#[test]
fn real_descriptor_limit_reopening_many_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    // Written by another child without the limit: not here, where holding
    // thousands of descriptors would upset the other test's count.
    run_child(&dir, "prepare");
    run_child(&dir, "reopen");
}

fn assert_in_force() {
    // The limit really is in force in this process.
    let limit = Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .expect("ulimit -n");
    assert_eq!(
        String::from_utf8_lossy(&limit.stdout).trim(),
        FD_LIMIT,
        "the child should run under ulimit -n {FD_LIMIT}"
    );
}

/// Reopen under the limit and check every key and a sample of records,
/// by the references appends returned if known.
fn reopen_and_check(dir: &Path, refs: Option<&[EntryRef]>) -> Wal {
    let wal = Wal::builder(dir)
        .open()
        .expect("reopen thousands of segments under ulimit -n 256");
    assert!(wal.open_file_count() < 256, "cache shrank below the limit");
    assert_eq!(wal.enumerate_keys().expect("keys").count(), LIMIT_KEYS);
    for k in (0..LIMIT_KEYS).step_by(37) {
        let first = wal
            .records(key(k))
            .expect("records")
            .next()
            .unwrap_or_else(|| panic!("key {k} has no records after reopen"))
            .unwrap_or_else(|e| panic!("read key {k} after reopen: {e}"));
        assert_eq!(first.content, content(k), "key {k}");
        if let Some(refs) = refs {
            assert_eq!(first.entry_ref, refs[k], "key {k}");
        }
        assert_eq!(
            wal.read_entry_at(first.entry_ref)
                .unwrap_or_else(|e| panic!("read key {k} by ref after reopen: {e}")),
            content(k)
        );
    }
    wal
}

fn child_append(dir: &Path) {
    let wal = Wal::builder(dir).open().expect("open with default options");
    let mut refs = Vec::with_capacity(LIMIT_KEYS);
    for k in 0..LIMIT_KEYS {
        let r = wal
            .append_entry(key(k), None, content(k), false)
            .unwrap_or_else(|e| panic!("append to key {k} under ulimit -n 256: {e}"));
        refs.push(r);
    }
    assert!(wal.open_file_count() < 256, "cache shrank below the limit");
    for k in (0..LIMIT_KEYS).step_by(31) {
        assert_eq!(
            wal.read_entry_at(refs[k])
                .unwrap_or_else(|e| panic!("read key {k}: {e}")),
            content(k)
        );
    }
    // A durable append needs a directory fsync, which needs a descriptor.
    wal.append_entry(key(7), None, Bytes::from("durable"), true)
        .expect("durable append under the limit");
    drop(wal);
    let wal = reopen_and_check(dir, Some(&refs));
    let seven: Vec<Bytes> = wal.enumerate_records(key(7)).expect("enumerate").collect();
    assert_eq!(seven, vec![content(7), Bytes::from("durable")]);
}

fn child_reopen(dir: &Path) {
    let wal = reopen_and_check(dir, None);
    // Appending to keys whose segments were evicted reopens their files.
    for k in (0..LIMIT_KEYS).step_by(13) {
        wal.append_entry(key(k), None, Bytes::from("second"), false)
            .unwrap_or_else(|e| panic!("append to existing key {k} under the limit: {e}"));
    }
    drop(wal);
    let wal = reopen_and_check(dir, None);
    let all: Vec<Bytes> = wal.enumerate_records(key(13)).expect("enumerate").collect();
    assert_eq!(all, vec![content(13), Bytes::from("second")]);
}

/// Write one record to each of `LIMIT_KEYS` keys, with a cache big enough
/// that nothing is evicted (which keeps this fast).
fn child_prepare(dir: &Path) {
    let wal = Wal::builder(dir)
        .max_open_files(2 * LIMIT_KEYS)
        .open()
        .expect("open");
    for k in 0..LIMIT_KEYS {
        wal.append_entry(key(k), None, content(k), false)
            .expect("append");
    }
    wal.close().expect("close");
}

fn child_run(dir: &Path, mode: &str) {
    if mode != "prepare" {
        assert_in_force();
    }
    match mode {
        "prepare" => child_prepare(dir),
        "append" => child_append(dir),
        "reopen" => child_reopen(dir),
        other => panic!("unknown child mode {other:?}"),
    }
    let mut out = std::io::stdout().lock();
    writeln!(out).expect("stdout");
    writeln!(out, "OK").expect("stdout");
    out.flush().expect("flush");
}

/// Run only as a child of the real-limit tests; without their environment
/// variables it does nothing.
#[test]
#[ignore = "helper process for the real descriptor limit tests"]
fn child_many_keys() {
    let (Some(dir), Some(mode)) = (
        std::env::var_os(CHILD_DIR_ENV),
        std::env::var(CHILD_MODE_ENV).ok(),
    ) else {
        return;
    };
    child_run(Path::new(&dir), &mode);
}
