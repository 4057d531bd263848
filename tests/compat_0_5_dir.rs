//! Directories written by nano-wal 0.5 (format version 1) open with this
//! crate: their keys, records and `EntryRef`s keep resolving to the same
//! bytes, appends continue in a new version-2 segment with the next sequence
//! number, and a 0.5 segment that ends in a torn record opens with the
//! records before it.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, WalError, WalOptions, key_hash};

type TestResult = Result<(), Box<dyn Error>>;

/// Size of the fixed part of a version-1 segment header (the key follows).
const V1_HEADER_FIXED: u64 = 32;
/// Bytes of a version-1 record before its header: `NANORC` + u16 length.
const V1_REC_PREFIX: u64 = 8;
/// Size of a version-1 record's content-length field.
const V1_REC_CONTENT_LEN: u64 = 8;

/// The key as nano-wal 0.5 put it in file names.
fn sanitize(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .take(20)
        .collect()
}

/// `{sanitized key}-{key_hash}-{seq:04}.log`
fn segment_name(key: &str, seq: u64) -> String {
    format!(
        "{}-{}-{seq:04}.log",
        sanitize(key),
        key_hash(key.as_bytes())
    )
}

/// Length of a version-1 record.
fn v1_record_len(header: Option<&[u8]>, content: &[u8]) -> u64 {
    V1_REC_PREFIX + header.map_or(0, <[u8]>::len) as u64 + V1_REC_CONTENT_LEN + content.len() as u64
}

/// One expiration timestamp a day in the future, in seconds.
fn far_expiration() -> Result<u64, Box<dyn Error>> {
    Ok((SystemTime::now() + Duration::from_secs(24 * 3600))
        .duration_since(UNIX_EPOCH)?
        .as_secs())
}

/// Write a version-1 segment exactly as nano-wal 0.5 laid it out:
/// `[NANO-LOG][0u64][expiration_secs u64][key_len u64][key]` followed by
/// records `[NANORC][header_len u16][header][content_len u64][content]`.
///
/// Returns the file's path and, per record, its `EntryRef` offset (bytes
/// after the segment header).
fn write_v1_segment(
    dir: &Path,
    key: &str,
    seq: u64,
    expiration_secs: u64,
    records: &[(Option<&[u8]>, &[u8])],
) -> Result<(PathBuf, Vec<u64>), Box<dyn Error>> {
    let mut buf = Vec::new();
    buf.extend_from_slice(b"NANO-LOG");
    buf.extend_from_slice(&0u64.to_le_bytes());
    buf.extend_from_slice(&expiration_secs.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u64).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    let header_len = buf.len();
    assert_eq!(header_len as u64, V1_HEADER_FIXED + key.len() as u64);
    let mut offsets = Vec::new();
    for (header, content) in records {
        offsets.push((buf.len() - header_len) as u64);
        let h = header.unwrap_or(&[]);
        buf.extend_from_slice(b"NANORC");
        buf.extend_from_slice(&u16::try_from(h.len())?.to_le_bytes());
        buf.extend_from_slice(h);
        buf.extend_from_slice(&(content.len() as u64).to_le_bytes());
        buf.extend_from_slice(content);
    }
    let path = dir.join(segment_name(key, seq));
    std::fs::write(&path, &buf)?;
    Ok((path, offsets))
}

fn path_str(p: &Path) -> Result<&str, Box<dyn Error>> {
    p.to_str().ok_or_else(|| "temp path is not UTF-8".into())
}

fn contents(wal: &Wal, key: &str) -> Result<Vec<Bytes>, WalError> {
    Ok(wal.enumerate_records(key)?.collect())
}

fn keys(wal: &Wal) -> Result<Vec<String>, WalError> {
    let mut keys: Vec<String> = wal.enumerate_keys()?.collect();
    keys.sort();
    Ok(keys)
}

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

/// A reference with the header and content it must resolve to.
type Expected = (EntryRef, Option<&'static [u8]>, &'static [u8]);

