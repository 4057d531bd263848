//! What every record must satisfy before it is written. `append_entry`,
//! `log_entry` and `append_batch` all encode through [`Checked`], which only
//! [`check`] makes, so no write path can skip a rule.

use crate::error::{Result, WalError};
use crate::format::record;
use crate::format::{MAX_CONTENT_BYTES, MAX_HEADER_BYTES, MAX_KEY_BYTES};

/// A record that passed every per-record rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checked<'a> {
    header: Option<&'a [u8]>,
    content: &'a [u8],
}

/// Check a record against every rule: the key, header and content limits.
///
/// The padding rule (FORMAT.md §4: a record's fixed bytes are never all
/// zero) needs no check here: every version-3 record carries the record
/// flag, which `format` pins with a `const` assertion.
pub(crate) fn check<'a>(
    key: &[u8],
    header: Option<&'a [u8]>,
    content: &'a [u8],
) -> Result<Checked<'a>> {
    if key.len() > MAX_KEY_BYTES {
        return Err(WalError::KeyTooLarge {
            size: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if let Some(h) = header.filter(|h| h.len() > MAX_HEADER_BYTES) {
        return Err(WalError::HeaderTooLarge {
            size: h.len(),
            max: MAX_HEADER_BYTES,
        });
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(WalError::ContentTooLarge {
            size: content.len(),
            max: MAX_CONTENT_BYTES,
        });
    }
    Ok(Checked { header, content })
}

impl Checked<'_> {
    /// Encoded length of the record.
    pub fn encoded_len(&self) -> usize {
        record::encoded_len(self.header.map_or(0, <[u8]>::len), self.content.len())
    }

    /// Append the encoded record to `buf`; [`record::seal`] binds it to its
    /// place once that is known.
    pub fn encode(&self, buf: &mut Vec<u8>, timestamp_ms: u64) {
        record::encode(buf, self.header, self.content, timestamp_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_checked() {
        let big_key = vec![0u8; MAX_KEY_BYTES + 1];
        assert!(matches!(
            check(&big_key, None, b""),
            Err(WalError::KeyTooLarge { .. })
        ));
        let big_header = vec![0u8; MAX_HEADER_BYTES + 1];
        assert!(matches!(
            check(b"k", Some(&big_header), b""),
            Err(WalError::HeaderTooLarge { .. })
        ));
        assert!(check(b"k", Some(&big_header[1..]), b"").is_ok());
    }
}
