//! `stats`, `keys`, `dump` and `get` on real directories, run as the built
//! binary: what they print matches what was appended, they work while a
//! writer holds the directory, and every error is one line with a non-zero
//! exit code.

mod common;
use common::{nano_wal, ok};

use std::error::Error;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal};
use serde_json::Value;

type TestResult = Result<(), Box<dyn Error>>;

/// 2023-11-14T22:13:20Z
const T0_MS: u64 = 1_700_000_000_000;
/// `WalOptions::default()`: one week, ten segments per week.
const RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
const SEGMENT_PERIOD_MS: u64 = RETENTION_MS / 10;

/// Run and expect exactly one `error: ` line on stderr and exit code 1.
fn fails<I, S>(args: I) -> Result<String, Box<dyn Error>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = nano_wal(args)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
    Ok(stderr)
}

struct Written {
    orders: Vec<(EntryRef, Option<&'static str>, &'static str)>,
    user: Vec<EntryRef>,
}

/// `orders`: three records over two segments (the clock passes the rotation
/// period before the third), one with a header; `user:1`: two records.
fn write(dir: &Path) -> Result<Written, Box<dyn Error>> {
    let clock = Arc::new(ManualClock::new(T0_MS));
    let wal = Wal::builder(dir).clock(clock.clone()).open()?;
    let mut orders = Vec::new();
    for (header, content) in [
        (None, "order #1"),
        (Some("content-type=json"), "{\"id\":2}"),
    ] {
        let r = wal.append_entry(
            "orders",
            header.map(Bytes::from),
            Bytes::from(content),
            true,
        )?;
        orders.push((r, header, content));
        clock.advance_ms(1_000);
    }
    let user = vec![
        wal.append_entry("user:1", None, Bytes::from("created"), true)?,
        wal.append_entry("user:1", None, Bytes::from("line one\nline two\ttab"), true)?,
    ];
    clock.advance_ms(SEGMENT_PERIOD_MS);
    let r = wal.append_entry("orders", None, Bytes::from("order #3"), true)?;
    orders.push((r, None, "order #3"));
    wal.close()?;
    Ok(Written { orders, user })
}

fn file_bytes(dir: &Path, prefix: &str) -> Result<u64, Box<dyn Error>> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[test]
fn stats_json_counts_records_bytes_times_and_expiry() -> TestResult {
    let t = tempfile::tempdir()?;
    let w = write(t.path())?;
    assert_eq!(w.orders[2].0.sequence_number, 2, "setup: orders rotated");
    let v: Value = serde_json::from_str(&ok([
        OsStr::new("stats"),
        t.path().as_os_str(),
        OsStr::new("--json"),
    ])?)?;

    let keys = v["keys"].as_array().ok_or("keys")?;
    assert_eq!(keys.len(), 2);
    let orders = &keys[0];
    assert_eq!(orders["key"], "orders");
    assert_eq!(orders["key_hash"], nano_wal::key_hash(b"orders"));
    assert_eq!(orders["segments"], 2);
    assert_eq!(orders["records"], 3);
    assert_eq!(orders["content_bytes"], 8 + 8 + 8);
    assert_eq!(orders["size_bytes"], file_bytes(t.path(), "orders-")?);
    assert_eq!(orders["oldest_record_unix_ms"], T0_MS);
    assert_eq!(
        orders["newest_record_unix_ms"],
        T0_MS + 2_000 + SEGMENT_PERIOD_MS
    );
    // The first segment rotates one period after it was created, and
    // expires a retention after that.
    assert_eq!(
        orders["next_expiry_unix_ms"],
        T0_MS + SEGMENT_PERIOD_MS + RETENTION_MS
    );
    let files = orders["segment_files"].as_array().ok_or("segment_files")?;
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["sequence"], 1);
    assert_eq!(files[0]["format_version"], 3);
    assert_eq!(files[0]["rotate_at_unix_ms"], T0_MS + SEGMENT_PERIOD_MS);

    let user = &keys[1];
    assert_eq!(user["key"], "user:1");
    assert_eq!(user["segments"], 1);
    assert_eq!(user["records"], 2);
    assert_eq!(user["oldest_record_unix_ms"], T0_MS + 2_000);
    assert_eq!(user["newest_record_unix_ms"], T0_MS + 2_000);

    assert_eq!(v["totals"]["keys"], 2);
    assert_eq!(v["totals"]["segments"], 3);
    assert_eq!(v["totals"]["records"], 5);
    // The segment files: the directory also holds the manifest and the lock.
    let segment_bytes = file_bytes(t.path(), "orders-")? + file_bytes(t.path(), "user1-")?;
    assert_eq!(v["totals"]["size_bytes"], segment_bytes);
    assert_eq!(v["retention_secs"], RETENTION_MS / 1000);
    assert_eq!(v["torn_tails"].as_array().map(Vec::len), Some(0));

    // A shorter retention moves the expiry.
    let v: Value = serde_json::from_str(&ok([
        OsStr::new("stats"),
        t.path().as_os_str(),
        OsStr::new("--json"),
        OsStr::new("--retention-secs"),
        OsStr::new("60"),
    ])?)?;
    assert_eq!(
        v["keys"][0]["next_expiry_unix_ms"],
        T0_MS + SEGMENT_PERIOD_MS + 60_000
    );
    Ok(())
}

