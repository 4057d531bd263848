//! A bounded cache of open file handles, so the number of descriptors stays
//! under a limit however many keys and segments there are.
//!
//! Each segment keeps its own handle in a [`HandleSlot`], so a hit costs one
//! uncontended lock on that segment and nothing shared. The cache itself only
//! remembers which segments hold a handle, and picks whom to close with the
//! CLOCK ("second chance") approximation of least-recently-used: a hit sets
//! the segment's reference bit, and the sweeping hand spares a segment whose
//! bit is set once, clearing it.
//!
//! Lock order: the cache's lock, then a slot's lock. A hit takes only the
//! slot's lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::segment::{Segment, SegmentId};
use crate::storage::StorageFile;

/// A handle pushed out of the cache; the caller syncs it if it is dirty.
pub(crate) type Evicted = (Arc<Segment>, Arc<dyn StorageFile>);

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a segment's open handle lives while the cache holds it.
#[derive(Debug, Default)]
pub(crate) struct HandleSlot {
    file: Mutex<Option<Arc<dyn StorageFile>>>,
    referenced: AtomicBool,
}

#[derive(Debug)]
struct Ring {
    capacity: usize,
    /// Segments whose slot holds a handle, in no particular order.
    members: Vec<Arc<Segment>>,
    hand: usize,
}

#[derive(Debug)]
pub(crate) struct HandleCache {
    ring: Mutex<Ring>,
}

