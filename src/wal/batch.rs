//! `append_batch`'s write path: a batch's records grouped by key, placed
//! in their segments, written as one journal frame and published.
//!
//! A batch's records and runs take no allocation per key: the records are
//! encoded into one buffer in input order, each key's records are picked
//! out of it by index (a counting sort), and every key's runs share one
//! list. (The key table, and a key's first record, still allocate.)

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::sync::{Arc, MutexGuard};

use bytes::Bytes;

use super::Wal;
use crate::engine::Engine;
use crate::entry_ref::EntryRef;
use crate::error::Result;
use crate::format::journal::FrameBuf;
use crate::keylog::{BatchRecords, KeyLog, Runs, StageOut, Staged, Writer};
use crate::metrics::Count;
use crate::rules::write as write_rules;

/// One key of a batch: its records are `order[first..first + count]`.
struct Group {
    log: Arc<KeyLog>,
    first: usize,
    count: usize,
}

/// A checked, encoded batch, grouped by key.
struct Plan {
    /// Every record, encoded, in input order.
    records: BatchRecords,
    /// One per key, in order of first appearance.
    groups: Vec<Group>,
    /// Record indexes, each key's together, in input order within a key.
    order: Vec<usize>,
}

/// Bytes reserved per record of a batch before they are encoded.
const RESERVE_BYTES_PER_RECORD: usize = 128;
/// At most this many records' worth is reserved from the iterator's size
/// hint: a huge batch of tiny records does not reserve for large ones, and
/// an endless iterator's hint (`repeat`) reserves nothing absurd.
const RESERVE_RECORDS_MAX: usize = 32 * 1024;

impl Wal {
    /// Write a batch, without waiting for durability: the references and
    /// the journal position that makes them durable.
    pub(super) fn batch_written<K, I>(&self, entries: I) -> Result<(Vec<EntryRef>, u64)>
    where
        K: Hash + AsRef<[u8]> + Display,
        I: IntoIterator<Item = (K, Option<Bytes>, Bytes)>,
    {
        let now = self.engine.config.clock.now_unix_ms();
        let Some(plan) = self.plan(entries, now)? else {
            return Ok((Vec::new(), 0));
        };
        let (out, lsn) = write_plan(&self.engine, plan, now)?;
        self.engine.count(Count::Batches, 1);
        self.engine.notifier.notify();
        Ok((out, lsn))
    }

    /// Check and encode every record and group them by key; `None` for an
    /// empty batch. Nothing is written.
    fn plan<K, I>(&self, entries: I, now: u64) -> Result<Option<Plan>>
    where
        K: Hash + AsRef<[u8]> + Display,
        I: IntoIterator<Item = (K, Option<Bytes>, Bytes)>,
    {
        let entries = entries.into_iter();
        let hint = entries.size_hint().0.min(RESERVE_RECORDS_MAX);
        let mut records = BatchRecords::with_capacity(hint, hint * RESERVE_BYTES_PER_RECORD);
        let mut group_of: Vec<usize> = Vec::with_capacity(hint);
        let mut groups: Vec<Group> = Vec::new();
        let mut by_hash: HashMap<u64, usize> = HashMap::new();
        for (key, header, content) in entries {
            let record = write_rules::check(key.as_ref(), header.as_deref(), &content)?;
            // Runs of one key (the common shape of a batch) skip the hash
            // and both table lookups.
            let g = match group_of.last() {
                Some(&g) if groups[g].log.key == key.as_ref() => g,
                _ => {
                    let log = self.key_log_for(key.as_ref(), &key)?;
                    *by_hash.entry(log.key_hash).or_insert_with(|| {
                        groups.push(Group {
                            log,
                            first: 0,
                            count: 0,
                        });
                        groups.len() - 1
                    })
                }
            };
            groups[g].count += 1;
            group_of.push(g);
            records.push(record, now);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let mut next = 0;
        for g in &mut groups {
            g.first = next;
            next += g.count;
        }
        let mut fill: Vec<usize> = groups.iter().map(|g| g.first).collect();
        let mut order = vec![0; records.len()];
        for (index, &g) in group_of.iter().enumerate() {
            order[fill[g]] = index;
            fill[g] += 1;
        }
        Ok(Some(Plan {
            records,
            groups,
            order,
        }))
    }
}

/// Write a planned batch: stage every key, write every key's segments,
/// then the frame, then publish. Returns the references in input order and
/// the journal position to make durable.
fn write_plan(engine: &Engine, mut plan: Plan, now: u64) -> Result<(Vec<EntryRef>, u64)> {
    // Every key's writer is held until its records are published, taken
    // in ascending key hash (the lock order `Engine` documents).
    plan.groups.sort_unstable_by_key(|g| g.log.key_hash);
    let mut out = vec![
        EntryRef {
            key_hash: 0,
            sequence_number: 0,
            offset: 0
        };
        plan.records.len()
    ];
    let mut frame = FrameBuf::new_in(Vec::with_capacity(
        plan.records.byte_len() + 64 * plan.groups.len(),
    ));
    let mut runs = Runs::with_capacity(plan.groups.len());
    let mut staged = Vec::with_capacity(plan.groups.len());
    let mut writers: Vec<MutexGuard<'_, Writer>> =
        plan.groups.iter().map(|g| g.log.lock_writer()).collect();
    let mut stage_all = || -> Result<()> {
        for (g, w) in plan.groups.iter().zip(&mut writers) {
            let picks = &plan.order[g.first..g.first + g.count];
            let into = StageOut {
                frame: &mut frame,
                runs: &mut runs,
                refs: &mut out,
            };
            staged.push(
                g.log
                    .stage((w, engine), (&mut plan.records, picks), now, into)?,
            );
        }
        engine.journal.check_frame_len(&frame)
    };
    let lsn = stage_all().and_then(|()| {
        write_staged_all(
            engine,
            &plan.groups,
            &mut writers,
            (&staged, &runs),
            &mut frame,
        )
    });
    let lsn = match lsn {
        Ok(lsn) => lsn,
        Err(e) => {
            // The frame's segment creations go in a later frame.
            for w in &mut writers {
                w.frame_failed();
            }
            return Err(e);
        }
    };
    for ((g, w), st) in plan.groups.iter().zip(&mut writers).zip(&staged) {
        g.log.publish_staged(w, (st, &runs));
    }
    Ok((out, lsn))
}

/// Write a staged batch: every key's segments first, then the frame. A
/// failure before the frame is in the journal cuts every key back, so no
/// key keeps any of the batch. Returns the frame's journal position.
fn write_staged_all(
    engine: &Engine,
    groups: &[Group],
    writers: &mut [MutexGuard<'_, Writer>],
    (staged, runs): (&[Staged], &Runs),
    frame: &mut FrameBuf,
) -> Result<u64> {
    let mut written = 0;
    let mut result = Ok(());
    for ((g, w), st) in groups.iter().zip(writers.iter_mut()).zip(staged) {
        result = g.log.write_staged(w, engine, (st, runs), frame.bytes());
        if result.is_err() {
            break;
        }
        written += 1;
    }
    let lsn = result.and_then(|()| engine.journal.append(engine, frame));
    if lsn.is_err() {
        for ((g, w), st) in groups
            .iter()
            .zip(writers.iter_mut())
            .zip(staged)
            .take(written)
        {
            g.log.unwrite(w, engine, (st, runs));
        }
    }
    lsn
}