/// Everything about the hand-built directory that must hold before and after
/// appending to it and reopening it.
struct HandBuilt {
    orders_refs: Vec<Expected>,
    user_refs: Vec<(EntryRef, &'static [u8])>,
}

fn check_hand_built(wal: &Wal, d: &HandBuilt, extra_orders: &[Bytes]) -> TestResult {
    assert_eq!(
        keys(wal)?,
        vec!["orders".to_owned(), "user:42".to_owned()],
        "both 0.5 keys are listed"
    );
    let mut expected: Vec<Bytes> = d.orders_refs.iter().map(|(_, _, c)| b(c)).collect();
    expected.extend_from_slice(extra_orders);
    assert_eq!(
        contents(wal, "orders")?,
        expected,
        "orders records in order"
    );
    let expected_user: Vec<Bytes> = d.user_refs.iter().map(|(_, c)| b(c)).collect();
    assert_eq!(contents(wal, "user:42")?, expected_user);

    for (r, header, content) in &d.orders_refs {
        assert_eq!(wal.read_entry_at(*r)?, b(content), "read_entry_at({r})");
        let rec = wal.read_record_at(*r)?;
        assert_eq!(rec.content, b(content));
        assert_eq!(rec.header, header.map(b), "header of {r}");
        assert_eq!(rec.timestamp_unix_ms, None, "0.5 records have no timestamp");
        assert_eq!(rec.entry_ref, *r);
    }
    for (r, content) in &d.user_refs {
        assert_eq!(wal.read_entry_at(*r)?, b(content), "read_entry_at({r})");
        assert_eq!(wal.read_record_at(*r)?.header, None);
    }
    Ok(())
}

#[test]
fn hand_built_0_5_directory_opens_reads_and_continues() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    std::fs::create_dir_all(&dir)?;
    let exp = far_expiration()?;

    let (o1_path, o1) = write_v1_segment(
        &dir,
        "orders",
        1,
        exp,
        &[
            (None, b"order one"),
            (Some(b"meta=1"), b"order two, with a header"),
        ],
    )?;
    let (o2_path, o2) = write_v1_segment(&dir, "orders", 2, exp, &[(None, b"order three")])?;
    let (u1_path, u1) = write_v1_segment(
        &dir,
        "user:42",
        1,
        exp,
        &[(None, b"user first"), (None, b"user second")],
    )?;
    // Offsets computed by hand from the layout: the first record starts right
    // after the header, the second after 6 + 2 + 0 + 8 + 9 bytes.
    assert_eq!(o1, vec![0, 25]);
    assert_eq!(o1[1], v1_record_len(None, b"order one"));
    assert_eq!(o2, vec![0]);
    assert_eq!(u1, vec![0, v1_record_len(None, b"user first")]);
    assert!(
        u1_path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("user42-")),
        "0.5 names drop ':'"
    );

    let oh = key_hash(b"orders");
    let uh = key_hash(b"user:42");
    let r = |key_hash, sequence_number, offset| EntryRef {
        key_hash,
        sequence_number,
        offset,
    };
    let d = HandBuilt {
        orders_refs: vec![
            (r(oh, 1, 0), None, b"order one"),
            (r(oh, 1, 25), Some(b"meta=1"), b"order two, with a header"),
            (r(oh, 2, 0), None, b"order three"),
        ],
        user_refs: vec![
            (r(uh, 1, 0), b"user first"),
            (r(uh, 1, u1[1]), b"user second"),
        ],
    };
    let legacy_bytes: Vec<(PathBuf, Vec<u8>)> = [&o1_path, &o2_path, &u1_path]
        .into_iter()
        .map(|p| Ok((p.clone(), std::fs::read(p)?)))
        .collect::<Result<_, std::io::Error>>()?;

    let wal = Wal::new(path_str(&dir)?, WalOptions::default())?;
    assert!(!wal.is_read_only());
    assert!(
        wal.recovery_report().torn_tails.is_empty(),
        "intact 0.5 segments are not torn: {:?}",
        wal.recovery_report()
    );
    check_hand_built(&wal, &d, &[])?;

    // Appending continues the old key in a new, version-2 segment.
    let new = wal.append_entry("orders", None, Bytes::from_static(b"order four"), true)?;
    assert_eq!(new.key_hash, oh, "same key, same hash");
    assert_eq!(
        new.sequence_number, 3,
        "next sequence after the 0.5 segments"
    );
    assert_eq!(new.offset, 0, "first record of the new segment");
    let new_path = dir.join(segment_name("orders", 3));
    let new_file = std::fs::read(&new_path)?;
    assert_eq!(&new_file[..8], b"NANO-LOG");
    assert_eq!(
        new_file[8..12],
        3u32.to_le_bytes(),
        "new segment uses format version 3"
    );
    let extra = [Bytes::from_static(b"order four")];
    check_hand_built(&wal, &d, &extra)?;
    assert_eq!(wal.read_entry_at(new)?, extra[0]);
    assert!(
        wal.read_record_at(new)?.timestamp_unix_ms.is_some(),
        "version-2 records carry a timestamp"
    );
    drop(wal);

    let wal = Wal::new(path_str(&dir)?, WalOptions::default())?;
    check_hand_built(&wal, &d, &extra)?;
    assert_eq!(wal.read_entry_at(new)?, extra[0]);
    let next = wal.append_entry("orders", None, Bytes::from_static(b"order five"), false)?;
    assert_eq!(
        (next.key_hash, next.sequence_number),
        (oh, 4),
        "a reopened WAL never appends to an earlier process's segment: a new one follows"
    );
    drop(wal);

    for (p, bytes) in legacy_bytes {
        assert_eq!(
            std::fs::read(&p)?,
            bytes,
            "0.5 segment {} must not be rewritten",
            p.display()
        );
    }
    Ok(())
}

