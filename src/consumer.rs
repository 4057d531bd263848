//! Durable consumer positions: [`Consumer`].
//!
//! A consumer's positions are records of one reserved key,
//! `nano-wal/consumers/<name>`: each commit appends the consumed key (as
//! the record's header) and the committed reference (its printed form, as
//! the content), durably. Opening a consumer reads that key once; now and
//! then the whole table is written again as one atomic batch and the older
//! records are purged, so the key stays short.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use crate::entry_ref::EntryRef;
use crate::error::{Result, WalError};
use crate::subscribe::Subscription;
use crate::wal::Wal;

/// Consumer positions live under keys with this prefix (kept forever by
/// retention; removed by [`Wal::remove_consumer`]).
pub const CONSUMER_KEY_PREFIX: &str = "nano-wal/consumers/";

/// Commits between two rewrites of the table.
const COMMITS_PER_REWRITE: u64 = 1024;

/// A named consumer's durable positions, one per key it reads
/// ([`Wal::consumer`]). Cheap to clone; clones share the positions. It
/// holds a handle to the log: the log closes when its last handle,
/// consumers included, is closed or dropped.
#[derive(Debug)]
pub struct Consumer {
    wal: Wal,
    name: String,
    storage_key: String,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    positions: BTreeMap<Vec<u8>, EntryRef>,
    commits_since_rewrite: u64,
}

/// The key holding consumer `name`'s positions, if the name is valid.
fn storage_key(name: &str) -> Result<String> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > 200 {
        "is longer than 200 bytes"
    } else if name.contains('/') {
        "contains '/'"
    } else {
        return Ok(format!("{CONSUMER_KEY_PREFIX}{name}"));
    };
    Err(WalError::InvalidConfig(format!(
        "consumer name {name:?} {why}"
    )))
}

/// A position must be a record of its key.
fn check_position(key: &[u8], entry_ref: EntryRef) -> Result<()> {
    if entry_ref.key_hash == crate::key::key_hash(key) {
        return Ok(());
    }
    Err(WalError::EntryNotFound(format!(
        "{entry_ref}: not a record of key {}",
        String::from_utf8_lossy(key)
    )))
}

impl Clone for Consumer {
    fn clone(&self) -> Self {
        Self {
            wal: self.wal.clone_handle(),
            name: self.name.clone(),
            storage_key: self.storage_key.clone(),
            state: self.state.clone(),
        }
    }
}

