//! [`LogStore`]: one Raft group's log and state as two keys of a shared
//! [`Wal`].

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use nano_wal::{EntryRef, KeyRetention, Wal, WalBuilder};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig};
use openraft::{StorageError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error;
use crate::index::Index;
use crate::state::{GroupState, STATE_HEADER};

/// Every key this crate writes starts with this prefix: `raft/<group>/log`
/// and `raft/<group>/state`. [`wal_for_raft`] keeps these keys forever.
pub const KEY_PREFIX: &str = "raft/";

/// An entry record's header: this tag, then the entry's Raft index (u64,
/// little-endian), so the index is rebuilt at open without decoding
/// entries.
const ENTRY_TAG: u8 = b'E';
const ENTRY_HEADER_LEN: usize = 1 + size_of::<u64>();

/// State records kept before older ones are purged.
const STATE_RECORDS_KEPT: u64 = 64;

/// A WAL builder for Raft groups: their keys (under [`KEY_PREFIX`]) are
/// never removed by [`Wal::compact`]; only Raft purges them.
pub fn wal_for_raft(dir: impl AsRef<Path>) -> WalBuilder {
    Wal::builder(dir).key_retention(KEY_PREFIX, KeyRetention::Forever)
}

/// openraft log storage for one Raft group, stored in a shared [`Wal`].
///
/// Cheap to clone (the log reader is a clone). Appends are written at
/// once and made durable by one `Wal::sync` on a blocking thread, which
/// every group syncing at the same moment shares; the vote is durable
/// before `save_vote` returns, and the committed log id is written
/// without waiting (openraft allows losing it).
///
/// Memory: 24 bytes per entry held (its [`EntryRef`]) plus the group's
/// state; nothing per purged entry.
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C: RaftTypeConfig> {
    wal: Arc<Wal>,
    log_key: String,
    state_key: String,
    /// Lock order: taken alone, never held across an `.await` or a WAL
    /// call that waits for an fsync.
    mem: Mutex<Mem<C>>,
}

struct Mem<C: RaftTypeConfig> {
    index: Index,
    /// The log id of the last entry held (meaningful while `index` holds any).
    last_log_id: Option<LogId<C::NodeId>>,
    state: GroupState<C>,
    /// State records written since the older ones were last purged.
    state_records: u64,
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("log_key", &self.inner.log_key)
            .finish_non_exhaustive()
    }
}

fn entry_header(index: u64) -> Bytes {
    let mut h = Vec::with_capacity(ENTRY_HEADER_LEN);
    h.push(ENTRY_TAG);
    h.extend_from_slice(&index.to_le_bytes());
    Bytes::from(h)
}

