//! The in-memory index of one group's log: Raft index → where the entry
//! lies in the WAL. Rebuilt at open by one scan of the group's log key.
//!
//! Cost: one [`EntryRef`] (24 bytes) per entry held, in a ring buffer, plus
//! the log ids of the first and last entries; nothing per purged entry.

use std::collections::VecDeque;

use nano_wal::EntryRef;

/// Raft indexes `first ..= first + refs.len() - 1` and where they lie.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Raft index of `refs[0]`.
    first: u64,
    refs: VecDeque<EntryRef>,
}

impl Index {
    /// The index of the first entry held, if any.
    pub fn first(&self) -> Option<u64> {
        (!self.refs.is_empty()).then_some(self.first)
    }

    /// The index of the last entry held, if any.
    pub fn last(&self) -> Option<u64> {
        (!self.refs.is_empty()).then(|| self.first + self.refs.len() as u64 - 1)
    }

    /// Where entry `index` lies, if held.
    pub fn get(&self, index: u64) -> Option<EntryRef> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.refs.get(at).copied()
    }

    /// Add entry `index`, which must follow the last one (or start an
    /// empty index). Returns false, changing nothing, if it leaves a hole.
    pub fn push(&mut self, index: u64, r: EntryRef) -> bool {
        match self.last() {
            None => self.first = index,
            Some(last) if last.checked_add(1) == Some(index) => {}
            Some(_) => return false,
        }
        self.refs.push_back(r);
        true
    }

    /// Forget entries from `index` on.
    pub fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first);
        self.refs
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
    }

    /// Forget entries up to and including `index`.
    pub fn purge_through(&mut self, index: u64) {
        let Some(last) = self.last() else { return };
        if index >= last {
            self.refs.clear();
            self.first = index.saturating_add(1);
            return;
        }
        while self.first <= index {
            self.refs.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Index;
    use nano_wal::EntryRef;

    fn r(n: u64) -> EntryRef {
        EntryRef {
            key_hash: 1,
            sequence_number: 1,
            offset: n,
        }
    }

    #[test]
    fn push_get_truncate_purge() {
        let mut ix = Index::default();
        assert_eq!((ix.first(), ix.last()), (None, None));
        for i in 5..10 {
            assert!(ix.push(i, r(i)));
        }
        assert!(!ix.push(11, r(11)), "a hole is refused");
        assert_eq!((ix.first(), ix.last()), (Some(5), Some(9)));
        assert_eq!(ix.get(7), Some(r(7)));
        assert_eq!(ix.get(4), None);
        assert_eq!(ix.get(10), None);
        ix.truncate_from(8);
        assert_eq!(ix.last(), Some(7));
        ix.purge_through(5);
        assert_eq!((ix.first(), ix.last()), (Some(6), Some(7)));
        ix.purge_through(100);
        assert_eq!((ix.first(), ix.last()), (None, None));
        assert!(ix.push(101, r(101)), "appends continue after a full purge");
    }
}
