//! A small in-memory state machine and the type configuration used by the
//! tests, the examples and the `raft-node` binary.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

/// A command: append `value` to the records of `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The key the record is appended under.
    pub key: String,
    /// The record's content.
    pub value: Vec<u8>,
}

/// What applying an entry returns: its Raft index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Response {
    /// The entry's Raft index.
    pub index: u64,
}

openraft::declare_raft_types!(
    /// The Raft types of this crate: [`Request`] in, [`Response`] out, `u64`
    /// node ids, `BasicNode` addresses.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// What the state machine holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Data {
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, openraft::BasicNode>,
    /// Applied records by key, in order.
    records: BTreeMap<String, Vec<Vec<u8>>>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Data,
    snapshot: Option<(SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// An in-memory state machine: each applied [`Request`] appends its value
/// to its key. Snapshots are the whole state as JSON. Cheap to clone
/// (clones share the state).
#[derive(Debug, Clone, Default)]
pub struct MemStateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl MemStateMachine {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The records applied under `key`, in order.
    pub fn records(&self, key: &str) -> Vec<Vec<u8>> {
        self.lock()
            .data
            .records
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

/// The meta of a state machine's `built`-th snapshot, taken after
/// `last_applied` (shared by the state machines of this crate).
pub(crate) fn snapshot_meta(
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, openraft::BasicNode>,
    built: u64,
) -> SnapshotMeta<u64, openraft::BasicNode> {
    let last = last_applied.map_or_else(|| "none".to_owned(), |l| l.to_string());
    SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id: format!("{last}-{built}"),
    }
}

/// A snapshot of `bytes`.
pub(crate) fn snapshot_of(
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    bytes: Vec<u8>,
) -> Snapshot<TypeConfig> {
    Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(bytes)),
    }
}

fn snapshot_error(e: &serde_json::Error) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Snapshot(None), ErrorVerb::Write, e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let mut inner = self.lock();
        let bytes = serde_json::to_vec(&inner.data).map_err(|e| snapshot_error(&e))?;
        inner.snapshots_built += 1;
        let meta = snapshot_meta(
            inner.data.last_applied,
            inner.data.last_membership.clone(),
            inner.snapshots_built,
        );
        inner.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(snapshot_of(meta, bytes))
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<u64>>,
            StoredMembership<u64, openraft::BasicNode>,
        ),
        StorageError<u64>,
    > {
        let inner = self.lock();
        Ok((inner.data.last_applied, inner.data.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for e in entries {
            inner.data.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(req) => {
                    inner
                        .data
                        .records
                        .entry(req.key)
                        .or_default()
                        .push(req.value);
                }
                EntryPayload::Membership(m) => {
                    inner.data.last_membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(Response {
                index: e.log_id.index,
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let data: Data = serde_json::from_slice(&bytes).map_err(|e| snapshot_error(&e))?;
        let mut inner = self.lock();
        inner.data = data;
        inner.data.last_applied = meta.last_log_id;
        inner.data.last_membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let inner = self.lock();
        Ok(inner
            .snapshot
            .as_ref()
            .map(|(meta, bytes)| snapshot_of(meta.clone(), bytes.clone())))
    }
}
