//! SQLite (rusqlite, bundled) in WAL journal mode: one table with an index on
//! the key.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::{Kind, OpenCfg, Res, System, consume};

/// Name in the table.
pub const NAME: &str = "sqlite";

/// One connection. A `Connection` is not `Sync`, and SQLite lets one writer
/// in at a time anyway (it has no group commit), so threads share it behind a
/// lock.
pub struct Sqlite(Mutex<State>);

struct State {
    conn: Connection,
    /// The `synchronous` setting in force: `Some(true)` for FULL.
    durable: Option<bool>,
}

const INSERT: &str = "INSERT INTO log (key, content) VALUES (?1, ?2)";

impl State {
    /// Durable: `synchronous=FULL`, the WAL is fsynced at every commit.
    /// Non-durable: `synchronous=NORMAL`, which in WAL mode fsyncs only at
    /// checkpoints, so a commit has reached the OS but not the disk: the
    /// equivalent of a non-durable append.
    fn set_durable(&mut self, durable: bool) -> Res<()> {
        if self.durable != Some(durable) {
            let mode = if durable { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.durable = Some(durable);
        }
        Ok(())
    }
}

impl Sqlite {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl System for Sqlite {
    type Ref = i64;
    const KEYED: bool = true;

    fn unsupported(_kind: Kind) -> Option<&'static str> {
        None
    }

    fn open(dir: &Path, _cfg: &OpenCfg) -> Res<Self> {
        let conn = Connection::open(dir.join("log.sqlite"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("journal_mode is {mode}, not wal").into());
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, key TEXT NOT NULL, content BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS log_key ON log (key);",
        )?;
        Ok(Self(Mutex::new(State {
            conn,
            durable: None,
        })))
    }

    /// One autocommit `INSERT`: one transaction per record.
    fn append(&self, key: &str, content: &Bytes, durable: bool) -> Res<i64> {
        let mut state = self.state();
        state.set_durable(durable)?;
        let mut stmt = state.conn.prepare_cached(INSERT)?;
        Ok(stmt.insert(params![key, &content[..]])?)
    }

    /// One transaction around all the inserts.
    fn append_batch(&self, items: &[(String, Bytes)], durable: bool) -> Res<Vec<i64>> {
        let mut state = self.state();
        state.set_durable(durable)?;
        let tx = state.conn.transaction()?;
        let mut refs = Vec::with_capacity(items.len());
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for (key, content) in items {
                refs.push(stmt.insert(params![key, &content[..]])?);
            }
        }
        tx.commit()?;
        Ok(refs)
    }

    /// A passive checkpoint: fsyncs the WAL, copies it into the database file
    /// and fsyncs that.
    fn sync(&self) -> Res<()> {
        let state = self.state();
        state
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn read(&self, id: i64) -> Res<usize> {
        let state = self.state();
        let mut stmt = state
            .conn
            .prepare_cached("SELECT content FROM log WHERE id = ?1")?;
        Ok(stmt.query_row([id], |row| Ok(consume(row.get_ref(0)?.as_blob()?)))?)
    }

    fn enumerate(&mut self, key: &str) -> Res<(u64, u64)> {
        let state = self.state();
        let mut stmt = state
            .conn
            .prepare_cached("SELECT content FROM log WHERE key = ?1 ORDER BY id")?;
        let mut rows = stmt.query([key])?;
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(row) = rows.next()? {
            n += 1;
            bytes += consume(row.get_ref(0)?.as_blob()?) as u64;
        }
        Ok((n, bytes))
    }

    fn close(self) -> Res<()> {
        let state = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        state.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
