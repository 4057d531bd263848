//! `nano-wal compact`: the dry run lists exactly what compaction then
//! removes: a key's oldest expired segments, never a newest segment that
//! has not expired, and a key whose segments all expired gets an empty
//! successor.

mod common;
use common::ok;

use std::error::Error;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nano_wal::{ManualClock, Wal, key_hash};

type TestResult = Result<(), Box<dyn Error>>;

/// `WalOptions::default()`'s rotation period: a week over ten segments.
const SEGMENT_PERIOD_MS: u64 = 7 * 24 * 3600 * 1000 / 10;
const DAY_MS: u64 = 24 * 3600 * 1000;

fn segment(dir: &Path, key: &str, seq: u64) -> PathBuf {
    dir.join(format!("{key}-{}-{seq:04}.log", key_hash(key.as_bytes())))
}

/// `old`: three segments written 30 days ago. `mixed`: two segments then,
/// one now. `fresh`: one segment now.
fn write(dir: &Path) -> TestResult {
    let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let clock = Arc::new(ManualClock::new(now - 30 * DAY_MS));
    let wal = Wal::builder(dir).clock(clock.clone()).open()?;
    let put = |key: &str| wal.append_entry(key, None, Bytes::from(format!("{key} record")), true);
    put("old")?;
    put("mixed")?;
    clock.advance_ms(SEGMENT_PERIOD_MS);
    put("old")?;
    put("mixed")?;
    clock.advance_ms(SEGMENT_PERIOD_MS);
    put("old")?;
    clock.set_ms(now);
    put("mixed")?;
    put("fresh")?;
    wal.close()?;
    for (key, segments) in [("old", 3), ("mixed", 3), ("fresh", 1)] {
        assert!(segment(dir, key, segments).exists(), "setup: {key}");
        assert!(!segment(dir, key, segments + 1).exists(), "setup: {key}");
    }
    Ok(())
}

fn expected_removals(dir: &Path) -> Vec<PathBuf> {
    vec![
        segment(dir, "mixed", 1),
        segment(dir, "mixed", 2),
        segment(dir, "old", 1),
        segment(dir, "old", 2),
        segment(dir, "old", 3),
    ]
}

/// The paths named on lines starting with `verb`.
fn named(out: &str, verb: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| l.strip_prefix(verb))
        .filter_map(|l| l.split(" (key ").next())
        .map(PathBuf::from)
        .collect()
}

#[test]
fn dry_run_lists_expired_segments_and_changes_nothing() -> TestResult {
    let t = tempfile::tempdir()?;
    write(t.path())?;
    let dir = t.path().as_os_str();
    let out = ok([OsStr::new("compact"), dir, OsStr::new("--dry-run")])?;
    assert_eq!(
        named(&out, "would remove "),
        expected_removals(t.path()),
        "{out}"
    );
    assert!(out.contains("(key mixed, segment 1,"), "{out}");
    assert!(
        out.contains("would start an empty segment for key old"),
        "{out}"
    );
    assert!(!out.contains("key fresh"), "{out}");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("dry run: would remove 5 segment(s)")),
        "{out}"
    );
    for path in expected_removals(t.path()) {
        assert!(path.exists(), "{} still there", path.display());
    }
    assert!(!segment(t.path(), "old", 4).exists());

    // With a three-year retention nothing has expired.
    let out = ok([
        OsStr::new("compact"),
        dir,
        OsStr::new("--dry-run"),
        OsStr::new("--retention-secs"),
        OsStr::new("100000000"),
    ])?;
    assert_eq!(
        out,
        "dry run: would remove 0 segment(s), 0 B (retention 100000000 s); nothing has expired\n"
    );
    Ok(())
}

#[test]
fn compact_removes_what_the_dry_run_listed() -> TestResult {
    let t = tempfile::tempdir()?;
    write(t.path())?;
    let dir = t.path().as_os_str();
    let planned = named(
        &ok([OsStr::new("compact"), dir, OsStr::new("--dry-run")])?,
        "would remove ",
    );

    let out = ok([OsStr::new("compact"), dir])?;
    assert_eq!(named(&out, "removed "), planned, "{out}");
    assert!(
        out.contains("started an empty segment for key old"),
        "{out}"
    );
    assert!(out.contains("compacted: removed 5 segment(s)"), "{out}");
    for path in &planned {
        assert!(!path.exists(), "{} removed", path.display());
    }
    assert!(segment(t.path(), "mixed", 3).exists(), "newest kept");
    assert!(segment(t.path(), "fresh", 1).exists());
    assert!(segment(t.path(), "old", 4).exists(), "empty successor");

    // `old` has no records left; `mixed` keeps its recent one.
    assert_eq!(ok([OsStr::new("keys"), dir])?, "fresh\nmixed\n");
    let dump = ok([OsStr::new("dump"), dir, OsStr::new("mixed")])?;
    assert_eq!(dump.lines().count(), 1);
    assert!(
        dump.starts_with(&format!("{}:3:0\t", key_hash(b"mixed"))),
        "{dump}"
    );

    // Nothing is left to remove.
    let out = ok([OsStr::new("compact"), dir])?;
    assert!(out.contains("removed 0 segment(s)"), "{out}");
    Ok(())
}
