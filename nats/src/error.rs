//! [`ExportError`]: everything that stops an export.

use nano_wal::{EntryRef, WalError};

/// Why an export stopped. Records acknowledged by JetStream before it
/// stopped stay exported; a restart continues after them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A setting is out of range, or settings that do not go together.
    #[error("invalid export configuration: {0}")]
    InvalidConfig(String),
    /// Reading the log, or committing the cursor, failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A request to the NATS server failed (connecting, the stream's
    /// information, a lookup).
    #[error("NATS: {what}")]
    Nats {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },
    /// The stream exists but cannot hold this export (its subjects do not
    /// cover the prefix).
    #[error("stream {stream}: {why}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What does not fit.
        why: String,
    },
    /// JetStream did not acknowledge a record. Records of the same key
    /// that JetStream stored after it were deleted from the stream again,
    /// so the stream still holds, per key, records in order without a gap.
    #[error("publishing record {entry_ref} of key {key:?}")]
    Publish {
        /// The record's key (lossy UTF-8).
        key: String,
        /// The record.
        entry_ref: EntryRef,
        /// JetStream's error.
        #[source]
        source: async_nats::Error,
    },
    /// A record is larger than the server accepts in one message.
    #[error(
        "record {entry_ref} of key {key:?} needs {size} bytes; the server accepts at most {max}"
    )]
    RecordTooLarge {
        /// The record's key (lossy UTF-8).
        key: String,
        /// The record.
        entry_ref: EntryRef,
        /// Its content and headers, in bytes.
        size: usize,
        /// The server's `max_payload`, in bytes.
        max: usize,
    },
    /// The position the export would resume after is no longer in the
    /// log (retention, a purge or a truncation removed it), so records
    /// after it may have been removed before they were exported. Pass
    /// `skip_removed` to go on from the key's oldest record after it.
    #[error(
        "key {key:?}: resume position {position} is no longer in the log; records after it may have been removed before export"
    )]
    PositionRemoved {
        /// The key (lossy UTF-8).
        key: String,
        /// The position: the cursor's, or the stream's last message's.
        position: EntryRef,
    },
    /// A message in the stream under the prefix was not written by this
    /// exporter for this log (a missing or malformed `Nats-Msg-Id`, or a
    /// reference of another key).
    #[error(
        "message {sequence} of stream {stream} ({subject}) was not exported from this log: {why}"
    )]
    ForeignMessage {
        /// The stream.
        stream: String,
        /// The message's stream sequence.
        sequence: u64,
        /// Its subject.
        subject: String,
        /// What is wrong with it.
        why: String,
    },
}

impl ExportError {
    pub(crate) fn nats(what: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        Self::Nats {
            what: what.into(),
            source: source.into(),
        }
    }
}
