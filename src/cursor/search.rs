//! Looking for records after damage: what recovery and `verify` need to
//! tell a torn tail from corruption, in time linear in the bytes they read
//! (FORMAT.md §8).

use std::io;

use super::{Bad, Cursor, SegmentMeta};
use crate::format::record::{self, RecordVersion};
use crate::format::{FORMAT_VERSION_V2, REC_FLAG_RECORD, REC_FLAGS_OFFSET, get_u16};
use crate::storage::{StorageFile, read_exact_at};

impl Cursor {
    /// The facts the recovery rules (`rules::recovery::judge_damage`) need
    /// about the bytes at `pos`, where a segment's valid records stop before
    /// `end`: whether only zeros follow and, if not and `look_for_records`,
    /// whether a verifiable record follows.
    pub fn damage_facts(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        (pos, end): (u64, u64),
        defect: Bad,
        newest: bool,
        look_for_records: bool,
    ) -> io::Result<crate::rules::recovery::DamageFacts> {
        let zeros_to_end = meta.record_version().is_some() && self.zero_through(file, pos, end)?;
        let valid_record_at = if zeros_to_end || !look_for_records {
            None
        } else {
            self.any_valid_after(file, meta, pos + 1, end)?
        };
        Ok(crate::rules::recovery::DamageFacts {
            newest,
            version: meta.version,
            defect: defect.to_string(),
            zeros_to_end,
            valid_record_at,
        })
    }

    /// Is there a verifiable record anywhere in `[from, end)`?
    ///
    /// Used to tell a torn tail (nothing valid after the damage) from
    /// corruption in the middle of the log (valid records follow it).
    ///
    /// Version 3 takes time linear in `end - from`: each position is judged
    /// from its 24 fixed bytes (flags and lengths first, then the salted
    /// head checksum), and only a position whose head verifies is read in
    /// full. Bytes not written as a record head at that place pass the head
    /// check with odds 2^-32 (FORMAT.md §8).
    pub fn any_valid_after(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        from: u64,
        end: u64,
    ) -> io::Result<Option<u64>> {
        match meta.record_version() {
            // Version 1 has no checksum: nothing after damage can be trusted.
            None => Ok(None),
            Some(RecordVersion::V2) => self.any_valid_after_v2(file, meta, from, end),
            Some(RecordVersion::V3) => self.any_valid_after_v3(file, meta, from, end),
        }
    }

    /// A segment's header is damaged: is there a verifiable record after
    /// it? `head` holds the file's first bytes (up to the longest header).
    ///
    /// A version-2 header (as its version field says) is searched as before,
    /// bound to the file name's key hash and sequence. Otherwise the file is
    /// taken for version 3, the only version written now, and searched with
    /// the salt the damaged header stores; since the damage may have hit
    /// the salt itself, the place where the first record would start (after
    /// the stored key length) is also checked without the salt, by the
    /// record's own body checksum.
    pub fn valid_record_after_damaged_header(
        &mut self,
        file: &dyn StorageFile,
        (key_hash, sequence): (u64, u64),
        head: &[u8],
        end: u64,
    ) -> io::Result<Option<u64>> {
        let version_field = head
            .get(crate::format::SH_VERSION_OFFSET..crate::format::SH_KEY_LEN_OFFSET)
            .map(|v| crate::format::get_u32(v, 0));
        let mut meta = SegmentMeta {
            key_hash,
            sequence,
            version: FORMAT_VERSION_V2,
            salt: 0,
        };
        if version_field == Some(FORMAT_VERSION_V2) {
            return self.any_valid_after(file, meta, crate::format::SH2_FIXED_LEN as u64, end);
        }
        meta.version = crate::format::FORMAT_VERSION_CURRENT;
        if let Some(first) = first_record_position(head)
            && self.body_verifies_at(file, first, end)?
        {
            return Ok(Some(first));
        }
        let Some(salt) = crate::format::segment_header::stored_salt(head) else {
            // Too short to hold a salt: the header never reached the disk
            // whole, so no record after it can have been durable.
            return Ok(None);
        };
        meta.salt = salt;
        self.any_valid_after(file, meta, crate::format::SH3_FIXED_LEN as u64, end)
    }

