//! The manifest's bytes (FORMAT.md §12): a checkpoint of every key's
//! segments and where their durable data ends, and where journal replay
//! starts.

use super::{get_u16, get_u32, get_u64};

/// Magic bytes at the start of every manifest file.
pub(crate) const MANIFEST_MAGIC: [u8; 8] = *b"NANO-MAN";
/// Manifest format version written and read by this crate.
pub(crate) const MANIFEST_VERSION: u32 = 1;
/// Flag: written by a clean close; no journal follows it.
pub(crate) const MANIFEST_FLAG_CLEAN: u32 = 1;

pub(crate) const MH_VERSION_OFFSET: usize = MANIFEST_MAGIC.len();
pub(crate) const MH_FLAGS_OFFSET: usize = MH_VERSION_OFFSET + size_of::<u32>();
pub(crate) const MH_GENERATION_OFFSET: usize = MH_FLAGS_OFFSET + size_of::<u32>();
pub(crate) const MH_JOURNAL_START_OFFSET: usize = MH_GENERATION_OFFSET + size_of::<u64>();
pub(crate) const MH_NEXT_FRAME_OFFSET: usize = MH_JOURNAL_START_OFFSET + size_of::<u64>();
pub(crate) const MH_KEY_COUNT_OFFSET: usize = MH_NEXT_FRAME_OFFSET + size_of::<u64>();
pub(crate) const MH_BODY_LEN_OFFSET: usize = MH_KEY_COUNT_OFFSET + size_of::<u64>();
pub(crate) const MH_BODY_CRC_OFFSET: usize = MH_BODY_LEN_OFFSET + size_of::<u64>();
pub(crate) const MH_HEAD_CRC_OFFSET: usize = MH_BODY_CRC_OFFSET + size_of::<u32>();
/// Size of a manifest's fixed header; the body (keys) follows.
pub(crate) const MH_LEN: usize = MH_HEAD_CRC_OFFSET + size_of::<u32>();

/// Fixed bytes of one segment's entry, besides its file name.
const SEG_FIXED_LEN: usize = 8 + 4 + 2 + 8 + 8 + 8 + 8 + 8 + 8;
/// Fixed bytes of one key's entry, besides its key and segments.
const KEY_FIXED_LEN: usize = 4 + 8 + 8 + 4;

const _: () = assert!(MH_GENERATION_OFFSET == 16);
const _: () = assert!(MH_HEAD_CRC_OFFSET == 60);
const _: () = assert!(MH_LEN == 64);
const _: () = assert!(SEG_FIXED_LEN == 62);

/// One segment as a checkpoint saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestSegment {
    pub sequence: u64,
    pub version: u32,
    pub file_name: String,
    pub header_len: u64,
    pub salt: u64,
    pub rotate_at_ms: u64,
    /// Where the segment's durable data ends.
    pub end: u64,
    /// Where its visible records start: `header_len`, or later after
    /// `purge_before`.
    pub start: u64,
    /// Where its last record starts; 0 if not known.
    pub last: u64,
}

/// One key as a checkpoint saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestKey {
    pub key: Vec<u8>,
    pub key_hash: u64,
    /// The sequence number the key's next segment gets.
    pub next_sequence: u64,
    /// Oldest first.
    pub segments: Vec<ManifestSegment>,
}

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub generation: u64,
    /// Written by a clean close: the segments hold everything, no journal
    /// file from `journal_start` on exists.
    pub clean: bool,
    /// The first journal file to replay.
    pub journal_start: u64,
    /// The number of the first frame in journal file `journal_start`.
    pub next_frame: u64,
    pub keys: Vec<ManifestKey>,
}

