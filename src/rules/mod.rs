//! The rules of the log, written once and used by every caller: what a
//! record must satisfy before it is written ([`write`]), what recovery and
//! `verify` conclude from the bytes they find ([`recovery`]), and when a
//! segment has expired ([`retention`]). Pure: facts in, verdicts out; no I/O.

pub(crate) mod recovery;
pub(crate) mod retention;
pub(crate) mod write;
