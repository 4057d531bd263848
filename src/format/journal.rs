//! The shared journal's bytes (FORMAT.md §11): journal file headers, frames
//! and the operations inside a frame. Every offset is derived from the sizes
//! of the fields before it and pinned below.

use super::{get_u16, get_u32, get_u64};

/// Magic bytes at the start of every journal file.
pub(crate) const JOURNAL_MAGIC: [u8; 8] = *b"NANO-JNL";
/// Journal format version written and read by this crate.
pub(crate) const JOURNAL_VERSION: u32 = 1;

pub(crate) const JH_MAGIC_OFFSET: usize = 0;
pub(crate) const JH_VERSION_OFFSET: usize = JH_MAGIC_OFFSET + JOURNAL_MAGIC.len();
pub(crate) const JH_FLAGS_OFFSET: usize = JH_VERSION_OFFSET + size_of::<u32>();
pub(crate) const JH_SEQUENCE_OFFSET: usize = JH_FLAGS_OFFSET + size_of::<u32>();
pub(crate) const JH_SALT_OFFSET: usize = JH_SEQUENCE_OFFSET + size_of::<u64>();
pub(crate) const JH_FIRST_FRAME_OFFSET: usize = JH_SALT_OFFSET + size_of::<u64>();
pub(crate) const JH_CRC_OFFSET: usize = JH_FIRST_FRAME_OFFSET + size_of::<u64>();
/// Size of a journal file's header; the first frame follows it.
pub(crate) const JH_LEN: usize = JH_CRC_OFFSET + 2 * size_of::<u32>();

pub(crate) const FH_HEAD_CRC_OFFSET: usize = 0;
pub(crate) const FH_BODY_CRC_OFFSET: usize = FH_HEAD_CRC_OFFSET + size_of::<u32>();
pub(crate) const FH_PAYLOAD_LEN_OFFSET: usize = FH_BODY_CRC_OFFSET + size_of::<u32>();
pub(crate) const FH_OP_COUNT_OFFSET: usize = FH_PAYLOAD_LEN_OFFSET + size_of::<u32>();
pub(crate) const FH_NUMBER_OFFSET: usize = FH_OP_COUNT_OFFSET + size_of::<u32>();
/// Size of a frame's fixed header; the payload (its operations) follows.
pub(crate) const FH_LEN: usize = FH_NUMBER_OFFSET + size_of::<u64>();
/// Bytes folded into a frame's head checksum after its fixed fields (never
/// stored): the journal file's salt, its sequence and the frame's position.
pub(crate) const FH_BINDING_LEN: usize = 3 * size_of::<u64>();

/// Largest frame payload. A batch must fit in one frame to be atomic.
pub(crate) const MAX_FRAME_PAYLOAD_BYTES: usize = u32::MAX as usize - FH_LEN;

/// Operation tag: a segment was created (its header follows).
pub(crate) const OP_CREATE: u8 = 1;
/// Operation tag: whole records written at a position of a segment.
pub(crate) const OP_RECORDS: u8 = 2;
/// Operation tag: a segment was removed (retention, truncation, purging).
pub(crate) const OP_REMOVE: u8 = 3;
/// Operation tag: a segment was cut at a record boundary (`truncate_from`).
pub(crate) const OP_CUT: u8 = 4;
/// Operation tag: a segment's records before a position are hidden
/// (`purge_before`).
pub(crate) const OP_HIDE: u8 = 5;

/// Tag, key hash and sequence: the start of every operation.
pub(crate) const OP_ID_LEN: usize = 1 + 2 * size_of::<u64>();
/// Fixed bytes of a records operation before the records: id, position, length.
pub(crate) const OP_RECORDS_FIXED_LEN: usize = OP_ID_LEN + size_of::<u64>() + size_of::<u32>();
/// Bytes of a cut or hide operation: id, position.
pub(crate) const OP_POSITION_LEN: usize = OP_ID_LEN + size_of::<u64>();

