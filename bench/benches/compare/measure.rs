//! Running one workload on one system: the write workloads, and the helpers
//! the read workloads share.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tempfile::TempDir;

use super::args::Scale;
use super::measure_read;
use super::systems::{Group, OpenCfg, Res, System, Visitor};
use super::workloads::{Spec, Workload};

/// Descriptors for workloads that do not test the default budget.
const MAX_OPEN_FILES: usize = 2048;
/// Records per `append_batch` call while populating.
const POPULATE_CHUNK: usize = 1000;

/// What a child process was asked to measure.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// Index of the workload.
    pub index: usize,
    /// Name of the system.
    pub system: &'a str,
    /// The sizes.
    pub scale: &'a Scale,
    /// Whether the sizes are the smoke ones.
    pub smoke: bool,
    /// A directory a previous phase populated (enumerate's second phase).
    pub input: Option<&'a Path>,
}

/// Runs one workload with the system type it is given.
pub struct Run<'a> {
    /// The workload.
    pub workload: &'a Workload,
    /// Where and what.
    pub ctx: Ctx<'a>,
}

impl Visitor for Run<'_> {
    type Out = Res<Vec<f64>>;
    fn visit<S: System>(self) -> Self::Out {
        run::<S>(self.workload, &self.ctx)
    }
}

/// Run `w` on `S`; the values of `w.metrics()`, in order.
pub fn run<S: System>(w: &Workload, ctx: &Ctx<'_>) -> Res<Vec<f64>> {
    let s = ctx.scale;
    match w.spec {
        Spec::Append {
            size,
            keys,
            durable,
            count,
        } => append::<S>(s, size, keys, durable, count),
        Spec::Batch { keys } => batch::<S>(s, keys),
        Spec::Threads { threads, keys } => threaded::<S>(s, threads, keys),
        Spec::Read { keys, per_key } => measure_read::random::<S>(s, keys, per_key),
        Spec::Enumerate {
            size,
            memory,
            fastest,
        } => measure_read::enumerate::<S>(ctx, size, memory, fastest),
        Spec::Reopen { crashed, per_key } => measure_read::reopen::<S>(s, crashed, per_key),
        Spec::ManyKeys => measure_read::many_keys::<S>(s),
        Spec::MultiGroup {
            threads,
            groups,
            entries,
            size,
        } => multi_group::<S>(s, (threads, groups, entries, size)),
    }
}

/// Open settings: 2048 descriptors; `keep_all` for workloads that read back.
pub fn cfg(keep_all: bool) -> OpenCfg {
    OpenCfg {
        max_open_files: Some(MAX_OPEN_FILES),
        keep_all,
    }
}

/// A fresh directory under the system temp dir.
pub fn tempdir() -> Res<TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("nano-wal-compare-")
        .tempdir()?)
}

/// The same content bytes for every system: a fixed pseudo-random pattern.
pub fn content(size: usize) -> Bytes {
    let mut x = XorShift(0x2545_F491_4F6C_DD1D);
    (0..size).map(|_| x.next().to_le_bytes()[0]).collect()
}

/// `key-0` … `key-{n-1}`.
pub fn key_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// A fixed pseudo-random sequence (xorshift64).
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Per second.
pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Whether a timed loop at iteration `n` should stop (checked every 32).
pub fn over(n: usize, start: Instant, budget: Duration) -> bool {
    n.is_multiple_of(32) && n > 0 && start.elapsed() >= budget
}

/// Append `keys` × `per_key` records of `size` bytes, round-robin over the
/// keys, in non-durable batches, then sync. Returns the references if
/// `keep_refs` (built a chunk at a time, so little memory is left behind).
pub fn populate<S: System>(
    sys: &S,
    keys: usize,
    per_key: usize,
    size: usize,
    keep_refs: bool,
) -> Res<Vec<S::Ref>> {
    let (names, content, total) = (key_names(keys), content(size), keys * per_key);
    let mut refs = Vec::with_capacity(if keep_refs { total } else { 0 });
    for start in (0..total).step_by(POPULATE_CHUNK) {
        let items: Vec<(String, Bytes)> = (start..total.min(start + POPULATE_CHUNK))
            .map(|i| (names[i % keys].clone(), content.clone()))
            .collect();
        let written = sys.append_batch(&items, false)?;
        if keep_refs {
            refs.extend(written);
        }
    }
    sys.sync()?;
    Ok(refs)
}

