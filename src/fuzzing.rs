//! Entry points for fuzz targets and property tests: the decoders, fed
//! arbitrary bytes. Not part of the stable API.

use crate::format::record::{self, Binding, RecordVersion};
use crate::format::{legacy, segment_header};

/// Decode a version-3 record (`v2` false) or a version-2 one from arbitrary
/// bytes, at an arbitrary place. Returns whether it verified. Must never
/// panic or allocate more than the input holds.
pub fn decode_record(bytes: &[u8], v2: bool, binding: [u64; 4]) -> bool {
    let [salt, key_hash, sequence, position] = binding;
    let binding = Binding {
        salt,
        key_hash,
        sequence,
        position,
    };
    let version = if v2 {
        RecordVersion::V2
    } else {
        RecordVersion::V3
    };
    match record::decode(version, bytes, binding) {
        Ok(d) if version == RecordVersion::V3 => {
            // A verified record re-encodes to exactly the bytes it came from.
            let mut again = Vec::new();
            record::encode(&mut again, d.header, d.content, d.fixed.timestamp_ms);
            record::seal(&mut again, binding);
            assert_eq!(
                again.as_slice(),
                &bytes[..again.len()],
                "re-encoding differs"
            );
            // Under another salt it does not verify: a salt one bit apart
            // is a single-bit difference, which CRC32C always detects.
            let other = Binding {
                salt: salt ^ 1,
                ..binding
            };
            assert!(
                record::decode(version, bytes, other).is_err(),
                "the salt is not part of the checksum"
            );
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Decode a segment header of any version from arbitrary bytes.
pub fn decode_segment_header(bytes: &[u8]) -> bool {
    match segment_header::decode(bytes) {
        Ok(h) => {
            assert!(h.len <= bytes.len(), "header longer than its bytes");
            assert!(h.key.len() <= crate::MAX_KEY_BYTES);
            let again = segment_header::encode(&segment_header::NewHeader {
                key: &h.key,
                key_hash: h.key_hash.unwrap_or(0),
                sequence: h.sequence.unwrap_or(0),
                created_ms: h.created_ms,
                rotate_at_ms: h.rotate_at_ms,
                salt: h.salt,
            });
            if h.version == crate::format::FORMAT_VERSION_CURRENT {
                assert_eq!(again.as_slice(), &bytes[..h.len], "re-encoding differs");
            }
            true
        }
        Err(_) => false,
    }
}

/// Decode a version-1 (nano-wal 0.5) record from arbitrary bytes.
pub fn decode_v1_record(bytes: &[u8]) -> bool {
    match legacy::decode(bytes) {
        Ok(d) => {
            assert!(d.total_len <= bytes.len(), "record longer than its bytes");
            true
        }
        Err(_) => false,
    }
}

/// Encode a version-3 record for the given place (salt, key hash,
/// sequence, position); for property tests and fuzz seeds.
pub fn encode_record(
    header: Option<&[u8]>,
    content: &[u8],
    timestamp_ms: u64,
    binding: [u64; 4],
) -> Vec<u8> {
    let [salt, key_hash, sequence, position] = binding;
    let mut out = Vec::new();
    record::encode(&mut out, header, content, timestamp_ms);
    record::seal(
        &mut out,
        Binding {
            salt,
            key_hash,
            sequence,
            position,
        },
    );
    out
}
