//! (m) The VMDK reader on arbitrary bytes taken as a `.vmdk` file: a sparse extent with its
//! embedded descriptor (monolithicSparse, streamOptimized with its markers and footer), or a
//! descriptor file. Open it, then read the disk it holds as every container target does
//! (`read_disk`). The file is shown as in a folder that does not exist, so that every extent
//! file a descriptor names is missing (an error, whatever the fuzzer's working folder holds);
//! ZERO extents need no file. Nothing may panic, hang or allocate without bound; every error
//! is an answer.
#![no_main]

#[path = "../common/container.rs"]
mod container;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::vmdk;

fuzz_target!(|data: &[u8]| container::open_and_read(vmdk::open, "/nonexistent/fuzz.vmdk", data));
