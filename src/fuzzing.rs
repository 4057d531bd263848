//! Entry points for fuzz targets and property tests: the decoders, fed
//! arbitrary bytes. Not part of the stable API.

use crate::format::record::{self, Binding};
use crate::format::{legacy, segment_header};

/// Decode a version-2 record from arbitrary bytes, at an arbitrary place.
/// Returns whether it verified. Must never panic or allocate more than the
/// input holds.
pub fn decode_record(bytes: &[u8], key_hash: u64, sequence: u64, position: u64) -> bool {
    let binding = Binding {
        key_hash,
        sequence,
        position,
    };
    match record::decode(bytes, binding) {
        Ok(d) => {
            // A verified record re-encodes to exactly the bytes it came from.
            let mut again = Vec::new();
            let body = record::encode_body(&mut again, d.header, d.content, d.fixed.timestamp_ms);
            record::seal(&mut again, body, binding);
            assert_eq!(
                again.as_slice(),
                &bytes[..again.len()],
                "re-encoding differs"
            );
            true
        }
        Err(_) => false,
    }
}

/// Decode a segment header of either version from arbitrary bytes.
pub fn decode_segment_header(bytes: &[u8]) -> bool {
    match segment_header::decode(bytes) {
        Ok(h) => {
            assert!(h.len <= bytes.len(), "header longer than its bytes");
            assert!(h.key.len() <= crate::MAX_KEY_BYTES);
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

/// Encode a version-2 record for the given place; for property tests.
pub fn encode_record(
    header: Option<&[u8]>,
    content: &[u8],
    timestamp_ms: u64,
    key_hash: u64,
    sequence: u64,
    position: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    let body = record::encode_body(&mut out, header, content, timestamp_ms);
    record::seal(
        &mut out,
        body,
        Binding {
            key_hash,
            sequence,
            position,
        },
    );
    out
}
