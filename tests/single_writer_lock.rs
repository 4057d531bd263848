//! The single-writer rule: one writer per directory. While someone else
//! holds the directory's lock (another process; here also a lock taken by
//! hand, which stands for one), `Wal::builder(..).open()` fails with
//! `Locked` and `Wal::new` falls back to a read-only handle that reads but
//! never changes (or deletes) anything; closing or dropping the last
//! handle, or the writer's process ending, releases the lock. Within one
//! process a second open shares the log instead (`tests/shared_handles.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use bytes::Bytes;
use nano_wal::storage::{LockGuard, StdStorage, Storage};
use nano_wal::{EntryRef, LOCK_FILE_NAME, Wal, WalError, WalOptions};

/// Environment variable naming the directory the child process locks.
const CHILD_DIR_ENV: &str = "NANO_WAL_TEST_LOCK_CHILD_DIR";
const CHILD_TEST: &str = "child_holds_lock";

fn wal_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    (tmp, dir)
}

fn as_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Take the directory's lock as another process would (a separate open
/// file description); `None` if someone holds it.
fn foreign_lock(dir: &Path) -> Option<Box<dyn LockGuard>> {
    std::fs::create_dir_all(dir).expect("create dir");
    StdStorage
        .try_lock(&dir.join(LOCK_FILE_NAME))
        .expect("try_lock")
}

fn assert_locked<T: std::fmt::Debug>(r: Result<T, WalError>) {
    match r {
        Err(WalError::Locked(_)) => {}
        other => panic!("expected WalError::Locked, got {other:?}"),
    }
}

