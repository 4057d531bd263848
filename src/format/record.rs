//! Record codec: encode version 3 into a buffer; decode and verify versions 2
//! and 3 from bytes.
//!
//! Version 3 (written):
//! ```text
//! [head_crc u32][content_len u32][header_len u16][flags u16][timestamp_ms u64][body_crc u32]
//! [header][content]
//! ```
//! `body_crc` is the CRC32C of the header and content. `head_crc` is the
//! CRC32C of the 20 bytes after it (so it covers `body_crc`, and through it
//! the whole record), continued over a 32-byte binding that is never stored:
//! the segment's random salt, the key hash, the segment sequence and the
//! record's absolute file position. A candidate position is therefore
//! accepted or rejected after reading its 24 fixed bytes, and bytes that a
//! user wrote as content cannot pass for a record: they would need the salt.
//!
//! Version 2 (nano-wal 0.6, read-only): `[crc u32]` then the same fields up to
//! the timestamp (20 bytes), then header and content; the CRC covers bytes
//! 4..end and a 24-byte binding without the salt.

use super::{
    MAX_CONTENT_BYTES, MAX_HEADER_BYTES, REC_BINDING_LEN, REC_BODY_CRC_OFFSET,
    REC_CONTENT_LEN_OFFSET, REC_FIXED_LEN, REC_FLAG_HAS_HEADER, REC_FLAG_RECORD, REC_FLAGS_OFFSET,
    REC_HEAD_CRC_OFFSET, REC_HEADER_LEN_OFFSET, REC_KNOWN_FLAGS, REC_TIMESTAMP_OFFSET,
    REC2_BINDING_LEN, REC2_FIXED_LEN, REC2_KNOWN_FLAGS, get_u16, get_u32, get_u64,
};

/// Which record layout a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordVersion {
    /// nano-wal 0.6: one CRC over the whole record, no salt.
    V2,
    /// Salted head checksum plus a body checksum.
    V3,
}

impl RecordVersion {
    /// Size of the fixed fields before the header.
    pub const fn fixed_len(self) -> usize {
        match self {
            RecordVersion::V2 => REC2_FIXED_LEN,
            RecordVersion::V3 => REC_FIXED_LEN,
        }
    }

    const fn known_flags(self) -> u16 {
        match self {
            RecordVersion::V2 => REC2_KNOWN_FLAGS,
            RecordVersion::V3 => REC_KNOWN_FLAGS,
        }
    }
}

/// Where a record lives; mixed into its checksum so misplaced bytes fail to
/// verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Binding {
    /// The segment's random salt (version 3; ignored by version 2).
    pub salt: u64,
    pub key_hash: u64,
    pub sequence: u64,
    /// Absolute byte position of the record's first byte in its segment file.
    pub position: u64,
}

impl Binding {
    fn v3_bytes(self) -> [u8; REC_BINDING_LEN] {
        let mut out = [0u8; REC_BINDING_LEN];
        out[..8].copy_from_slice(&self.salt.to_le_bytes());
        out[8..16].copy_from_slice(&self.key_hash.to_le_bytes());
        out[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        out[24..].copy_from_slice(&self.position.to_le_bytes());
        out
    }

    fn v2_bytes(self) -> [u8; REC2_BINDING_LEN] {
        let mut out = [0u8; REC2_BINDING_LEN];
        out[..8].copy_from_slice(&self.key_hash.to_le_bytes());
        out[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        out[16..].copy_from_slice(&self.position.to_le_bytes());
        out
    }
}

/// The fixed-size fields of a record, after their limits were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub version: RecordVersion,
    /// Version 3: the head checksum; version 2: the whole record's.
    pub crc: u32,
    /// Version 3: the checksum of header and content; 0 for version 2.
    pub body_crc: u32,
    pub content_len: u32,
    pub header_len: u16,
    pub has_header: bool,
    pub timestamp_ms: u64,
}

impl Fixed {
    /// Total encoded length of the record these fields describe.
    pub fn total_len(&self) -> u64 {
        self.content_start() as u64 + u64::from(self.content_len)
    }

    /// Where the header lies within the record's bytes, if it has one.
    pub fn header_range(&self) -> Option<std::ops::Range<usize>> {
        self.has_header
            .then_some(self.version.fixed_len()..self.content_start())
    }

