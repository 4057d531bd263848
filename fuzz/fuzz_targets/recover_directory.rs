//! Recovery over an arbitrary directory: the input is a list of files,
//! each `[kind u8][sequence u8][length u16 LE][bytes]`; the kind names a
//! segment, a journal file or a manifest (`any_file_name`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal_sim::arbitrary_dir::{any_file_name, disk_with, open_and_read_everything};

fuzz_target!(|data: &[u8]| {
    let mut files = Vec::new();
    let mut rest = data;
    while let [key, seq, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        files.push((any_file_name(*key, *seq), tail[..len].to_vec()));
        rest = &tail[len..];
        if files.len() >= 8 {
            break;
        }
    }
    open_and_read_everything(&disk_with(&files));
});
