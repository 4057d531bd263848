//! Helpers shared by the benchmarks: building populated WAL directories.

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

/// A WAL in a temporary directory with `keys` keys of `per_key` records of
/// `size` bytes; returns the handle, every reference, and the directory guard.
///
/// # Errors
/// Any error from the WAL.
pub fn populated(
    keys: usize,
    per_key: usize,
    size: usize,
) -> Result<(Wal, Vec<EntryRef>, tempfile::TempDir), WalError> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path())
        .max_open_files(keys.max(16) + 16)
        .open()?;
    let payload = Bytes::from(vec![0xA5u8; size]);
    let mut refs = Vec::with_capacity(keys * per_key);
    for _ in 0..per_key {
        let batch = (0..keys).map(|k| (format!("key-{k}"), None, payload.clone()));
        refs.extend(wal.append_batch(batch, false)?);
    }
    Ok((wal, refs, dir))
}

/// Peak resident set size of this process in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Current resident set size of this process in KiB (Linux `VmRSS`), if known.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reset the peak resident set size to the current one (Linux: writing 5 to
/// `/proc/self/clear_refs`). Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What a child process left when it ended.
#[derive(Debug)]
pub struct ChildRun {
    /// How it ended.
    pub status: std::process::ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

/// Run `cmd` (stdin closed, stdout and stderr captured) until it exits, or
/// kill it once `timeout` has passed (`Ok(None)`).
///
/// # Errors
/// Spawning or waiting for the child failed.
pub fn run_child(
    cmd: &mut std::process::Command,
    timeout: std::time::Duration,
) -> std::io::Result<Option<ChildRun>> {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let out = std::thread::spawn(move || drain(out));
    let err = std::thread::spawn(move || drain(err));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let joined = |h: std::thread::JoinHandle<String>| {
        h.join()
            .map_err(|_| std::io::Error::other("a pipe reader panicked"))
    };
    Ok(Some(ChildRun {
        status,
        stdout: joined(out)?,
        stderr: joined(err)?,
    }))
}

/// Everything readable from a child's pipe. A read error leaves what was
/// read; the caller reports what is missing.
fn drain(pipe: Option<impl std::io::Read>) -> String {
    let mut s = String::new();
    if let Some(mut p) = pipe {
        drop(p.read_to_string(&mut s));
    }
    s
}

/// `len` random bytes from a fixed xorshift seed: payloads that compression
/// cannot shrink, the same in every run.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}
