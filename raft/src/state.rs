//! A group's durable state besides its entries: the vote, the committed
//! log id and the last purged log id. Each change appends the whole state
//! as one record of the group's state key; opening reads the key's last
//! record (no scan). Older state records are purged now and then.

use nano_wal::{Record, Wal};
use openraft::{LogId, RaftTypeConfig, Vote};
use serde::{Deserialize, Serialize};

/// The state record (JSON; the record header names its format).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct GroupState<C: RaftTypeConfig> {
    pub vote: Option<Vote<C::NodeId>>,
    pub committed: Option<LogId<C::NodeId>>,
    pub last_purged: Option<LogId<C::NodeId>>,
}

impl<C: RaftTypeConfig> Default for GroupState<C> {
    fn default() -> Self {
        Self {
            vote: None,
            committed: None,
            last_purged: None,
        }
    }
}

/// The header of every state record: its format.
pub(crate) const STATE_HEADER: &[u8] = b"nano-wal-raft state v1";

impl<C: RaftTypeConfig> GroupState<C> {
    pub fn encode(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    /// Decode a state record, checking its header.
    pub fn decode(r: &Record) -> Result<Self, String> {
        if r.header.as_deref() != Some(STATE_HEADER) {
            return Err(format!(
                "state record {} has an unknown header",
                r.entry_ref
            ));
        }
        serde_json::from_slice(&r.content).map_err(|e| format!("state record {}: {e}", r.entry_ref))
    }

    /// The newest state of a group, or the initial state.
    pub fn load(wal: &Wal, key: &[u8]) -> Result<Self, String> {
        match wal.last_record(key).map_err(|e| e.to_string())? {
            Some(r) => Self::decode(&r),
            None => Ok(Self::default()),
        }
    }
}
