//! Power loss at every disk operation of 34 workloads, with every kind of
//! damage to unsynced data: the recovered WAL holds every durable record,
//! each key is an in-order prefix of its appends (no gap, reorder,
//! duplicate, altered byte or invented record), every reference resolves to
//! its bytes or to an error, and reopening twice gives the same state.
//! Every kind of damage at every operation (about 10 s).

use nano_wal_sim::catalog::workloads;
use nano_wal_sim::disk::{Damage, SimDisk};
use nano_wal_sim::report::assert_no_violations;
use nano_wal_sim::rng::Rng;
use nano_wal_sim::workload::{check_with, run};

#[test]
fn crash_at_every_operation_of_every_workload() {
    let mut states = 0u64;
    let mut failures = Vec::new();
    for (w, (name, spec)) in workloads().into_iter().enumerate() {
        let steps = spec.generate();
        let disk = SimDisk::new();
        let history = run(&spec, &steps, &disk, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        for upto in 0..=disk.ops() {
            for (d, damage) in Damage::ALL.into_iter().enumerate() {
                let seed = (w as u64) << 40 | (upto as u64) << 8 | d as u64;
                let image = disk.crash_image(upto, damage, &mut Rng::new(seed));
                states += 1;
                let process_crash = damage == Damage::ProcessCrash;
                if let Err(e) = check_with(&spec, &history, upto, &image, process_crash) {
                    failures.push(format!(
                        "{name}: crash after op {upto}, {damage:?}, seed {seed}: {e}"
                    ));
                }
            }
        }
    }
    println!("crash states explored: {states}");
    assert_no_violations(&failures, 20);
}
