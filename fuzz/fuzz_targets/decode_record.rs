//! The record and segment-header decoders on arbitrary bytes.
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
    let rest = data.get(24..).unwrap_or(&[]);
    decode_record(rest, word(0), word(1), word(2));
    decode_segment_header(data);
});
