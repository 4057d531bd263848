//! Generated workloads, a runner that records what the WAL acknowledged and
//! when (in logged disk operations), and the oracle that checks a WAL
//! recovered from any crash point against that record.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Record, Wal, WalBuilder, WalError};

use crate::disk::SimDisk;
use crate::rng::Rng;

/// Where the WAL lives on the simulated disk.
pub const WAL_DIR: &str = "/wal";
/// The clock's starting time.
pub const START_MS: u64 = 1_800_000_000_000;

/// One step of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `append_entry`.
    Append {
        /// Key index.
        key: usize,
        /// Header, if any.
        header: Option<Vec<u8>>,
        /// Content length in bytes.
        len: usize,
        /// Durable append.
        durable: bool,
    },
    /// `append_batch` of `(key, header, content length)`.
    Batch {
        /// The entries.
        entries: Vec<(usize, Option<Vec<u8>>, usize)>,
        /// Durable batch.
        durable: bool,
    },
    /// `sync()`.
    Sync,
    /// Move the clock forward.
    Advance {
        /// Milliseconds.
        ms: u64,
    },
    /// `compact()`.
    Compact,
    /// Drop the handle and open again.
    Reopen,
    /// `close()` and open again.
    Close,
    /// `truncate_from` a record of the key: the `back`-th from its end
    /// (modulo the records it holds).
    Truncate {
        /// Key index.
        key: usize,
        /// Which record, counted from the newest.
        back: usize,
    },
    /// `purge_before` a record of the key: the `back`-th from its end.
    Purge {
        /// Key index.
        key: usize,
        /// Which record, counted from the newest.
        back: usize,
    },
}

/// The shape of a generated workload.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Generator seed.
    pub seed: u64,
    /// Number of steps.
    pub steps: usize,
    /// Number of distinct keys.
    pub keys: usize,
    /// Largest content, in bytes.
    pub max_content_bytes: usize,
    /// Segment size limit passed to the builder.
    pub max_segment_bytes: u64,
    /// Retention in milliseconds (whole seconds).
    pub retention_ms: u64,
    /// Segments per retention period.
    pub segments_per_period: u32,
    /// Percent of appends that are durable.
    pub durable_pct: u64,
    /// Percent of steps that are batches.
    pub batch_pct: u64,
    /// Percent of steps that are syncs.
    pub sync_pct: u64,
    /// Percent of steps that advance the clock.
    pub advance_pct: u64,
    /// Percent of steps that compact.
    pub compact_pct: u64,
    /// Percent of steps that reopen or close.
    pub reopen_pct: u64,
    /// Journal bytes between checkpoints, passed to the builder.
    pub journal_checkpoint_bytes: u64,
    /// Percent of steps that truncate or purge a key (0 leaves the
    /// generated steps exactly as before these operations existed).
    pub trim_pct: u64,
    /// `max_unapplied_bytes`, passed to the builder (0: no in-memory
    /// segment tails).
    pub max_unapplied_bytes: u64,
}

impl Spec {
    /// A spec with every mix at a moderate level.
    pub fn mixed(seed: u64) -> Self {
        Spec {
            seed,
            steps: 40,
            keys: 3,
            max_content_bytes: 300,
            max_segment_bytes: 4096,
            retention_ms: 60_000,
            segments_per_period: 6,
            durable_pct: 30,
            batch_pct: 15,
            sync_pct: 8,
            advance_pct: 10,
            compact_pct: 6,
            reopen_pct: 5,
            journal_checkpoint_bytes: 16 << 10,
            trim_pct: 0,
            max_unapplied_bytes: 0,
        }
    }

    /// The builder this workload opens its WAL with.
    pub fn builder(&self, disk: &SimDisk, clock: Arc<ManualClock>) -> WalBuilder {
        Wal::builder(WAL_DIR)
            .storage(disk.storage())
            .clock(clock)
            .max_segment_bytes(self.max_segment_bytes)
            .retention(std::time::Duration::from_millis(self.retention_ms))
            .segments_per_retention_period(self.segments_per_period)
            .max_open_files(4)
            .journal_checkpoint_bytes(self.journal_checkpoint_bytes)
            .max_unapplied_bytes(self.max_unapplied_bytes)
            // Checkpoints run inline: the same operations in the same order on
            // every run of a workload.
            .background_checkpoints(false)
    }

