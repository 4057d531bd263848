//! A first look: append with and without headers, durably and not, read back
//! by reference, stream a key, reopen after a "crash", and print what the
//! directory holds. Exits non-zero if any check fails.

use bytes::Bytes;
use nano_wal::{Wal, WalError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;

    let plain = wal.append_entry("orders", None, Bytes::from("order #1"), false)?;
    let meta = Some(Bytes::from("content-type=json"));
    let with_header = wal.log_entry("orders", meta.clone(), Bytes::from(r#"{"id":2}"#))?;
    wal.append_batch(
        (0..1000).map(|i| ("clicks", None, Bytes::from(format!("click {i}")))),
        true,
    )?;

    check(wal.read_entry_at(plain)? == "order #1", "read by reference")?;
    let record = wal.read_record_at(with_header)?;
    check(record.header == meta, "the header is read back")?;
    println!(
        "record {} was appended at {:?} ms",
        record.entry_ref, record.timestamp_unix_ms
    );

    let clicks = wal.records("clicks")?.collect::<Result<Vec<_>, _>>()?;
    check(clicks.len() == 1000, "1000 clicks stream back in order")?;
    drop(wal); // no close(): like a crash of the process, nothing is lost

    let wal = Wal::builder(dir.path()).open()?;
    let keys: Vec<String> = wal.enumerate_keys()?.collect();
    println!(
        "after reopen: keys {keys:?}, {} torn tails",
        wal.recovery_report().torn_tails.len()
    );
    check(
        wal.enumerate_records("orders")?.count() == 2,
        "orders survive a reopen",
    )?;
    wal.close()?;
    println!("quickstart: all checks passed");
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), WalError> {
    if ok {
        Ok(())
    } else {
        Err(WalError::CorruptedData(format!("check failed: {what}")))
    }
}
