//! Could this WAL have written a segment-named file? Recovery deletes a
//! segment whose creation a crash cut short, and `inspect::Verifier`
//! reports one as a torn tail; both first ask [`foreign`] whether the bytes
//! can be the start of a segment at all (FORMAT.md §1, §8). A file that
//! cannot is never deleted: opening fails with `WalError::ForeignFile`.

use std::io;

use crate::cursor::Cursor;
use crate::format::SEGMENT_MAGIC;
use crate::storage::StorageFile;

/// The span a crash may garble at the end of unsynced data: one sector
/// (FORMAT.md §10). A segment whose creation a crash cut short within its
/// first sector can therefore hold anything at all.
pub(crate) const GARBLED_SECTOR_BYTES: u64 = 512;

/// Why a segment-named file with an unusable header is not one this WAL
/// wrote, or `None` if it could be.
///
/// It could be if its bytes are something a crash can leave of a segment
/// (FORMAT.md §10): it is empty; it starts with the magic `NANO-LOG`; its
/// first bytes are a prefix of the magic followed by nothing but zeros
/// (space a file grew into reads as zeros); or it is no longer than one
/// sector, which a crash may have garbled whole. It is also ours if a
/// record bound to this file's name and position verifies anywhere in it:
/// a segment whose header was damaged, which is corruption.
///
/// `len` is the file's length, `head` its first bytes as opening read them
/// (up to the longest header), `ids` the key hash and sequence of its name.
pub(crate) fn foreign(
    file: &dyn StorageFile,
    ids: (u64, u64),
    head: &[u8],
    len: u64,
) -> io::Result<Option<String>> {
    let n = head.len().min(SEGMENT_MAGIC.len());
    let magic_prefix = head[..n]
        .iter()
        .zip(SEGMENT_MAGIC)
        .take_while(|(a, b)| *a == b)
        .count();
    if magic_prefix == SEGMENT_MAGIC.len() || len <= GARBLED_SECTOR_BYTES {
        return Ok(None);
    }
    let mut cursor = Cursor::default();
    if cursor.zero_through(file, magic_prefix as u64, len)? {
        return Ok(None);
    }
    if cursor
        .valid_record_after_damaged_header(file, ids, head, len)?
        .is_some()
    {
        return Ok(None);
    }
    Ok(Some(format!(
        "a segment-named file of {len} bytes that neither starts with the segment \
         magic NANO-LOG nor holds a record of this WAL, so this WAL did not write it"
    )))
}
