//! When a segment has expired.

/// Every record in a segment is stamped before its `rotate_at_ms`, so once
/// `rotate_at_ms + retention_ms` has passed, all of them are older than the
/// retention. A clock that steps backwards only delays this.
pub(crate) fn expired(rotate_at_ms: u64, now_ms: u64, retention_ms: u64) -> bool {
    expires_at_ms(rotate_at_ms, retention_ms) <= now_ms
}

/// When a segment rotated at `rotate_at_ms` expires.
pub(crate) fn expires_at_ms(rotate_at_ms: u64, retention_ms: u64) -> u64 {
    rotate_at_ms.saturating_add(retention_ms)
}

#[cfg(test)]
mod tests {
    use super::expired;

    #[test]
    fn expires_once_rotation_plus_retention_has_passed() {
        assert!(!expired(1_000, 1_999, 1_000));
        assert!(expired(1_000, 2_000, 1_000));
        assert!(!expired(u64::MAX - 1, u64::MAX - 1, 10), "no overflow");
    }
}
