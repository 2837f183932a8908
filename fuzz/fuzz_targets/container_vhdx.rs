//! (l) The VHDX reader on arbitrary bytes taken as a `.vhdx` file: the two headers and region
//! tables, the log (replayed in memory), the metadata region, the BAT. Open it, then read the
//! disk it holds as every container target does (`read_disk`). Nothing may panic, hang or
//! allocate without bound; every error is an answer.
#![no_main]

#[path = "../common/container.rs"]
mod container;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::vhdx;

fuzz_target!(|data: &[u8]| container::open_and_read(vhdx::open, "fuzz.vhdx", data));