fn append<S: System>(
    s: &Scale,
    size: usize,
    keys: usize,
    durable: bool,
    count: usize,
) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let sys = S::open(dir.path(), &cfg(false))?;
    let (names, content) = (key_names(keys), content(size));
    let start = Instant::now();
    let mut n = 0;
    while n < count && !over(n, start, s.budget) {
        sys.append(&names[n % keys], &content, durable)?;
        n += 1;
    }
    let per_s = rate(n, start.elapsed());
    sys.close()?;
    Ok(vec![per_s])
}

/// One untimed batch first (creates the keys), then the median batch.
fn batch<S: System>(s: &Scale, keys: usize) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let sys = S::open(dir.path(), &cfg(false))?;
    let (names, content) = (key_names(keys), content(100));
    let items: Vec<(String, Bytes)> = (0..s.batch_size)
        .map(|i| (names[i % keys].clone(), content.clone()))
        .collect();
    sys.append_batch(&items, true)?;
    let mut times = Vec::with_capacity(s.batches);
    let start = Instant::now();
    while times.len() < s.batches && !(times.len() >= 3 && start.elapsed() >= s.budget) {
        let t = Instant::now();
        sys.append_batch(&items, true)?;
        times.push(ms(t.elapsed()));
    }
    sys.close()?;
    Ok(vec![median(&mut times)])
}

/// Each thread appends durably until `per_thread` records or the budget.
fn threaded<S: System>(s: &Scale, threads: usize, keys: usize) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let sys = S::open(dir.path(), &cfg(false))?;
    let (names, content) = (key_names(keys), content(100));
    let start = Instant::now();
    let total = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sys, key, content) = (&sys, &names[t % keys], &content);
                scope.spawn(move || -> Res<usize> {
                    let mut n = 0;
                    while n < s.per_thread && !(n > 0 && start.elapsed() >= s.budget) {
                        sys.append(key, content, true)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "append thread panicked")?)
            .sum::<Res<usize>>()
    })?;
    let per_s = rate(total, start.elapsed());
    sys.close()?;
    Ok(vec![per_s])
}

/// Random bytes (xorshift): entries LZ4 cannot shrink.
fn random_pool(bytes: usize) -> Bytes {
    Bytes::from(nano_wal_bench::random_bytes(bytes))
}

/// Each thread writes synced batches for its own groups until
/// `group_batches` batches or the budget; entries per second.
fn multi_group<S: System>(
    s: &Scale,
    (threads, groups, entries, size): (usize, usize, usize, usize),
) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let sys = S::open(dir.path(), &cfg(false))?;
    let pool = random_pool(1 << 20);
    let start = Instant::now();
    let total = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sys, pool) = (&sys, &pool);
                scope.spawn(move || -> Res<usize> {
                    let mut batches = 0;
                    let mut next_index = 1u64;
                    let mut at = t * 7919;
                    while batches < s.group_batches && !(batches > 0 && start.elapsed() >= s.budget)
                    {
                        let batch: Vec<Group> = (0..groups)
                            .map(|g| Group {
                                id: (t * groups + g) as u64,
                                first_index: next_index,
                                entries: (0..entries)
                                    .map(|_| {
                                        at = (at + 4099) % (pool.len() - size);
                                        pool.slice(at..at + size)
                                    })
                                    .collect(),
                            })
                            .collect();
                        sys.append_groups(&batch)?;
                        next_index += entries as u64;
                        batches += 1;
                    }
                    Ok(batches * groups * entries)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "append thread panicked")?)
            .sum::<Res<usize>>()
    })?;
    let per_s = rate(total, start.elapsed());
    sys.close()?;
    Ok(vec![per_s])
}

/// Median (sorts `v`); NaN if empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
