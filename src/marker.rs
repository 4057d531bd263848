//! A durable note that an fsync failed during this boot of the machine.
//!
//! After a failed fsync the kernel may drop the unsynced bytes yet keep
//! serving them from its page cache. A process that opens the directory in
//! the same boot would then read records that are not on disk, and could
//! build durable records on top of them. No process can tell which bytes of
//! a segment an earlier process wrote are durable, so the failure is
//! recorded in `nano-wal.fsync-failed` with the boot id: writers refuse to
//! open in the same boot; after a restart the page cache is gone, recovery
//! sees the disk as it is, and the note is removed.

use std::io;

use crate::engine::Engine;
use crate::error::{PoisonCause, Result, WalError, io_at};
use crate::options::Config;
use crate::storage::{OpenMode, read_up_to, write_all_at};

/// Name of the note in the WAL directory.
pub const FSYNC_FAILED_FILE_NAME: &str = "nano-wal.fsync-failed";
/// Longest note read back.
const MAX_NOTE_BYTES: usize = 4096;

/// Write the note durably; `what` says which file failed.
pub(crate) fn record(engine: &Engine, what: &str) -> io::Result<()> {
    let storage = &engine.config.storage;
    let dir = &engine.config.dir;
    let path = dir.join(FSYNC_FAILED_FILE_NAME);
    let boot = storage.boot_id()?;
    let file = match storage.open(&path, OpenMode::CreateNew) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            storage.open(&path, OpenMode::ReadWrite)?
        }
        other => other?,
    };
    let note = format!("{boot}\n{what}\n");
    file.set_len(0)?;
    write_all_at(&*file, note.as_bytes(), 0)?;
    // Durable, name included, or a crash could forget the failure.
    file.sync_data()?;
    storage.sync_dir(dir)
}

/// Before a writer opens: refuse if the note is from this boot; remove it
/// if it is from an earlier one.
pub(crate) fn check(config: &Config) -> Result<()> {
    let storage = &config.storage;
    let path = config.dir.join(FSYNC_FAILED_FILE_NAME);
    let file = match storage.open(&path, OpenMode::Read) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| io_at(&path, "open", e))?,
    };
    let mut buf = vec![0u8; MAX_NOTE_BYTES];
    let n = read_up_to(&*file, &mut buf, 0).map_err(|e| io_at(&path, "read", e))?;
    let note = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (noted_boot, what) = note.split_once('\n').unwrap_or((note.as_str(), ""));
    let boot = storage
        .boot_id()
        .map_err(|e| io_at(&path, "read the boot id for", e))?;
    // An unknown boot id, then or now, cannot prove a restart.
    if boot.is_empty() || noted_boot.is_empty() || noted_boot == boot {
        return Err(WalError::Poisoned(PoisonCause::message(format!(
            "an fsync failed earlier in this boot ({}); the page cache may hold data the disk lost. \
             Restart the machine before writing again, or remove {} to accept the risk",
            what.trim(),
            path.display()
        ))));
    }
    storage
        .remove_file(&path)
        .map_err(|e| io_at(&path, "remove", e))?;
    storage
        .sync_dir(&config.dir)
        .map_err(|e| io_at(&config.dir, "sync", e))
}
