//! `Wal::keys()` lists every key that holds records, as bytes, sorted, also
//! keys whose bytes are not UTF-8, and each reads back. `enumerate_keys()`
//! (0.5's `String` API) lists the UTF-8 ones only, each of which reads back:
//! it never returns a lossy "�" string that matches no key.

use std::fmt;

use bytes::Bytes;
use nano_wal::{Wal, WalError};

/// A key whose bytes are not UTF-8.
#[derive(Debug, Clone, Hash)]
struct RawKey(Vec<u8>);

impl AsRef<[u8]> for RawKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn contents(wal: &Wal, key: &[u8]) -> Result<Vec<Bytes>, WalError> {
    wal.records(key)?.map(|r| r.map(|r| r.content)).collect()
}

#[test]
fn keys_lists_non_utf8_keys_and_enumerate_keys_skips_them() -> Result<(), WalError> {
    let tmp = tempfile::tempdir()?;
    let raw = RawKey(vec![0xff, 0xfe, b'k']);
    let latin1 = RawKey(b"caf\xe9".to_vec());
    {
        let wal = Wal::builder(tmp.path()).open()?;
        wal.append_entry(raw.clone(), None, Bytes::from("raw 1"), false)?;
        wal.append_entry("plain", None, Bytes::from("plain 1"), false)?;
        wal.append_entry(latin1.clone(), None, Bytes::from("latin1 1"), false)?;
        wal.append_entry(raw.clone(), None, Bytes::from("raw 2"), true)?;
        wal.append_entry("another", None, Bytes::from("another 1"), true)?;
        wal.close()?;
    }
    let wal = Wal::builder(tmp.path()).open()?;
    let expected: Vec<Vec<u8>> = vec![
        b"another".to_vec(),
        b"caf\xe9".to_vec(),
        b"plain".to_vec(),
        vec![0xff, 0xfe, b'k'],
    ];

    let names: Vec<String> = wal.enumerate_keys()?.collect();
    assert_eq!(names, vec!["another", "plain"], "UTF-8 keys only");
    for name in &names {
        assert!(
            !contents(&wal, name.as_bytes())?.is_empty(),
            "{name} reads back"
        );
    }

    assert_eq!(wal.keys()?, expected);
    assert_eq!(contents(&wal, &raw.0)?, vec!["raw 1", "raw 2"]);
    assert_eq!(contents(&wal, &latin1.0)?, vec!["latin1 1"]);
    for key in wal.keys()? {
        assert!(!contents(&wal, &key)?.is_empty(), "{key:?} reads back");
    }
    Ok(())
}
