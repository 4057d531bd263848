//! `raft-node`: one member of a replicated nano-wal, serving Raft's RPCs
//! and a small client API over HTTP (axum), talking to its peers with
//! reqwest. See the README's "Replicated log" section for the API.

mod net;
mod sm;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use serde::Deserialize;
use serde_json::json;

pub use net::Network;
pub use sm::{WalStateMachine, is_user_key};

use crate::{LogStore, Request, TypeConfig, wal_for_raft};

/// The Raft group every node serves.
pub const GROUP: &str = "main";

/// What a node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id.
    pub id: u64,
    /// Where its HTTP server listens (`host:port`).
    pub listen: String,
    /// Its WAL directory.
    pub dir: std::path::PathBuf,
    /// Every member, this one included: id → `host:port`.
    pub peers: BTreeMap<u64, String>,
}

/// Parse `1=127.0.0.1:7001,2=127.0.0.1:7002`.
///
/// # Errors
/// A part without `=` or with an id that is not a number.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p
                .split_once('=')
                .ok_or_else(|| format!("peer {p:?} is not ID=HOST:PORT"))?;
            let id = id
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("peer id {id:?}: {e}"))?;
            Ok((id, addr.trim().to_owned()))
        })
        .collect()
}

#[derive(Clone)]
struct App {
    id: u64,
    raft: Raft<TypeConfig>,
    wal: Arc<nano_wal::Wal>,
    sm: WalStateMachine,
    peers: BTreeMap<u64, String>,
}

/// Timings for a cluster on one machine or a LAN: heartbeats every 100 ms,
/// elections after 400–800 ms of silence; a snapshot every 500 entries,
/// after which the log before it is purged.
fn raft_config() -> Result<Config, String> {
    Config {
        cluster_name: "nano-wal".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(500),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Config::default()
    }
    .validate()
    .map_err(|e| e.to_string())
}

/// Open the node's WAL, start Raft and serve HTTP until the process ends.
///
/// # Errors
/// Bad configuration, WAL errors, a port that cannot be bound.
pub async fn run(cfg: NodeConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !cfg.peers.contains_key(&cfg.id) {
        return Err(format!("--peers does not name this node ({})", cfg.id).into());
    }
    let wal = Arc::new(wal_for_raft(&cfg.dir).open()?);
    let log_store = LogStore::<TypeConfig>::open(wal.clone(), GROUP).await?;
    let sm = WalStateMachine::open(wal.clone())?;
    let raft = Raft::new(
        cfg.id,
        Arc::new(raft_config()?),
        Network::default(),
        log_store,
        sm.clone(),
    )
    .await?;
    let app = App {
        id: cfg.id,
        raft,
        wal,
        sm,
        peers: cfg.peers,
    };
    let router = Router::new()
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .route("/init", post(init))
        .route("/append/{key}", post(append))
        .route("/records/{key}", get(records))
        .route("/status", get(status))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

async fn raft_append(
    State(app): State<App>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    Json(app.raft.append_entries(req).await).into_response()
}

async fn raft_vote(State(app): State<App>, Json(req): Json<VoteRequest<u64>>) -> Response {
    Json(app.raft.vote(req).await).into_response()
}

async fn raft_snapshot(
    State(app): State<App>,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(app.raft.install_snapshot(req).await).into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn init(State(app): State<App>) -> Response {
    let members: BTreeMap<u64, BasicNode> = app
        .peers
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    match app.raft.initialize(members).await {
        Ok(()) => Json(json!({ "initialized": true })).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn append(State(app): State<App>, Path(key): Path<String>, body: Bytes) -> Response {
    if !is_user_key(&key) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("keys starting with {:?} are reserved", crate::KEY_PREFIX),
        );
    }
    let req = Request {
        key,
        value: body.to_vec(),
    };
    match app.raft.client_write(req).await {
        // Committed, and applied on this node (the leader answers after
        // applying).
        Ok(resp) => Json(json!({ "index": resp.log_id.index })).into_response(),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => (
            StatusCode::MISDIRECTED_REQUEST,
            Json(json!({
                "leader": f.leader_id,
                "leader_addr": f.leader_node.map(|n| n.addr),
            })),
        )
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[derive(Debug, Deserialize)]
struct Encoding {
    encoding: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

async fn records(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<Encoding>,
) -> Response {
    if !is_user_key(&key) {
        return error(StatusCode::BAD_REQUEST, "reserved key");
    }
    let as_hex = match q.encoding.as_deref() {
        None | Some("utf8") => false,
        Some("hex") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown encoding {other:?}"),
            );
        }
    };
    let wal = app.wal.clone();
    let read = tokio::task::spawn_blocking(move || -> nano_wal::Result<Vec<Vec<u8>>> {
        wal.records(&key)?
            .map(|r| r.map(|r| r.content.to_vec()))
            .collect()
    })
    .await;
    let contents = match read {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut out = Vec::with_capacity(contents.len());
    for c in contents {
        if as_hex {
            out.push(hex(&c));
        } else {
            match String::from_utf8(c) {
                Ok(s) => out.push(s),
                Err(_) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "a record is not UTF-8: ask with ?encoding=hex",
                    );
                }
            }
        }
    }
    Json(out).into_response()
}

async fn status(State(app): State<App>) -> Response {
    let m = app.raft.metrics().borrow().clone();
    Json(json!({
        "id": app.id,
        "leader": m.current_leader,
        "term": m.current_term,
        "last_log_index": m.last_log_index,
        "last_applied": app.sm.last_applied().map(|l| l.index),
        "snapshots_installed": app.sm.snapshots_installed(),
        "purged": m.purged.map(|l| l.index),
    }))
    .into_response()
}