/// Cell borders of the table.
const CELL: [char; 2] = ['│', '┆'];

#[test]
fn stats_table_shows_every_key_and_the_totals() -> TestResult {
    let t = tempfile::tempdir()?;
    write(t.path())?;
    let table = ok([OsStr::new("stats"), t.path().as_os_str()])?;
    let row = |key: &str| {
        table
            .lines()
            .find(|l| l.split(CELL).nth(1).is_some_and(|c| c.trim() == key))
            .map(|l| l.split(CELL).map(str::trim).collect::<Vec<_>>())
    };
    let header = table.lines().nth(1).ok_or("header row")?;
    for column in [
        "key",
        "segments",
        "records",
        "bytes",
        "oldest record",
        "next expiry",
    ] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let orders = row("orders").ok_or(format!("orders row in\n{table}"))?;
    assert_eq!(&orders[2..4], ["2", "3"], "segments and records");
    assert_eq!(orders[5], "2023-11-14T22:13:20Z", "oldest record");
    assert!(
        orders[7].ends_with("(due)"),
        "the first segment has expired"
    );
    let user = row("user:1").ok_or("user row")?;
    assert_eq!(&user[2..4], ["1", "2"]);
    let total = row("total: 2 keys").ok_or("total row")?;
    assert_eq!(&total[2..4], ["3", "5"]);
    assert!(table.contains("0 torn tail(s)"), "{table}");
    Ok(())
}

/// Size of a journal file's header (FORMAT.md §11).
const JOURNAL_HEADER_BYTES: u64 = 48;

/// `stats` ends with the journal: beside a live writer, the frames a crash
/// now would replay; after `close()`, a clean manifest and nothing pending;
/// damage after the frames, where the valid frames end.
#[test]
fn stats_shows_the_journal_a_crash_now_would_replay() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().as_os_str();
    let stats_json = || -> Result<Value, Box<dyn Error>> {
        let out = ok([OsStr::new("stats"), dir, OsStr::new("--json")])?;
        let mut v: Value = serde_json::from_str(&out)?;
        Ok(v["journal"].take())
    };
    let wal = Wal::builder(t.path()).open()?;
    for i in 0..3 {
        wal.append_entry("live", None, Bytes::from(format!("r{i}")), i == 2)?;
    }
    let frame_bytes = JOURNAL_HEADER_BYTES + wal.metrics().journal_bytes;

    let j = stats_json()?;
    assert_eq!(j["manifest"]["generation"], 1);
    assert_eq!(j["manifest"]["clean"], true, "the open's checkpoint");
    let files = j["files"].as_array().ok_or("files")?;
    assert_eq!(files.len(), 1, "{j}");
    assert_eq!(files[0]["sequence"], j["manifest"]["journal_start"]);
    assert_eq!(files[0]["first_frame"], j["manifest"]["next_frame"]);
    assert_eq!(files[0]["frames"], 3);
    assert_eq!(files[0]["frame_bytes"], frame_bytes);
    assert_eq!(files[0]["pending"], true);
    assert_eq!(files[0]["damage"], Value::Null);
    assert_eq!(j["pending_files"], 1);
    assert_eq!(j["pending_frames"], 3);
    assert_eq!(j["pending_bytes"], frame_bytes);
    let journal = files[0]["path"].as_str().ok_or("path")?.to_owned();

    let table = ok([OsStr::new("stats"), dir])?;
    let (_, section) = table
        .split_once("\njournal\n")
        .ok_or(format!("a journal section after the table:\n{table}"))?;
    assert!(section.contains("manifest 1 (clean)"), "{section}");
    assert!(
        section.contains(&format!("{journal}: 3 frame(s), {frame_bytes} B of "))
            && section.contains(" MiB, pending\n"),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "to replay after a crash now: 3 frame(s), {frame_bytes} B in 1 file(s)"
        )),
        "{section}"
    );

    // Garbage after the frames of a dropped writer's journal.
    drop(wal);
    let mut bytes = std::fs::read(&journal)?;
    let at = usize::try_from(frame_bytes)? + 10;
    bytes[at..at + 4].copy_from_slice(b"junk");
    std::fs::write(&journal, &bytes)?;
    let j = stats_json()?;
    assert_eq!(j["files"][0]["damage"], frame_bytes);
    assert_eq!(j["files"][0]["frames"], 3);
    let table = ok([OsStr::new("stats"), dir])?;
    assert!(
        table.contains(&format!(
            "damage at file position {frame_bytes}: the valid frames end there"
        )),
        "{table}"
    );

    // Opening replays the three frames (the damage is a torn tail); close
    // leaves a clean manifest and no journal.
    let wal = Wal::builder(t.path()).open()?;
    assert_eq!(wal.recovery_report().replayed_frames, 3);
    wal.close()?;
    let j = stats_json()?;
    assert_eq!(j["manifest"]["clean"], true);
    assert_eq!(
        j["manifest"]["generation"], 2,
        "the first open's checkpoint and close's (replay writes none)"
    );
    assert_eq!(j["manifest"]["keys"], 1);
    assert_eq!(j["manifest"]["segments"], 1);
    assert_eq!(j["files"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        (&j["pending_frames"], &j["pending_bytes"]),
        (&Value::from(0), &Value::from(0))
    );
    let table = ok([OsStr::new("stats"), dir])?;
    assert!(table.contains("  no journal file\n"), "{table}");
    assert!(
        table.ends_with("to replay after a crash now: 0 frame(s), 0 B in 0 file(s)\n"),
        "{table}"
    );
    Ok(())
}

