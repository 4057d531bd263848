//! Every byte offset, size, magic value and limit of the on-disk format.
//!
//! FORMAT.md at the repository root is the normative description; this module
//! mirrors it. Offsets are derived from the sizes of the fields before them and
//! pinned with `const` assertions, so a change to one field cannot silently
//! shift another.

pub(crate) mod journal;
pub(crate) mod legacy;
pub(crate) mod manifest;
pub(crate) mod record;
pub(crate) mod segment_header;

/// Magic bytes at the start of every segment file (both versions).
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"NANO-LOG";

/// Format version written by this crate: salted segment headers, records
/// whose fixed fields carry a checksum of their own.
pub(crate) const FORMAT_VERSION_CURRENT: u32 = 3;
/// nano-wal 0.6's layout: read, never written.
pub(crate) const FORMAT_VERSION_V2: u32 = 2;
/// nano-wal 0.5's layout. It stored an always-zero u64 where the version now
/// lives, so a stored version of 0 means version 1.
pub(crate) const FORMAT_VERSION_LEGACY: u32 = 1;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest record header accepted, in bytes (the on-disk field is a u16).
pub const MAX_HEADER_BYTES: usize = u16::MAX as usize;
/// Longest record content accepted, in bytes (1 GiB).
pub const MAX_CONTENT_BYTES: usize = 1 << 30;

// ---- Segment header, versions 2 and 3 ------------------------------------------
// Version 3 inserts the salt before the flags; the fields before it are
// version 2's.

pub(crate) const SH_MAGIC_OFFSET: usize = 0;
pub(crate) const SH_VERSION_OFFSET: usize = SH_MAGIC_OFFSET + SEGMENT_MAGIC.len();
pub(crate) const SH_KEY_LEN_OFFSET: usize = SH_VERSION_OFFSET + size_of::<u32>();
pub(crate) const SH_KEY_HASH_OFFSET: usize = SH_KEY_LEN_OFFSET + size_of::<u32>();
pub(crate) const SH_SEQUENCE_OFFSET: usize = SH_KEY_HASH_OFFSET + size_of::<u64>();
pub(crate) const SH_CREATED_OFFSET: usize = SH_SEQUENCE_OFFSET + size_of::<u64>();
pub(crate) const SH_ROTATE_AT_OFFSET: usize = SH_CREATED_OFFSET + size_of::<u64>();

/// Version 3: the segment's salt, folded into every record's checksum.
pub(crate) const SH3_SALT_OFFSET: usize = SH_ROTATE_AT_OFFSET + size_of::<u64>();
pub(crate) const SH3_FLAGS_OFFSET: usize = SH3_SALT_OFFSET + size_of::<u64>();
pub(crate) const SH3_CRC_OFFSET: usize = SH3_FLAGS_OFFSET + size_of::<u32>();
/// Size of the fixed part of a version-3 segment header; the key follows it.
pub(crate) const SH3_FIXED_LEN: usize = SH3_CRC_OFFSET + size_of::<u32>();

/// Version 2 (nano-wal 0.6): no salt.
pub(crate) const SH2_FLAGS_OFFSET: usize = SH_ROTATE_AT_OFFSET + size_of::<u64>();
pub(crate) const SH2_CRC_OFFSET: usize = SH2_FLAGS_OFFSET + size_of::<u32>();
/// Size of the fixed part of a version-2 segment header; the key follows it.
pub(crate) const SH2_FIXED_LEN: usize = SH2_CRC_OFFSET + size_of::<u32>();

const _: () = assert!(SH_VERSION_OFFSET == 8);
const _: () = assert!(SH3_SALT_OFFSET == 48);
const _: () = assert!(SH3_CRC_OFFSET == 60);
const _: () = assert!(SH3_FIXED_LEN == 64);
const _: () = assert!(SH2_CRC_OFFSET == 52);
const _: () = assert!(SH2_FIXED_LEN == 56);

// ---- Version-3 record -----------------------------------------------------------

pub(crate) const REC_HEAD_CRC_OFFSET: usize = 0;
pub(crate) const REC_CONTENT_LEN_OFFSET: usize = REC_HEAD_CRC_OFFSET + size_of::<u32>();
pub(crate) const REC_HEADER_LEN_OFFSET: usize = REC_CONTENT_LEN_OFFSET + size_of::<u32>();
pub(crate) const REC_FLAGS_OFFSET: usize = REC_HEADER_LEN_OFFSET + size_of::<u16>();
pub(crate) const REC_TIMESTAMP_OFFSET: usize = REC_FLAGS_OFFSET + size_of::<u16>();
/// Version 3: CRC32C of the header and content bytes.
pub(crate) const REC_BODY_CRC_OFFSET: usize = REC_TIMESTAMP_OFFSET + size_of::<u64>();
/// Size of the fixed part of a version-3 record; header and content follow.
pub(crate) const REC_FIXED_LEN: usize = REC_BODY_CRC_OFFSET + size_of::<u32>();
/// Bytes appended (never stored) to the head checksum's input to bind a
/// record to its place: the segment's salt, key hash, sequence and the
/// record's absolute file position.
pub(crate) const REC_BINDING_LEN: usize = 4 * size_of::<u64>();

/// Record flag: the record carries a header (possibly empty).
pub(crate) const REC_FLAG_HAS_HEADER: u16 = 1;
/// Version-3 record flag, set in every record: a record's fixed bytes are
/// therefore never all zero, so preallocated zeros never read as a record
/// and no record can be mistaken for them.
pub(crate) const REC_FLAG_RECORD: u16 = 2;
/// Every flag bit version 3 defines; any other set bit is corruption.
pub(crate) const REC_KNOWN_FLAGS: u16 = REC_FLAG_HAS_HEADER | REC_FLAG_RECORD;

const _: () = assert!(REC_TIMESTAMP_OFFSET == 12);
const _: () = assert!(REC_BODY_CRC_OFFSET == 20);
const _: () = assert!(REC_FIXED_LEN == 24);
const _: () = assert!(MAX_CONTENT_BYTES <= u32::MAX as usize);
const _: () = assert!(REC_FLAG_RECORD != 0 && REC_FLAG_RECORD & REC_FLAG_HAS_HEADER == 0);

// ---- Version-2 record (nano-wal 0.6, read-only) ---------------------------------
// The fields before the timestamp's end are version 3's; the CRC at offset 0
// covers the whole record and a 24-byte binding without the salt.

/// Size of the fixed part of a version-2 record.
pub(crate) const REC2_FIXED_LEN: usize = REC_TIMESTAMP_OFFSET + size_of::<u64>();
/// Binding of a version-2 record: key hash, sequence, position.
pub(crate) const REC2_BINDING_LEN: usize = 3 * size_of::<u64>();
/// Every flag bit version 2 defines.
pub(crate) const REC2_KNOWN_FLAGS: u16 = REC_FLAG_HAS_HEADER;

const _: () = assert!(REC2_FIXED_LEN == 20);

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
/// The version field of a v2/v3 header sits exactly over the v1 placeholder.
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
