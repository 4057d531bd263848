//! Export a [nano-wal](nano_wal) log into a NATS JetStream stream, exactly
//! once per record and in order per key.
//!
//! Each record of key `K` becomes one message on subject
//! `PREFIX.<token of K>` ([`subject`]), with the record's [`EntryRef`](nano_wal::EntryRef)
//! as its `Nats-Msg-Id`, its header and append time as NATS headers and
//! its content as the payload ([`message`]).
//!
//! **Exactly once.** A key has at most one message in flight (many keys
//! are published at once), and each message expects the stream sequence
//! of the key's previous message (`Nats-Expected-Last-Subject-Sequence`),
//! known from the stream or from JetStream's acknowledgement: JetStream
//! stores it only if the key's subject still ends there. The stream
//! therefore holds, per key, the key's records in order without a gap,
//! each once, even if a killed run's message arrives late or two exporters
//! race; the one that is refused reads the stream again. A run (and a
//! restart after any crash) resumes each key after the later of its last
//! message in the stream and the cursor's committed position
//! ([`ExportConfig::cursor`]). The `nano-wal export nats` command runs the
//! same exporter.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::atomic::AtomicBool;
//! let wal = nano_wal::Wal::builder("./events").open()?;
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let config = nano_wal_nats::ExportConfig::new("EVENTS", "events").cursor("to-nats");
//! let report = nano_wal_nats::Exporter::new(&wal, client, config)
//!     .await?
//!     .run(&AtomicBool::new(false))
//!     .await?;
//! println!("{} records exported", report.published);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod export;
pub mod message;
mod publish;
mod stream;
pub mod subject;
pub mod testing;

pub use async_nats;
pub use config::ExportConfig;
pub use error::ExportError;
pub use export::{ExportReport, Exporter};
pub use message::{ExportedMessage, decode_message};
