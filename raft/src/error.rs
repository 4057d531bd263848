//! Mapping nano-wal's errors to openraft's storage errors (the source is
//! kept, so nothing is swallowed).

use openraft::{ErrorSubject, ErrorVerb, RaftTypeConfig, StorageError, StorageIOError};

/// A storage error for `verb` on the log, from any error.
pub(crate) fn logs<C: RaftTypeConfig>(
    verb: ErrorVerb,
    e: &(impl std::error::Error + 'static),
) -> StorageError<C::NodeId> {
    StorageIOError::new(ErrorSubject::Logs, verb, e).into()
}

/// A storage error writing the vote.
pub(crate) fn vote<C: RaftTypeConfig>(
    verb: ErrorVerb,
    e: &(impl std::error::Error + 'static),
) -> StorageError<C::NodeId> {
    StorageIOError::new(ErrorSubject::Vote, verb, e).into()
}

/// A storage error from a message (a broken invariant found on disk).
pub(crate) fn corrupt<C: RaftTypeConfig>(what: String) -> StorageError<C::NodeId> {
    StorageIOError::new(
        ErrorSubject::Logs,
        ErrorVerb::Read,
        openraft::AnyError::error(what),
    )
    .into()
}

/// A blocking task that did not finish (it panicked or was cancelled).
pub(crate) fn join<C: RaftTypeConfig>(e: &tokio::task::JoinError) -> StorageError<C::NodeId> {
    StorageIOError::new(ErrorSubject::Store, ErrorVerb::Write, e).into()
}
