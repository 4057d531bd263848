//! References to records, and records read back with their metadata.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

/// Where a record lives: its key's hash, its segment's sequence number, and
/// its byte offset within the segment after the segment header.
///
/// The printable form is `key_hash:sequence_number:offset`.
///
/// ```
/// use nano_wal::EntryRef;
/// let r = EntryRef { key_hash: 42, sequence_number: 1, offset: 0 };
/// assert_eq!(r.to_string(), "42:1:0");
/// assert_eq!("42:1:0".parse::<EntryRef>().ok(), Some(r));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryRef {
    /// Hash of the key, as in the segment file names; never 0.
    pub key_hash: u64,
    /// Sequence number of the segment; a key's first segment is 1.
    pub sequence_number: u64,
    /// Byte offset within the segment file, after the segment header.
    pub offset: u64,
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.key_hash, self.sequence_number, self.offset
        )
    }
}

/// Why a string is not an [`EntryRef`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entry reference {0:?}: expected key_hash:sequence_number:offset")]
pub struct ParseEntryRefError(String);

impl FromStr for EntryRef {
    type Err = ParseEntryRefError;

    /// Parse exactly the form [`Display`](fmt::Display) prints: three
    /// decimal numbers separated by `:`, digits only (no sign, no
    /// whitespace), without leading zeros (except `0` itself), each within
    /// `u64`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseEntryRefError(s.to_owned());
        let mut parts = s.split(':');
        let mut next = || parts.next().and_then(parse_canonical_u64).ok_or_else(err);
        let r = EntryRef {
            key_hash: next()?,
            sequence_number: next()?,
            offset: next()?,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(r)
    }
}

/// A `u64` written as `Display` writes it, or `None`.
fn parse_canonical_u64(s: &str) -> Option<u64> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = s.len() > 1 && s.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    s.parse().ok()
}

/// A record read back with everything stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Where the record lives.
    pub entry_ref: EntryRef,
    /// The header given at append time; `None` if none was given.
    pub header: Option<Bytes>,
    /// The content.
    pub content: Bytes,
    /// Append time in milliseconds since the Unix epoch; `None` for records
    /// written by nano-wal 0.5, which stored none.
    pub timestamp_unix_ms: Option<u64>,
}

/// A record borrowed for the duration of a [`crate::Wal::scan`] callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordView<'a> {
    /// Where the record lives.
    pub entry_ref: EntryRef,
    /// The header given at append time; `None` if none was given.
    pub header: Option<&'a [u8]>,
    /// The content.
    pub content: &'a [u8],
    /// Append time in milliseconds since the Unix epoch; `None` for records
    /// written by nano-wal 0.5.
    pub timestamp_unix_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::EntryRef;

    fn parse(s: &str) -> Option<EntryRef> {
        s.parse().ok()
    }

    /// `FromStr` accepts exactly what `Display` prints, and nothing else.
    #[test]
    fn from_str_accepts_exactly_the_display_form() {
        for (s, key_hash, sequence_number, offset) in [
            ("0:1:0", 0, 1, 0),
            ("42:1:0", 42, 1, 0),
            ("18446744073709551615:1:2", u64::MAX, 1, 2),
            (
                "7:18446744073709551615:18446744073709551615",
                7,
                u64::MAX,
                u64::MAX,
            ),
        ] {
            let r = EntryRef {
                key_hash,
                sequence_number,
                offset,
            };
            assert_eq!(parse(s), Some(r), "{s}");
            assert_eq!(r.to_string(), s, "round trip of {s}");
        }
        // Signs, leading zeros and whitespace: forms `Display` never prints.
        for s in [
            "+1:+2:+3",
            "+1:2:3",
            "1:2:+3",
            "-1:2:3",
            "01:002:0003",
            "1:2:03",
            "00:1:0",
            " 1:2:3",
            "1:2:3 ",
            "1: 2:3",
            "1:2:3\n",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
        // Not three decimal fields within u64.
        for s in [
            "",
            ":",
            "1:2",
            "1:2:",
            "1::3",
            ":1:2:3",
            "1:2:3:",
            "1:2:3:4",
            "18446744073709551616:1:2",
            "1:2:3x",
            "0x1:2:3",
            "1_000:2:3",
            "١:2:3",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }
}
