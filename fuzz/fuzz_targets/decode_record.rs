//! The record (versions 2 and 3, with the salted head checksum) and
//! segment-header decoders on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal::fuzzing::{decode_record, decode_segment_header};

fuzz_target!(|data: &[u8]| {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        if let Some(s) = data.get(i * 8..i * 8 + 8) {
            b.copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    };
    // The first 32 bytes are the binding (salt, key hash, sequence,
    // position); bit 0 of the salt picks version 2 or 3.
    let rest = data.get(32..).unwrap_or(&[]);
    let binding = [word(0), word(1), word(2), word(3)];
    decode_record(rest, binding[0] & 1 == 1, binding);
    decode_segment_header(data);
});
