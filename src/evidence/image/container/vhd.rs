//! The VHD container (Microsoft Virtual Hard Disk Image Format Specification 1.0), as written
//! by Virtual PC, Hyper-V, Disk2vhd and `qemu-img -O vpc`.
//!
//! A VHD is known by its footer, the last 512 bytes of the file (511 for some very old
//! Virtual PC files): the cookie `conectix`, big-endian fields and a checksum. A fixed disk
//! is the disk's bytes followed by the footer. A dynamic disk has a copy of the footer at
//! byte 0, a dynamic header (`cxsparse`) and a block allocation table (BAT) of big-endian
//! sector numbers; each allocated block starts with a sector bitmap (padded to 512 bytes)
//! whose clear bits are sectors never written, which read as zeros. A differencing disk
//! needs its parent and is refused.
//!
//! Since any raw disk could end with 512 bytes starting `conectix`, a file is only taken
//! for a VHD when the footer's checksum holds and its sizes agree with the file's length.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::cache::Lru;
use super::{be32, be64, ContainerError, ContainerInfo, Opened};
use crate::evidence::image::{within, ReadAt, Slice};

const FORMAT: &str = "vhd";
const SECTOR: u64 = 512;
const FOOTER_COOKIE: &[u8; 8] = b"conectix";
const DYNAMIC_COOKIE: &[u8; 8] = b"cxsparse";
const DYNAMIC_HEADER_LEN: usize = 1024;
const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Blocks are 2 MiB by default; anything above this is not a VHD any tool writes, and would
/// make a bitmap (and the cache of them) large.
const MAX_BLOCK_SIZE: u64 = 256 << 20;
/// The cache of block bitmaps holds at most this many bytes of bitmaps.
const CACHE_BYTES: u64 = 4 << 20;

const DISK_FIXED: u32 = 2;
const DISK_DYNAMIC: u32 = 3;
const DISK_DIFFERENCING: u32 = 4;

/// Opens `file` as a vhd container; `None` when its signature is not there.
pub fn open(path: &Path, file: &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError> {
    let Some(found) = find_footer(file.as_ref())? else {
        return Ok(None);
    };
    let footer = found.footer;
    let data_end = file.len() - found.len;
    let opened = match footer.disk_type {
        DISK_FIXED => open_fixed(file, &footer, data_end),
        DISK_DYNAMIC | DISK_DIFFERENCING => open_dynamic(file, &footer, data_end, found.head_copy)?,
        other => {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!(
                    "{}: disk type {other} (only fixed, 2, and dynamic, 3, disks are read)",
                    path.display()
                ),
            })
        }
    };
    Ok(opened)
}

/// The footer fields this reader uses.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Footer {
    data_offset: u64,
    current_size: u64,
    disk_type: u32,
}

/// The footer found at the end of the file, how long it is there (512 or 511 bytes), and
/// whether a valid copy of a footer is also at byte 0 (as dynamic disks have).
struct Found {
    footer: Footer,
    len: u64,
    head_copy: bool,
}

/// Looks for the footer at the end (512 bytes, then the 511 of old Virtual PC files). A
/// valid footer copy at byte 0 without one at the end is a dynamic disk whose end is lost:
/// damaged, not a raw disk.
fn find_footer(file: &dyn ReadAt) -> Result<Option<Found>, ContainerError> {
    let len = file.len();
    let head = if len >= SECTOR + 511 {
        let mut bytes = [0u8; 512];
        read(file, &mut bytes, 0, "footer copy")?;
        parse_footer(&bytes)
    } else {
        None
    };
    for footer_len in [512u64, 511] {
        if len < footer_len {
            continue;
        }
        let mut bytes = [0u8; 512];
        let offset = len - footer_len;
        read(file, &mut bytes[..footer_len as usize], offset, "footer")?;
        if let Some(footer) = parse_footer(&bytes) {
            return Ok(Some(Found {
                footer,
                len: footer_len,
                head_copy: head.is_some(),
            }));
        }
    }
    match head {
        Some(head) if matches!(head.disk_type, DISK_DYNAMIC | DISK_DIFFERENCING) => {
            Err(ContainerError::Damaged {
                format: FORMAT,
                what: "footer".into(),
                offset: len.saturating_sub(SECTOR),
                why: "the footer copy at the start of the file is there but the footer at the \
                      end is missing or has a wrong checksum (a truncated file?)"
                    .into(),
            })
        }
        _ => Ok(None),
    }
}

/// The footer in `bytes` when its cookie and checksum are right (a 511-byte footer is read
/// with its missing last byte, a reserved one, as zero: the checksum is the same).
fn parse_footer(bytes: &[u8; 512]) -> Option<Footer> {
    if &bytes[..8] != FOOTER_COOKIE || checksum(bytes, 64) != be32(bytes, 64) {
        return None;
    }
    Some(Footer {
        data_offset: be64(bytes, 16),
        current_size: be64(bytes, 48),
        disk_type: be32(bytes, 60),
    })
}