impl HandleCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                capacity: capacity.max(1),
                members: Vec::new(),
                hand: 0,
            }),
        }
    }

    /// The cached handle of `segment`, marked as recently used.
    pub fn get(&self, segment: &Segment) -> Option<Arc<dyn StorageFile>> {
        let file = relock(&segment.handle.file).clone()?;
        // Relaxed in `touch`: the bit is a hint for the sweeping hand.
        self.touch(segment);
        Some(file)
    }

    /// Mark `segment`'s handle as recently used, for a caller that reached
    /// it without [`HandleCache::get`].
    pub fn touch(&self, segment: &Segment) {
        if !segment.handle.referenced.load(Ordering::Relaxed) {
            segment.handle.referenced.store(true, Ordering::Relaxed);
        }
    }

    /// Cache `file` for `segment`; returns the handle to use (an existing one
    /// wins a race) and the handles evicted to stay within capacity.
    ///
    /// When full, it closes a sixteenth of the capacity at once, so the
    /// caller can sync dirty evicted handles together rather than one by one.
    pub fn insert(
        &self,
        segment: &Arc<Segment>,
        file: Arc<dyn StorageFile>,
    ) -> (Arc<dyn StorageFile>, Vec<Evicted>) {
        let mut ring = relock(&self.ring);
        {
            let mut slot = relock(&segment.handle.file);
            if let Some(existing) = &*slot {
                return (existing.clone(), Vec::new());
            }
            *slot = Some(file.clone());
        }
        // Unreferenced until used again: a handle touched once (a scan over
        // many cold keys) goes before handles in steady use.
        segment.handle.referenced.store(false, Ordering::Relaxed);
        ring.members.push(segment.clone());
        let evicted = if ring.members.len() > ring.capacity {
            let keep = ring.capacity - (ring.capacity / 16).max(1).min(ring.capacity - 1);
            ring.evict_to(keep, segment)
        } else {
            Vec::new()
        };
        (file, evicted)
    }

    /// Drop the handle of a removed segment.
    pub fn forget(&self, id: SegmentId) {
        let mut ring = relock(&self.ring);
        if let Some(i) = ring.members.iter().position(|s| s.id() == id) {
            let seg = ring.members.swap_remove(i);
            relock(&seg.handle.file).take();
        }
    }

    /// Halve the capacity after the process ran out of descriptors, and
    /// return what no longer fits.
    pub fn shrink(&self) -> Vec<Evicted> {
        let mut ring = relock(&self.ring);
        let target = (ring.members.len() / 2).max(1);
        ring.capacity = target;
        ring.evict_any_to(target.saturating_sub(1))
    }

    /// Every cached handle, emptied out of the cache.
    pub fn drain(&self) -> Vec<Evicted> {
        let mut ring = relock(&self.ring);
        ring.hand = 0;
        ring.members
            .drain(..)
            .filter_map(|seg| {
                let file = relock(&seg.handle.file).take();
                file.map(|f| (seg, f))
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        relock(&self.ring).members.len()
    }
}

impl Ring {
    /// Evict until `keep` remain, sparing `newest` (just inserted).
    fn evict_to(&mut self, keep: usize, newest: &Arc<Segment>) -> Vec<Evicted> {
        let mut out = Vec::new();
        // Each member is spared at most once per sweep, so two full turns
        // always find a victim; the bound only guards against a bug.
        let mut budget = 2 * self.members.len() + 2;
        while self.members.len() > keep && budget > 0 {
            budget -= 1;
            if self.hand >= self.members.len() {
                self.hand = 0;
            }
            let seg = &self.members[self.hand];
            let spare =
                Arc::ptr_eq(seg, newest) || seg.handle.referenced.swap(false, Ordering::Relaxed);
            if spare {
                self.hand += 1;
                continue;
            }
            let seg = self.members.swap_remove(self.hand);
            let file = relock(&seg.handle.file).take();
            if let Some(file) = file {
                out.push((seg, file));
            }
        }
        if self.members.len() > keep {
            out.extend(self.evict_any_to(keep));
        }
        out
    }

    /// Evict from the end until `keep` remain, whatever their reference bits.
    fn evict_any_to(&mut self, keep: usize) -> Vec<Evicted> {
        let mut out = Vec::new();
        while self.members.len() > keep {
            let Some(seg) = self.members.pop() else {
                break;
            };
            let file = relock(&seg.handle.file).take();
            if let Some(file) = file {
                out.push((seg, file));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{OpenMode, StdStorage, Storage};

    fn segment(dir: &std::path::Path, seq: u64) -> (Arc<Segment>, Arc<dyn StorageFile>) {
        let path = dir.join(format!("s{seq}"));
        let file = StdStorage
            .open(&path, OpenMode::CreateNew)
            .expect("create segment file");
        let seg = Arc::new(Segment::new(crate::segment::SegmentInit {
            key_hash: 1,
            sequence: seq,
            path,
            version: 3,
            salt: 0,
            header_len: 0,
            rotate_at_ms: u64::MAX,
            end: 0,
            dir_generation: 0,
            durable_end: 0,
            start: 0,
            last: crate::segment::LastRecord::Unknown,
        }));
        (seg, file)
    }

    #[test]
    fn stays_within_capacity_and_keeps_hot_handles() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = HandleCache::new(32);
        let (hot, f) = segment(tmp.path(), 0);
        cache.insert(&hot, f);
        let mut evicted = 0;
        for seq in 1..200 {
            assert!(cache.get(&hot).is_some(), "the hot handle was evicted");
            let (seg, f) = segment(tmp.path(), seq);
            let (_, out) = cache.insert(&seg, f);
            evicted += out.len();
            assert!(cache.len() <= 32, "{} handles cached", cache.len());
            for (s, _) in &out {
                assert!(
                    cache.get(s).is_none(),
                    "an evicted slot still holds a handle"
                );
            }
        }
        let cached = cache.len();
        assert_eq!(evicted + cached, 200);
        assert_eq!(cache.drain().len(), cached);
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&hot).is_none(), "drain left a handle in a slot");
    }

    #[test]
    fn a_second_insert_returns_the_first_handle() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = HandleCache::new(4);
        let (seg, first) = segment(tmp.path(), 0);
        let (_, second) = segment(tmp.path(), 1);
        let (kept, _) = cache.insert(&seg, first.clone());
        let (again, _) = cache.insert(&seg, second);
        assert!(Arc::ptr_eq(&kept, &first) && Arc::ptr_eq(&again, &first));
        assert_eq!(cache.len(), 1);
        cache.forget(seg.id());
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&seg).is_none());
    }
}
