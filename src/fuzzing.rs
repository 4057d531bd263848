//! Entry points for fuzz targets and property tests: the decoders, fed
//! arbitrary bytes. Not part of the stable API.

use crate::format::journal::{self as jf, FrameBinding, FrameBuf, Op};
use crate::format::manifest;
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

/// Decode a journal file header from arbitrary bytes. One that decodes
/// re-encodes to exactly its bytes.
pub fn decode_journal_header(bytes: &[u8]) -> bool {
    match jf::decode_header(bytes) {
        Ok(h) => {
            assert_eq!(
                jf::encode_header(h).as_slice(),
                &bytes[..jf::JH_LEN],
                "re-encoding differs"
            );
            true
        }
        Err(_) => false,
    }
}

/// A journal file header (for property tests and fuzz seeds).
pub fn encode_journal_header(sequence: u64, salt: u64, first_frame: u64) -> Vec<u8> {
    jf::encode_header(jf::JournalHeader {
        sequence,
        salt,
        first_frame,
    })
    .to_vec()
}

/// Decode a journal frame of arbitrary payload bytes that claims
/// `op_count` operations, sealed for its place (`binding`: salt, file
/// sequence, position) so the operations' decoder is reached. Returns the
/// number of operations if the payload decodes. A frame that decodes
/// re-encodes to exactly its payload, and its head does not verify one
/// byte away from its place. Must never panic or allocate more than the
/// input holds.
pub fn decode_journal_frame(
    payload: &[u8],
    op_count: u32,
    number: u64,
    binding: [u64; 3],
) -> Option<usize> {
    let [salt, file_sequence, position] = binding;
    let place = FrameBinding {
        salt,
        file_sequence,
        position,
    };
    let mut frame = FrameBuf::with_raw_payload(payload, op_count);
    frame.seal_body();
    frame.seal_head(number, place);
    let bytes = frame.bytes();
    let elsewhere = FrameBinding {
        position: position.wrapping_add(1),
        ..place
    };
    assert!(
        jf::decode_head(bytes, elsewhere).is_none(),
        "a frame's head is bound to its position"
    );
    if payload.is_empty() || op_count == 0 {
        assert!(jf::decode_head(bytes, place).is_none(), "an empty frame");
        return None;
    }
    let head = jf::decode_head(bytes, place).expect("a sealed frame's head verifies");
    let ops = jf::decode_ops(&bytes[jf::FH_LEN..], &head).ok()?;
    assert_eq!(reencode(&ops), payload, "re-encoding differs");
    Some(ops.len())
}

/// The payload a list of operations encodes to.
fn reencode(ops: &[Op<'_>]) -> Vec<u8> {
    let mut again = FrameBuf::new_in(Vec::new());
    for op in ops {
        match *op {
            Op::Create {
                key_hash,
                sequence,
                file_name,
                header,
            } => again.push_create(key_hash, sequence, file_name, header),
            Op::Records {
                key_hash,
                sequence,
                position,
                records,
            } => {
                again.push_records(key_hash, sequence, position, records.len());
                again.vec_mut().extend_from_slice(records);
            }
            Op::Remove { key_hash, sequence } => again.push_remove(key_hash, sequence),
            Op::Cut {
                key_hash,
                sequence,
                position,
            } => again.push_cut(key_hash, sequence, position),
            Op::Hide {
                key_hash,
                sequence,
                position,
            } => again.push_hide(key_hash, sequence, position),
        }
    }
    again.bytes()[jf::FH_LEN..].to_vec()
}

/// Decode a manifest from arbitrary bytes; with `seal`, first give them a
/// valid header for their length (magic, version, body length and both
/// checksums, keeping the clean flag and the counts) so the body's decoder
/// is reached. A manifest that decodes re-encodes to exactly its bytes.
pub fn decode_manifest(bytes: &[u8], seal: bool) -> bool {
    let mut b = bytes.to_vec();
    if seal && b.len() >= manifest::MH_LEN {
        b[..manifest::MANIFEST_MAGIC.len()].copy_from_slice(&manifest::MANIFEST_MAGIC);
        put(
            &mut b,
            manifest::MH_VERSION_OFFSET,
            &manifest::MANIFEST_VERSION.to_le_bytes(),
        );
        let at = manifest::MH_FLAGS_OFFSET;
        let flags = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
            & manifest::MANIFEST_FLAG_CLEAN;
        put(&mut b, manifest::MH_FLAGS_OFFSET, &flags.to_le_bytes());
        let body_len = (b.len() - manifest::MH_LEN) as u64;
        put(
            &mut b,
            manifest::MH_BODY_LEN_OFFSET,
            &body_len.to_le_bytes(),
        );
        let body_crc = crc32c::crc32c(&b[manifest::MH_LEN..]);
        put(
            &mut b,
            manifest::MH_BODY_CRC_OFFSET,
            &body_crc.to_le_bytes(),
        );
        let head_crc = crc32c::crc32c(&b[..manifest::MH_HEAD_CRC_OFFSET]);
        put(
            &mut b,
            manifest::MH_HEAD_CRC_OFFSET,
            &head_crc.to_le_bytes(),
        );
    }
    match manifest::decode(&b) {
        Ok(m) => {
            assert_eq!(manifest::encode(&m), b, "re-encoding differs");
            true
        }
        Err(_) => false,
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}
