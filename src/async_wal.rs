//! An async front (feature `tokio`): durable appends as futures that
//! resolve at durability without blocking a runtime thread, and
//! subscriptions as `Stream`s.
//!
//! An append is written at once (one write call, as a non-durable append)
//! and its future waits for one background thread that makes the journal
//! durable through the newest position any waiting append needs: one
//! fdatasync covers every append in flight, from any number of tasks.

use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use crate::entry_ref::{EntryRef, Record};
use crate::error::{PoisonCause, Result, WalError};
use crate::wal::Wal;

/// A journal position to make durable, the records it covers, and where to
/// say when it is.
type Waiter = (u64, usize, tokio::sync::oneshot::Sender<Result<()>>);

/// Lock order: `state` is a leaf.
#[derive(Debug, Default)]
struct Syncer {
    state: Mutex<SyncState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    waiting: Vec<Waiter>,
    stop: bool,
}

impl Syncer {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records subscribed to, as a [`futures_core::Stream`]: a thread follows
/// the key and hands records over through a channel of 64, so a slow
/// consumer holds at most that many.
#[derive(Debug)]
pub struct RecordStream {
    rx: tokio::sync::mpsc::Receiver<Result<Record>>,
}

impl futures_core::Stream for RecordStream {
    type Item = Result<Record>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The async front of a [`Wal`]. Cheap to clone; the background thread
/// ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct AsyncWal {
    wal: Arc<Wal>,
    syncer: Arc<Syncer>,
    _stopper: Arc<Stopper>,
}

/// Stops the background thread when the last `AsyncWal` clone goes.
#[derive(Debug)]
struct Stopper(Arc<Syncer>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.lock().stop = true;
        self.0.wake.notify_all();
    }
}

/// A copy of a durability failure for every append that waited on it.
fn fan_out(r: &Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(WalError::Closed) => Err(WalError::Closed),
        Err(WalError::Poisoned(c)) => Err(WalError::Poisoned(c.clone())),
        Err(other) => Err(WalError::Poisoned(PoisonCause::describing(other))),
    }
}

/// The background thread holds the log weakly: once every `AsyncWal` clone
/// and every other handle is gone, appends still waiting get `Closed`.
fn run_syncer(wal: &std::sync::Weak<Wal>, syncer: &Syncer) {
    loop {
        let batch = {
            let mut st = syncer.lock();
            while st.waiting.is_empty() && !st.stop {
                st = syncer.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if st.waiting.is_empty() {
                return;
            }
            std::mem::take(&mut st.waiting)
        };
        let target = batch.iter().map(|(lsn, _, _)| *lsn).max().unwrap_or(0);
        let records = batch.iter().map(|(_, n, _)| n).sum();
        let r = match wal.upgrade() {
            Some(wal) => wal.durable_through(target, records),
            None => Err(WalError::Closed),
        };
        for (_, _, tx) in batch {
            // The future may have been dropped: nobody to tell.
            let _ = tx.send(fan_out(&r));
        }
    }
}

impl AsyncWal {
    /// The async front of `wal`; starts its durability thread.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn new(wal: Arc<Wal>) -> Result<Self> {
        let syncer = Arc::new(Syncer::default());
        let (w, s) = (Arc::downgrade(&wal), syncer.clone());
        std::thread::Builder::new()
            .name("nano-wal-async-sync".into())
            .spawn(move || run_syncer(&w, &s))?;
        Ok(Self {
            wal,
            syncer: syncer.clone(),
            _stopper: Arc::new(Stopper(syncer)),
        })
    }

    /// The [`Wal`] behind this front.
    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    async fn durable(&self, lsn: u64, records: usize) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.syncer.lock().waiting.push((lsn, records, tx));
        self.syncer.wake.notify_one();
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Append durably: resolves once the record would survive power loss.
    /// The write happens when this is called (not when it is first
    /// polled), so many appends can be in flight from one task, covered by
    /// one fdatasync.
    ///
    /// # Errors
    /// As [`Wal::append_entry`].
    pub fn append<K: AsRef<[u8]> + std::hash::Hash + std::fmt::Display>(
        &self,
        key: K,
        header: Option<Bytes>,
        content: Bytes,
    ) -> impl Future<Output = Result<EntryRef>> + Send + 'static {
        let written = self.wal.append_unsynced(key, header, content);
        let me = self.clone();
        async move {
            let (entry_ref, lsn) = written?;
            me.durable(lsn, 1).await?;
            Ok(entry_ref)
        }
    }

    /// Append a batch durably (atomic, as [`Wal::append_batch`]); written
    /// when called, resolved at durability.
    ///
    /// # Errors
    /// As [`Wal::append_batch`].
    pub fn append_batch<K, I>(
        &self,
        entries: I,
    ) -> impl Future<Output = Result<Vec<EntryRef>>> + Send + 'static
    where
        K: AsRef<[u8]> + std::hash::Hash + std::fmt::Display,
        I: IntoIterator<Item = (K, Option<Bytes>, Bytes)>,
    {
        let written = self.wal.append_batch_unsynced(entries);
        let me = self.clone();
        async move {
            let (refs, lsn) = written?;
            if !refs.is_empty() {
                me.durable(lsn, refs.len()).await?;
            }
            Ok(refs)
        }
    }

    /// Follow `key` from `from` (inclusive; `None`: its first record) as a
    /// stream; see [`Wal::subscribe`]. A thread per stream waits for
    /// records; it ends when the stream is dropped or the log closes.
    ///
    /// # Errors
    /// As [`Wal::subscribe`].
    pub fn subscribe<K: AsRef<[u8]>>(
        &self,
        key: K,
        from: Option<EntryRef>,
    ) -> Result<RecordStream> {
        let mut sub = self.wal.subscribe(key, from)?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        std::thread::Builder::new()
            .name("nano-wal-subscription".into())
            .spawn(move || {
                while !tx.is_closed() {
                    let item = match sub.next_timeout(Duration::from_millis(200)) {
                        Ok(None) => continue,
                        Ok(Some(r)) => Ok(r),
                        Err(WalError::Closed) => return,
                        Err(e) => Err(e),
                    };
                    let failed = item.is_err();
                    if tx.blocking_send(item).is_err() || failed {
                        return;
                    }
                }
            })?;
        Ok(RecordStream { rx })
    }
}
