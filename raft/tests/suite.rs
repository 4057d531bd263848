//! openraft's storage conformance suite (`Suite::test_all`, 30-odd tests of
//! log state, reads, truncation, purging, votes, membership and
//! snapshots) against a `LogStore` on a fresh WAL per test.

use std::sync::Arc;

use nano_wal_raft::{LogStore, MemStateMachine, TypeConfig, wal_for_raft};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, MemStateMachine, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig>, MemStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let wal = wal_for_raft(dir.path())
            .open()
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let store = LogStore::open(Arc::new(wal), "suite").await?;
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[test]
fn openraft_storage_suite_passes() -> Result<(), Box<StorageError<u64>>> {
    Suite::test_all(Builder).map_err(Box::new)
}
