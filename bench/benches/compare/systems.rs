//! The common interface every compared system implements, and the registry
//! that maps a system's name to its adapter.

pub mod commitlog;
pub mod nano;
pub mod nano05;
pub mod okaywal;
pub mod raft_engine;
pub mod raw;
pub mod sqlite;

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;

/// Any error an adapter can hit.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result of an adapter call.
pub type Res<T> = Result<T, Error>;

/// What a workload asks of a system, for saying "unsupported" up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Appends that only have to reach the operating system.
    AppendNonDurable,
    /// One fsync (or equivalent) per record.
    AppendDurable,
    /// Many records made durable together.
    BatchDurable,
    /// Durable appends from several threads.
    Threads,
    /// Point reads by the reference the append returned.
    RandomRead,
    /// Reading every record of one key, in order.
    Enumerate,
    /// Opening a directory written earlier.
    Reopen,
    /// One non-durable record for each of very many keys.
    ManyKeys,
    /// Synced batches of entries for several Raft groups at once.
    MultiGroup,
}

/// One group's entries in a multi-group batch.
#[derive(Clone, Debug)]
pub struct Group {
    /// The group (a key, or a raft-engine region).
    pub id: u64,
    /// Raft index of the first entry (raft-engine needs it; keyed logs
    /// number their records themselves).
    #[cfg_attr(
        not(feature = "raft-engine"),
        expect(dead_code, reason = "read only by the raft-engine peer")
    )]
    pub first_index: u64,
    /// The entries.
    pub entries: Vec<Bytes>,
}

/// How a workload wants the system opened.
#[derive(Clone, Copy, Debug)]
pub struct OpenCfg {
    /// Descriptor budget for systems that have one (`None`: the default).
    pub max_open_files: Option<usize>,
    /// Keep every record readable (okaywal: never checkpoint).
    pub keep_all: bool,
}

/// One compared system.
///
/// Every call takes `&self`; adapters whose library needs `&mut self` keep it
/// behind a `Mutex`, which single-threaded workloads take uncontended.
pub trait System: Sized + Sync {
    /// What an append hands back and a point read takes.
    type Ref: Copy + Send + Sync;

    /// Whether records go to separate keys (otherwise all share one log).
    const KEYED: bool;

    /// Why the system cannot run a kind of workload, if it cannot.
    fn unsupported(kind: Kind) -> Option<&'static str>;

    /// Open (creating if needed) the system's data in `dir`.
    fn open(dir: &Path, cfg: &OpenCfg) -> Res<Self>;

    /// Append one record to `key`.
    fn append(&self, key: &str, content: &Bytes, durable: bool) -> Res<Self::Ref>;

    /// Append many records, durable together if `durable`.
    fn append_batch(&self, items: &[(String, Bytes)], durable: bool) -> Res<Vec<Self::Ref>>;

    /// Make everything appended so far durable.
    fn sync(&self) -> Res<()>;

    /// Write several groups' entries as one synced batch (default: one
    /// durable `append_batch`, group `g` as key `g<g>`).
    fn append_groups(&self, groups: &[Group]) -> Res<()> {
        let items: Vec<(String, Bytes)> = groups
            .iter()
            .flat_map(|g| {
                g.entries
                    .iter()
                    .map(move |e| (format!("g{}", g.id), e.clone()))
            })
            .collect();
        self.append_batch(&items, true).map(|_| ())
    }

    /// Read one record's content; returns its length after consuming it.
    fn read(&self, r: Self::Ref) -> Res<usize>;

    /// Read every record of `key` in order; returns (records, bytes).
    fn enumerate(&mut self, key: &str) -> Res<(u64, u64)>;

    /// The fastest way the system has to read every record of `key`
    /// (default: [`System::enumerate`]).
    fn scan(&mut self, key: &str) -> Res<(u64, u64)> {
        self.enumerate(key)
    }

    /// Close, keeping the data.
    fn close(self) -> Res<()>;
}

/// Make the optimizer keep `bytes` and return its length.
pub fn consume(bytes: &[u8]) -> usize {
    black_box(bytes).len()
}

/// Every system's name, in table order.
pub const NAMES: [&str; 8] = [
    nano::NAME,
    nano::TAILS_NAME,
    nano05::NAME,
    okaywal::NAME,
    sqlite::NAME,
    commitlog::NAME,
    raw::NAME,
    raft_engine::NAME,
];

/// Call `f` with the adapter type called `name`.
pub fn with_system<V: Visitor>(name: &str, v: V) -> Option<V::Out> {
    Some(match name {
        nano::NAME => v.visit::<nano::NanoDefault>(),
        nano::TAILS_NAME => v.visit::<nano::NanoTails>(),
        nano05::NAME => v.visit::<nano05::Nano05>(),
        okaywal::NAME => v.visit::<okaywal::Okay>(),
        sqlite::NAME => v.visit::<sqlite::Sqlite>(),
        commitlog::NAME => v.visit::<commitlog::Clog>(),
        raw::NAME => v.visit::<raw::Raw>(),
        raft_engine::NAME => v.visit::<raft_engine::RaftEngine>(),
        _ => return None,
    })
}

/// Something to do with one adapter type (see [`with_system`]).
pub trait Visitor {
    /// What the visit returns.
    type Out;
    /// Do it with `S`.
    fn visit<S: System>(self) -> Self::Out;
}

/// Why `name` cannot run `kind`, if it cannot.
pub fn unsupported(name: &str, kind: Kind) -> Option<&'static str> {
    struct Ask(Kind);
    impl Visitor for Ask {
        type Out = Option<&'static str>;
        fn visit<S: System>(self) -> Self::Out {
            S::unsupported(self.0)
        }
    }
    with_system(name, Ask(kind)).flatten()
}
