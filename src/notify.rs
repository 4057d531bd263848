//! Waking subscribers when records are published, without a syscall on the
//! append path while nobody waits.
//!
//! An appender publishes its records (a `Release` store of the segment's
//! end), then, past a `SeqCst` fence, reads `waiting`; a subscriber adds
//! itself to `waiting`, passes a `SeqCst` fence, then looks for records
//! again before it sleeps. One of the two always sees the other: either
//! the appender wakes the subscriber, or the subscriber finds the records.

use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Lock order: `generation` is a leaf (nothing is taken while holding it).
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    waiting: AtomicUsize,
    generation: Mutex<u64>,
    woken: Condvar,
}

impl Notifier {
    /// Records were published (or the handle closed): wake every waiter.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *g += 1;
        self.woken.notify_all();
    }

    /// Run `poll` until it finds something (`Ok(Some)`), fails, or
    /// `deadline` passes (`Ok(None)`); between polls, sleep until the next
    /// notification.
    pub fn wait_for<T, E>(
        &self,
        deadline: Option<Instant>,
        mut poll: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        loop {
            if let Some(found) = poll()? {
                return Ok(Some(found));
            }
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let seen = *self
                .generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            fence(Ordering::SeqCst);
            let again = poll();
            if !matches!(again, Ok(None)) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return again;
            }
            let timed_out = self.sleep(seen, deadline);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if timed_out {
                return poll();
            }
        }
    }

    /// Sleep until the generation moves past `seen` (false) or the
    /// deadline passes (true).
    fn sleep(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *g == seen {
            let now = Instant::now();
            let until_deadline = deadline.map(|d| d.saturating_duration_since(now));
            if until_deadline.is_some_and(|d| d.is_zero()) {
                return true;
            }
            let wait = until_deadline.unwrap_or(std::time::Duration::from_secs(3600));
            g = self
                .woken
                .wait_timeout(g, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Notifier;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn a_waiter_wakes_on_notify_and_times_out_without_one() {
        let n = Arc::new(Notifier::default());
        let flag = Arc::new(AtomicBool::new(false));
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        let r: Result<Option<()>, ()> = n.wait_for(deadline, || Ok(None));
        assert_eq!(r, Ok(None), "timed out");
        let (n2, f2) = (n.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            f2.store(true, Ordering::Release);
            n2.notify();
        });
        let r: Result<Option<u8>, ()> =
            n.wait_for(None, || Ok(flag.load(Ordering::Acquire).then_some(7)));
        assert_eq!(r, Ok(Some(7)));
        t.join().expect("notifier thread");
    }
}
