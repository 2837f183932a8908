//! (n) The qcow2 reader on arbitrary bytes taken as a `.qcow2` file: the header and its
//! extensions, the L1 and L2 tables, compressed clusters, subclusters. Open it, then read the
//! disk it holds as every container target does (`read_disk`). Nothing may panic, hang or
//! allocate without bound; every error is an answer.
#![no_main]

#[path = "../common/container.rs"]
mod container;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::qcow2;

fuzz_target!(|data: &[u8]| container::open_and_read(qcow2::open, "fuzz.qcow2", data));