    /// Where the content starts within the record's bytes.
    pub fn content_start(&self) -> usize {
        self.version.fixed_len() + usize::from(self.header_len)
    }
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defect {
    /// A flag bit this version does not define is set.
    UnknownFlags(u16),
    /// Version 3: the flag every record carries is clear.
    MissingRecordFlag,
    /// A header length without the has-header flag.
    HeaderWithoutFlag,
    /// The content length exceeds [`MAX_CONTENT_BYTES`].
    ContentTooLong(u32),
    /// The record extends past the end of the valid data.
    PastEnd,
    /// Version 3: the fixed fields fail their salted, position-bound
    /// checksum (damaged, or not written as a record at this place).
    HeadChecksum { stored: u32, computed: u32 },
    /// The stored CRC does not match the bytes (version 3: header and
    /// content; version 2: the whole record and its binding).
    Checksum { stored: u32, computed: u32 },
    /// All fixed fields are zero: preallocated space, where the data ends.
    Padding,
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Defect::UnknownFlags(x) => write!(f, "unknown record flags {x:#06x}"),
            Defect::MissingRecordFlag => write!(f, "record flag not set"),
            Defect::HeaderWithoutFlag => write!(f, "header length set without the header flag"),
            Defect::ContentTooLong(n) => {
                write!(
                    f,
                    "content length {n} exceeds the limit {MAX_CONTENT_BYTES}"
                )
            }
            Defect::PastEnd => write!(f, "record extends past the end of the segment"),
            Defect::Padding => write!(f, "zeros (preallocated space) where a record would start"),
            Defect::HeadChecksum { stored, computed } => {
                write!(
                    f,
                    "record head checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Defect::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
        }
    }
}

/// Encoded length of a version-3 record with these header and content sizes.
pub(crate) fn encoded_len(header_len: usize, content_len: usize) -> usize {
    REC_FIXED_LEN + header_len + content_len
}

/// Append a version-3 record to `buf`, its head checksum left for [`seal`]
/// once the record's position is known. Limits are checked before this
/// (`crate::write_rules`), so the lengths fit their fields.
pub(crate) fn encode(buf: &mut Vec<u8>, header: Option<&[u8]>, content: &[u8], timestamp_ms: u64) {
    debug_assert!(content.len() <= MAX_CONTENT_BYTES);
    debug_assert!(header.is_none_or(|h| h.len() <= MAX_HEADER_BYTES));
    let header_bytes = header.unwrap_or(&[]);
    let flags = REC_FLAG_RECORD
        | if header.is_some() {
            REC_FLAG_HAS_HEADER
        } else {
            0
        };
    let body_crc = crc32c::crc32c_append(crc32c::crc32c(header_bytes), content);
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
    buf.extend_from_slice(&body_crc.to_le_bytes());
    buf.extend_from_slice(header_bytes);
    buf.extend_from_slice(content);
}

/// The salted, position-bound checksum of a version-3 record's fixed fields
/// (`fixed` holds at least [`REC_FIXED_LEN`] bytes).
fn head_crc(fixed: &[u8], binding: Binding) -> u32 {
    let fields = crc32c::crc32c(&fixed[REC_CONTENT_LEN_OFFSET..REC_FIXED_LEN]);
    crc32c::crc32c_append(fields, &binding.v3_bytes())
}

/// Write the head checksum into an encoded version-3 record that starts at
/// `record[0]`, binding it to its place.
pub(crate) fn seal(record: &mut [u8], binding: Binding) {
    let crc = head_crc(record, binding);
    record[REC_HEAD_CRC_OFFSET..REC_HEAD_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Whether a record's fixed fields (the first `version.fixed_len()` bytes of
/// `record`) are all zero. Such bytes are never a record: they are
/// preallocated space, and the data ends before them (FORMAT.md §4). A
/// version-3 record always has its record flag set, so it never reads as
/// padding.
pub(crate) fn is_padding(version: RecordVersion, record: &[u8]) -> bool {
    record
        .get(..version.fixed_len())
        .is_some_and(|f| f.iter().all(|&b| b == 0))
}

/// Parse and limit-check the fixed fields. `fixed` must hold at least
/// `version.fixed_len()` bytes. Cheap: no checksum is computed.
pub(crate) fn parse_fixed(version: RecordVersion, fixed: &[u8]) -> Result<Fixed, Defect> {
    if is_padding(version, fixed) {
        return Err(Defect::Padding);
    }
    let flags = get_u16(fixed, REC_FLAGS_OFFSET);
    if flags & !version.known_flags() != 0 {
        return Err(Defect::UnknownFlags(flags));
    }
    if version == RecordVersion::V3 && flags & REC_FLAG_RECORD == 0 {
        return Err(Defect::MissingRecordFlag);
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
        version,
        crc: get_u32(fixed, REC_HEAD_CRC_OFFSET),
        body_crc: match version {
            RecordVersion::V2 => 0,
            RecordVersion::V3 => get_u32(fixed, REC_BODY_CRC_OFFSET),
        },
        content_len,
        header_len,
        has_header,
        timestamp_ms: get_u64(fixed, REC_TIMESTAMP_OFFSET),
    })
}

/// Where the last of a run of whole version-3 records starts, walking their
/// lengths (`None` if the run is empty or does not split into records).
pub(crate) fn last_start(run: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut last = None;
    while at < run.len() {
        let fixed = parse_fixed(RecordVersion::V3, run.get(at..at + REC_FIXED_LEN)?).ok()?;
        last = Some(at);
        at = at.checked_add(usize::try_from(fixed.total_len()).ok()?)?;
    }
    (at == run.len()).then_some(last).flatten()
}

/// Version 3: check the fixed fields' salted checksum, from the fixed bytes
/// alone (`Ok` for version 2, whose one checksum needs the whole record).
pub(crate) fn verify_head(
    fixed_bytes: &[u8],
    fixed: &Fixed,
    binding: Binding,
) -> Result<(), Defect> {
    if fixed.version == RecordVersion::V2 {
        return Ok(());
    }
    let computed = head_crc(fixed_bytes, binding);
    if computed == fixed.crc {
        Ok(())
    } else {
        Err(Defect::HeadChecksum {
            stored: fixed.crc,
            computed,
        })
    }
}

/// Check every checksum of a complete record held in `record` (exactly its
/// bytes).
pub(crate) fn verify(record: &[u8], fixed: &Fixed, binding: Binding) -> Result<(), Defect> {
    let (stored, computed) = match fixed.version {
        RecordVersion::V2 => {
            let body = crc32c::crc32c(&record[REC_CONTENT_LEN_OFFSET..]);
            (fixed.crc, crc32c::crc32c_append(body, &binding.v2_bytes()))
        }
        RecordVersion::V3 => {
            verify_head(record, fixed, binding)?;
            (fixed.body_crc, crc32c::crc32c(&record[REC_FIXED_LEN..]))
        }
    };
    if computed == stored {
        Ok(())
    } else {
        Err(Defect::Checksum { stored, computed })
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
pub(crate) fn decode(
    version: RecordVersion,
    bytes: &[u8],
    binding: Binding,
) -> Result<Decoded<'_>, Defect> {
    let Some(fixed_bytes) = bytes.get(..version.fixed_len()) else {
        return Err(Defect::PastEnd);
    };
    let fixed = parse_fixed(version, fixed_bytes)?;
    verify_head(fixed_bytes, &fixed, binding)?;
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
        salt: 0x0123_4567_89ab_cdef,
        key_hash: 7,
        sequence: 1,
        position: 100,
    };
    const V3: RecordVersion = RecordVersion::V3;

    fn encoded(header: Option<&[u8]>, content: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, header, content, 1234);
        seal(&mut buf, B);
        buf
    }

    /// A version-2 record as nano-wal 0.6 wrote it.
    pub(crate) fn encoded_v2(header: Option<&[u8]>, content: &[u8], binding: Binding) -> Vec<u8> {
        let h = header.unwrap_or(&[]);
        let mut buf = vec![0u8; 4];
        buf.extend_from_slice(
            &u32::try_from(content.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        buf.extend_from_slice(&u16::try_from(h.len()).unwrap_or(u16::MAX).to_le_bytes());
        buf.extend_from_slice(&u16::from(header.is_some()).to_le_bytes());
        buf.extend_from_slice(&1234u64.to_le_bytes());
        buf.extend_from_slice(h);
        buf.extend_from_slice(content);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[4..]), &binding.v2_bytes());
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    #[test]
    fn round_trip_with_and_without_header() {
        for header in [None, Some(&b""[..]), Some(&b"meta"[..])] {
            let buf = encoded(header, b"hello");
            assert_eq!(buf.len(), encoded_len(header.map_or(0, <[u8]>::len), 5));
            let d = decode(V3, &buf, B).expect("decodes");
            assert_eq!(d.header, header);
            assert_eq!(d.content, b"hello");
            assert_eq!(d.fixed.timestamp_ms, 1234);
            assert_eq!(d.fixed.total_len(), buf.len() as u64);
        }
    }

    #[test]
    fn version_2_records_still_decode() {
        let b2 = Binding { salt: 0, ..B };
        for header in [None, Some(&b""[..]), Some(&b"meta"[..])] {
            let buf = encoded_v2(header, b"hello", b2);
            let d = decode(RecordVersion::V2, &buf, b2).expect("decodes");
            assert_eq!((d.header, d.content), (header, &b"hello"[..]));
            assert_eq!(d.fixed.total_len(), buf.len() as u64);
            // The salt is not part of a version-2 binding; the place is.
            assert!(decode(RecordVersion::V2, &buf, Binding { salt: 9, ..b2 }).is_ok());
            assert!(decode(RecordVersion::V2, &buf, Binding { position: 1, ..b2 }).is_err());
            // Never read as version 3.
            assert!(decode(V3, &buf, b2).is_err());
        }
    }

    #[test]
    fn binding_and_salt_are_part_of_the_checksum() {
        let buf = encoded(None, b"x");
        for other in [
            Binding {
                salt: B.salt ^ 1,
                ..B
            },
            Binding { key_hash: 8, ..B },
            Binding { sequence: 2, ..B },
            Binding { position: 101, ..B },
        ] {
            assert!(matches!(
                decode(V3, &buf, other),
                Err(Defect::HeadChecksum { .. })
            ));
        }
    }

    #[test]
    fn the_head_is_rejected_from_its_fixed_bytes_alone() {
        let buf = encoded(None, &[7u8; 1000]);
        let fixed = parse_fixed(V3, &buf).expect("plausible");
        assert!(verify_head(&buf[..REC_FIXED_LEN], &fixed, B).is_ok());
        let elsewhere = Binding { position: 99, ..B };
        assert!(verify_head(&buf[..REC_FIXED_LEN], &fixed, elsewhere).is_err());
    }

    #[test]
    fn a_record_embedded_in_content_does_not_verify_under_another_salt() {
        // A producer who controls content encodes a record for the place it
        // will land at, but cannot know the segment's salt.
        let mut inner = Vec::new();
        encode(&mut inner, None, b"forged", 1);
        let inner_position = B.position + REC_FIXED_LEN as u64;
        seal(
            &mut inner,
            Binding {
                salt: 0,
                position: inner_position,
                ..B
            },
        );
        let outer = encoded(None, &inner);
        let at = REC_FIXED_LEN;
        let real = Binding {
            position: inner_position,
            ..B
        };
        assert!(decode(V3, &outer[at..], real).is_err());
        assert!(decode(V3, &outer, B).is_ok());
    }

    #[test]
    fn torn_at_every_byte_is_past_end() {
        let buf = encoded(Some(b"hh"), b"content bytes");
        for cut in 0..buf.len() {
            assert_eq!(
                decode(V3, &buf[..cut], B),
                Err(Defect::PastEnd),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = encoded(Some(b"hdr"), b"payload");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    decode(V3, &damaged, B).is_err(),
                    "flip byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn zeroed_record_is_padding_and_never_verifies() {
        let buf = vec![0u8; 64];
        assert_eq!(decode(V3, &buf, B), Err(Defect::Padding));
        assert_eq!(decode(RecordVersion::V2, &buf, B), Err(Defect::Padding));
        // One non-zero fixed byte makes it a (damaged) record again.
        let mut buf = buf;
        buf[REC_TIMESTAMP_OFFSET] = 1;
        assert_eq!(decode(V3, &buf, B), Err(Defect::MissingRecordFlag));
    }

    #[test]
    fn no_record_reads_as_padding_not_even_an_empty_one_at_the_epoch() {
        // Version 2 could write 20 zero bytes for this record at 1 place in
        // 2^32; the record flag rules it out in version 3 at every place.
        for position in 0..10_000u64 {
            let mut buf = Vec::new();
            encode(&mut buf, None, b"", 0);
            let binding = Binding { position, ..B };
            seal(&mut buf, binding);
            assert!(!is_padding(V3, &buf));
            assert!(decode(V3, &buf, binding).is_ok());
        }
        assert!(is_padding(V3, &[0u8; REC_FIXED_LEN]));
        assert!(
            !is_padding(V3, &[0u8; REC_FIXED_LEN - 1]),
            "too short to be padding"
        );
    }

    #[test]
    fn huge_length_is_rejected_before_allocation() {
        let mut buf = encoded(None, b"abc");
        buf[REC_CONTENT_LEN_OFFSET..REC_CONTENT_LEN_OFFSET + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(V3, &buf, B), Err(Defect::ContentTooLong(u32::MAX)));
        let mut buf = encoded(None, b"abc");
        let len_past_end = 1000u32;
        buf[REC_CONTENT_LEN_OFFSET..REC_CONTENT_LEN_OFFSET + 4]
            .copy_from_slice(&len_past_end.to_le_bytes());
        seal(&mut buf, B);
        assert_eq!(decode(V3, &buf, B), Err(Defect::PastEnd));
    }

    #[test]
    fn unknown_flags_and_stray_header_length_are_defects() {
        let mut buf = encoded(None, b"abc");
        buf[REC_FLAGS_OFFSET] = 0x82;
        assert_eq!(decode(V3, &buf, B), Err(Defect::UnknownFlags(0x82)));
        let mut buf = encoded(None, b"abc");
        buf[REC_FLAGS_OFFSET] = 0;
        assert_eq!(decode(V3, &buf, B), Err(Defect::MissingRecordFlag));
        let mut buf = encoded(None, b"abc");
        buf[REC_HEADER_LEN_OFFSET] = 1;
        assert_eq!(decode(V3, &buf, B), Err(Defect::HeaderWithoutFlag));
    }
}