    /// Generate the steps.
    pub fn generate(&self) -> Vec<Step> {
        let mut rng = Rng::new(self.seed);
        let mut steps = Vec::with_capacity(self.steps);
        let entry = |rng: &mut Rng| {
            let header = rng.chance(1, 3).then(|| vec![b'h'; rng.index(20)]);
            (
                rng.index(self.keys),
                header,
                rng.index(self.max_content_bytes + 1),
            )
        };
        for _ in 0..self.steps {
            let roll = rng.below(100);
            let mut edge = self.batch_pct;
            let step = if roll < edge {
                let n = 1 + rng.index(6);
                Step::Batch {
                    entries: (0..n).map(|_| entry(&mut rng)).collect(),
                    durable: rng.below(100) < self.durable_pct,
                }
            } else if roll < {
                edge += self.sync_pct;
                edge
            } {
                Step::Sync
            } else if roll < {
                edge += self.advance_pct;
                edge
            } {
                Step::Advance {
                    ms: rng.below(self.retention_ms / u64::from(self.segments_per_period) * 2),
                }
            } else if roll < {
                edge += self.compact_pct;
                edge
            } {
                Step::Compact
            } else if roll < {
                edge += self.reopen_pct;
                edge
            } {
                if rng.chance(1, 2) {
                    Step::Reopen
                } else {
                    Step::Close
                }
            } else if roll < {
                edge += self.trim_pct;
                edge
            } {
                let (key, back) = (rng.index(self.keys), rng.index(8));
                if rng.chance(1, 2) {
                    Step::Truncate { key, back }
                } else {
                    Step::Purge { key, back }
                }
            } else {
                let (key, header, len) = entry(&mut rng);
                Step::Append {
                    key,
                    header,
                    len,
                    durable: rng.below(100) < self.durable_pct,
                }
            };
            steps.push(step);
        }
        steps
    }
}

/// The key name for a key index.
pub fn key_name(k: usize) -> String {
    format!("key-{k}")
}

/// One record the workload tried to append.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Key index.
    pub key: usize,
    /// Header given.
    pub header: Option<Bytes>,
    /// Content given (unique across the workload).
    pub content: Bytes,
    /// Clock reading at the append.
    pub at_ms: u64,
    /// Disk operations logged before the append began.
    pub issued_op: usize,
    /// Disk operations logged when the append returned `Ok`.
    pub acked_op: Option<usize>,
    /// Disk operations logged when a durable append or a sync covering it
    /// returned `Ok`.
    pub durable_op: Option<usize>,
    /// The reference returned.
    pub entry_ref: Option<EntryRef>,
    /// The append returned an error, or an error came before the record
    /// was durable: it may or may not be stored.
    pub failed: bool,
    /// For a record of `append_batch`, the index of the batch's first
    /// record: a recovered WAL holds all of the batch or none of it.
    pub batch: Option<usize>,
    /// A `truncate_from` or `purge_before` that removes this record.
    pub removed: Option<Removal>,
}

/// A call that removes a record: it may be gone once the call began, and
/// must be gone once the call returned `Ok` (it is durable then).
#[derive(Debug, Clone, Copy)]
pub struct Removal {
    /// The record the call named (with `issued_op`, it tells calls apart:
    /// a call that failed without touching the disk and the next one share
    /// `issued_op`).
    pub target: usize,
    /// Disk operations logged before the call began.
    pub issued_op: usize,
    /// Disk operations logged when it returned `Ok`.
    pub acked_op: Option<usize>,
}

impl Appended {
    /// It may be absent after a crash at `upto`: its append failed, or a
    /// removal of it had begun.
    fn may_be_absent(&self, upto: usize) -> bool {
        self.failed || self.removed.is_some_and(|r| r.issued_op < upto)
    }

    /// It must be absent after a crash at `upto`: its removal was
    /// acknowledged (durable) by then.
    fn must_be_absent(&self, upto: usize) -> bool {
        self.removed
            .is_some_and(|r| r.acked_op.is_some_and(|a| a <= upto))
    }
}

/// What happened during a run.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Every append attempted, in order.
    pub records: Vec<Appended>,
    /// `(disk operations before it began, clock)` of every compaction.
    pub compactions: Vec<(usize, u64)>,
    /// Errors returned by the WAL, with the step index.
    pub errors: Vec<(usize, String)>,
    /// Clock reading at the end.
    pub end_ms: u64,
}

