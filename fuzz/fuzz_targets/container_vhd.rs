//! (k) The VHD reader on arbitrary bytes taken as a `.vhd` file: a footer (and its copy), the
//! dynamic header, the BAT and each block's sector bitmap. Open it, then read the disk it holds
//! as every container target does (`read_disk`). Nothing may panic, hang or allocate without
//! bound; every error is an answer.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::vhd;
use nextboot::evidence::image::ReadAt;
use nextboot::evidence::Piece;

fuzz_target!(|data: &[u8]| {
    let file: Arc<dyn ReadAt> = Arc::new(data.to_vec());
    let Ok(Some(opened)) = vhd::open(Path::new("fuzz.vhd"), &file) else {
        return;
    };
    assert_eq!(
        opened.info.virtual_size,
        opened.disk.len(),
        "{:?}",
        opened.info
    );
    read_disk(&*opened.disk);
});

/// The reads every container target makes of the disk it opened: the first and last 64 KiB,
/// then 4 KiB + 1 bytes across each of up to 16 boundaries (every 1 MiB, or every sixteenth of
/// a smaller disk, at least 4 KiB: block, grain, cluster and chunk boundaries), whole and in
/// two parts split at the boundary, which must agree with the whole when all three read; and
/// where those ranges lie in the file (`map_pieces`). Errors are answers, but a read past the
/// end must be one.
fn read_disk(disk: &dyn ReadAt) {
    let len = disk.len();
    let mut buf = vec![0u8; 64 << 10];
    let edge = len.min(64 << 10);
    let _ = disk.read_exact_at(&mut buf[..edge as usize], 0);
    let _ = disk.read_exact_at(&mut buf[..edge as usize], len - edge);
    assert!(
        disk.read_exact_at(&mut [0u8; 1], len).is_err(),
        "read past the end ({len} bytes)"
    );
    assert!(disk.read_exact_at(&mut [0u8; 2], u64::MAX).is_err());
    let stride = (len / 16).clamp(4096, 1 << 20);
    let mut pieces = vec![
        Piece {
            offset: Some(0),
            len: edge,
        },
        Piece {
            offset: None,
            len: 512,
        },
        Piece {
            offset: Some(len - edge),
            len: edge,
        },
    ];
    let mut whole = [0u8; 4097];
    let mut parts = [0u8; 4097];
    for k in 1..=16 {
        let boundary = k * stride;
        let offset = boundary - 2049;
        if offset + 4097 > len {
            break;
        }
        pieces.push(Piece {
            offset: Some(offset),
            len: 4097,
        });
        let read = disk.read_exact_at(&mut whole, offset).is_ok();
        let (before, after) = parts.split_at_mut(2049);
        let split = disk.read_exact_at(before, offset).is_ok()
            && disk.read_exact_at(after, boundary).is_ok();
        if read && split {
            assert!(
                whole == parts,
                "4097 bytes at {offset} differ when read in two parts"
            );
        }
    }
    let _ = disk.map_pieces(&pieces, Path::new("fuzz"));
}
