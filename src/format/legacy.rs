//! Version-1 (nano-wal 0.5) record decoder. These records carry no checksum,
//! so only their framing and lengths can be checked.
//!
//! ```text
//! [NANORC 6][header_len u16][header][content_len u64][content]
//! ```

use super::{
    MAX_CONTENT_BYTES, V1_REC_HEADER_LEN_OFFSET, V1_REC_HEADER_OFFSET, V1_RECORD_MAGIC, get_u16,
    get_u64,
};

/// A version-1 record decoded from a byte slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedV1<'a> {
    pub header: Option<&'a [u8]>,
    pub content: &'a [u8],
    pub total_len: usize,
}

/// Why bytes are not a valid version-1 record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefectV1 {
    BadMagic,
    ContentTooLong(u64),
    PastEnd,
}

impl std::fmt::Display for DefectV1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DefectV1::BadMagic => write!(f, "version-1 record magic NANORC not found"),
            DefectV1::ContentTooLong(n) => {
                write!(
                    f,
                    "content length {n} exceeds the limit {MAX_CONTENT_BYTES}"
                )
            }
            DefectV1::PastEnd => write!(f, "record extends past the end of the segment"),
        }
    }
}

/// Fixed bytes before the header: magic and header length.
pub(crate) const V1_PREFIX_LEN: usize = V1_REC_HEADER_OFFSET;
/// Size of the content-length field that follows the header.
pub(crate) const V1_CONTENT_LEN_LEN: usize = size_of::<u64>();

/// Decode the version-1 record at the start of `bytes` (which ends at the end
/// of the file). Never allocates and never panics.
pub(crate) fn decode(bytes: &[u8]) -> Result<DecodedV1<'_>, DefectV1> {
    let prefix = bytes.get(..V1_PREFIX_LEN).ok_or(DefectV1::PastEnd)?;
    if prefix[..V1_RECORD_MAGIC.len()] != V1_RECORD_MAGIC {
        return Err(DefectV1::BadMagic);
    }
    let header_len = usize::from(get_u16(prefix, V1_REC_HEADER_LEN_OFFSET));
    let len_at = V1_PREFIX_LEN + header_len;
    let len_bytes = bytes
        .get(len_at..len_at + V1_CONTENT_LEN_LEN)
        .ok_or(DefectV1::PastEnd)?;
    let content_len = get_u64(len_bytes, 0);
    if content_len > MAX_CONTENT_BYTES as u64 {
        return Err(DefectV1::ContentTooLong(content_len));
    }
    let content_at = len_at + V1_CONTENT_LEN_LEN;
    // Checked against MAX_CONTENT_BYTES above, so it fits a usize.
    let total_len = content_at
        + usize::try_from(content_len).map_err(|_| DefectV1::ContentTooLong(content_len))?;
    let content = bytes.get(content_at..total_len).ok_or(DefectV1::PastEnd)?;
    Ok(DecodedV1 {
        // nano-wal 0.5 wrote a zero length for "no header"; it cannot tell
        // an empty header from none.
        header: (header_len > 0).then(|| &bytes[V1_PREFIX_LEN..len_at]),
        content,
        total_len,
    })
}

/// Encode a version-1 record; used to build 0.5 directories in tests.
#[cfg(test)]
pub(crate) fn encode(header: Option<&[u8]>, content: &[u8]) -> Vec<u8> {
    let h = header.unwrap_or(&[]);
    let mut out = V1_RECORD_MAGIC.to_vec();
    out.extend_from_slice(&u16::try_from(h.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(h);
    out.extend_from_slice(&(content.len() as u64).to_le_bytes());
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let buf = encode(Some(b"meta"), b"data");
        let d = decode(&buf).expect("decodes");
        assert_eq!(d.header, Some(&b"meta"[..]));
        assert_eq!(d.content, b"data");
        assert_eq!(d.total_len, buf.len());
    }

    #[test]
    fn truncation_is_past_end_and_garbage_is_bad_magic() {
        let buf = encode(None, b"content");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Err(DefectV1::PastEnd), "cut {cut}");
        }
        assert_eq!(decode(&[0u8; 32]), Err(DefectV1::BadMagic));
    }

    #[test]
    fn huge_length_is_refused() {
        let mut buf = encode(None, b"x");
        buf[V1_PREFIX_LEN..V1_PREFIX_LEN + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(&buf), Err(DefectV1::ContentTooLong(u64::MAX)));
    }
}
