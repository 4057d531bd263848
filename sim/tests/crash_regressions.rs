//! Crash states that once violated the guarantees, kept as named tests.
//! Each replays one state of the random exploration (workload seed, crash
//! point, damage kind, damage seed).

use nano_wal_sim::catalog::random_spec;
use nano_wal_sim::disk::{Damage, SimDisk};
use nano_wal_sim::rng::Rng;
use nano_wal_sim::workload::{check, run};

fn replay(wseed: u64, upto: usize, damage: Damage, seed: u64) {
    let spec = random_spec(wseed);
    let steps = spec.generate();
    let disk = SimDisk::new();
    let h = run(&spec, &steps, &disk, false).expect("workload runs");
    let image = disk.crash_image(upto, damage, &mut Rng::new(seed));
    let result = check(&spec, &h, upto, &image);
    assert!(result.is_ok(), "{result:?}");
}

/// Compaction made an empty successor's name durable but not its header; a
/// crash tore the header, recovery dropped the successor, and an expired
/// older segment came back without the newer durable one.
#[test]
fn compaction_successor_must_be_durable_before_removals() {
    replay(1_592_590_339, 77, Damage::Cut, 4_422_255_769_721_971_188);
}

/// Evicting a dirty handle synced the file's data but not its directory
/// entry; `sync()` then saw the segment as clean and claimed durability.
#[test]
fn eviction_sync_must_include_the_directory_entry() {
    replay(
        1_592_590_415,
        57,
        Damage::Nothing,
        15_422_143_252_154_656_653,
    );
}

fn replay_fault(workload: &str, at_io: u64, damage: Damage) {
    use nano_wal_sim::catalog::workloads;
    use nano_wal_sim::disk::{Fault, FaultKind};
    use nano_wal_sim::workload::check_with;
    let (_, spec) = workloads()
        .into_iter()
        .find(|(n, _)| *n == workload)
        .expect("known workload");
    let steps = spec.generate();
    let disk = SimDisk::new();
    disk.set_fault(Some(Fault {
        at_io,
        kind: FaultKind::Eio,
        persistent: false,
    }));
    let h = run(&spec, &steps, &disk, true).expect("first open succeeds");
    disk.set_fault(None);
    let image = disk.crash_image(disk.ops(), damage, &mut Rng::new(at_io));
    let result = check_with(&spec, &h, disk.ops(), &image, false);
    assert!(result.is_ok(), "{result:?}");
}

/// A failed fsync loses the unsynced bytes for good while the page cache
/// still serves them; a reopen in the same boot built on them and a power
/// loss then exposed a hole. The segment is now cut back to its durable
/// prefix, and reopened WALs never append to an earlier process's segment.
#[test]
fn failed_fsync_then_reopen_then_power_loss() {
    replay_fault("size rotation, durable", 11, Damage::Nothing);
}

/// A failed sync while evicting a handle cut a fresh segment to nothing;
/// after a reopen its sequence number was used again, so an old reference
/// pointed into a new record.
#[test]
fn failed_eviction_sync_never_reuses_a_sequence() {
    replay_fault("everything, durable", 435, Damage::Nothing);
}

/// Compaction removed expired segments while the key's newest segment was
/// not yet durable; after a crash one removed segment came back, the newest
/// one was torn, and with no visible gap the old segment read as the log.
#[test]
fn compaction_makes_the_newest_segment_durable_before_removing() {
    replay(
        1_592_590_609,
        112,
        Damage::SectorGarbage,
        1_740_250_339_206_699_081,
    );
}

/// A process inherited a segment whose data an earlier process never
/// synced; its fsync failed, and a third process in the same boot sealed
/// the segment (the fsync now "succeeded") and built on bytes the disk had
/// lost. Writers now refuse to open in the boot of a recorded fsync failure.
#[test]
fn fsync_failure_of_an_inherited_segment_blocks_writers_until_reboot() {
    replay_fault("mixed durability, one key", 24, Damage::Nothing);
}
