//! Segment header codec for every version.
//!
//! Version 3 (written):
//! ```text
//! [magic 8]["version" u32 = 3][key_len u32][key_hash u64][sequence u64]
//! [created_ms u64][rotate_at_ms u64][salt u64][flags u32][crc32c u32][key]
//! ```
//! Version 2 (nano-wal 0.6) is the same without the salt. The CRC32C covers
//! the bytes before it and the key.
//!
//! Version 1 (nano-wal 0.5):
//! ```text
//! [magic 8][zero u64][expiration_secs u64][key_len u64][key]
//! ```

use super::{
    FORMAT_VERSION_CURRENT, FORMAT_VERSION_LEGACY, FORMAT_VERSION_V2, MAX_KEY_BYTES, SEGMENT_MAGIC,
    SH_CREATED_OFFSET, SH_KEY_HASH_OFFSET, SH_KEY_LEN_OFFSET, SH_ROTATE_AT_OFFSET,
    SH_SEQUENCE_OFFSET, SH_VERSION_OFFSET, SH2_CRC_OFFSET, SH2_FIXED_LEN, SH2_FLAGS_OFFSET,
    SH3_CRC_OFFSET, SH3_FIXED_LEN, SH3_FLAGS_OFFSET, SH3_SALT_OFFSET, V1_SH_EXPIRATION_OFFSET,
    V1_SH_FIXED_LEN, V1_SH_KEY_LEN_OFFSET, get_u32, get_u64,
};

/// The decoded header of a segment file of any version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// 1 (nano-wal 0.5), 2 (nano-wal 0.6) or 3.
    pub version: u32,
    pub key: Vec<u8>,
    /// Stored since version 2; for version 1 it comes from the file name.
    pub key_hash: Option<u64>,
    /// Stored since version 2; for version 1 it comes from the file name.
    pub sequence: Option<u64>,
    /// Creation time; unknown (0) for version 1.
    pub created_ms: u64,
    /// Appends at or after this time go to a new segment. Every record in the
    /// segment is older than this, which is what retention relies on.
    pub rotate_at_ms: u64,
    /// Folded into every record's checksum (version 3; 0 before).
    pub salt: u64,
    /// Length of the header in bytes; record offsets count from here.
    pub len: usize,
}

/// What a new segment's header says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewHeader<'a> {
    pub key: &'a [u8],
    pub key_hash: u64,
    pub sequence: u64,
    pub created_ms: u64,
    pub rotate_at_ms: u64,
    pub salt: u64,
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

/// Most bytes a header of any version can occupy.
pub(crate) const MAX_HEADER_LEN: usize = SH3_FIXED_LEN + MAX_KEY_BYTES;
const _: () = assert!(V1_SH_FIXED_LEN <= SH2_FIXED_LEN && SH2_FIXED_LEN <= SH3_FIXED_LEN);

/// Encode a version-3 header.
pub(crate) fn encode(h: &NewHeader<'_>) -> Vec<u8> {
    debug_assert!(h.key.len() <= MAX_KEY_BYTES);
    let mut buf = Vec::with_capacity(SH3_FIXED_LEN + h.key.len());
    buf.extend_from_slice(&SEGMENT_MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION_CURRENT.to_le_bytes());
    buf.extend_from_slice(&u32::try_from(h.key.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(&h.key_hash.to_le_bytes());
    buf.extend_from_slice(&h.sequence.to_le_bytes());
    buf.extend_from_slice(&h.created_ms.to_le_bytes());
    buf.extend_from_slice(&h.rotate_at_ms.to_le_bytes());
    debug_assert_eq!(buf.len(), SH3_SALT_OFFSET);
    buf.extend_from_slice(&h.salt.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(buf.len(), SH3_CRC_OFFSET);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf), h.key);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(h.key);
    buf
}

/// Decode a header of any version from the first bytes of a segment file.
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
        FORMAT_VERSION_V2 => decode_checked(bytes, &V2_LAYOUT),
        FORMAT_VERSION_CURRENT => decode_checked(bytes, &V3_LAYOUT),
        other => Err(HeaderDefect::UnsupportedVersion(other)),
    }
}

/// The salt a damaged version-3 header stores, if its bytes are there: the
/// best guess for checking whether records follow the damage.
pub(crate) fn stored_salt(bytes: &[u8]) -> Option<u64> {
    let fixed = bytes.get(..SH3_CRC_OFFSET)?;
    (get_u32(fixed, SH_VERSION_OFFSET) == FORMAT_VERSION_CURRENT)
        .then(|| get_u64(fixed, SH3_SALT_OFFSET))
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
        salt: 0,
        len,
    })
}

