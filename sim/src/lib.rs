//! Test infrastructure for nano-wal's crash safety.
//!
//! - [`disk`]: a simulated disk behind nano-wal's storage seam. It tracks,
//!   per file, the bytes written and the bytes made durable, and per
//!   directory entry whether a directory sync made it durable; it can
//!   produce the disk a power loss would leave, and inject I/O errors.
//! - [`rng`]: a tiny seeded generator, so every run can be replayed.
//! - [`report`]: the failure report every sweep ends with.
//! - [`workload`]: generated operation sequences, a runner that records what
//!   the WAL acknowledged, and the oracle that checks a recovered WAL.

pub mod arbitrary_dir;
pub mod catalog;
pub mod disk;
pub mod report;
pub mod rng;
pub mod workload;
