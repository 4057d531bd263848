//! The named workloads every crash and fault test runs.

use crate::rng::Rng;
use crate::workload::Spec;

/// 34 workloads mixing keys, headers, durable and non-durable appends,
/// batches across keys, rotation by size and by time, compaction under a
/// moving clock, reopen and close, journal checkpoints, and truncations
/// and purges; the last four hold records in in-memory segment tails
/// (`max_unapplied_bytes`).
pub fn workloads() -> Vec<(&'static str, Spec)> {
    let m = Spec::mixed;
    let non_durable_one_key = |seed| Spec {
        keys: 1,
        durable_pct: 0,
        batch_pct: 0,
        sync_pct: 0,
        compact_pct: 0,
        reopen_pct: 0,
        advance_pct: 0,
        ..m(seed)
    };
    let mut out = vec![
        ("non-durable, one key", non_durable_one_key(1)),
        (
            "durable, one key",
            Spec {
                keys: 1,
                durable_pct: 100,
                batch_pct: 0,
                sync_pct: 0,
                compact_pct: 0,
                reopen_pct: 0,
                advance_pct: 0,
                ..m(2)
            },
        ),
        (
            "mixed durability, one key",
            Spec {
                keys: 1,
                durable_pct: 50,
                ..m(3)
            },
        ),
        ("mixed, three keys", m(4)),
        ("mixed, six keys", Spec { keys: 6, ..m(5) }),
        (
            "batches, non-durable",
            Spec {
                batch_pct: 70,
                durable_pct: 0,
                ..m(6)
            },
        ),
        (
            "batches, durable",
            Spec {
                batch_pct: 70,
                durable_pct: 100,
                ..m(7)
            },
        ),
        (
            "sync-heavy",
            Spec {
                sync_pct: 40,
                durable_pct: 0,
                ..m(8)
            },
        ),
        (
            "size rotation, big records",
            Spec {
                max_content_bytes: 1800,
                ..m(9)
            },
        ),
        (
            "size rotation, durable",
            Spec {
                max_content_bytes: 1800,
                durable_pct: 80,
                ..m(10)
            },
        ),
        (
            "time rotation",
            Spec {
                advance_pct: 40,
                ..m(11)
            },
        ),
        (
            "time rotation, durable",
            Spec {
                advance_pct: 40,
                durable_pct: 90,
                ..m(12)
            },
        ),
        (
            "compaction",
            Spec {
                advance_pct: 30,
                compact_pct: 20,
                ..m(13)
            },
        ),
        (
            "compaction, durable",
            Spec {
                advance_pct: 30,
                compact_pct: 20,
                durable_pct: 80,
                ..m(14)
            },
        ),
        (
            "compaction of idle keys",
            Spec {
                keys: 4,
                advance_pct: 35,
                compact_pct: 30,
                max_content_bytes: 900,
                ..m(15)
            },
        ),
        (
            "reopen-heavy",
            Spec {
                reopen_pct: 25,
                ..m(16)
            },
        ),
        (
            "reopen-heavy, durable",
            Spec {
                reopen_pct: 25,
                durable_pct: 70,
                ..m(17)
            },
        ),
        (
            "empty records",
            Spec {
                max_content_bytes: 0,
                ..m(18)
            },
        ),
        (
            "tiny records, many",
            Spec {
                max_content_bytes: 8,
                steps: 60,
                ..m(19)
            },
        ),
        (
            "large records",
            Spec {
                max_content_bytes: 5000,
                steps: 25,
                ..m(20)
            },
        ),
        (
            "everything",
            Spec {
                keys: 5,
                advance_pct: 20,
                compact_pct: 10,
                reopen_pct: 10,
                batch_pct: 25,
                ..m(21)
            },
        ),
        (
            "everything, durable",
            Spec {
                keys: 5,
                advance_pct: 20,
                compact_pct: 10,
                reopen_pct: 10,
                batch_pct: 25,
                durable_pct: 80,
                ..m(22)
            },
        ),
        ("one key per step", Spec { keys: 12, ..m(23) }),
        (
            "short retention",
            Spec {
                retention_ms: 2_000,
                segments_per_period: 2,
                advance_pct: 30,
                compact_pct: 15,
                ..m(24)
            },
        ),
        ("long mixed", Spec { steps: 70, ..m(25) }),
        (
            "checkpoints, cross-key batches",
            Spec {
                keys: 8,
                batch_pct: 45,
                durable_pct: 40,
                max_content_bytes: 600,
                journal_checkpoint_bytes: 4096,
                ..m(26)
            },
        ),
        (
            "checkpoints, non-durable, many keys",
            Spec {
                keys: 10,
                batch_pct: 20,
                durable_pct: 0,
                sync_pct: 0,
                max_content_bytes: 500,
                journal_checkpoint_bytes: 4096,
                ..m(27)
            },
        ),
        (
            "checkpoints with compaction and reopen",
            Spec {
                keys: 4,
                advance_pct: 25,
                compact_pct: 15,
                reopen_pct: 12,
                batch_pct: 25,
                journal_checkpoint_bytes: 4096,
                ..m(28)
            },
        ),
        (
            "truncations and purges, size rotation",
            Spec {
                keys: 2,
                trim_pct: 15,
                max_content_bytes: 900,
                durable_pct: 30,
                ..m(29)
            },
        ),
        (
            "truncations and purges, checkpoints and compaction",
            Spec {
                keys: 3,
                trim_pct: 12,
                batch_pct: 25,
                compact_pct: 10,
                advance_pct: 20,
                journal_checkpoint_bytes: 4096,
                ..m(30)
            },
        ),
        (
            "tails, non-durable, one key",
            Spec {
                max_unapplied_bytes: 1 << 20,
                ..non_durable_one_key(31)
            },
        ),
        (
            "tails, mixed, checkpoints and cross-key batches",
            Spec {
                keys: 6,
                batch_pct: 35,
                durable_pct: 30,
                reopen_pct: 8,
                journal_checkpoint_bytes: 4096,
                max_unapplied_bytes: 1 << 20,
                ..m(32)
            },
        ),
        (
            "tails under a small budget, large records, compaction",
            Spec {
                keys: 4,
                max_content_bytes: 3000,
                advance_pct: 20,
                compact_pct: 12,
                max_unapplied_bytes: 700,
                ..m(33)
            },
        ),
        (
            "tails, truncations and purges",
            Spec {
                keys: 3,
                trim_pct: 15,
                batch_pct: 20,
                journal_checkpoint_bytes: 4096,
                max_unapplied_bytes: 1 << 20,
                ..m(34)
            },
        ),
    ];
    out.truncate(34);
    out
}

/// A workload whose every parameter comes from the seed.
pub fn random_spec(seed: u64) -> Spec {
    let mut r = Rng::new(seed);
    Spec {
        seed,
        steps: 10 + r.index(60),
        keys: 1 + r.index(6),
        max_content_bytes: [0, 16, 300, 1500, 6000][r.index(5)],
        max_segment_bytes: 4096 << r.below(3),
        retention_ms: 1000 * (1 + r.below(120)),
        segments_per_period: 1 + u32::try_from(r.below(8)).unwrap_or(0),
        durable_pct: r.below(101),
        batch_pct: r.below(30),
        sync_pct: r.below(15),
        advance_pct: r.below(30),
        compact_pct: r.below(15),
        reopen_pct: r.below(10),
        journal_checkpoint_bytes: [4096, 8192, 1 << 20][r.index(3)],
        trim_pct: r.below(12),
        // Drawn last, so the earlier parameters of every seed stay as they
        // were before tails existed.
        max_unapplied_bytes: [0, 0, 300, 4096][r.index(4)],
    }
}
