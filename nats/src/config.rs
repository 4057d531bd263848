//! [`ExportConfig`]: what to export, where, and how.

use std::time::Duration;

use crate::error::ExportError;
use crate::subject::check_prefix;

/// What an [`Exporter`](crate::Exporter) exports and where.
///
/// ```
/// use std::time::Duration;
/// let config = nano_wal_nats::ExportConfig::new("ORDERS", "wal.orders")
///     .key("orders")
///     .follow(true)
///     .cursor("nats-export")
///     .duplicate_window(Duration::from_secs(600));
/// assert_eq!(config.stream, "ORDERS");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportConfig {
    /// The JetStream stream; created (subjects `PREFIX.>`) if missing.
    pub stream: String,
    /// Records of key `K` are published to `subject_prefix.<token of K>`.
    pub subject_prefix: String,
    /// The keys to export. Default: empty, meaning every key of the log
    /// (except the log's own consumer positions), including keys created
    /// while it follows.
    pub keys: Vec<Vec<u8>>,
    /// Keep exporting records as they are appended, until stopped.
    /// Default: false (export what is there, then return).
    pub follow: bool,
    /// A consumer of the log ([`nano_wal::Wal::consumer`]) in which each
    /// key's exported position is committed after JetStream acknowledges
    /// it (at least every second, and when a run ends); needs a writable
    /// handle. The export resumes after the later of it and the stream's
    /// last message of the key, so it matters when the stream's retention
    /// removed a key's messages. Default: none (the stream alone).
    pub cursor: Option<String>,
    /// The duplicate window of a stream the exporter creates: a record
    /// published again within it (after a crash, before its position was
    /// committed) is stored once. Default: 2 minutes.
    pub duplicate_window: Duration,
    /// Messages published before their acknowledgements are awaited.
    /// Default: 1024.
    pub max_in_flight: usize,
    /// When the resume position of a key is no longer in the log, go on
    /// from the key's oldest record after it instead of stopping with
    /// [`ExportError::PositionRemoved`]. Default: false.
    pub skip_removed: bool,
}

impl ExportConfig {
    /// Export every key into `stream` under `subject_prefix`, once, with
    /// the defaults above.
    pub fn new(stream: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            subject_prefix: subject_prefix.into(),
            keys: Vec::new(),
            follow: false,
            cursor: None,
            duplicate_window: Duration::from_secs(120),
            max_in_flight: 1024,
            skip_removed: false,
        }
    }

    /// Export `key` (call again for more keys).
    #[must_use]
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.keys.push(key.as_ref().to_vec());
        self
    }

    /// See [`ExportConfig::follow`](#structfield.follow).
    #[must_use]
    pub fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// See [`ExportConfig::cursor`](#structfield.cursor).
    #[must_use]
    pub fn cursor(mut self, name: impl Into<String>) -> Self {
        self.cursor = Some(name.into());
        self
    }

    /// See [`ExportConfig::duplicate_window`](#structfield.duplicate_window).
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// See [`ExportConfig::max_in_flight`](#structfield.max_in_flight).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// See [`ExportConfig::skip_removed`](#structfield.skip_removed).
    #[must_use]
    pub fn skip_removed(mut self, skip: bool) -> Self {
        self.skip_removed = skip;
        self
    }

    /// Check every setting.
    ///
    /// # Errors
    /// [`ExportError::InvalidConfig`] naming the first bad setting.
    pub fn check(&self) -> Result<(), ExportError> {
        check_prefix(&self.subject_prefix)?;
        let bad = |why: String| Err(ExportError::InvalidConfig(why));
        let name = &self.stream;
        if name.is_empty()
            || name.len() > 255
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"./\\*>".contains(&b))
        {
            return bad(format!(
                "stream name {name:?}: 1 to 255 printable ASCII bytes, without '.', '/', '\\\\', '*' or '>'"
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 65_536 {
            return bad(format!(
                "max_in_flight {} is not in 1..=65536",
                self.max_in_flight
            ));
        }
        if self.duplicate_window.is_zero() {
            return bad("duplicate_window must be more than zero".into());
        }
        Ok(())
    }
}