const _: () = assert!(JH_SEQUENCE_OFFSET == 16);
const _: () = assert!(JH_CRC_OFFSET == 40);
const _: () = assert!(JH_LEN == 48);
const _: () = assert!(FH_NUMBER_OFFSET == 16);
const _: () = assert!(FH_LEN == 24);
const _: () = assert!(OP_RECORDS_FIXED_LEN == 29);
const _: () = assert!(OP_POSITION_LEN == 25);

/// A journal file's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalHeader {
    pub sequence: u64,
    pub salt: u64,
    /// Number of the first frame in the file (frames are numbered without
    /// gaps across files).
    pub first_frame: u64,
}

/// Encode a journal file header.
pub(crate) fn encode_header(h: JournalHeader) -> [u8; JH_LEN] {
    let mut b = [0u8; JH_LEN];
    b[..JOURNAL_MAGIC.len()].copy_from_slice(&JOURNAL_MAGIC);
    b[JH_VERSION_OFFSET..JH_FLAGS_OFFSET].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    b[JH_SEQUENCE_OFFSET..JH_SALT_OFFSET].copy_from_slice(&h.sequence.to_le_bytes());
    b[JH_SALT_OFFSET..JH_FIRST_FRAME_OFFSET].copy_from_slice(&h.salt.to_le_bytes());
    b[JH_FIRST_FRAME_OFFSET..JH_CRC_OFFSET].copy_from_slice(&h.first_frame.to_le_bytes());
    let crc = crc32c::crc32c(&b[..JH_CRC_OFFSET]);
    b[JH_CRC_OFFSET..JH_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decode a journal file header; `Err` says what is wrong.
pub(crate) fn decode_header(b: &[u8]) -> Result<JournalHeader, String> {
    if b.len() < JH_LEN {
        return Err(format!("{} bytes, shorter than a journal header", b.len()));
    }
    if b[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
        return Err("no journal magic".into());
    }
    if crc32c::crc32c(&b[..JH_CRC_OFFSET]) != get_u32(b, JH_CRC_OFFSET) {
        return Err("journal header checksum mismatch".into());
    }
    let version = get_u32(b, JH_VERSION_OFFSET);
    if version != JOURNAL_VERSION {
        return Err(format!(
            "journal version {version}; this build reads {JOURNAL_VERSION}"
        ));
    }
    if get_u32(b, JH_FLAGS_OFFSET) != 0 || get_u32(b, JH_CRC_OFFSET + 4) != 0 {
        return Err("unknown journal header flags".into());
    }
    Ok(JournalHeader {
        sequence: get_u64(b, JH_SEQUENCE_OFFSET),
        salt: get_u64(b, JH_SALT_OFFSET),
        first_frame: get_u64(b, JH_FIRST_FRAME_OFFSET),
    })
}

/// Where a frame sits: what its head checksum is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameBinding {
    pub salt: u64,
    pub file_sequence: u64,
    pub position: u64,
}

impl FrameBinding {
    fn bytes(self) -> [u8; FH_BINDING_LEN] {
        let mut b = [0u8; FH_BINDING_LEN];
        b[..8].copy_from_slice(&self.salt.to_le_bytes());
        b[8..16].copy_from_slice(&self.file_sequence.to_le_bytes());
        b[16..].copy_from_slice(&self.position.to_le_bytes());
        b
    }
}

/// Builds one frame's payload. The fixed header is reserved at the front
/// and filled in by [`FrameBuf::seal`] once the frame's place is known.
#[derive(Debug, Default)]
pub(crate) struct FrameBuf {
    bytes: Vec<u8>,
    ops: u32,
}

impl FrameBuf {
    /// Start an empty frame, reusing `bytes`' allocation.
    pub fn new_in(mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        bytes.resize(FH_LEN, 0);
        Self { bytes, ops: 0 }
    }

    /// A frame around arbitrary payload bytes that claims `op_count`
    /// operations (the fuzz targets' way to reach the operations' decoder
    /// past the checksums).
    pub fn with_raw_payload(payload: &[u8], op_count: u32) -> Self {
        let mut frame = Self::new_in(Vec::with_capacity(FH_LEN + payload.len()));
        frame.bytes.extend_from_slice(payload);
        frame.ops = op_count;
        frame
    }

    fn id(&mut self, tag: u8, key_hash: u64, sequence: u64) {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(&key_hash.to_le_bytes());
        self.bytes.extend_from_slice(&sequence.to_le_bytes());
        self.ops += 1;
    }

    /// Add a segment creation: its file name and its whole header.
    pub fn push_create(&mut self, key_hash: u64, sequence: u64, file_name: &str, header: &[u8]) {
        self.id(OP_CREATE, key_hash, sequence);
        let name = file_name.as_bytes();
        self.bytes
            .extend_from_slice(&(u16::try_from(name.len()).unwrap_or(u16::MAX)).to_le_bytes());
        self.bytes.extend_from_slice(name);
        self.bytes
            .extend_from_slice(&(u32::try_from(header.len()).unwrap_or(u32::MAX)).to_le_bytes());
        self.bytes.extend_from_slice(header);
    }

    /// Start a records operation of `len` bytes at `position`; returns
    /// where in the frame the records go. The caller then appends exactly
    /// `len` bytes through [`FrameBuf::vec_mut`].
    pub fn push_records(
        &mut self,
        key_hash: u64,
        sequence: u64,
        position: u64,
        len: usize,
    ) -> usize {
        self.id(OP_RECORDS, key_hash, sequence);
        self.bytes.extend_from_slice(&position.to_le_bytes());
        self.bytes
            .extend_from_slice(&(u32::try_from(len).unwrap_or(u32::MAX)).to_le_bytes());
        self.bytes.len()
    }

    /// The frame's buffer, to append a records operation's bytes to.
    pub fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Add a segment removal.
    pub fn push_remove(&mut self, key_hash: u64, sequence: u64) {
        self.id(OP_REMOVE, key_hash, sequence);
    }

    /// Add a cut: the segment ends at absolute position `position`.
    pub fn push_cut(&mut self, key_hash: u64, sequence: u64, position: u64) {
        self.id(OP_CUT, key_hash, sequence);
        self.bytes.extend_from_slice(&position.to_le_bytes());
    }

    /// Add a hide: the segment's records before absolute position
    /// `position` are never read again.
    pub fn push_hide(&mut self, key_hash: u64, sequence: u64, position: u64) {
        self.id(OP_HIDE, key_hash, sequence);
        self.bytes.extend_from_slice(&position.to_le_bytes());
    }

    /// The frame's bytes (header reserved, not sealed yet).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Fill in the body checksum and lengths (outside the journal's lock).
    pub fn seal_body(&mut self) {
        let payload_len = self.bytes.len() - FH_LEN;
        let crc = crc32c::crc32c(&self.bytes[FH_LEN..]);
        let b = &mut self.bytes;
        b[FH_BODY_CRC_OFFSET..FH_PAYLOAD_LEN_OFFSET].copy_from_slice(&crc.to_le_bytes());
        b[FH_PAYLOAD_LEN_OFFSET..FH_OP_COUNT_OFFSET]
            .copy_from_slice(&(u32::try_from(payload_len).unwrap_or(u32::MAX)).to_le_bytes());
        b[FH_OP_COUNT_OFFSET..FH_NUMBER_OFFSET].copy_from_slice(&self.ops.to_le_bytes());
    }

    /// Fill in the frame number and head checksum, once the frame's place
    /// in the journal is known (under the journal's lock).
    pub fn seal_head(&mut self, number: u64, binding: FrameBinding) {
        let b = &mut self.bytes;
        b[FH_NUMBER_OFFSET..FH_LEN].copy_from_slice(&number.to_le_bytes());
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&b[FH_BODY_CRC_OFFSET..FH_LEN]),
            &binding.bytes(),
        );
        b[..FH_BODY_CRC_OFFSET].copy_from_slice(&crc.to_le_bytes());
    }

    /// Give the allocation back for reuse.
    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }
}

