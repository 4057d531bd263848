//! Fail the Nth I/O call, once and then persistently, for every N of the
//! workloads, with EIO, ENOSPC, EACCES, EROFS and short writes. Nothing may
//! panic; afterwards, with the fault gone, both a process crash and a power
//! loss must recover to a state the oracle accepts: every acknowledged
//! (respectively durable) record present, no gap, nothing altered or
//! invented. A failed fsync poisons the writer, so no later success claims
//! durability (the simulated disk loses the bytes of a failed fsync for
//! good, as Linux does). A full disk leaves no torn record, and appends
//! resume once space is freed. Every workload of the catalog (34, about
//! 120 s); `NANO_WAL_FAULT_WORKLOADS=N` takes every (34/N)th, for a quick
//! look.

use nano_wal_sim::catalog::workloads;
use nano_wal_sim::disk::{Damage, Fault, FaultKind, SimDisk};
use nano_wal_sim::report::assert_no_violations;
use nano_wal_sim::rng::Rng;
use nano_wal_sim::workload::{check_with, has_wal, run};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fail_every_io_call_once_and_persistently() {
    let total = workloads().len();
    let count = env_usize("NANO_WAL_FAULT_WORKLOADS", total);
    // `NANO_WAL_FAULT_ONLY=text` runs only the workloads whose name has it.
    let only = std::env::var("NANO_WAL_FAULT_ONLY").unwrap_or_default();
    let (mut runs, mut injected, mut checks) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for (name, spec) in workloads()
        .into_iter()
        .step_by(total / count.clamp(1, total))
        .take(count)
        .filter(|(name, _)| name.contains(only.as_str()))
    {
        let steps = spec.generate();
        let clean = SimDisk::new();
        run(&spec, &steps, &clean, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        let calls = clean.io_calls();
        for at_io in 1..=calls {
            for kind in FaultKind::ALL {
                for persistent in [false, true] {
                    let disk = SimDisk::new();
                    disk.set_fault(Some(Fault {
                        at_io,
                        kind,
                        persistent,
                    }));
                    let outcome = run(&spec, &steps, &disk, true);
                    disk.set_fault(None);
                    runs += 1;
                    injected += disk.faults_injected();
                    let label = format!("{name}: io {at_io} {kind:?} persistent={persistent}");
                    let Ok(history) = outcome else {
                        // The first open failed; nothing was acknowledged.
                        continue;
                    };
                    if !persistent && kind == FaultKind::ShortWrite && !history.errors.is_empty() {
                        failures.push(format!(
                            "{label}: a short write surfaced as {:?}",
                            history.errors
                        ));
                    }
                    if !persistent && kind == FaultKind::Enospc && history.errors.len() > 1 {
                        failures.push(format!(
                            "{label}: appends did not resume: {:?}",
                            history.errors
                        ));
                    }
                    if !has_wal(&disk) {
                        continue;
                    }
                    for (i, damage) in [Damage::ProcessCrash, Damage::Nothing, Damage::Cut]
                        .into_iter()
                        .enumerate()
                    {
                        let image = disk.crash_image(
                            disk.ops(),
                            damage,
                            &mut Rng::new(at_io << 4 | i as u64),
                        );
                        checks += 1;
                        // After an I/O error (reported or not: a sync while
                        // closing an evicted handle reports to the key's next
                        // caller), records not yet durable may be gone even
                        // without power loss; with no error, every
                        // acknowledged record survives a process crash.
                        let process_crash =
                            damage == Damage::ProcessCrash && disk.errors_injected() == 0;
                        if let Err(e) =
                            check_with(&spec, &history, disk.ops(), &image, process_crash)
                        {
                            failures.push(format!("{label}, then {damage:?}: {e}"));
                        }
                    }
                }
            }
        }
    }
    println!("fault runs: {runs}, faults injected: {injected}, recoveries checked: {checks}");
    assert_no_violations(&failures, 15);
}
