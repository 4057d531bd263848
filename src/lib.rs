#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
mod async_wal;
mod cache;
mod clock;
mod consumer;
mod cursor;
mod engine;
mod entry_ref;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
mod iter;
mod journal;
mod key;
mod keylog;
mod marker;
mod metrics;
mod notify;
mod options;
mod origin;
mod recovery;
mod retention;
mod rules;
mod segment;
pub mod storage;
mod subscribe;
mod tail;
mod trim;
mod wal;
mod watermark;

#[cfg(feature = "tokio")]
pub use async_wal::{AsyncWal, RecordStream};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consumer::{CONSUMER_KEY_PREFIX, Consumer};
pub use entry_ref::{EntryRef, ParseEntryRefError, Record, RecordView};
pub use error::{IoFailure, PoisonCause, Result, WalError};
pub use format::{MAX_CONTENT_BYTES, MAX_HEADER_BYTES, MAX_KEY_BYTES};
pub use iter::{Contents, Records};
pub use key::key_hash;
pub use marker::FSYNC_FAILED_FILE_NAME;
pub use metrics::Metrics;
pub use options::{
    DEFAULT_JOURNAL_CHECKPOINT_BYTES, DEFAULT_MAX_OPEN_FILES, DEFAULT_MAX_SEGMENT_BYTES,
    DEFAULT_MAX_UNAPPLIED_BYTES, KeyRetention, MIN_JOURNAL_CHECKPOINT_BYTES, MIN_SEGMENT_BYTES,
    RecoveryMode, WalBuilder, WalOptions,
};
pub use recovery::{RecoveryReport, TornTail};
pub use subscribe::Subscription;
pub use wal::{LOCK_FILE_NAME, Wal};
