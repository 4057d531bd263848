//! The crate's single error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in a [`crate::Wal`] operation.
///
/// The first five variants are nano-wal 0.5's and keep their meaning. Messages
/// about on-disk data name the segment file and the byte offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O operation failed. Where the engine knows it, the message names
    /// the file.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The configuration is invalid.
    #[error("Invalid configuration: {0}")]
    InvalidConfig(String),
    /// No entry exists at the reference: unknown key, a segment removed by
    /// retention, or an offset past the end of the valid data.
    #[error("Entry not found: {0}")]
    EntryNotFound(String),
    /// Stored bytes failed their checks. The message names the file and the
    /// byte offset.
    #[error("Data corruption: {0}")]
    CorruptedData(String),
    /// A record header is longer than the format allows.
    #[error("Header size {size} exceeds maximum {max}")]
    HeaderTooLarge {
        /// Size of the rejected header in bytes.
        size: usize,
        /// Largest header accepted, in bytes.
        max: usize,
    },
    /// A key is longer than the format allows.
    #[error("Key size {size} exceeds maximum {max}")]
    KeyTooLarge {
        /// Size of the rejected key in bytes.
        size: usize,
        /// Largest key accepted, in bytes.
        max: usize,
    },
    /// Record content is longer than the format allows.
    #[error("Content size {size} exceeds maximum {max}")]
    ContentTooLarge {
        /// Size of the rejected content in bytes.
        size: usize,
        /// Largest content accepted, in bytes.
        max: usize,
    },
    /// Another writer holds the directory's lock.
    #[error("the WAL directory {0} is locked by another writer")]
    Locked(String),
    /// The handle was opened read-only (for example because another writer
    /// held the lock when it was opened), so it cannot change the log.
    #[error("this WAL handle is read-only: {0}")]
    ReadOnly(String),
    /// An earlier write or fsync failed, so this writer can no longer tell
    /// what is on disk. Reopen the WAL to recover.
    #[error("the writer is poisoned by an earlier failure: {0}")]
    Poisoned(String),
    /// The disk is full. No partial record was left visible; appends can be
    /// retried once space is freed.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The segment uses a format version this crate does not know.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// The WAL was closed or shut down.
    #[error("the WAL has been closed")]
    Closed,
    /// A file in the WAL directory that the WAL uses by name (a segment,
    /// `nano-wal.lock`, `nano-wal.fsync-failed`) is not one it could have
    /// written: a symbolic link, something other than a regular file (a
    /// directory, a FIFO), or a segment-named file whose bytes cannot be the
    /// start of a segment (FORMAT.md §1, §8). The WAL never follows, writes,
    /// cuts or deletes such a file; move it out of the directory (or, for a
    /// link, replace it with the file itself) and open again.
    #[error("foreign file {}: {reason}; nano-wal does not touch it", path.display())]
    ForeignFile {
        /// The file, in the WAL directory.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
}

/// Result type of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, WalError>;

/// Wrap an I/O error so its message names the file it concerns, keeping the
/// error kind. A storage's refusal of a path that is not a regular file
/// ([`crate::storage::not_a_regular_file`]) becomes
/// [`WalError::ForeignFile`]: every open and lock goes through here.
pub(crate) fn io_at(path: &std::path::Path, what: &str, e: io::Error) -> WalError {
    if let Some(kind) = crate::storage::refused_file_type(&e) {
        return WalError::ForeignFile {
            path: path.to_path_buf(),
            reason: format!("it is {kind}, not a regular file"),
        };
    }
    if e.kind() == io::ErrorKind::StorageFull {
        return WalError::StorageFull(format!("{what} {}: {e}", path.display()));
    }
    WalError::Io(io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}