    /// Whether a version-3 record whose body checksum matches starts at
    /// `pos` (its head checksum, which needs the salt, is not checked).
    fn body_verifies_at(&mut self, file: &dyn StorageFile, pos: u64, end: u64) -> io::Result<bool> {
        let fixed_len = RecordVersion::V3.fixed_len();
        let fixed = {
            let bytes = self.window(file, pos, fixed_len, end)?;
            if bytes.len() < fixed_len {
                return Ok(false);
            }
            match record::parse_fixed(RecordVersion::V3, bytes) {
                Ok(f) if f.total_len() <= end - pos => f,
                _ => return Ok(false),
            }
        };
        let mut body =
            vec![0u8; usize::try_from(fixed.total_len()).unwrap_or(usize::MAX) - fixed_len];
        read_exact_at(file, &mut body, pos + fixed_len as u64)?;
        Ok(crc32c::crc32c(&body) == fixed.body_crc)
    }

    fn any_valid_after_v3(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        from: u64,
        end: u64,
    ) -> io::Result<Option<u64>> {
        let fixed_len = RecordVersion::V3.fixed_len();
        let mut pos = from;
        while pos + fixed_len as u64 <= end {
            let Some(candidate) = self.next_head(file, meta, pos, end)? else {
                return Ok(None);
            };
            if self.record_len_at(file, meta, candidate, end)?.is_ok() {
                return Ok(Some(candidate));
            }
            pos = candidate + 1;
        }
        Ok(None)
    }

    /// The first position in `[from, end)` whose version-3 fixed fields
    /// verify (the record itself may still be damaged), scanning the window
    /// in place: a few loads per position, a checksum of 52 bytes only where
    /// the flags and lengths are plausible.
    fn next_head(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        from: u64,
        end: u64,
    ) -> io::Result<Option<u64>> {
        let fixed_len = RecordVersion::V3.fixed_len();
        let mut pos = from;
        while pos + fixed_len as u64 <= end {
            let chunk = self.window(file, pos, self.capacity, end)?;
            if chunk.len() < fixed_len {
                return Ok(None);
            }
            for i in 0..=chunk.len() - fixed_len {
                // The cheapest test first: a version-3 record has its record
                // flag set and no unknown flag.
                let flags = get_u16(chunk, i + REC_FLAGS_OFFSET);
                if flags & REC_FLAG_RECORD == 0 {
                    continue;
                }
                let at = pos + i as u64;
                let fixed_bytes = &chunk[i..i + fixed_len];
                let head_ok = record::parse_fixed(RecordVersion::V3, fixed_bytes).is_ok_and(|f| {
                    f.total_len() <= end - at
                        && record::verify_head(fixed_bytes, &f, meta.binding(at)).is_ok()
                });
                if head_ok {
                    return Ok(Some(at));
                }
            }
            // The next window overlaps this one by the fixed length less one.
            pos += (chunk.len() - fixed_len + 1) as u64;
        }
        Ok(None)
    }

    /// Version 2 has one checksum over the whole record, so each plausible
    /// position costs a read of its claimed length: quadratic in the worst
    /// case. Only directories written by nano-wal 0.6 are read this way.
    fn any_valid_after_v2(
        &mut self,
        file: &dyn StorageFile,
        meta: SegmentMeta,
        from: u64,
        end: u64,
    ) -> io::Result<Option<u64>> {
        let fixed_len = RecordVersion::V2.fixed_len();
        let mut pos = from;
        while pos + fixed_len as u64 <= end {
            let plausible = {
                let fixed = self.window(file, pos, fixed_len, end)?;
                fixed.len() == fixed_len
                    && record::parse_fixed(RecordVersion::V2, fixed)
                        .is_ok_and(|f| f.total_len() <= end.saturating_sub(pos))
            };
            if plausible && self.record_len_at(file, meta, pos, end)?.is_ok() {
                return Ok(Some(pos));
            }
            pos += 1;
        }
        Ok(None)
    }
}

/// Where a version-3 segment's first record starts, from the key length its
/// (possibly damaged) header stores; `None` if that length is out of range.
fn first_record_position(head: &[u8]) -> Option<u64> {
    let len_bytes =
        head.get(crate::format::SH_KEY_LEN_OFFSET..crate::format::SH_KEY_HASH_OFFSET)?;
    let key_len = crate::format::get_u32(len_bytes, 0) as usize;
    (key_len <= crate::format::MAX_KEY_BYTES)
        .then_some((crate::format::SH3_FIXED_LEN + key_len) as u64)
}
