//! Seeded random crash exploration: random workloads, random crash points,
//! random damage. 100,000 crash states by default (CI-sized, about 20 s); set
//! `NANO_WAL_SIM_STATES=10000000` for the long mode and `NANO_WAL_SIM_SEED`
//! for another base seed. A failure prints the command that replays it.

use nano_wal_sim::catalog::random_spec;
use nano_wal_sim::disk::{Damage, SimDisk};
use nano_wal_sim::rng::Rng;
use nano_wal_sim::workload::{History, Spec, Step, check_with, run};

const DEFAULT_STATES: u64 = 100_000;
const STATES_PER_WORKLOAD: u64 = 250;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn prepare(seed: u64) -> (Spec, Vec<Step>, SimDisk, History) {
    let spec = random_spec(seed);
    let steps = spec.generate();
    let disk = SimDisk::new();
    let history = run(&spec, &steps, &disk, false)
        .unwrap_or_else(|e| panic!("workload seed {seed} failed without any crash: {e}"));
    (spec, steps, disk, history)
}

fn one_state(
    spec: &Spec,
    disk: &SimDisk,
    h: &History,
    upto: usize,
    damage: Damage,
    seed: u64,
) -> Result<(), String> {
    let image = disk.crash_image(upto, damage, &mut Rng::new(seed));
    check_with(spec, h, upto, &image, damage == Damage::ProcessCrash)
}

#[test]
fn random_crash_states() {
    let target = env_u64("NANO_WAL_SIM_STATES", DEFAULT_STATES);
    let base = env_u64("NANO_WAL_SIM_SEED", 0x5EED_0001);
    let mut states = 0u64;
    let mut workloads = 0u64;
    while states < target {
        let wseed = base.wrapping_add(workloads);
        workloads += 1;
        let (spec, _steps, disk, h) = prepare(wseed);
        let mut r = Rng::new(wseed ^ 0xC4A5);
        for _ in 0..STATES_PER_WORKLOAD.min(target - states) {
            let upto = r.index(disk.ops() + 1);
            let d = r.index(Damage::ALL.len());
            let sseed = r.next_u64();
            states += 1;
            if let Err(e) = one_state(&spec, &disk, &h, upto, Damage::ALL[d], sseed) {
                panic!(
                    "violation: {e}\nreplay with:\n  NANO_WAL_SIM_REPLAY={wseed}:{upto}:{d}:{sseed} \
                     cargo test -p nano-wal-sim --test crash_random replay -- --nocapture"
                );
            }
        }
    }
    println!("random crash states explored: {states} over {workloads} workloads, 0 violations");
}

/// Replays one state printed by a failure of `random_crash_states`.
#[test]
fn replay() {
    let Ok(spec_str) = std::env::var("NANO_WAL_SIM_REPLAY") else {
        return;
    };
    let parts: Vec<u64> = spec_str.split(':').filter_map(|p| p.parse().ok()).collect();
    let [wseed, upto, d, sseed] = parts[..] else {
        panic!("NANO_WAL_SIM_REPLAY=wseed:upto:damage:seed")
    };
    let (spec, steps, disk, h) = prepare(wseed);
    println!("spec: {spec:?}\nops: {}", disk.ops());
    for (i, s) in steps.iter().enumerate() {
        println!("step {i}: {s:?}");
    }
    for (i, a) in h.records.iter().enumerate() {
        println!(
            "record {i}: key {} len {} issued {} acked {:?} durable {:?} ref {:?}",
            a.key,
            a.content.len(),
            a.issued_op,
            a.acked_op,
            a.durable_op,
            a.entry_ref.map(|r| r.to_string())
        );
    }
    let upto = usize::try_from(upto).unwrap_or(0);
    let damage = Damage::ALL[usize::try_from(d).unwrap_or(0)];
    for (i, op) in disk.describe_log().iter().enumerate() {
        println!("op {i}: {op}");
    }
    let image = disk.crash_image(upto, damage, &mut Rng::new(sseed));
    println!(
        "crash image after {upto} ops, {damage:?}: {:?}",
        image.listing()
    );
    {
        let clock = std::sync::Arc::new(nano_wal::ManualClock::new(h.end_ms));
        match spec.builder(&image, clock).open() {
            Ok(wal) => {
                println!("report: {:?}", wal.recovery_report());
                for key in wal
                    .enumerate_keys()
                    .unwrap_or_else(|_| Vec::new().into_iter())
                {
                    let refs: Vec<String> = wal
                        .records(key.as_str())
                        .map(|it| {
                            it.map(|r| {
                                r.map_or_else(|e| e.to_string(), |r| r.entry_ref.to_string())
                            })
                            .collect()
                        })
                        .unwrap_or_default();
                    println!("{key}: {refs:?}");
                }
            }
            Err(e) => println!("open failed: {e}"),
        }
    }
    let result = one_state(&spec, &disk, &h, upto, damage, sseed);
    assert!(result.is_ok(), "{result:?}");
}
