//! raft-node's state machine (a `Wal`): a snapshot install that a crash
//! interrupted after its marker is finished at the next open from the
//! snapshot it saved first, never leaving a mix of old and new records.

use std::sync::Arc;

use nano_wal_raft::node::WalStateMachine;
use nano_wal_raft::{Request, TypeConfig, wal_for_raft};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn entry(index: u64, key: &str, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
        }),
    }
}

fn contents(wal: &nano_wal::Wal, key: &str) -> Result<Vec<String>, nano_wal::WalError> {
    wal.records(key)?
        .map(|r| r.map(|r| String::from_utf8_lossy(&r.content).into_owned()))
        .collect()
}

#[tokio::test]
async fn an_interrupted_install_is_finished_at_open() -> TestResult {
    // The leader's state machine and its snapshot.
    let leader_dir = tempfile::tempdir()?;
    let leader_wal = Arc::new(wal_for_raft(leader_dir.path()).open()?);
    let mut leader = WalStateMachine::open(leader_wal.clone())?;
    leader
        .apply([
            entry(1, "orders", "a"),
            entry(2, "orders", "b"),
            entry(3, "users", "u"),
        ])
        .await?;
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await?;
    let bytes = snapshot.snapshot.into_inner();

    // A follower with other records, crashed in the middle of installing
    // it: the snapshot saved, the marker written, one old key cleared.
    let dir = tempfile::tempdir()?;
    {
        let wal = Arc::new(wal_for_raft(dir.path()).open()?);
        let mut sm = WalStateMachine::open(wal.clone())?;
        sm.apply([entry(1, "stale", "x"), entry(2, "orders", "old")])
            .await?;
        let saved: serde_json::Value = serde_json::from_slice(&bytes)?;
        let mut marker = saved["applied"].clone();
        marker["installing"] = serde_json::Value::Bool(true);
        wal.append_entry("raft/sm/snapshot", None, bytes.clone().into(), true)?;
        wal.append_entry(
            "raft/sm/applied",
            None,
            serde_json::to_vec(&marker)?.into(),
            true,
        )?;
        let first = wal.records("stale")?.next().ok_or("no record")??;
        wal.truncate_from(first.entry_ref)?;
    }
    let wal = Arc::new(wal_for_raft(dir.path()).open()?);
    let mut sm = WalStateMachine::open(wal.clone())?;
    assert_eq!(contents(&wal, "orders")?, ["a", "b"]);
    assert_eq!(contents(&wal, "users")?, ["u"]);
    assert!(contents(&wal, "stale")?.is_empty());
    let (applied, _) = sm.applied_state().await?;
    assert_eq!(applied, snapshot.meta.last_log_id);
    // And it goes on applying after the snapshot.
    sm.apply([entry(4, "orders", "c")]).await?;
    assert_eq!(contents(&wal, "orders")?, ["a", "b", "c"]);
    Ok(())
}
