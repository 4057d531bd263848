//! The machine description printed above the table.

use std::path::Path;
use std::process::Command;

/// Trimmed stdout of a command, or `?`.
fn run(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "?".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// Filesystem type of the mount holding `path` (longest matching mount
/// point in /proc/mounts), with its device.
fn filesystem(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1])).then(|| (f[1].len(), f[2], f[0]))
        })
        .max_by_key(|m| m.0)
        .map_or_else(|| "?".to_owned(), |(_, fs, dev)| format!("{fs} ({dev})"))
}

/// The nano-wal commit measured, and whether `src/` had uncommitted changes.
fn commit() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let head = run("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
    let dirty = run("git", &["-C", root, "status", "--porcelain", "--", "src"]);
    if dirty.is_empty() || dirty == "?" {
        head
    } else {
        format!("{head} + uncommitted changes in src/")
    }
}

/// Markdown lines describing the machine and the build measured.
pub fn describe(runs: usize, smoke: bool) -> String {
    let temp = std::env::temp_dir();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let scale = if smoke { "smoke (tiny counts)" } else { "full" };
    format!(
        "- date: {}\n- kernel: {}\n- CPU: {} × {cores} cores\n- temp dir: {} on {}\n\
         - nano-wal: {}\n- scale: {scale}, {runs} run(s); cells are median (min–max)\n",
        run("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
        run("uname", &["-srm"]),
        cpu_model(),
        temp.display(),
        filesystem(&temp),
        commit(),
    )
}
