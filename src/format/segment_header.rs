//! Segment header codec for both versions.
//!
//! Version 2:
//! ```text
//! [magic 8]["version" u32 = 2][key_len u32][key_hash u64][sequence u64]
//! [created_ms u64][rotate_at_ms u64][flags u32][crc32c u32][key]
//! ```
//! The CRC32C covers the 52 bytes before it and the key.
//!
//! Version 1 (nano-wal 0.5):
//! ```text
//! [magic 8][zero u64][expiration_secs u64][key_len u64][key]
//! ```

use super::{
    FORMAT_VERSION_CURRENT, FORMAT_VERSION_LEGACY, MAX_KEY_BYTES, SEGMENT_MAGIC, SH_CRC_OFFSET,
    SH_CREATED_OFFSET, SH_FIXED_LEN, SH_FLAGS_OFFSET, SH_KEY_HASH_OFFSET, SH_KEY_LEN_OFFSET,
    SH_ROTATE_AT_OFFSET, SH_SEQUENCE_OFFSET, SH_VERSION_OFFSET, V1_SH_EXPIRATION_OFFSET,
    V1_SH_FIXED_LEN, V1_SH_KEY_LEN_OFFSET, get_u32, get_u64,
};

/// The decoded header of a segment file of either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// 1 (nano-wal 0.5) or 2.
    pub version: u32,
    pub key: Vec<u8>,
    /// Stored in version 2; for version 1 it comes from the file name.
    pub key_hash: Option<u64>,
    /// Stored in version 2; for version 1 it comes from the file name.
    pub sequence: Option<u64>,
    /// Creation time; unknown (0) for version 1.
    pub created_ms: u64,
    /// Appends at or after this time go to a new segment. Every record in the
    /// segment is older than this, which is what retention relies on.
    pub rotate_at_ms: u64,
    /// Length of the header in bytes; record offsets count from here.
    pub len: usize,
}

/// Why bytes are not a valid segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderDefect {
    /// Fewer bytes than the header needs.
    Short {
        needed: usize,
        have: usize,
    },
    BadMagic,
    UnsupportedVersion(u32),
    KeyTooLong(u64),
    Checksum,
    /// Reserved flag bits are set.
    UnknownFlags(u32),
}

impl std::fmt::Display for HeaderDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderDefect::Short { needed, have } => {
                write!(f, "segment header needs {needed} bytes, file has {have}")
            }
            HeaderDefect::BadMagic => write!(f, "segment magic is not NANO-LOG"),
            HeaderDefect::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            HeaderDefect::KeyTooLong(n) => {
                write!(f, "key length {n} exceeds the limit {MAX_KEY_BYTES}")
            }
            HeaderDefect::Checksum => write!(f, "segment header checksum mismatch"),
            HeaderDefect::UnknownFlags(x) => write!(f, "unknown segment flags {x:#010x}"),
        }
    }
}

/// Most bytes a header of either version can occupy.
pub(crate) const MAX_HEADER_LEN: usize = SH_FIXED_LEN + MAX_KEY_BYTES;
const _: () = assert!(V1_SH_FIXED_LEN <= SH_FIXED_LEN);

/// Encode a version-2 header.
pub(crate) fn encode(
    key: &[u8],
    key_hash: u64,
    sequence: u64,
    created_ms: u64,
    rotate_at_ms: u64,
) -> Vec<u8> {
    debug_assert!(key.len() <= MAX_KEY_BYTES);
    let mut buf = Vec::with_capacity(SH_FIXED_LEN + key.len());
    buf.extend_from_slice(&SEGMENT_MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION_CURRENT.to_le_bytes());
    buf.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(&key_hash.to_le_bytes());
    buf.extend_from_slice(&sequence.to_le_bytes());
    buf.extend_from_slice(&created_ms.to_le_bytes());
    buf.extend_from_slice(&rotate_at_ms.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(buf.len(), SH_CRC_OFFSET);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf), key);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(key);
    buf
}

/// Decode a header of either version from the first bytes of a segment file.
///
/// `bytes` should hold the first [`MAX_HEADER_LEN`] bytes of the file, or the
/// whole file if it is shorter. Never allocates more than the key length,
/// which is checked against [`MAX_KEY_BYTES`] first.
pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderDefect> {
    let short = |needed: usize| HeaderDefect::Short {
        needed,
        have: bytes.len(),
    };
    let magic = bytes
        .get(..SEGMENT_MAGIC.len())
        .ok_or(short(SEGMENT_MAGIC.len()))?;
    if magic != SEGMENT_MAGIC {
        return Err(HeaderDefect::BadMagic);
    }
    let fixed_v1 = bytes.get(..V1_SH_FIXED_LEN).ok_or(short(V1_SH_FIXED_LEN))?;
    match get_u32(fixed_v1, SH_VERSION_OFFSET) {
        // nano-wal 0.5 wrote a u64 zero here; the whole u64 must be zero.
        0 if get_u64(fixed_v1, SH_VERSION_OFFSET) == 0 => decode_v1(bytes, fixed_v1),
        FORMAT_VERSION_CURRENT => decode_v2(bytes),
        other => Err(HeaderDefect::UnsupportedVersion(other)),
    }
}

