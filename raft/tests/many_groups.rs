//! 100 Raft groups in one WAL: appends, truncations (conflict resolution),
//! purges (after a snapshot), votes and committed ids for every group, then
//! a reopen, after which every group reads back exactly what it held.

use std::sync::Arc;

use nano_wal_raft::{LogStore, Request, TypeConfig, wal_for_raft};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const GROUPS: u64 = 100;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, group: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request {
            key: format!("g{group}"),
            value: format!("{group}:{term}:{index}").into_bytes(),
        }),
    }
}

/// What group `g` must hold after the script below: entries
/// `first..=last`, with the term each was written in.
fn expected(g: u64) -> (u64, Vec<LogId<u64>>) {
    let (truncate_at, purge_through) = (20 + g % 10, g % 15);
    let mut ids: Vec<LogId<u64>> = (0..truncate_at).map(|i| log_id(1, i)).collect();
    ids.extend((truncate_at..40).map(|i| log_id(2, i)));
    let kept = ids.split_off(usize::try_from(purge_through + 1).unwrap_or(0));
    (purge_through, kept)
}

async fn script(store: &mut LogStore<TypeConfig>, g: u64) -> TestResult {
    let (truncate_at, purge_through) = (20 + g % 10, g % 15);
    store
        .blocking_append((0..30).map(|i| entry(1, i, g)))
        .await?;
    // A new leader overwrites the tail from `truncate_at` on.
    store.truncate(log_id(1, truncate_at)).await?;
    store
        .blocking_append((truncate_at..40).map(|i| entry(2, i, g)))
        .await?;
    store.save_vote(&Vote::new(2, g)).await?;
    store.save_committed(Some(log_id(2, 35))).await?;
    let purge_id = if purge_through < truncate_at {
        log_id(1, purge_through)
    } else {
        log_id(2, purge_through)
    };
    store.purge(purge_id).await?;
    Ok(())
}

async fn check(store: &mut LogStore<TypeConfig>, g: u64) -> TestResult {
    let (purge_through, ids) = expected(g);
    let state = store.get_log_state().await?;
    assert_eq!(state.last_log_id, ids.last().copied(), "group {g}");
    assert_eq!(
        state.last_purged_log_id.map(|l| l.index),
        Some(purge_through),
        "group {g}"
    );
    let entries = store.try_get_log_entries(0..).await?;
    let got: Vec<LogId<u64>> = entries.iter().map(|e| e.log_id).collect();
    assert_eq!(got, ids, "group {g}");
    for e in &entries {
        let EntryPayload::Normal(req) = &e.payload else {
            return Err(format!("group {g}: entry {} is not a request", e.log_id).into());
        };
        let want = format!("{g}:{}:{}", e.log_id.leader_id.term, e.log_id.index);
        assert_eq!(req.value, want.into_bytes(), "group {g}");
    }
    assert_eq!(store.read_vote().await?, Some(Vote::new(2, g)), "group {g}");
    let mid = store.try_get_log_entries(30..33).await?;
    assert_eq!(
        mid.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        [30, 31, 32],
        "group {g}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_groups_share_one_wal_and_survive_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let wal = Arc::new(wal_for_raft(dir.path()).open()?);
        let mut tasks = Vec::new();
        for g in 0..GROUPS {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                let mut store = LogStore::<TypeConfig>::open(wal, &format!("group-{g}")).await?;
                script(&mut store, g).await?;
                check(&mut store, g).await
            }));
        }
        for t in tasks {
            t.await?.map_err(|e| e.to_string())?;
        }
        // No close(): like a crash, the reopen replays the journal.
    }
    let wal = Arc::new(wal_for_raft(dir.path()).open()?);
    wal.compact()?;
    for g in 0..GROUPS {
        let mut store = LogStore::<TypeConfig>::open(wal.clone(), &format!("group-{g}")).await?;
        check(&mut store, g).await?;
    }
    Ok(())
}
