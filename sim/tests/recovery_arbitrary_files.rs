//! Recovery over arbitrary directories (stable-Rust companion of the fuzz
//! target `recover_directory`): random bytes named as segments, journal
//! files and manifests, and real directories (segments, journal, manifest)
//! with one file's bytes flipped, cut or overwritten. Opening in every mode,
//! reading every record and appending must never panic, and every record a
//! stream returns must read back the same by reference.

use nano_wal_sim::arbitrary_dir::{
    any_file_name, disk_with, open_and_read_everything, segment_name, valid_files,
};
use proptest::prelude::*;

fn mutate(mut bytes: Vec<u8>, edits: &[(u16, u8, u8)]) -> Vec<u8> {
    for &(at, kind, value) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = usize::from(at) % bytes.len();
        match kind % 4 {
            0 => bytes[at] ^= 1 << (value % 8),
            1 => bytes.truncate(at),
            2 => bytes[at] = value,
            _ => {
                let end = (at + 512).min(bytes.len());
                bytes[at..end].fill(0);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_files_named_as_segments(
        files in prop::collection::vec((0u8..4, 0u8..6, prop::collection::vec(any::<u8>(), 0..300)), 0..5)
    ) {
        let files: Vec<(String, Vec<u8>)> =
            files.into_iter().map(|(k, s, b)| (segment_name(k, s), b)).collect();
        open_and_read_everything(&disk_with(&files));
    }

    #[test]
    fn arbitrary_files_named_as_journals_manifests_and_segments(
        files in prop::collection::vec((any::<u8>(), 0u8..6, prop::collection::vec(any::<u8>(), 0..300)), 0..6)
    ) {
        let files: Vec<(String, Vec<u8>)> =
            files.into_iter().map(|(k, s, b)| (any_file_name(k, s), b)).collect();
        open_and_read_everything(&disk_with(&files));
    }

    #[test]
    fn damaged_real_segments(
        records in prop::collection::vec((0u8..3, prop::collection::vec(any::<u8>(), 0..900)), 1..20),
        edits in prop::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..4),
        which in any::<usize>(),
    ) {
        let mut files = valid_files(&records);
        if !files.is_empty() {
            let i = which % files.len();
            let damaged = mutate(std::mem::take(&mut files[i].1), &edits);
            files[i].1 = damaged;
        }
        open_and_read_everything(&disk_with(&files));
    }
}
