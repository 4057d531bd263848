//! Three `raft-node` processes on 127.0.0.1: 1,000 appends through the
//! leader, SIGKILL of the leader, a new leader within seconds, 1,000 more
//! appends, the killed node restarted on its old directory and brought up
//! to date by a snapshot (the leader purged the entries it missed). Then
//! every acknowledged record is on all three nodes exactly once, in the
//! same order, and no record appears twice.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Appends in flight at once.
const CONCURRENCY: usize = 16;

struct Node {
    id: u64,
    addr: String,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, peers: &str) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_raft-node"))
            .args([
                "--id",
                &self.id.to_string(),
                "--listen",
                &self.addr,
                "--peers",
                peers,
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) -> std::io::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn status(http: &reqwest::Client, addr: &str) -> Option<Value> {
    let r = http
        .get(format!("http://{addr}/status"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// Poll until `ok` holds, or fail after `limit`.
async fn wait_for<T>(
    limit: Duration,
    what: &str,
    mut ok: impl AsyncFnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = ok().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader every live node agrees on.
async fn leader(http: &reqwest::Client, nodes: &[&Node]) -> Option<u64> {
    let mut seen = None;
    for n in nodes {
        let l = status(http, &n.addr).await?.get("leader")?.as_u64()?;
        if seen.is_some_and(|s| s != l) {
            return None;
        }
        seen = Some(l);
    }
    seen
}

/// Outcome of one append: acknowledged (with its index), or not.
enum Outcome {
    Acked,
    /// Not acknowledged: may or may not be stored.
    Unknown,
}

/// Append `values` to key `k` through `addr`, `CONCURRENCY` at a time.
async fn append_all(
    http: &reqwest::Client,
    addr: &str,
    values: Vec<String>,
) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    for chunk in values.chunks(CONCURRENCY) {
        let mut set = tokio::task::JoinSet::new();
        for v in chunk {
            let (http, url, v) = (http.clone(), format!("http://{addr}/append/k"), v.clone());
            set.spawn(async move {
                let r = http.post(url).body(v.clone()).send().await;
                let acked = match r {
                    Ok(r) if r.status() == 200 => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|b| b.get("index").and_then(Value::as_u64))
                        .is_some(),
                    _ => false,
                };
                (
                    v,
                    if acked {
                        Outcome::Acked
                    } else {
                        Outcome::Unknown
                    },
                )
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
    }
    out
}

async fn records(http: &reqwest::Client, addr: &str) -> Result<Vec<String>, reqwest::Error> {
    http.get(format!("http://{addr}/records/k"))
        .send()
        .await?
        .json()
        .await
}

fn node(id: u64, root: &Path) -> Result<Node, std::io::Error> {
    Ok(Node {
        id,
        addr: format!("127.0.0.1:{}", free_port()?),
        dir: root.join(format!("node-{id}")),
        log: root.join(format!("node-{id}.log")),
        child: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_the_sigkill_of_its_leader() -> TestResult {
    let root = tempfile::tempdir()?;
    let mut nodes = vec![
        node(1, root.path())?,
        node(2, root.path())?,
        node(3, root.path())?,
    ];
    let peers: String = nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.addr))
        .collect::<Vec<_>>()
        .join(",");
    for n in &mut nodes {
        n.start(&peers)?;
    }
    let result = scenario(&mut nodes, &peers).await;
    if result.is_err() {
        for n in &nodes {
            eprintln!(
                "--- node {} log ---\n{}",
                n.id,
                std::fs::read_to_string(&n.log).unwrap_or_default()
            );
        }
    }
    result
}

async fn scenario(nodes: &mut [Node], peers: &str) -> TestResult {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    for n in nodes.iter() {
        wait_for(Duration::from_secs(20), "a node to serve", async || {
            status(&http, &n.addr).await
        })
        .await?;
    }
    let init = http
        .post(format!("http://{}/init", nodes[0].addr))
        .send()
        .await?;
    assert_eq!(init.status(), 200, "POST /init");
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_for(Duration::from_secs(10), "a leader", async || {
        leader(&http, &all).await
    })
    .await?;
    let lead = nodes
        .iter()
        .position(|n| n.id == first)
        .ok_or("leader is no node")?;

    // A follower refuses and names the leader.
    let follower = &nodes[(lead + 1) % 3];
    let r = http
        .post(format!("http://{}/append/k", follower.addr))
        .body("refused")
        .send()
        .await?;
    assert_eq!(r.status(), 421);
    assert_eq!(r.json::<Value>().await?["leader"].as_u64(), Some(first));

    let mut outcomes = append_all(
        &http,
        &nodes[lead].addr,
        (0..1000).map(|i| format!("a{i}")).collect(),
    )
    .await;
    assert!(
        outcomes.iter().all(|(_, o)| matches!(o, Outcome::Acked)),
        "every append before the kill is acknowledged"
    );

    nodes[lead].kill()?;
    let killed_at = Instant::now();
    let rest: Vec<&Node> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lead)
        .map(|(_, n)| n)
        .collect();
    let second = wait_for(Duration::from_secs(10), "a new leader", async || {
        leader(&http, &rest).await.filter(|l| *l != first)
    })
    .await?;
    eprintln!("new leader {second} after {:?}", killed_at.elapsed());
    let lead2 = nodes
        .iter()
        .position(|n| n.id == second)
        .ok_or("leader is no node")?;
    outcomes.extend(
        append_all(
            &http,
            &nodes[lead2].addr,
            (0..1000).map(|i| format!("b{i}")).collect(),
        )
        .await,
    );

    nodes[lead].start(peers)?;
    let target = status(&http, &nodes[lead2].addr)
        .await
        .ok_or("leader status")?["last_applied"]
        .as_u64()
        .ok_or("leader has applied nothing")?;
    let restarted = nodes[lead].addr.clone();
    let st = wait_for(
        Duration::from_secs(30),
        "the restarted node to catch up",
        async || {
            let s = status(&http, &restarted).await?;
            (s["last_applied"].as_u64()? >= target).then_some(s)
        },
    )
    .await?;
    assert!(
        st["snapshots_installed"].as_u64() >= Some(1),
        "the restarted node was rebuilt from a snapshot: {st}"
    );

    let mut lists = BTreeMap::new();
    for n in nodes.iter() {
        // Followers apply what the leader committed a moment later.
        let want = target;
        wait_for(Duration::from_secs(10), "every node to apply", async || {
            let s = status(&http, &n.addr).await?;
            (s["last_applied"].as_u64()? >= want).then_some(())
        })
        .await?;
        lists.insert(n.id, records(&http, &n.addr).await?);
    }
    let reference = lists.get(&first).cloned().ok_or("no list")?;
    for (id, list) in &lists {
        assert_eq!(
            list, &reference,
            "node {id} holds the same records in the same order"
        );
    }
    let mut seen = HashSet::new();
    for v in &reference {
        assert!(seen.insert(v.clone()), "{v} appears twice");
    }
    let attempted: HashSet<&String> = outcomes.iter().map(|(v, _)| v).collect();
    assert!(
        reference.iter().all(|v| attempted.contains(v)),
        "nothing invented"
    );
    for (v, o) in &outcomes {
        if matches!(o, Outcome::Acked) {
            assert!(seen.contains(v), "acknowledged {v} is missing");
        }
    }
    let acked = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Acked))
        .count();
    assert!(
        acked >= 1900,
        "most appends after the failover are acknowledged: {acked}"
    );
    Ok(())
}
