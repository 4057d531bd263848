//! `raft-node --id N --listen 127.0.0.1:PORT --dir DIR --peers 1=HOST:PORT,…`:
//! one member of a replicated nano-wal.

use clap::Parser;
use nano_wal_raft::node::{NodeConfig, parse_peers, run};

/// One member of a replicated nano-wal (Raft by openraft, log and state
/// machine in a nano-wal directory).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// This node's id (a member of --peers).
    #[arg(long)]
    id: u64,
    /// Address of this node's HTTP server.
    #[arg(long)]
    listen: String,
    /// This node's WAL directory (created if missing).
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Every member, this one included: ID=HOST:PORT,ID=HOST:PORT,…
    #[arg(long)]
    peers: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let peers = match parse_peers(&args.peers) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("raft-node: --peers: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cfg = NodeConfig {
        id: args.id,
        listen: args.listen,
        dir: args.dir,
        peers,
    };
    match run(cfg).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
