//! A bounded LRU of open file handles, so the number of descriptors stays
//! under a limit however many keys and segments there are.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, PoisonError};

use crate::segment::{Segment, SegmentId};
use crate::storage::StorageFile;

/// A handle pushed out of the cache; the caller syncs it if it is dirty.
pub(crate) type Evicted = (Arc<Segment>, Arc<dyn StorageFile>);

#[derive(Debug)]
struct Slot {
    file: Arc<dyn StorageFile>,
    segment: Arc<Segment>,
    tick: u64,
}

#[derive(Debug)]
struct Lru {
    capacity: usize,
    tick: u64,
    slots: HashMap<SegmentId, Slot, BuildHasherDefault<DefaultHasher>>,
    by_age: BTreeMap<u64, SegmentId>,
}

#[derive(Debug)]
pub(crate) struct HandleCache {
    lru: Mutex<Lru>,
}

impl HandleCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            lru: Mutex::new(Lru {
                capacity: capacity.max(1),
                tick: 0,
                slots: HashMap::default(),
                by_age: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached handle for `id`, marked as most recently used.
    pub fn get(&self, id: SegmentId) -> Option<Arc<dyn StorageFile>> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let slot = lru.slots.get_mut(&id)?;
        let old = std::mem::replace(&mut slot.tick, tick);
        let file = slot.file.clone();
        lru.by_age.remove(&old);
        lru.by_age.insert(tick, id);
        Some(file)
    }

    /// Cache `file` for `segment`; returns the handle to use (an existing one
    /// wins a race) and the handles evicted to stay within capacity.
    pub fn insert(
        &self,
        segment: &Arc<Segment>,
        file: Arc<dyn StorageFile>,
    ) -> (Arc<dyn StorageFile>, Vec<Evicted>) {
        let id = segment.id();
        if let Some(existing) = self.get(id) {
            return (existing, Vec::new());
        }
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        lru.by_age.insert(tick, id);
        lru.slots.insert(
            id,
            Slot {
                file: file.clone(),
                segment: segment.clone(),
                tick,
            },
        );
        let capacity = lru.capacity;
        let evicted = lru.evict_to(capacity);
        (file, evicted)
    }

    /// Drop the handle of a removed segment.
    pub fn forget(&self, id: SegmentId) {
        let mut lru = self.lock();
        if let Some(slot) = lru.slots.remove(&id) {
            lru.by_age.remove(&slot.tick);
        }
    }

    /// Halve the capacity after the process ran out of descriptors, and
    /// return what no longer fits.
    pub fn shrink(&self) -> Vec<Evicted> {
        let mut lru = self.lock();
        let target = (lru.slots.len() / 2).max(1);
        lru.capacity = target;
        lru.evict_to(target.saturating_sub(1))
    }

    /// Every cached handle, emptied out of the cache.
    pub fn drain(&self) -> Vec<Evicted> {
        let mut lru = self.lock();
        lru.by_age.clear();
        lru.slots
            .drain()
            .map(|(_, s)| (s.segment, s.file))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

impl Lru {
    fn evict_to(&mut self, keep: usize) -> Vec<Evicted> {
        let mut out = Vec::new();
        while self.slots.len() > keep {
            let Some((_, id)) = self.by_age.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&id) {
                out.push((slot.segment, slot.file));
            }
        }
        out
    }
}
