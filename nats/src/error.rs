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
    /// The stream exists but cannot hold this export (its subjects are not
    /// exactly `PREFIX.>`, or it is sealed).
    #[error("stream {stream}: {why}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What does not fit.
        why: String,
    },
    /// JetStream did not store a record (refused it, or its
    /// acknowledgement did not come). The record's key had no other
    /// message in flight, so the stream still holds, per key, records in
    /// order without a gap; a new run resumes from what it holds.
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
    /// JetStream dropped a record as a duplicate (its `Nats-Msg-Id` is in
    /// the stream's duplicate window) although the stream does not hold it
    /// after the key's last message, three times in a row: a message of
    /// this export was deleted from the stream, or another publisher used
    /// its id. Publishing it again works once the window has passed.
    #[error(
        "record {entry_ref} of key {key:?} is in stream's duplicate window (sequence {sequence}) but not in the stream after the key's last message"
    )]
    Duplicate {
        /// The record's key (lossy UTF-8).
        key: String,
        /// The record.
        entry_ref: EntryRef,
        /// The stream sequence JetStream named.
        sequence: u64,
    },
    /// A key's subject would be longer than a NATS server accepts.
    #[error("key {key:?}: its subject takes {bytes} bytes; at most {max} are exported")]
    SubjectTooLong {
        /// The key (lossy UTF-8).
        key: String,
        /// The subject's length, in bytes.
        bytes: usize,
        /// The limit, in bytes.
        max: usize,
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

/// A key for messages (lossy UTF-8).
pub(crate) fn lossy(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl ExportError {
    pub(crate) fn nats(what: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        Self::Nats {
            what: what.into(),
            source: source.into(),
        }
    }
}
