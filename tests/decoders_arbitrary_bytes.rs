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

/// The journal and the manifest (FORMAT.md §11 and §12).
mod journal_and_manifest {
    use nano_wal::Wal;
    use nano_wal::fuzzing::{
        decode_journal_frame, decode_journal_header, decode_manifest, encode_journal_header,
    };
    use proptest::prelude::*;

    /// One operation's bytes as FORMAT.md §11 lays them out.
    fn op_bytes(tag: u8, key_hash: u64, sequence: u64, position: u64, data: &[u8]) -> Vec<u8> {
        let mut b = vec![tag];
        b.extend_from_slice(&key_hash.to_le_bytes());
        b.extend_from_slice(&sequence.to_le_bytes());
        match tag {
            1 => {
                let name = format!("k-{key_hash}-{sequence:04}.log");
                b.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
                b.extend_from_slice(name.as_bytes());
                b.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
                b.extend_from_slice(data);
            }
            2 => {
                b.extend_from_slice(&position.to_le_bytes());
                b.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
                b.extend_from_slice(data);
            }
            4 | 5 => b.extend_from_slice(&position.to_le_bytes()),
            _ => {}
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn journal_headers_round_trip_and_every_bit_flip_is_caught(
            seq in any::<u64>(), salt in any::<u64>(), first in any::<u64>(),
            flip in 0usize..48 * 8,
        ) {
            let mut bytes = encode_journal_header(seq, salt, first);
            prop_assert!(decode_journal_header(&bytes));
            bytes[flip / 8] ^= 1 << (flip % 8);
            prop_assert!(!decode_journal_header(&bytes));
        }

        #[test]
        fn frames_of_arbitrary_payloads_never_panic(
            mut payload in prop::collection::vec(any::<u8>(), 0..512),
            ops in 0u32..8, number in any::<u64>(), place in any::<[u64; 3]>(),
            tag in 1u8..7,
        ) {
            if let Some(first) = payload.first_mut() {
                *first = tag;
            }
            decode_journal_frame(&payload, ops, number, place);
        }

        #[test]
        fn well_formed_frames_decode_to_their_operations(
            ops in prop::collection::vec(
                (1u8..6, any::<u64>(), any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 1..64)),
                1..12,
            ),
            number in any::<u64>(), place in any::<[u64; 3]>(),
        ) {
            let payload: Vec<u8> = ops
                .iter()
                .flat_map(|(tag, h, s, p, data)| op_bytes(*tag, *h, *s, *p, data))
                .collect();
            let n = u32::try_from(ops.len()).unwrap_or(0);
            prop_assert_eq!(decode_journal_frame(&payload, n, number, place), Some(ops.len()));
            // A wrong operation count, or a payload cut short, is refused.
            prop_assert_eq!(decode_journal_frame(&payload, n + 1, number, place), None);
            prop_assert_eq!(decode_journal_frame(&payload[..payload.len() - 1], n, number, place), None);
        }

        #[test]
        fn manifests_of_arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..1024), seal in any::<bool>(),
        ) {
            decode_manifest(&bytes, seal);
        }
    }

    /// A manifest a real close wrote decodes and re-encodes to its bytes;
    /// a flipped bit anywhere in it is refused.
    #[test]
    fn a_real_manifest_round_trips_and_every_bit_flip_is_caught()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let wal = Wal::builder(dir.path()).max_segment_bytes(4096).open()?;
        for i in 0..200u32 {
            let key = format!("key-{}", i % 7);
            wal.append_entry(
                key.as_str(),
                None,
                bytes::Bytes::from(format!("record {i}")),
                false,
            )?;
        }
        wal.close()?;
        let mut manifests = Vec::new();
        for e in std::fs::read_dir(dir.path())? {
            let e = e?;
            if e.file_name()
                .to_string_lossy()
                .starts_with("nano-wal.manifest")
            {
                manifests.push(std::fs::read(e.path())?);
            }
        }
        assert!(!manifests.is_empty(), "close wrote no manifest");
        for bytes in manifests {
            assert!(decode_manifest(&bytes, false));
            for bit in (0..bytes.len() * 8).step_by(7) {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    !decode_manifest(&flipped, false),
                    "bit {bit} flipped was accepted"
                );
            }
        }
        Ok(())
    }
}
