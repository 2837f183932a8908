//! (o) The EWF reader on arbitrary bytes taken as the first segment of an E01 set: its sections
//! (header, volume, table and table2, sectors, hash, digest, done or next), compressed and
//! stored chunks. Open it, then read the disk it holds as every container target does
//! (`read_disk`). The file is shown as in a folder that does not exist, so that a `next`
//! section's second segment is missing (an error, whatever the fuzzer's working folder
//! holds). Nothing may panic, hang or allocate without bound; every error is an answer.
#![no_main]

#[path = "../common/container.rs"]
mod container;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::ewf;

fuzz_target!(|data: &[u8]| container::open_and_read(ewf::open, "/nonexistent/fuzz.E01", data));