fn entry_index(header: Option<&[u8]>) -> Option<u64> {
    let h = header?;
    if h.len() != ENTRY_HEADER_LEN || h[0] != ENTRY_TAG {
        return None;
    }
    Some(u64::from_le_bytes(h[1..].try_into().ok()?))
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Open group `group` of `wal`: read its state (the state key's last
    /// record) and rebuild its index (one scan of its log key, reading
    /// record headers only).
    ///
    /// # Errors
    /// A group name with `/`, WAL errors, and entries whose indexes leave
    /// a hole (corruption).
    pub async fn open(wal: Arc<Wal>, group: &str) -> Result<Self, StorageError<C::NodeId>> {
        if group.is_empty() || group.contains('/') {
            return Err(error::corrupt::<C>(format!(
                "group name {group:?} must be non-empty and without '/'"
            )));
        }
        let log_key = format!("{KEY_PREFIX}{group}/log");
        let state_key = format!("{KEY_PREFIX}{group}/state");
        let w = wal.clone();
        let (lk, sk) = (log_key.clone(), state_key.clone());
        let mem = tokio::task::spawn_blocking(move || load::<C>(&w, &lk, &sk))
            .await
            .map_err(|e| error::join::<C>(&e))??;
        Ok(Self {
            inner: Arc::new(Inner {
                wal,
                log_key,
                state_key,
                mem: Mutex::new(mem),
            }),
        })
    }

    fn mem(&self) -> MutexGuard<'_, Mem<C>> {
        self.inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Append the group's whole state as one record, durably or not.
    async fn save_state(
        &mut self,
        change: impl FnOnce(&mut GroupState<C>),
        durable: bool,
    ) -> Result<(), StorageError<C::NodeId>> {
        let (bytes, purge_old) = {
            let mut m = self.mem();
            change(&mut m.state);
            m.state_records += 1;
            let bytes = m
                .state
                .encode()
                .map_err(|e| error::vote::<C>(ErrorVerb::Write, &e))?;
            (bytes, m.state_records >= STATE_RECORDS_KEPT)
        };
        let wal = self.inner.wal.clone();
        let key = self.inner.state_key.clone();
        let purged = tokio::task::spawn_blocking(move || -> nano_wal::Result<bool> {
            let r = wal.append_entry(
                key.as_str(),
                Some(Bytes::from_static(STATE_HEADER)),
                Bytes::from(bytes),
                durable || purge_old,
            )?;
            if purge_old {
                // Only the newest state counts: the older records go, so
                // the key stays short however often the state changes.
                wal.purge_before(r)?;
            }
            Ok(purge_old)
        })
        .await
        .map_err(|e| error::join::<C>(&e))?
        .map_err(|e| error::vote::<C>(ErrorVerb::Write, &e))?;
        if purged {
            self.mem().state_records = 0;
        }
        Ok(())
    }

    /// Run a durable WAL call on a blocking thread.
    async fn blocking(
        &self,
        op: impl FnOnce(&Wal) -> nano_wal::Result<()> + Send + 'static,
        verb: ErrorVerb,
    ) -> Result<(), StorageError<C::NodeId>> {
        let wal = self.inner.wal.clone();
        tokio::task::spawn_blocking(move || op(&wal))
            .await
            .map_err(|e| error::join::<C>(&e))?
            .map_err(|e| error::logs::<C>(verb, &e))
    }

    fn read_entry(&self, index: u64, r: EntryRef) -> Result<C::Entry, StorageError<C::NodeId>> {
        let rec = self
            .inner
            .wal
            .read_record_at(r)
            .map_err(|e| error::logs::<C>(ErrorVerb::Read, &e))?;
        if entry_index(rec.header.as_deref()) != Some(index) {
            return Err(error::corrupt::<C>(format!(
                "{}: record {r} is not entry {index}",
                self.inner.log_key
            )));
        }
        serde_json::from_slice(&rec.content).map_err(|e| error::logs::<C>(ErrorVerb::Read, &e))
    }
}

/// Read a group's state and rebuild its index.
fn load<C>(wal: &Wal, log_key: &str, state_key: &str) -> Result<Mem<C>, StorageError<C::NodeId>>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    let state = GroupState::<C>::load(wal, state_key.as_bytes()).map_err(error::corrupt::<C>)?;
    let purged_through = state.last_purged.as_ref().map(|l| l.index);
    let mut index = Index::default();
    let mut bad = None;
    wal.scan(log_key, |r| {
        let Some(i) = entry_index(r.header) else {
            bad = Some(format!("{log_key}: record {} is not an entry", r.entry_ref));
            return std::ops::ControlFlow::Break(());
        };
        // A crash between saving the purge and removing the entries
        // leaves purged entries behind: they are skipped (and removed
        // by the next purge).
        if purged_through.is_some_and(|p| i <= p) {
            return std::ops::ControlFlow::Continue(());
        }
        if !index.push(i, r.entry_ref) {
            bad = Some(format!("{log_key}: entry {i} follows a hole"));
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    })
    .map_err(|e| error::logs::<C>(ErrorVerb::Read, &e))?;
    if let Some(why) = bad {
        return Err(error::corrupt::<C>(why));
    }
    let last_log_id = match index.last().and_then(|i| index.get(i)) {
        Some(r) => {
            let rec = wal
                .read_record_at(r)
                .map_err(|e| error::logs::<C>(ErrorVerb::Read, &e))?;
            let e: C::Entry = serde_json::from_slice(&rec.content)
                .map_err(|e| error::logs::<C>(ErrorVerb::Read, &e))?;
            Some(e.get_log_id().clone())
        }
        None => None,
    };
    Ok(Mem {
        index,
        last_log_id,
        state,
        state_records: 0,
    })
}

/// The indexes `range` covers, clamped to `first..=last`.
fn clamp(range: &impl RangeBounds<u64>, first: u64, last: u64) -> Option<(u64, u64)> {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    }
    .max(first);
    let hi = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    }
    .min(last);
    (lo <= hi).then_some((lo, hi))
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let refs: Vec<(u64, EntryRef)> = {
            let m = self.mem();
            let (Some(first), Some(last)) = (m.index.first(), m.index.last()) else {
                return Ok(Vec::new());
            };
            match clamp(&range, first, last) {
                Some((lo, hi)) => (lo..=hi)
                    .filter_map(|i| m.index.get(i).map(|r| (i, r)))
                    .collect(),
                None => Vec::new(),
            }
        };
        refs.into_iter()
            .map(|(i, r)| self.read_entry(i, r))
            .collect()
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let m = self.mem();
        let last_purged_log_id = m.state.last_purged.clone();
        let last_log_id = match m.index.last() {
            Some(_) => m.last_log_id.clone(),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let vote = vote.clone();
        self.save_state(|s| s.vote = Some(vote), true).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.mem().state.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.save_state(|s| s.committed = committed, false).await
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.mem().state.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Vec::new();
        let mut ids = Vec::new();
        for e in entries {
            let id = e.get_log_id().clone();
            let bytes =
                serde_json::to_vec(&e).map_err(|err| error::logs::<C>(ErrorVerb::Write, &err))?;
            batch.push((
                self.inner.log_key.clone(),
                Some(entry_header(id.index)),
                Bytes::from(bytes),
            ));
            ids.push(id);
        }
        if let Some(first) = ids.first() {
            let m = self.mem();
            if let Some(last) = m.index.last()
                && first.index != last + 1
            {
                return Err(error::corrupt::<C>(format!(
                    "{}: append of entry {} after entry {last} would leave a hole",
                    self.inner.log_key, first.index
                )));
            }
        }
        // Written at once (readable when this returns) but not waited
        // for: the fsync below covers this batch and every other group's
        // appends made meanwhile.
        let refs = self
            .inner
            .wal
            .append_batch(batch, false)
            .map_err(|e| error::logs::<C>(ErrorVerb::Write, &e))?;
        {
            let mut m = self.mem();
            for (id, r) in ids.iter().zip(refs) {
                if !m.index.push(id.index, r) {
                    return Err(error::corrupt::<C>(format!(
                        "{}: entry {} leaves a hole",
                        self.inner.log_key, id.index
                    )));
                }
            }
            if let Some(last) = ids.last() {
                m.last_log_id = Some(last.clone());
            }
        }
        let wal = self.inner.wal.clone();
        tokio::task::spawn_blocking(move || {
            let synced = wal.sync().map_err(std::io::Error::other);
            callback.log_io_completed(synced);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let (target, before) = {
            let m = self.mem();
            let Some(first) = m.index.first() else {
                return Ok(());
            };
            let from = log_id.index.max(first);
            match m.index.get(from) {
                Some(r) => (
                    r,
                    from.checked_sub(1)
                        .and_then(|i| m.index.get(i).map(|r| (i, r))),
                ),
                None => return Ok(()),
            }
        };
        let last_log_id = match before {
            Some((i, r)) => Some(self.read_entry(i, r)?.get_log_id().clone()),
            None => None,
        };
        // The index first: a reader (a replication task of a leader that
        // stepped down) never asks for an entry that is being removed.
        {
            let mut m = self.mem();
            m.index.truncate_from(log_id.index);
            m.last_log_id = last_log_id;
        }
        self.blocking(move |wal| wal.truncate_from(target), ErrorVerb::Delete)
            .await
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        // IMPORTANT: the purge point is durable before any entry goes, so
        // after a crash in between, open skips the entries it covers.
        let purged = log_id.clone();
        self.save_state(|s| s.last_purged = Some(purged), true)
            .await?;
        let removal = {
            let m = self.mem();
            match (m.index.first(), m.index.last()) {
                (Some(first), Some(last)) if first <= log_id.index => {
                    if log_id.index >= last {
                        m.index.get(first).map(|r| (r, true))
                    } else {
                        m.index.get(log_id.index + 1).map(|r| (r, false))
                    }
                }
                _ => None,
            }
        };
        // The index first, as for `truncate`.
        self.mem().index.purge_through(log_id.index);
        if let Some((r, all)) = removal {
            self.blocking(
                move |wal| {
                    if all {
                        wal.truncate_from(r)
                    } else {
                        wal.purge_before(r)
                    }
                },
                ErrorVerb::Delete,
            )
            .await?;
        }
        Ok(())
    }
}
