//! Model-based property test: random sequences of append, batch,
//! read_entry_at, records, records_from, last_record, truncate_from,
//! purge_before, sync, compaction under a moving clock, reopen and power
//! loss, checked after every step against a plain in-memory model (a list
//! of records per key). After a power loss each key
//! must be a prefix of its list holding every durable record, and every
//! batch must be all there or all gone, across its keys. Each case runs
//! without in-memory segment tails, with a small bound or a large one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal, WalError};
use nano_wal_sim::disk::{Damage, SimDisk};
use nano_wal_sim::rng::Rng;
use nano_wal_sim::workload::{START_MS, WAL_DIR};
use proptest::prelude::*;

const RETENTION_MS: u64 = 60_000;
const SEGMENTS_PER_PERIOD: u32 = 6;
const PERIOD_MS: u64 = RETENTION_MS / SEGMENTS_PER_PERIOD as u64;

#[derive(Debug, Clone)]
enum Op {
    Append {
        key: u8,
        header: Option<Vec<u8>>,
        len: u16,
        durable: bool,
    },
    Batch {
        entries: Vec<(u8, u16)>,
        durable: bool,
    },
    ReadAt {
        pick: prop::sample::Index,
    },
    Records {
        key: u8,
    },
    RecordsFrom {
        pick: prop::sample::Index,
    },
    /// `truncate_from` a record: the model's list is cut there.
    Truncate {
        pick: prop::sample::Index,
    },
    /// `purge_before` a record: the model's list starts there.
    Purge {
        pick: prop::sample::Index,
    },
    LastRecord {
        key: u8,
    },
    Sync,
    Advance {
        ms: u32,
    },
    Compact,
    Reopen,
    /// Power loss (or, `process`, a crash of the process) now, then reopen.
    Crash {
        process: bool,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, prop::option::of(prop::collection::vec(any::<u8>(), 0..8)), 0u16..1500, any::<bool>())
            .prop_map(|(key, header, len, durable)| Op::Append { key, header, len, durable }),
        2 => (prop::collection::vec((0u8..4, 0u16..700), 1..8), any::<bool>())
            .prop_map(|(entries, durable)| Op::Batch { entries, durable }),
        3 => any::<prop::sample::Index>().prop_map(|pick| Op::ReadAt { pick }),
        2 => (0u8..4).prop_map(|key| Op::Records { key }),
        1 => any::<prop::sample::Index>().prop_map(|pick| Op::RecordsFrom { pick }),
        1 => Just(Op::Sync),
        1 => any::<prop::sample::Index>().prop_map(|pick| Op::Truncate { pick }),
        1 => any::<prop::sample::Index>().prop_map(|pick| Op::Purge { pick }),
        1 => (0u8..4).prop_map(|key| Op::LastRecord { key }),
        2 => (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(process, seed)| Op::Crash { process, seed }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    entry_ref: EntryRef,
    header: Option<Bytes>,
    content: Bytes,
    at_ms: u64,
    /// Order of acknowledgement, over all keys.
    n: usize,
    /// The batch it came in (its first record's `n`).
    batch: Option<usize>,
}

struct Harness {
    disk: SimDisk,
    clock: Arc<ManualClock>,
    wal: Wal,
    model: BTreeMap<u8, Vec<Rec>>,
    /// References of removed records: they must never resolve again.
    removed: Vec<EntryRef>,
    counter: usize,
    /// Records acknowledged so far; those with `n` below `durable` are
    /// durable (a durable append, batch or sync covers every earlier one).
    acked: usize,
    durable: usize,
    /// Records of each batch still in the model (retention removes some).
    batch_sizes: BTreeMap<usize, usize>,
    /// `max_unapplied_bytes` of every open (0: no in-memory tails).
    unapplied: u64,
}

fn open(disk: &SimDisk, clock: &Arc<ManualClock>, unapplied: u64) -> Result<Wal, WalError> {
    Wal::builder(WAL_DIR)
        .max_unapplied_bytes(unapplied)
        .storage(disk.storage())
        .clock(clock.clone())
        .retention(Duration::from_millis(RETENTION_MS))
        .segments_per_retention_period(SEGMENTS_PER_PERIOD)
        .max_segment_bytes(4096)
        .max_open_files(3)
        .open()
}

fn name(key: u8) -> String {
    format!("key{key}")
}

impl Harness {
    fn content(&mut self, len: u16) -> Bytes {
        self.counter += 1;
        let mut v = format!("{}|", self.counter).into_bytes();
        v.resize(usize::from(len).max(v.len()), b'.');
        Bytes::from(v)
    }

