//! The manifest's decoder on arbitrary bytes, as they are and with a valid
//! header sealed over them (so the body's decoder is reached).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal::fuzzing::decode_manifest;

fuzz_target!(|data: &[u8]| {
    decode_manifest(data, false);
    decode_manifest(data, true);
});
