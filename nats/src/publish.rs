//! Publishing: at most one message in flight per key, many keys at once.
//!
//! Every message carries `Nats-Expected-Last-Subject-Sequence`: the stream
//! sequence that the exporter knows holds the key's previous exported
//! record (read from the stream when the key was opened, or taken from
//! JetStream's acknowledgement of the key's previous message; 0 for a key
//! with no message yet). JetStream stores the message only if its
//! subject's last message is still that one. So a message of anyone else
//! on the key's subject (a second exporter, a killed run's message still
//! on its way) makes the exporter's message refused, never stored after a
//! gap, out of order or twice; the exporter then reads the stream again.
//! As a key has at most one message in flight, a refused message has no
//! successor of its key that could be stored behind it. No message is
//! ever deleted.

use async_nats::jetstream::{self, context::PublishErrorKind};
use futures::future::join_all;
use nano_wal::{EntryRef, Record};

use crate::error::{ExportError, lossy};
use crate::message::{message_size, publish_of};

/// One record on its way (at most one per key in a batch).
pub(crate) struct Message<'a> {
    /// Which of the exporter's keys it belongs to.
    pub feed: usize,
    pub key: &'a [u8],
    pub subject: &'a str,
    pub record: &'a Record,
    /// The stream sequence of the key's previous exported record (0: none).
    pub after_sequence: u64,
}

/// A record JetStream stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub feed: usize,
    pub entry_ref: EntryRef,
    /// Its stream sequence.
    pub sequence: u64,
}

/// What publishing a batch did. Every acknowledgement was awaited (none
/// is left in flight).
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub stored: Vec<Stored>,
    /// A key's subject did not end where the exporter thought (another
    /// publisher), or a record was already in the duplicate window: read
    /// the stream again (the first such error, for giving up).
    pub conflict: Option<ExportError>,
    /// The first other failure: stop with it.
    pub error: Option<ExportError>,
}

fn publish_error(m: &Message<'_>, e: impl Into<async_nats::Error>) -> ExportError {
    ExportError::Publish {
        key: lossy(m.key),
        entry_ref: m.record.entry_ref,
        source: e.into(),
    }
}

/// Publish `messages`, then await every acknowledgement together (their
/// timeouts run at once, not one after another).
pub(crate) async fn publish(
    js: &jetstream::Context,
    messages: &[Message<'_>],
    max_payload: usize,
) -> Settled {
    let mut settled = Settled::default();
    let mut sent = Vec::with_capacity(messages.len());
    let mut acks = Vec::with_capacity(messages.len());
    for m in messages {
        let size = message_size(m.record);
        if size > max_payload {
            settled.error.get_or_insert(ExportError::RecordTooLarge {
                key: lossy(m.key),
                entry_ref: m.record.entry_ref,
                size,
                max: max_payload,
            });
            continue;
        }
        let message = publish_of(m.record).expected_last_subject_sequence(m.after_sequence);
        match js.send_publish(m.subject.to_owned(), message).await {
            Ok(ack) => {
                sent.push(m);
                acks.push(ack.into_future());
            }
            Err(e) => {
                settled.error.get_or_insert(publish_error(m, e));
            }
        }
    }
    for (m, result) in sent.into_iter().zip(join_all(acks).await) {
        match result {
            Ok(ack) if !ack.duplicate => settled.stored.push(Stored {
                feed: m.feed,
                entry_ref: m.record.entry_ref,
                sequence: ack.sequence,
            }),
            Ok(ack) => {
                settled.conflict.get_or_insert(ExportError::Duplicate {
                    key: lossy(m.key),
                    entry_ref: m.record.entry_ref,
                    sequence: ack.sequence,
                });
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                settled.conflict.get_or_insert(publish_error(m, e));
            }
            Err(e) => {
                settled.error.get_or_insert(publish_error(m, e));
            }
        }
    }
    settled
}
