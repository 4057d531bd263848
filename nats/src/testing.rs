//! A real `nats-server -js` on a free port of 127.0.0.1, for tests and
//! benchmarks (this crate's, the CLI's), and reading a stream back.
//!
//! The binary is `$NANO_WAL_NATS_SERVER` if set, else `nats-server` on
//! the `PATH`, else the pinned one that `install-nats-server.sh` (next to
//! this crate's manifest) installs into the target directory.

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::RawMessageErrorKind;

use crate::message::{ExportedMessage, decode_message};

/// A running server, stopped (and its storage removed) on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

fn binary() -> io::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(find_binary)
        .clone()
        .map_err(io::Error::other)
}

fn find_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("NANO_WAL_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let on_path = Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Ok(PathBuf::from("nats-server"));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install-nats-server.sh");
    if !std::path::Path::new(script).exists() {
        return Err(format!(
            "no nats-server on PATH, NANO_WAL_NATS_SERVER unset, and {script} is gone"
        ));
    }
    let out = Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed ({}); see its output above",
            out.status
        ));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(PathBuf::from(path))
}

impl NatsServer {
    /// Start a server with JetStream on a free port; returns once it
    /// accepts connections.
    ///
    /// # Errors
    /// The binary cannot be found or installed, or the server does not
    /// come up within 20 s.
    pub fn start() -> io::Result<Self> {
        let store = tempfile::tempdir()?;
        // Port -1: the server picks a free port itself and writes it to a
        // ports file, so parallel tests never race for one.
        let mut child = Command::new(binary()?)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(store.path())
            .arg("-sd")
            .arg(store.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = listed_port(store.path())?
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break port;
            }
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("nats-server exited: {status}")));
            }
            if Instant::now() > deadline {
                // Best effort: it is being abandoned.
                let _ = child.kill();
                return Err(io::Error::other("nats-server did not start within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Self {
            child,
            port,
            _store: store,
        })
    }

    /// The server's address, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// The client port in the server's ports file (`*.ports` in `dir`), once
/// it is written.
fn listed_port(dir: &std::path::Path) -> io::Result<Option<u16>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "ports") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let port = text
            .split("nats://")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        return Ok(port);
    }
    Ok(None)
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Nothing to report to: the server is being thrown away.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message of `stream`, in stream order, decoded (deleted messages
/// are skipped); each paired with its stream sequence.
///
/// # Errors
/// The server's errors, or a message the exporter did not write.
pub async fn read_stream(
    client: &async_nats::Client,
    stream: &str,
    prefix: &str,
) -> Result<Vec<(u64, ExportedMessage)>, async_nats::Error> {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(stream).await?;
    let last = stream.info().await?.state.last_sequence;
    let mut out = Vec::new();
    for sequence in 1..=last {
        let message = match stream.get_raw_message(sequence).await {
            Ok(m) => m,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => continue,
            Err(e) => return Err(e.into()),
        };
        let decoded = decode_message(
            prefix,
            message.subject.as_str(),
            Some(&message.headers),
            message.payload,
        )?;
        out.push((sequence, decoded));
    }
    Ok(out)
}
