//! The JetStream side: the stream the export writes to, and what it
//! already holds of a key.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::{Config, LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, context::GetStreamErrorKind};
use nano_wal::EntryRef;

use crate::config::ExportConfig;
use crate::error::ExportError;
use crate::message::decode_message;

/// Whether subject filter `filter` (with `*` and `>` wildcards) matches
/// every subject `prefix.<anything>`.
fn covers(filter: &str, prefix: &str) -> bool {
    let mut filter = filter.split('.');
    for token in prefix.split('.') {
        match filter.next() {
            Some(">") => return true,
            Some("*") => {}
            Some(t) if t == token => {}
            _ => return false,
        }
    }
    filter.next() == Some(">") && filter.next().is_none()
}

/// The export's stream: the existing one, if its subjects cover
/// `PREFIX.>`, or a new one with those subjects and the configured
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
    if !info.config.subjects.iter().any(|f| covers(f, prefix)) {
        return Err(ExportError::Stream {
            stream: name.clone(),
            why: format!(
                "its subjects {:?} do not cover {prefix}.> (one stream per exported log and prefix)",
                info.config.subjects
            ),
        });
    }
    Ok(stream)
}

fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// The reference of the last message the stream holds for `subject`, if
/// any.
pub(crate) async fn last_exported(
    stream: &Stream,
    config: &ExportConfig,
    subject: &str,
) -> Result<Option<EntryRef>, ExportError> {
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
    Ok(Some(decoded.entry_ref))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn filters_that_cover_a_prefix() {
        assert!(covers("wal.>", "wal"));
        assert!(covers(">", "wal"));
        assert!(covers("*.>", "wal"));
        assert!(covers("a.>", "a.b"));
        assert!(covers("a.*.>", "a.b"));
        assert!(!covers("wal.*", "wal"), "only one token");
        assert!(!covers("wal", "wal"));
        assert!(!covers("other.>", "wal"));
        assert!(!covers("a.b.c.>", "a.b"));
        assert!(!covers("wal.>.x", "wal"));
    }
}