/// A frame's fixed header, decoded and checked against its binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    pub body_crc: u32,
    pub payload_len: u32,
    pub op_count: u32,
    pub number: u64,
}

impl FrameHead {
    /// Bytes of the whole frame.
    pub fn total_len(&self) -> u64 {
        FH_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Decode and check a frame's fixed header at `binding.position`. `None`
/// if these bytes are not a frame written there (zeros, garbage, a stale
/// frame of an earlier file, or bytes inside a frame).
pub(crate) fn decode_head(fixed: &[u8], binding: FrameBinding) -> Option<FrameHead> {
    if fixed.len() < FH_LEN {
        return None;
    }
    let head = FrameHead {
        body_crc: get_u32(fixed, FH_BODY_CRC_OFFSET),
        payload_len: get_u32(fixed, FH_PAYLOAD_LEN_OFFSET),
        op_count: get_u32(fixed, FH_OP_COUNT_OFFSET),
        number: get_u64(fixed, FH_NUMBER_OFFSET),
    };
    if head.payload_len == 0 || head.op_count == 0 {
        return None;
    }
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&fixed[FH_BODY_CRC_OFFSET..FH_LEN]),
        &binding.bytes(),
    );
    (crc == get_u32(fixed, FH_HEAD_CRC_OFFSET)).then_some(head)
}

