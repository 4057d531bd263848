//! Records of about 1 KiB, so a few fill a 4 KiB segment: for the tests of
//! removing records, which need a key spread over several segments.

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError};

/// `text`, padded with dots to 1,000 bytes.
pub fn padded(text: &str) -> Bytes {
    Bytes::from(format!("{text:.<1000}"))
}

/// The text a [`padded`] record was made from.
pub fn unpad(content: &[u8]) -> String {
    String::from_utf8_lossy(content)
        .trim_end_matches('.')
        .to_owned()
}

/// Every record of `key`, unpadded, through [`Wal::records`].
pub fn contents(wal: &Wal, key: &str) -> Result<Vec<String>, WalError> {
    wal.records(key)?
        .map(|r| r.map(|r| unpad(&r.content)))
        .collect()
}

/// Append `r0`, `r1`, … `r{n-1}` (padded) to `key`.
pub fn fill(wal: &Wal, key: &str, n: usize) -> Result<Vec<EntryRef>, WalError> {
    (0..n)
        .map(|i| wal.append_entry(key, None, padded(&format!("r{i}")), false))
        .collect()
}
