//! A truncation that lands after a checkpoint took its snapshot and before
//! it synced the truncated segment: the checkpoint syncs what is left and
//! finishes (it used to sync that segment again and again, waiting for an
//! end the cut had removed), and reopening after a crash shows the cut.
//! A storage wrapper holds the sync of another key's segment, which the
//! checkpoint syncs first (it goes in key-hash order, one at a time).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::held::{HeldStorage, Hold, checkpoint_held_while, key_in};
use nano_wal::Wal;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_checkpoint_finishes_when_a_truncation_cuts_a_segment_it_is_about_to_sync() -> TestResult {
    let dir = tempfile::tempdir()?;
    let held = key_in("held", 0..u64::MAX / 4)?;
    let cut = key_in("cut", u64::MAX / 4 * 3..u64::MAX)?;
    let (gate, storage) = HeldStorage::holding(format!("{held}-"), Hold::Syncs);
    let wal = Arc::new(
        Wal::builder(dir.path())
            .storage(storage)
            .background_checkpoints(false)
            .journal_checkpoint_bytes(4096)
            .open()?,
    );
    wal.append_entry(held.as_str(), None, Bytes::from("h0"), false)?;
    let refs: Vec<_> = (0..5)
        .map(|i| wal.append_entry(cut.as_str(), None, Bytes::from(format!("k{i}")), false))
        .collect::<Result<_, _>>()?;
    // A large append makes a checkpoint due and runs it: it snapshots both
    // keys, then waits in the held key's segment sync, while the cut key's
    // segment is cut below the snapshot's end.
    checkpoint_held_while(&wal, &gate, 5000, || wal.truncate_from(refs[2]))?;
    assert_eq!(wal.metrics().checkpoint_failures, 0);
    // A crash: the handle goes without its closing checkpoint.
    drop(Arc::try_unwrap(wal).map_err(|_| "handle still shared")?);
    let wal = Wal::builder(dir.path()).open()?;
    let left: Vec<Bytes> = wal.enumerate_records(cut.as_str())?.collect();
    assert_eq!(left, ["k0", "k1"], "truncated from the third record");
    let held_records: Vec<Bytes> = wal.enumerate_records(held.as_str())?.collect();
    assert_eq!(held_records, ["h0"]);
    Ok(())
}
