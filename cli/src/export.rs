//! `nano-wal export nats`: the NATS JetStream exporter (`nano-wal-nats`)
//! on the command line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use nano_wal::WalError;
use nano_wal_nats::async_nats;
use nano_wal_nats::{ExportConfig, Exporter};

use crate::{CliResult, RetentionArgs};

/// Where to export to.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Publish records to a NATS JetStream stream, exactly once each and
    /// in order per key.
    ///
    /// Records of key K go to subject PREFIX.<token of K>: bytes A-Z a-z
    /// 0-9 _ - are kept, every other byte is written %XX (the empty key is
    /// %). Each message carries the record's reference as Nats-Msg-Id, its
    /// header (base64) as Nano-Wal-Header and its append time as
    /// Nano-Wal-Timestamp-Ms; the content is the payload. The stream is
    /// created (subjects PREFIX.>) if missing.
    ///
    /// Each message expects the stream sequence of its key's previous
    /// message (one in flight per key), so the stream holds every key's
    /// records in order without a gap, and a restart resumes after the stream's last message of each key (and,
    /// with --cursor, after the cursor's position, if later). The stream
    /// must have no other subject than PREFIX.>. With the writer lock
    /// (--cursor), each batch is made durable in the log before it is
    /// published. Without
    /// --cursor the directory is opened read-only, so the export can
    /// follow a writer in another process; with --cursor the positions are
    /// committed into the log, which needs the writer lock.
    Nats(NatsArgs),
}

/// `export nats`'s arguments.
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// The WAL directory.
    dir: PathBuf,
    /// The NATS server, nats://HOST:PORT.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The JetStream stream (created if missing).
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// Subject prefix: key K goes to PREFIX.<token of K>.
    #[arg(long, value_name = "PREFIX")]
    subject_prefix: String,
    /// Export this key (repeat for more). Default: every key.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Keep exporting records as they are appended, until interrupted
    /// (SIGINT or SIGTERM).
    #[arg(long)]
    follow: bool,
    /// Commit each exported position to this named consumer of the log
    /// (opens the directory for writing).
    #[arg(long, value_name = "NAME")]
    cursor: Option<String>,
    /// Duplicate window of a stream this command creates, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    duplicate_window_secs: u64,
    /// Messages published before their acknowledgements are awaited.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_in_flight: usize,
    /// If a key's resume position is no longer in the log, go on from its
    /// oldest record after it instead of stopping.
    #[arg(long)]
    skip_removed: bool,
}

/// Run an export.
pub fn run(target: ExportTarget, retention: &RetentionArgs, out: &mut dyn Write) -> CliResult<()> {
    let ExportTarget::Nats(args) = target;
    let mut config = ExportConfig::new(&args.stream, &args.subject_prefix)
        .follow(args.follow)
        .duplicate_window(Duration::from_secs(args.duplicate_window_secs))
        .max_in_flight(args.max_in_flight)
        .skip_removed(args.skip_removed);
    for key in &args.keys {
        config = config.key(key);
    }
    if let Some(name) = &args.cursor {
        config = config.cursor(name);
    }
    config.check()?;
    let builder = retention.builder(&args.dir)?;
    let wal = match args.cursor {
        None => builder.read_only(true).open()?,
        Some(_) => builder.open().map_err(|e| match e {
            WalError::Locked(_) => format!(
                "{e}; --cursor commits positions into the log, which another process holds: \
                 export without --cursor (it resumes from the stream) or from that process"
            )
            .into(),
            other => Box::<dyn std::error::Error + Send + Sync>::from(other),
        })?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let report = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(stop_on_signal(stop.clone()));
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(10))
            .connect(args.server.as_str())
            .await
            .map_err(|e| format!("connecting to {}: {e}", args.server))?;
        let mut exporter = Exporter::new(&wal, client.clone(), config).await?;
        if args.follow {
            eprintln!(
                "exporting {} to stream {} on {}; following (Ctrl-C stops)",
                args.dir.display(),
                args.stream,
                args.server
            );
        }
        // Every message it published was acknowledged: nothing to flush.
        CliResult::Ok(exporter.run(&stop).await?)
    })?;
    if !wal.is_read_only() {
        wal.close()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let resyncs = match report.resyncs {
        0 => String::new(),
        n => format!(" (read the stream again {})", plural(n, "time", "times")),
    };
    writeln!(
        out,
        "exported {} of {} to stream {} in {secs:.2} s{resyncs}",
        plural(report.published, "record", "records"),
        plural(report.keys as u64, "key", "keys"),
        args.stream,
    )?;
    Ok(())
}

/// Set `stop` on SIGINT or SIGTERM: the export finishes the batch in
/// flight, commits it and returns.
async fn stop_on_signal(stop: Arc<AtomicBool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            // No SIGTERM handler: Ctrl-C still stops it.
            Err(_) => {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
    }
    stop.store(true, Ordering::Relaxed);
}