fn content_for(n: usize, len: usize) -> Bytes {
    let mut v = format!("#{n}#").into_bytes();
    v.resize(len.max(v.len()), b'a' + u8::try_from(n % 26).unwrap_or(0));
    Bytes::from(v)
}

/// Run `steps` on `disk`. With `tolerate_errors` false any error is a bug
/// and is returned; otherwise errors are recorded and the run goes on.
///
/// # Errors
/// The first WAL error, unless errors are tolerated.
pub fn run(
    spec: &Spec,
    steps: &[Step],
    disk: &SimDisk,
    tolerate_errors: bool,
) -> Result<History, String> {
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut h = History::default();
    let mut wal = Some(
        spec.builder(disk, clock.clone())
            .open()
            .map_err(|e| format!("open: {e}"))?,
    );
    for (i, step) in steps.iter().enumerate() {
        if wal.is_none() {
            break;
        }
        let before = h.records.len();
        let errors_before = disk.errors_injected();
        let outcome = apply(spec, step, disk, &clock, &mut h, &mut wal);
        if disk.errors_injected() > errors_before {
            // An I/O error happened, reported or not (a sync while closing
            // an evicted handle reports to the key's next caller): records
            // not yet durable may be lost, like at a crash.
            h.may_have_lost_undurable(before);
        }
        if let Err(e) = outcome {
            for r in &mut h.records[before..] {
                r.failed = r.acked_op.is_none();
            }
            // After an I/O error, records not yet durable may be lost (the
            // guarantee: what was written since the last successful sync
            // counts as lost), like at a crash.
            h.may_have_lost_undurable(before);
            if !tolerate_errors {
                return Err(format!("step {i} {step:?}: {e}"));
            }
            h.errors.push((i, e.to_string()));
        }
    }
    h.end_ms = clock.now_ms();
    Ok(h)
}

trait Now {
    fn now_ms(&self) -> u64;
}
impl Now for ManualClock {
    fn now_ms(&self) -> u64 {
        nano_wal::Clock::now_unix_ms(self)
    }
}

fn mark_durable(h: &mut History, op: usize, filter: impl Fn(&Appended) -> bool) {
    for r in h
        .records
        .iter_mut()
        .filter(|r| r.acked_op.is_some() && r.durable_op.is_none())
    {
        if filter(r) {
            r.durable_op = Some(op);
        }
    }
}

fn apply(
    spec: &Spec,
    step: &Step,
    disk: &SimDisk,
    clock: &Arc<ManualClock>,
    h: &mut History,
    wal: &mut Option<Wal>,
) -> Result<(), WalError> {
    let now = clock.now_ms();
    if matches!(step, Step::Reopen | Step::Close) {
        let old = wal.take();
        if let (Step::Close, Some(old)) = (step, old) {
            old.close()?;
            mark_durable(h, disk.ops(), |_| true);
        }
        *wal = Some(spec.builder(disk, clock.clone()).open()?);
        return Ok(());
    }
    let w = wal.as_ref().ok_or(WalError::Closed)?;
    match step {
        Step::Append {
            key,
            header,
            len,
            durable,
        } => {
            let idx = h.records.len();
            let content = content_for(idx, *len);
            let header = header.clone().map(Bytes::from);
            h.records.push(Appended {
                key: *key,
                header: header.clone(),
                content: content.clone(),
                at_ms: now,
                issued_op: disk.ops(),
                acked_op: None,
                durable_op: None,
                entry_ref: None,
                failed: false,
                batch: None,
                removed: None,
            });
            let r = w.append_entry(key_name(*key), header, content, *durable)?;
            let op = disk.ops();
            h.records[idx].acked_op = Some(op);
            h.records[idx].entry_ref = Some(r);
            if *durable {
                // One journal: every record acknowledged so far, of every
                // key, is durable with this one.
                mark_durable(h, op, |_| true);
            }
        }
        Step::Batch { entries, durable } => {
            let first = h.records.len();
            let issued = disk.ops();
            let mut batch = Vec::new();
            for (n, (key, header, len)) in entries.iter().enumerate() {
                let content = content_for(first + n, *len);
                let header = header.clone().map(Bytes::from);
                batch.push((key_name(*key), header.clone(), content.clone()));
                h.records.push(Appended {
                    key: *key,
                    header,
                    content,
                    at_ms: now,
                    issued_op: issued,
                    acked_op: None,
                    durable_op: None,
                    entry_ref: None,
                    failed: false,
                    batch: Some(first),
                    removed: None,
                });
            }
            let refs = w.append_batch(batch, *durable)?;
            let op = disk.ops();
            for (n, r) in refs.into_iter().enumerate() {
                h.records[first + n].acked_op = Some(op);
                h.records[first + n].entry_ref = Some(r);
            }
            if *durable {
                mark_durable(h, op, |_| true);
            }
        }
        Step::Sync => {
            w.sync()?;
            mark_durable(h, disk.ops(), |_| true);
        }
        Step::Advance { ms } => clock.advance_ms(*ms),
        Step::Compact => {
            h.compactions.push((disk.ops(), now));
            w.compact()?;
        }
        Step::Truncate { key, back } => trim(h, disk, w, *key, *back, true)?,
        Step::Purge { key, back } => trim(h, disk, w, *key, *back, false)?,
        Step::Reopen | Step::Close => {}
    }
    Ok(())
}

