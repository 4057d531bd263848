//! A write failure met by the background applier (`max_unapplied_bytes`
//! with background checkpoints) poisons only the key whose tail it was:
//! that key's next append is refused, every record it acknowledged stays
//! readable through the handle, other keys go on, closing reports the
//! failure instead of claiming the tail written, and a reopen replays the
//! journal, so nothing acknowledged is lost.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::FaultyStorage;
use nano_wal::{Wal, WalError};

type Res = Result<(), Box<dyn std::error::Error>>;

fn rec(key: &str, i: usize) -> Bytes {
    Bytes::from(format!("{key}-{i:05}"))
}

fn contents(wal: &Wal, key: &str) -> Result<Vec<Bytes>, WalError> {
    wal.records(key)?.map(|r| r.map(|r| r.content)).collect()
}

#[test]
fn an_applier_write_failure_poisons_its_key_and_loses_nothing() -> Res {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = FaultyStorage::create();
    let wal = Wal::builder(dir.path())
        .storage(storage)
        .max_unapplied_bytes(1 << 20)
        .open()?;
    let (mut doomed, mut fine) = (Vec::new(), Vec::new());
    for i in 0..10 {
        for (key, list) in [("doomed", &mut doomed), ("fine", &mut fine)] {
            wal.append_entry(key, None, rec(key, i), false)?;
            list.push(rec(key, i));
        }
    }
    *faults.fail_writes_to.lock().map_err(|_| "poisoned")? = Some("doomed-".into());

    // The applier writes a tail once it is 50 ms old; until it has met the
    // failure, appends to the key are still buffered and acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let next = rec("doomed", doomed.len());
        match wal.append_entry("doomed", None, next.clone(), false) {
            Ok(_) => doomed.push(next),
            Err(e) => break e,
        }
        assert!(
            Instant::now() < deadline,
            "the applier never met the failure"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        matches!(refused, WalError::Poisoned(_)),
        "expected the key to be poisoned, got {refused:?}"
    );
    assert!(matches!(
        wal.append_entry("doomed", None, rec("doomed", 0), false),
        Err(WalError::Poisoned(_))
    ));

    // Every record the key acknowledged is still readable here, and the
    // other key goes on.
    assert_eq!(contents(&wal, "doomed")?, doomed);
    for i in 10..20 {
        wal.append_entry("fine", None, rec("fine", i), true)?;
        fine.push(rec("fine", i));
    }
    assert_eq!(contents(&wal, "fine")?, fine);

    // Closing must not take the failed tail as written.
    assert!(
        wal.close().is_err(),
        "close claimed the failed tail written"
    );

    // Without the fault, the journal brings every acknowledged record back.
    let wal = Wal::builder(dir.path()).open()?;
    assert_eq!(contents(&wal, "doomed")?, doomed);
    assert_eq!(contents(&wal, "fine")?, fine);
    wal.append_entry("doomed", None, rec("doomed", 99_999), true)?;
    wal.close()?;
    Ok(())
}
