//! `nano-wal`: look into, check, compact and load-test nano-wal directories.
//!
//! The logic lives in [`nano_wal::inspect`]; this binary parses arguments and
//! prints. Every command but `compact` (without `--dry-run`), `bench` and
//! `export --cursor` opens the directory read-only, so it works next to a running writer.

mod bench;
mod export;
mod show;

use std::error::Error;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use comfy_table::{CellAlignment, Table, presets};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use nano_wal::inspect::{self, CompactionPlan, Inspector, JournalState, Verifier, WalStats};
use nano_wal::{EntryRef, Wal, WalBuilder, WalOptions};
use serde_json::json;

use crate::show::{Encoding, ms_to_rfc3339_secs, now_unix_ms};

/// Exit code when `verify` finds corruption (other failures exit with 1).
const EXIT_CORRUPTION: u8 = 3;

pub(crate) type CliResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Inspect, verify, compact and load-test nano-wal directories.
///
/// Every command except `compact` without --dry-run, `bench` and `export
/// --cursor` opens the directory read-only: it never takes the writer lock and changes nothing,
/// so it can run next to the process that writes the directory.
///
/// Give every command the application's retention settings if they are not
/// the defaults: `compact` removes by them, `stats` shows expiry by them, and
/// opening uses them to tell the leftovers of an interrupted compaction from
/// a missing segment.
#[derive(Debug, Parser)]
#[command(name = "nano-wal", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    retention: RetentionArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Keys, segments, records, bytes, record times and expiry per key.
    Stats {
        /// The WAL directory.
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the keys that hold records.
    Keys {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// Print a key's records in order, one per line.
    ///
    /// Each line is the record's reference (key_hash:sequence:offset), its
    /// timestamp, with --headers its header ("-" if it has none), and its
    /// content, separated by tabs. With --format json each line is a JSON
    /// object.
    Dump {
        /// The WAL directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// Start at this record (a reference printed by dump or returned by
        /// append), inclusive.
        #[arg(long, value_name = "REF", allow_hyphen_values = true)]
        from: Option<String>,
        /// Print at most this many records.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print each record's header.
        #[arg(long)]
        headers: bool,
        /// How to print headers and contents.
        #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
        format: Encoding,
    },
    /// Print a key's records as they are appended, like `tail -f`, in
    /// dump's formats.
    ///
    /// Without --from, only records appended from now on are printed (with
    /// --from-start, every record first). The directory is opened read-only
    /// and looked at again every --poll-ms, so it follows a writer in
    /// another process. Runs until interrupted, or until --limit records.
    Tail {
        /// The WAL directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// Start at this record (a reference printed by dump or returned by
        /// append), inclusive.
        #[arg(
            long,
            value_name = "REF",
            allow_hyphen_values = true,
            conflicts_with = "from_start"
        )]
        from: Option<String>,
        /// Start at the key's first record.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many records.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// How often to look for new records, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 100)]
        poll_ms: u64,
        /// Print each record's header.
        #[arg(long)]
        headers: bool,
        /// How to print headers and contents.
        #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
        format: Encoding,
    },
    /// Export records into another system (NATS JetStream).
    Export {
        #[command(subcommand)]
        target: export::ExportTarget,
    },
    /// Print one record, with its header.
    Get {
        /// The WAL directory.
        dir: PathBuf,
        /// The record's reference: key_hash:sequence:offset.
        #[arg(value_name = "REF", allow_hyphen_values = true)]
        reference: String,
        /// How to print the header and content.
        #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
        format: Encoding,
    },
    /// Read every record and check every checksum and segment header.
    ///
    /// A torn tail (a write cut short by a crash at the end of a key) and
    /// the expired leftovers of a compaction a crash interrupted are
    /// reported but are not errors. Corruption is reported with its file and
    /// byte position, and the exit code is 3.
    Verify {
        /// The WAL directory.
        dir: PathBuf,
        /// Check only this key.
        #[arg(long, value_name = "K")]
        key: Option<String>,
    },
    /// Remove the segments retention allows (or, with --dry-run, list them).
    ///
    /// Without --dry-run this opens the directory as its writer: it fails if
    /// another process is writing it, and it cuts off torn tails.
    Compact {
        /// The WAL directory.
        dir: PathBuf,
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Generate load and report records/s, MB/s, append latency and fsyncs.
    Bench(bench::BenchArgs),
}

/// Retention settings, as the application's `WalOptions`: `compact` uses
/// them, `stats` shows expiry by them, and opening uses them to tell the
/// leftovers of an interrupted compaction (expired) from a missing segment.
#[derive(Debug, Args)]
pub(crate) struct RetentionArgs {
    /// How long records are kept, in seconds (as `WalOptions::entry_retention`)
    #[arg(long, global = true, value_name = "SECS",
          default_value_t = WalOptions::default().entry_retention.as_secs())]
    retention_secs: u64,
    /// Segments per retention period (time-based rotation)
    #[arg(long, global = true, value_name = "N",
          default_value_t = WalOptions::default().segments_per_retention_period)]
    segments_per_retention_period: u32,
}