    fn all(&self) -> Vec<&Rec> {
        self.model.values().flatten().collect()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = nano_wal::Clock::now_unix_ms(&*self.clock);
        match op {
            Op::Append {
                key,
                header,
                len,
                durable,
            } => {
                let content = self.content(*len);
                let header = header.clone().map(Bytes::from);
                let r =
                    self.wal
                        .append_entry(name(*key), header.clone(), content.clone(), *durable);
                let entry_ref = r.map_err(|e| TestCaseError::fail(format!("append: {e}")))?;
                self.model.entry(*key).or_default().push(Rec {
                    entry_ref,
                    header,
                    content,
                    at_ms: now,
                    n: self.acked,
                    batch: None,
                });
                self.acked += 1;
                if *durable {
                    self.durable = self.acked;
                }
            }
            Op::Batch { entries, durable } => {
                let batch: Vec<(String, Option<Bytes>, Bytes)> = entries
                    .iter()
                    .map(|(k, len)| (name(*k), None, self.content(*len)))
                    .collect();
                let refs = self.wal.append_batch(batch.clone(), *durable);
                let refs = refs.map_err(|e| TestCaseError::fail(format!("batch: {e}")))?;
                prop_assert_eq!(refs.len(), entries.len());
                let first = self.acked;
                for ((k, _), ((_, header, content), entry_ref)) in
                    entries.iter().zip(batch.into_iter().zip(refs))
                {
                    self.model.entry(*k).or_default().push(Rec {
                        entry_ref,
                        header,
                        content,
                        at_ms: now,
                        n: self.acked,
                        batch: Some(first),
                    });
                    self.acked += 1;
                }
                self.batch_sizes.insert(first, entries.len());
                if *durable {
                    self.durable = self.acked;
                }
            }
            Op::ReadAt { pick } => {
                let all = self.all();
                if !all.is_empty() {
                    let rec = all[pick.index(all.len())];
                    let got = self
                        .wal
                        .read_record_at(rec.entry_ref)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(&got.content, &rec.content);
                    prop_assert_eq!(&got.header, &rec.header);
                    prop_assert_eq!(got.timestamp_unix_ms, Some(rec.at_ms));
                }
                for r in &self.removed {
                    let gone = self.wal.read_entry_at(*r);
                    prop_assert!(
                        matches!(gone, Err(WalError::EntryNotFound(_))),
                        "removed {} resolved: {:?}",
                        r,
                        gone
                    );
                }
            }
            Op::Records { key } => self.check_key(*key)?,
            Op::RecordsFrom { pick } => {
                let all = self.all();
                if !all.is_empty() {
                    let rec = all[pick.index(all.len())].clone();
                    let key = *self
                        .model
                        .iter()
                        .find(|(_, v)| v.contains(&rec))
                        .map(|(k, _)| k)
                        .unwrap_or(&0);
                    let list = &self.model[&key];
                    let from = list.iter().position(|r| *r == rec).unwrap_or(0);
                    let got: Vec<EntryRef> = self
                        .wal
                        .records_from(rec.entry_ref)
                        .and_then(|it| it.map(|r| r.map(|r| r.entry_ref)).collect())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let want: Vec<EntryRef> = list[from..].iter().map(|r| r.entry_ref).collect();
                    prop_assert_eq!(got, want);
                }
            }
            Op::Sync => {
                self.wal
                    .sync()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                self.durable = self.acked;
            }
            Op::Truncate { pick } => self.trim(pick, true)?,
            Op::Purge { pick } => self.trim(pick, false)?,
            Op::LastRecord { key } => {
                let got = self
                    .wal
                    .last_record(name(*key))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .map(|r| (r.entry_ref, r.content));
                let want = self
                    .model
                    .get(key)
                    .and_then(|l| l.last())
                    .map(|r| (r.entry_ref, r.content.clone()));
                prop_assert_eq!(got, want, "last record of key {}", key);
            }
            Op::Crash { process, seed } => self.crash(*process, *seed)?,
            Op::Advance { ms } => self.clock.advance_ms(u64::from(*ms)),
            Op::Compact => self.compact(now)?,
            Op::Reopen => {
                // Drop first: the lock must be free for the new writer.
                let placeholder = open(&SimDisk::new(), &self.clock, self.unapplied)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(std::mem::replace(&mut self.wal, placeholder));
                self.wal = open(&self.disk, &self.clock, self.unapplied)
                    .map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
                for key in self.model.keys().copied().collect::<Vec<_>>() {
                    self.check_key(key)?;
                }
            }
        }
        Ok(())
    }

