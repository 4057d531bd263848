//! How a record becomes a JetStream message, and back.
//!
//! | record | message |
//! |---|---|
//! | key | subject `PREFIX.<token>` ([`crate::subject`]) |
//! | `EntryRef` | header `Nats-Msg-Id`, printed form `key_hash:sequence:offset` |
//! | header (if any) | header `Nano-Wal-Header`, standard base64 with padding (empty for an empty header) |
//! | timestamp (if any) | header `Nano-Wal-Timestamp-Ms`, decimal milliseconds since the Unix epoch |
//! | content | payload, unchanged |

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage as Publish;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use nano_wal::{EntryRef, Record};

use crate::subject::key_of_subject;

/// The NATS header that carries a record's header, base64-encoded.
pub const RECORD_HEADER: &str = "Nano-Wal-Header";
/// The NATS header that carries a record's append time.
pub const TIMESTAMP_HEADER: &str = "Nano-Wal-Timestamp-Ms";
/// JetStream's deduplication header: the record's reference.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The message for `record`.
pub(crate) fn publish_of(record: &Record) -> Publish {
    let mut message = Publish::build()
        .payload(record.content.clone())
        .message_id(record.entry_ref.to_string());
    if let Some(header) = &record.header {
        message = message.header(RECORD_HEADER, STANDARD.encode(header).as_str());
    }
    if let Some(ms) = record.timestamp_unix_ms {
        message = message.header(TIMESTAMP_HEADER, ms.to_string().as_str());
    }
    message
}

/// Bytes a record's message takes against the server's `max_payload`
/// (payload and headers, a little over rather than under: the fixed part
/// covers the header block with every number at 20 digits).
pub(crate) fn message_size(record: &Record) -> usize {
    const FIXED: usize = 256;
    let header = record
        .header
        .as_ref()
        .map_or(0, |h| h.len().div_ceil(3) * 4);
    FIXED + header + record.content.len()
}

/// A message the exporter wrote, read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportedMessage {
    /// The record's key, from the subject.
    pub key: Vec<u8>,
    /// The record's reference, from `Nats-Msg-Id`.
    pub entry_ref: EntryRef,
    /// The record's header, if it had one.
    pub header: Option<Bytes>,
    /// The record's append time, if it had one.
    pub timestamp_unix_ms: Option<u64>,
    /// The record's content.
    pub content: Bytes,
}

/// Decode a message of subject `subject` under `prefix`; `Err` says why
/// it is not one the exporter wrote.
///
/// # Errors
/// A subject outside the prefix or that no key maps to, a missing or
/// malformed `Nats-Msg-Id`, a reference of another key, or a malformed
/// `Nano-Wal-Header` or `Nano-Wal-Timestamp-Ms`.
pub fn decode_message(
    prefix: &str,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<ExportedMessage, String> {
    let key = key_of_subject(prefix, subject)
        .ok_or_else(|| format!("subject {subject:?} names no key under {prefix:?}"))?;
    let get = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    // Parsed names of JetStream's own headers are "standard" names, which
    // a plain string does not find.
    let id = headers
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_owned())
        .ok_or("no Nats-Msg-Id header")?;
    let entry_ref: EntryRef = id.parse().map_err(|e| format!("Nats-Msg-Id: {e}"))?;
    if entry_ref.key_hash != nano_wal::key_hash(&key) {
        return Err(format!(
            "Nats-Msg-Id {id} is not a reference of key {:?}",
            String::from_utf8_lossy(&key)
        ));
    }
    let header = match get(RECORD_HEADER) {
        None => None,
        Some(text) => Some(Bytes::from(
            STANDARD
                .decode(text.as_bytes())
                .map_err(|e| format!("{RECORD_HEADER}: {e}"))?,
        )),
    };
    let timestamp_unix_ms = match get(TIMESTAMP_HEADER) {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|e| format!("{TIMESTAMP_HEADER} {text:?}: {e}"))?,
        ),
    };
    Ok(ExportedMessage {
        key,
        entry_ref,
        header,
        timestamp_unix_ms,
        content: payload,
    })
}
