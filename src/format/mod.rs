//! Every byte offset, size, magic value and limit of the on-disk format.
//!
//! FORMAT.md at the repository root is the normative description; this module
//! mirrors it. Offsets are derived from the sizes of the fields before them and
//! pinned with `const` assertions, so a change to one field cannot silently
//! shift another.

pub(crate) mod legacy;
pub(crate) mod record;
pub(crate) mod segment_header;

/// Magic bytes at the start of every segment file (both versions).
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"NANO-LOG";

/// Format version written by this crate.
pub(crate) const FORMAT_VERSION_CURRENT: u32 = 2;
/// nano-wal 0.5's layout. It stored an always-zero u64 where the version now
/// lives, so a stored version of 0 means version 1.
pub(crate) const FORMAT_VERSION_LEGACY: u32 = 1;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest record header accepted, in bytes (the on-disk field is a u16).
pub const MAX_HEADER_BYTES: usize = u16::MAX as usize;
/// Longest record content accepted, in bytes (1 GiB).
pub const MAX_CONTENT_BYTES: usize = 1 << 30;

// ---- Version-2 segment header -------------------------------------------------

pub(crate) const SH_MAGIC_OFFSET: usize = 0;
pub(crate) const SH_VERSION_OFFSET: usize = SH_MAGIC_OFFSET + SEGMENT_MAGIC.len();
pub(crate) const SH_KEY_LEN_OFFSET: usize = SH_VERSION_OFFSET + size_of::<u32>();
pub(crate) const SH_KEY_HASH_OFFSET: usize = SH_KEY_LEN_OFFSET + size_of::<u32>();
pub(crate) const SH_SEQUENCE_OFFSET: usize = SH_KEY_HASH_OFFSET + size_of::<u64>();
pub(crate) const SH_CREATED_OFFSET: usize = SH_SEQUENCE_OFFSET + size_of::<u64>();
pub(crate) const SH_ROTATE_AT_OFFSET: usize = SH_CREATED_OFFSET + size_of::<u64>();
pub(crate) const SH_FLAGS_OFFSET: usize = SH_ROTATE_AT_OFFSET + size_of::<u64>();
pub(crate) const SH_CRC_OFFSET: usize = SH_FLAGS_OFFSET + size_of::<u32>();
/// Size of the fixed part of a version-2 segment header; the key follows it.
pub(crate) const SH_FIXED_LEN: usize = SH_CRC_OFFSET + size_of::<u32>();

const _: () = assert!(SH_VERSION_OFFSET == 8);
const _: () = assert!(SH_CRC_OFFSET == 52);
const _: () = assert!(SH_FIXED_LEN == 56);

// ---- Version-2 record ---------------------------------------------------------

pub(crate) const REC_CRC_OFFSET: usize = 0;
pub(crate) const REC_CONTENT_LEN_OFFSET: usize = REC_CRC_OFFSET + size_of::<u32>();
pub(crate) const REC_HEADER_LEN_OFFSET: usize = REC_CONTENT_LEN_OFFSET + size_of::<u32>();
pub(crate) const REC_FLAGS_OFFSET: usize = REC_HEADER_LEN_OFFSET + size_of::<u16>();
pub(crate) const REC_TIMESTAMP_OFFSET: usize = REC_FLAGS_OFFSET + size_of::<u16>();
/// Size of the fixed part of a version-2 record; header and content follow.
pub(crate) const REC_FIXED_LEN: usize = REC_TIMESTAMP_OFFSET + size_of::<u64>();
/// Bytes appended (never stored) to the CRC input to bind a record to its
/// place: key hash, segment sequence and absolute file position.
pub(crate) const REC_BINDING_LEN: usize = 3 * size_of::<u64>();

/// Record flag: the record carries a header (possibly empty).
pub(crate) const REC_FLAG_HAS_HEADER: u16 = 1;
/// Every flag bit this version defines; any other set bit is corruption.
pub(crate) const REC_KNOWN_FLAGS: u16 = REC_FLAG_HAS_HEADER;

const _: () = assert!(REC_TIMESTAMP_OFFSET == 12);
const _: () = assert!(REC_FIXED_LEN == 20);
const _: () = assert!(MAX_CONTENT_BYTES <= u32::MAX as usize);

// ---- Version-1 (nano-wal 0.5) layout --------------------------------------------

/// Magic bytes before every version-1 record.
pub(crate) const V1_RECORD_MAGIC: [u8; 6] = *b"NANORC";
pub(crate) const V1_SH_PLACEHOLDER_OFFSET: usize = SEGMENT_MAGIC.len();
pub(crate) const V1_SH_EXPIRATION_OFFSET: usize = V1_SH_PLACEHOLDER_OFFSET + size_of::<u64>();
pub(crate) const V1_SH_KEY_LEN_OFFSET: usize = V1_SH_EXPIRATION_OFFSET + size_of::<u64>();
/// Size of the fixed part of a version-1 segment header; the key follows it.
pub(crate) const V1_SH_FIXED_LEN: usize = V1_SH_KEY_LEN_OFFSET + size_of::<u64>();
pub(crate) const V1_REC_HEADER_LEN_OFFSET: usize = V1_RECORD_MAGIC.len();
pub(crate) const V1_REC_HEADER_OFFSET: usize = V1_REC_HEADER_LEN_OFFSET + size_of::<u16>();

const _: () = assert!(V1_SH_FIXED_LEN == 32);
const _: () = assert!(V1_REC_HEADER_OFFSET == 8);
/// The version field of a v2 header sits exactly over the v1 placeholder.
const _: () = assert!(V1_SH_PLACEHOLDER_OFFSET == SH_VERSION_OFFSET);

/// Read a little-endian u16 at `at`; the caller has checked the bounds.
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at..at + 2]);
    u16::from_le_bytes(b)
}

/// Read a little-endian u32 at `at`; the caller has checked the bounds.
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Read a little-endian u64 at `at`; the caller has checked the bounds.
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}
