//! The VHDX container (MS-VHDX v1, Hyper-V's disk format), read in place.
//!
//! Layout: a file type identifier (`vhdxfile`) at 0, two headers at 64 KiB and 128 KiB (the
//! valid one with the greater sequence number is current), a region table at 192 KiB (a copy
//! at 256 KiB) that places the block allocation table (BAT) and the metadata region, and the
//! log the header places. Every structure but the metadata and the BAT has a CRC-32C.
//!
//! The log is a write-ahead journal of metadata changes: when the current header names a log
//! (a non-zero LogGuid), its newest complete sequence of entries may not have reached the file
//! yet, and the file must be read as if it had. Evidence is never written, so the replay
//! happens in memory: an overlay of 4 KiB pages and zeroed ranges that every later read of
//! the container goes through (headers, region table, metadata, BAT and payload alike).
//!
//! Refused, with the reason: differencing disks (the parent is named, not opened), unknown
//! regions or metadata items marked required, log versions other than 0, and logs larger
//! than 256 MiB (replayed pages are held in memory). Payload blocks are checked as they are
//! read: inside the file, outside the header section, log, BAT and metadata region.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::cache::Lru;
use super::{bytes_at, le16, le32, le64, ContainerError, ContainerInfo, Opened};
use crate::evidence::image::{within, ReadAt};
use crate::evidence::{Evidence, Piece};

const FORMAT: &str = "vhdx";
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The file type identifier: the signature and the creator's name (UTF-16LE, 256 units).
const IDENTIFIER_LEN: usize = 8 + 512;
const HEADER_SIZE: usize = 4096;
const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
const REGION_TABLE_SIZE: usize = 64 * 1024;
const REGION_TABLE_OFFSETS: [u64; 2] = [192 * KIB, 256 * KIB];
/// The spec's limit, which is also what fits the 64 KiB table after its 16-byte header.
const MAX_REGION_ENTRIES: u32 = 2047;
const METADATA_TABLE_SIZE: usize = 64 * 1024;
const MAX_METADATA_ENTRIES: u16 = 2047;
/// The headers, region tables and reserved space: no region or block may lie there.
const HEADER_SECTION: u64 = MIB;
const LOG_SECTOR: u64 = 4096;
/// A log this large is refused: Hyper-V and QEMU write 1 MiB logs, and the replayed pages
/// are held in memory (at most the log's size).
const MAX_LOG_LEN: u64 = 256 * MIB;
/// The spec's largest virtual disk.
const MAX_VIRTUAL_SIZE: u64 = 64 << 40;
const MIN_BLOCK_SIZE: u32 = 1 << 20;
const MAX_BLOCK_SIZE: u32 = 256 << 20;
/// A parent locator larger than this is not read (its paths are only named in an error).
const MAX_PARENT_LOCATOR: u32 = 64 * 1024;
/// BAT entries are read in 4 KiB pages of 512, and at most this many pages are kept.
const BAT_PAGE_ENTRIES: u64 = 512;
const BAT_CACHE_PAGES: usize = 256;

/// Payload block states (the low three bits of a BAT entry).
const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
const PAYLOAD_BLOCK_UNDEFINED: u64 = 1;
const PAYLOAD_BLOCK_ZERO: u64 = 2;
const PAYLOAD_BLOCK_UNMAPPED: u64 = 3;
const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u64 = 7;

/// A GUID as it is stored: the first three fields little-endian, the last eight bytes as is.
const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

const BAT_REGION: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const METADATA_REGION: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE_83_DATA: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);

