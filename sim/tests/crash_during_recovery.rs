//! A second power loss during recovery: replay of the journal, the cuts back
//! to the manifest, and the checkpoint that follows. For sampled crash
//! states of every workload, opening the crashed disk is itself logged, and
//! the machine crashes again at every one of those operations, with every
//! kind of damage. The oracle must accept every state: replay is idempotent
//! (a crash during replay replays again), and nothing durable is lost,
//! invented or half-applied.
//!
//! `NANO_WAL_RECOVERY_CRASH_POINTS` sets the first crashes sampled per
//! workload (2 by default, CI-sized; 50 for a long run).

use nano_wal_sim::catalog::workloads;
use nano_wal_sim::disk::{Damage, SimDisk};
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
    let points = env_usize("NANO_WAL_RECOVERY_CRASH_POINTS", 2);
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
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn clock(h: &nano_wal_sim::workload::History) -> std::sync::Arc<nano_wal::ManualClock> {
    std::sync::Arc::new(nano_wal::ManualClock::new(h.end_ms))
}
