//! Export a [nano-wal](nano_wal) log into a NATS JetStream stream, exactly
//! once per record and in order per key.
//!
//! Each record of key `K` becomes one message on subject
//! `PREFIX.<token of K>` ([`subject`]), with the record's [`EntryRef`](nano_wal::EntryRef)
//! as its `Nats-Msg-Id`, its header and append time as NATS headers and
//! its content as the payload ([`message`]).
//!
//! **Exactly once.** Records of a key are published in order, each message
//! expecting the stream sequence of the one before it
//! (`Nats-Expected-Last-Sequence`), so JetStream stores a message only if
//! every message published before it was stored: the stream holds, per
//! key, the key's records in order without a gap, and a run (or a restart
//! after any crash) resumes after the later of the stream's last message
//! of the key and the cursor's committed position
//! ([`ExportConfig::cursor`]). The `Nats-Msg-Id` deduplication catches
//! what is left: a message a killed exporter sent that the server stores
//! after the new run looked. The `nano-wal export nats` command runs the
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
