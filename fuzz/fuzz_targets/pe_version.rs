//! (d) The version of a PE file: `read_pe_version` on an 8-byte aligned copy of the input (as
//! a mapping is), and the `VS_VERSIONINFO` walker directly on the raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::Evidence;
use nextboot::version::{parse_version_info, read_pe_version};

fuzz_target!(|data: &[u8]| {
    let aligned = Evidence::from_vec("fuzz".into(), data.to_vec());
    if let Ok(pe) = read_pe_version(&aligned) {
        let _ = pe.file_version();
        let _ = pe.unversioned_reason();
    }
    let parsed = parse_version_info(data);
    if parsed.file_version.is_none() && parsed.product_version.is_some() {
        panic!("a product version without a file version");
    }
    // Odd offsets too: the walker must not assume alignment.
    if let Some(rest) = data.get(1..) {
        let _ = parse_version_info(rest);
    }
});
