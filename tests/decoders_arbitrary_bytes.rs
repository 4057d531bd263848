//! The decoders on arbitrary bytes (stable-Rust companion of the fuzz
//! targets): they never panic, never read past their input, and a record
//! that verifies re-encodes to exactly its bytes.

use nano_wal::fuzzing::{decode_record, decode_segment_header, decode_v1_record, encode_record};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_verifies(bytes in prop::collection::vec(any::<u8>(), 0..2048), h in any::<u64>(), s in any::<u64>(), p in any::<u64>()) {
        // A CRC32C match by chance is a 1 in 2^32 event per case.
        prop_assert!(!decode_record(&bytes, h, s, p));
    }

    #[test]
    fn records_round_trip_and_every_bit_flip_is_caught(
        header in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        content in prop::collection::vec(any::<u8>(), 0..256),
        ts in any::<u64>(), h in any::<u64>(), s in any::<u64>(), p in any::<u64>(),
        trailing in prop::collection::vec(any::<u8>(), 0..32),
        flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let mut bytes = encode_record(header.as_deref(), &content, ts, h, s, p);
        let len = bytes.len();
        bytes.extend_from_slice(&trailing);
        prop_assert!(decode_record(&bytes, h, s, p), "a fresh record verifies");
        prop_assert!(!decode_record(&bytes, h, s, p.wrapping_add(1)), "bound to its position");
        bytes[flip.index(len)] ^= 1 << bit;
        prop_assert!(!decode_record(&bytes, h, s, p), "a flipped bit is caught");
    }

    #[test]
    fn segment_header_decoder(mut bytes in prop::collection::vec(any::<u8>(), 0..600), v2 in any::<bool>()) {
        // Half the inputs start like a real header, so the deeper checks run.
        if bytes.len() >= 16 {
            bytes[..8].copy_from_slice(b"NANO-LOG");
            bytes[8..16].copy_from_slice(&(if v2 { 2u64 } else { 0 }).to_le_bytes());
        }
        decode_segment_header(&bytes);
    }

    #[test]
    fn v1_record_decoder(mut bytes in prop::collection::vec(any::<u8>(), 0..2048), magic in any::<bool>()) {
        if magic && bytes.len() >= 6 {
            bytes[..6].copy_from_slice(b"NANORC");
        }
        decode_v1_record(&bytes);
    }
}
