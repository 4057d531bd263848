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
    /// A subscription's or consumer's position was removed (by retention,
    /// `purge_before` or `truncate_from`) before it read the records there:
    /// reported instead of skipping them.
    #[error("Position removed: {0}")]
    PositionRemoved(String),
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
    /// what is on disk. Reopen the WAL to recover. The cause is the first
    /// failure, kept whole.
    #[error("the writer is poisoned by an earlier failure: {0}")]
    Poisoned(#[source] PoisonCause),
    /// The disk is full. No partial record was left visible; appends can be
    /// retried once space is freed. The `io::Error` is the source.
    #[error("storage full: {0}")]
    StorageFull(#[source] IoFailure),
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

/// Why a writer is poisoned: the failure that poisoned it (its error is the
/// source where it was kept), said once however often it is reported.
/// Cloning shares it.
#[derive(Debug, Clone)]
pub struct PoisonCause {
    what: std::sync::Arc<str>,
    failure: Option<std::sync::Arc<WalError>>,
}

impl PoisonCause {
    /// The cause for `failure`, kept as the source. A failure that is
    /// itself a poisoning passes its cause on rather than nesting it.
    pub(crate) fn new(failure: WalError) -> Self {
        match failure {
            WalError::Poisoned(cause) => cause,
            other => Self {
                what: other.to_string().into(),
                failure: Some(std::sync::Arc::new(other)),
            },
        }
    }

    /// The cause for a failure the caller also returns: its description
    /// (or, if it is a poisoning, its cause).
    pub(crate) fn describing(failure: &WalError) -> Self {
        match failure {
            WalError::Poisoned(cause) => cause.clone(),
            other => Self::message(other.to_string()),
        }
    }

    /// A cause known only by its description.
    pub(crate) fn message(what: String) -> Self {
        Self {
            what: what.into(),
            failure: None,
        }
    }

    /// The same cause with a note added to its description.
    pub(crate) fn noting(&self, note: impl std::fmt::Display) -> Self {
        Self {
            what: format!("{}; {note}", self.what).into(),
            failure: self.failure.clone(),
        }
    }

    /// Whether the description contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.what.contains(text)
    }
}

impl std::fmt::Display for PoisonCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for PoisonCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failure
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An I/O error with the operation and the file it concerns.
///
/// [`WalError::Io`] holds it inside an `io::Error` of the same kind (so 0.5's
/// `WalError::Io(e)` and `e.kind()` keep working): `e.get_ref()` downcasts to
/// it, and the error chain reaches the original `io::Error` as its source.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {}: {source}", path.display())]
pub struct IoFailure {
    operation: String,
    path: std::path::PathBuf,
    #[source]
    source: io::Error,
}

impl IoFailure {
    /// What was being done, e.g. `write` or `sync`.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The file or directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

/// Wrap an I/O error with the file and operation it concerns, keeping it
/// whole as the source.
pub(crate) fn io_at(path: &std::path::Path, what: &str, e: io::Error) -> WalError {
    // A storage's refusal of a path that is not a regular file
    // ([`crate::storage::not_a_regular_file`]) becomes `ForeignFile`: every
    // open and lock goes through here.
    if let Some(kind) = crate::storage::refused_file_type(&e) {
        return WalError::ForeignFile {
            path: path.to_path_buf(),
            reason: format!("it is {kind}, not a regular file"),
        };
    }
    let kind = e.kind();
    let failure = IoFailure {
        operation: what.to_owned(),
        path: path.to_path_buf(),
        source: e,
    };
    if kind == io::ErrorKind::StorageFull {
        return WalError::StorageFull(failure);
    }
    WalError::Io(io::Error::new(kind, failure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_io_error_is_kept_as_the_source() {
        let os = io::Error::from_raw_os_error(5);
        let err = io_at(std::path::Path::new("/wal/a.log"), "sync", os);
        let WalError::Io(wrapper) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(wrapper.kind(), io::Error::from_raw_os_error(5).kind());
        let failure = wrapper
            .get_ref()
            .and_then(|e| e.downcast_ref::<IoFailure>())
            .expect("an IoFailure inside");
        assert_eq!(
            (failure.operation(), failure.path()),
            ("sync", std::path::Path::new("/wal/a.log"))
        );
        // The chain: WalError -> io::Error -> the original io::Error.
        let original = err
            .source()
            .and_then(|s| s.source())
            .and_then(|s| s.downcast_ref::<io::Error>())
            .expect("the original error in the chain");
        assert_eq!(original.raw_os_error(), Some(5));
        assert!(err.to_string().contains("sync /wal/a.log"), "{err}");
    }

    #[test]
    fn a_poisoning_is_said_once_and_keeps_its_failure() {
        let failure = io_at(
            std::path::Path::new("/wal/a.log"),
            "sync",
            io::Error::from_raw_os_error(5),
        );
        let cause = PoisonCause::new(failure);
        let again = PoisonCause::new(WalError::Poisoned(cause.clone()));
        let err = WalError::Poisoned(again);
        let text = err.to_string();
        assert_eq!(text.matches("poisoned").count(), 1, "{text}");
        assert!(matches!(
            err.source()
                .and_then(|c| c.source())
                .and_then(|f| f.downcast_ref::<WalError>()),
            Some(WalError::Io(_))
        ));
        let described = PoisonCause::describing(&WalError::Poisoned(cause));
        assert!(described.contains("sync /wal/a.log"), "{described}");
    }

    #[test]
    fn a_full_disk_keeps_its_io_error_too() {
        let err = io_at(
            std::path::Path::new("/wal/a.log"),
            "write",
            io::Error::from(io::ErrorKind::StorageFull),
        );
        let WalError::StorageFull(failure) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(failure.io_error().kind(), io::ErrorKind::StorageFull);
        assert!(err.source().is_some());
    }
}
