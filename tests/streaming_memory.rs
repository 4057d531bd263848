//! `enumerate_records` and `records` stream: iterating a key far larger than
//! the memory budget keeps the process's extra memory flat (under 16 MiB
//! while the key holds at least 100 MiB), and every record still comes back,
//! in order, with the right bytes.
//!
//! The crate forbids `unsafe_code` for every target, tests included, so a
//! counting `#[global_allocator]` is not possible. Instead the read phase
//! runs in a fresh child process (this test binary re-executed), which resets
//! its peak resident set (`/proc/self/clear_refs`) after opening the WAL and
//! compares `VmHWM` after iterating with `VmRSS` before. Linux only.

#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use nano_wal::Wal;

const CHILD_DIR_ENV: &str = "NANO_WAL_TEST_STREAM_CHILD_DIR";
const CHILD_TEST: &str = "child_iterates_key";
const KEY: &str = "big";
const RECORD_BYTES: usize = 4096;
/// 100,000 × 4 KiB ≈ 400 MiB.
const RECORDS: u64 = 100_000;
const MIB: u64 = 1 << 20;
/// Budget for memory used while iterating, beyond what the open handle used.
const BUDGET_BYTES: u64 = 16 * MIB;

/// Record `i`: its index, little-endian, repeated to 4 KiB. Cheap to build
/// and compare, and no two records are equal.
fn content(i: u64) -> Bytes {
    Bytes::from(i.to_le_bytes().repeat(RECORD_BYTES / 8))
}

/// `(resident now, peak resident)` in bytes, from /proc/self/status.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /proc/self/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn iterating_a_huge_key_keeps_memory_flat() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    {
        let wal = Wal::builder(&dir)
            // Several segments, so iteration also crosses segment boundaries.
            .max_segment_bytes(64 * MIB)
            .open()
            .expect("open");
        let mut i = 0;
        while i < RECORDS {
            let end = (i + 512).min(RECORDS);
            wal.append_batch((i..end).map(|j| (KEY, None, content(j))), false)
                .expect("append");
            i = end;
        }
        wal.close().expect("close");
    }
    let on_disk: u64 = std::fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert!(
        on_disk >= 100 * MIB,
        "the key should hold at least 100 MiB, holds {on_disk} bytes"
    );

    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
        .env(CHILD_DIR_ENV, &dir)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let result = stdout
        .lines()
        .find_map(|l| l.split_once("STREAM-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("child printed no result:\n{stdout}"));
    println!("child: {result}");
    let value = |name: &str| -> u64 {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {result:?}"))
    };
    assert_eq!(value("contents"), RECORDS, "enumerate_records count");
    assert_eq!(value("records"), RECORDS, "records() count");
    assert_eq!(value("content_bytes"), RECORDS * RECORD_BYTES as u64);
    let extra = value("peak_extra");
    assert!(
        extra < BUDGET_BYTES,
        "iterating {} MiB took {} KiB of extra memory (budget {} KiB)",
        RECORDS * RECORD_BYTES as u64 / MIB,
        extra / 1024,
        BUDGET_BYTES / 1024
    );
}

fn child_run(dir: &Path) {
    let wal = Wal::builder(dir).open().expect("reopen");
    // Measure only the read phase: reset the peak to the current resident set.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (baseline, hwm_at_start) = rss();
    if reset {
        assert!(
            hwm_at_start <= baseline + MIB,
            "clear_refs did not reset VmHWM ({hwm_at_start} vs {baseline})"
        );
    }
    // Without the reset VmHWM may include the open; comparing it with the
    // baseline then overstates the read phase, never understates it.

    // enumerate_records: first checks every record, then streams contents.
    let mut contents = 0u64;
    let mut content_bytes = 0u64;
    for (i, c) in wal
        .enumerate_records(KEY)
        .expect("enumerate_records")
        .enumerate()
    {
        let i = i as u64;
        assert!(c == content(i), "content of record {i} differs");
        contents += 1;
        content_bytes += c.len() as u64;
    }
    // records(): same stream with references and in-line errors.
    let mut records = 0u64;
    let mut last = None;
    for (i, r) in wal.records(KEY).expect("records").enumerate() {
        let r = r.expect("record reads back");
        let i = i as u64;
        assert!(r.content == content(i), "record {i} differs");
        assert_eq!(r.header, None);
        let here = (r.entry_ref.sequence_number, r.entry_ref.offset);
        assert!(last < Some(here), "records() went backwards at {i}");
        last = Some(here);
        records += 1;
    }
    let (now, peak) = rss();
    let peak_extra = peak.saturating_sub(baseline);
    let mut out = std::io::stdout().lock();
    writeln!(out).expect("stdout");
    writeln!(
        out,
        "STREAM-RESULT contents={contents} records={records} content_bytes={content_bytes} \
         peak_extra={peak_extra} baseline={baseline} after={now} peak={peak} reset={reset}"
    )
    .expect("stdout");
    out.flush().expect("flush");
}

/// Run only as a child of `iterating_a_huge_key_keeps_memory_flat`; without
/// its environment variable it does nothing.
#[test]
#[ignore = "helper process for iterating_a_huge_key_keeps_memory_flat"]
fn child_iterates_key() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    child_run(Path::new(&dir));
}
