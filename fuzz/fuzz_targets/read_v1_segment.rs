//! The nano-wal 0.5 (version 1) reader: a valid 0.5 segment header followed
//! by arbitrary record bytes, plus the v1 record decoder on raw input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal::fuzzing::decode_v1_record;
use nano_wal_sim::arbitrary_dir::{KEYS, disk_with, open_and_read_everything, segment_name};

fuzz_target!(|data: &[u8]| {
    decode_v1_record(data);
    let key = KEYS[0].as_bytes();
    let mut file = b"NANO-LOG".to_vec();
    file.extend_from_slice(&0u64.to_le_bytes());
    file.extend_from_slice(&u64::MAX.to_le_bytes());
    file.extend_from_slice(&(key.len() as u64).to_le_bytes());
    file.extend_from_slice(key);
    file.extend_from_slice(data);
    open_and_read_everything(&disk_with(&[(segment_name(0, 0), file)]));
});
