//! Reading a journal file: its frames in order, from large blocks
//! ([`FrameReader`]), and what follows the last valid frame
//! ([`scan_rest`]: zeros, a torn tail, or damage with a valid frame after
//! it). Recovery and `inspect` read journals with these alone.

use crate::error::{Result, io_at};
use crate::format::journal::{self as jf, FH_LEN, FrameBinding, Op};
use crate::storage::{StorageFile, read_exact_at};

/// Bytes of a journal file read at a time ([`FrameReader`]).
const READ_BLOCK_BYTES: usize = 1 << 20;

/// Reads a journal file's frames in order, from blocks of
/// [`READ_BLOCK_BYTES`], so that a frame costs no read call of its own.
/// Recovery and `inspect` read frames with it.
pub(crate) struct FrameReader<'f> {
    file: &'f dyn StorageFile,
    path: &'f std::path::Path,
    len: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    start: u64,
}

impl<'f> FrameReader<'f> {
    /// A reader of `file` (at `path`), `len` bytes long.
    pub fn new(file: &'f dyn StorageFile, path: &'f std::path::Path, len: u64) -> Self {
        Self {
            file,
            path,
            len,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// `n` bytes at `pos`, which the caller has checked lie in the file.
    fn bytes(&mut self, pos: u64, n: usize) -> Result<&[u8]> {
        let end = pos + n as u64;
        let buffered = self.start + self.buf.len() as u64;
        if pos < self.start || end > buffered {
            // At least the whole request, and never past the file's end.
            let want = (n.max(READ_BLOCK_BYTES) as u64).min(self.len - pos);
            self.buf.clear();
            self.buf.resize(usize::try_from(want).unwrap_or(n), 0);
            read_exact_at(self.file, &mut self.buf, pos)
                .map_err(|e| io_at(self.path, "read", e))?;
            self.start = pos;
        }
        let at = usize::try_from(pos - self.start).unwrap_or(usize::MAX);
        Ok(&self.buf[at..at + n])
    }

    /// Read and check the frame at `binding.position`: it must verify at
    /// that position, carry frame number `number`, lie within the file and
    /// verify whole (body checksum and operations). Returns its length and
    /// its operations, or `None` where valid frames end. The frame's length
    /// is checked against the file before anything is read or allocated
    /// for it.
    pub fn read(
        &mut self,
        binding: FrameBinding,
        number: u64,
    ) -> Result<Option<(u64, Vec<Op<'_>>)>> {
        let pos = binding.position;
        if pos.saturating_add(FH_LEN as u64) > self.len {
            return Ok(None);
        }
        let Some(head) = jf::decode_head(self.bytes(pos, FH_LEN)?, binding) else {
            return Ok(None);
        };
        if head.number != number || pos.saturating_add(head.total_len()) > self.len {
            return Ok(None);
        }
        let total = usize::try_from(head.total_len()).unwrap_or(usize::MAX);
        let frame = self.bytes(pos, total)?;
        match jf::decode_ops(&frame[FH_LEN..], &head) {
            Ok(ops) => Ok(Some((head.total_len(), ops))),
            Err(_) => Ok(None),
        }
    }
}

/// What follows the last valid frame.
pub(crate) struct RestScan {
    /// Nothing but zeros to the end of the file.
    pub all_zero: bool,
    /// The first later position where a frame verifies, if any.
    pub valid_frame_at: Option<u64>,
}

/// Bytes read at a time when scanning past the last valid frame.
const SCAN_CHUNK_BYTES: usize = 64 << 10;

/// Look at every byte after `pos`: all zeros, or is there a frame head
/// that verifies at its own position? Linear: a run of zeros is skipped
/// in blocks (a head whose bytes are all zero cannot verify: its payload
/// length is not zero), every other position costs one checksum of a
/// frame's fixed bytes.
pub(crate) fn scan_rest(
    file: &dyn StorageFile,
    path: &std::path::Path,
    pos: u64,
    len: u64,
    salt: u64,
    seq: u64,
) -> Result<RestScan> {
    let mut out = RestScan {
        all_zero: true,
        valid_frame_at: None,
    };
    let mut at = pos;
    let first = usize::try_from(len.saturating_sub(pos)).unwrap_or(SCAN_CHUNK_BYTES);
    let mut buf = vec![0u8; first.min(SCAN_CHUNK_BYTES) + FH_LEN];
    while at < len {
        let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        read_exact_at(file, &mut buf[..n], at).map_err(|e| io_at(path, "read", e))?;
        let step = n.min(SCAN_CHUNK_BYTES);
        let mut i = 0;
        while i < step {
            let zeros = zero_run(&buf[i..n]);
            if zeros >= FH_LEN {
                // Every head starting in the run's first `zeros - FH_LEN + 1`
                // positions is all zeros.
                i += zeros - FH_LEN + 1;
                continue;
            }
            if zeros < n - i {
                out.all_zero = false;
            }
            // Skip the first position: it is the damaged frame itself.
            let position = at + i as u64;
            if i + FH_LEN <= n && position != pos {
                let binding = FrameBinding {
                    salt,
                    file_sequence: seq,
                    position,
                };
                if jf::decode_head(&buf[i..i + FH_LEN], binding).is_some() {
                    out.valid_frame_at = Some(position);
                    return Ok(out);
                }
            }
            i += 1;
        }
        at += step as u64;
    }
    Ok(out)
}

/// Whether every byte of `file` from `pos` to `len` is zero (read in
/// bounded chunks).
pub(crate) fn all_zero_from(
    file: &dyn StorageFile,
    path: &std::path::Path,
    pos: u64,
    len: u64,
) -> Result<bool> {
    let mut buf = vec![
        0u8;
        usize::try_from(len.saturating_sub(pos))
            .map_or(SCAN_CHUNK_BYTES, |n| n.min(SCAN_CHUNK_BYTES))
    ];
    let mut at = pos;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |n| n.min(buf.len()));
        read_exact_at(file, &mut buf[..n], at).map_err(|e| io_at(path, "read", e))?;
        if zero_run(&buf[..n]) < n {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// How many bytes at the start of `bytes` are zero; whole blocks are
/// tested at once, so long runs of zeros cost little.
fn zero_run(bytes: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let mut run = 0;
    for block in bytes.chunks(BLOCK) {
        if block.iter().fold(0u8, |acc, &b| acc | b) == 0 {
            run += block.len();
            continue;
        }
        return run + block.iter().position(|&b| b != 0).unwrap_or(block.len());
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::journal::FrameBuf;
    use std::sync::Mutex;

    /// A file in memory, for the scan alone.
    #[derive(Debug)]
    struct MemFile(Mutex<Vec<u8>>);

    impl StorageFile for MemFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            let data = self.0.lock().expect("not poisoned");
            let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
        fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<usize> {
            unreachable!("the scan only reads")
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn file_len(&self) -> std::io::Result<u64> {
            Ok(self.0.lock().expect("not poisoned").len() as u64)
        }
        fn set_len(&self, _: u64) -> std::io::Result<()> {
            unreachable!("the scan only reads")
        }
    }

    fn frame_at(position: u64) -> Vec<u8> {
        let mut f = FrameBuf::new_in(Vec::new());
        f.push_remove(1, 1);
        f.seal_body();
        f.seal_head(
            1,
            FrameBinding {
                salt: 7,
                file_sequence: 3,
                position,
            },
        );
        f.into_vec()
    }

    fn scan(bytes: Vec<u8>, pos: u64) -> RestScan {
        let len = bytes.len() as u64;
        let file = MemFile(Mutex::new(bytes));
        scan_rest(&file, std::path::Path::new("j"), pos, len, 7, 3).expect("scan")
    }

    /// The byte frame `n`'s payload is made of.
    fn fill_byte(n: usize) -> u8 {
        u8::try_from(n % 251).expect("below 251")
    }

    /// Frames of `sizes` payload bytes from position 48, as a file.
    fn frames_file(sizes: &[usize]) -> (Vec<u8>, Vec<u64>) {
        let mut file = vec![0u8; 48];
        let mut starts = Vec::new();
        for (n, &size) in sizes.iter().enumerate() {
            let pos = file.len() as u64;
            let mut f = FrameBuf::new_in(Vec::new());
            f.push_records(1, 1, pos, size);
            f.vec_mut().extend(std::iter::repeat_n(fill_byte(n), size));
            f.seal_body();
            f.seal_head(
                n as u64,
                FrameBinding {
                    salt: 7,
                    file_sequence: 3,
                    position: pos,
                },
            );
            starts.push(pos);
            file.extend_from_slice(f.bytes());
        }
        file.extend_from_slice(&[0; 100]);
        (file, starts)
    }

    #[test]
    fn the_reader_serves_frames_across_blocks_and_larger_than_one() {
        let sizes = [10, READ_BLOCK_BYTES - 200, 5000, 3 * READ_BLOCK_BYTES, 1];
        let (bytes, starts) = frames_file(&sizes);
        let len = bytes.len() as u64;
        let file = MemFile(Mutex::new(bytes));
        let path = std::path::Path::new("j");
        let mut reader = FrameReader::new(&file, path, len);
        let mut pos = 48;
        for (n, &size) in sizes.iter().enumerate() {
            assert_eq!(pos, starts[n]);
            let binding = FrameBinding {
                salt: 7,
                file_sequence: 3,
                position: pos,
            };
            let (total, ops) = reader
                .read(binding, n as u64)
                .expect("reads")
                .expect("a frame");
            let [Op::Records { records, .. }] = ops[..] else {
                panic!("one records operation")
            };
            assert_eq!(records.len(), size);
            assert!(records.iter().all(|&b| b == fill_byte(n)));
            pos += total;
        }
        let binding = FrameBinding {
            salt: 7,
            file_sequence: 3,
            position: pos,
        };
        assert!(
            reader
                .read(binding, sizes.len() as u64)
                .expect("reads")
                .is_none()
        );
    }

    #[test]
    fn the_reader_refuses_a_wrong_number_and_a_frame_past_the_end() {
        let (bytes, starts) = frames_file(&[64, 64]);
        let path = std::path::Path::new("j");
        let binding = FrameBinding {
            salt: 7,
            file_sequence: 3,
            position: starts[1],
        };
        let file = MemFile(Mutex::new(bytes.clone()));
        let mut reader = FrameReader::new(&file, path, bytes.len() as u64);
        assert!(
            reader.read(binding, 5).expect("reads").is_none(),
            "wrong number"
        );
        // The file as if the second frame were cut short.
        let short = starts[1] + 30;
        let mut reader = FrameReader::new(&file, path, short);
        assert!(
            reader.read(binding, 1).expect("reads").is_none(),
            "past the end"
        );
    }

    #[test]
    fn zero_runs_are_counted_across_blocks() {
        assert_eq!(zero_run(&[]), 0);
        assert_eq!(zero_run(&[1, 0]), 0);
        assert_eq!(zero_run(&[0; 200]), 200);
        let mut b = vec![0u8; 200];
        b[130] = 9;
        assert_eq!(zero_run(&b), 130);
    }

    #[test]
    fn zeros_after_the_end_are_all_zero() {
        let out = scan(vec![0; 3 * SCAN_CHUNK_BYTES / 2], 100);
        assert!(out.all_zero);
        assert_eq!(out.valid_frame_at, None);
    }

    #[test]
    fn garbage_without_a_frame_is_a_torn_tail() {
        let mut b = vec![0u8; 4096];
        b[100..140].fill(0xa5);
        let out = scan(b, 100);
        assert!(!out.all_zero);
        assert_eq!(out.valid_frame_at, None);
    }

    #[test]
    fn a_frame_after_long_zeros_is_found_even_across_chunks() {
        for at in [
            120u64,
            5000,
            SCAN_CHUNK_BYTES as u64 - 3,
            SCAN_CHUNK_BYTES as u64 + 77,
        ] {
            let frame = frame_at(at);
            let start = usize::try_from(at).expect("fits");
            let mut b = vec![0u8; start + frame.len() + 500];
            b[100] = 1;
            b[start..start + frame.len()].copy_from_slice(&frame);
            let out = scan(b, 100);
            assert!(!out.all_zero, "frame at {at}");
            assert_eq!(out.valid_frame_at, Some(at), "frame at {at}");
        }
    }

    #[test]
    fn a_frame_bound_elsewhere_does_not_count() {
        let frame = frame_at(64);
        let mut b = vec![0u8; 8192];
        b[4000..4000 + frame.len()].copy_from_slice(&frame);
        assert_eq!(scan(b, 100).valid_frame_at, None);
    }
}
