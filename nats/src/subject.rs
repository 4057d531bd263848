//! Subjects: `PREFIX.<token>`, where the token names the key.
//!
//! A NATS subject token may not hold `.`, `*`, `>` or white space, and
//! may not be empty, while a nano-wal key is any byte string. The token of
//! a key keeps the bytes `A-Z a-z 0-9 _ -` and writes every other byte
//! (`%` included) as `%` and two upper-case hex digits; the empty key is
//! the token `%`. The mapping is one-to-one, and [`key_of_token`] undoes
//! it: `orders` → `orders`, `raft/1/log` → `raft%2F1%2Flog`,
//! `price.eur` → `price%2Eeur`.

use crate::error::ExportError;

/// The longest subject prefix accepted, in bytes.
pub const MAX_PREFIX_BYTES: usize = 200;

/// The longest subject the exporter publishes to, in bytes: a NATS server
/// refuses a protocol line over 4,096 bytes by default (and drops the
/// connection), and the line also holds the reply subject and lengths.
/// A key whose subject is longer (a key of more than about 1,200 bytes
/// that needs escaping) is refused with `SubjectTooLong`.
pub const MAX_SUBJECT_BYTES: usize = 3_840;

fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The subject token of `key`.
#[must_use]
pub fn token_of_key(key: &[u8]) -> String {
    if key.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(key.len());
    for &b in key {
        if kept(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// The key whose token is `token`; `None` if no key maps to it (so that
/// each key has exactly one token).
#[must_use]
pub fn key_of_token(token: &str) -> Option<Vec<u8>> {
    if token == "%" {
        return Some(Vec::new());
    }
    if token.is_empty() {
        return None;
    }
    let bytes = token.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if kept(b) {
            key.push(b);
            i += 1;
            continue;
        }
        if b != b'%' {
            return None;
        }
        let hex = token.get(i + 1..i + 3)?;
        if !hex
            .bytes()
            .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h))
        {
            return None;
        }
        let decoded = u8::from_str_radix(hex, 16).ok()?;
        if kept(decoded) {
            return None;
        }
        key.push(decoded);
        i += 3;
    }
    Some(key)
}

/// The subject records of `key` are published to.
#[must_use]
pub fn subject_of_key(prefix: &str, key: &[u8]) -> String {
    format!("{prefix}.{}", token_of_key(key))
}

/// The key of a subject under `prefix`; `None` for any other subject.
#[must_use]
pub fn key_of_subject(prefix: &str, subject: &str) -> Option<Vec<u8>> {
    let token = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    key_of_token(token)
}

/// Check a subject prefix: one or more `.`-separated tokens, each
/// non-empty, printable ASCII without white space, `*` or `>`.
///
/// # Errors
/// [`ExportError::InvalidConfig`] naming what is wrong.
pub fn check_prefix(prefix: &str) -> Result<(), ExportError> {
    let why = if prefix.is_empty() {
        "is empty"
    } else if prefix.len() > MAX_PREFIX_BYTES {
        "is longer than 200 bytes"
    } else if prefix.split('.').any(str::is_empty) {
        "has an empty token (a leading, trailing or doubled '.')"
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
    {
        "holds white space, a wildcard ('*', '>') or a byte that is not printable ASCII"
    } else {
        return Ok(());
    };
    Err(ExportError::InvalidConfig(format!(
        "subject prefix {prefix:?} {why}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(token_of_key(b"orders"), "orders");
        assert_eq!(token_of_key(b"raft/1/log"), "raft%2F1%2Flog");
        assert_eq!(token_of_key(b"price.eur"), "price%2Eeur");
        assert_eq!(token_of_key(b"100%"), "100%25");
        assert_eq!(token_of_key(b""), "%");
        assert_eq!(token_of_key(&[0xff, b' ']), "%FF%20");
        assert_eq!(subject_of_key("wal", b"a.b"), "wal.a%2Eb");
        assert_eq!(key_of_subject("wal", "wal.a%2Eb"), Some(b"a.b".to_vec()));
        assert_eq!(key_of_subject("wal", "other.a"), None);
        assert_eq!(key_of_subject("wal", "walx.a"), None);
    }

    #[test]
    fn tokens_no_key_maps_to_are_refused() {
        for bad in ["", "%2", "%2f", "%41", "a.b", "a%", "%%", "a b", "%G0", "é"] {
            assert_eq!(key_of_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        for good in ["wal", "a.b.c", "nano-wal_1", "$x"] {
            assert!(check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a.*", "a.>", "é", "a\n"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(check_prefix(&"a".repeat(201)).is_err());
    }

    proptest! {
        #[test]
        fn every_key_round_trips_through_a_valid_token(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            let token = token_of_key(&key);
            prop_assert!(!token.is_empty());
            prop_assert!(token.bytes().all(|b| b.is_ascii_graphic() && !b".*>".contains(&b)));
            prop_assert_eq!(key_of_token(&token), Some(key));
        }

        #[test]
        fn a_token_that_decodes_is_the_token_of_its_key(token in "[A-Za-z0-9%_.-]{0,12}") {
            if let Some(key) = key_of_token(&token) {
                prop_assert_eq!(token_of_key(&key), token);
            }
        }
    }
}
