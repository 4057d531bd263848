//! The disk's ceiling for the multi-group row, without any log engine: 16
//! threads, each writing 200 synced batches of 5 groups × 10 × 1 KiB
//! (random bytes), through four I/O patterns.
//!
//! - `journal`: each batch appended to one shared file, group-committed
//!   with one fdatasync (what raft-engine and okaywal do: bytes written
//!   once).
//! - `journal+segments`: the same, and each group's 10 KiB also written to
//!   its own file (80 files, never synced while timed); the second figure
//!   adds the final fdatasync of those files (what nano-wal does, its
//!   checkpoints syncing the segments: bytes written twice).
//! - `by-reference`: each group's 10 KiB written to its own file, the 5
//!   files fdatasync'ed (in parallel), then a 400-byte frame of references
//!   group-committed to the shared file (bytes written once, 6 syncs).
//! - `by-reference, syncfs`: the same with one `syncfs` of the file system
//!   per group commit instead of the per-file syncs.
//!
//! `cargo run --release -p nano-wal-bench --bin write_paths [DIR] [RUNS]`
//! (DIR defaults to a temporary directory).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const THREADS: usize = 16;
const GROUPS: usize = 5;
const GROUP_BYTES: usize = 10 * 1024;
const BATCHES: usize = 200;
const ENTRIES_PER_BATCH: usize = GROUPS * 10;

/// How a group commit makes its frames durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SyncBy {
    File,
    FileSystem,
}

/// A shared file with group commit: appenders write under the lock, one
/// leader syncs for everyone written before it started.
struct Shared {
    file: File,
    /// (frames written, frames synced, a sync is running)
    state: Mutex<(u64, u64, bool)>,
    synced: Condvar,
}

impl Shared {
    fn append_durably(&self, bytes: &[u8], how: SyncBy) -> Res<()> {
        let mine = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            (&self.file).write_all(bytes)?;
            st.0 += 1;
            st.0
        };
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.1 < mine {
            if st.2 {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.2 = true;
            let through = st.0;
            drop(st);
            match how {
                SyncBy::File => self.file.sync_data()?,
                SyncBy::FileSystem => rustix::fs::syncfs(&self.file)?,
            }
            st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.1 = through;
            st.2 = false;
            self.synced.notify_all();
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Journal,
    JournalAndSegments,
    ByReference,
    ByReferenceSyncfs,
}

impl Pattern {
    const ALL: [Pattern; 4] = [
        Pattern::Journal,
        Pattern::JournalAndSegments,
        Pattern::ByReference,
        Pattern::ByReferenceSyncfs,
    ];

    fn name(self) -> &'static str {
        match self {
            Pattern::Journal => "journal",
            Pattern::JournalAndSegments => "journal+segments",
            Pattern::ByReference => "by-reference",
            Pattern::ByReferenceSyncfs => "by-reference, syncfs",
        }
    }
}

/// Entries per second while timed, and including the final sync of the
/// segment files (the same figure unless segments were left unsynced).
fn run(dir: &Path, pattern: Pattern, pool: &[u8]) -> Res<(f64, f64)> {
    let shared = Shared {
        file: OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join("journal"))?,
        state: Mutex::new((0, 0, false)),
        synced: Condvar::new(),
    };
    let segments: Vec<File> = (0..THREADS * GROUPS)
        .map(|i| {
            OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(dir.join(format!("segment-{i}")))
        })
        .collect::<Result<_, _>>()?;
    let batch_bytes = GROUPS * GROUP_BYTES;
    let start = Instant::now();
    std::thread::scope(|scope| -> Res<()> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (shared, segments) = (&shared, &segments);
                scope.spawn(move || -> Res<()> {
                    let mine = &segments[t * GROUPS..(t + 1) * GROUPS];
                    for b in 0..BATCHES {
                        let at = (t * 7919 + b * 4099) % (pool.len() - batch_bytes);
                        let batch = &pool[at..at + batch_bytes];
                        let offset = (b * GROUP_BYTES) as u64;
                        let write_groups = || -> Res<()> {
                            for (g, f) in mine.iter().enumerate() {
                                f.write_all_at(&batch[g * GROUP_BYTES..][..GROUP_BYTES], offset)?;
                            }
                            Ok(())
                        };
                        match pattern {
                            Pattern::Journal => shared.append_durably(batch, SyncBy::File)?,
                            Pattern::JournalAndSegments => {
                                shared.append_durably(batch, SyncBy::File)?;
                                write_groups()?;
                            }
                            Pattern::ByReference => {
                                write_groups()?;
                                std::thread::scope(|s| {
                                    let syncs: Vec<_> =
                                        mine.iter().map(|f| s.spawn(|| f.sync_data())).collect();
                                    syncs.into_iter().try_for_each(|h| {
                                        h.join().map_err(|_| "sync thread panicked")??;
                                        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                                    })
                                })?;
                                shared.append_durably(&batch[..400], SyncBy::File)?;
                            }
                            Pattern::ByReferenceSyncfs => {
                                write_groups()?;
                                shared.append_durably(&batch[..400], SyncBy::FileSystem)?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "writer thread panicked")?)
    })?;
    let timed = start.elapsed();
    for f in &segments {
        f.sync_data()?;
    }
    let total = start.elapsed();
    let entries = (THREADS * BATCHES * ENTRIES_PER_BATCH) as f64;
    Ok((entries / timed.as_secs_f64(), entries / total.as_secs_f64()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next();
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let pool = nano_wal_bench::random_bytes(1 << 20);
    println!(
        "{THREADS} threads × {BATCHES} synced batches of {GROUPS} groups × 10 × 1 KiB; \
         median of {runs} runs, entries/s"
    );
    for pattern in Pattern::ALL {
        let (mut timed, mut total) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let dir = match &base {
                Some(b) => tempfile::tempdir_in(b)?,
                None => tempfile::tempdir()?,
            };
            let (t, all) = run(dir.path(), pattern, &pool)?;
            timed.push(t);
            total.push(all);
        }
        println!(
            "{:<22} {:>10.0}   with the segments synced: {:>10.0}",
            pattern.name(),
            median(timed),
            median(total)
        );
    }
    Ok(())
}
