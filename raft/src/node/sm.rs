//! The state machine of `raft-node`: a nano-wal [`Wal`]. Each committed
//! entry's record is appended under the entry's key, in the same atomic
//! batch as the state machine's own record (the last applied log id and
//! membership), so after a crash the records and the applied id agree and
//! no entry is applied twice.

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use nano_wal::Wal;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::state_machine::{snapshot_meta, snapshot_of};
use crate::{KEY_PREFIX, Response, TypeConfig};

/// The key of the state machine's own records.
const APPLIED_KEY: &str = "raft/sm/applied";
/// The key holding the snapshot being installed (its last record).
const SNAPSHOT_KEY: &str = "raft/sm/snapshot";

/// The state machine's record: what has been applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// A snapshot was being installed: the user keys may be half replaced.
    /// Opening installs it again from the last record of `SNAPSHOT_KEY`.
    installing: bool,
}

/// A snapshot's bytes: every user key's records and what was applied.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    applied: Applied,
    records: Vec<(String, Vec<Vec<u8>>)>,
}

#[derive(Debug, Default)]
struct Meta {
    applied: Applied,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
    snapshots_installed: u64,
}

/// The node's state machine over a shared [`Wal`] (cheap to clone).
#[derive(Debug, Clone)]
pub struct WalStateMachine {
    wal: Arc<Wal>,
    meta: Arc<Mutex<Meta>>,
    /// Held by `apply` while it writes and publishes what it applied, and
    /// by the snapshot builder while it reads, so a snapshot's records and
    /// its last applied id agree (openraft builds snapshots in a task of
    /// their own, concurrently with `apply`). Lock order: before `meta`.
    applying: Arc<Mutex<()>>,
}

fn sm_error(verb: ErrorVerb, e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, e).into()
}

/// Whether `key` belongs to the application (not to this crate).
pub fn is_user_key(key: &str) -> bool {
    !key.starts_with(KEY_PREFIX)
}

impl WalStateMachine {
    /// Open the state machine stored in `wal`.
    ///
    /// # Errors
    /// WAL errors; an undecodable state record.
    pub fn open(wal: Arc<Wal>) -> Result<Self, StorageError<u64>> {
        let mut applied: Applied = match wal
            .last_record(APPLIED_KEY)
            .map_err(|e| sm_error(ErrorVerb::Read, &e))?
        {
            Some(r) => {
                serde_json::from_slice(&r.content).map_err(|e| sm_error(ErrorVerb::Read, &e))?
            }
            None => Applied::default(),
        };
        if applied.installing {
            // A crash during an install: do it again, from the snapshot it
            // saved durably before changing anything.
            let saved = wal
                .last_record(SNAPSHOT_KEY)
                .map_err(|e| sm_error(ErrorVerb::Read, &e))?
                .ok_or_else(|| {
                    sm_error(ErrorVerb::Read, &std::io::Error::other("no saved snapshot"))
                })?;
            let data: SnapshotData = serde_json::from_slice(&saved.content)
                .map_err(|e| sm_error(ErrorVerb::Read, &e))?;
            applied = data.applied.clone();
            replace_user_keys(&wal, data)?;
        }
        Ok(Self {
            wal,
            meta: Arc::new(Mutex::new(Meta {
                applied,
                ..Meta::default()
            })),
            applying: Arc::new(Mutex::new(())),
        })
    }

    fn meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Snapshots installed from a leader since this process started.
    pub fn snapshots_installed(&self) -> u64 {
        self.meta().snapshots_installed
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.meta().applied.last_applied
    }

    fn applied_record(
        applied: &Applied,
    ) -> Result<(String, Option<Bytes>, Bytes), StorageError<u64>> {
        let bytes = serde_json::to_vec(applied).map_err(|e| sm_error(ErrorVerb::Write, &e))?;
        Ok((APPLIED_KEY.to_owned(), None, Bytes::from(bytes)))
    }
}

/// Replace every user key's records with the snapshot's, and record what
/// it applied (durably).
fn replace_user_keys(wal: &Wal, data: SnapshotData) -> Result<(), StorageError<u64>> {
    clear_user_keys(wal)?;
    let mut batch: Vec<(String, Option<Bytes>, Bytes)> = Vec::new();
    for (key, contents) in data.records {
        for c in contents {
            batch.push((key.clone(), None, Bytes::from(c)));
        }
    }
    batch.push(WalStateMachine::applied_record(&data.applied)?);
    wal.append_batch(batch, true)
        .map_err(|e| sm_error(ErrorVerb::Write, &e))?;
    Ok(())
}

