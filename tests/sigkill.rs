//! Real process kills: a child appends durable records from several threads
//! to several keys and acknowledges each on stdout only after `append`
//! returned. The parent SIGKILLs it at random moments, reopens the same
//! directory (recovering from all earlier kills too) and checks: every
//! acknowledged record is present, each writer's records form a gap-free
//! in-order run, and nothing else is in the log. Another thread appends
//! batches with one record for every key: after every kill each batch is
//! wholly present or wholly absent, in order. The journal is checkpointed
//! every 64 KiB, so kills land in checkpoints too. Every other child holds
//! short records in memory (`max_unapplied_bytes`). 200 kills by default;
//! `NANO_WAL_KILLS=N` for the long mode.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

const DIR_ENV: &str = "NANO_WAL_SIGKILL_DIR";
const CYCLE_ENV: &str = "NANO_WAL_SIGKILL_CYCLE";
const THREADS: usize = 4;
const KEYS: usize = 3;

/// The child: runs only when the parent sets the environment.
#[test]
#[ignore = "helper process for durable_appends_survive_sigkill"]
fn child_appends_until_killed() {
    let (Ok(dir), Ok(cycle)) = (std::env::var(DIR_ENV), std::env::var(CYCLE_ENV)) else {
        return;
    };
    // Every other child holds short records in in-memory segment tails,
    // so kills land while tails wait and while the applier writes them.
    let tails = cycle.parse::<u64>().unwrap_or(0) % 2 == 1;
    let wal = Arc::new(
        builder(std::path::Path::new(&dir))
            .max_unapplied_bytes(if tails { 1 << 20 } else { 0 })
            .open()
            .expect("child open"),
    );
    let batches = {
        let (wal, cycle) = (wal.clone(), cycle.clone());
        std::thread::spawn(move || {
            for n in 0..100_000u32 {
                let batch = (0..KEYS).map(|k| {
                    (
                        format!("key-{k}"),
                        None,
                        Bytes::from(format!("{cycle}/batch/{n}/{k}")),
                    )
                });
                wal.append_batch(batch, n % 2 == 0).expect("batch");
            }
        })
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (wal, cycle) = (wal.clone(), cycle.clone());
            std::thread::spawn(move || {
                for n in 0..100_000u32 {
                    let key = format!("key-{}", (t + n as usize) % KEYS);
                    let content = format!("{cycle}/{t}/{n}/{}", "x".repeat((n % 50) as usize));
                    let durable = n % 4 != 3;
                    wal.append_entry(key, None, Bytes::from(content), durable)
                        .expect("append");
                    if durable {
                        // Acknowledge only what `append` returned as durable.
                        println!("ACK {cycle} {t} {n}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    batches.join().expect("batch thread");
}

fn builder(dir: &std::path::Path) -> nano_wal::WalBuilder {
    Wal::builder(dir)
        .max_segment_bytes(16 * 1024)
        .journal_checkpoint_bytes(64 * 1024)
}

/// xorshift64*, seeded, so a failing run can be repeated.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn durable_appends_survive_sigkill() -> Result<(), Box<dyn std::error::Error>> {
    let kills: u64 = std::env::var("NANO_WAL_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut rng = 0x0DDC_0FFE_E15E_ED01u64;
    // (cycle, thread) -> highest acknowledged n
    let mut acked: BTreeMap<(u64, usize), u32> = BTreeMap::new();
    for cycle in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_appends_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .env(CYCLE_ENV, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Some(at) = line.find("ACK ") else {
                    continue;
                };
                let f: Vec<u64> = line[at + 4..]
                    .split(' ')
                    .filter_map(|p| p.parse().ok())
                    .collect();
                if let [c, t, n] = f[..] {
                    seen.push((c, t, n));
                }
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(5 + next(&mut rng) % 40));
        child.kill()?; // SIGKILL
        child.wait()?;
        for (c, t, n) in reader.join().map_err(|_| "reader thread")? {
            let slot = acked.entry((c, usize::try_from(t)?)).or_insert(0);
            *slot = (*slot).max(u32::try_from(n)?);
        }
        verify(dir.path(), &acked, cycle)?;
    }
    println!(
        "kills: {kills}, acknowledged writers: {}, violations: 0",
        acked.len()
    );
    Ok(())
}

/// Every acknowledged record is present; each (cycle, thread) writer's
/// records appear in order with no gap; every record is one a child wrote.
fn verify(
    dir: &std::path::Path,
    acked: &BTreeMap<(u64, usize), u32>,
    cycle: u64,
) -> Result<(), WalError> {
    let wal = builder(dir).open()?;
    let mut seen: BTreeMap<(u64, usize), Vec<u32>> = BTreeMap::new();
    // (cycle, n) of each batch -> the keys it was found under, in order.
    let mut batches: BTreeMap<(u64, u32), Vec<usize>> = BTreeMap::new();
    for k in 0..KEYS {
        for r in wal.records(format!("key-{k}"))? {
            let r = r?;
            let text = String::from_utf8_lossy(&r.content).into_owned();
            let f: Vec<&str> = text.split('/').collect();
            if let [c, "batch", n, key] = f[..] {
                let (Ok(c), Ok(n), Ok(key)) = (c.parse(), n.parse(), key.parse::<usize>()) else {
                    return Err(WalError::CorruptedData(format!("invented {text:?}")));
                };
                if key != k {
                    return Err(WalError::CorruptedData(format!("{text:?} under key {k}")));
                }
                batches.entry((c, n)).or_default().push(k);
                continue;
            }
            let parsed = match f[..] {
                [c, t, n, pad] => c
                    .parse::<u64>()
                    .ok()
                    .zip(t.parse::<usize>().ok())
                    .zip(n.parse::<u32>().ok())
                    .filter(|((_, _), n)| {
                        pad.len() == (n % 50) as usize && pad.bytes().all(|b| b == b'x')
                    }),
                _ => None,
            };
            let Some(((c, t), n)) = parsed else {
                return Err(WalError::CorruptedData(format!(
                    "after kill {cycle}: invented record {text:?}"
                )));
            };
            if (t + n as usize) % KEYS != k {
                return Err(WalError::CorruptedData(format!(
                    "after kill {cycle}: {text:?} under the wrong key"
                )));
            }
            seen.entry((c, t)).or_default().push(n);
        }
    }
    for (writer, ns) in &seen {
        // Per writer, records come in order across keys only within a key;
        // sorted, they must be exactly 0..=max with no gap and no duplicate.
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        if sorted.iter().enumerate().any(|(i, &n)| n as usize != i) {
            return Err(WalError::CorruptedData(format!(
                "after kill {cycle}: writer {writer:?} has a gap or duplicate"
            )));
        }
    }
    check_batches(&batches, cycle)?;
    for (writer, &max_acked) in acked {
        let have = seen.get(writer).map_or(0, Vec::len);
        if have <= max_acked as usize {
            return Err(WalError::CorruptedData(format!(
                "after kill {cycle}: writer {writer:?} acknowledged n={max_acked} but only {have} records survive"
            )));
        }
    }
    Ok(())
}

/// Every batch has a record under every key, and each cycle's batches run
/// from 0 with no gap.
fn check_batches(batches: &BTreeMap<(u64, u32), Vec<usize>>, cycle: u64) -> Result<(), WalError> {
    let mut next: BTreeMap<u64, u32> = BTreeMap::new();
    for (&(c, n), keys) in batches {
        if keys.len() != KEYS {
            return Err(WalError::CorruptedData(format!(
                "after kill {cycle}: batch {c}/{n} is under keys {keys:?} only: half a batch"
            )));
        }
        let expected = next.entry(c).or_insert(0);
        if n != *expected {
            return Err(WalError::CorruptedData(format!(
                "after kill {cycle}: batch {c}/{n} follows a gap (expected {expected})"
            )));
        }
        *expected += 1;
    }
    Ok(())
}
