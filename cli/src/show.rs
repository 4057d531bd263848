//! How records, times and findings are printed.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use indicatif::HumanBytes;
use nano_wal::inspect::{JournalFileState, JournalState, ManifestState, SegmentInfo};
use nano_wal::{Record, TornTail};
use serde_json::{Value, json};

/// How `dump` and `get` print headers and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// Text; invalid UTF-8 is replaced, and tabs, newlines, backslashes and
    /// other control characters are escaped, so a record is one line.
    Utf8,
    /// Lowercase hexadecimal.
    Hex,
    /// One JSON object per line, lossless: `content` is the text (null if
    /// not UTF-8) and `content_hex` the bytes; `header`/`header_hex` likewise
    /// (null if the record has no header).
    Json,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2025-11-24T18:20:01.123Z`
pub fn ms_to_rfc3339(ms: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .map_or_else(
            || format!("{ms} ms"),
            |t| humantime::format_rfc3339_millis(t).to_string(),
        )
}

/// `2025-11-24T18:20:01Z` (rounded down to the second)
pub fn ms_to_rfc3339_secs(ms: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .map_or_else(
            || format!("{ms} ms"),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        )
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Text on one line: control characters and backslashes escaped.
fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

fn encode(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Hex => hex(bytes),
        Encoding::Utf8 | Encoding::Json => one_line(bytes),
    }
}

/// Print one record on one line.
pub fn record(
    out: &mut dyn Write,
    record: &Record,
    with_header: bool,
    encoding: Encoding,
) -> io::Result<()> {
    if encoding == Encoding::Json {
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
        let mut value = json!({
            "ref": record.entry_ref.to_string(),
            "timestamp_unix_ms": record.timestamp_unix_ms,
        });
        if with_header {
            let h = record.header.as_deref();
            value["header"] = h.and_then(text).map_or(Value::Null, Value::String);
            value["header_hex"] = h.map_or(Value::Null, |h| Value::String(hex(h)));
        }
        value["content"] = text(&record.content).map_or(Value::Null, Value::String);
        value["content_hex"] = Value::String(hex(&record.content));
        return writeln!(out, "{value}");
    }
    let time = record
        .timestamp_unix_ms
        .map_or_else(|| "-".to_owned(), ms_to_rfc3339);
    write!(out, "{}\t{time}\t", record.entry_ref)?;
    if with_header {
        let header = record
            .header
            .as_deref()
            .map_or_else(|| "-".to_owned(), |h| encode(h, encoding));
        write!(out, "{header}\t")?;
    }
    writeln!(out, "{}", encode(&record.content, encoding))
}

/// A segment in `stats --json`.
pub fn segment_json(s: &SegmentInfo) -> Value {
    json!({
        "path": s.path.display().to_string(),
        "sequence": s.sequence,
        "format_version": s.format_version,
        "size_bytes": s.size_bytes,
        "rotate_at_unix_ms": s.rotate_at_unix_ms,
    })
}

/// A torn tail in `stats --json`.
pub fn torn_json(t: &TornTail) -> Value {
    json!({
        "path": t.path.display().to_string(),
        "file_position": t.file_position,
        "bytes_dropped": t.bytes_dropped,
        "reason": t.reason,
    })
}

/// A torn tail, in words.
pub fn torn_line(t: &TornTail) -> String {
    format!(
        "torn tail (fine: a write cut short by a crash) in {} at file position {}: \
         {} byte(s) after the last whole record ({}); a writer's open cuts them off",
        t.path.display(),
        t.file_position,
        t.bytes_dropped,
        t.reason
    )
}

/// An expired leftover of an interrupted compaction, in words.
pub fn leftover_line(path: &std::path::Path) -> String {
    format!(
        "expired leftover (fine: a compaction was interrupted by a crash) {}; \
         a writer's open removes it",
        path.display()
    )
}

/// The journal's state in `stats --json`.
pub fn journal_json(j: &JournalState) -> Value {
    let manifest = j.manifest.as_ref().map(|m| {
        json!({
            "path": m.path.display().to_string(),
            "generation": m.generation,
            "clean": m.clean,
            "journal_start": m.journal_start,
            "next_frame": m.next_frame,
            "keys": m.keys,
            "segments": m.segments,
        })
    });
    let files: Vec<Value> = j
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path.display().to_string(),
                "sequence": f.sequence,
                "bytes": f.bytes,
                "pending": f.pending,
                "first_frame": f.first_frame,
                "header_problem": f.header_problem,
                "frames": f.frames,
                "frame_bytes": f.frame_bytes,
                "damage": f.damage,
                "valid_frame_after": f.valid_frame_after,
            })
        })
        .collect();
    json!({
        "manifest": manifest,
        "unverified_manifests": j.unverified_manifests.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "files": files,
        "pending_files": j.pending_files().count(),
        "pending_frames": j.pending_frames(),
        "pending_bytes": j.pending_bytes(),
    })
}

/// The journal's state, in words: the section `stats` ends with.
pub fn journal_lines(out: &mut dyn Write, j: &JournalState) -> io::Result<()> {
    writeln!(out, "journal")?;
    match &j.manifest {
        Some(m) => writeln!(out, "  {}", manifest_line(m))?,
        None => writeln!(out, "  no manifest")?,
    }
    for p in &j.unverified_manifests {
        writeln!(
            out,
            "  manifest {} does not verify (recovery ignores it)",
            p.display()
        )?;
    }
    if j.files.is_empty() {
        writeln!(out, "  no journal file")?;
    }
    for f in &j.files {
        journal_file_lines(out, f)?;
    }
    writeln!(
        out,
        "  to replay after a crash now: {} frame(s), {} in {} file(s)",
        j.pending_frames(),
        HumanBytes(j.pending_bytes()),
        j.pending_files().count()
    )
}

fn manifest_line(m: &ManifestState) -> String {
    format!(
        "manifest {} ({}): replay starts at journal file {} (frame {}); {} key(s), {} segment(s); {}",
        m.generation,
        if m.clean { "clean" } else { "not clean" },
        m.journal_start,
        m.next_frame,
        m.keys,
        m.segments,
        m.path.display()
    )
}

fn journal_file_lines(out: &mut dyn Write, f: &JournalFileState) -> io::Result<()> {
    writeln!(
        out,
        "  {}: {} frame(s), {} of {}, {}",
        f.path.display(),
        f.frames,
        HumanBytes(f.frame_bytes),
        HumanBytes(f.bytes),
        if f.pending {
            "pending"
        } else {
            "leftover (before the manifest's start)"
        }
    )?;
    if let Some(why) = &f.header_problem {
        writeln!(out, "    header does not verify: {why}")?;
    }
    if let Some(at) = f.damage {
        let after = f
            .valid_frame_after
            .map_or_else(String::new, |v| format!("; a frame verifies at {v}"));
        writeln!(
            out,
            "    damage at file position {at}: the valid frames end there and non-zero bytes follow{after}"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_what_would_break_a_line() {
        assert_eq!(one_line(b"a\tb\nc\\d"), "a\\tb\\nc\\\\d");
        assert_eq!(one_line(b"caf\xc3\xa9"), "café");
        assert_eq!(one_line(b"\xff"), "\u{fffd}");
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(ms_to_rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            ms_to_rfc3339_secs(1_700_000_000_999),
            "2023-11-14T22:13:20Z"
        );
    }
}
