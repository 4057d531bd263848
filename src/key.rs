//! The stable key hash and segment file names.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// Longest sanitized key prefix in a file name, as in nano-wal 0.5.
const NAME_KEY_CHARS: usize = 20;
/// File-name extension of segment files.
pub(crate) const SEGMENT_EXT: &str = ".log";

/// nano-wal 0.5's key hash, computed explicitly so it never changes with the
/// Rust release.
///
/// 0.5 fed the key to std's `DefaultHasher` (SipHash-1-3 with zero keys) as
/// `<[u8] as Hash>` does: the length as a `usize`, then the bytes. The value 0
/// is reserved, so a key that hashes to 0 uses 1.
///
/// ```
/// assert_eq!(nano_wal::key_hash(b"my_key"), 6_377_291_554_337_617_420);
/// ```
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(0, 0);
    // `<[u8] as Hash>` writes the length prefix as a native usize; we always
    // write 8 little-endian bytes, which is what 0.5 wrote on every 64-bit
    // little-endian target, and keeps names the same on every platform.
    h.write(&(key.len() as u64).to_le_bytes());
    h.write(key);
    match h.finish() {
        0 => 1,
        v => v,
    }
}

/// The key as it appears in file names: alphanumerics, `_` and `-`, at most
/// 20 characters, exactly as nano-wal 0.5 derived it from `Display`.
pub(crate) fn sanitize(display: &str) -> String {
    display
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .take(NAME_KEY_CHARS)
        .collect()
}

/// `{sanitized key}-{key_hash}-{sequence:04}.log`
pub(crate) fn segment_file_name(sanitized: &str, key_hash: u64, sequence: u64) -> String {
    format!("{sanitized}-{key_hash}-{sequence:04}{SEGMENT_EXT}")
}

/// The sanitized key a segment file name starts with (what new segments of
/// the key are named after); empty if the name has none.
pub(crate) fn name_prefix(file_name: &str) -> String {
    file_name[..name_prefix_len(file_name)].to_owned()
}

/// [`name_prefix`] in place: `file_name` cut to its prefix (no allocation).
pub(crate) fn into_name_prefix(mut file_name: String) -> String {
    file_name.truncate(name_prefix_len(&file_name));
    file_name
}

/// The length of a segment file name's sanitized-key prefix (0 if the name
/// has no such prefix).
fn name_prefix_len(file_name: &str) -> usize {
    file_name
        .strip_suffix(SEGMENT_EXT)
        .and_then(|s| s.rsplitn(3, '-').nth(2))
        .map_or(0, str::len)
}

/// Parse a segment file name into `(key_hash, sequence)`; `None` for any file
/// that is not a segment.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<(u64, u64)> {
    // Bytes, not chars: every opening lists the directory and parses each
    // name, and the separators and digits are ASCII.
    let stem = name.strip_suffix(SEGMENT_EXT)?.as_bytes();
    let (rest, seq) = split_last_dash(stem)?;
    let (_, hash) = split_last_dash(rest)?;
    Some((decimal(hash)?, decimal(seq)?))
}

/// `s` split at its last `-` (which neither part keeps).
fn split_last_dash(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = s.iter().rposition(|&b| b == b'-')?;
    Some((&s[..at], &s[at + 1..]))
}

/// A non-empty run of ASCII digits as a `u64`; `None` if anything else or
/// too large.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by nano-wal 0.5's own hashing (std `DefaultHasher` over
    /// `key.as_ref()`), pinned so the file names never change.
    #[test]
    fn golden_key_hashes_match_nano_wal_0_5() {
        assert_eq!(key_hash(b"my_key"), 6_377_291_554_337_617_420);
        assert_eq!(key_hash(b"user:123"), 13_154_376_443_759_848_783);
        assert_eq!(key_hash(b""), 13_646_096_770_106_105_413);
        assert_eq!(key_hash(b"hits"), 10_105_088_942_366_258_826);
    }

    #[test]
    fn matches_std_default_hasher_today() {
        use std::hash::Hash;
        for key in ["a", "topic-partition", "ключ", "x".repeat(300).as_str()] {
            let mut std_h = std::collections::hash_map::DefaultHasher::new();
            key.as_bytes().hash(&mut std_h);
            assert_eq!(key_hash(key.as_bytes()), std_h.finish(), "{key}");
        }
    }

    #[test]
    fn file_names_round_trip() {
        let name = segment_file_name(&sanitize("topic-partition/../0"), 99, 7);
        assert_eq!(name, "topic-partition0-99-0007.log");
        assert_eq!(parse_segment_file_name(&name), Some((99, 7)));
        assert_eq!(parse_segment_file_name("-5-12345.log"), Some((5, 12345)));
        assert_eq!(
            parse_segment_file_name("k-18446744073709551615-1.log"),
            Some((u64::MAX, 1))
        );
        for bad in [
            "nano-wal.lock",
            "a-b-c.log",
            "a-1-2.txt",
            "1-2.log",
            "a--1.log",
            "a-1-.log",
            "a-+1-2.log",
            "a-1-18446744073709551616.log",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn name_prefix_is_the_sanitized_key_of_a_file_name() {
        for (name, prefix) in [
            ("topic-partition0-99-0007.log", "topic-partition0"),
            ("user123-5-12345.log", "user123"),
            ("-5-12345.log", ""),
            ("a-b-c-1-2.log", "a-b-c"),
            ("no-suffix", ""),
            ("1-2.log", ""),
        ] {
            assert_eq!(name_prefix(name), prefix, "{name}");
            assert_eq!(into_name_prefix(name.to_owned()), prefix, "{name}");
        }
    }

    #[test]
    fn sanitize_keeps_0_5_rules() {
        assert_eq!(sanitize("user:123"), "user123");
        assert_eq!(sanitize("a b/c\\d..e"), "abcde");
        assert_eq!(sanitize(&"k".repeat(50)).len(), 20);
    }
}