/// Truncate from (or purge before) one of the key's records that is
/// certainly present, and note which records the call removes.
fn trim(
    h: &mut History,
    disk: &SimDisk,
    w: &Wal,
    key: usize,
    back: usize,
    truncate: bool,
) -> Result<(), WalError> {
    let present: Vec<usize> = (0..h.records.len())
        .filter(|&i| {
            let r = &h.records[i];
            r.key == key && r.acked_op.is_some() && !r.failed && r.removed.is_none()
        })
        .collect();
    let Some(&target) = present.get(
        present
            .len()
            .saturating_sub(1 + back % present.len().max(1)),
    ) else {
        return Ok(());
    };
    let Some(entry_ref) = h.records[target].entry_ref else {
        return Ok(());
    };
    let doomed: Vec<usize> = if truncate {
        (target..h.records.len())
            .filter(|&i| h.records[i].key == key && h.records[i].removed.is_none())
            .collect()
    } else {
        (0..target)
            .filter(|&i| h.records[i].key == key && h.records[i].removed.is_none())
            .collect()
    };
    let issued_op = disk.ops();
    for &i in &doomed {
        h.records[i].removed = Some(Removal {
            target,
            issued_op,
            acked_op: None,
        });
    }
    let result = if truncate {
        w.truncate_from(entry_ref)
    } else {
        w.purge_before(entry_ref)
    };
    match result {
        Ok(()) => {
            let acked = Some(disk.ops());
            for &i in &doomed {
                h.records[i].removed = Some(Removal {
                    target,
                    issued_op,
                    acked_op: acked,
                });
            }
            Ok(())
        }
        // Retention may have removed the target already: nothing was
        // removed by this call.
        Err(WalError::EntryNotFound(_))
            if h.compactions
                .iter()
                .any(|c| c.0 >= h.records[target].issued_op) =>
        {
            for &i in &doomed {
                h.records[i].removed = None;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl History {
    /// After an I/O error, records not yet durable may be lost, like at a
    /// crash: mark the first `upto` appends that were not durable.
    fn may_have_lost_undurable(&mut self, upto: usize) {
        for r in self.records[..upto]
            .iter_mut()
            .filter(|r| r.durable_op.is_none())
        {
            r.failed = true;
        }
    }
}

/// Everything a recovered WAL holds: per key, its records.
pub type Snapshot = BTreeMap<String, Vec<Record>>;

/// Read every key's records.
///
/// # Errors
/// Any read error.
pub fn snapshot(wal: &Wal) -> Result<Snapshot, WalError> {
    let mut out = Snapshot::new();
    for key in wal.enumerate_keys()? {
        let records = wal.records(key.as_str())?.collect::<Result<Vec<_>, _>>()?;
        out.insert(key, records);
    }
    Ok(out)
}

/// Check a WAL recovered from a crash after `upto` logged operations against
/// the history. Returns a description of the first violation.
///
/// # Errors
/// The violation.
pub fn check(spec: &Spec, h: &History, upto: usize, image: &SimDisk) -> Result<(), String> {
    check_with(spec, h, upto, image, false)
}

/// [`check`], and with `process_crash` (nothing but the process died) every
/// acknowledged record must be present, durable or not.
///
/// # Errors
/// The violation.
pub fn check_with(
    spec: &Spec,
    h: &History,
    upto: usize,
    image: &SimDisk,
    process_crash: bool,
) -> Result<(), String> {
    let clock = Arc::new(ManualClock::new(h.end_ms));
    let wal = spec
        .builder(image, clock.clone())
        .open()
        .map_err(|e| format!("reopen failed: {e}"))?;
    let snap = snapshot(&wal).map_err(|e| format!("reading back failed: {e}"))?;
    let compact_ms = h
        .compactions
        .iter()
        .filter(|c| c.0 < upto)
        .map(|c| c.1)
        .max();
    for (key_name_read, records) in &snap {
        let Some(k) = (0..spec.keys).find(|k| key_name(*k) == *key_name_read) else {
            return Err(format!("invented key {key_name_read}"));
        };
        check_key(spec, h, upto, k, records, compact_ms, process_crash)?;
    }
    for k in 0..spec.keys {
        if !snap.contains_key(&key_name(k)) {
            check_key(spec, h, upto, k, &[], compact_ms, process_crash)?;
        }
    }
    check_refs(h, upto, &wal, &snap)?;
    check_batches(h, upto, &snap, compact_ms, spec.retention_ms)?;
    check_removals(h, upto, &snap, compact_ms, spec.retention_ms)?;
    drop(wal);
    for round in 0..2 {
        let again = spec
            .builder(image, clock.clone())
            .open()
            .map_err(|e| format!("reopen {round}: {e}"))?;
        let snap2 = snapshot(&again).map_err(|e| format!("re-read {round}: {e}"))?;
        if snap2 != snap {
            return Err(format!("reopen {round} gave a different state"));
        }
    }
    Ok(())
}

fn check_key(
    spec: &Spec,
    h: &History,
    upto: usize,
    k: usize,
    got: &[Record],
    compact_ms: Option<u64>,
    process_crash: bool,
) -> Result<(), String> {
    let expected: Vec<&Appended> = h
        .records
        .iter()
        .filter(|r| r.key == k && r.issued_op < upto)
        .collect();
    let retention = spec.retention_ms;
    let may_expire = |e: &Appended| {
        compact_ms.is_some_and(|c| e.at_ms.saturating_add(retention) < c) || e.may_be_absent(upto)
    };
    let must_survive = |e: &Appended| {
        e.durable_op.is_some_and(|d| d <= upto)
            || (process_crash && e.acked_op.is_some_and(|a| a <= upto))
    };
    // Walk the records read back through the appends: each must be the
    // next one, except that appends which returned an error may be absent.
    let mut next = match got.first() {
        // Nothing kept: at most what retention may have removed, and failed
        // appends, are gone from the front.
        None => expected.iter().take_while(|e| may_expire(e)).count(),
        Some(first) => {
            let at = expected
                .iter()
                .position(|e| e.content == first.content)
                .ok_or_else(|| {
                    format!(
                        "key {k}: first record {:?} was never appended",
                        first.content
                    )
                })?;
            if let Some(gone) = expected[..at].iter().find(|e| !may_expire(e)) {
                return Err(format!(
                    "key {k}: gap: record {:?} missing before kept records",
                    gone.content
                ));
            }
            at
        }
    };
    for r in got {
        while expected
            .get(next)
            .is_some_and(|e| e.content != r.content && e.may_be_absent(upto))
        {
            next += 1;
        }
        let e = expected
            .get(next)
            .ok_or_else(|| format!("key {k}: record {:?} invented or out of order", r.content))?;
        if e.must_be_absent(upto) {
            return Err(format!(
                "key {k}: record {:?} came back after its removal was acknowledged",
                r.content
            ));
        }
        if r.content != e.content || r.header != e.header {
            return Err(format!(
                "key {k}: record {next} differs: got {:?} want {:?}",
                r.content, e.content
            ));
        }
        if e.entry_ref.is_some_and(|er| er != r.entry_ref) {
            return Err(format!(
                "key {k}: record {next} has ref {} but was acked as {:?}",
                r.entry_ref, e.entry_ref
            ));
        }
        next += 1;
    }
    if let Some(lost) = expected[next..]
        .iter()
        .find(|e| must_survive(e) && !e.may_be_absent(upto))
    {
        return Err(format!(
            "key {k}: acknowledged record {:?} lost (read {} of {})",
            lost.content,
            got.len(),
            expected.len()
        ));
    }
    Ok(())
}

/// Every batch is all or nothing: a recovered WAL holds every record of it
/// or none (unless retention may have removed some of it).
fn check_batches(
    h: &History,
    upto: usize,
    snap: &Snapshot,
    compact_ms: Option<u64>,
    retention_ms: u64,
) -> Result<(), String> {
    let mut batches: BTreeMap<usize, Vec<&Appended>> = BTreeMap::new();
    for a in h.records.iter().filter(|a| a.issued_op < upto) {
        if let Some(b) = a.batch {
            batches.entry(b).or_default().push(a);
        }
    }
    for (first, records) in batches {
        let may_expire = records.iter().any(|a| {
            compact_ms.is_some_and(|c| a.at_ms.saturating_add(retention_ms) < c)
                || a.removed.is_some_and(|r| r.issued_op < upto)
        });
        if may_expire {
            continue;
        }
        let present = records
            .iter()
            .filter(|a| {
                snap.get(&key_name(a.key))
                    .is_some_and(|v| v.iter().any(|r| r.content == a.content))
            })
            .count();
        if present != 0 && present != records.len() {
            return Err(format!(
                "batch from record {first}: {present} of its {} records recovered",
                records.len()
            ));
        }
    }
    Ok(())
}

/// A truncation or purge is one journal frame: in a crash state where it
/// may or may not have happened, the records it removes are all there or
/// all gone, except that records not yet durable may be missing from the
/// end (as at any crash). So the ones present are a prefix: no hole.
fn check_removals(
    h: &History,
    upto: usize,
    snap: &Snapshot,
    compact_ms: Option<u64>,
    retention_ms: u64,
) -> Result<(), String> {
    let mut groups: BTreeMap<(usize, usize), Vec<&Appended>> = BTreeMap::new();
    for a in &h.records {
        if let Some(r) = a.removed.filter(|r| r.issued_op < upto) {
            groups.entry((r.issued_op, r.target)).or_default().push(a);
        }
    }
    for ((issued, _), members) in groups {
        let considered = members.iter().filter(|a| {
            !a.failed
                && compact_ms.is_none_or(|c| a.at_ms.saturating_add(retention_ms) >= c)
                && a.acked_op.is_some_and(|o| o <= upto)
        });
        let mut gone = None;
        for a in considered {
            let present = snap
                .get(&key_name(a.key))
                .is_some_and(|v| v.iter().any(|r| r.content == a.content));
            match (present, gone) {
                (false, None) => gone = Some(&a.content),
                (true, Some(missing)) => {
                    return Err(format!(
                        "removal at op {issued} left a hole: {missing:?} is gone but the later {:?} \
                         is there",
                        a.content
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn check_refs(h: &History, upto: usize, wal: &Wal, snap: &Snapshot) -> Result<(), String> {
    for a in h
        .records
        .iter()
        .filter(|a| a.acked_op.is_some_and(|o| o <= upto))
    {
        let Some(r) = a.entry_ref else { continue };
        let present = snap
            .get(&key_name(a.key))
            .is_some_and(|v| v.iter().any(|x| x.content == a.content));
        match wal.read_record_at(r) {
            Ok(_) if a.must_be_absent(upto) => {
                return Err(format!(
                    "ref {r} of a record whose removal was acknowledged resolves"
                ));
            }
            Ok(rec) if rec.content == a.content && rec.header == a.header => {}
            Ok(rec) => return Err(format!("ref {r} resolved to other bytes {:?}", rec.content)),
            Err(e) if present => return Err(format!("ref {r} of a present record failed: {e}")),
            Err(WalError::EntryNotFound(_) | WalError::CorruptedData(_)) => {}
            Err(e) => return Err(format!("ref {r}: unexpected error {e}")),
        }
    }
    Ok(())
}

/// Does the WAL directory exist on this disk image at all?
pub fn has_wal(disk: &SimDisk) -> bool {
    nano_wal::storage::Storage::list_dir(disk, Path::new(WAL_DIR)).is_ok()
}
