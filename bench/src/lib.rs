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