    /// Crash now: reopen the disk a power loss (or a process crash) leaves,
    /// check it against the model, and continue from what survived.
    fn crash(&mut self, process: bool, seed: u64) -> Result<(), TestCaseError> {
        let damage = if process {
            Damage::ProcessCrash
        } else {
            [Damage::Nothing, Damage::Cut, Damage::SectorGarbage][(seed % 3) as usize]
        };
        let image = self
            .disk
            .crash_image(self.disk.ops(), damage, &mut Rng::new(seed));
        let wal = open(&image, &self.clock, self.unapplied)
            .map_err(|e| TestCaseError::fail(format!("reopen after {damage:?}: {e}")))?;
        for (key, list) in &mut self.model {
            let got: Vec<(EntryRef, Bytes)> = wal
                .records(name(*key))
                .and_then(|it| it.map(|r| r.map(|r| (r.entry_ref, r.content))).collect())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(got.len() <= list.len(), "key {}: records invented", key);
            for (g, want) in got.iter().zip(list.iter()) {
                prop_assert_eq!(
                    g,
                    &(want.entry_ref, want.content.clone()),
                    "key {}: not a prefix",
                    key
                );
            }
            for lost in &list[got.len()..] {
                prop_assert!(
                    !process && lost.n >= self.durable,
                    "key {}: acknowledged record {} lost ({:?}, durable below {})",
                    key,
                    lost.n,
                    damage,
                    self.durable
                );
            }
            list.truncate(got.len());
        }
        // Every batch: all of its records are present, or none.
        let mut batches: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for r in self.model.values().flatten() {
            if let Some(b) = r.batch {
                batches.entry(b).or_default().0 += 1;
            }
        }
        let sizes = self.batch_sizes.clone();
        for (b, size) in sizes {
            let kept = batches.get(&b).map_or(0, |c| c.0);
            prop_assert!(
                kept == 0 || kept == size,
                "batch {}: {} of {} records survived",
                b,
                kept,
                size
            );
        }
        self.batch_sizes.retain(|b, _| batches.contains_key(b));
        // Opening made what survived durable (it syncs the journal it
        // replayed), so from here every surviving record must survive.
        self.durable = self.acked;
        self.disk = image;
        self.wal = wal;
        Ok(())
    }

