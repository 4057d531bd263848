//! One segment file of arbitrary bytes: open the WAL in every mode and read
//! every record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nano_wal_sim::arbitrary_dir::{disk_with, open_and_read_everything, segment_name};

fuzz_target!(|data: &[u8]| {
    open_and_read_everything(&disk_with(&[(segment_name(0, 0), data.to_vec())]));
});
