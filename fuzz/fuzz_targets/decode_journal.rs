//! The journal's decoders on arbitrary bytes: the file header, and a frame
//! around an arbitrary payload, sealed for its place so the operations'
//! decoder is reached. The input is `[op count u32][frame number u64]
//! [salt u64][file sequence u64][position u64]` then the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal::fuzzing::{decode_journal_frame, decode_journal_header};

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    decode_journal_header(data);
    if data.len() < 36 {
        return;
    }
    let ops = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let number = u64_at(data, 4);
    let place = [u64_at(data, 12), u64_at(data, 20), u64_at(data, 28)];
    decode_journal_frame(&data[36..], ops, number, place);
});
