//! Publishing a batch as one chain of messages.
//!
//! Every message carries `Nats-Expected-Last-Sequence`: the stream sequence
//! of the message published before it (the stream's last sequence for the
//! first message after a resync). JetStream stores a message only if that
//! holds, so if one message is not stored (refused, lost, or dropped as a
//! duplicate), no later message of the chain is stored either: the stream
//! never holds a record of a key without every earlier exported record of
//! the key before it. No message is ever deleted (a deleted message's
//! `Nats-Msg-Id` would stay in the duplicate window and drop the record
//! when it is published again).

use async_nats::jetstream::{self, context::PublishErrorKind};
use nano_wal::{EntryRef, Record};

use crate::error::ExportError;
use crate::message::{message_size, publish_of};

/// One record on its way.
pub(crate) struct Message<'a> {
    /// Which of the exporter's keys it belongs to.
    pub feed: usize,
    pub key: &'a [u8],
    pub subject: &'a str,
    pub record: &'a Record,
}

/// How a batch ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Every message was stored.
    Complete,
    /// The chain broke where JetStream says another message came first
    /// (`WrongLastSequence`) or the record was already in its duplicate
    /// window: the exporter must look at the stream again (`why` says
    /// what, if it gives up).
    Broken { why: ExportError },
    /// Stop with this error.
    Failed(ExportError),
}

/// What publishing a batch did.
#[derive(Debug)]
pub(crate) struct Settled {
    /// Per feed, the last record stored (all before it of the batch were).
    pub positions: Vec<(usize, EntryRef)>,
    /// Messages stored.
    pub stored: u64,
    pub ending: Ending,
}

impl Settled {
    fn set(&mut self, feed: usize, at: EntryRef) {
        match self.positions.iter_mut().find(|(f, _)| *f == feed) {
            Some(slot) => slot.1 = at,
            None => self.positions.push((feed, at)),
        }
    }
}

/// The chain: the stream sequence the next message must follow.
#[derive(Debug)]
pub(crate) struct Chain {
    last_sequence: u64,
}

fn lossy(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl Chain {
    /// A chain that continues after the stream's message `last_sequence`.
    pub fn after(last_sequence: u64) -> Self {
        Self { last_sequence }
    }

    /// Publish `messages` (at most the context's ack permits), each
    /// expecting the one before it, then await their acknowledgements in
    /// order, stopping at the first that is not a fresh store.
    pub async fn publish(
        &mut self,
        js: &jetstream::Context,
        messages: &[Message<'_>],
        max_payload: usize,
    ) -> Settled {
        let mut pending = Vec::with_capacity(messages.len());
        let mut send_error = None;
        for (k, m) in messages.iter().enumerate() {
            let size = message_size(m.record);
            if size > max_payload {
                send_error = Some(ExportError::RecordTooLarge {
                    key: lossy(m.key),
                    entry_ref: m.record.entry_ref,
                    size,
                    max: max_payload,
                });
                break;
            }
            let message =
                publish_of(m.record).expected_last_sequence(self.last_sequence + k as u64);
            match js.send_publish(m.subject.to_owned(), message).await {
                Ok(ack) => pending.push(ack),
                Err(e) => {
                    send_error = Some(publish_error(m, e));
                    break;
                }
            }
        }
        let mut settled = Settled {
            positions: Vec::new(),
            stored: 0,
            ending: Ending::Complete,
        };
        for (m, ack) in messages.iter().zip(pending) {
            match ack.await {
                Ok(ack) if !ack.duplicate => {
                    self.last_sequence = ack.sequence;
                    settled.stored += 1;
                    settled.set(m.feed, m.record.entry_ref);
                }
                Ok(ack) => {
                    let why = ExportError::Duplicate {
                        key: lossy(m.key),
                        entry_ref: m.record.entry_ref,
                        sequence: ack.sequence,
                    };
                    settled.ending = Ending::Broken { why };
                    return settled;
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    let why = publish_error(m, e);
                    settled.ending = Ending::Broken { why };
                    return settled;
                }
                Err(e) => {
                    settled.ending = Ending::Failed(publish_error(m, e));
                    return settled;
                }
            }
        }
        if let Some(e) = send_error {
            settled.ending = Ending::Failed(e);
        }
        settled
    }
}

fn publish_error(m: &Message<'_>, e: impl Into<async_nats::Error>) -> ExportError {
    ExportError::Publish {
        key: lossy(m.key),
        entry_ref: m.record.entry_ref,
        source: e.into(),
    }
}
