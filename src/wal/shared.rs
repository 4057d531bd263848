//! One open log per directory per process: a second `Wal::new` (or `open`)
//! of a directory this process has open returns a handle to the same log
//! (nano-wal 0.5 allowed opening a directory twice; its handles both
//! wrote). The directory's lock is held once, by the log, until its last
//! handle is closed or dropped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::engine::Engine;
use crate::recovery::RecoveryReport;
use crate::storage::LockGuard;

/// What every handle of one open log shares. Dropping the last handle
/// closes the log (without the closing checkpoint) and releases the lock.
#[derive(Debug)]
pub(crate) struct Owner {
    pub engine: Arc<Engine>,
    /// Lock order: a leaf.
    pub lock: Mutex<Option<Box<dyn LockGuard>>>,
    pub report: RecoveryReport,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Drop cannot report an error, and without a checkpoint none is
        // possible: closing only drops handles and the lock.
        drop(super::release(&self.engine, &self.lock, false));
    }
}

/// The logs this process has open, by their directory's shared-handle key.
/// Lock order: taken before anything else an open takes, and held for the
/// whole open, so two threads opening one directory get one log.
static OPEN: Mutex<Vec<(PathBuf, Weak<Owner>)>> = Mutex::new(Vec::new());

pub(crate) fn registry() -> MutexGuard<'static, Vec<(PathBuf, Weak<Owner>)>> {
    OPEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The open log of directory `key`, if there is one still open.
pub(crate) fn find(
    open: &mut Vec<(PathBuf, Weak<Owner>)>,
    key: &std::path::Path,
) -> Option<Arc<Owner>> {
    open.retain(|(_, w)| w.strong_count() > 0);
    open.iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, w)| w.upgrade())
        .find(|o| o.engine.check_open().is_ok())
}
