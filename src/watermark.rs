//! Group commit: a "synced through" watermark guarded by a Mutex and a Condvar.
//!
//! Threads that need bytes up to `target` durable call [`Watermark::wait_synced`].
//! If another thread's sync is in flight they wait for it; otherwise one of
//! them becomes the leader, reads how far data has been written, syncs once
//! without holding the lock, and publishes the new watermark to everyone.

use crate::error::PoisonCause;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct State {
    synced_through: u64,
    syncing: bool,
    /// Set by a failed sync; never cleared. Retrying a failed fsync can
    /// "succeed" after the kernel dropped the dirty pages, so we never retry.
    failed: Option<PoisonCause>,
    /// Threads blocked waiting for a sync in flight.
    waiting: usize,
}

/// Most times a sync leader yields to let other appenders write first.
const GATHER_YIELDS: usize = 32;

/// A durability watermark with one sync in flight at a time.
#[derive(Debug, Default)]
pub(crate) struct Watermark {
    state: Mutex<State>,
    changed: Condvar,
    /// Mirrors `State::failed.is_some()`, so the append path can check for a
    /// failure without taking the lock.
    has_failed: AtomicBool,
}

fn relock<'a, T>(
    r: Result<MutexGuard<'a, T>, PoisonError<MutexGuard<'a, T>>>,
) -> MutexGuard<'a, T> {
    r.unwrap_or_else(PoisonError::into_inner)
}

impl Watermark {
    pub fn new(synced_through: u64) -> Self {
        Self {
            state: Mutex::new(State {
                synced_through,
                ..State::default()
            }),
            changed: Condvar::new(),
            has_failed: AtomicBool::new(false),
        }
    }

    pub fn synced_through(&self) -> u64 {
        relock(self.state.lock()).synced_through
    }

    /// The failure that poisoned this watermark, if any.
    pub fn failure(&self) -> Option<PoisonCause> {
        // Acquire pairs with the Release in `fail`: whoever sees the flag
        // also sees the message.
        if !self.has_failed.load(Ordering::Acquire) {
            return None;
        }
        relock(self.state.lock()).failed.clone()
    }

    /// Record the first failure (the caller holds the lock).
    fn fail(&self, st: &mut State, cause: PoisonCause) {
        st.failed.get_or_insert(cause);
        self.has_failed.store(true, Ordering::Release);
    }

    /// Mark as failed: every later wait reports `cause`.
    pub fn poison(&self, cause: PoisonCause) {
        let mut st = relock(self.state.lock());
        self.fail(&mut st, cause);
        self.changed.notify_all();
    }

    /// How far data is written, once the other appenders have had their
    /// turn. Waking after a sync, they write their next records within
    /// microseconds; yielding the processor to them until all of them wait
    /// (and the written position stops moving) lets one fsync cover them
    /// all, where starting at once would cover only the leader's record.
    /// With more threads than cores that is several times the throughput.
    /// A lone appender (`appenders() <= 1`) does not yield at all.
    fn gather(&self, written: &impl Fn() -> u64, appenders: &impl Fn() -> usize) -> u64 {
        let mut through = written();
        for _ in 0..GATHER_YIELDS {
            let waiting = relock(self.state.lock()).waiting;
            if waiting + 1 >= appenders() {
                break;
            }
            std::thread::yield_now();
            through = written();
        }
        through
    }

    /// Return once everything up to `target` is durable.
    ///
    /// `written` tells how far data has been written; it is read by the
    /// leader just before it syncs, so the sync covers at least that much.
    /// `sync` performs the actual fsync. Errors carry the poisoning message.
    /// `appenders` counts the threads that are appending and will wait here
    /// (the leader included); the leader holds its sync for them briefly.
    pub fn wait_synced(
        &self,
        target: u64,
        written: impl Fn() -> u64,
        appenders: impl Fn() -> usize,
        sync: impl Fn() -> Result<(), PoisonCause>,
    ) -> Result<(), PoisonCause> {
        let mut st = relock(self.state.lock());
        loop {
            if let Some(msg) = &st.failed {
                return Err(msg.clone());
            }
            if st.synced_through >= target {
                // Another thread's sync already covered our bytes.
                return Ok(());
            }
            if st.syncing {
                // A sync is in flight; it may cover us. Wait and look again.
                st.waiting += 1;
                st = relock(self.changed.wait(st));
                st.waiting -= 1;
                continue;
            }
            st.syncing = true;
            drop(st);
            let through = self.gather(&written, &appenders);
            let result = sync();
            st = relock(self.state.lock());
            st.syncing = false;
            match result {
                Ok(()) => st.synced_through = st.synced_through.max(through),
                Err(cause) => self.fail(&mut st, cause),
            }
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_waiters_share_syncs() {
        let wm = Arc::new(Watermark::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (1..=16u64)
            .map(|i| {
                let (wm, written, syncs) = (wm.clone(), written.clone(), syncs.clone());
                std::thread::spawn(move || {
                    written.fetch_max(i, Ordering::SeqCst);
                    wm.wait_synced(
                        i,
                        || written.load(Ordering::SeqCst),
                        || 16,
                        || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            Ok(())
                        },
                    )
                })
            })
            .collect();
        for t in threads {
            assert!(matches!(t.join().ok(), Some(Ok(()))));
        }
        assert!(wm.synced_through() >= 16);
        assert!(syncs.load(Ordering::SeqCst) <= 16);
    }

    #[test]
    fn a_failed_sync_poisons_forever() {
        let wm = Watermark::new(0);
        let err = wm.wait_synced(5, || 5, || 1, || Err(PoisonCause::message("EIO".into())));
        assert!(err.is_err());
        // A later sync that would succeed is never attempted.
        assert!(wm.wait_synced(5, || 5, || 1, || Ok(())).is_err());
        assert_eq!(wm.synced_through(), 0);
    }
}