#[test]
fn keys_lists_the_keys_sorted() -> TestResult {
    let t = tempfile::tempdir()?;
    write(t.path())?;
    assert_eq!(
        ok([OsStr::new("keys"), t.path().as_os_str()])?,
        "orders\nuser:1\n"
    );
    let empty = tempfile::tempdir()?;
    assert_eq!(ok([OsStr::new("keys"), empty.path().as_os_str()])?, "");
    Ok(())
}

#[test]
fn dump_prints_records_in_order_with_references() -> TestResult {
    let t = tempfile::tempdir()?;
    let w = write(t.path())?;
    let dir = t.path().as_os_str();
    let dump = |extra: &[&str]| {
        let mut args = vec![OsStr::new("dump"), dir];
        args.extend(extra.iter().map(OsStr::new));
        ok(args)
    };

    let out = dump(&["orders"])?;
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3);
    for (line, (r, _, content)) in lines.iter().zip(&w.orders) {
        assert_eq!(line[0], r.to_string());
        assert_eq!(line[2], *content);
    }
    assert_eq!(lines[0][1], "2023-11-14T22:13:20.000Z");

    // Headers: "-" for none.
    let out = dump(&["orders", "--headers"])?;
    let headers: Vec<&str> = out.lines().filter_map(|l| l.split('\t').nth(2)).collect();
    assert_eq!(headers, ["-", "content-type=json", "-"]);

    // --from is inclusive and crosses segments; --limit stops early.
    let from = w.orders[1].0.to_string();
    let out = dump(&["orders", "--from", &from])?;
    let contents: Vec<&str> = out.lines().filter_map(|l| l.split('\t').nth(2)).collect();
    assert_eq!(contents, ["{\"id\":2}", "order #3"]);
    let out = dump(&["orders", "--from", &from, "--limit", "1"])?;
    assert_eq!(out.lines().count(), 1);

    // A record is one line whatever its bytes.
    let out = dump(&["user:1"])?;
    let second = out.lines().nth(1).ok_or("two lines")?;
    assert!(second.starts_with(&w.user[1].to_string()), "{second}");
    assert!(second.ends_with("line one\\nline two\\ttab"), "{second}");

    let out = dump(&["user:1", "--format", "hex", "--limit", "1"])?;
    assert!(out.ends_with("\t63726561746564\n"), "{out}"); // "created"

    let out = dump(&["orders", "--format", "json", "--headers"])?;
    let values: Vec<Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(values.len(), 3);
    assert_eq!(values[1]["ref"], w.orders[1].0.to_string());
    assert_eq!(values[1]["header"], "content-type=json");
    assert_eq!(values[1]["content"], "{\"id\":2}");
    assert_eq!(values[1]["content_hex"], "7b226964223a327d");
    assert_eq!(values[0]["header"], Value::Null);
    assert_eq!(values[0]["header_hex"], Value::Null);
    assert_eq!(values[0]["timestamp_unix_ms"], T0_MS);
    Ok(())
}