/// The one's complement of the sum of the bytes, those of the checksum field at `field`
/// (4 bytes) left out: the checksum of the footer and of the dynamic header.
fn checksum(bytes: &[u8], field: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |sum, (_, &b)| sum.wrapping_add(u32::from(b)));
    !sum
}

/// A fixed disk: the disk's bytes from byte 0, then the footer. Any other length is a raw
/// disk whose last sector happens to look like a footer.
fn open_fixed(file: &Arc<dyn ReadAt>, footer: &Footer, data_end: u64) -> Option<Opened> {
    if footer.current_size != data_end {
        return None;
    }
    let disk: Arc<dyn ReadAt> = Arc::new(Slice::new(file.clone(), 0, footer.current_size));
    Some(opened(disk, "vhd (fixed)"))
}

fn opened(disk: Arc<dyn ReadAt>, format: &str) -> Opened {
    let info = ContainerInfo {
        format: format.into(),
        virtual_size: disk.len(),
        ..ContainerInfo::default()
    };
    Opened { disk, info }
}

/// The dynamic header fields this reader uses.
struct DynamicHeader {
    table_offset: u64,
    max_table_entries: u32,
    block_size: u32,
    parent_name: String,
}

/// A dynamic or differencing disk. Its dynamic header must be where the footer says, with
/// its checksum right; when it is not, the file is damaged if it also has the footer copy
/// at byte 0, and otherwise a raw disk ending with a footer-like sector.
fn open_dynamic(
    file: &Arc<dyn ReadAt>,
    footer: &Footer,
    data_end: u64,
    head_copy: bool,
) -> Result<Option<Opened>, ContainerError> {
    let header = match read_dynamic_header(file.as_ref(), footer.data_offset, data_end)? {
        Ok(header) => header,
        Err(_) if !head_copy => return Ok(None),
        Err(why) => return Err(damaged("dynamic header", footer.data_offset, why)),
    };
    if footer.disk_type == DISK_DIFFERENCING {
        return Err(ContainerError::Unsupported {
            format: FORMAT,
            why: format!(
                "a differencing disk: its data is partly in its parent disk \"{}\", which is \
                 not opened (open the parent, or merge the two into one disk)",
                header.parent_name
            ),
        });
    }
    let disk = DynamicVhd::new(file.clone(), footer, &header, data_end)?;
    Ok(Some(opened(Arc::new(disk), "vhd (dynamic)")))
}

/// The dynamic header at `offset`; the inner error says why the bytes there are not one.
fn read_dynamic_header(
    file: &dyn ReadAt,
    offset: u64,
    data_end: u64,
) -> Result<Result<DynamicHeader, String>, ContainerError> {
    let fits = offset
        .checked_add(DYNAMIC_HEADER_LEN as u64)
        .is_some_and(|end| end <= data_end);
    if !fits {
        return Ok(Err(format!(
            "the footer puts it at byte {offset}, outside the file's {data_end} bytes of data"
        )));
    }
    let mut bytes = [0u8; DYNAMIC_HEADER_LEN];
    read(file, &mut bytes, offset, "dynamic header")?;
    if &bytes[..8] != DYNAMIC_COOKIE {
        return Ok(Err("no \"cxsparse\" signature".into()));
    }
    if checksum(&bytes, 36) != be32(&bytes, 36) {
        return Ok(Err("wrong checksum".into()));
    }
    let name: Vec<u16> = bytes[64..576]
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0)
        .collect();
    Ok(Ok(DynamicHeader {
        table_offset: be64(&bytes, 16),
        max_table_entries: be32(&bytes, 28),
        block_size: be32(&bytes, 32),
        parent_name: String::from_utf16_lossy(&name),
    }))
}

/// A dynamic disk read through its BAT and block bitmaps, both read on demand: a block's
/// BAT entry and bitmap are read on its first read and kept in a small cache.
struct DynamicVhd {
    file: Arc<dyn ReadAt>,
    size: u64,
    block_size: u64,
    bitmap_len: u64,
    table_offset: u64,
    /// Where block data must end: the footer follows.
    data_end: u64,
    /// The byte ranges of the footer copy, the dynamic header and the BAT, which no block
    /// may overlap.
    metadata: [(u64, u64); 3],
    cache: Lru<u64, Option<Arc<Block>>>,
}

/// An allocated block: where its data starts, and its sector bitmap.
struct Block {
    data: u64,
    bitmap: Box<[u8]>,
}

