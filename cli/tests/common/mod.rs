//! Running the `nano-wal` binary from the CLI tests.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::error::Error;
use std::ffi::OsStr;
use std::process::{Command, Output};

/// Run the binary with `args`.
pub fn nano_wal<I, S>(args: I) -> Result<Output, Box<dyn Error>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ok(Command::new(env!("CARGO_BIN_EXE_nano-wal"))
        .args(args)
        .output()?)
}

/// Run and expect success with nothing on stderr; returns stdout.
pub fn ok<I, S>(args: I) -> Result<String, Box<dyn Error>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let out = nano_wal(&args)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert!(out.status.success(), "{shown:?} failed: {stderr}");
    assert_eq!(stderr, "", "{shown:?}: nothing on stderr");
    Ok(String::from_utf8(out.stdout)?)
}
