//! Version-2 record codec: encode into a buffer, decode and verify from bytes.
//!
//! ```text
//! [crc32c u32][content_len u32][header_len u16][flags u16][timestamp_ms u64][header][content]
//! ```
//! The CRC32C covers every byte after the CRC field, followed by a 24-byte
//! binding (key hash, segment sequence, absolute file position) that is never
//! stored: bytes copied to another place or another segment do not verify.

use super::{
    MAX_CONTENT_BYTES, MAX_HEADER_BYTES, REC_BINDING_LEN, REC_CONTENT_LEN_OFFSET, REC_CRC_OFFSET,
    REC_FIXED_LEN, REC_FLAG_HAS_HEADER, REC_FLAGS_OFFSET, REC_HEADER_LEN_OFFSET, REC_KNOWN_FLAGS,
    REC_TIMESTAMP_OFFSET, get_u16, get_u32, get_u64,
};

/// Where a record lives; mixed into its CRC so misplaced bytes fail to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Binding {
    pub key_hash: u64,
    pub sequence: u64,
    /// Absolute byte position of the record's first byte in its segment file.
    pub position: u64,
}

impl Binding {
    fn to_bytes(self) -> [u8; REC_BINDING_LEN] {
        let mut out = [0u8; REC_BINDING_LEN];
        out[..8].copy_from_slice(&self.key_hash.to_le_bytes());
        out[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        out[16..].copy_from_slice(&self.position.to_le_bytes());
        out
    }
}

/// The fixed-size fields of a record, after their limits were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub crc: u32,
    pub content_len: u32,
    pub header_len: u16,
    pub has_header: bool,
    pub timestamp_ms: u64,
}

impl Fixed {
    /// Total encoded length of the record these fields describe.
    pub fn total_len(&self) -> u64 {
        (REC_FIXED_LEN + usize::from(self.header_len)) as u64 + u64::from(self.content_len)
    }

    /// Where the header lies within the record's bytes, if it has one.
    pub fn header_range(&self) -> Option<std::ops::Range<usize>> {
        self.has_header
            .then_some(REC_FIXED_LEN..self.content_start())
    }

    /// Where the content starts within the record's bytes.
    pub fn content_start(&self) -> usize {
        REC_FIXED_LEN + usize::from(self.header_len)
    }
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defect {
    /// A flag bit this version does not define is set.
    UnknownFlags(u16),
    /// A header length without the has-header flag.
    HeaderWithoutFlag,
    /// The content length exceeds [`MAX_CONTENT_BYTES`].
    ContentTooLong(u32),
    /// The record extends past the end of the valid data.
    PastEnd,
    /// The stored CRC does not match the bytes and their binding.
    Checksum { stored: u32, computed: u32 },
    /// All fixed fields are zero: preallocated space, where the data ends.
    Padding,
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Defect::UnknownFlags(x) => write!(f, "unknown record flags {x:#06x}"),
            Defect::HeaderWithoutFlag => write!(f, "header length set without the header flag"),
            Defect::ContentTooLong(n) => {
                write!(
                    f,
                    "content length {n} exceeds the limit {MAX_CONTENT_BYTES}"
                )
            }
            Defect::PastEnd => write!(f, "record extends past the end of the segment"),
            Defect::Padding => write!(f, "zeros (preallocated space) where a record would start"),
            Defect::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
        }
    }
}

/// Encoded length of a record with these header and content sizes.
pub(crate) fn encoded_len(header_len: usize, content_len: usize) -> usize {
    REC_FIXED_LEN + header_len + content_len
}

