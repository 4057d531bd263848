//! The decoders on arbitrary bytes (stable-Rust companion of the fuzz
//! targets): they never panic, never read past their input, and a record
//! that verifies re-encodes to exactly its bytes.

use nano_wal::fuzzing::{decode_record, decode_segment_header, decode_v1_record, encode_record};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_verifies(bytes in prop::collection::vec(any::<u8>(), 0..2048), salt in any::<u64>(), h in any::<u64>(), s in any::<u64>(), p in any::<u64>(), v2 in any::<bool>()) {
        // A CRC32C match by chance is a 1 in 2^32 event per case.
        prop_assert!(!decode_record(&bytes, v2, [salt, h, s, p]));
    }

    #[test]
    fn records_round_trip_and_every_bit_flip_is_caught(
        header in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        content in prop::collection::vec(any::<u8>(), 0..256),
        ts in any::<u64>(), salt in any::<u64>(), h in any::<u64>(), s in any::<u64>(), p in any::<u64>(),
        trailing in prop::collection::vec(any::<u8>(), 0..32),
        flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let mut bytes = encode_record(header.as_deref(), &content, ts, [salt, h, s, p]);
        let len = bytes.len();
        bytes.extend_from_slice(&trailing);
        prop_assert!(decode_record(&bytes, false, [salt, h, s, p]), "a fresh record verifies");
        prop_assert!(!decode_record(&bytes, false, [salt, h, s, p.wrapping_add(1)]), "bound to its position");
        prop_assert!(!decode_record(&bytes, false, [salt.wrapping_add(1), h, s, p]), "bound to its salt");
        prop_assert!(!decode_record(&bytes, true, [salt, h, s, p]), "never read as version 2");
        bytes[flip.index(len)] ^= 1 << bit;
        prop_assert!(!decode_record(&bytes, false, [salt, h, s, p]), "a flipped bit is caught");
    }

    #[test]
    fn segment_header_decoder(mut bytes in prop::collection::vec(any::<u8>(), 0..600), version in 0u64..4) {
        // The inputs start like a real header, so the deeper checks run.
        if bytes.len() >= 16 {
            bytes[..8].copy_from_slice(b"NANO-LOG");
            bytes[8..16].copy_from_slice(&version.to_le_bytes());
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