impl DynamicVhd {
    fn new(
        file: Arc<dyn ReadAt>,
        footer: &Footer,
        header: &DynamicHeader,
        data_end: u64,
    ) -> Result<DynamicVhd, ContainerError> {
        let size = footer.current_size;
        let block_size = u64::from(header.block_size);
        if block_size == 0 || block_size % SECTOR != 0 {
            return Err(damaged(
                "dynamic header",
                0,
                format!("a block size of {block_size} bytes, not a multiple of 512"),
            ));
        }
        if block_size > MAX_BLOCK_SIZE {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!("blocks of {block_size} bytes (at most 256 MiB are read)"),
            });
        }
        let blocks = size.div_ceil(block_size);
        if blocks > u64::from(header.max_table_entries) {
            return Err(damaged(
                "dynamic header",
                0,
                format!(
                    "a disk of {size} bytes needs {blocks} blocks of {block_size} bytes but \
                     the block table has {} entries",
                    header.max_table_entries
                ),
            ));
        }
        let table_end = blocks
            .checked_mul(4)
            .and_then(|len| header.table_offset.checked_add(len))
            .filter(|&end| end <= data_end)
            .ok_or_else(|| {
                damaged(
                    "block allocation table",
                    header.table_offset,
                    format!("{blocks} entries from there do not fit in the file"),
                )
            })?;
        // Checked by read_dynamic_header: the header is inside the file.
        let header_range = (
            footer.data_offset,
            footer.data_offset + DYNAMIC_HEADER_LEN as u64,
        );
        // One bit a sector, padded to whole sectors.
        let bitmap_len = (block_size / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
        Ok(DynamicVhd {
            file,
            size,
            block_size,
            bitmap_len,
            table_offset: header.table_offset,
            data_end,
            metadata: [(0, SECTOR), header_range, (header.table_offset, table_end)],
            cache: Lru::with_budget(CACHE_BYTES, bitmap_len, 8, 1024),
        })
    }

    /// Block `index`, `None` when it is not allocated.
    fn block(&self, index: u64) -> io::Result<Option<Arc<Block>>> {
        self.cache.get_or_load(index, || self.read_block(index))
    }

    fn read_block(&self, index: u64) -> io::Result<Option<Arc<Block>>> {
        let entry_at = self.table_offset + index * 4;
        let mut entry = [0u8; 4];
        self.file
            .read_exact_at(&mut entry, entry_at)
            .map_err(|e| io_error("block allocation table entry", entry_at, e))?;
        let sector = u32::from_be_bytes(entry);
        if sector == UNALLOCATED {
            return Ok(None);
        }
        let start = u64::from(sector) * SECTOR;
        let data = start + self.bitmap_len;
        let end = data + self.block_size;
        let what = || format!("block allocation table entry {index}");
        if end > self.data_end {
            return Err(damaged_io(
                &what(),
                entry_at,
                format!(
                    "block {index} at byte {start} ends past the file's {} bytes of data",
                    self.data_end
                ),
            ));
        }
        if self
            .metadata
            .iter()
            .any(|&(from, to)| start < to && from < end)
        {
            return Err(damaged_io(
                &what(),
                entry_at,
                format!("block {index} at byte {start} overlaps the footer copy, the dynamic header or the BAT"),
            ));
        }
        let mut bitmap = vec![0u8; self.bitmap_len as usize].into_boxed_slice();
        self.file
            .read_exact_at(&mut bitmap, start)
            .map_err(|e| io_error("block bitmap", start, e))?;
        Ok(Some(Arc::new(Block { data, bitmap })))
    }

    /// Fills `buf` from byte `within` of block `block`: runs of present sectors are read,
    /// runs of absent ones (bit clear) are zeros.
    fn read_in_block(&self, block: &Block, buf: &mut [u8], within: u64) -> io::Result<()> {
        let present = |pos: u64| {
            let sector = (pos / SECTOR) as usize;
            block.bitmap[sector / 8] & (0x80 >> (sector % 8)) != 0
        };
        let end = within + buf.len() as u64;
        let mut pos = within;
        while pos < end {
            let here = present(pos);
            let mut run_end = ((pos / SECTOR + 1) * SECTOR).min(end);
            while run_end < end && present(run_end) == here {
                run_end = (run_end + SECTOR).min(end);
            }
            let part = &mut buf[(pos - within) as usize..(run_end - within) as usize];
            if here {
                let at = block.data + pos;
                self.file
                    .read_exact_at(part, at)
                    .map_err(|e| io_error("block data", at, e))?;
            } else {
                part.fill(0);
            }
            pos = run_end;
        }
        Ok(())
    }
}

