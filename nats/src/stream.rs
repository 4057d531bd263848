//! The JetStream side: the stream the export writes to, and what it
//! already holds of a key.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::{Config, LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, context::GetStreamErrorKind};
use nano_wal::EntryRef;

use crate::config::ExportConfig;
use crate::error::ExportError;
use crate::message::decode_message;

/// The export's stream: the existing one, if its only subject is
/// `PREFIX.>`, or a new one with that subject and the configured
/// duplicate window.
pub(crate) async fn open_stream(
    js: &jetstream::Context,
    config: &ExportConfig,
) -> Result<Stream, ExportError> {
    let name = &config.stream;
    let prefix = &config.subject_prefix;
    let mut stream = match js.get_stream(name).await {
        Ok(stream) => stream,
        Err(e) if is_not_found(&e) => {
            let created = js
                .create_stream(Config {
                    name: name.clone(),
                    subjects: vec![format!("{prefix}.>")],
                    duplicate_window: config.duplicate_window,
                    ..Config::default()
                })
                .await
                .map_err(|e| ExportError::nats(format!("creating stream {name}"), e))?;
            return Ok(created);
        }
        Err(e) => return Err(ExportError::nats(format!("looking up stream {name}"), e)),
    };
    let info = stream
        .info()
        .await
        .map_err(|e| ExportError::nats(format!("stream {name}'s information"), e))?;
    let ours = format!("{prefix}.>");
    let why = if info.config.subjects != [ours.clone()] {
        format!(
            "its subjects are {:?}, not exactly [{ours:?}]: the export needs a stream no one \
             else publishes to (one stream per exported log)",
            info.config.subjects
        )
    } else if info.config.sealed {
        "it is sealed".to_owned()
    } else {
        return Ok(stream);
    };
    Err(ExportError::Stream {
        stream: name.clone(),
        why,
    })
}

fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// The reference and stream sequence of the last message the stream holds
/// for `subject`, if any.
pub(crate) async fn last_exported(
    stream: &Stream,
    config: &ExportConfig,
    subject: &str,
) -> Result<Option<(EntryRef, u64)>, ExportError> {
    let message = match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => m,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(e) => {
            return Err(ExportError::nats(
                format!("the last message of {subject} in stream {}", config.stream),
                e,
            ));
        }
    };
    let decoded = decode_message(
        &config.subject_prefix,
        message.subject.as_str(),
        Some(&message.headers),
        message.payload.clone(),
    )
    .map_err(|why| ExportError::ForeignMessage {
        stream: config.stream.clone(),
        sequence: message.sequence,
        subject: message.subject.to_string(),
        why,
    })?;
    Ok(Some((decoded.entry_ref, message.sequence)))
}