impl RetentionArgs {
    fn options(&self) -> CliResult<WalOptions> {
        let options = WalOptions::default()
            .retention(Duration::from_secs(self.retention_secs))
            .segments_per_retention_period(self.segments_per_retention_period);
        options.validate()?;
        Ok(options)
    }

    /// A builder for `dir` with these settings.
    fn builder(&self, dir: &Path) -> CliResult<WalBuilder> {
        Ok(Wal::builder(dir).options(self.options()?))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli.command, &cli.retention, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // The reader went away (`nano-wal dump ... | head`): not an error.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            drop(out.flush());
            // One line, whatever the message holds.
            let message = e.to_string().replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &(dyn Error + 'static)) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(command: Command, retention: &RetentionArgs, out: &mut dyn Write) -> CliResult<ExitCode> {
    let open = |dir: &Path| -> CliResult<Inspector> {
        Ok(Inspector::from_builder(retention.builder(dir)?)?)
    };
    match command {
        Command::Stats { dir, json } => stats(&open(&dir)?, json, out)?,
        Command::Keys { dir } => {
            for key in open(&dir)?.keys() {
                writeln!(out, "{key}")?;
            }
        }
        Command::Dump {
            dir,
            key,
            from,
            limit,
            headers,
            format,
        } => {
            let from = from.as_deref().map(parse_ref).transpose()?;
            let inspector = open(&dir)?;
            let records = inspector.dump(key.as_bytes(), from)?;
            for record in records.take(limit.unwrap_or(usize::MAX)) {
                show::record(out, &record?, headers, format)?;
            }
        }
        Command::Tail {
            dir,
            key,
            from,
            from_start,
            limit,
            poll_ms,
            headers,
            format,
        } => {
            let from = from.as_deref().map(parse_ref).transpose()?;
            let wal = retention.builder(&dir)?.read_only(true).open()?;
            let follow = TailFollow {
                from,
                from_start,
                poll: Duration::from_millis(poll_ms.max(1)),
            };
            tail(&wal, key.as_bytes(), &follow, limit, (headers, format), out)?;
        }
        Command::Get {
            dir,
            reference,
            format,
        } => {
            let r = parse_ref(&reference)?;
            let record = open(&dir)?.read_record_at(r)?;
            show::record(out, &record, true, format)?;
        }
        Command::Verify { dir, key } => {
            let key = key.as_deref().map(str::as_bytes);
            let verifier = Verifier::from_builder(retention.builder(&dir)?, key)?;
            return verify(verifier, out);
        }
        Command::Compact { dir, dry_run } => {
            let plan = if dry_run {
                open(&dir)?.compaction_plan()
            } else {
                inspect::compact(retention.builder(&dir)?)?
            };
            compaction(&plan, dry_run, out)?;
        }
        Command::Bench(args) => bench::run(&args, retention.options()?, out)?,
        Command::Export { target } => export::run(target, retention, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `tail` starts and how often it looks.
struct TailFollow {
    from: Option<EntryRef>,
    from_start: bool,
    poll: Duration,
}

fn tail(
    wal: &Wal,
    key: &[u8],
    follow: &TailFollow,
    limit: Option<usize>,
    (headers, format): (bool, Encoding),
    out: &mut dyn Write,
) -> CliResult<()> {
    let sub = match (follow.from, follow.from_start, wal.last_record(key)?) {
        (Some(r), _, _) => wal.subscribe(key, Some(r))?,
        (None, false, Some(last)) => wal.subscribe_after(key, last.entry_ref)?,
        _ => wal.subscribe(key, None)?,
    };
    let mut sub = sub.poll_interval(follow.poll);
    for _ in 0..limit.unwrap_or(usize::MAX) {
        let Some(record) = sub.next() else { break };
        show::record(out, &record?, headers, format)?;
        // Each record as it comes, not when a buffer fills.
        out.flush()?;
    }
    Ok(())
}

fn parse_ref(s: &str) -> CliResult<EntryRef> {
    Ok(s.parse::<EntryRef>()?)
}

fn stats(inspector: &Inspector, json: bool, out: &mut dyn Write) -> CliResult<()> {
    let stats = inspector.describe()?;
    let journal = inspector.journal_state()?;
    if json {
        stats_json(&stats, &journal, out)
    } else {
        stats_table(&stats, &journal, out)
    }
}

fn stats_json(stats: &WalStats, journal: &JournalState, out: &mut dyn Write) -> CliResult<()> {
    let keys: Vec<_> = stats
        .keys
        .iter()
        .map(|k| {
            json!({
                "key": k.key,
                "key_hash": k.key_hash,
                "segments": k.segments.len(),
                "records": k.records,
                "size_bytes": k.size_bytes,
                "content_bytes": k.content_bytes,
                "oldest_record_unix_ms": k.oldest_record_unix_ms,
                "newest_record_unix_ms": k.newest_record_unix_ms,
                "next_expiry_unix_ms": k.next_expiry_unix_ms,
                "segment_files": k.segments.iter().map(show::segment_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let value = json!({
        "dir": stats.dir.display().to_string(),
        "retention_secs": stats.retention_ms / 1000,
        "keys": keys,
        "totals": {
            "keys": stats.keys.len(),
            "segments": stats.total_segments(),
            "records": stats.total_records(),
            "size_bytes": stats.total_size_bytes(),
            "oldest_record_unix_ms": stats.oldest_record_unix_ms(),
            "newest_record_unix_ms": stats.newest_record_unix_ms(),
        },
        "torn_tails": stats.torn_tails.iter().map(show::torn_json).collect::<Vec<_>>(),
        "expired_leftovers": stats.expired_leftovers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "journal": show::journal_json(journal),
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

fn stats_table(stats: &WalStats, journal: &JournalState, out: &mut dyn Write) -> CliResult<()> {
    let now = now_unix_ms();
    let time = |ms: Option<u64>| ms.map_or_else(|| "-".to_owned(), ms_to_rfc3339_secs);
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
        "key",
        "segments",
        "records",
        "bytes",
        "oldest record (UTC)",
        "newest record (UTC)",
        "next expiry (UTC)",
    ]);
    for k in &stats.keys {
        let expiry = match k.next_expiry_unix_ms {
            Some(t) if t <= now => format!("{} (due)", ms_to_rfc3339_secs(t)),
            other => time(other),
        };
        table.add_row([
            k.key.clone(),
            k.segments.len().to_string(),
            k.records.to_string(),
            HumanBytes(k.size_bytes).to_string(),
            time(k.oldest_record_unix_ms),
            time(k.newest_record_unix_ms),
            expiry,
        ]);
    }
    table.add_row([
        format!("total: {} keys", stats.keys.len()),
        stats.total_segments().to_string(),
        stats.total_records().to_string(),
        HumanBytes(stats.total_size_bytes()).to_string(),
        time(stats.oldest_record_unix_ms()),
        time(stats.newest_record_unix_ms()),
        String::new(),
    ]);
    for column in 1..=3 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "retention {} s; {} torn tail(s)",
        stats.retention_ms / 1000,
        stats.torn_tails.len()
    )?;
    for t in &stats.torn_tails {
        writeln!(out, "{}", show::torn_line(t))?;
    }
    for p in &stats.expired_leftovers {
        writeln!(out, "{}", show::leftover_line(p))?;
    }
    writeln!(out)?;
    show::journal_lines(out, journal)?;
    Ok(())
}

fn verify(verifier: Verifier, out: &mut dyn Write) -> CliResult<ExitCode> {
    // The bar appears only if the run takes a while, and only on a terminal.
    let bar =
        ProgressBar::with_draw_target(Some(verifier.total_bytes()), ProgressDrawTarget::hidden())
            .with_style(
                ProgressStyle::with_template(
                    "verifying {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )?
                .progress_chars("=> "),
            );
    let started = Instant::now();
    let mut shown = false;
    let report = verifier.run(&mut |bytes_checked| {
        if !shown && started.elapsed() > Duration::from_millis(300) {
            shown = true;
            if io::stderr().is_terminal() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
        bar.set_position(bytes_checked);
    })?;
    bar.finish_and_clear();
    for t in &report.torn_tails {
        writeln!(out, "{}", show::torn_line(t))?;
    }
    for p in &report.expired_leftovers {
        writeln!(out, "{}", show::leftover_line(p))?;
    }
    for c in &report.corruptions {
        writeln!(
            out,
            "CORRUPT {} at file position {}: {}",
            c.path.display(),
            c.file_position,
            c.reason
        )?;
    }
    let summary = format!(
        "{} keys, {} segments, {} records, {} checked",
        report.keys,
        report.segments,
        report.records,
        HumanBytes(report.bytes_checked)
    );
    if report.is_ok() {
        writeln!(
            out,
            "ok: {summary}; {} torn tail(s)",
            report.torn_tails.len()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    out.flush()?;
    eprintln!(
        "error: {} corruption(s) found ({summary})",
        report.corruptions.len()
    );
    Ok(ExitCode::from(EXIT_CORRUPTION))
}

fn compaction(plan: &CompactionPlan, dry_run: bool, out: &mut dyn Write) -> CliResult<()> {
    let verb = if dry_run { "would remove" } else { "removed" };
    for k in &plan.keys {
        for s in &k.removed {
            writeln!(
                out,
                "{verb} {} (key {}, segment {}, {}, stamped before {})",
                s.path.display(),
                k.key,
                s.sequence,
                HumanBytes(s.size_bytes),
                ms_to_rfc3339_secs(s.rotate_at_unix_ms)
            )?;
        }
        if k.creates_successor {
            let verb = if dry_run { "would start" } else { "started" };
            writeln!(
                out,
                "{verb} an empty segment for key {} (all of its segments expired)",
                k.key
            )?;
        }
    }
    writeln!(
        out,
        "{}: {verb} {} segment(s), {} (retention {} s){}",
        if dry_run { "dry run" } else { "compacted" },
        plan.segments_removed(),
        HumanBytes(plan.bytes_removed()),
        plan.retention_ms / 1000,
        if plan.is_empty() {
            "; nothing has expired"
        } else {
            ""
        }
    )?;
    Ok(())
}