impl Consumer {
    pub(crate) fn open(wal: &Wal, name: &str) -> Result<Self> {
        let storage_key = storage_key(name)?;
        let mut state = State::default();
        for r in wal.records(&storage_key)? {
            let r = r?;
            let (Some(key), Ok(text)) = (r.header, std::str::from_utf8(&r.content)) else {
                return Err(WalError::CorruptedData(format!(
                    "consumer {name}: position record {} is malformed",
                    r.entry_ref
                )));
            };
            let at = text.parse::<EntryRef>().map_err(|e| {
                WalError::CorruptedData(format!("consumer {name}: record {}: {e}", r.entry_ref))
            })?;
            state.positions.insert(key.to_vec(), at);
        }
        Ok(Self {
            wal: wal.clone_handle(),
            name: name.to_owned(),
            storage_key,
            state: Arc::new(Mutex::new(state)),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last reference committed for `key`, if any.
    pub fn position<K: AsRef<[u8]>>(&self, key: K) -> Option<EntryRef> {
        self.state().positions.get(key.as_ref()).copied()
    }

    /// Every key with a committed position, and the position.
    pub fn positions(&self) -> Vec<(Vec<u8>, EntryRef)> {
        self.state()
            .positions
            .iter()
            .map(|(k, r)| (k.clone(), *r))
            .collect()
    }

    /// Durably record that the consumer has processed `key` through
    /// `entry_ref`; returns once it would survive a power loss.
    ///
    /// # Errors
    /// [`WalError::EntryNotFound`] if `entry_ref` is not a record of `key`;
    /// write errors.
    pub fn commit<K: AsRef<[u8]>>(&self, key: K, entry_ref: EntryRef) -> Result<()> {
        self.commit_all([(key, entry_ref)])
    }

    /// Durably record several positions at once, as one atomic batch (one
    /// fsync, shared with other writers): every position is committed or,
    /// after a crash, none is. Later pairs for the same key win.
    ///
    /// # Errors
    /// As [`Consumer::commit`]; on an error no position is changed.
    pub fn commit_all<K, I>(&self, positions: I) -> Result<()>
    where
        K: AsRef<[u8]>,
        I: IntoIterator<Item = (K, EntryRef)>,
    {
        let positions: Vec<(Vec<u8>, EntryRef)> = positions
            .into_iter()
            .map(|(k, r)| (k.as_ref().to_vec(), r))
            .collect();
        for (key, entry_ref) in &positions {
            check_position(key, *entry_ref)?;
        }
        if positions.is_empty() {
            return Ok(());
        }
        let mut st = self.state();
        let batch = positions.iter().map(|(k, r)| {
            (
                self.storage_key.as_str(),
                Some(Bytes::copy_from_slice(k)),
                Bytes::from(r.to_string()),
            )
        });
        self.wal.append_batch(batch, true)?;
        st.commits_since_rewrite += positions.len() as u64;
        st.positions.extend(positions);
        if st.commits_since_rewrite >= COMMITS_PER_REWRITE {
            self.rewrite(&mut st)?;
        }
        Ok(())
    }

    /// Write the whole table as one atomic batch, then purge the records
    /// before it (a crash in between leaves both; the newest wins).
    fn rewrite(&self, st: &mut State) -> Result<()> {
        let batch: Vec<(&str, Option<Bytes>, Bytes)> = st
            .positions
            .iter()
            .map(|(k, r)| {
                (
                    self.storage_key.as_str(),
                    Some(Bytes::copy_from_slice(k)),
                    Bytes::from(r.to_string()),
                )
            })
            .collect();
        let refs = self.wal.append_batch(batch, true)?;
        if let Some(first) = refs.first() {
            self.wal.purge_before(*first)?;
        }
        st.commits_since_rewrite = 0;
        Ok(())
    }

    /// Follow `key` from the record after the committed position (from the
    /// key's first record if none was committed).
    ///
    /// # Errors
    /// [`WalError::PositionRemoved`] if the committed position was removed
    /// (retention, a purge, a truncation): the records after it may be
    /// gone, so the consumer is told instead of skipping them. Start again
    /// with [`Wal::subscribe`] from a position of your choosing.
    pub fn subscribe<K: AsRef<[u8]>>(&self, key: K) -> Result<Subscription> {
        let key = key.as_ref();
        match self.position(key) {
            None => self.wal.subscribe(key, None),
            Some(at) => self.wal.subscribe_after(key, at).map_err(|e| match e {
                WalError::EntryNotFound(why) => WalError::PositionRemoved(format!(
                    "consumer {}: its position {at} in key {} is gone ({why}); records after \
                     it may have been removed before it read them",
                    self.name,
                    String::from_utf8_lossy(key)
                )),
                other => other,
            }),
        }
    }
}

impl Wal {
    /// The durable positions of consumer `name` (created on first use):
    /// one committed [`EntryRef`] per key it reads, surviving reopen.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let wal = nano_wal::Wal::builder(dir.path()).open()?;
    /// let r = wal.append_entry("orders", None, bytes::Bytes::from("one"), false)?;
    /// let billing = wal.consumer("billing")?;
    /// for record in billing.subscribe("orders")?.take(1) {
    ///     let record = record?;
    ///     // ... process it, then:
    ///     billing.commit("orders", record.entry_ref)?;
    /// }
    /// assert_eq!(billing.position("orders"), Some(r));
    /// # Ok::<(), nano_wal::WalError>(())
    /// ```
    ///
    /// # Errors
    /// A name that is empty, longer than 200 bytes or holds `/`
    /// ([`WalError::InvalidConfig`]); read errors.
    pub fn consumer(&self, name: &str) -> Result<Consumer> {
        Consumer::open(self, name)
    }

    /// Remove consumer `name` and its positions, durably.
    ///
    /// # Errors
    /// As [`Wal::consumer`]; write errors.
    pub fn remove_consumer(&self, name: &str) -> Result<()> {
        let key = storage_key(name)?;
        let first = self.records(&key)?.next().transpose()?;
        match first {
            Some(r) => self.truncate_from(r.entry_ref),
            None => Ok(()),
        }
    }
}
