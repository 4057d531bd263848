//! Damage to the header of the newest journal file, when frames follow it,
//! is corruption: opening refuses with `CorruptedData` and leaves the file
//! in place. (Only a newest file holding nothing but zeros after a bad
//! header is a creation a crash cut short, removed: the crash simulations
//! cover that at every step of a journal file's creation.)

use bytes::Bytes;
use nano_wal::{Wal, WalError};

fn newest_journal(dir: &std::path::Path) -> std::io::Result<Option<std::path::PathBuf>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("nano-wal.journal-"))
        })
        .collect();
    names.sort();
    Ok(names.pop())
}

#[test]
fn a_damaged_header_before_frames_is_corruption_not_a_torn_creation()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let wal = Wal::builder(dir.path()).open()?;
    for i in 0..20 {
        wal.append_entry("k", None, Bytes::from(format!("r{i}")), true)?;
    }
    // A crash: the journal holds the frames.
    drop(wal);
    let path = newest_journal(dir.path())?.ok_or("no journal file")?;
    let mut bytes = std::fs::read(&path)?;
    bytes[20] ^= 0x40;
    std::fs::write(&path, &bytes)?;
    let opened = Wal::builder(dir.path()).open();
    assert!(
        matches!(opened, Err(WalError::CorruptedData(_))),
        "opened over a damaged journal header: {:?}",
        opened.as_ref().err()
    );
    assert!(path.exists(), "the damaged journal file was removed");
    Ok(())
}