fn assert_read_only<T: std::fmt::Debug>(r: Result<T, WalError>, what: &str) {
    match r {
        Err(WalError::ReadOnly(_)) => {}
        other => panic!("{what}: expected WalError::ReadOnly, got {other:?}"),
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_writer_held_lock_refuses_a_second_writer() {
    let (_tmp, dir) = wal_dir();
    let first = Wal::builder(&dir).open().expect("first writer");
    assert!(!first.is_read_only());
    assert!(
        dir.join(LOCK_FILE_NAME).exists(),
        "writer holds the lock file"
    );
    assert!(foreign_lock(&dir).is_none(), "the lock is held");
    let r = first
        .append_entry("k", None, Bytes::from_static(b"still mine"), true)
        .expect("first writer still appends");
    assert_eq!(first.read_entry_at(r).expect("read"), "still mine");
    drop(first);
    let held = foreign_lock(&dir).expect("free once the writer is gone");
    assert_locked(Wal::builder(&dir).open());
    // Asking again does not change the answer.
    assert_locked(Wal::builder(&dir).open());
    drop(held);
}

#[test]
fn wal_new_on_a_locked_directory_opens_read_only() {
    let (_tmp, dir) = wal_dir();
    let writer = Wal::builder(&dir).open().expect("writer");
    let a1 = writer
        .append_entry(
            "alpha",
            Some(Bytes::from_static(b"h1")),
            Bytes::from_static(b"one"),
            false,
        )
        .expect("append");
    let a2 = writer
        .append_entry("alpha", None, Bytes::from_static(b"two"), true)
        .expect("append");
    let b1 = writer
        .append_entry(
            "beta",
            Some(Bytes::from_static(b"hb")),
            Bytes::from_static(b"bee"),
            false,
        )
        .expect("append");
    let files_before = segment_files(&dir);
    writer.close().expect("close");
    let held = foreign_lock(&dir).expect("lock");

    let reader = Wal::new(as_str(&dir), WalOptions::default()).expect("Wal::new falls back");
    assert!(
        reader.is_read_only(),
        "Wal::new on a locked dir is read-only"
    );

    // Reads see what the writer wrote before the reader opened.
    assert_eq!(reader.read_entry_at(a1).expect("read a1"), "one");
    assert_eq!(reader.read_entry_at(a2).expect("read a2"), "two");
    let rec = reader.read_record_at(b1).expect("read b1");
    assert_eq!(rec.content, "bee");
    assert_eq!(rec.header, Some(Bytes::from_static(b"hb")));
    let alpha: Vec<Bytes> = reader
        .enumerate_records("alpha")
        .expect("enumerate")
        .collect();
    assert_eq!(alpha, vec![Bytes::from("one"), Bytes::from("two")]);
    let keys: Vec<String> = reader.enumerate_keys().expect("keys").collect();
    assert_eq!(keys, vec!["alpha".to_owned(), "beta".to_owned()]);

    // Every change fails with ReadOnly.
    assert_read_only(
        reader.append_entry("alpha", None, Bytes::from_static(b"nope"), false),
        "append_entry",
    );
    assert_read_only(
        reader.append_entry("new-key", None, Bytes::from_static(b"nope"), true),
        "append_entry to a new key",
    );
    assert_read_only(
        reader.log_entry("alpha", None, Bytes::from_static(b"nope")),
        "log_entry",
    );
    assert_read_only(
        reader.append_batch([("beta", None, Bytes::from_static(b"nope"))], false),
        "append_batch",
    );
    assert_read_only(reader.compact(), "compact");
    assert_read_only(reader.shutdown(), "shutdown");

    // The refused shutdown deleted nothing, and the handle still reads.
    assert!(
        dir.exists(),
        "shutdown on a read-only handle removed the directory"
    );
    assert!(dir.join(LOCK_FILE_NAME).exists());
    assert_eq!(segment_files(&dir), files_before);
    assert_eq!(
        reader
            .read_entry_at(a1)
            .expect("read after refused shutdown"),
        "one"
    );

    // Nothing the reader refused reached the log.
    drop(reader);
    drop(held);
    let writer = Wal::builder(&dir).open().expect("writer again");
    let alpha: Vec<Bytes> = writer
        .enumerate_records("alpha")
        .expect("enumerate")
        .collect();
    assert_eq!(alpha, vec![Bytes::from("one"), Bytes::from("two")]);
    assert!(writer.records("new-key").expect("records").next().is_none());
    // The writer keeps working after the reader came and went.
    let a3 = writer
        .append_entry("alpha", None, Bytes::from_static(b"three"), true)
        .expect("writer appends");
    assert_eq!(writer.read_entry_at(a3).expect("read"), "three");
}

#[test]
fn read_only_handles_do_not_hold_the_lock() {
    let (_tmp, dir) = wal_dir();
    let writer = Wal::builder(&dir).open().expect("writer");
    let r = writer
        .append_entry("k", None, Bytes::from_static(b"v"), true)
        .expect("append");
    writer.close().expect("close");
    let held = foreign_lock(&dir).expect("lock");
    let reader = Wal::new(as_str(&dir), WalOptions::default()).expect("reader");
    assert!(reader.is_read_only());
    drop(held);
    // The reader is still open, yet a new writer gets the lock.
    let writer2 = Wal::builder(&dir)
        .open()
        .expect("writer after the first dropped");
    assert!(!writer2.is_read_only());
    assert_eq!(writer2.read_entry_at(r).expect("read"), "v");
    assert_eq!(reader.read_entry_at(r).expect("reader still reads"), "v");
    // And the lock is held again.
    assert!(foreign_lock(&dir).is_none());
}

#[test]
fn dropping_the_writer_releases_the_lock() {
    let (_tmp, dir) = wal_dir();
    let first = Wal::builder(&dir).open().expect("first");
    let r = first
        .append_entry("k", None, Bytes::from_static(b"kept"), false)
        .expect("append");
    assert!(foreign_lock(&dir).is_none());
    drop(first);
    drop(foreign_lock(&dir).expect("released by the drop"));

    let second = Wal::builder(&dir).open().expect("open after drop");
    assert!(!second.is_read_only());
    assert_eq!(second.read_entry_at(r).expect("read"), "kept");
    let r2 = second
        .append_entry("k", None, Bytes::from_static(b"more"), true)
        .expect("new writer appends");
    assert_eq!(second.read_entry_at(r2).expect("read"), "more");
    drop(second);

    // Wal::new, too, becomes a writer once the lock is free.
    let third = Wal::new(as_str(&dir), WalOptions::default()).expect("Wal::new");
    assert!(
        !third.is_read_only(),
        "no one holds the lock, so Wal::new writes"
    );
    third
        .append_entry("k", None, Bytes::from_static(b"third"), false)
        .expect("append");
    assert!(foreign_lock(&dir).is_none());
}

#[test]
fn close_releases_the_lock() {
    let (_tmp, dir) = wal_dir();
    let first = Wal::builder(&dir).open().expect("first");
    let r = first
        .append_entry(
            "k",
            Some(Bytes::from_static(b"h")),
            Bytes::from_static(b"v"),
            false,
        )
        .expect("append");
    first.close().expect("close");
    let second = Wal::builder(&dir).open().expect("open after close");
    assert!(!second.is_read_only());
    let rec = second.read_record_at(r).expect("read");
    assert_eq!(
        (rec.header, rec.content),
        (Some(Bytes::from("h")), Bytes::from("v"))
    );
    // A read-only handle closing does not release someone else's lock.
    let reader = Wal::builder(&dir).read_only(true).open().expect("reader");
    assert!(reader.is_read_only());
    reader.close().expect("close reader");
    assert!(foreign_lock(&dir).is_none());
    // Closing one of two handles of this process keeps the lock too.
    let other = Wal::new(as_str(&dir), WalOptions::default()).expect("shared");
    assert!(!other.is_read_only());
    other.close().expect("close one handle");
    assert!(foreign_lock(&dir).is_none());
    assert_eq!(second.read_entry_at(r).expect("still open"), "v");
    second.close().expect("close the last");
    assert!(foreign_lock(&dir).is_some());
}

// ---- Two processes ------------------------------------------------------------

/// A child process running [`child_holds_lock`]; killed if still running
/// when dropped, so a failing test never leaves it behind.
struct LockHolder {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl LockHolder {
    fn spawn(dir: &Path) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--ignored"])
            .env(CHILD_DIR_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child test process");
        let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        Self { child, stdout }
    }

    /// Read the child's output until it reports holding the lock.
    fn wait_until_locked(&mut self) {
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read child stdout");
            assert!(
                n > 0,
                "child exited without reporting LOCKED; its output:\n{seen}"
            );
            if line.trim_end().ends_with("LOCKED") {
                return;
            }
            seen.push_str(&line);
        }
    }

    /// Close the child's stdin and wait for it to finish its test.
    fn end(mut self) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .expect("read child stdout");
        let status = self.child.wait().expect("wait for child");
        assert!(status.success(), "child failed: {status}; output:\n{rest}");
    }

    fn kill(mut self) {
        self.child.kill().expect("kill child");
        self.child.wait().expect("reap child");
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_writer_in_another_process_locks_us_out_until_it_ends() {
    let (_tmp, dir) = wal_dir();
    let mut holder = LockHolder::spawn(&dir);
    holder.wait_until_locked();

    assert_locked(Wal::builder(&dir).open());
    // Wal::new opens read-only and sees the child's record.
    let reader = Wal::new(as_str(&dir), WalOptions::default()).expect("reader");
    assert!(reader.is_read_only());
    let got: Vec<Bytes> = reader
        .enumerate_records("from-child")
        .expect("enumerate")
        .collect();
    assert_eq!(got, vec![Bytes::from("hello from the child")]);
    assert_read_only(
        reader.append_entry("from-child", None, Bytes::from_static(b"x"), false),
        "append while another process writes",
    );
    drop(reader);

    holder.end();
    let wal = Wal::builder(&dir)
        .open()
        .expect("open after the child ended");
    assert!(!wal.is_read_only());
    let got: Vec<Bytes> = wal
        .enumerate_records("from-child")
        .expect("enumerate")
        .collect();
    assert_eq!(got, vec![Bytes::from("hello from the child")]);
}

#[test]
fn a_killed_writer_process_releases_the_lock() {
    let (_tmp, dir) = wal_dir();
    let mut holder = LockHolder::spawn(&dir);
    holder.wait_until_locked();
    assert_locked(Wal::builder(&dir).open());
    holder.kill();
    let wal = Wal::builder(&dir)
        .open()
        .expect("open after the child was killed");
    assert!(!wal.is_read_only());
    // The child's non-durable record reached the OS before it was killed.
    let got: Vec<Bytes> = wal
        .enumerate_records("from-child")
        .expect("enumerate")
        .collect();
    assert_eq!(got, vec![Bytes::from("hello from the child")]);
}

/// Run only as a child of the tests above: holds the writer lock on the
/// directory named by the environment until its stdin closes. Run on its
/// own (without the variable) it does nothing.
#[test]
#[ignore = "helper process for the two-process tests"]
fn child_holds_lock() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let wal = Wal::builder(&dir).open().expect("child opens as writer");
    let _: EntryRef = wal
        .append_entry(
            "from-child",
            None,
            Bytes::from_static(b"hello from the child"),
            false,
        )
        .expect("child appends");
    let mut out = std::io::stdout().lock();
    writeln!(out).expect("stdout");
    writeln!(out, "LOCKED").expect("stdout");
    out.flush().expect("flush");
    drop(out);
    let mut sink = Vec::new();
    // Blocks until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(wal);
}
