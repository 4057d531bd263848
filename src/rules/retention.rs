//! When a segment has expired.

/// Every record in a segment is stamped before its `rotate_at_ms`, so once
/// `rotate_at_ms + retention_ms` has passed, all of them are older than the
/// retention. A clock that steps backwards only delays this.
pub(crate) fn expired(rotate_at_ms: u64, now_ms: u64, retention_ms: u64) -> bool {
    expires_at_ms(rotate_at_ms, retention_ms) <= now_ms
}

/// What retention knows of a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentAge {
    pub rotate_at_ms: u64,
    pub has_records: bool,
}

/// What retention removes from one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removal {
    /// How many of the key's oldest segments go.
    pub count: usize,
    /// Every segment expired and the newest holds records: an empty
    /// successor is created (and made durable) first, so the key's sequence
    /// never goes back.
    pub creates_successor: bool,
}

/// Which of a key's segments (oldest first) retention removes: only the
/// oldest, up to the first that has not expired, so no gap ever opens. If
/// every one expired, the newest goes too only when a successor can be
/// created for it (`may_create_successor`: the writer is not poisoned) and
/// it holds records; otherwise it stays, so its sequence is never reused.
pub(crate) fn removal(
    ages: &[SegmentAge],
    now_ms: u64,
    retention_ms: u64,
    may_create_successor: bool,
) -> Removal {
    let n_expired = ages
        .iter()
        .take_while(|s| expired(s.rotate_at_ms, now_ms, retention_ms))
        .count();
    let all = n_expired > 0 && n_expired == ages.len();
    let creates_successor =
        all && may_create_successor && ages.last().is_some_and(|s| s.has_records);
    let count = if all && !creates_successor {
        n_expired - 1
    } else {
        n_expired
    };
    Removal {
        count,
        creates_successor,
    }
}

/// How many of a key's oldest segments a size bound removes: the oldest go
/// while the segments after them still hold at least `keep` (bytes or
/// records; `amounts` oldest first). The newest segment always stays.
pub(crate) fn removal_by_amount(amounts: &[u64], keep: u64) -> usize {
    let mut after: u64 = amounts.iter().sum();
    let mut count = 0;
    for (i, a) in amounts.iter().enumerate() {
        after -= a;
        if i + 1 == amounts.len() || after < keep {
            break;
        }
        count += 1;
    }
    count
}

/// When a segment rotated at `rotate_at_ms` expires.
pub(crate) fn expires_at_ms(rotate_at_ms: u64, retention_ms: u64) -> u64 {
    rotate_at_ms.saturating_add(retention_ms)
}

#[cfg(test)]
mod tests {
    use super::expired;

    #[test]
    fn only_the_oldest_expired_segments_go_and_the_newest_needs_a_successor() {
        let age = |rotate_at_ms, has_records| super::SegmentAge {
            rotate_at_ms,
            has_records,
        };
        let segs = [age(10, true), age(20, true), age(1_000, true)];
        let r = super::removal(&segs, 500, 100, true);
        assert_eq!((r.count, r.creates_successor), (2, false));
        let all = [age(10, true), age(20, true)];
        let r = super::removal(&all, 500, 100, true);
        assert_eq!((r.count, r.creates_successor), (2, true));
        let r = super::removal(&all, 500, 100, false);
        assert_eq!(
            (r.count, r.creates_successor),
            (1, false),
            "poisoned: no successor"
        );
        let empty_newest = [age(10, true), age(20, false)];
        let r = super::removal(&empty_newest, 500, 100, true);
        assert_eq!((r.count, r.creates_successor), (1, false));
        assert_eq!(super::removal(&[], 500, 100, true).count, 0);
    }

    #[test]
    fn size_bounds_remove_the_oldest_while_enough_remains_after_them() {
        use super::removal_by_amount;
        assert_eq!(removal_by_amount(&[10, 10, 10], 15), 1);
        assert_eq!(removal_by_amount(&[10, 10, 10], 10), 2);
        assert_eq!(removal_by_amount(&[10, 10, 10], 0), 2, "the newest stays");
        assert_eq!(removal_by_amount(&[10, 10, 10], 31), 0);
        assert_eq!(removal_by_amount(&[5], 0), 0);
        assert_eq!(removal_by_amount(&[], 0), 0);
    }

    #[test]
    fn expires_once_rotation_plus_retention_has_passed() {
        assert!(!expired(1_000, 1_999, 1_000));
        assert!(expired(1_000, 2_000, 1_000));
        assert!(!expired(u64::MAX - 1, u64::MAX - 1, 10), "no overflow");
    }
}