/// One record written by the real nano-wal 0.5.
struct Written {
    key: &'static str,
    header: Option<Bytes>,
    content: Bytes,
    entry_ref: nano_wal_05::EntryRef,
}

fn convert(r: &nano_wal_05::EntryRef) -> EntryRef {
    EntryRef {
        key_hash: r.key_hash,
        sequence_number: r.sequence_number,
        offset: r.offset,
    }
}

const LONG_KEY: &str = "a-rather-long-key-name-well-over-twenty-characters";

fn write_with_0_5(path: &str, round: usize, out: &mut Vec<Written>) -> Result<(), Box<dyn Error>> {
    let mut wal05 = nano_wal_05::Wal::new(path, nano_wal_05::WalOptions::default())?;
    for i in 0..4 {
        for (k, key) in ["alpha", "user:123", LONG_KEY].into_iter().enumerate() {
            let header = ((i + k) % 2 == 0).then(|| Bytes::from(format!("hdr-{round}-{i}-{k}")));
            let content = Bytes::from(format!("{key} round {round} record {i} {}", "x".repeat(i)));
            let entry_ref = wal05.append_entry(key, header.clone(), content.clone(), i == 3)?;
            out.push(Written {
                key,
                header,
                content,
                entry_ref,
            });
        }
    }
    Ok(())
}

#[test]
fn directory_written_by_real_nano_wal_0_5_opens() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let path = path_str(&dir)?;
    let mut written = Vec::new();
    // Two 0.5 sessions: the second continues every key in segment 2.
    write_with_0_5(path, 1, &mut written)?;
    write_with_0_5(path, 2, &mut written)?;
    assert!(
        written.iter().any(|w| w.entry_ref.sequence_number == 2),
        "test setup: 0.5 wrote a second segment per key"
    );

    let wal = Wal::new(path, WalOptions::default())?;
    assert!(wal.recovery_report().torn_tails.is_empty());
    assert_eq!(wal.recovery_report().segments, 6, "3 keys x 2 segments");
    let mut expected_keys = vec![
        "alpha".to_owned(),
        "user:123".to_owned(),
        LONG_KEY.to_owned(),
    ];
    expected_keys.sort();
    assert_eq!(keys(&wal)?, expected_keys);

    for w in &written {
        let r = convert(&w.entry_ref);
        assert_eq!(
            w.entry_ref.key_hash,
            key_hash(w.key.as_bytes()),
            "0.5 and this crate agree on the hash of {:?}",
            w.key
        );
        assert_eq!(wal.read_entry_at(r)?, w.content, "read_entry_at({r})");
        let rec = wal.read_record_at(r)?;
        assert_eq!(rec.content, w.content);
        assert_eq!(rec.header, w.header, "header of {r}");
        assert_eq!(rec.timestamp_unix_ms, None);
    }
    for key in ["alpha", "user:123", LONG_KEY] {
        let expected: Vec<Bytes> = written
            .iter()
            .filter(|w| w.key == key)
            .map(|w| w.content.clone())
            .collect();
        assert_eq!(expected.len(), 8);
        assert_eq!(contents(&wal, key)?, expected, "records of {key:?}");
        let refs: Vec<EntryRef> = wal
            .records(key)?
            .map(|r| r.map(|r| r.entry_ref))
            .collect::<Result<_, _>>()?;
        let expected_refs: Vec<EntryRef> = written
            .iter()
            .filter(|w| w.key == key)
            .map(|w| convert(&w.entry_ref))
            .collect();
        assert_eq!(refs, expected_refs, "iteration yields 0.5's references");
    }

    // Appending continues each key after 0.5's last segment.
    let new = wal.append_entry(LONG_KEY, None, Bytes::from_static(b"from 0.6"), true)?;
    assert_eq!(new.key_hash, key_hash(LONG_KEY.as_bytes()));
    assert_eq!(new.sequence_number, 3);
    drop(wal);
    let wal = Wal::new(path, WalOptions::default())?;
    let got = contents(&wal, LONG_KEY)?;
    assert_eq!(got.len(), 9);
    assert_eq!(got.last(), Some(&Bytes::from_static(b"from 0.6")));
    for w in &written {
        assert_eq!(wal.read_entry_at(convert(&w.entry_ref))?, w.content);
    }
    Ok(())
}