/// Where the fields of a checksummed header version lie.
struct Layout {
    version: u32,
    salt: Option<usize>,
    flags: usize,
    crc: usize,
    fixed_len: usize,
}

const V2_LAYOUT: Layout = Layout {
    version: FORMAT_VERSION_V2,
    salt: None,
    flags: SH2_FLAGS_OFFSET,
    crc: SH2_CRC_OFFSET,
    fixed_len: SH2_FIXED_LEN,
};

const V3_LAYOUT: Layout = Layout {
    version: FORMAT_VERSION_CURRENT,
    salt: Some(SH3_SALT_OFFSET),
    flags: SH3_FLAGS_OFFSET,
    crc: SH3_CRC_OFFSET,
    fixed_len: SH3_FIXED_LEN,
};

fn decode_checked(bytes: &[u8], layout: &Layout) -> Result<SegmentHeader, HeaderDefect> {
    let fixed = bytes.get(..layout.fixed_len).ok_or(HeaderDefect::Short {
        needed: layout.fixed_len,
        have: bytes.len(),
    })?;
    let key_len = u64::from(get_u32(fixed, SH_KEY_LEN_OFFSET));
    if key_len > MAX_KEY_BYTES as u64 {
        return Err(HeaderDefect::KeyTooLong(key_len));
    }
    let len = layout.fixed_len
        + usize::try_from(key_len).map_err(|_| HeaderDefect::KeyTooLong(key_len))?;
    let key = bytes
        .get(layout.fixed_len..len)
        .ok_or(HeaderDefect::Short {
            needed: len,
            have: bytes.len(),
        })?;
    let stored = get_u32(fixed, layout.crc);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&fixed[..layout.crc]), key);
    if stored != computed {
        return Err(HeaderDefect::Checksum);
    }
    let flags = get_u32(fixed, layout.flags);
    if flags != 0 {
        return Err(HeaderDefect::UnknownFlags(flags));
    }
    Ok(SegmentHeader {
        version: layout.version,
        key: key.to_vec(),
        key_hash: Some(get_u64(fixed, SH_KEY_HASH_OFFSET)),
        sequence: Some(get_u64(fixed, SH_SEQUENCE_OFFSET)),
        created_ms: get_u64(fixed, SH_CREATED_OFFSET),
        rotate_at_ms: get_u64(fixed, SH_ROTATE_AT_OFFSET),
        salt: layout.salt.map_or(0, |at| get_u64(fixed, at)),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &[u8], key_hash: u64, sequence: u64) -> NewHeader<'_> {
        NewHeader {
            key,
            key_hash,
            sequence,
            created_ms: 1_000,
            rotate_at_ms: 2_000,
            salt: 0x5a17_5a17_5a17_5a17,
        }
    }

    #[test]
    fn v3_round_trip() {
        let buf = encode(&header(b"orders", 42, 3));
        let h = decode(&buf).expect("decodes");
        assert_eq!(h.version, 3);
        assert_eq!(h.salt, 0x5a17_5a17_5a17_5a17);
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
        let buf = encode(&header(b"key", 1, 1));
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
        let mut buf = encode(&header(b"k", 1, 1));
        buf[SH_VERSION_OFFSET] = 9;
        assert_eq!(decode(&buf), Err(HeaderDefect::UnsupportedVersion(9)));
        let mut v1 = b"NANO-LOG".to_vec();
        v1.extend_from_slice(&[0u8; 16]);
        v1.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(&v1), Err(HeaderDefect::KeyTooLong(u64::MAX)));
    }

    #[test]
    fn v2_header_decodes_without_a_salt() {
        // nano-wal 0.6's layout, built field by field.
        let mut buf = b"NANO-LOG".to_vec();
        buf.extend_from_slice(&2u32.to_le_bytes());
        buf.extend_from_slice(&3u32.to_le_bytes());
        for field in [42u64, 7, 1_000, 2_000] {
            buf.extend_from_slice(&field.to_le_bytes());
        }
        buf.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf), b"abc");
        buf.extend_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(b"abc");
        let h = decode(&buf).expect("decodes");
        assert_eq!((h.version, h.salt, h.len), (2, 0, 59));
        assert_eq!((h.key_hash, h.sequence), (Some(42), Some(7)));
        assert_eq!(h.key, b"abc");
    }

    #[test]
    fn the_salt_of_a_damaged_header_is_still_read() {
        let mut buf = encode(&header(b"k", 1, 1));
        buf[SH3_CRC_OFFSET] ^= 1;
        assert_eq!(decode(&buf), Err(HeaderDefect::Checksum));
        assert_eq!(stored_salt(&buf), Some(0x5a17_5a17_5a17_5a17));
        assert_eq!(stored_salt(&buf[..SH3_CRC_OFFSET - 1]), None);
    }
}