/// One operation of a frame, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    Create {
        key_hash: u64,
        sequence: u64,
        file_name: &'a str,
        header: &'a [u8],
    },
    Records {
        key_hash: u64,
        sequence: u64,
        position: u64,
        records: &'a [u8],
    },
    Remove {
        key_hash: u64,
        sequence: u64,
    },
    Cut {
        key_hash: u64,
        sequence: u64,
        position: u64,
    },
    Hide {
        key_hash: u64,
        sequence: u64,
        position: u64,
    },
}

/// Decode a frame's payload into its operations (checked against `head`:
/// the body checksum, the operation count, and that nothing is left over).
pub(crate) fn decode_ops<'a>(payload: &'a [u8], head: &FrameHead) -> Result<Vec<Op<'a>>, String> {
    if crc32c::crc32c(payload) != head.body_crc {
        return Err("frame body checksum mismatch".into());
    }
    let mut ops = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let (op, next) = decode_op(payload, at)?;
        ops.push(op);
        at = next;
    }
    if ops.len() as u64 != u64::from(head.op_count) {
        return Err(format!(
            "frame holds {} operations, its header says {}",
            ops.len(),
            head.op_count
        ));
    }
    Ok(ops)
}

fn take(payload: &[u8], at: usize, n: usize) -> Result<&[u8], String> {
    at.checked_add(n)
        .and_then(|end| payload.get(at..end))
        .ok_or_else(|| format!("operation runs past the frame at byte {at}"))
}

