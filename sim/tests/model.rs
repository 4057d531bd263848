//! Model-based property test: random sequences of append, batch,
//! read_entry_at, records, records_from, sync, compaction under a moving
//! clock and reopen, checked after every step against a plain in-memory
//! model (a list of records per key).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal, WalError};
use nano_wal_sim::disk::SimDisk;
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
    Sync,
    Advance {
        ms: u32,
    },
    Compact,
    Reopen,
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
        2 => (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    entry_ref: EntryRef,
    header: Option<Bytes>,
    content: Bytes,
    at_ms: u64,
}

struct Harness {
    disk: SimDisk,
    clock: Arc<ManualClock>,
    wal: Wal,
    model: BTreeMap<u8, Vec<Rec>>,
    /// References of removed records: they must never resolve again.
    removed: Vec<EntryRef>,
    counter: usize,
}

fn open(disk: &SimDisk, clock: &Arc<ManualClock>) -> Result<Wal, WalError> {
    Wal::builder(WAL_DIR)
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
                });
            }
            Op::Batch { entries, durable } => {
                let batch: Vec<(String, Option<Bytes>, Bytes)> = entries
                    .iter()
                    .map(|(k, len)| (name(*k), None, self.content(*len)))
                    .collect();
                let refs = self.wal.append_batch(batch.clone(), *durable);
                let refs = refs.map_err(|e| TestCaseError::fail(format!("batch: {e}")))?;
                prop_assert_eq!(refs.len(), entries.len());
                for ((k, _), ((_, header, content), entry_ref)) in
                    entries.iter().zip(batch.into_iter().zip(refs))
                {
                    self.model.entry(*k).or_default().push(Rec {
                        entry_ref,
                        header,
                        content,
                        at_ms: now,
                    });
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
            Op::Sync => self
                .wal
                .sync()
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
            Op::Advance { ms } => self.clock.advance_ms(u64::from(*ms)),
            Op::Compact => self.compact(now)?,
            Op::Reopen => {
                // Drop first: the lock must be free for the new writer.
                let placeholder = open(&SimDisk::new(), &self.clock)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(std::mem::replace(&mut self.wal, placeholder));
                self.wal = open(&self.disk, &self.clock)
                    .map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
                for key in self.model.keys().copied().collect::<Vec<_>>() {
                    self.check_key(key)?;
                }
            }
        }
        Ok(())
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
            self.removed.extend(list.drain(..cut).map(|r| r.entry_ref));
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
    fn wal_matches_a_list_per_key(ops in prop::collection::vec(op(), 1..80)) {
        let disk = SimDisk::new();
        let clock = Arc::new(ManualClock::new(START_MS));
        let wal = open(&disk, &clock).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut h = Harness { disk, clock, wal, model: BTreeMap::new(), removed: Vec::new(), counter: 0 };
        for op in &ops {
            h.apply(op)?;
        }
        for key in 0..4 {
            h.check_key(key)?;
        }
    }
}
