//! The markdown table (median and spread per cell, nano-wal's ratios) and
//! the CSV of every measurement.

use std::fmt::Write as _;

use super::child::Outcome;
use super::workloads::{Better, Workload};

/// The systems nano-wal's "best peer" is chosen from.
const PEERS: [&str; 4] = ["okaywal", "sqlite", "commitlog", "raw"];

/// One measurement.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Run number, from 0.
    pub run: usize,
    /// Index into the workload list.
    pub workload: usize,
    /// System name.
    pub system: String,
    /// What it came to.
    pub outcome: Outcome,
}

/// Median and text of one cell.
struct Cell {
    median: Option<f64>,
    text: String,
}

/// `1,234,567`, `123`, `12.3`, `1.23`, `0.123`; `n/a` for NaN.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "n/a".to_owned();
    }
    let a = v.abs();
    if a < 1000.0 {
        let decimals = match a {
            a if a >= 100.0 => 0,
            a if a >= 10.0 => 1,
            a if a >= 1.0 => 2,
            _ => 3,
        };
        return format!("{v:.decimals$}");
    }
    let digits = format!("{v:.0}");
    let (sign, digits) = digits.split_at(usize::from(v < 0.0));
    let mut out = String::from(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cell(samples: &[&Sample], metric: usize) -> Cell {
    let mut values = Vec::new();
    let (mut failed, mut unsupported) = (Vec::new(), 0);
    for s in samples {
        match &s.outcome {
            Outcome::Values(v) => values.extend(v.get(metric).filter(|x| !x.is_nan())),
            Outcome::Failed(why) => failed.push(why.as_str()),
            Outcome::Unsupported(_) => unsupported += 1,
        }
    }
    if values.is_empty() {
        let text = match failed.first() {
            Some(why) => format!("failed: {}", shorten(why, 90)),
            None if unsupported > 0 => "—".to_owned(),
            None => "n/a".to_owned(),
        };
        return Cell { median: None, text };
    }
    values.sort_by(f64::total_cmp);
    let median = super::measure::median(&mut values);
    let mut text = number(median);
    if values.len() > 1 {
        let (lo, hi) = (values[0], values[values.len() - 1]);
        let _ = write!(text, " ({}–{})", number(lo), number(hi));
    }
    if !failed.is_empty() {
        let _ = write!(text, " ({} failed)", failed.len());
    }
    Cell {
        median: Some(median),
        text,
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
    .replace('|', "/")
}

/// How many times better nano-wal (`ours`) is than `theirs`: >1 is better.
fn ratio(better: Better, ours: f64, theirs: f64) -> f64 {
    match better {
        Better::Higher => ours / theirs,
        Better::Lower => theirs / ours,
    }
}

/// `296×`, `10.8×`, `1.52×`, and two significant digits below 0.1: `0.0017×`.
fn times(r: f64) -> String {
    match r {
        r if !r.is_finite() => "—".to_owned(),
        r if r >= 100.0 => format!("{r:.0}×"),
        r if r >= 10.0 => format!("{r:.1}×"),
        r => {
            let mut decimals = 2;
            while decimals < 8 && r > 0.0 && r < 10f64.powi(1 - decimals) {
                decimals += 1;
            }
            format!("{r:.prec$}×", prec = decimals.unsigned_abs() as usize)
        }
    }
}

/// The ratio columns of one row: vs nano-wal 0.5, and vs the best peer.
fn ratios(better: Better, cells: &[(String, Cell)]) -> (String, String) {
    let median = |name: &str| {
        cells
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.median)
    };
    let Some(ours) = median("nano-wal") else {
        return ("—".to_owned(), "—".to_owned());
    };
    let old = median("nano-wal 0.5").map_or("—".to_owned(), |m| times(ratio(better, ours, m)));
    let best = PEERS
        .iter()
        .filter_map(|p| median(p).map(|m| (*p, ratio(better, ours, m))))
        .filter(|(_, r)| r.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let peer = best.map_or("—".to_owned(), |(p, r)| format!("{} ({p})", times(r)));
    (old, peer)
}

/// The table, one row per (workload, metric), with the notes under it.
pub fn markdown(workloads: &[Workload], systems: &[String], samples: &[Sample]) -> String {
    let mut md = String::from("| workload | metric |");
    for s in systems {
        let _ = write!(md, " {s} |");
    }
    md.push_str(" nano-wal vs 0.5 | nano-wal vs best peer |\n|---|---|");
    md.push_str(&"---:|".repeat(systems.len() + 2));
    md.push('\n');
    for (wi, w) in workloads.iter().enumerate() {
        if !samples.iter().any(|s| s.workload == wi) {
            continue;
        }
        for (mi, metric) in w.metrics().iter().enumerate() {
            let cells: Vec<(String, Cell)> = systems
                .iter()
                .map(|sys| {
                    let mine: Vec<&Sample> = samples
                        .iter()
                        .filter(|s| s.workload == wi && &s.system == sys)
                        .collect();
                    (sys.clone(), cell(&mine, mi))
                })
                .collect();
            let (old, peer) = ratios(metric.better, &cells);
            let _ = write!(md, "| {} | {} |", w.name, metric.name);
            for (_, c) in &cells {
                let _ = write!(md, " {} |", c.text);
            }
            let _ = writeln!(md, " {old} | {peer} |");
        }
    }
    md.push_str(&notes(workloads, samples));
    md
}

/// Why cells are empty: each system's reasons, and every failure in full
/// (with the runs it happened in).
fn notes(workloads: &[Workload], samples: &[Sample]) -> String {
    let mut lines: Vec<(String, Vec<usize>)> = Vec::new();
    for s in samples {
        let line = match &s.outcome {
            Outcome::Unsupported(why) => format!("- — {}: {why}", s.system),
            Outcome::Failed(why) => format!(
                "- failed: {} on \"{}\": {why}",
                s.system, workloads[s.workload].name
            ),
            Outcome::Values(_) => continue,
        };
        match lines.iter_mut().find(|(l, _)| *l == line) {
            Some((_, runs)) => runs.push(s.run + 1),
            None => lines.push((line, vec![s.run + 1])),
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = lines
        .into_iter()
        .map(|(line, runs)| {
            if line.starts_with("- failed") {
                let runs: Vec<String> = runs.iter().map(usize::to_string).collect();
                format!("{line} (run {})", runs.join(", "))
            } else {
                line
            }
        })
        .collect();
    format!("\n{}\n", lines.join("\n"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Every measurement: `run,workload,metric,system,status,value,detail`.
pub fn csv(workloads: &[Workload], samples: &[Sample]) -> String {
    let mut out = String::from("run,workload,metric,system,status,value,detail\n");
    for s in samples {
        let w = &workloads[s.workload];
        for (mi, metric) in w.metrics().iter().enumerate() {
            let (status, value, detail) = match &s.outcome {
                Outcome::Values(v) => ("ok", v.get(mi).map_or(String::new(), f64::to_string), ""),
                Outcome::Unsupported(why) => ("unsupported", String::new(), why.as_str()),
                Outcome::Failed(why) => ("failed", String::new(), why.as_str()),
            };
            let _ = writeln!(
                out,
                "{},{},{},{},{status},{value},{}",
                s.run + 1,
                csv_field(&w.name),
                csv_field(metric.name),
                csv_field(&s.system),
                csv_field(detail)
            );
        }
    }
    out
}
