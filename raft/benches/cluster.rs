//! The 3-node `raft-node` cluster on 127.0.0.1: committed appends per
//! second with 1 and with 16 concurrent clients (100-byte records through
//! the leader, each acknowledged once committed and applied), and the time
//! from SIGKILL of the leader to the first commit under the new leader.
//! Median of `--runs` (default 3) clusters; `--seconds` (default 3) per
//! rate. Election timeouts: 400–800 ms, heartbeats every 100 ms.
//!
//! `cargo bench -p nano-wal-raft --bench cluster -- --runs 3`

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Node {
    id: u64,
    addr: String,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn leader(http: &reqwest::Client, nodes: &[Node], exclude: Option<u64>) -> Option<u64> {
    for n in nodes.iter().filter(|n| n.child.is_some()) {
        let Ok(r) = http.get(format!("http://{}/status", n.addr)).send().await else {
            continue;
        };
        let Ok(s) = r.json::<serde_json::Value>().await else {
            continue;
        };
        if let Some(l) = s["leader"].as_u64().filter(|l| Some(*l) != exclude) {
            return Some(l);
        }
    }
    None
}

async fn wait_leader(http: &reqwest::Client, nodes: &[Node], exclude: Option<u64>) -> Res<u64> {
    let start = Instant::now();
    loop {
        if let Some(l) = leader(http, nodes, exclude).await {
            return Ok(l);
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err("no leader".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn append(http: &reqwest::Client, addr: &str) -> bool {
    let body = vec![b'x'; 100];
    matches!(
        http.post(format!("http://{addr}/append/bench")).body(body).send().await,
        Ok(r) if r.status() == 200
    )
}

/// Committed appends per second with `clients` concurrent clients.
async fn rate(http: &reqwest::Client, addr: &str, clients: usize, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, addr) = (http.clone(), addr.to_owned());
        set.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < budget {
                if append(&http, &addr).await {
                    n += 1;
                }
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = set.join_next().await {
        total += n.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// One cluster: (1-client rate, 16-client rate, kill-to-commit seconds).
async fn one_cluster(budget: Duration) -> Res<(f64, f64, f64)> {
    let root = tempfile::tempdir()?;
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| -> Res<Node> {
            Ok(Node {
                id,
                addr: format!("127.0.0.1:{}", free_port()?),
                child: None,
            })
        })
        .collect::<Res<_>>()?;
    let peers: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.addr))
        .collect();
    let peers = peers.join(",");
    for n in &mut nodes {
        n.child = Some(
            Command::new(env!("CARGO_BIN_EXE_raft-node"))
                .args([
                    "--id",
                    &n.id.to_string(),
                    "--listen",
                    &n.addr,
                    "--peers",
                    &peers,
                ])
                .arg("--dir")
                .arg(root.path().join(format!("node-{}", n.id)))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    let http = reqwest::Client::new();
    let init = format!("http://{}/init", nodes[0].addr);
    let start = Instant::now();
    while http.post(&init).send().await.is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("nodes did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = wait_leader(&http, &nodes, None).await?;
    let at = |nodes: &[Node], id: u64| {
        nodes
            .iter()
            .position(|n| n.id == id)
            .ok_or("unknown leader")
    };
    let addr = nodes[at(&nodes, first)?].addr.clone();
    let one = rate(&http, &addr, 1, budget).await;
    let sixteen = rate(&http, &addr, 16, budget).await;
    let killed = at(&nodes, first)?;
    if let Some(mut c) = nodes[killed].child.take() {
        c.kill()?;
    }
    let kill = Instant::now();
    loop {
        if let Some(l) = leader(&http, &nodes, Some(first)).await {
            let addr = nodes[at(&nodes, l)?].addr.clone();
            if append(&http, &addr).await {
                break;
            }
        }
        if kill.elapsed() > Duration::from_secs(30) {
            return Err("no commit after the kill".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((one, sixteen, kill.elapsed().as_secs_f64()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Res<()> {
    let runs = arg("--runs", 3);
    let budget = Duration::from_secs(arg("--seconds", 3));
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (one, sixteen, failover) = one_cluster(budget).await?;
        a.push(one);
        b.push(sixteen);
        c.push(failover);
    }
    println!("| measure | median of {runs} | min–max |");
    println!("|---|---:|---:|");
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    for (name, v, unit) in [
        ("committed appends/s, 1 client", &a, ""),
        ("committed appends/s, 16 clients", &b, ""),
        ("leader kill to first commit", &c, " s"),
    ] {
        let (lo, hi) = range(v);
        println!(
            "| {name} | {:.2}{unit} | {lo:.2}–{hi:.2}{unit} |",
            median(v.clone())
        );
    }
    Ok(())
}