#[test]
fn get_prints_one_record_with_its_header() -> TestResult {
    let t = tempfile::tempdir()?;
    let w = write(t.path())?;
    let r = w.orders[1].0.to_string();
    let out = ok([OsStr::new("get"), t.path().as_os_str(), OsStr::new(&r)])?;
    assert_eq!(
        out,
        format!("{r}\t2023-11-14T22:13:21.000Z\tcontent-type=json\t{{\"id\":2}}\n")
    );
    let out = ok([
        OsStr::new("get"),
        t.path().as_os_str(),
        OsStr::new(&w.orders[2].0.to_string()),
        OsStr::new("--format"),
        OsStr::new("json"),
    ])?;
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["content"], "order #3");
    assert_eq!(v["header"], Value::Null);
    Ok(())
}

#[test]
fn commands_read_a_directory_while_a_writer_holds_it() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().as_os_str();
    let wal = Wal::builder(t.path()).open()?;
    let first = wal.append_entry("live", None, Bytes::from("one"), false)?;
    wal.append_entry("live", Some(Bytes::from("h")), Bytes::from("two"), false)?;

    assert_eq!(ok([OsStr::new("keys"), dir])?, "live\n");
    let dump = ok([OsStr::new("dump"), dir, OsStr::new("live")])?;
    assert_eq!(dump.lines().count(), 2);
    let get = ok([OsStr::new("get"), dir, OsStr::new(&first.to_string())])?;
    assert!(get.ends_with("\t-\tone\n"), "{get}");
    let v: Value = serde_json::from_str(&ok([OsStr::new("stats"), dir, OsStr::new("--json")])?)?;
    assert_eq!(v["totals"]["records"], 2);
    assert!(ok([OsStr::new("verify"), dir])?.starts_with("ok: 1 keys, 1 segments, 2 records"));
    ok([OsStr::new("compact"), dir, OsStr::new("--dry-run")])?;

    // Records appended after a command ran are seen by the next one.
    wal.append_entry("live", None, Bytes::from("three"), false)?;
    let dump = ok([OsStr::new("dump"), dir, OsStr::new("live")])?;
    assert_eq!(dump.lines().count(), 3);

    // Compacting for real needs the writer's lock.
    let e = fails([OsStr::new("compact"), dir])?;
    assert!(e.contains("locked by another writer"), "{e}");
    // Nothing was changed by any of them.
    assert_eq!(wal.records("live")?.count(), 3);
    wal.close()?;
    Ok(())
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() -> TestResult {
    let t = tempfile::tempdir()?;
    let w = write(t.path())?;
    let dir = t.path().as_os_str();
    let missing = t.path().join("no-such-dir");
    let missing = missing.as_os_str();
    let r = w.orders[0].0.to_string();

    for args in [
        vec![OsStr::new("stats"), missing],
        vec![OsStr::new("keys"), missing],
        vec![OsStr::new("dump"), missing, OsStr::new("orders")],
        vec![OsStr::new("get"), missing, OsStr::new(&r)],
        vec![OsStr::new("verify"), missing],
        vec![OsStr::new("compact"), missing, OsStr::new("--dry-run")],
        vec![OsStr::new("compact"), missing],
    ] {
        let e = fails(&args)?;
        assert!(e.contains("no-such-dir"), "names the directory: {e}");
        assert!(e.contains("No such file or directory"), "{e}");
    }
    assert!(
        !t.path().join("no-such-dir").exists(),
        "compact does not create a missing directory"
    );

    for bad in ["nonsense", "1:2", "1:2:3:4", "-1:1:0", ""] {
        let e = fails([OsStr::new("get"), dir, OsStr::new(bad)])?;
        assert!(e.contains("invalid entry reference"), "{e}");
        let e = fails([
            OsStr::new("dump"),
            dir,
            OsStr::new("orders"),
            OsStr::new("--from"),
            OsStr::new(bad),
        ])?;
        assert!(e.contains("invalid entry reference"), "{e}");
    }

    let e = fails([OsStr::new("get"), dir, OsStr::new("12345:1:0")])?;
    assert!(e.contains("Entry not found: 12345:1:0: no such key"), "{e}");
    let past_end = EntryRef {
        offset: 1 << 20,
        ..w.orders[0].0
    };
    let e = fails([OsStr::new("get"), dir, OsStr::new(&past_end.to_string())])?;
    assert!(e.contains("offset is past the end"), "{e}");
    let e = fails([OsStr::new("dump"), dir, OsStr::new("nope")])?;
    assert!(e.contains("no key \"nope\""), "{e}");
    // A reference of another key.
    let e = fails([
        OsStr::new("dump"),
        dir,
        OsStr::new("orders"),
        OsStr::new("--from"),
        OsStr::new(&w.user[0].to_string()),
    ])?;
    assert!(e.contains("is not a record of key \"orders\""), "{e}");
    let e = fails([
        OsStr::new("stats"),
        dir,
        OsStr::new("--retention-secs"),
        OsStr::new("0"),
    ])?;
    assert!(e.contains("entry_retention must be greater than 0"), "{e}");
    Ok(())
}