fn decode_v1(bytes: &[u8], fixed: &[u8]) -> Result<SegmentHeader, HeaderDefect> {
    let key_len = get_u64(fixed, V1_SH_KEY_LEN_OFFSET);
    if key_len > MAX_KEY_BYTES as u64 {
        return Err(HeaderDefect::KeyTooLong(key_len));
    }
    let len = V1_SH_FIXED_LEN
        + usize::try_from(key_len).map_err(|_| HeaderDefect::KeyTooLong(key_len))?;
    let key = bytes.get(V1_SH_FIXED_LEN..len).ok_or(HeaderDefect::Short {
        needed: len,
        have: bytes.len(),
    })?;
    let expiration_secs = get_u64(fixed, V1_SH_EXPIRATION_OFFSET);
    Ok(SegmentHeader {
        version: FORMAT_VERSION_LEGACY,
        key: key.to_vec(),
        key_hash: None,
        sequence: None,
        created_ms: 0,
        rotate_at_ms: expiration_secs.saturating_mul(1000),
        len,
    })
}

fn decode_v2(bytes: &[u8]) -> Result<SegmentHeader, HeaderDefect> {
    let fixed = bytes.get(..SH_FIXED_LEN).ok_or(HeaderDefect::Short {
        needed: SH_FIXED_LEN,
        have: bytes.len(),
    })?;
    let key_len = u64::from(get_u32(fixed, SH_KEY_LEN_OFFSET));
    if key_len > MAX_KEY_BYTES as u64 {
        return Err(HeaderDefect::KeyTooLong(key_len));
    }
    let len =
        SH_FIXED_LEN + usize::try_from(key_len).map_err(|_| HeaderDefect::KeyTooLong(key_len))?;
    let key = bytes.get(SH_FIXED_LEN..len).ok_or(HeaderDefect::Short {
        needed: len,
        have: bytes.len(),
    })?;
    let stored = get_u32(fixed, SH_CRC_OFFSET);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&fixed[..SH_CRC_OFFSET]), key);
    if stored != computed {
        return Err(HeaderDefect::Checksum);
    }
    let flags = get_u32(fixed, SH_FLAGS_OFFSET);
    if flags != 0 {
        return Err(HeaderDefect::UnknownFlags(flags));
    }
    Ok(SegmentHeader {
        version: FORMAT_VERSION_CURRENT,
        key: key.to_vec(),
        key_hash: Some(get_u64(fixed, SH_KEY_HASH_OFFSET)),
        sequence: Some(get_u64(fixed, SH_SEQUENCE_OFFSET)),
        created_ms: get_u64(fixed, SH_CREATED_OFFSET),
        rotate_at_ms: get_u64(fixed, SH_ROTATE_AT_OFFSET),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_round_trip() {
        let buf = encode(b"orders", 42, 3, 1_000, 2_000);
        let h = decode(&buf).expect("decodes");
        assert_eq!(h.version, 2);
        assert_eq!(h.key, b"orders");
        assert_eq!(h.key_hash, Some(42));
        assert_eq!(h.sequence, Some(3));
        assert_eq!((h.created_ms, h.rotate_at_ms), (1_000, 2_000));
        assert_eq!(h.len, buf.len());
    }

    #[test]
    fn v1_header_decodes() {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"NANO-LOG");
        buf.extend_from_slice(&0u64.to_le_bytes());
        buf.extend_from_slice(&1_700_000_000u64.to_le_bytes());
        buf.extend_from_slice(&3u64.to_le_bytes());
        buf.extend_from_slice(b"abc");
        let h = decode(&buf).expect("decodes");
        assert_eq!(h.version, 1);
        assert_eq!(h.key, b"abc");
        assert_eq!(h.rotate_at_ms, 1_700_000_000_000);
        assert_eq!(h.len, 35);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let buf = encode(b"key", 1, 1, 5, 6);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut {cut}");
        }
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut d = buf.clone();
                d[byte] ^= 1 << bit;
                assert!(decode(&d).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn unknown_version_and_long_key_are_refused() {
        let mut buf = encode(b"k", 1, 1, 0, 0);
        buf[SH_VERSION_OFFSET] = 9;
        assert_eq!(decode(&buf), Err(HeaderDefect::UnsupportedVersion(9)));
        let mut v1 = b"NANO-LOG".to_vec();
        v1.extend_from_slice(&[0u8; 16]);
        v1.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(&v1), Err(HeaderDefect::KeyTooLong(u64::MAX)));
    }
}