impl ReadAt for DynamicVhd {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.size, "vhd disk")?;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let index = at / self.block_size;
            let within = at % self.block_size;
            let n = ((self.block_size - within) as usize).min(buf.len() - done);
            let part = &mut buf[done..done + n];
            match self.block(index)? {
                Some(block) => self.read_in_block(&block, part, within)?,
                None => part.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.size
    }
}

fn read(file: &dyn ReadAt, buf: &mut [u8], offset: u64, what: &str) -> Result<(), ContainerError> {
    super::read(FORMAT, file, buf, offset, what)
}

fn damaged(what: &str, offset: u64, why: impl Into<String>) -> ContainerError {
    super::damaged(FORMAT, what, offset, why)
}

fn damaged_io(what: &str, offset: u64, why: String) -> io::Error {
    super::damaged_io(FORMAT, what, offset, why)
}

fn io_error(what: &str, offset: u64, source: io::Error) -> io::Error {
    super::io_error(FORMAT, what, offset, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer of `disk_type` for a disk of `size` bytes, with its checksum.
    fn footer(disk_type: u32, size: u64, data_offset: u64) -> [u8; 512] {
        let mut bytes = [0u8; 512];
        bytes[..8].copy_from_slice(FOOTER_COOKIE);
        bytes[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        bytes[16..24].copy_from_slice(&data_offset.to_be_bytes());
        bytes[40..48].copy_from_slice(&size.to_be_bytes());
        bytes[48..56].copy_from_slice(&size.to_be_bytes());
        bytes[60..64].copy_from_slice(&disk_type.to_be_bytes());
        let sum = checksum(&bytes, 64);
        bytes[64..68].copy_from_slice(&sum.to_be_bytes());
        bytes
    }

    fn open_bytes(bytes: Vec<u8>) -> Result<Option<Opened>, ContainerError> {
        let file: Arc<dyn ReadAt> = Arc::new(bytes);
        open(Path::new("test.vhd"), &file)
    }

    #[test]
    fn fixed_disk_of_data_then_footer() {
        let mut bytes = vec![7u8; 4096];
        bytes.extend_from_slice(&footer(DISK_FIXED, 4096, u64::MAX));
        let opened = open_bytes(bytes).unwrap().unwrap();
        assert_eq!(opened.info.format, "vhd (fixed)");
        assert_eq!(opened.disk.len(), 4096);
        let mut buf = [0u8; 16];
        opened.disk.read_exact_at(&mut buf, 4080).unwrap();
        assert_eq!(buf, [7u8; 16]);
        assert!(opened.disk.read_exact_at(&mut buf, 4081).is_err());
    }

    #[test]
    fn fixed_footer_of_511_bytes() {
        let mut bytes = vec![7u8; 4096];
        bytes.extend_from_slice(&footer(DISK_FIXED, 4096, u64::MAX)[..511]);
        let opened = open_bytes(bytes).unwrap().unwrap();
        assert_eq!(opened.disk.len(), 4096);
    }

    #[test]
    fn footer_like_tail_of_a_raw_disk_is_not_a_vhd() {
        // A right checksum but a size that does not match the file.
        let mut bytes = vec![0u8; 8192];
        bytes.extend_from_slice(&footer(DISK_FIXED, 4096, u64::MAX));
        assert!(open_bytes(bytes).unwrap().is_none());
        // The cookie with a wrong checksum.
        let mut bytes = vec![0u8; 4096];
        let mut tail = footer(DISK_FIXED, 4096, u64::MAX);
        tail[100] ^= 1;
        bytes.extend_from_slice(&tail);
        assert!(open_bytes(bytes).unwrap().is_none());
        // A dynamic footer with no dynamic header where it says, and no copy at byte 0.
        let mut bytes = vec![0u8; 8192];
        bytes.extend_from_slice(&footer(DISK_DYNAMIC, 1 << 20, 512));
        assert!(open_bytes(bytes).unwrap().is_none());
    }

    #[test]
    fn too_small_files_are_not_vhds() {
        for len in [0, 1, 100, 511, 512, 1023] {
            assert!(open_bytes(vec![0u8; len]).unwrap().is_none());
        }
        assert!(open_bytes(footer(DISK_FIXED, 0, u64::MAX).to_vec())
            .unwrap()
            .is_some());
    }

    #[test]
    fn unknown_disk_type_is_refused() {
        let mut bytes = vec![0u8; 4096];
        bytes.extend_from_slice(&footer(5, 4096, u64::MAX));
        assert!(matches!(
            open_bytes(bytes),
            Err(ContainerError::Unsupported { .. })
        ));
    }

    #[test]
    fn checksum_leaves_its_field_out() {
        let mut bytes = [0u8; 512];
        bytes[0] = 1;
        bytes[64] = 0xFF;
        assert_eq!(checksum(&bytes, 64), !1u32);
    }
}
