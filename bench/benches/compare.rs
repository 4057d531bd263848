//! Side-by-side comparison of nano-wal with nano-wal 0.5, okaywal, SQLite,
//! commitlog and a raw-file baseline on the same workloads; prints a
//! markdown table and writes it, with every measurement as CSV, to `--out`.
//!
//! Run:
//! `cargo bench -p nano-wal-bench --bench compare -- [--runs N]
//! [--only WORKLOAD_SUBSTRING] [--systems a,b] [--smoke] [--out PATH]`
//!
//! `--out` defaults to `target/compare/` of the workspace; a relative path
//! is taken from the directory cargo runs benches in (`bench/`).

#[path = "compare/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use harness::args::Args;
use harness::measure::Ctx;
use harness::report::Sample;
use harness::workloads::Workload;
use harness::{child, machine, report, systems, workloads};

/// What every run measures, beyond the table: how to read it.
const NOTES: &str = "\
Notes: every cell is measured in a fresh process (after a `sync`), in a fresh directory \
under the temp dir, with the page cache warm from writing; each run rotates which system \
goes first. Enumerate and scan read back in a second fresh process that opens the \
directory the first one wrote, so the read's memory cannot hide in heap the writes freed; \
it reads the key 5 times and reports the median pass (and the peak memory over all 5). \
Timed loops stop early after the scale's time budget (slow systems), so rates are counts \
over elapsed time. nano-wal opens with max_open_files 2048 except in \"many keys\" (the \
default, 1024); \"nano-wal tails\" is the same with max_unapplied_bytes(16 MiB) (short \
records wait in memory after their journal frame; off by default). Non-durable means the record reached the OS (SQLite: WAL mode with \
synchronous=NORMAL, which fsyncs only at checkpoints; durable is synchronous=FULL). \
okaywal, commitlog and raw have no keys: every key's records go into one log, and the \
enumerated key is the whole log. okaywal keeps every segment (no checkpoint) in the read, \
enumerate and reopen workloads, and can only stream its log by recovering it, so its \
enumerate includes an open. nano-wal 0.5, SQLite and commitlog are used from threads \
behind a Mutex (0.5 appends take &mut self; SQLite has no group commit); raw holds a \
Mutex<File> across write and fdatasync. nano-wal enumerates with enumerate_records (the \
0.5 call; 0.5 returns a Vec of the whole key); the scan row uses each system's fastest \
read-all call, which is only different for nano-wal (Wal::scan, records lent to a callback). Batches: one untimed batch first, then \
the median; 0.5 uses its own append_batch (non-durable appends, then sync() of every \
active segment). Memory: peak RSS (VmHWM, reset just before) minus RSS just before; \
B/key is the RSS growth over the appends, per key, for systems with keys.";

fn default_out() -> PathBuf {
    // target/<profile>/deps/compare-<hash> → target/compare
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("compare")))
        .unwrap_or_else(|| PathBuf::from("target/compare"))
}

/// Every selected (workload index, workload), and the systems, by name.
type Selection = (Vec<(usize, Workload)>, Vec<String>);

fn selection(args: &Args) -> Result<Selection, String> {
    let all = workloads::all(&args.scale());
    let chosen: Vec<(usize, Workload)> = all
        .into_iter()
        .enumerate()
        .filter(|(_, w)| {
            args.only
                .as_ref()
                .is_none_or(|o| w.name.contains(o.as_str()))
        })
        .collect();
    let systems: Vec<String> = match &args.systems {
        Some(list) => list.clone(),
        None => systems::NAMES.iter().map(|s| (*s).to_owned()).collect(),
    };
    if let Some(bad) = systems
        .iter()
        .find(|s| !systems::NAMES.contains(&s.as_str()))
    {
        return Err(format!(
            "unknown system {bad}; known: {}",
            systems::NAMES.join(", ")
        ));
    }
    if chosen.is_empty() {
        return Err("no workload matches --only".to_owned());
    }
    Ok((chosen, systems))
}

fn measure_all(args: &Args, chosen: &[(usize, Workload)], systems: &[String]) -> Vec<Sample> {
    let mut samples = Vec::new();
    let runs = args.runs();
    for run in 0..runs {
        for (index, w) in chosen {
            for k in 0..systems.len() {
                let system = &systems[(run + k) % systems.len()];
                let start = Instant::now();
                let outcome = child::measure(*index, w.kind(), system, args.smoke);
                eprintln!(
                    "run {}/{runs} | {} | {system}: {outcome:?} [{:.1} s]",
                    run + 1,
                    w.name,
                    start.elapsed().as_secs_f64()
                );
                samples.push(Sample {
                    run,
                    workload: *index,
                    system: system.clone(),
                    outcome,
                });
            }
        }
    }
    samples
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((index, system)) = &args.child {
        child::child_main(Ctx {
            index: *index,
            system,
            scale: &args.scale(),
            smoke: args.smoke,
            input: args.input.as_deref(),
        });
        return ExitCode::SUCCESS;
    }
    let (chosen, systems) = match selection(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let samples = measure_all(&args, &chosen, &systems);
    let all = workloads::all(&args.scale());
    let md = format!(
        "# nano-wal comparison\n\n{}- wall time: {:.0} s\n\n{}\n{NOTES}\n",
        machine::describe(args.runs(), args.smoke),
        start.elapsed().as_secs_f64(),
        report::markdown(&all, &systems, &samples),
    );
    println!("{md}");
    let out = args.out.clone().unwrap_or_else(default_out);
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join("compare.md"), &md))
        .and_then(|()| std::fs::write(out.join("compare.csv"), report::csv(&all, &samples)));
    match written {
        Ok(()) => {
            eprintln!("wrote {}/compare.md and compare.csv", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("compare: writing {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
