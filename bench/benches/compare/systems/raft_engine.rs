//! raft-engine 0.4.2 (TiKV's multi-Raft log store), compared only on what
//! it is for: synced batches of entries for many Raft groups. Settings:
//! its defaults (`Config::default()`, LZ4 on batches over 8 KiB, which the
//! workload's random entries do not shrink) with `dir` set; entries are
//! `raft::eraftpb::Entry` with the content as `data`.

use std::path::Path;

use bytes::Bytes;
#[cfg(feature = "raft-engine")]
use raft::eraftpb::Entry;
#[cfg(feature = "raft-engine")]
use raft_engine::{Config, Engine, LogBatch, MessageExt};

use super::{Group, Kind, OpenCfg, Res, System};

/// Name in the table.
pub const NAME: &str = "raft-engine";

#[cfg(feature = "raft-engine")]
const ONLY: &str = "raft-engine: compared on multi-group Raft writes only";

/// Without the `raft-engine` feature the peer is not built.
#[cfg(not(feature = "raft-engine"))]
const NOT_BUILT: &str = "raft-engine: built only with --features raft-engine";

/// Stands in for the engine when the peer is not built.
#[cfg(not(feature = "raft-engine"))]
pub struct RaftEngine;

#[cfg(not(feature = "raft-engine"))]
impl System for RaftEngine {
    type Ref = (u64, u64);
    const KEYED: bool = true;

    fn unsupported(_kind: Kind) -> Option<&'static str> {
        Some(NOT_BUILT)
    }
    fn open(_dir: &Path, _cfg: &OpenCfg) -> Res<Self> {
        Err(NOT_BUILT.into())
    }
    fn append(&self, _key: &str, _content: &Bytes, _durable: bool) -> Res<(u64, u64)> {
        Err(NOT_BUILT.into())
    }
    fn append_batch(&self, _items: &[(String, Bytes)], _durable: bool) -> Res<Vec<(u64, u64)>> {
        Err(NOT_BUILT.into())
    }
    fn append_groups(&self, _groups: &[Group]) -> Res<()> {
        Err(NOT_BUILT.into())
    }
    fn sync(&self) -> Res<()> {
        Err(NOT_BUILT.into())
    }
    fn read(&self, _r: (u64, u64)) -> Res<usize> {
        Err(NOT_BUILT.into())
    }
    fn enumerate(&mut self, _key: &str) -> Res<(u64, u64)> {
        Err(NOT_BUILT.into())
    }
    fn close(self) -> Res<()> {
        Ok(())
    }
}

/// The engine.
#[cfg(feature = "raft-engine")]
pub struct RaftEngine(Engine);

#[cfg(feature = "raft-engine")]
#[derive(Clone)]
struct Typed;

#[cfg(feature = "raft-engine")]
impl MessageExt for Typed {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

#[cfg(feature = "raft-engine")]
impl System for RaftEngine {
    type Ref = (u64, u64);
    const KEYED: bool = true;

    fn unsupported(kind: Kind) -> Option<&'static str> {
        match kind {
            Kind::MultiGroup => None,
            _ => Some(ONLY),
        }
    }

    fn open(dir: &Path, _cfg: &OpenCfg) -> Res<Self> {
        let config = Config {
            dir: dir.to_str().ok_or("temp dir is not UTF-8")?.to_owned(),
            ..Config::default()
        };
        Ok(Self(Engine::open(config)?))
    }

    fn append(&self, _key: &str, _content: &Bytes, _durable: bool) -> Res<(u64, u64)> {
        Err(ONLY.into())
    }

    fn append_batch(&self, _items: &[(String, Bytes)], _durable: bool) -> Res<Vec<(u64, u64)>> {
        Err(ONLY.into())
    }

    fn append_groups(&self, groups: &[Group]) -> Res<()> {
        let mut batch = LogBatch::with_capacity(groups.len());
        for g in groups {
            let entries: Vec<Entry> = g
                .entries
                .iter()
                .zip(g.first_index..)
                .map(|(content, index)| Entry {
                    index,
                    term: 1,
                    data: content.to_vec().into(),
                    ..Entry::default()
                })
                .collect();
            batch.add_entries::<Typed>(g.id, &entries)?;
        }
        self.0.write(&mut batch, true)?;
        Ok(())
    }

    fn sync(&self) -> Res<()> {
        self.0.sync()?;
        Ok(())
    }

    fn read(&self, _r: (u64, u64)) -> Res<usize> {
        Err(ONLY.into())
    }

    fn enumerate(&mut self, _key: &str) -> Res<(u64, u64)> {
        Err(ONLY.into())
    }

    fn close(self) -> Res<()> {
        Ok(())
    }
}
