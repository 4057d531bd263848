//! Shared by the exporter's tests: a log with known records, and the
//! check that a stream holds exactly those records, once, in order per key.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal};
use nano_wal_nats::ExportedMessage;
use nano_wal_nats::async_nats;
use nano_wal_nats::testing::NatsServer;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A real nats-server, a client connected to it, and an empty directory
/// for a log; the server stops when it is dropped.
pub struct Fixture {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let server = NatsServer::start()?;
        let client = async_nats::connect(server.url()).await?;
        let dir = tempfile::tempdir()?;
        Ok(Self {
            server,
            client,
            dir,
        })
    }

    /// A builder for the log in this fixture's directory.
    pub fn wal_builder(&self) -> nano_wal::WalBuilder {
        Wal::builder(self.dir.path())
    }
}

/// One record as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key: Vec<u8>,
    pub entry_ref: EntryRef,
    pub header: Option<Bytes>,
    pub content: Bytes,
}

/// Append `n` records per key, round robin; every third has a header
/// (every ninth an empty one).
pub fn write(wal: &Wal, keys: &[&str], n: usize) -> Result<Vec<Written>, nano_wal::WalError> {
    let mut out = Vec::new();
    for i in 0..n {
        for key in keys {
            let header = match i % 9 {
                0 => Some(Bytes::new()),
                3 | 6 => Some(Bytes::from(format!("h{i}\n\0\u{ff}"))),
                _ => None,
            };
            let content = Bytes::from(format!("{key} record {i}"));
            let entry_ref = wal.append_entry(*key, header.clone(), content.clone(), false)?;
            out.push(Written {
                key: key.as_bytes().to_vec(),
                entry_ref,
                header,
                content,
            });
        }
    }
    Ok(out)
}

/// The stream holds exactly `written`, each once, in order per key.
pub fn assert_exactly_once(messages: &[(u64, ExportedMessage)], written: &[Written]) {
    let mut want: BTreeMap<&[u8], Vec<&Written>> = BTreeMap::new();
    for w in written {
        want.entry(w.key.as_slice()).or_default().push(w);
    }
    let mut got: BTreeMap<&[u8], Vec<&ExportedMessage>> = BTreeMap::new();
    for (_, m) in messages {
        got.entry(m.key.as_slice()).or_default().push(m);
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "keys in the stream"
    );
    for (key, want) in &want {
        let got = &got[key];
        assert_eq!(
            got.len(),
            want.len(),
            "messages of key {:?}",
            String::from_utf8_lossy(key)
        );
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                g.entry_ref,
                w.entry_ref,
                "message {i} of key {:?}",
                String::from_utf8_lossy(key)
            );
            assert_eq!(g.header, w.header, "header of {}", w.entry_ref);
            assert_eq!(g.content, w.content, "content of {}", w.entry_ref);
            assert!(
                g.timestamp_unix_ms.is_some(),
                "timestamp of {}",
                w.entry_ref
            );
        }
    }
}