/// Opens `file` as a vhdx container; `None` when its signature is not there.
pub fn open(_path: &Path, file: &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError> {
    if file.len() < 8 {
        return Ok(None);
    }
    let mut identifier = [0u8; IDENTIFIER_LEN];
    read(&**file, &mut identifier[..8], 0, "file type identifier")?;
    if &identifier[..8] != b"vhdxfile" {
        return Ok(None);
    }
    read(&**file, &mut identifier, 0, "file type identifier")?;

    // The log is found through the header as it is on disk; everything after the replay
    // (the headers again, the regions, the metadata, the BAT, the payload) through the
    // replayed view.
    let on_disk = current_header(&**file)?;
    let (patched, replayed) = replay_log(file, &on_disk)?;
    let patched = Arc::new(patched);
    let header = current_header(&*patched)?;
    let regions = region_table(&*patched)?;
    let reserved = reserved_ranges(&header, &regions, patched.len())?;
    let meta = metadata(&*patched, &regions.metadata)?;
    if meta.has_parent {
        return Err(unsupported(format!(
            "a differencing disk, whose blocks not present here are its parent's: {} (the \
             parent is not opened)",
            meta.parent
                .as_deref()
                .unwrap_or("no parent locator to name it")
        )));
    }
    let disk = Disk::new(patched, &meta, &regions.bat, reserved)?;

    let mut metadata = Vec::new();
    let creator = utf16z(&identifier[8..]);
    if !creator.is_empty() {
        metadata.push(("creator".to_string(), creator));
    }
    metadata.push(("block size".to_string(), meta.block_size.to_string()));
    metadata.push((
        "logical sector size".to_string(),
        meta.logical_sector.to_string(),
    ));
    metadata.push((
        "physical sector size".to_string(),
        meta.physical_sector.to_string(),
    ));
    metadata.push(("disk id".to_string(), format_guid(&meta.disk_id)));
    if let Some(log) = replayed {
        metadata.push(("log".to_string(), log));
    }
    let info = ContainerInfo {
        format: if meta.leave_allocated {
            "vhdx (fixed)".to_string()
        } else {
            "vhdx (dynamic)".to_string()
        },
        virtual_size: meta.virtual_size,
        files: Vec::new(),
        metadata,
        stored_hashes: Vec::new(),
    };
    Ok(Some(Opened {
        disk: Arc::new(disk),
        info,
    }))
}

fn damaged(what: impl Into<String>, offset: u64, why: impl Into<String>) -> ContainerError {
    super::damaged(FORMAT, what, offset, why)
}

fn unsupported(why: impl Into<String>) -> ContainerError {
    super::unsupported(FORMAT, why)
}

/// Reads `buf` at `offset`: a read past the end is a damaged (truncated) container, any
/// other failure an I/O error.
fn read(file: &dyn ReadAt, buf: &mut [u8], offset: u64, what: &str) -> Result<(), ContainerError> {
    super::read_or_truncated(FORMAT, file, buf, offset, what, || {
        format!(
            "it lies past the end of the file ({} bytes): truncated?",
            file.len()
        )
    })
}

fn guid_at(b: &[u8], at: usize) -> [u8; 16] {
    bytes_at(b, at)
}

/// The usual text form, `2DC27766-F623-4200-9D64-115E9BFD4A08`.
fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        le32(g, 0),
        le16(g, 4),
        le16(g, 6),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// UTF-16LE up to the first NUL (or the end), odd trailing byte ignored.
fn utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

// ---------------------------------------------------------------------------------------
// CRC-32C (Castagnoli). crc32fast computes the IEEE polynomial, which VHDX does not use.

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A running CRC-32C, so that a checksum can cover pieces read one after another.
#[derive(Clone, Copy)]
struct Crc32c(u32);

impl Crc32c {
    fn new() -> Crc32c {
        Crc32c(!0)
    }

    fn update(self, data: &[u8]) -> Crc32c {
        let mut crc = self.0;
        for &byte in data {
            crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
        }
        Crc32c(crc)
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

/// The CRC-32C of a structure whose checksum field is the four bytes at `field`, counted as
/// zero, as VHDX defines all of its checksums.
fn checksum_without_field(buf: &[u8], field: usize) -> u32 {
    Crc32c::new()
        .update(&buf[..field])
        .update(&[0; 4])
        .update(&buf[field + 4..])
        .finish()
}

// ---------------------------------------------------------------------------------------
// Headers

/// What the current header says (the GUIDs of writes are of no use to a reader).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    sequence: u64,
    log_guid: [u8; 16],
    log_version: u16,
    log_length: u32,
    log_offset: u64,
}

/// The header in `buf` if it is one: signature, checksum and version 1.
fn parse_header(buf: &[u8]) -> Option<Header> {
    if &buf[..4] != b"head" || checksum_without_field(buf, 4) != le32(buf, 4) {
        return None;
    }
    if le16(buf, 66) != 1 {
        return None;
    }
    Some(Header {
        sequence: le64(buf, 8),
        log_guid: guid_at(buf, 48),
        log_version: le16(buf, 64),
        log_length: le32(buf, 68),
        log_offset: le64(buf, 72),
    })
}

/// The current header: the valid one, or of two valid ones the one with the greater
/// sequence number. Two valid headers with the same number must be the same header (Disk2VHD
/// writes two identical ones); otherwise nothing says which is current.
fn current_header(file: &dyn ReadAt) -> Result<Header, ContainerError> {
    let mut bufs = [[0u8; HEADER_SIZE]; 2];
    for (buf, &offset) in bufs.iter_mut().zip(&HEADER_OFFSETS) {
        read(file, buf, offset, "header")?;
    }
    let parsed = [parse_header(&bufs[0]), parse_header(&bufs[1])];
    match parsed {
        [Some(a), Some(b)] => {
            if a.sequence > b.sequence {
                Ok(a)
            } else if b.sequence > a.sequence {
                Ok(b)
            } else if bufs[0] == bufs[1] {
                Ok(a)
            } else {
                Err(damaged(
                    "headers",
                    HEADER_OFFSETS[0],
                    format!(
                        "both headers are valid with the same sequence number {} but differ: \
                         which is current is unknown",
                        a.sequence
                    ),
                ))
            }
        }
        [Some(a), None] => Ok(a),
        [None, Some(b)] => Ok(b),
        [None, None] => Err(damaged(
            "headers",
            HEADER_OFFSETS[0],
            "neither header (at 64 KiB and 128 KiB) is valid (signature \"head\", CRC-32C, \
             version 1)",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The log, replayed in memory

/// Replays the log the header names, if it holds a sequence not yet applied: the container as
/// the replay leaves it, and a line for the report saying what was replayed.
fn replay_log(
    file: &Arc<dyn ReadAt>,
    header: &Header,
) -> Result<(Patched, Option<String>), ContainerError> {
    let file_len = file.len();
    let untouched = Patched {
        file: Arc::clone(file),
        file_len,
        len: file_len,
        overlay: Overlay::default(),
    };
    if header.log_guid == [0; 16] || header.log_length == 0 {
        return Ok((untouched, None));
    }
    if header.log_version != 0 {
        return Err(unsupported(format!(
            "the log is of version {} (only version 0 is defined) and holds entries not yet \
             applied",
            header.log_version
        )));
    }
    let (offset, len) = (header.log_offset, u64::from(header.log_length));
    if offset < HEADER_SECTION || offset % MIB != 0 || len % MIB != 0 {
        return Err(damaged(
            "log region",
            offset,
            format!(
                "the log ({len} bytes at {offset}) must lie past the first MiB, at a multiple \
                 of 1 MiB, and be a multiple of 1 MiB long"
            ),
        ));
    }
    if len > MAX_LOG_LEN {
        return Err(unsupported(format!(
            "the log to replay is {len} bytes long, more than the {MAX_LOG_LEN} this reader \
             replays in memory"
        )));
    }
    if offset.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(damaged(
            "log region",
            offset,
            format!("the log ({len} bytes) runs past the end of the file ({file_len} bytes)"),
        ));
    }
    let log = Log {
        file: &**file,
        offset,
        len,
        guid: header.log_guid,
    };
    let Some(sequence) = log.active_sequence()? else {
        return Ok((
            untouched,
            Some(
                "not empty, but holds no complete sequence of valid entries: nothing replayed"
                    .into(),
            ),
        ));
    };
    let mut patched = untouched;
    for entry in &sequence {
        if entry.flushed_file_offset > file_len {
            return Err(damaged(
                "log entry",
                offset + entry.pos,
                format!(
                    "log entry {} says the file was at least {} bytes long when it was written, \
                     but it is {file_len} bytes: truncated",
                    entry.sequence, entry.flushed_file_offset
                ),
            ));
        }
        let overlay = &mut patched.overlay;
        log.walk(entry, |descriptor, page| match (descriptor, page) {
            (Descriptor::Zero { offset, len }, _) => overlay.zero(offset, len),
            (Descriptor::Data { offset }, Some(page)) => overlay.page(offset, page),
            (Descriptor::Data { .. }, None) => {}
        })?;
        patched.len = patched.len.max(entry.last_file_offset);
    }
    patched.len = patched.len.max(patched.overlay.end());
    let (first, last) = (sequence[0].sequence, sequence[sequence.len() - 1].sequence);
    let note = if sequence.len() == 1 {
        format!("replayed 1 entry in memory (sequence number {first})")
    } else {
        format!(
            "replayed {} entries in memory (sequence numbers {first} to {last})",
            sequence.len()
        )
    };
    Ok((patched, Some(note)))
}

/// The log region: a circular buffer of 4 KiB sectors holding entries.
struct Log<'a> {
    file: &'a dyn ReadAt,
    offset: u64,
    len: u64,
    guid: [u8; 16],
}

/// A log entry's header, checked: where it is (its offset in the log) and what it says.
#[derive(Clone, Copy, Debug)]
struct Entry {
    pos: u64,
    sequence: u64,
    len: u64,
    tail: u64,
    descriptors: u32,
    flushed_file_offset: u64,
    last_file_offset: u64,
}

impl Entry {
    /// The sectors that hold the 64-byte header and the 32-byte descriptors.
    fn descriptor_sectors(&self) -> u64 {
        (u64::from(self.descriptors) + 2).div_ceil(128)
    }
}

/// One change a log entry makes to the file.
#[derive(Clone, Copy, Debug)]
enum Descriptor {
    /// `len` bytes at `offset` become zeros.
    Zero { offset: u64, len: u64 },
    /// The 4 KiB at `offset` become the entry's next data sector (with the descriptor's
    /// leading 8 and trailing 4 bytes).
    Data { offset: u64 },
}

impl Log<'_> {
    /// Reads the 4 KiB sector `index` sectors after log offset `pos`, wrapping at the end of
    /// the log as the buffer does.
    fn sector(&self, pos: u64, index: u64, buf: &mut [u8; 4096]) -> Result<(), ContainerError> {
        let at = (pos % self.len + (index % (self.len / LOG_SECTOR)) * LOG_SECTOR) % self.len;
        read(self.file, buf, self.offset + at, "log sector")
    }

    /// The entry header at `pos` if it is one of this log's: signature, log GUID, a length
    /// that is a whole number of sectors no longer than the log, room for its descriptors.
    fn entry_header(&self, pos: u64, sector: &[u8; 4096]) -> Option<Entry> {
        if &sector[..4] != b"loge" || guid_at(sector, 32) != self.guid {
            return None;
        }
        let entry = Entry {
            pos,
            len: u64::from(le32(sector, 8)),
            tail: u64::from(le32(sector, 12)),
            sequence: le64(sector, 16),
            descriptors: le32(sector, 24),
            flushed_file_offset: le64(sector, 48),
            last_file_offset: le64(sector, 56),
        };
        let sectors = entry.len / LOG_SECTOR;
        // Every sector of the entry is a descriptor or a data sector (checked by `walk`
        // before the checksum is computed): no room for sectors that would cost a read
        // without being checked first.
        let fits = entry.len % LOG_SECTOR == 0
            && entry.len > 0
            && entry.len <= self.len
            && entry.descriptor_sectors() <= sectors;
        (fits && entry.sequence != 0).then_some(entry)
    }

    /// Goes through `entry`'s descriptors in order, handing each to `visit` with its data
    /// sector reassembled (a data descriptor) and checking each as it goes: a signature, the
    /// entry's sequence number, 4 KiB alignment, a data sector that is one (signature `data`,
    /// the sequence number split around the data) inside the entry, and data sectors that
    /// fill the entry to its length. `false` at the first that fails, having visited those
    /// before it.
    fn walk(
        &self,
        entry: &Entry,
        mut visit: impl FnMut(Descriptor, Option<&[u8; 4096]>),
    ) -> Result<bool, ContainerError> {
        let total_sectors = entry.len / LOG_SECTOR;
        let mut descriptors = Box::new([0u8; 4096]);
        let mut loaded = u64::MAX;
        let mut data = Box::new([0u8; 4096]);
        let mut page = Box::new([0u8; 4096]);
        let mut data_sector = entry.descriptor_sectors();
        for index in 0..u64::from(entry.descriptors) {
            let at = 64 + 32 * index;
            let (sector, within) = (at / LOG_SECTOR, (at % LOG_SECTOR) as usize);
            if sector != loaded {
                self.sector(entry.pos, sector, &mut descriptors)?;
                loaded = sector;
            }
            let d = &descriptors[within..within + 32];
            if le64(d, 24) != entry.sequence {
                return Ok(false);
            }
            let offset = le64(d, 16);
            if offset % LOG_SECTOR != 0 {
                return Ok(false);
            }
            match &d[..4] {
                b"zero" => {
                    let len = le64(d, 8);
                    if len % LOG_SECTOR != 0 || offset.checked_add(len).is_none() {
                        return Ok(false);
                    }
                    visit(Descriptor::Zero { offset, len }, None);
                }
                b"desc" => {
                    if data_sector >= total_sectors || offset.checked_add(LOG_SECTOR).is_none() {
                        return Ok(false);
                    }
                    self.sector(entry.pos, data_sector, &mut data)?;
                    data_sector += 1;
                    let sequence =
                        (u64::from(le32(&data[..], 4)) << 32) | u64::from(le32(&data[..], 4092));
                    if &data[..4] != b"data" || sequence != entry.sequence {
                        return Ok(false);
                    }
                    page[..8].copy_from_slice(&d[8..16]);
                    page[8..4092].copy_from_slice(&data[8..4092]);
                    page[4092..].copy_from_slice(&d[4..8]);
                    visit(Descriptor::Data { offset }, Some(&page));
                }
                _ => return Ok(false),
            }
        }
        Ok(data_sector == total_sectors)
    }

    /// Whether the CRC-32C over the whole entry (its checksum field as zero) is the one it
    /// records.
    fn checksum_holds(&self, entry: &Entry, first: &[u8; 4096]) -> Result<bool, ContainerError> {
        let mut crc = Crc32c::new()
            .update(&first[..4])
            .update(&[0; 4])
            .update(&first[8..]);
        let mut sector = Box::new([0u8; 4096]);
        for index in 1..entry.len / LOG_SECTOR {
            self.sector(entry.pos, index, &mut sector)?;
            crc = crc.update(&sector[..]);
        }
        Ok(crc.finish() == le32(first, 4))
    }

    /// The entry at `pos` if it is a valid one: header, descriptors and data sectors, then
    /// the checksum. The cheap checks come first so that a run of sectors that merely look
    /// like entry headers costs a sector read each, not a read of the length they claim.
    fn entry(&self, pos: u64) -> Result<Option<Entry>, ContainerError> {
        let mut first = Box::new([0u8; 4096]);
        self.sector(pos, 0, &mut first)?;
        let Some(entry) = self.entry_header(pos, &first) else {
            return Ok(None);
        };
        if !self.walk(&entry, |_, _| {})? || !self.checksum_holds(&entry, &first)? {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// The active sequence, as MS-VHDX 2.3.3 finds it: going through the log from its
    /// start, consecutive valid entries with consecutive sequence numbers make a candidate
    /// sequence; a candidate counts when the Tail of its last entry points at one of its own
    /// entries (the entries before that one were already applied); of those that count, the
    /// one whose last sequence number is highest is active, from its tail entry on. `None`:
    /// nothing to replay. The walk ends: every step moves forward through the log, once
    /// round at most, and a sequence is never longer than the log.
    ///
    /// QEMU (block/vhdx-log.c) differs in two ways that matter only for logs QEMU does not
    /// write itself: it ignores Tail, and it ranks candidates by their first entry's
    /// sequence number, so that of a sequence wrapping round the end of the log it replays
    /// only the part found first, from the log's start.
    fn active_sequence(&self) -> Result<Option<Vec<Entry>>, ContainerError> {
        let sectors = self.len / LOG_SECTOR;
        let mut budget = 3 * sectors + 4;
        let mut active: Option<Vec<Entry>> = None;
        let mut pos = 0u64;
        while pos < self.len {
            budget = budget.checked_sub(1).ok_or_else(|| self.endless())?;
            let Some(first) = self.entry(pos)? else {
                pos += LOG_SECTOR;
                continue;
            };
            let mut candidate = vec![first];
            let mut span = first.len;
            loop {
                let last = candidate[candidate.len() - 1];
                let Some(next_sequence) = last.sequence.checked_add(1) else {
                    break;
                };
                if span >= self.len {
                    break;
                }
                budget = budget.checked_sub(1).ok_or_else(|| self.endless())?;
                match self.entry((pos + span) % self.len)? {
                    Some(next) if next.sequence == next_sequence && span + next.len <= self.len => {
                        span += next.len;
                        candidate.push(next);
                    }
                    _ => break,
                }
            }
            let head = candidate[candidate.len() - 1];
            if let Some(start) = candidate.iter().position(|e| e.pos == head.tail) {
                let better = active
                    .as_ref()
                    .is_none_or(|a| a[a.len() - 1].sequence < head.sequence);
                if better {
                    candidate.drain(..start);
                    active = Some(candidate);
                }
            }
            pos += span;
        }
        Ok(active)
    }

    fn endless(&self) -> ContainerError {
        damaged(
            "log",
            self.offset,
            "the search for the active log sequence did not end within the log's length",
        )
    }
}

/// The container file with the log's changes laid over it, longer than the file where the
/// log extended it (those bytes are zeros unless the log wrote them).
struct Patched {
    file: Arc<dyn ReadAt>,
    file_len: u64,
    len: u64,
    overlay: Overlay,
}

impl ReadAt for Patched {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.len, "vhdx file")?;
        let mut pos = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let (n, source) = self.overlay.at(pos, rest.len() as u64);
            let (now, later) = rest.split_at_mut(n as usize);
            match source {
                Source::Page(bytes) => now.copy_from_slice(bytes),
                Source::Zeros => now.fill(0),
                Source::File => {
                    let in_file = self.file_len.saturating_sub(pos).min(n) as usize;
                    let (from_file, past_end) = now.split_at_mut(in_file);
                    if !from_file.is_empty() {
                        self.file.read_exact_at(from_file, pos)?;
                    }
                    past_end.fill(0);
                }
            }
            pos += n;
            rest = later;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    /// Ranges of the file the log did not change are mapped from the file itself.
    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        let in_file = super::pieces_in_file(pieces, |pos, len| match self.overlay.at(pos, len) {
            (n, Source::File) if pos.checked_add(n)? <= self.file_len => Some((n, Some(pos))),
            (n, Source::Zeros) => Some((n, None)),
            _ => None,
        })?;
        self.file.map_pieces(&in_file, path)
    }
}

/// The log's changes: non-overlapping extents by file offset, each a 4 KiB page or a run of
/// zeros, applied in the log's order (a later change replaces what it covers of an earlier).
/// Everything is 4 KiB aligned, so a page is either wholly covered by a change or not at all.
#[derive(Default)]
struct Overlay {
    extents: BTreeMap<u64, Extent>,
}

enum Extent {
    Zeros(u64),
    Page(Box<[u8; 4096]>),
}

impl Extent {
    fn len(&self) -> u64 {
        match self {
            Extent::Zeros(len) => *len,
            Extent::Page(_) => LOG_SECTOR,
        }
    }
}

/// Where the bytes at a position come from.
enum Source<'a> {
    Page(&'a [u8]),
    Zeros,
    File,
}

impl Overlay {
    /// Takes `[start, end)` out of every extent, keeping what lies outside it.
    fn punch(&mut self, start: u64, end: u64) {
        let before = self
            .extents
            .range(..start)
            .next_back()
            .filter(|(&at, extent)| at + extent.len() > start)
            .map(|(&at, _)| at);
        let inside: Vec<u64> = self.extents.range(start..end).map(|(&at, _)| at).collect();
        for at in before.into_iter().chain(inside) {
            let Some(extent) = self.extents.remove(&at) else {
                continue;
            };
            let extent_end = at + extent.len();
            if let Extent::Zeros(_) = extent {
                if at < start {
                    self.extents.insert(at, Extent::Zeros(start - at));
                }
                if extent_end > end {
                    self.extents.insert(end, Extent::Zeros(extent_end - end));
                }
            }
        }
    }

    fn zero(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.punch(offset, offset + len);
        self.extents.insert(offset, Extent::Zeros(len));
    }

    fn page(&mut self, offset: u64, bytes: &[u8; 4096]) {
        self.punch(offset, offset + LOG_SECTOR);
        self.extents.insert(offset, Extent::Page(Box::new(*bytes)));
    }

    /// The end of the last extent: the log may write past the end of the file.
    fn end(&self) -> u64 {
        self.extents
            .iter()
            .next_back()
            .map_or(0, |(&at, extent)| at + extent.len())
    }

    /// How many of the `max` bytes at `pos` come from one source, and which.
    fn at(&self, pos: u64, max: u64) -> (u64, Source<'_>) {
        if let Some((&at, extent)) = self.extents.range(..=pos).next_back() {
            let end = at + extent.len();
            if end > pos {
                let n = (end - pos).min(max);
                return match extent {
                    Extent::Zeros(_) => (n, Source::Zeros),
                    Extent::Page(bytes) => {
                        let from = (pos - at) as usize;
                        (n, Source::Page(&bytes[from..from + n as usize]))
                    }
                };
            }
        }
        let n = self
            .extents
            .range(pos..)
            .next()
            .map_or(max, |(&next, _)| (next - pos).min(max));
        (n, Source::File)
    }
}

// ---------------------------------------------------------------------------------------
// Region table and metadata

/// A region: where it lies in the file.
#[derive(Clone, Copy, Debug)]
struct Region {
    offset: u64,
    len: u64,
}

struct Regions {
    bat: Region,
    metadata: Region,
}

/// The region table: the first copy whose signature and checksum hold. It must place one BAT
/// and one metadata region, and no region this reader does not know that is marked required.
fn region_table(file: &dyn ReadAt) -> Result<Regions, ContainerError> {
    let mut buf = vec![0u8; REGION_TABLE_SIZE];
    let mut found = None;
    for &offset in &REGION_TABLE_OFFSETS {
        read(file, &mut buf, offset, "region table")?;
        if &buf[..4] == b"regi" && checksum_without_field(&buf, 4) == le32(&buf, 4) {
            found = Some(offset);
            break;
        }
    }
    let Some(table_offset) = found else {
        return Err(damaged(
            "region table",
            REGION_TABLE_OFFSETS[0],
            "neither copy of the region table (at 192 KiB and 256 KiB) is valid (signature \
             \"regi\", CRC-32C)",
        ));
    };
    let count = le32(&buf, 8);
    if count > MAX_REGION_ENTRIES {
        return Err(damaged(
            "region table",
            table_offset,
            format!("{count} entries, more than the {MAX_REGION_ENTRIES} it can hold"),
        ));
    }
    let (mut bat, mut metadata) = (None, None);
    for index in 0..count as usize {
        let e = &buf[16 + 32 * index..48 + 32 * index];
        let id = guid_at(e, 0);
        let region = Region {
            offset: le64(e, 16),
            len: u64::from(le32(e, 24)),
        };
        let required = le32(e, 28) & 1 != 0;
        let slot = match id {
            BAT_REGION => &mut bat,
            METADATA_REGION => &mut metadata,
            _ if required => {
                return Err(unsupported(format!(
                    "the region {} is marked required and is not one this reader knows",
                    format_guid(&id)
                )))
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(damaged(
                "region table",
                table_offset,
                format!("the region {} is listed twice", format_guid(&id)),
            ));
        }
        if region.offset < HEADER_SECTION || region.offset % MIB != 0 || region.len % MIB != 0 {
            return Err(damaged(
                "region table",
                table_offset,
                format!(
                    "the region {} ({} bytes at {}) must lie past the first MiB, at a multiple \
                     of 1 MiB, and be a multiple of 1 MiB long",
                    format_guid(&id),
                    region.len,
                    region.offset
                ),
            ));
        }
        *slot = Some(region);
    }
    match (bat, metadata) {
        (Some(bat), Some(metadata)) => Ok(Regions { bat, metadata }),
        _ => Err(damaged(
            "region table",
            table_offset,
            "it does not place both the BAT and the metadata region",
        )),
    }
}

/// The ranges of the file no payload block may overlap (the header section, the log, the
/// BAT, the metadata region), checked to lie in the file and apart from each other.
fn reserved_ranges(
    header: &Header,
    regions: &Regions,
    file_len: u64,
) -> Result<Vec<(u64, u64, &'static str)>, ContainerError> {
    let mut ranges = vec![(0, HEADER_SECTION, "the header section")];
    if header.log_length != 0 {
        ranges.push((header.log_offset, u64::from(header.log_length), "the log"));
    }
    ranges.push((regions.bat.offset, regions.bat.len, "the BAT"));
    ranges.push((
        regions.metadata.offset,
        regions.metadata.len,
        "the metadata region",
    ));
    for (i, &(offset, len, what)) in ranges.iter().enumerate() {
        if offset.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(damaged(
                what,
                offset,
                format!("its {len} bytes run past the end of the file ({file_len} bytes)"),
            ));
        }
        for &(other, other_len, other_what) in &ranges[..i] {
            if offset < other + other_len && other < offset + len {
                return Err(damaged(
                    what,
                    offset,
                    format!("it overlaps {other_what} ({other_len} bytes at {other})"),
                ));
            }
        }
    }
    Ok(ranges)
}

/// What the metadata region says about the disk.
#[derive(Debug)]
struct Metadata {
    block_size: u32,
    leave_allocated: bool,
    has_parent: bool,
    virtual_size: u64,
    logical_sector: u32,
    physical_sector: u32,
    disk_id: [u8; 16],
    /// The parent's paths as its locator names them (a differencing disk).
    parent: Option<String>,
}

/// A metadata table entry: an item's place in the metadata region.
#[derive(Clone, Copy)]
struct Item {
    offset: u32,
    len: u32,
}

/// The metadata table and the items a reader needs, each checked.
fn metadata(file: &dyn ReadAt, region: &Region) -> Result<Metadata, ContainerError> {
    if region.len < METADATA_TABLE_SIZE as u64 {
        return Err(damaged(
            "metadata region",
            region.offset,
            format!("{} bytes, too short for its 64 KiB table", region.len),
        ));
    }
    let mut table = vec![0u8; METADATA_TABLE_SIZE];
    read(file, &mut table, region.offset, "metadata table")?;
    if &table[..8] != b"metadata" {
        return Err(damaged(
            "metadata table",
            region.offset,
            "its signature is not \"metadata\"",
        ));
    }
    let count = le16(&table, 10);
    if count > MAX_METADATA_ENTRIES {
        return Err(damaged(
            "metadata table",
            region.offset,
            format!("{count} entries, more than the {MAX_METADATA_ENTRIES} it can hold"),
        ));
    }
    let known = [
        FILE_PARAMETERS,
        VIRTUAL_DISK_SIZE,
        PAGE_83_DATA,
        LOGICAL_SECTOR_SIZE,
        PHYSICAL_SECTOR_SIZE,
        PARENT_LOCATOR,
    ];
    let mut items: [Option<Item>; 6] = [None; 6];
    for index in 0..usize::from(count) {
        let e = &table[32 + 32 * index..64 + 32 * index];
        let id = guid_at(e, 0);
        let item = Item {
            offset: le32(e, 16),
            len: le32(e, 20),
        };
        let required = le32(e, 24) & 4 != 0;
        let Some(slot) = known.iter().position(|k| *k == id) else {
            if required {
                return Err(unsupported(format!(
                    "the metadata item {} is marked required and is not one this reader knows",
                    format_guid(&id)
                )));
            }
            continue;
        };
        if items[slot].is_some() {
            return Err(damaged(
                "metadata table",
                region.offset,
                format!("the item {} is listed twice", format_guid(&id)),
            ));
        }
        if u64::from(item.offset) + u64::from(item.len) > region.len
            || (item.len != 0 && u64::from(item.offset) < METADATA_TABLE_SIZE as u64)
        {
            return Err(damaged(
                "metadata table",
                region.offset,
                format!(
                    "the item {} ({} bytes at {} in the region) lies outside the region's {} \
                     bytes past its table",
                    format_guid(&id),
                    item.len,
                    item.offset,
                    region.len
                ),
            ));
        }
        items[slot] = Some(item);
    }

    let value = |slot: usize, name: &str, min: u32| -> Result<Vec<u8>, ContainerError> {
        let Some(item) = items[slot] else {
            return Err(damaged(
                "metadata table",
                region.offset,
                format!("it has no {name} item"),
            ));
        };
        if item.len < min {
            return Err(damaged(
                "metadata item",
                region.offset + u64::from(item.offset),
                format!(
                    "the {name} item is {} bytes long, less than {min}",
                    item.len
                ),
            ));
        }
        let mut buf = vec![0u8; min as usize];
        read(file, &mut buf, region.offset + u64::from(item.offset), name)?;
        Ok(buf)
    };
    let params = value(0, "file parameters", 8)?;
    let size = value(1, "virtual disk size", 8)?;
    let page83 = value(2, "page 83 data", 16)?;
    let logical = value(3, "logical sector size", 4)?;
    let physical = value(4, "physical sector size", 4)?;

    let flags = le32(&params, 4);
    let mut meta = Metadata {
        block_size: le32(&params, 0),
        leave_allocated: flags & 1 != 0,
        has_parent: flags & 2 != 0,
        virtual_size: le64(&size, 0),
        logical_sector: le32(&logical, 0),
        physical_sector: le32(&physical, 0),
        disk_id: guid_at(&page83, 0),
        parent: None,
    };
    let bad = |why: String| damaged("metadata", region.offset, why);
    if !meta.block_size.is_power_of_two()
        || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&meta.block_size)
    {
        return Err(bad(format!(
            "the block size {} is not a power of 2 from 1 MiB to 256 MiB",
            meta.block_size
        )));
    }
    if meta.logical_sector != 512 && meta.logical_sector != 4096 {
        return Err(bad(format!(
            "the logical sector size {} is neither 512 nor 4096",
            meta.logical_sector
        )));
    }
    if meta.physical_sector != 512 && meta.physical_sector != 4096 {
        return Err(bad(format!(
            "the physical sector size {} is neither 512 nor 4096",
            meta.physical_sector
        )));
    }
    if meta.virtual_size > MAX_VIRTUAL_SIZE
        || meta.virtual_size % u64::from(meta.logical_sector) != 0
    {
        return Err(bad(format!(
            "the virtual disk size {} is not a multiple of the logical sector size {} up to \
             64 TiB",
            meta.virtual_size, meta.logical_sector
        )));
    }
    if meta.has_parent {
        if let Some(item) = items[5].filter(|i| i.len <= MAX_PARENT_LOCATOR) {
            let mut buf = vec![0u8; item.len as usize];
            read(
                file,
                &mut buf,
                region.offset + u64::from(item.offset),
                "parent locator",
            )?;
            meta.parent = Some(describe_parent(&buf));
        }
    }
    Ok(meta)
}

/// The parent's paths from a parent locator (key-value pairs of UTF-16LE strings), for the
/// error that refuses the differencing disk.
fn describe_parent(locator: &[u8]) -> String {
    if locator.len() < 20 {
        return "a parent locator too short to read".to_string();
    }
    let count = usize::from(le16(locator, 18));
    let string = |offset: u32, len: u16| -> Option<String> {
        let start = usize::try_from(offset).ok()?;
        let bytes = locator.get(start..start.checked_add(usize::from(len))?)?;
        Some(utf16z(bytes))
    };
    let mut paths = Vec::new();
    for index in 0..count {
        let Some(e) = locator.get(20 + 12 * index..32 + 12 * index) else {
            break;
        };
        let key = string(le32(e, 0), le16(e, 8));
        let value = string(le32(e, 4), le16(e, 10));
        if let (Some(key), Some(value)) = (key, value) {
            if matches!(
                key.as_str(),
                "relative_path" | "absolute_win32_path" | "volume_path"
            ) {
                paths.push(format!("{key} {value:?}"));
            }
        }
    }
    if paths.is_empty() {
        "its parent locator names no parent path".to_string()
    } else {
        format!("its parent is {}", paths.join(", "))
    }
}

// ---------------------------------------------------------------------------------------
// The virtual disk

/// The disk a VHDX holds: blocks found through the BAT, read from the replayed file.
struct Disk {
    file: Arc<Patched>,
    virtual_size: u64,
    block_size: u64,
    /// Payload blocks per sector bitmap block: the BAT has a sector bitmap entry after each
    /// run of this many payload entries.
    chunk_ratio: u64,
    bat: Region,
    /// Where no payload block may lie.
    reserved: Vec<(u64, u64, &'static str)>,
    /// BAT pages recently read, by page number.
    cache: Lru<u64, Arc<[u64]>>,
}

/// Where a block's bytes are.
enum Block {
    Zeros,
    At(u64),
}

impl Disk {
    fn new(
        file: Arc<Patched>,
        meta: &Metadata,
        bat: &Region,
        reserved: Vec<(u64, u64, &'static str)>,
    ) -> Result<Disk, ContainerError> {
        let block_size = u64::from(meta.block_size);
        let chunk_ratio = (1u64 << 23) * u64::from(meta.logical_sector) / block_size;
        let blocks = meta.virtual_size.div_ceil(block_size);
        let entries = if blocks == 0 {
            0
        } else {
            blocks + (blocks - 1) / chunk_ratio
        };
        if entries * 8 > bat.len {
            return Err(damaged(
                "BAT",
                bat.offset,
                format!(
                    "the region is {} bytes, too short for the {entries} entries of a {} byte \
                     disk in {block_size} byte blocks",
                    bat.len, meta.virtual_size
                ),
            ));
        }
        Ok(Disk {
            file,
            virtual_size: meta.virtual_size,
            block_size,
            chunk_ratio,
            bat: *bat,
            reserved,
            cache: Lru::new(BAT_CACHE_PAGES),
        })
    }

    /// The BAT entry at `index`, through the page cache.
    fn bat_entry(&self, index: u64) -> io::Result<u64> {
        let page_number = index / BAT_PAGE_ENTRIES;
        let slot = (index % BAT_PAGE_ENTRIES) as usize;
        let page = self.cache.get_or_load(page_number, || -> io::Result<_> {
            let mut bytes = vec![0u8; (BAT_PAGE_ENTRIES * 8) as usize];
            self.file.read_exact_at(
                &mut bytes,
                self.bat.offset + page_number * BAT_PAGE_ENTRIES * 8,
            )?;
            Ok(bytes.chunks_exact(8).map(|e| le64(e, 0)).collect())
        })?;
        Ok(page[slot])
    }

    /// Where payload block `block` is, its BAT entry checked.
    fn block(&self, block: u64) -> io::Result<Block> {
        let index = block + block / self.chunk_ratio;
        let entry = self.bat_entry(index)?;
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the vhdx container is damaged: BAT entry {index} (block {block} of the \
                     disk) {why}"
                ),
            )
        };
        match entry & 7 {
            PAYLOAD_BLOCK_NOT_PRESENT
            | PAYLOAD_BLOCK_UNDEFINED
            | PAYLOAD_BLOCK_ZERO
            | PAYLOAD_BLOCK_UNMAPPED => Ok(Block::Zeros),
            PAYLOAD_BLOCK_FULLY_PRESENT => {
                let offset = (entry >> 20) * MIB;
                let end = offset
                    .checked_add(self.block_size)
                    .filter(|&end| end <= self.file.len())
                    .ok_or_else(|| {
                        bad(format!(
                            "places the block at {offset}, past the end of the file ({} bytes)",
                            self.file.len()
                        ))
                    })?;
                for &(at, len, what) in &self.reserved {
                    if offset < at + len && at < end {
                        return Err(bad(format!("places the block at {offset}, inside {what}")));
                    }
                }
                Ok(Block::At(offset))
            }
            PAYLOAD_BLOCK_PARTIALLY_PRESENT => Err(bad(
                "says the block is partially present, which only a differencing disk may say"
                    .to_string(),
            )),
            state => Err(bad(format!("has the undefined state {state}"))),
        }
    }
}

impl ReadAt for Disk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.virtual_size, "vhdx disk")?;
        let mut pos = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let block = pos / self.block_size;
            let within = pos % self.block_size;
            let n = (self.block_size - within).min(rest.len() as u64) as usize;
            let (now, later) = rest.split_at_mut(n);
            match self.block(block)? {
                Block::Zeros => now.fill(0),
                Block::At(at) => self.file.read_exact_at(now, at + within)?,
            }
            pos += n as u64;
            rest = later;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.virtual_size
    }

    /// Files of the disk in present blocks are mapped where they lie in the file (payload
    /// blocks are 1 MiB aligned).
    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        let in_file = super::pieces_in_file(pieces, |pos, len| {
            if pos.checked_add(len)? > self.virtual_size {
                return None;
            }
            let within = pos % self.block_size;
            let n = (self.block_size - within).min(len);
            match self.block(pos / self.block_size).ok()? {
                Block::Zeros => Some((n, None)),
                Block::At(at) => Some((n, Some(at + within))),
            }
        })?;
        self.file.map_pieces(&in_file, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_known_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        let mut buf = *b"ab\x01\x02\x03\x04cd";
        let expected = {
            buf[2..6].fill(0);
            crc32c(&buf)
        };
        buf[2..6].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(checksum_without_field(&buf, 2), expected);
    }

    #[test]
    fn guids_are_stored_mixed_endian() {
        assert_eq!(
            BAT_REGION,
            [
                0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD,
                0x4A, 0x08
            ]
        );
        assert_eq!(
            format_guid(&METADATA_REGION),
            "8B7CA206-4790-4B9A-B8FE-575F050F886E"
        );
    }

    fn read_patched(overlay: Overlay, file: Vec<u8>, len: u64) -> Vec<u8> {
        let file_len = file.len() as u64;
        let patched = Patched {
            file: Arc::new(file),
            file_len,
            len,
            overlay,
        };
        let mut out = vec![0u8; len as usize];
        patched.read_exact_at(&mut out, 0).unwrap();
        // Odd reads agree with the whole.
        for (offset, n) in [(1u64, 4095usize), (4095, 2), (8191, 4098), (12287, 1)] {
            if offset + n as u64 <= len {
                let mut part = vec![0u8; n];
                patched.read_exact_at(&mut part, offset).unwrap();
                assert_eq!(part, out[offset as usize..offset as usize + n]);
            }
        }
        out
    }

    #[test]
    fn overlay_applies_changes_in_order() {
        let file = vec![0xEEu8; 6 * 4096];
        let mut overlay = Overlay::default();
        overlay.zero(0, 4 * 4096);
        overlay.page(4096, &[1u8; 4096]);
        overlay.zero(2 * 4096, 4096);
        overlay.page(2 * 4096, &[2u8; 4096]);
        overlay.page(7 * 4096, &[7u8; 4096]);
        overlay.zero(5 * 4096, 4096);
        overlay.page(5 * 4096, &[5u8; 4096]);
        overlay.zero(4096, 4096);
        assert_eq!(overlay.end(), 8 * 4096);
        let out = read_patched(overlay, file, 8 * 4096);
        let page = |i: usize| &out[i * 4096..(i + 1) * 4096];
        assert!(page(0).iter().all(|&b| b == 0));
        assert!(page(1).iter().all(|&b| b == 0));
        assert!(page(2).iter().all(|&b| b == 2));
        assert!(page(3).iter().all(|&b| b == 0));
        assert!(page(4).iter().all(|&b| b == 0xEE));
        assert!(page(5).iter().all(|&b| b == 5));
        assert!(page(6).iter().all(|&b| b == 0), "past the file: zeros");
        assert!(page(7).iter().all(|&b| b == 7));
    }

    #[test]
    fn a_zero_run_split_by_a_page_keeps_both_ends() {
        let mut overlay = Overlay::default();
        overlay.zero(0, 10 * 4096);
        overlay.page(4 * 4096, &[4u8; 4096]);
        overlay.zero(3 * 4096, 3 * 4096);
        overlay.page(5 * 4096, &[5u8; 4096]);
        let lens: Vec<(u64, u64)> = overlay
            .extents
            .iter()
            .map(|(&at, e)| (at / 4096, e.len() / 4096))
            .collect();
        assert_eq!(lens, [(0, 3), (3, 2), (5, 1), (6, 4)]);
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn parent_locator_paths_are_named() {
        let pairs = [
            ("parent_linkage", "{00000000-0000-0000-0000-000000000000}"),
            ("relative_path", r"..\base.vhdx"),
            ("absolute_win32_path", r"C:\vms\base.vhdx"),
        ];
        let mut locator = vec![0u8; 20];
        locator[18..20].copy_from_slice(&(pairs.len() as u16).to_le_bytes());
        locator.resize(20 + 12 * pairs.len(), 0);
        let mut strings = Vec::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            let (k, v) = (utf16(k), utf16(v));
            let key_at = locator.len() + strings.len();
            strings.extend_from_slice(&k);
            let value_at = locator.len() + strings.len();
            strings.extend_from_slice(&v);
            let e = &mut locator[20 + 12 * i..32 + 12 * i];
            e[0..4].copy_from_slice(&(key_at as u32).to_le_bytes());
            e[4..8].copy_from_slice(&(value_at as u32).to_le_bytes());
            e[8..10].copy_from_slice(&(k.len() as u16).to_le_bytes());
            e[10..12].copy_from_slice(&(v.len() as u16).to_le_bytes());
        }
        locator.extend_from_slice(&strings);
        let text = describe_parent(&locator);
        assert!(text.contains(r#"relative_path "..\\base.vhdx""#), "{text}");
        assert!(
            text.contains(r#"absolute_win32_path "C:\\vms\\base.vhdx""#),
            "{text}"
        );
        assert!(!text.contains("parent_linkage"), "{text}");
        // Hostile: a count beyond the buffer, offsets past its end.
        let mut hostile = locator.clone();
        hostile[18..20].copy_from_slice(&u16::MAX.to_le_bytes());
        hostile[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = describe_parent(&hostile);
        assert_eq!(
            describe_parent(&[0u8; 3]),
            "a parent locator too short to read"
        );
    }

    /// A disk whose BAT (at 1 MiB, 2 MiB long) maps blocks onto the 1 MiB at 3 MiB.
    fn synthetic_disk(virtual_size: u64, present: &[u64]) -> Disk {
        let mut file = vec![0u8; 4 * MIB as usize];
        file[3 * MIB as usize..].fill(0x5A);
        for &block in present {
            let index = (block + block / 4096) as usize;
            let at = MIB as usize + 8 * index;
            file[at..at + 8]
                .copy_from_slice(&(3 << 20 | PAYLOAD_BLOCK_FULLY_PRESENT).to_le_bytes());
        }
        let len = file.len() as u64;
        let patched = Arc::new(Patched {
            file: Arc::new(file),
            file_len: len,
            len,
            overlay: Overlay::default(),
        });
        let meta = Metadata {
            block_size: MIB as u32,
            leave_allocated: false,
            has_parent: false,
            virtual_size,
            logical_sector: 512,
            physical_sector: 512,
            disk_id: [0; 16],
            parent: None,
        };
        let bat = Region {
            offset: MIB,
            len: 2 * MIB,
        };
        let reserved = vec![(0, MIB, "the header section"), (MIB, 2 * MIB, "the BAT")];
        Disk::new(patched, &meta, &bat, reserved).unwrap()
    }

    #[test]
    fn bat_pages_are_read_on_demand_and_kept_boundedly() {
        // 300 BAT pages' worth of 1 MiB blocks (with a sector bitmap entry every 4097).
        let blocks = 300 * 512 - 300 * 512 / 4097;
        let last = blocks - 1;
        let disk = synthetic_disk(blocks * MIB, &[0, 4096, last]);
        let mut byte = [0u8; 1];
        for page in 0..300u64 {
            let block = (page * 512).min(last);
            disk.read_exact_at(&mut byte, block * MIB + 7).unwrap();
            let present = [0, 4096, last].contains(&block);
            assert_eq!(byte[0], if present { 0x5A } else { 0 }, "block {block}");
        }
        assert!(disk.cache.len() <= BAT_CACHE_PAGES);
        // Block 4095 is the last of the first chunk, 4096 the first of the second: the
        // entry between them (index 4096) is the chunk's sector bitmap entry.
        let mut two = [0u8; 2];
        disk.read_exact_at(&mut two, 4096 * MIB - 1).unwrap();
        assert_eq!(two, [0, 0x5A]);
        assert!(disk.read_exact_at(&mut two, blocks * MIB - 1).is_err());
    }

    #[test]
    fn a_bat_too_short_for_the_disk_is_damaged() {
        let file: Arc<dyn ReadAt> = Arc::new(vec![0u8; 4 * MIB as usize]);
        let patched = Arc::new(Patched {
            file,
            file_len: 4 * MIB,
            len: 4 * MIB,
            overlay: Overlay::default(),
        });
        let meta = Metadata {
            block_size: MIB as u32,
            leave_allocated: false,
            has_parent: false,
            virtual_size: 1 << 40,
            logical_sector: 4096,
            physical_sector: 4096,
            disk_id: [0; 16],
            parent: None,
        };
        let bat = Region {
            offset: MIB,
            len: MIB,
        };
        assert!(matches!(
            Disk::new(patched, &meta, &bat, Vec::new()),
            Err(ContainerError::Damaged { .. })
        ));
    }

    fn header(sequence: u64) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        h[..4].copy_from_slice(b"head");
        h[8..16].copy_from_slice(&sequence.to_le_bytes());
        h[66..68].copy_from_slice(&1u16.to_le_bytes());
        h[68..72].copy_from_slice(&(MIB as u32).to_le_bytes());
        h[72..80].copy_from_slice(&MIB.to_le_bytes());
        let crc = checksum_without_field(&h, 4);
        h[4..8].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn file_with_headers(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut file = vec![0u8; 192 * 1024];
        file[64 * 1024..64 * 1024 + HEADER_SIZE].copy_from_slice(a);
        file[128 * 1024..128 * 1024 + HEADER_SIZE].copy_from_slice(b);
        file
    }

    #[test]
    fn the_current_header_is_the_valid_one_with_the_greater_sequence() {
        let f = file_with_headers(&header(5), &header(6));
        assert_eq!(current_header(&f).unwrap().sequence, 6);
        let f = file_with_headers(&header(9), &header(6));
        assert_eq!(current_header(&f).unwrap().sequence, 9);
        let mut broken = header(9);
        broken[100] ^= 1;
        let f = file_with_headers(&broken, &header(6));
        assert_eq!(current_header(&f).unwrap().sequence, 6);
        let f = file_with_headers(&header(7), &header(7));
        assert_eq!(current_header(&f).unwrap().sequence, 7);
        let mut other = header(7);
        other[200] = 1;
        let crc = checksum_without_field(&other, 4);
        other[4..8].copy_from_slice(&crc.to_le_bytes());
        let f = file_with_headers(&header(7), &other);
        assert!(matches!(
            current_header(&f),
            Err(ContainerError::Damaged { .. })
        ));
        let f = file_with_headers(&broken, &broken);
        assert!(matches!(
            current_header(&f),
            Err(ContainerError::Damaged { .. })
        ));
    }
}
