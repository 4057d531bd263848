//! The comparison harness: command line, adapters, workloads, child
//! processes and the report.

pub mod args;
pub mod child;
pub mod machine;
pub mod measure;
pub mod measure_read;
pub mod report;
pub mod systems;
pub mod workloads;
