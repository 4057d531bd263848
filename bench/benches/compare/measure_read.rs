//! The read-side workloads: random point reads, enumerating a key, reopening,
//! and many idle keys.

use std::path::Path;
use std::time::Instant;

use nano_wal_bench::{peak_rss_kib, reset_peak_rss, rss_kib};

use super::args::Scale;
use super::child::{self, Outcome};
use super::measure::{
    Ctx, XorShift, cfg, content, key_names, median, ms, over, populate, rate, tempdir,
};
use super::systems::{OpenCfg, Res, System};

/// Size of the records read back at random and reopened.
const SMALL: usize = 100;
/// Times the enumerate and scan workloads read the key back in one process.
const READ_BACK_PASSES: usize = 5;

fn rss() -> Res<u64> {
    rss_kib().ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

/// `Scale::reads` reads of references drawn by xorshift (or until the budget).
pub fn random<S: System>(s: &Scale, keys: usize, per_key: usize) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let sys = S::open(dir.path(), &cfg(true))?;
    let refs = populate(&sys, keys, per_key, SMALL, true)?;
    let mut x = XorShift(0x9E37_79B9_7F4A_7C15);
    let picks: Vec<usize> = (0..s.reads)
        .map(|_| usize::try_from(x.next() % refs.len() as u64))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let mut n = 0;
    for &i in &picks {
        if over(n, start, s.budget) {
            break;
        }
        let len = sys.read(refs[i])?;
        if len != SMALL {
            return Err(format!("read {len} bytes, wrote {SMALL}").into());
        }
        n += 1;
    }
    let per_s = rate(n, start.elapsed());
    sys.close()?;
    Ok(vec![per_s])
}

/// Time to read back one key; with `memory`, also the peak RSS growth during
/// the read, in MiB. This process writes the key and closes it; a fresh
/// child process opens it and reads it back, so the read cannot reuse heap
/// that writing left free (which would hide its allocations from the RSS).
pub fn enumerate<S: System>(
    ctx: &Ctx<'_>,
    size: usize,
    memory: bool,
    fastest: bool,
) -> Res<Vec<f64>> {
    if let Some(dir) = ctx.input {
        return read_back::<S>(ctx.scale, dir, size, memory, fastest);
    }
    let dir = tempdir()?;
    let sys = S::open(dir.path(), &cfg(true))?;
    populate(&sys, 1, ctx.scale.enumerate, size, false)?;
    sys.close()?;
    match child::run(ctx.index, ctx.system, ctx.smoke, Some(dir.path()))? {
        Outcome::Values(v) => Ok(v),
        Outcome::Failed(why) | Outcome::Unsupported(why) => Err(why.into()),
    }
}

/// Open `dir` and time reading its key back [`READ_BACK_PASSES`] times: the
/// median pass, and the peak RSS growth over all of them (peak reset right
/// before the first, RSS right before subtracted).
fn read_back<S: System>(
    s: &Scale,
    dir: &Path,
    size: usize,
    memory: bool,
    fastest: bool,
) -> Res<Vec<f64>> {
    let mut sys = S::open(dir, &cfg(true))?;
    let before = rss()?;
    if !reset_peak_rss() {
        return Err("cannot reset the peak RSS (/proc/self/clear_refs)".into());
    }
    let expected = s.enumerate as u64;
    let mut times = Vec::with_capacity(READ_BACK_PASSES);
    for _ in 0..READ_BACK_PASSES {
        let start = Instant::now();
        let (n, bytes) = if fastest {
            sys.scan("key-0")?
        } else {
            sys.enumerate("key-0")?
        };
        times.push(ms(start.elapsed()));
        if n != expected || bytes != expected * size as u64 {
            return Err(format!("enumerated {n} records / {bytes} B, wrote {expected}").into());
        }
    }
    let peak = peak_rss_kib().ok_or("no VmHWM in /proc/self/status")?;
    sys.close()?;
    let mut out = vec![median(&mut times)];
    if memory {
        out.push(peak.saturating_sub(before) as f64 / 1024.0);
    }
    Ok(out)
}

/// Write `Scale::reopen`'s keys × `per_key` records, close (or,
/// `crashed`, drop without closing), then time opening the directory again.
pub fn reopen<S: System>(s: &Scale, crashed: bool, per_key: usize) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let keys = s.reopen.0;
    let sys = S::open(dir.path(), &cfg(true))?;
    populate(&sys, keys, per_key, SMALL, false)?;
    if crashed {
        // As a crash of the process leaves it: everything written reached
        // the OS, nothing ran at close (nano-wal: the journal is replayed).
        drop(sys);
    } else {
        sys.close()?;
    }
    let start = Instant::now();
    let sys = S::open(dir.path(), &cfg(true))?;
    let took = ms(start.elapsed());
    sys.close()?;
    Ok(vec![took])
}

/// One 100 B non-durable append to each of `Scale::many_keys` keys, then
/// sync and close (timed from the first append); and the RSS growth from
/// before opening to after the appends, per key. Opened with the default
/// descriptor budget (nano-wal: 1024).
pub fn many_keys<S: System>(s: &Scale) -> Res<Vec<f64>> {
    let dir = tempdir()?;
    let (names, content) = (key_names(s.many_keys), content(SMALL));
    let defaults = OpenCfg {
        max_open_files: None,
        keep_all: false,
    };
    let before = rss()?;
    let sys = S::open(dir.path(), &defaults)?;
    let start = Instant::now();
    for (i, key) in names.iter().enumerate() {
        sys.append(key, &content, false)
            .map_err(|e| format!("after {i} keys: {e}"))?;
    }
    let after = rss()?;
    sys.sync()?;
    sys.close()?;
    let took = ms(start.elapsed());
    let per_key = if S::KEYED {
        after.saturating_sub(before) as f64 * 1024.0 / s.many_keys as f64
    } else {
        f64::NAN
    };
    Ok(vec![took, per_key])
}