/// Remove every record of every user key (before installing a snapshot).
fn clear_user_keys(wal: &Wal) -> Result<(), StorageError<u64>> {
    let keys = wal.keys().map_err(|e| sm_error(ErrorVerb::Read, &e))?;
    for key in keys {
        if !is_user_key(&String::from_utf8_lossy(&key)) {
            continue;
        }
        let first = wal
            .records(&key)
            .map_err(|e| sm_error(ErrorVerb::Read, &e))?
            .next()
            .transpose()
            .map_err(|e| sm_error(ErrorVerb::Read, &e))?;
        if let Some(first) = first {
            wal.truncate_from(first.entry_ref)
                .map_err(|e| sm_error(ErrorVerb::Delete, &e))?;
        }
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for WalStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let wal = self.wal.clone();
        let (meta, applying) = (self.meta.clone(), self.applying.clone());
        let data = tokio::task::spawn_blocking(move || -> nano_wal::Result<SnapshotData> {
            // No apply runs while this reads: the records and the applied
            // id are from one moment.
            let _applying = applying.lock().unwrap_or_else(PoisonError::into_inner);
            let applied = meta
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .applied
                .clone();
            let mut records = Vec::new();
            for key in wal.keys()? {
                let name = String::from_utf8_lossy(&key).into_owned();
                if !is_user_key(&name) {
                    continue;
                }
                let contents: Vec<Vec<u8>> = wal
                    .records(&key)?
                    .map(|r| r.map(|r| r.content.to_vec()))
                    .collect::<nano_wal::Result<_>>()?;
                records.push((name, contents));
            }
            Ok(SnapshotData { applied, records })
        })
        .await
        .map_err(|e| sm_error(ErrorVerb::Read, &e))?
        .map_err(|e| sm_error(ErrorVerb::Read, &e))?;
        let bytes = serde_json::to_vec(&data).map_err(|e| sm_error(ErrorVerb::Write, &e))?;
        let mut m = self.meta();
        m.snapshots_built += 1;
        let meta = snapshot_meta(
            data.applied.last_applied,
            data.applied.membership.clone(),
            m.snapshots_built,
        );
        m.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(snapshot_of(meta, bytes))
    }
}

impl RaftStateMachine<TypeConfig> for WalStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let m = self.meta();
        Ok((m.applied.last_applied, m.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.meta().applied.clone();
        let mut batch = Vec::new();
        let mut out = Vec::new();
        for e in entries {
            applied.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                // Keys under this crate's prefix are refused by the HTTP
                // front; one that arrives anyway is not written.
                EntryPayload::Normal(req) if is_user_key(&req.key) => {
                    batch.push((req.key, None, Bytes::from(req.value)));
                }
                EntryPayload::Normal(_) => {}
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(Response {
                index: e.log_id.index,
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        batch.push(Self::applied_record(&applied)?);
        // One atomic batch: the records and the applied id together. Not
        // durable by itself: the Raft log holds the entries, and openraft
        // applies again whatever a crash took.
        let (wal, meta, applying) = (self.wal.clone(), self.meta.clone(), self.applying.clone());
        tokio::task::spawn_blocking(move || -> nano_wal::Result<()> {
            let _applying = applying.lock().unwrap_or_else(PoisonError::into_inner);
            wal.append_batch(batch, false)?;
            meta.lock().unwrap_or_else(PoisonError::into_inner).applied = applied;
            Ok(())
        })
        .await
        .map_err(|e| sm_error(ErrorVerb::Write, &e))?
        .map_err(|e| sm_error(ErrorVerb::Write, &e))?;
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
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let mut data: SnapshotData =
            serde_json::from_slice(&bytes).map_err(|e| sm_error(ErrorVerb::Read, &e))?;
        data.applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            installing: false,
        };
        let wal = self.wal.clone();
        let applied = data.applied.clone();
        let saved = serde_json::to_vec(&data).map_err(|e| sm_error(ErrorVerb::Write, &e))?;
        let (applying, meta_shared) = (self.applying.clone(), self.meta.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StorageError<u64>> {
            let _applying = applying.lock().unwrap_or_else(PoisonError::into_inner);
            // IMPORTANT: the snapshot and then the marker are durable before
            // any user key changes: a crash mid-way installs it again at
            // open, never leaving a mix (or an empty state machine whose
            // log was purged).
            let s = wal
                .append_entry(SNAPSHOT_KEY, None, Bytes::from(saved), true)
                .map_err(|e| sm_error(ErrorVerb::Write, &e))?;
            wal.purge_before(s)
                .map_err(|e| sm_error(ErrorVerb::Write, &e))?;
            let marker = Applied {
                installing: true,
                ..data.applied.clone()
            };
            let (k, h, c) = WalStateMachine::applied_record(&marker)?;
            wal.append_entry(k.as_str(), h, c, true)
                .map_err(|e| sm_error(ErrorVerb::Write, &e))?;
            replace_user_keys(&wal, data)?;
            meta_shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .applied = applied;
            Ok(())
        })
        .await
        .map_err(|e| sm_error(ErrorVerb::Write, &e))??;
        let mut m = self.meta();
        m.snapshot = Some((meta.clone(), bytes));
        m.snapshots_installed += 1;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let m = self.meta();
        Ok(m.snapshot
            .as_ref()
            .map(|(meta, bytes)| snapshot_of(meta.clone(), bytes.clone())))
    }
}
