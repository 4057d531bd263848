//! Recovery over an arbitrary directory: the input is a list of files,
//! each `[key u8][sequence u8][length u16 LE][bytes]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal_sim::arbitrary_dir::{disk_with, open_and_read_everything, segment_name};

fuzz_target!(|data: &[u8]| {
    let mut files = Vec::new();
    let mut rest = data;
    while let [key, seq, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        files.push((segment_name(*key % 4, *seq), tail[..len].to_vec()));
        rest = &tail[len..];
        if files.len() >= 8 {
            break;
        }
    }
    open_and_read_everything(&disk_with(&files));
});
