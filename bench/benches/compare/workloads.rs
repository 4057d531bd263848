//! The workloads, their names and what each one reports.

use super::args::Scale;
use super::systems::Kind;

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Throughput.
    Higher,
    /// Time, memory.
    Lower,
}

/// One number a workload reports.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Unit and meaning, e.g. `records/s`.
    pub name: &'static str,
    /// Which way is better.
    pub better: Better,
}

const RECORDS_PER_S: Metric = Metric {
    name: "records/s",
    better: Better::Higher,
};
const READS_PER_S: Metric = Metric {
    name: "reads/s",
    better: Better::Higher,
};
const MS_PER_BATCH: Metric = Metric {
    name: "ms/batch (median)",
    better: Better::Lower,
};
const MS: Metric = Metric {
    name: "ms",
    better: Better::Lower,
};
const PEAK_MIB: Metric = Metric {
    name: "peak RSS growth MiB",
    better: Better::Lower,
};
const BYTES_PER_KEY: Metric = Metric {
    name: "RSS B/key",
    better: Better::Lower,
};

/// What a workload does.
#[derive(Clone, Copy, Debug)]
pub enum Spec {
    /// `count` appends of `size` bytes over `keys` keys, round-robin.
    Append {
        /// Content size.
        size: usize,
        /// Keys.
        keys: usize,
        /// fsync per record.
        durable: bool,
        /// Records.
        count: usize,
    },
    /// Durable batches of `Scale::batch_size` records over `keys` keys.
    Batch {
        /// Keys.
        keys: usize,
    },
    /// `threads` threads appending durably, thread `t` to key `t % keys`.
    Threads {
        /// Threads.
        threads: usize,
        /// Keys.
        keys: usize,
    },
    /// Random point reads over `keys` × `per_key` records of 100 B.
    Read {
        /// Keys.
        keys: usize,
        /// Records per key.
        per_key: usize,
    },
    /// Read back one key of `Scale::enumerate` records of `size` bytes.
    Enumerate {
        /// Content size.
        size: usize,
        /// Also report the peak memory growth.
        memory: bool,
        /// With the system's fastest read-all call (`System::scan`).
        fastest: bool,
    },
    /// Open a directory of `Scale::reopen` keys × `per_key` records,
    /// closed cleanly or (`crashed`) dropped without closing, as a crash
    /// leaves it.
    Reopen {
        /// Dropped without `close()`.
        crashed: bool,
        per_key: usize,
    },
    /// One non-durable record for each of `Scale::many_keys` keys.
    ManyKeys,
    /// Raft-style writes of many groups: `threads` threads, each writing
    /// synced batches of `groups` groups × `entries` entries of `size`
    /// random (incompressible) bytes, raft-engine's stress shape.
    MultiGroup {
        /// Threads.
        threads: usize,
        /// Groups per batch (each thread its own).
        groups: usize,
        /// Entries per group per batch.
        entries: usize,
        /// Entry size.
        size: usize,
    },
}

/// One row group of the table.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Name shown (and matched by `--only`).
    pub name: String,
    /// What it does.
    pub spec: Spec,
}

impl Workload {
    /// The numbers it reports, in order.
    pub fn metrics(&self) -> &'static [Metric] {
        match self.spec {
            Spec::Append { .. } | Spec::Threads { .. } | Spec::MultiGroup { .. } => {
                &[RECORDS_PER_S]
            }
            Spec::Batch { .. } => &[MS_PER_BATCH],
            Spec::Read { .. } => &[READS_PER_S],
            Spec::Enumerate { memory: false, .. } | Spec::Reopen { .. } => &[MS],
            Spec::Enumerate { memory: true, .. } => &[MS, PEAK_MIB],
            Spec::ManyKeys => &[MS, BYTES_PER_KEY],
        }
    }

    /// For asking a system whether it can run this.
    pub fn kind(&self) -> Kind {
        match self.spec {
            Spec::Append { durable: false, .. } => Kind::AppendNonDurable,
            Spec::Append { durable: true, .. } => Kind::AppendDurable,
            Spec::Batch { .. } => Kind::BatchDurable,
            Spec::Threads { .. } => Kind::Threads,
            Spec::Read { .. } => Kind::RandomRead,
            Spec::Enumerate { .. } => Kind::Enumerate,
            Spec::Reopen { .. } => Kind::Reopen,
            Spec::ManyKeys => Kind::ManyKeys,
            Spec::MultiGroup { .. } => Kind::MultiGroup,
        }
    }
}

/// Human size: `100 B`, `4 KiB`.
fn size_name(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn keys_name(keys: usize) -> String {
    if keys == 1 {
        "1 key".to_owned()
    } else {
        format!("{keys} keys")
    }
}

fn appends(s: &Scale) -> Vec<Workload> {
    let mut out = Vec::new();
    for (size, count) in [(100, s.small_appends), (4096, s.large_appends)] {
        for keys in [1, s.keys] {
            out.push(Workload {
                name: format!("append {}, {}", size_name(size), keys_name(keys)),
                spec: Spec::Append {
                    size,
                    keys,
                    durable: false,
                    count,
                },
            });
        }
    }
    out.push(Workload {
        name: "durable append 100 B, 1 key".to_owned(),
        spec: Spec::Append {
            size: 100,
            keys: 1,
            durable: true,
            count: s.durable_appends,
        },
    });
    for keys in [1, s.keys] {
        out.push(Workload {
            name: format!(
                "durable batch {} × 100 B, {}",
                s.batch_size,
                keys_name(keys)
            ),
            spec: Spec::Batch { keys },
        });
    }
    for (threads, keys) in [(1, 1), (4, 1), (16, 1), (16, 16)] {
        out.push(Workload {
            name: format!("durable 100 B, {threads} threads, {}", keys_name(keys)),
            spec: Spec::Threads { threads, keys },
        });
    }
    out
}

/// Every workload, in table order.
pub fn all(s: &Scale) -> Vec<Workload> {
    let mut out = appends(s);
    for (keys, per_key) in s.read_layouts {
        out.push(Workload {
            name: format!("random read 100 B, {} × {per_key}", keys_name(keys)),
            spec: Spec::Read { keys, per_key },
        });
    }
    for (size, memory, fastest) in [(100, false, false), (100, false, true), (4096, true, false)] {
        let call = if fastest { "scan" } else { "enumerate" };
        out.push(Workload {
            name: format!("{call} 1 key, {} × {}", s.enumerate, size_name(size)),
            spec: Spec::Enumerate {
                size,
                memory,
                fastest,
            },
        });
    }
    let (keys, per_key) = s.reopen;
    out.push(Workload {
        name: format!("reopen {} × {per_key}", keys_name(keys)),
        spec: Spec::Reopen {
            crashed: false,
            per_key,
        },
    });
    out.push(Workload {
        name: format!("reopen {} × {per_key} after a crash", keys_name(keys)),
        spec: Spec::Reopen {
            crashed: true,
            per_key,
        },
    });
    let full = s.reopen_full_per_key;
    out.push(Workload {
        name: format!(
            "reopen {} × {full} after a crash (a full journal)",
            keys_name(keys)
        ),
        spec: Spec::Reopen {
            crashed: true,
            per_key: full,
        },
    });
    out.push(Workload {
        name: format!("many keys: {} × 1 record", s.many_keys),
        spec: Spec::ManyKeys,
    });
    out.push(Workload {
        name: "multi-group durable: 16 threads × batch of 5 groups × 10 × 1 KiB".into(),
        spec: Spec::MultiGroup {
            threads: 16,
            groups: 5,
            entries: 10,
            size: 1024,
        },
    });
    out
}