/// Encode a manifest.
pub(crate) fn encode(m: &Manifest) -> Vec<u8> {
    let mut body = Vec::new();
    for k in &m.keys {
        put_u32(&mut body, k.key.len());
        body.extend_from_slice(&k.key);
        body.extend_from_slice(&k.key_hash.to_le_bytes());
        body.extend_from_slice(&k.next_sequence.to_le_bytes());
        put_u32(&mut body, k.segments.len());
        for s in &k.segments {
            body.extend_from_slice(&s.sequence.to_le_bytes());
            body.extend_from_slice(&s.version.to_le_bytes());
            let name = s.file_name.as_bytes();
            body.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_le_bytes());
            body.extend_from_slice(name);
            for v in [s.header_len, s.salt, s.rotate_at_ms, s.end, s.start, s.last] {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(MH_LEN + body.len());
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
    let flags = if m.clean { MANIFEST_FLAG_CLEAN } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    for v in [
        m.generation,
        m.journal_start,
        m.next_frame,
        m.keys.len() as u64,
        body.len() as u64,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let head_crc = crc32c::crc32c(&out[..MH_HEAD_CRC_OFFSET]);
    out.extend_from_slice(&head_crc.to_le_bytes());
    debug_assert_eq!(out.len(), MH_LEN);
    out.extend_from_slice(&body);
    out
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// What is wrong with a manifest's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManifestDefect {
    /// Short, or its header's checksum fails: a write a crash cut short
    /// (or damage; the caller decides from context).
    Torn(String),
    /// The header verifies but the rest does not decode: corruption.
    Corrupt(String),
    /// A version or flag this build does not know.
    Unsupported(String),
}

/// Decode a whole manifest file.
pub(crate) fn decode(b: &[u8]) -> Result<Manifest, ManifestDefect> {
    use ManifestDefect::{Corrupt, Torn, Unsupported};
    if b.len() < MH_LEN || b[..MANIFEST_MAGIC.len()] != MANIFEST_MAGIC {
        return Err(Torn(format!("{} bytes without a manifest header", b.len())));
    }
    if crc32c::crc32c(&b[..MH_HEAD_CRC_OFFSET]) != get_u32(b, MH_HEAD_CRC_OFFSET) {
        return Err(Torn("manifest header checksum mismatch".into()));
    }
    let version = get_u32(b, MH_VERSION_OFFSET);
    let flags = get_u32(b, MH_FLAGS_OFFSET);
    if version != MANIFEST_VERSION || flags & !MANIFEST_FLAG_CLEAN != 0 {
        return Err(Unsupported(format!(
            "manifest version {version} flags {flags:#x}; this build reads version {MANIFEST_VERSION}"
        )));
    }
    let body_len = get_u64(b, MH_BODY_LEN_OFFSET);
    let body = &b[MH_LEN..];
    if body.len() as u64 != body_len {
        return Err(Torn(format!(
            "manifest body is {} bytes, its header says {body_len}",
            body.len()
        )));
    }
    if crc32c::crc32c(body) != get_u32(b, MH_BODY_CRC_OFFSET) {
        return Err(Torn("manifest body checksum mismatch".into()));
    }
    let key_count = get_u64(b, MH_KEY_COUNT_OFFSET);
    let mut r = Reader { b: body, at: 0 };
    // Each key takes at least its fixed bytes, so the count is checked
    // against the body before anything is allocated for it.
    if key_count > (body.len() / KEY_FIXED_LEN) as u64 {
        return Err(Corrupt(format!("{key_count} keys cannot fit in the body")));
    }
    let mut keys = Vec::with_capacity(usize::try_from(key_count).unwrap_or(0));
    for _ in 0..key_count {
        keys.push(r.key().map_err(Corrupt)?);
    }
    if r.at != body.len() {
        return Err(Corrupt("bytes left over after the last key".into()));
    }
    check_unique_keys(&keys).map_err(Corrupt)?;
    Ok(Manifest {
        generation: get_u64(b, MH_GENERATION_OFFSET),
        clean: flags & MANIFEST_FLAG_CLEAN != 0,
        journal_start: get_u64(b, MH_JOURNAL_START_OFFSET),
        next_frame: get_u64(b, MH_NEXT_FRAME_OFFSET),
        keys,
    })
}

/// No key hash twice: this crate writes one entry per key, and opening
/// builds its key table by hash.
fn check_unique_keys(keys: &[ManifestKey]) -> Result<(), String> {
    let mut hashes: Vec<u64> = keys.iter().map(|k| k.key_hash).collect();
    hashes.sort_unstable();
    match hashes.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(format!("key hash {} is listed twice", w[0])),
        None => Ok(()),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.b.get(self.at..end))
            .ok_or_else(|| format!("entry runs past the manifest at body byte {}", self.at))?;
        self.at += n;
        Ok(s)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(get_u64(self.take(8)?, 0))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(get_u32(self.take(4)?, 0))
    }

    fn key(&mut self) -> Result<ManifestKey, String> {
        let key_len = self.u32()? as usize;
        let key = self.take(key_len)?.to_vec();
        let key_hash = self.u64()?;
        let next_sequence = self.u64()?;
        let count = self.u32()? as usize;
        if count > (self.b.len() - self.at) / SEG_FIXED_LEN {
            return Err(format!("{count} segments cannot fit in the manifest"));
        }
        let mut segments = Vec::with_capacity(count);
        for _ in 0..count {
            let sequence = self.u64()?;
            let version = self.u32()?;
            let name_len = usize::from(get_u16(self.take(2)?, 0));
            let file_name = std::str::from_utf8(self.take(name_len)?)
                .map_err(|_| "segment file name is not UTF-8".to_owned())?
                .to_owned();
            // Opening truncates and removes files by these names: each
            // must be a plain name in the directory, of this very segment.
            if file_name.contains(['/', '\\', '\0'])
                || crate::key::parse_segment_file_name(&file_name) != Some((key_hash, sequence))
            {
                return Err(format!(
                    "segment file name {file_name:?} is not key hash {key_hash}'s segment {sequence}"
                ));
            }
            segments.push(ManifestSegment {
                sequence,
                version,
                file_name,
                header_len: self.u64()?,
                salt: self.u64()?,
                rotate_at_ms: self.u64()?,
                end: self.u64()?,
                start: self.u64()?,
                last: self.u64()?,
            });
            let (s, before) = match segments.as_slice() {
                [.., before, s] => (s, Some(before)),
                [s] => (s, None),
                [] => return Err("no segment decoded".into()),
            };
            if s.start < s.header_len || s.start > s.end || s.last > s.end {
                return Err(format!(
                    "segment {} has start {}, last record {} and end {}",
                    s.sequence, s.start, s.last, s.end
                ));
            }
            // Oldest first, each once: opening relies on the order.
            if before.is_some_and(|b| b.sequence >= s.sequence) {
                return Err(format!(
                    "key hash {key_hash}: segment {} follows segment {}",
                    s.sequence,
                    before.map_or(0, |b| b.sequence)
                ));
            }
        }
        Ok(ManifestKey {
            key,
            key_hash,
            next_sequence,
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 4,
            clean: true,
            journal_start: 9,
            next_frame: 1234,
            keys: vec![ManifestKey {
                key: b"orders".to_vec(),
                key_hash: 77,
                next_sequence: 3,
                segments: vec![ManifestSegment {
                    sequence: 2,
                    version: 3,
                    file_name: "orders-77-0002.log".into(),
                    header_len: 70,
                    salt: 5,
                    rotate_at_ms: 6,
                    end: 700,
                    start: 100,
                    last: 600,
                }],
            }],
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(decode(&encode(&m)), Ok(m));
    }

    #[test]
    fn a_segment_name_outside_the_directory_or_of_another_segment_is_corrupt() {
        for name in [
            "../orders-77-0002.log",
            "/tmp/orders-77-0002.log",
            "a/orders-77-0002.log",
            "orders-78-0002.log",
            "orders-77-0003.log",
            "orders-77-0002.txt",
        ] {
            let mut m = sample();
            m.keys[0].segments[0].file_name = name.into();
            assert!(
                matches!(decode(&encode(&m)), Err(ManifestDefect::Corrupt(_))),
                "{name} was accepted"
            );
        }
    }

    fn segment(sequence: u64) -> ManifestSegment {
        ManifestSegment {
            sequence,
            file_name: format!("orders-77-{sequence:04}.log"),
            ..sample().keys[0].segments[0].clone()
        }
    }

    #[test]
    fn segments_must_be_in_increasing_order() {
        let mut m = sample();
        m.keys[0].segments = vec![segment(2), segment(3), segment(7)];
        assert_eq!(decode(&encode(&m)), Ok(m.clone()));
        for bad in [vec![segment(3), segment(2)], vec![segment(2), segment(2)]] {
            m.keys[0].segments = bad;
            match decode(&encode(&m)) {
                Err(ManifestDefect::Corrupt(why)) => assert!(why.contains("follows"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_key_hash_listed_twice_is_corrupt() {
        let mut m = sample();
        let mut other = m.keys[0].clone();
        other.key = b"other".to_vec();
        other.segments = vec![segment(5)];
        m.keys.push(other);
        match decode(&encode(&m)) {
            Err(ManifestDefect::Corrupt(why)) => assert!(why.contains("listed twice"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cut_and_flip_is_an_error() {
        let b = encode(&sample());
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..b.len() {
            let mut bad = b.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at {at}");
        }
    }
}