fn decode_op(p: &[u8], at: usize) -> Result<(Op<'_>, usize), String> {
    let id = take(p, at, OP_ID_LEN)?;
    let (tag, key_hash, sequence) = (id[0], get_u64(id, 1), get_u64(id, 9));
    let mut at = at + OP_ID_LEN;
    match tag {
        OP_CREATE => {
            let name_len = usize::from(get_u16(take(p, at, 2)?, 0));
            at += 2;
            let name = std::str::from_utf8(take(p, at, name_len)?)
                .map_err(|_| "segment file name is not UTF-8".to_owned())?;
            at += name_len;
            let header_len = get_u32(take(p, at, 4)?, 0) as usize;
            at += 4;
            let header = take(p, at, header_len)?;
            at += header_len;
            let op = Op::Create {
                key_hash,
                sequence,
                file_name: name,
                header,
            };
            Ok((op, at))
        }
        OP_RECORDS => {
            let fixed = take(p, at, 12)?;
            let (position, len) = (get_u64(fixed, 0), get_u32(fixed, 8) as usize);
            at += 12;
            let records = take(p, at, len)?;
            if records.is_empty() {
                return Err("empty records operation".into());
            }
            let op = Op::Records {
                key_hash,
                sequence,
                position,
                records,
            };
            Ok((op, at + len))
        }
        OP_REMOVE => Ok((Op::Remove { key_hash, sequence }, at)),
        OP_CUT | OP_HIDE => {
            let position = get_u64(take(p, at, 8)?, 0);
            let op = if tag == OP_CUT {
                Op::Cut {
                    key_hash,
                    sequence,
                    position,
                }
            } else {
                Op::Hide {
                    key_hash,
                    sequence,
                    position,
                }
            };
            Ok((op, at + 8))
        }
        other => Err(format!("unknown operation tag {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(position: u64) -> FrameBinding {
        FrameBinding {
            salt: 7,
            file_sequence: 3,
            position,
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = JournalHeader {
            sequence: 9,
            salt: 0xabcd,
            first_frame: 42,
        };
        let mut b = encode_header(h);
        assert_eq!(decode_header(&b), Ok(h));
        b[20] ^= 1;
        assert!(decode_header(&b).is_err());
        assert!(decode_header(&[0u8; JH_LEN]).is_err());
    }

    #[test]
    fn frame_round_trips_every_operation() {
        let mut f = FrameBuf::new_in(Vec::new());
        f.push_create(1, 2, "k-1-0002.log", b"HEADER");
        f.push_records(1, 2, 70, 5);
        f.vec_mut().extend_from_slice(b"abcde");
        f.push_remove(1, 1);
        f.push_cut(1, 2, 80);
        f.push_hide(1, 2, 75);
        f.seal_body();
        f.seal_head(5, bind(48));
        let b = f.into_vec();
        let head = decode_head(&b, bind(48)).expect("head verifies");
        assert_eq!(head.number, 5);
        assert_eq!(head.total_len(), b.len() as u64);
        let ops = decode_ops(&b[FH_LEN..], &head).expect("ops decode");
        assert_eq!(
            ops,
            vec![
                Op::Create {
                    key_hash: 1,
                    sequence: 2,
                    file_name: "k-1-0002.log",
                    header: b"HEADER"
                },
                Op::Records {
                    key_hash: 1,
                    sequence: 2,
                    position: 70,
                    records: b"abcde"
                },
                Op::Remove {
                    key_hash: 1,
                    sequence: 1
                },
                Op::Cut {
                    key_hash: 1,
                    sequence: 2,
                    position: 80
                },
                Op::Hide {
                    key_hash: 1,
                    sequence: 2,
                    position: 75
                },
            ]
        );
    }

    #[test]
    fn a_frame_verifies_only_where_it_was_written() {
        let mut f = FrameBuf::new_in(Vec::new());
        f.push_remove(1, 1);
        f.seal_body();
        f.seal_head(0, bind(48));
        let b = f.into_vec();
        assert!(decode_head(&b, bind(48)).is_some());
        assert!(decode_head(&b, bind(49)).is_none());
        let other_salt = FrameBinding {
            salt: 8,
            ..bind(48)
        };
        assert!(decode_head(&b, other_salt).is_none());
        assert!(decode_head(&[0u8; FH_LEN], bind(48)).is_none());
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let mut f = FrameBuf::new_in(Vec::new());
        f.push_records(1, 2, 70, 3);
        f.vec_mut().extend_from_slice(b"xyz");
        f.seal_body();
        f.seal_head(0, bind(48));
        let b = f.into_vec();
        let head = decode_head(&b, bind(48)).expect("head verifies");
        for cut in 0..b.len() - FH_LEN {
            let mut h = head;
            h.body_crc = crc32c::crc32c(&b[FH_LEN..FH_LEN + cut]);
            assert!(decode_ops(&b[FH_LEN..FH_LEN + cut], &h).is_err());
        }
        let mut bad = b.clone();
        bad[FH_LEN + 5] ^= 1;
        assert!(decode_ops(&bad[FH_LEN..], &head).is_err());
    }
}
