//! [openraft](https://docs.rs/openraft/0.9) log storage on nano-wal.
//!
//! One Raft group is one key of a shared [`nano_wal::Wal`] (its log) plus a
//! second key for its state (the vote, the committed log id and the last
//! purged log id). Many groups share one WAL, and so one journal: the
//! durable appends of every group waiting at the same moment are covered by
//! one fdatasync.
//!
//! - [`LogStore`] implements openraft's `RaftLogStorage` and
//!   `RaftLogReader` (storage API v2) and passes
//!   `openraft::testing::Suite::test_all`.
//! - [`MemStateMachine`] is a small in-memory state machine for tests and
//!   examples.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use nano_wal_raft::{LogStore, TypeConfig, wal_for_raft};
//!
//! let wal = Arc::new(wal_for_raft("raft-data").open()?);
//! let group_7: LogStore<TypeConfig> = LogStore::open(wal.clone(), "group-7").await?;
//! # Ok(()) }
//! ```

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its StorageError by value; the helpers here pass it through"
)]

mod error;
mod index;
mod log_store;
mod state;
mod state_machine;

#[cfg(feature = "node")]
pub mod node;

pub use log_store::{KEY_PREFIX, LogStore, wal_for_raft};
pub use state_machine::{MemStateMachine, Request, Response, TypeConfig};
