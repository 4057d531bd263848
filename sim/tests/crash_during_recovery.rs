//! A second power loss during recovery: replay of the journal, the cuts back
//! to the manifest, and the checkpoint that follows. For sampled crash
//! states of every workload, opening the crashed disk is itself logged, and
//! the machine crashes again at every one of those operations, with every
//! kind of damage. The oracle must accept every state: replay is idempotent
//! (a crash during replay replays again), and nothing durable is lost,
//! invented or half-applied.
//!
//! `NANO_WAL_RECOVERY_CRASH_POINTS` sets the first crashes sampled per
//! workload (12 by default, CI-sized, about 10 s; 200 for a long run).

use nano_wal_sim::catalog::workloads;
use nano_wal_sim::disk::{Damage, SimDisk};
use nano_wal_sim::report::assert_no_violations;
use nano_wal_sim::rng::Rng;
use nano_wal_sim::workload::{check_with, run};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// First crashes: power losses that leave a journal to replay.
const FIRST_DAMAGE: [Damage; 3] = [Damage::ProcessCrash, Damage::Cut, Damage::SectorGarbage];

#[test]
fn crash_at_every_operation_of_recovery() {
    let points = env_usize("NANO_WAL_RECOVERY_CRASH_POINTS", 12);
    let (mut states, mut recovery_ops) = (0u64, 0u64);
    let mut failures = Vec::new();
    for (w, (name, spec)) in workloads().into_iter().enumerate() {
        let steps = spec.generate();
        let disk = SimDisk::new();
        let history = run(&spec, &steps, &disk, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut rng = Rng::new(0xEC0 ^ w as u64);
        for _ in 0..points {
            let upto = rng.index(disk.ops() + 1);
            let first = FIRST_DAMAGE[rng.index(FIRST_DAMAGE.len())];
            let image = disk.crash_image(upto, first, &mut Rng::new(rng.next_u64()));
            // Recovery on the crashed disk, logged from its first operation.
            let recovered = image.crash_image(image.ops(), Damage::ProcessCrash, &mut rng);
            let Ok(wal) = spec.builder(&recovered, clock(&history)).open() else {
                failures.push(format!("{name}: op {upto} {first:?}: first reopen failed"));
                continue;
            };
            drop(wal);
            recovery_ops += recovered.ops() as u64;
            for at in 0..=recovered.ops() {
                for second in Damage::ALL {
                    let again = recovered.crash_image(at, second, &mut Rng::new(rng.next_u64()));
                    states += 1;
                    let process = first == Damage::ProcessCrash && second == Damage::ProcessCrash;
                    if let Err(e) = check_with(&spec, &history, upto, &again, process) {
                        failures.push(format!(
                            "{name}: crash after op {upto} ({first:?}), then after recovery op \
                             {at} ({second:?}): {e}"
                        ));
                    }
                }
            }
        }
    }
    println!("states after a crash during recovery: {states} ({recovery_ops} recovery ops)");
    assert!(recovery_ops > 0, "recovery did no I/O: nothing was tested");
    assert_no_violations(&failures, 20);
}

/// A process crash at every operation of the retention workload, then a
/// power loss at every operation of its recovery: replay must not apply a
/// frame (a segment's removal, say) that the process crash left in the
/// page cache only and the power loss can still take. Found by this file's
/// long run; replay now makes the journal durable before it applies any
/// frame.
#[test]
fn replay_applies_only_frames_a_power_loss_cannot_take() {
    let (name, spec) = workloads()
        .into_iter()
        .find(|(n, _)| *n == "compaction")
        .expect("the compaction workload");
    let steps = spec.generate();
    let disk = SimDisk::new();
    let history = run(&spec, &steps, &disk, false).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut rng = Rng::new(0x5EA1);
    let mut failures = Vec::new();
    let mut states = 0u64;
    for upto in 0..=disk.ops() {
        let image = disk.crash_image(upto, Damage::ProcessCrash, &mut rng);
        let recovered = image.crash_image(image.ops(), Damage::ProcessCrash, &mut rng);
        if spec.builder(&recovered, clock(&history)).open().is_err() {
            failures.push(format!("op {upto}: first reopen failed"));
            continue;
        }
        for at in 0..=recovered.ops() {
            for seed in 0..2 {
                let again = recovered.crash_image(at, Damage::Nothing, &mut Rng::new(seed));
                states += 1;
                if let Err(e) = check_with(&spec, &history, upto, &again, false) {
                    failures.push(format!("op {upto}, then recovery op {at}: {e}"));
                }
            }
        }
    }
    println!("states: {states}");
    // Two states at least for every first crash (the recovered disk before
    // its first operation), and more wherever recovery wrote anything.
    assert!(
        states > 2 * (disk.ops() as u64 + 1),
        "only {states} states: recovery did no I/O"
    );
    assert_no_violations(&failures, 10);
}

fn clock(h: &nano_wal_sim::workload::History) -> std::sync::Arc<nano_wal::ManualClock> {
    std::sync::Arc::new(nano_wal::ManualClock::new(h.end_ms))
}