    /// Truncate from (or purge before) a record the model holds.
    fn trim(&mut self, pick: &prop::sample::Index, truncate: bool) -> Result<(), TestCaseError> {
        let all: Vec<(u8, usize)> = self
            .model
            .iter()
            .flat_map(|(k, l)| (0..l.len()).map(move |i| (*k, i)))
            .collect();
        if all.is_empty() {
            return Ok(());
        }
        let (key, at) = all[pick.index(all.len())];
        let list = self
            .model
            .get_mut(&key)
            .ok_or_else(|| TestCaseError::fail("no key"))?;
        let target = list[at].entry_ref;
        let gone: Vec<Rec> = if truncate {
            self.wal.truncate_from(target)
        } else {
            self.wal.purge_before(target)
        }
        .map(|()| {
            if truncate {
                list.split_off(at)
            } else {
                list.drain(..at).collect()
            }
        })
        .map_err(|e| TestCaseError::fail(format!("trim: {e}")))?;
        // A truncation always removes something, so it writes a journal
        // frame and makes it durable, and with it every frame before; a
        // purge before the first record may have nothing to do.
        if truncate || !gone.is_empty() {
            self.durable = self.acked;
        }
        for r in gone {
            if let Some(size) = r.batch.and_then(|b| self.batch_sizes.get_mut(&b)) {
                *size -= 1;
            }
            self.removed.push(r.entry_ref);
        }
        self.check_key(key)
    }

    fn compact(&mut self, now: u64) -> Result<(), TestCaseError> {
        self.wal
            .compact()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (key, list) in &mut self.model {
            let got: Vec<EntryRef> = self
                .wal
                .records(name(*key))
                .and_then(|it| it.map(|r| r.map(|r| r.entry_ref)).collect())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            // What is left is a suffix of the key's list ...
            let cut = list.len() - got.len();
            let kept: Vec<EntryRef> = list[cut..].iter().map(|r| r.entry_ref).collect();
            prop_assert_eq!(&got, &kept, "key {}: compaction kept a non-suffix", key);
            for r in &list[..cut] {
                // ... nothing removed was younger than the retention ...
                prop_assert!(
                    r.at_ms + RETENTION_MS < now,
                    "key {}: removed a live record",
                    key
                );
            }
            for r in &list[cut..] {
                // ... and nothing kept is older than retention plus one segment period.
                prop_assert!(
                    r.at_ms + RETENTION_MS + PERIOD_MS > now,
                    "key {}: kept an expired record",
                    key
                );
            }
            for r in list.drain(..cut) {
                if let Some(size) = r.batch.and_then(|b| self.batch_sizes.get_mut(&b)) {
                    *size -= 1;
                }
                self.removed.push(r.entry_ref);
            }
        }
        Ok(())
    }

    fn check_key(&self, key: u8) -> Result<(), TestCaseError> {
        let got: Vec<(EntryRef, Option<Bytes>, Bytes)> = self
            .wal
            .records(name(key))
            .and_then(|it| {
                it.map(|r| r.map(|r| (r.entry_ref, r.header, r.content)))
                    .collect()
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<(EntryRef, Option<Bytes>, Bytes)> = self
            .model
            .get(&key)
            .map(|l| {
                l.iter()
                    .map(|r| (r.entry_ref, r.header.clone(), r.content.clone()))
                    .collect()
            })
            .unwrap_or_default();
        prop_assert_eq!(got, want, "key {}", key);
        let listed: Vec<String> = self
            .wal
            .enumerate_keys()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .collect();
        let expected: Vec<String> = self
            .model
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| name(*k))
            .collect();
        prop_assert_eq!(listed, expected);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_a_list_per_key(
        ops in prop::collection::vec(op(), 1..80),
        unapplied in prop::sample::select(vec![0u64, 600, 1 << 20]),
    ) {
        let disk = SimDisk::new();
        let clock = Arc::new(ManualClock::new(START_MS));
        let wal = open(&disk, &clock, unapplied).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut h = Harness {
            disk, clock, wal, model: BTreeMap::new(), removed: Vec::new(), counter: 0,
            acked: 0, durable: 0, batch_sizes: BTreeMap::new(), unapplied,
        };
        for op in &ops {
            h.apply(op)?;
        }
        for key in 0..4 {
            h.check_key(key)?;
        }
    }
}