/// Append an encoded record to `buf` with a zero CRC placeholder.
///
/// Returns the CRC of the body (everything after the CRC field); pass it to
/// [`seal`] once the record's position is known. Limits are the caller's to
/// check ([`crate::Wal`] does so before encoding).
pub(crate) fn encode_body(
    buf: &mut Vec<u8>,
    header: Option<&[u8]>,
    content: &[u8],
    timestamp_ms: u64,
) -> u32 {
    debug_assert!(content.len() <= MAX_CONTENT_BYTES);
    debug_assert!(header.is_none_or(|h| h.len() <= MAX_HEADER_BYTES));
    let start = buf.len();
    let header_bytes = header.unwrap_or(&[]);
    let flags = if header.is_some() {
        REC_FLAG_HAS_HEADER
    } else {
        0
    };
    buf.reserve(encoded_len(header_bytes.len(), content.len()));
    buf.extend_from_slice(&0u32.to_le_bytes());
    buf.extend_from_slice(
        &u32::try_from(content.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    buf.extend_from_slice(
        &u16::try_from(header_bytes.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    buf.extend_from_slice(&flags.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    buf.extend_from_slice(header_bytes);
    buf.extend_from_slice(content);
    crc32c::crc32c(&buf[start + REC_CONTENT_LEN_OFFSET..])
}

/// Combine a body CRC with the record's binding into the stored CRC.
pub(crate) fn final_crc(body_crc: u32, binding: Binding) -> u32 {
    crc32c::crc32c_append(body_crc, &binding.to_bytes())
}

/// Write the final CRC into an encoded record that starts at `record[0]`.
pub(crate) fn seal(record: &mut [u8], body_crc: u32, binding: Binding) {
    let crc = final_crc(body_crc, binding);
    record[REC_CRC_OFFSET..REC_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Whether a record's fixed fields (the first [`REC_FIXED_LEN`] bytes of
/// `record`) are all zero. Such bytes are never a record: they are
/// preallocated space, and the data ends before them (FORMAT.md §4).
pub(crate) fn is_padding(record: &[u8]) -> bool {
    record
        .get(..REC_FIXED_LEN)
        .is_some_and(|f| f.iter().all(|&b| b == 0))
}

/// The error for the one record that cannot be written: no header, empty
/// content, timestamp 0, and a CRC that happens to be 0 (odds 2^-32).
pub(crate) fn padding_error() -> crate::WalError {
    crate::WalError::InvalidConfig(
        "an empty record stamped at the Unix epoch whose checksum is 0 would read as \
         preallocated space; set the clock past the epoch"
            .into(),
    )
}

/// Parse and limit-check the fixed fields. `fixed` must hold at least
/// [`REC_FIXED_LEN`] bytes.
pub(crate) fn parse_fixed(fixed: &[u8]) -> Result<Fixed, Defect> {
    if is_padding(fixed) {
        return Err(Defect::Padding);
    }
    let flags = get_u16(fixed, REC_FLAGS_OFFSET);
    if flags & !REC_KNOWN_FLAGS != 0 {
        return Err(Defect::UnknownFlags(flags));
    }
    let header_len = get_u16(fixed, REC_HEADER_LEN_OFFSET);
    let has_header = flags & REC_FLAG_HAS_HEADER != 0;
    if !has_header && header_len != 0 {
        return Err(Defect::HeaderWithoutFlag);
    }
    let content_len = get_u32(fixed, REC_CONTENT_LEN_OFFSET);
    if content_len as usize > MAX_CONTENT_BYTES {
        return Err(Defect::ContentTooLong(content_len));
    }
    Ok(Fixed {
        crc: get_u32(fixed, REC_CRC_OFFSET),
        content_len,
        header_len,
        has_header,
        timestamp_ms: get_u64(fixed, REC_TIMESTAMP_OFFSET),
    })
}

/// Check the CRC of a complete record held in `record` (exactly its bytes).
pub(crate) fn verify(record: &[u8], fixed: &Fixed, binding: Binding) -> Result<(), Defect> {
    let body = crc32c::crc32c(&record[REC_CONTENT_LEN_OFFSET..]);
    let computed = final_crc(body, binding);
    if computed == fixed.crc {
        Ok(())
    } else {
        Err(Defect::Checksum {
            stored: fixed.crc,
            computed,
        })
    }
}

/// A record decoded from a byte slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded<'a> {
    pub fixed: Fixed,
    pub header: Option<&'a [u8]>,
    pub content: &'a [u8],
}

/// Decode and verify the record at the start of `bytes`.
///
/// `bytes` holds everything up to the end of the valid data, so a record that
/// does not fit is [`Defect::PastEnd`]. Never allocates and never panics.
pub(crate) fn decode(bytes: &[u8], binding: Binding) -> Result<Decoded<'_>, Defect> {
    let Some(fixed_bytes) = bytes.get(..REC_FIXED_LEN) else {
        return Err(Defect::PastEnd);
    };
    let fixed = parse_fixed(fixed_bytes)?;
    let total = usize::try_from(fixed.total_len()).map_err(|_| Defect::PastEnd)?;
    let record = bytes.get(..total).ok_or(Defect::PastEnd)?;
    verify(record, &fixed, binding)?;
    Ok(Decoded {
        fixed,
        header: fixed.header_range().map(|h| &record[h]),
        content: &record[fixed.content_start()..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Binding = Binding {
        key_hash: 7,
        sequence: 1,
        position: 100,
    };

    fn encoded(header: Option<&[u8]>, content: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let body = encode_body(&mut buf, header, content, 1234);
        seal(&mut buf, body, B);
        buf
    }

    #[test]
    fn round_trip_with_and_without_header() {
        for header in [None, Some(&b""[..]), Some(&b"meta"[..])] {
            let buf = encoded(header, b"hello");
            assert_eq!(buf.len(), encoded_len(header.map_or(0, <[u8]>::len), 5));
            let d = decode(&buf, B).expect("decodes");
            assert_eq!(d.header, header);
            assert_eq!(d.content, b"hello");
            assert_eq!(d.fixed.timestamp_ms, 1234);
            assert_eq!(d.fixed.total_len(), buf.len() as u64);
        }
    }

    #[test]
    fn binding_is_part_of_the_checksum() {
        let buf = encoded(None, b"x");
        for other in [
            Binding { key_hash: 8, ..B },
            Binding { sequence: 2, ..B },
            Binding { position: 101, ..B },
        ] {
            assert!(matches!(decode(&buf, other), Err(Defect::Checksum { .. })));
        }
    }

    #[test]
    fn torn_at_every_byte_is_past_end() {
        let buf = encoded(Some(b"hh"), b"content bytes");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], B), Err(Defect::PastEnd), "cut at {cut}");
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = encoded(Some(b"hdr"), b"payload");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                assert!(decode(&damaged, B).is_err(), "flip byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn zeroed_record_is_padding_and_never_verifies() {
        let buf = vec![0u8; 64];
        assert_eq!(decode(&buf, B), Err(Defect::Padding));
        // One non-zero fixed byte makes it a (damaged) record again.
        let mut buf = buf;
        buf[REC_TIMESTAMP_OFFSET] = 1;
        assert!(matches!(decode(&buf, B), Err(Defect::Checksum { .. })));
    }

    #[test]
    fn an_encoded_record_is_padding_only_if_all_fixed_bytes_are_zero() {
        // Timestamp 1234: never padding, even with no header and no content.
        assert!(!is_padding(&encoded(None, b"")));
        assert!(is_padding(&[0u8; REC_FIXED_LEN]));
        assert!(
            !is_padding(&[0u8; REC_FIXED_LEN - 1]),
            "too short to be padding"
        );
    }

    #[test]
    fn huge_length_is_rejected_before_allocation() {
        let mut buf = encoded(None, b"abc");
        buf[REC_CONTENT_LEN_OFFSET..REC_CONTENT_LEN_OFFSET + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&buf, B), Err(Defect::ContentTooLong(u32::MAX)));
        let len_past_end = 1000u32;
        buf[REC_CONTENT_LEN_OFFSET..REC_CONTENT_LEN_OFFSET + 4]
            .copy_from_slice(&len_past_end.to_le_bytes());
        assert_eq!(decode(&buf, B), Err(Defect::PastEnd));
    }

    #[test]
    fn unknown_flags_and_stray_header_length_are_defects() {
        let mut buf = encoded(None, b"abc");
        buf[REC_FLAGS_OFFSET] = 0x80;
        assert_eq!(decode(&buf, B), Err(Defect::UnknownFlags(0x80)));
        let mut buf = encoded(None, b"abc");
        buf[REC_HEADER_LEN_OFFSET] = 1;
        assert_eq!(decode(&buf, B), Err(Defect::HeaderWithoutFlag));
    }
}
