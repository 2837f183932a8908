//! (k) The VHD reader on arbitrary bytes taken as a `.vhd` file: a footer (and its copy), the
//! dynamic header, the BAT and each block's sector bitmap. Open it, then read the disk it holds
//! as every container target does (`read_disk`). Nothing may panic, hang or allocate without
//! bound; every error is an answer.
#![no_main]

#[path = "../common/container.rs"]
mod container;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::vhd;

fuzz_target!(|data: &[u8]| container::open_and_read(vhd::open, "fuzz.vhd", data));
