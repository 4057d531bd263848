//! No global lock: while one key's write is stalled inside the file system,
//! appends and reads on other keys complete (0.5 made every thread wait on
//! one `Mutex<Wal>`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

#[test]
fn a_stalled_key_does_not_block_other_keys() -> Result<(), WalError> {
    let dir = tempfile::tempdir()?;
    let (storage, faults) = common::FaultyStorage::create();
    let wal = Arc::new(Wal::builder(dir.path()).storage(storage).open()?);
    wal.append_entry("slowkey", None, Bytes::from("first"), false)?;
    let fast_ref = wal.append_entry("fastkey", None, Bytes::from("first"), false)?;

    *faults
        .stall_writes_to
        .lock()
        .map_err(|_| WalError::Closed)? = Some("slowkey".into());
    let writes_before = faults.writes.load(Ordering::SeqCst);
    let (done_tx, done_rx) = mpsc::channel();
    let slow = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            let r = wal.append_entry("slowkey", None, Bytes::from("stalled"), false);
            done_tx.send(()).ok();
            r
        })
    };
    // Wait until the slow append is inside its write.
    while faults.writes.load(Ordering::SeqCst) == writes_before {
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..100 {
        wal.append_entry("fastkey", None, Bytes::from(format!("{i}")), false)?;
        wal.append_entry(format!("new{i}"), None, Bytes::from("x"), false)?;
    }
    assert_eq!(wal.read_entry_at(fast_ref)?, "first");
    assert_eq!(wal.enumerate_records("fastkey")?.count(), 101);
    assert!(
        done_rx.try_recv().is_err(),
        "the slow append is still stalled"
    );

    *faults
        .stall_writes_to
        .lock()
        .map_err(|_| WalError::Closed)? = None;
    slow.join().map_err(|_| WalError::Closed)??;
    assert_eq!(wal.enumerate_records("slowkey")?.count(), 2);
    Ok(())
}