#[test]
fn torn_0_5_segment_from_real_nano_wal_opens_with_its_prefix() -> TestResult {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("wal");
    let path = path_str(&dir)?;
    let key = "events";
    let mut refs = Vec::new();
    {
        let mut wal05 = nano_wal_05::Wal::new(path, nano_wal_05::WalOptions::default())?;
        for i in 0..4 {
            let content = Bytes::from(format!("event number {i} with some payload"));
            let header = (i == 1).then(|| Bytes::from_static(b"h"));
            refs.push((
                wal05.append_entry(key, header, content.clone(), true)?,
                content,
            ));
        }
    }
    let seg = dir.join(segment_name(key, 1));
    let len = std::fs::metadata(&seg)?.len();
    let (last_ref, last_content) = &refs[3];
    let header_len = V1_HEADER_FIXED + key.len() as u64;
    let last_start = header_len + last_ref.offset;
    assert_eq!(
        len,
        last_start + v1_record_len(None, last_content),
        "test setup: 0.5 layout"
    );
    // Cut in the middle of the last record's content.
    let cut = last_start + V1_REC_PREFIX + V1_REC_CONTENT_LEN + last_content.len() as u64 / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)?
        .set_len(cut)?;

    let wal = Wal::new(path, WalOptions::default())?;
    let expected: Vec<Bytes> = refs[..3].iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        contents(&wal, key)?,
        expected,
        "the records before the tear"
    );
    let via_records: Vec<Bytes> = wal
        .records(key)?
        .map(|r| r.map(|r| r.content))
        .collect::<Result<_, _>>()?;
    assert_eq!(via_records, expected, "records() ends cleanly at the tear");
    for (r, c) in &refs[..3] {
        assert_eq!(wal.read_entry_at(convert(r))?, *c);
    }
    assert!(
        wal.read_entry_at(convert(last_ref)).is_err(),
        "the torn record is never returned"
    );
    let report = wal.recovery_report();
    assert!(!report.torn_tails.is_empty(), "torn tail reported");
    let torn = &report.torn_tails[0];
    assert_eq!(torn.path.file_name(), seg.file_name());
    assert_eq!(torn.file_position, last_start);
    assert_eq!(torn.bytes_dropped, cut - last_start);

    // Appends continue in a new segment; the torn bytes never reappear.
    let new = wal.append_entry(key, None, Bytes::from_static(b"after the tear"), true)?;
    assert_eq!(new.sequence_number, 2);
    drop(wal);
    let wal = Wal::new(path, WalOptions::default())?;
    let mut expected_after = expected;
    expected_after.push(Bytes::from_static(b"after the tear"));
    assert_eq!(contents(&wal, key)?, expected_after);
    assert!(wal.read_entry_at(convert(last_ref)).is_err());
    Ok(())
}

#[test]
fn hand_built_0_5_segment_torn_at_every_byte_of_its_last_record() -> TestResult {
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    std::fs::create_dir_all(&src)?;
    let key = "k";
    let records: [(Option<&[u8]>, &[u8]); 3] = [
        (None, b"first"),
        (Some(b"hh"), b"second"),
        (Some(b"meta"), b"third record"),
    ];
    let (seg, offsets) = write_v1_segment(&src, key, 1, far_expiration()?, &records)?;
    let full = std::fs::read(&seg)?;
    let name = segment_name(key, 1);
    let last_start = V1_HEADER_FIXED + key.len() as u64 + offsets[2];
    let expected = vec![b(records[0].1), b(records[1].1)];
    for cut in last_start + 1..full.len() as u64 {
        let dir = t.path().join(format!("cut{cut}"));
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(&name);
        std::fs::write(&p, &full[..usize::try_from(cut)?])?;
        let wal = Wal::new(path_str(&dir)?, WalOptions::default())?;
        assert_eq!(contents(&wal, key)?, expected, "cut at {cut}");
        let report = wal.recovery_report();
        assert_eq!(report.torn_tails.len(), 1, "cut at {cut}: {report:?}");
        assert_eq!(report.torn_tails[0].file_position, last_start, "cut {cut}");
        let torn = EntryRef {
            key_hash: key_hash(key.as_bytes()),
            sequence_number: 1,
            offset: offsets[2],
        };
        assert!(wal.read_entry_at(torn).is_err(), "cut {cut}: torn record");
    }
    Ok(())
}
