//! What every container target does with its input: open it as the format's container
//! (`open`), and when it opens, read the disk it holds (`read_disk`). Included by each
//! `container_*` target (`#[path]`), so that the five drive the readers alike.

use std::path::Path;
use std::sync::Arc;

use nextboot::evidence::image::container::{ContainerError, Opened};
use nextboot::evidence::image::ReadAt;
use nextboot::evidence::Piece;

/// A format's `open`.
pub type Open = fn(&Path, &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError>;

/// `data` as the container file shown as `path`: opened, and its disk read. The size the
/// container reports is the disk's.
pub fn open_and_read(open: Open, path: &str, data: &[u8]) {
    let file: Arc<dyn ReadAt> = Arc::new(data.to_vec());
    let Ok(Some(opened)) = open(Path::new(path), &file) else {
        return;
    };
    assert_eq!(
        opened.info.virtual_size,
        opened.disk.len(),
        "{:?}",
        opened.info
    );
    read_disk(&*opened.disk);
}

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
