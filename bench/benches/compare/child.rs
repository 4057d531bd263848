//! Every (workload, system) measurement runs in a fresh child process (this
//! same binary with `--child`): memory figures then start from a clean heap
//! rather than one another system just freed, descriptors and threads left
//! behind by one system cannot slow the next, and a panic or a descriptor
//! exhaustion is reported in its cell instead of ending the run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::measure::{Ctx, Run};
use super::systems::{self, Res};
use super::workloads;

/// A child running longer than this is killed and reported as failed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

/// What one measurement came to.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The workload's metrics, in order.
    Values(Vec<f64>),
    /// The system cannot run this workload, and why.
    Unsupported(String),
    /// It failed, with the error.
    Failed(String),
}

/// In the child: run workload `ctx.index` on `ctx.system` and print the
/// outcome.
pub fn child_main(ctx: Ctx<'_>) {
    let all = workloads::all(ctx.scale);
    let (index, system) = (ctx.index, ctx.system);
    let outcome = match all.get(index) {
        None => Outcome::Failed(format!("no workload {index}")),
        Some(w) => match systems::unsupported(system, w.kind()) {
            Some(reason) => Outcome::Unsupported(reason.to_owned()),
            None => {
                let run = Run { workload: w, ctx };
                match systems::with_system(system, run) {
                    None => Outcome::Failed(format!("unknown system {system}")),
                    Some(Ok(values)) => Outcome::Values(values),
                    Some(Err(e)) => Outcome::Failed(e.to_string()),
                }
            }
        },
    };
    match outcome {
        Outcome::Values(values) => values.iter().for_each(|v| println!("VALUE {v}")),
        Outcome::Unsupported(why) => println!("UNSUPPORTED {}", one_line(&why)),
        Outcome::Failed(why) => println!("FAILED {}", one_line(&why)),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// In the parent: measure workload `index` on `system` in a child process.
pub fn measure(index: usize, kind: systems::Kind, system: &str, smoke: bool) -> Outcome {
    if let Some(reason) = systems::unsupported(system, kind) {
        return Outcome::Unsupported(reason.to_owned());
    }
    // Write back what earlier cells left dirty, so that no cell pays for
    // another's writeback. Best effort: a failed `sync` only adds noise.
    drop(Command::new("sync").status());
    match run(index, system, smoke, None) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(format!("harness: {e}")),
    }
}

/// Run workload `index` on `system` in a child process (this binary with
/// `--child`), handing it `input` as a populated directory if given.
pub fn run(index: usize, system: &str, smoke: bool, input: Option<&Path>) -> Res<Outcome> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--child", &index.to_string(), system]);
    if smoke {
        cmd.arg("--smoke");
    }
    if let Some(dir) = input {
        cmd.arg("--input").arg(dir);
    }
    let Some(run) = nano_wal_bench::run_child(&mut cmd, CHILD_TIMEOUT)? else {
        return Ok(Outcome::Failed(format!(
            "timed out after {} s",
            CHILD_TIMEOUT.as_secs()
        )));
    };
    let (status, out, err) = (run.status, run.stdout, run.stderr);
    Ok(parse(&out).unwrap_or_else(|| {
        let last = err.lines().rev().find(|l| !l.trim().is_empty());
        Outcome::Failed(format!("child {status}: {}", last.unwrap_or("no output")))
    }))
}

/// The outcome the child printed, if it printed one.
fn parse(out: &str) -> Option<Outcome> {
    let mut values = Vec::new();
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("VALUE ") {
            values.push(v.trim().parse().ok()?);
        } else if let Some(why) = line.strip_prefix("UNSUPPORTED ") {
            return Some(Outcome::Unsupported(why.to_owned()));
        } else if let Some(why) = line.strip_prefix("FAILED ") {
            return Some(Outcome::Failed(why.to_owned()));
        }
    }
    (!values.is_empty()).then_some(Outcome::Values(values))
}
