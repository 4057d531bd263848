//! `nano-wal export nats` against a real nats-server: killed with SIGKILL
//! in the middle of an export and restarted (twice), the stream ends with
//! every record exactly once, in order per key; with --follow and no
//! cursor it follows a writer in another process (this test), and after a
//! SIGKILL resumes from the stream alone; SIGTERM ends it cleanly.

#[path = "../../nats/tests/common/mod.rs"]
mod nats_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nano_wal::Wal;
use nano_wal_nats::async_nats;
use nano_wal_nats::testing::read_stream;
use nats_common::{Fixture, TestResult, assert_exactly_once, write};

fn spawn_export(dir: &Path, url: &str, extra: &[&str]) -> std::io::Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_nano-wal"))
        .args(["export", "nats"])
        .arg(dir)
        .args([
            "--server",
            url,
            "--stream",
            "WAL",
            "--subject-prefix",
            "wal",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

async fn stored(client: &async_nats::Client) -> Result<u64, async_nats::Error> {
    let js = async_nats::jetstream::new(client.clone());
    match js.get_stream("WAL").await {
        Ok(mut s) => Ok(s.info().await?.state.messages),
        Err(_) => Ok(0),
    }
}

/// Wait until the stream holds at least `n` messages.
async fn until_stored(client: &async_nats::Client, n: u64) -> Result<u64, async_nats::Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = stored(client).await?;
        if have >= n || Instant::now() > deadline {
            return Ok(have);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn finish(child: Child) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("export failed ({}): {stderr}", out.status).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_export_then_restart_stores_every_record_once() -> TestResult {
    let Fixture {
        server,
        client,
        dir: tmp,
    } = Fixture::start().await?;
    let written = {
        let wal = Wal::builder(tmp.path()).open()?;
        let written = write(&wal, &["orders", "users/1", "x.y"], 4000)?;
        wal.close()?;
        written
    };
    let total = written.len() as u64;
    let args = ["--cursor", "nats", "--max-in-flight", "32"];
    for kill_at in [total / 10, total / 2] {
        let mut child = spawn_export(tmp.path(), &server.url(), &args)?;
        let seen = until_stored(&client, kill_at).await?;
        child.kill()?; // SIGKILL
        child.wait()?;
        assert!(
            seen >= kill_at && seen < total,
            "killed mid-export: {seen} of {total} stored when the kill was sent"
        );
    }
    let summary = finish(spawn_export(tmp.path(), &server.url(), &args)?)?;
    assert!(summary.starts_with("exported "), "{summary}");
    assert_exactly_once(&read_stream(&client, "WAL", "wal").await?, &written);
    // Nothing is published again.
    let summary = finish(spawn_export(tmp.path(), &server.url(), &args)?)?;
    assert!(
        summary.starts_with("exported 0 records of 3 keys"),
        "{summary}"
    );
    let wal = Wal::builder(tmp.path()).read_only(true).open()?;
    let last = written.last().ok_or("none")?;
    assert_eq!(
        wal.consumer("nats")?.position(&last.key),
        Some(last.entry_ref)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_tracks_a_writer_in_another_process_and_resumes_from_the_stream() -> TestResult {
    let Fixture {
        server,
        client,
        dir: tmp,
    } = Fixture::start().await?;
    let wal = Wal::builder(tmp.path()).open()?;
    let mut written = write(&wal, &["a"], 100)?;
    wal.sync()?;
    let follow = ["--follow"];
    let mut child = spawn_export(tmp.path(), &server.url(), &follow)?;
    assert_eq!(until_stored(&client, 100).await?, 100);
    written.extend(write(&wal, &["a", "b"], 200)?);
    wal.sync()?;
    assert_eq!(
        until_stored(&client, 500).await?,
        500,
        "appended while following"
    );
    child.kill()?; // SIGKILL
    child.wait()?;
    written.extend(write(&wal, &["a", "c"], 150)?);
    wal.sync()?;
    let child = spawn_export(tmp.path(), &server.url(), &follow)?;
    assert_eq!(
        until_stored(&client, 800).await?,
        800,
        "resumed from the stream"
    );
    // SIGTERM: it stops cleanly and reports.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let summary = finish(child)?;
    assert!(
        summary.starts_with("exported 300 records of 3 keys"),
        "{summary}"
    );
    assert_exactly_once(&read_stream(&client, "WAL", "wal").await?, &written);
    Ok(())
}
