//! A `purge_before` that removes a whole segment after a checkpoint took
//! its snapshot and before it synced that segment: the checkpoint skips the
//! file that is gone (its removal is in the journal) and finishes, without
//! poisoning any writer, and reopening after a crash shows the purge. A
//! storage wrapper holds the sync of another key's segment, which the
//! checkpoint syncs first (it goes in key-hash order, one at a time).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::held::{HeldStorage, Hold, checkpoint_held_while, key_in};
use nano_wal::Wal;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_checkpoint_skips_a_segment_purged_before_it_is_synced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let held = key_in("held", 0..u64::MAX / 4)?;
    let purged = key_in("purged", u64::MAX / 4 * 3..u64::MAX)?;
    let (gate, storage) = HeldStorage::holding(format!("{held}-"), Hold::Syncs);
    let wal = Arc::new(
        Wal::builder(dir.path())
            .storage(storage)
            .background_checkpoints(false)
            .max_segment_bytes(4096)
            .journal_checkpoint_bytes(16 * 1024)
            .open()?,
    );
    wal.append_entry(held.as_str(), None, Bytes::from("h0"), false)?;
    // Three segments of about 1.5 KiB records, two per segment.
    let refs: Vec<_> = (0..6)
        .map(|i| {
            let content = Bytes::from(format!("p{i}-{}", "y".repeat(1500)));
            wal.append_entry(purged.as_str(), None, content, false)
        })
        .collect::<Result<_, _>>()?;
    assert!(refs[4].sequence_number > refs[0].sequence_number);
    // A large append makes a checkpoint due and runs it: it snapshots both
    // keys, then waits in the held key's segment sync, while the purged
    // key's older segments (in the snapshot, not yet synced) are removed,
    // files and all.
    checkpoint_held_while(&wal, &gate, 17_000, || wal.purge_before(refs[4]))?;
    assert_eq!(wal.metrics().checkpoint_failures, 0);
    // No writer is poisoned.
    wal.append_entry(purged.as_str(), None, Bytes::from("after"), true)?;
    // A crash: the handle goes without its closing checkpoint.
    drop(Arc::try_unwrap(wal).map_err(|_| "handle still shared")?);
    let wal = Wal::builder(dir.path()).open()?;
    let left: Vec<Bytes> = wal.enumerate_records(purged.as_str())?.collect();
    assert_eq!(
        left.len(),
        3,
        "two records from the fifth on, and one after"
    );
    assert!(left[0].starts_with(b"p4-") && left[1].starts_with(b"p5-"));
    assert_eq!(left[2], "after");
    Ok(())
}
