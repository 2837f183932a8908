//! Partition tables, read in place and never trusted: a GPT (its header and entry array
//! checked by CRC32, the backup used when the primary is damaged), an MBR with the EBR chain
//! of its extended partitions, or neither (a volume image, or bytes that are not a disk).
//!
//! Evidence is hostile, so everything read is bounded: at most [`MAX_GPT_ENTRIES`] GPT entries
//! and [`MAX_GPT_ENTRY_ARRAY`] bytes of entry array, at most [`MAX_EBRS`] EBRs (a chain that
//! comes back to an EBR already read stops there), and every sector number is multiplied and
//! added with checks. What is odd but readable (a partition past the end of the image, a
//! damaged backup, a hybrid MBR) is kept and told in [`PartitionTable::notes`]; only a GPT
//! whose two copies are both unusable, or an unreadable first sector, is an error.

use std::fmt;
use std::io;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::ReadAt;

/// The most GPT entries read from one entry array (the usual array has 128).
pub const MAX_GPT_ENTRIES: u32 = 4096;
/// The most bytes of GPT entry array read (the usual array is 16 KiB).
pub const MAX_GPT_ENTRY_ARRAY: u64 = 1 << 20;
/// The most EBRs followed, over all extended partitions of one MBR.
pub const MAX_EBRS: usize = 256;
/// The most overlap notes written; more are counted in one last note.
const MAX_OVERLAP_NOTES: usize = 8;

/// The logical sector sizes a GPT is looked for with, in this order.
const GPT_SECTOR_SIZES: [u32; 2] = [512, 4096];
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// The size of the header fields of GPT revision 1.0.
const GPT_HEADER_MIN: u32 = 92;
/// Where the header CRC field is, zeroed while the CRC is computed.
const GPT_HEADER_CRC_FIELD: std::ops::Range<usize> = 16..20;
const MBR_TABLE: usize = 446;
const MBR_DISK_SIGNATURE: usize = 440;
const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// The protective MBR entry of a GPT disk.
const PROTECTIVE_TYPE: u8 = 0xEE;

/// What a disk's partition table says, and what was odd about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTable {
    pub scheme: Scheme,
    /// The logical sector size the table was read with (512 when there is no table).
    pub sector_size: u32,
    /// In table order: GPT entries by index; MBR primaries by slot, then the logical
    /// partitions in chain order.
    pub partitions: Vec<Partition>,
    /// Problems found, in plain words (a damaged primary GPT, a partition past the end of the
    /// image, a looping EBR chain).
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Gpt {
        disk_guid: [u8; 16],
        /// The primary header or its entries were damaged: what is listed is the backup's.
        backup_used: bool,
    },
    Mbr {
        disk_signature: u32,
    },
    /// No partition table: the image is a volume image, or unknown.
    None,
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as Linux and sfdisk number them: a GPT entry's index + 1; an MBR primary's
    /// slot (1-4); logical partitions 5, 6, ... in chain order.
    pub number: u32,
    /// From the start of the disk, in bytes.
    pub offset: u64,
    /// In bytes, cut to what the image holds (0 for a partition that starts past its end).
    pub size: u64,
    /// In bytes, as the table records it.
    pub recorded_size: u64,
    pub kind: PartitionKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionKind {
    Gpt {
        type_guid: [u8; 16],
        unique_guid: [u8; 16],
        /// UTF-16LE, up to 36 units, up to the first NUL; unpaired surrogates replaced.
        name: String,
        attributes: u64,
    },
    Mbr {
        type_byte: u8,
        /// Found through an EBR chain.
        logical: bool,
        /// The status byte is 0x80.
        bootable: bool,
    },
}

impl Partition {
    /// An MBR extended partition: the container of logical partitions, not a volume.
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, PartitionKind::Mbr { type_byte, .. } if is_extended_type(type_byte))
    }

    /// The first byte after what the image holds of the partition.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }
}

/// What a GPT copy has wrong with it. `Display` is the plain-words reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GptProblem {
    /// The header's sector cannot be read (past the end of the image, or an I/O error).
    Unreadable {
        lba: u64,
        error: String,
    },
    NoSignature {
        lba: u64,
    },
    HeaderSize {
        lba: u64,
        size: u32,
        sector_size: u32,
    },
    HeaderCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// The header says it is at another sector than where it was read.
    WrongLba {
        lba: u64,
        stored: u64,
    },
    UsableRange {
        lba: u64,
        first: u64,
        last: u64,
    },
    EntrySize {
        lba: u64,
        size: u32,
    },
    TooManyEntries {
        lba: u64,
        count: u32,
        entry_size: u32,
    },
    EntriesOutside {
        entries_lba: u64,
        bytes: u64,
        disk_len: u64,
    },
    EntriesUnreadable {
        entries_lba: u64,
        error: String,
    },
    EntriesCrc {
        entries_lba: u64,
        stored: u32,
        computed: u32,
    },
}

impl GptProblem {
    /// Which part of the copy is damaged: its header or its entry array.
    pub fn part(&self) -> &'static str {
        match self {
            GptProblem::EntriesOutside { .. }
            | GptProblem::EntriesUnreadable { .. }
            | GptProblem::EntriesCrc { .. } => "entry array",
            _ => "header",
        }
    }
}

impl fmt::Display for GptProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptProblem::Unreadable { lba, error } => {
                write!(f, "sector {lba} cannot be read: {error}")
            }
            GptProblem::NoSignature { lba } => {
                write!(f, "no \"EFI PART\" signature at sector {lba}")
            }
            GptProblem::HeaderSize {
                size, sector_size, ..
            } => write!(
                f,
                "header size {size} is outside {GPT_HEADER_MIN} to {sector_size} bytes"
            ),
            GptProblem::HeaderCrc {
                stored, computed, ..
            } => write!(
                f,
                "CRC mismatch: stored 0x{stored:08X}, computed 0x{computed:08X}"
            ),
            GptProblem::WrongLba { lba, stored } => write!(
                f,
                "the header read at sector {lba} says it is at sector {stored}"
            ),
            GptProblem::UsableRange { first, last, .. } => write!(
                f,
                "first usable sector {first} is after last usable sector {last}"
            ),
            GptProblem::EntrySize { size, .. } => {
                write!(f, "entry size {size} is not 128 bytes times a power of two")
            }
            GptProblem::TooManyEntries {
                count, entry_size, ..
            } => write!(
                f,
                "{count} entries of {entry_size} bytes, more than the {MAX_GPT_ENTRIES} entries \
                 and {MAX_GPT_ENTRY_ARRAY} bytes read"
            ),
            GptProblem::EntriesOutside {
                entries_lba,
                bytes,
                disk_len,
            } => write!(
                f,
                "the entry array at sector {entries_lba} ({bytes} bytes) lies past the end of \
                 the image ({disk_len} bytes)"
            ),
            GptProblem::EntriesUnreadable { entries_lba, error } => write!(
                f,
                "the entry array at sector {entries_lba} cannot be read: {error}"
            ),
            GptProblem::EntriesCrc {
                entries_lba,
                stored,
                computed,
            } => write!(
                f,
                "entry array CRC mismatch at sector {entries_lba}: stored 0x{stored:08X}, \
                 computed 0x{computed:08X}"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("the image is {len} bytes, shorter than one 512-byte sector")]
    TooSmall { len: u64 },
    #[error("cannot read {len} bytes at offset {offset}: {source}")]
    Unreadable {
        offset: u64,
        len: usize,
        #[source]
        source: io::Error,
    },
    #[error(
        "no usable GPT ({sector_size}-byte sectors): the primary {} at sector 1 is damaged \
         ({primary}), and so is the backup {} at sector {backup_lba} ({backup})",
        .primary.part(),
        .backup.part()
    )]
    GptUnusable {
        sector_size: u32,
        backup_lba: u64,
        primary: GptProblem,
        backup: GptProblem,
    },
    #[error(
        "the protective MBR (type 0xEE) announces a GPT, but there is no GPT header at \
         sector 1 or at the last sector, for 512- or 4096-byte sectors"
    )]
    GptMissing,
}

/// A file system, by the signature of its boot sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileSystem {
    Ntfs,
    BitLocker,
    Fat,
    ExFat,
    Refs,
    Other,
}

impl FileSystem {
    /// By the signature of a volume's first sector: the OEM name at byte 3 ("NTFS    ",
    /// "-FVE-FS-", "EXFAT   ", "ReFS"), or a FAT type string at 0x36 (FAT12/16) or 0x52 (FAT32).
    pub fn identify(boot_sector: &[u8]) -> FileSystem {
        let at = |offset: usize, signature: &[u8]| {
            boot_sector.get(offset..offset + signature.len()) == Some(signature)
        };
        if at(3, b"NTFS    ") {
            FileSystem::Ntfs
        } else if at(3, b"-FVE-FS-") {
            FileSystem::BitLocker
        } else if at(3, b"EXFAT   ") {
            FileSystem::ExFat
        } else if at(3, b"ReFS") {
            FileSystem::Refs
        } else if at(0x36, b"FAT") || at(0x52, b"FAT32   ") {
            FileSystem::Fat
        } else {
            FileSystem::Other
        }
    }
}

impl fmt::Display for FileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileSystem::Ntfs => "NTFS",
            FileSystem::BitLocker => "BitLocker",
            FileSystem::Fat => "FAT",
            FileSystem::ExFat => "exFAT",
            FileSystem::Refs => "ReFS",
            FileSystem::Other => "unknown",
        })
    }
}

/// A GUID as Windows writes it, upper case, without braces: the first three fields little
/// endian, the last eight bytes in order ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7").
pub fn format_guid(raw: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let d2 = u16::from_le_bytes([raw[4], raw[5]]);
    let d3 = u16::from_le_bytes([raw[6], raw[7]]);
    format!(
        "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]
    )
}

/// Reads the partition table of a disk image: a GPT (512- or 4096-byte sectors), else an
/// MBR, else none. A volume image (sector 0 a file system boot sector) has none, even though
/// its boot sector ends in 0x55AA as an MBR does.
pub fn read_partition_table(disk: &dyn ReadAt) -> Result<PartitionTable, PartitionError> {
    let len = disk.len();
    if len < 512 {
        return Err(PartitionError::TooSmall { len });
    }
    let mut sector0 = [0u8; 512];
    read(disk, &mut sector0, 0)?;
    let mbr = Mbr::parse(&sector0);

    // A primary GPT header: "EFI PART" at LBA 1. The protective MBR is only a hint.
    for sector_size in GPT_SECTOR_SIZES {
        let ss = u64::from(sector_size);
        if len / ss < 2 {
            continue;
        }
        let mut signature = [0u8; 8];
        read(disk, &mut signature, ss)?;
        if &signature == GPT_SIGNATURE {
            return read_gpt(disk, sector_size, mbr.as_ref(), Primary::Present);
        }
    }

    let mut notes = Vec::new();
    if let Some(fs) = volume_boot_sector(&sector0, mbr.as_ref()) {
        notes.push(format!(
            "sector 0 is a {fs} boot sector: the image is a volume, not a partitioned disk"
        ));
        return Ok(no_table(notes));
    }

    // No primary header: a backup alone, only where the protective MBR says there is a GPT
    // (an MBR disk that once had a GPT can keep its stale backup at the end).
    if mbr.as_ref().is_some_and(Mbr::is_protective) {
        let mut found = None;
        for sector_size in GPT_SECTOR_SIZES {
            match read_gpt(disk, sector_size, mbr.as_ref(), Primary::Missing) {
                Ok(table) => return Ok(table),
                Err(PartitionError::GptUnusable {
                    backup: GptProblem::NoSignature { .. } | GptProblem::Unreadable { .. },
                    ..
                }) => {}
                Err(err) => {
                    found.get_or_insert(err);
                }
            }
        }
        return Err(found.unwrap_or(PartitionError::GptMissing));
    }

    let Some(mbr) = mbr else {
        notes.push(
            "no partition table: sector 0 has no 0x55AA signature and there is no GPT header"
                .into(),
        );
        return Ok(no_table(notes));
    };
    if let Some((slot, status)) = mbr.bad_status() {
        notes.push(format!(
            "no partition table: sector 0 ends in 0x55AA, but the status byte of MBR slot {slot} \
             is 0x{status:02X} (only 0x00 and 0x80 are valid)"
        ));
        return Ok(no_table(notes));
    }
    Ok(read_mbr(disk, &mbr))
}

fn no_table(notes: Vec<String>) -> PartitionTable {
    PartitionTable {
        scheme: Scheme::None,
        sector_size: 512,
        partitions: Vec::new(),
        notes,
    }
}

fn read(disk: &dyn ReadAt, buf: &mut [u8], offset: u64) -> Result<(), PartitionError> {
    disk.read_exact_at(buf, offset)
        .map_err(|source| PartitionError::Unreadable {
            offset,
            len: buf.len(),
            source,
        })
}

/// Which file system sector 0 is the boot sector of, if the image is a volume. A FAT
/// signature alone (at 0x36 or 0x52, inside the area GRUB and others keep from an older boot
/// sector) does not outweigh a plausible partition table.
fn volume_boot_sector(sector0: &[u8; 512], mbr: Option<&Mbr>) -> Option<FileSystem> {
    match FileSystem::identify(sector0) {
        FileSystem::Other => None,
        FileSystem::Fat if mbr.is_some_and(Mbr::is_plausible) => None,
        fs => Some(fs),
    }
}

// ---------------------------------------------------------------------------------------------
// GPT

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct GptHeaderRaw {
    signature: [u8; 8],
    revision: U32,
    header_size: U32,
    header_crc: U32,
    reserved: U32,
    my_lba: U64,
    alternate_lba: U64,
    first_usable: U64,
    last_usable: U64,
    disk_guid: [u8; 16],
    entries_lba: U64,
    entry_count: U32,
    entry_size: U32,
    entries_crc: U32,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct GptEntryRaw {
    type_guid: [u8; 16],
    unique_guid: [u8; 16],
    first_lba: U64,
    last_lba: U64,
    attributes: U64,
    name: [[u8; 2]; 36],
}

/// A GPT header that passed its checks.
#[derive(Clone, Copy, Debug)]
struct GptHeader {
    lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: [u8; 16],
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

/// One GPT copy whose header and entry array passed their checks.
struct GptCopy {
    header: GptHeader,
    entries: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Primary {
    /// "EFI PART" is at LBA 1.
    Present,
    /// Not there: only the backup is looked for.
    Missing,
}

fn read_gpt_header(disk: &dyn ReadAt, sector_size: u32, lba: u64) -> Result<GptHeader, GptProblem> {
    let ss = u64::from(sector_size);
    let unreadable = |error: String| GptProblem::Unreadable { lba, error };
    let offset = lba
        .checked_mul(ss)
        .ok_or_else(|| unreadable("the sector number overflows".into()))?;
    let mut sector = vec![0u8; sector_size as usize];
    disk.read_exact_at(&mut sector, offset)
        .map_err(|err| unreadable(err.to_string()))?;
    let Ok((raw, _)) = GptHeaderRaw::ref_from_prefix(&sector) else {
        return Err(unreadable("the sector is shorter than a GPT header".into()));
    };
    if &raw.signature != GPT_SIGNATURE {
        return Err(GptProblem::NoSignature { lba });
    }
    let size = raw.header_size.get();
    if size < GPT_HEADER_MIN || size > sector_size {
        return Err(GptProblem::HeaderSize {
            lba,
            size,
            sector_size,
        });
    }
    let stored = raw.header_crc.get();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sector[..GPT_HEADER_CRC_FIELD.start]);
    hasher.update(&[0; 4]);
    hasher.update(&sector[GPT_HEADER_CRC_FIELD.end..size as usize]);
    let computed = hasher.finalize();
    if stored != computed {
        return Err(GptProblem::HeaderCrc {
            lba,
            stored,
            computed,
        });
    }
    if raw.my_lba.get() != lba {
        return Err(GptProblem::WrongLba {
            lba,
            stored: raw.my_lba.get(),
        });
    }
    let (first, last) = (raw.first_usable.get(), raw.last_usable.get());
    if first > last {
        return Err(GptProblem::UsableRange { lba, first, last });
    }
    let entry_size = raw.entry_size.get();
    if entry_size < 128 || !entry_size.is_power_of_two() {
        return Err(GptProblem::EntrySize {
            lba,
            size: entry_size,
        });
    }
    let count = raw.entry_count.get();
    if count > MAX_GPT_ENTRIES || u64::from(count) * u64::from(entry_size) > MAX_GPT_ENTRY_ARRAY {
        return Err(GptProblem::TooManyEntries {
            lba,
            count,
            entry_size,
        });
    }
    Ok(GptHeader {
        lba,
        alternate_lba: raw.alternate_lba.get(),
        first_usable: first,
        last_usable: last,
        disk_guid: raw.disk_guid,
        entries_lba: raw.entries_lba.get(),
        entry_count: count,
        entry_size,
        entries_crc: raw.entries_crc.get(),
    })
}

fn read_gpt_entries(
    disk: &dyn ReadAt,
    sector_size: u32,
    header: &GptHeader,
) -> Result<Vec<u8>, GptProblem> {
    let entries_lba = header.entries_lba;
    // Both at most MAX_GPT_ENTRY_ARRAY (checked with the header).
    let bytes = u64::from(header.entry_count) * u64::from(header.entry_size);
    let outside = GptProblem::EntriesOutside {
        entries_lba,
        bytes,
        disk_len: disk.len(),
    };
    let offset = entries_lba
        .checked_mul(u64::from(sector_size))
        .ok_or_else(|| outside.clone())?;
    if offset.checked_add(bytes).is_none_or(|end| end > disk.len()) {
        return Err(outside);
    }
    let mut entries = vec![0u8; bytes as usize];
    disk.read_exact_at(&mut entries, offset)
        .map_err(|err| GptProblem::EntriesUnreadable {
            entries_lba,
            error: err.to_string(),
        })?;
    let computed = crc32fast::hash(&entries);
    if computed != header.entries_crc {
        return Err(GptProblem::EntriesCrc {
            entries_lba,
            stored: header.entries_crc,
            computed,
        });
    }
    Ok(entries)
}

fn read_gpt_copy(disk: &dyn ReadAt, sector_size: u32, lba: u64) -> Result<GptCopy, GptProblem> {
    let header = read_gpt_header(disk, sector_size, lba)?;
    let entries = read_gpt_entries(disk, sector_size, &header)?;
    Ok(GptCopy { header, entries })
}

fn read_gpt(
    disk: &dyn ReadAt,
    sector_size: u32,
    mbr: Option<&Mbr>,
    primary: Primary,
) -> Result<PartitionTable, PartitionError> {
    let ss = u64::from(sector_size);
    let sectors = disk.len() / ss;
    let last_lba = sectors.saturating_sub(1);
    let mut notes = Vec::new();

    let (header_of_primary, primary_result) = match primary {
        Primary::Present => match read_gpt_header(disk, sector_size, 1) {
            Ok(header) => (
                Some(header),
                read_gpt_entries(disk, sector_size, &header)
                    .map(|entries| GptCopy { header, entries }),
            ),
            Err(problem) => (None, Err(problem)),
        },
        Primary::Missing => (None, Err(GptProblem::NoSignature { lba: 1 })),
    };

    let (copy, backup_used) = match primary_result {
        Ok(copy) => {
            check_backup(disk, sector_size, &copy, last_lba, &mut notes);
            (copy, false)
        }
        Err(primary_problem) => {
            // The backup is at the last sector; a primary header that is sound (only its
            // entries are damaged) may place it elsewhere (an image of an enlarged disk).
            let mut candidates = vec![last_lba];
            if let Some(header) = header_of_primary {
                if header.alternate_lba != last_lba && header.alternate_lba < sectors {
                    candidates.push(header.alternate_lba);
                }
            }
            let mut first_problem = None;
            let mut found = None;
            for lba in candidates {
                if lba < 2 {
                    continue;
                }
                match read_gpt_copy(disk, sector_size, lba) {
                    Ok(copy) => {
                        found = Some(copy);
                        break;
                    }
                    Err(problem) => {
                        first_problem.get_or_insert(problem);
                    }
                }
            }
            let Some(copy) = found else {
                return Err(PartitionError::GptUnusable {
                    sector_size,
                    backup_lba: last_lba,
                    primary: primary_problem,
                    backup: first_problem.unwrap_or(GptProblem::Unreadable {
                        lba: last_lba,
                        error: "the image has no sector after the primary header".into(),
                    }),
                });
            };
            let what = match primary_problem {
                GptProblem::NoSignature { .. } => {
                    "is missing (no \"EFI PART\" signature at sector 1)".to_string()
                }
                ref problem => format!("is damaged ({problem})"),
            };
            notes.push(format!(
                "the primary GPT {} {what}; the backup header at sector {} was used",
                primary_problem.part(),
                copy.header.lba
            ));
            (copy, true)
        }
    };

    let header = copy.header;
    if header.last_usable >= sectors {
        notes.push(format!(
            "the GPT's last usable sector is {}, but the image holds {sectors} sectors of \
             {sector_size} bytes: it may be truncated",
            header.last_usable
        ));
    }
    match mbr {
        None => notes.push(
            "sector 0 holds no MBR (no 0x55AA signature), so no protective MBR for the GPT".into(),
        ),
        Some(mbr) if !mbr.is_protective() => notes.push(
            "the MBR in sector 0 has no protective entry (type 0xEE) for the GPT; the GPT was used"
                .into(),
        ),
        Some(mbr) => {
            let others = mbr
                .entries
                .iter()
                .filter(|e| !e.is_empty() && e.kind != PROTECTIVE_TYPE)
                .count();
            if others > 0 {
                notes.push(format!(
                    "the MBR also lists {others} partition(s) beside its protective entry (a \
                     hybrid MBR); the GPT was used"
                ));
            }
        }
    }

    let mut partitions = Vec::new();
    let entry_size = header.entry_size as usize;
    for (index, chunk) in copy.entries.chunks_exact(entry_size).enumerate() {
        let Ok((entry, _)) = GptEntryRaw::ref_from_prefix(chunk) else {
            continue;
        };
        if entry.type_guid == [0; 16] {
            continue;
        }
        let number = index as u32 + 1;
        let (first, last) = (entry.first_lba.get(), entry.last_lba.get());
        if last < first {
            notes.push(format!(
                "GPT entry {number} ends at sector {last}, before it starts (sector {first}); \
                 it was left out"
            ));
            continue;
        }
        let span = (last - first)
            .checked_add(1)
            .and_then(|n| n.checked_mul(ss))
            .zip(first.checked_mul(ss));
        let Some((recorded_size, offset)) = span else {
            notes.push(format!(
                "GPT entry {number} (sectors {first} to {last}) is beyond any byte offset; it \
                 was left out"
            ));
            continue;
        };
        if first < header.first_usable || last > header.last_usable {
            notes.push(format!(
                "GPT entry {number} (sectors {first} to {last}) lies outside the usable sectors \
                 {} to {}",
                header.first_usable, header.last_usable
            ));
        }
        let units: Vec<u16> = entry
            .name
            .iter()
            .map(|unit| u16::from_le_bytes(*unit))
            .take_while(|&unit| unit != 0)
            .collect();
        partitions.push(Partition {
            number,
            offset,
            size: cut_to_disk(number, offset, recorded_size, disk.len(), &mut notes),
            recorded_size,
            kind: PartitionKind::Gpt {
                type_guid: entry.type_guid,
                unique_guid: entry.unique_guid,
                name: String::from_utf16_lossy(&units),
                attributes: entry.attributes.get(),
            },
        });
    }
    note_overlaps(&partitions, &mut notes);
    Ok(PartitionTable {
        scheme: Scheme::Gpt {
            disk_guid: header.disk_guid,
            backup_used,
        },
        sector_size,
        partitions,
        notes,
    })
}

/// Notes what is wrong with the backup of a sound primary: where it is, whether it reads,
/// whether it agrees.
fn check_backup(
    disk: &dyn ReadAt,
    sector_size: u32,
    primary: &GptCopy,
    last_lba: u64,
    notes: &mut Vec<String>,
) {
    let alternate = primary.header.alternate_lba;
    let lba = if alternate == last_lba {
        last_lba
    } else if alternate > last_lba {
        notes.push(format!(
            "the primary GPT header places its backup at sector {alternate}, past the image's \
             last sector {last_lba}: the image may be truncated"
        ));
        last_lba
    } else {
        notes.push(format!(
            "the primary GPT header places its backup at sector {alternate}, not at the \
             image's last sector {last_lba} (the disk may have been enlarged)"
        ));
        alternate
    };
    if lba < 2 {
        return;
    }
    match read_gpt_copy(disk, sector_size, lba) {
        Err(problem) => notes.push(format!(
            "the backup GPT {} at sector {lba} is {} ({problem}); the primary was used",
            problem.part(),
            if matches!(problem, GptProblem::NoSignature { .. }) {
                "missing"
            } else {
                "damaged"
            }
        )),
        Ok(backup) => {
            let (p, b) = (&primary.header, &backup.header);
            if p.disk_guid != b.disk_guid
                || p.entries_crc != b.entries_crc
                || p.first_usable != b.first_usable
                || p.last_usable != b.last_usable
            {
                notes.push(format!(
                    "the backup GPT at sector {lba} differs from the primary (disk GUID {} \
                     against {}, entry array CRC 0x{:08X} against 0x{:08X}); the primary was \
                     used",
                    format_guid(&b.disk_guid),
                    format_guid(&p.disk_guid),
                    b.entries_crc,
                    p.entries_crc
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MBR

#[derive(Clone, Copy, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MbrEntryRaw {
    status: u8,
    chs_first: [u8; 3],
    kind: u8,
    chs_last: [u8; 3],
    start: U32,
    sectors: U32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MbrEntry {
    status: u8,
    kind: u8,
    start: u32,
    sectors: u32,
}

impl MbrEntry {
    fn is_empty(&self) -> bool {
        self.kind == 0 || self.sectors == 0
    }
}

/// A sector ending in 0x55AA, read as an MBR or EBR.
struct Mbr {
    disk_signature: u32,
    entries: [MbrEntry; 4],
}

impl Mbr {
    fn parse(sector: &[u8; 512]) -> Option<Mbr> {
        if sector[510..512] != BOOT_SIGNATURE {
            return None;
        }
        let mut entries = [MbrEntry {
            status: 0,
            kind: 0,
            start: 0,
            sectors: 0,
        }; 4];
        for (slot, entry) in entries.iter_mut().enumerate() {
            let at = MBR_TABLE + slot * 16;
            let (raw, _) = MbrEntryRaw::read_from_prefix(&sector[at..]).ok()?;
            *entry = MbrEntry {
                status: raw.status,
                kind: raw.kind,
                start: raw.start.get(),
                sectors: raw.sectors.get(),
            };
        }
        let signature = &sector[MBR_DISK_SIGNATURE..MBR_DISK_SIGNATURE + 4];
        Some(Mbr {
            disk_signature: u32::from_le_bytes([
                signature[0],
                signature[1],
                signature[2],
                signature[3],
            ]),
            entries,
        })
    }

    fn is_protective(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.kind == PROTECTIVE_TYPE && e.sectors != 0)
    }

    /// The first slot (1-based) whose status byte is neither 0x00 nor 0x80.
    fn bad_status(&self) -> Option<(usize, u8)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.status != 0 && e.status != 0x80)
            .map(|(slot, e)| (slot + 1, e.status))
    }

    /// Valid status bytes, and at least one partition, none of them over sector 0.
    fn is_plausible(&self) -> bool {
        self.bad_status().is_none()
            && self.entries.iter().any(|e| !e.is_empty())
            && self.entries.iter().all(|e| e.is_empty() || e.start != 0)
    }
}

fn is_extended_type(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

fn read_mbr(disk: &dyn ReadAt, mbr: &Mbr) -> PartitionTable {
    let mut notes = Vec::new();
    let sector_size = mbr_sector_size(disk, mbr, &mut notes);
    let ss = u64::from(sector_size);
    let mut partitions = Vec::new();
    let mut extended = Vec::new();
    for (slot, entry) in mbr.entries.iter().enumerate() {
        if entry.is_empty() {
            continue;
        }
        let number = slot as u32 + 1;
        let offset = u64::from(entry.start) * ss;
        let recorded_size = u64::from(entry.sectors) * ss;
        if entry.start == 0 {
            notes.push(format!(
                "MBR partition {number} starts at sector 0, over the MBR itself"
            ));
        }
        partitions.push(Partition {
            number,
            offset,
            size: cut_to_disk(number, offset, recorded_size, disk.len(), &mut notes),
            recorded_size,
            kind: PartitionKind::Mbr {
                type_byte: entry.kind,
                logical: false,
                bootable: entry.status == 0x80,
            },
        });
        if is_extended_type(entry.kind) {
            extended.push((number, *entry));
        }
    }
    let mut chain = Chain {
        disk,
        ss,
        next_number: 5,
        ebrs_read: 0,
        partitions: &mut partitions,
        notes: &mut notes,
    };
    for (number, entry) in extended {
        if !chain.follow(number, entry) {
            break;
        }
    }
    note_overlaps(&partitions, &mut notes);
    PartitionTable {
        scheme: Scheme::Mbr {
            disk_signature: mbr.disk_signature,
        },
        sector_size,
        partitions,
        notes,
    }
}

/// The EBR chains of one MBR, read with one shared budget of [`MAX_EBRS`].
struct Chain<'a> {
    disk: &'a dyn ReadAt,
    ss: u64,
    next_number: u32,
    ebrs_read: usize,
    partitions: &'a mut Vec<Partition>,
    notes: &'a mut Vec<String>,
}

impl Chain<'_> {
    /// Follows the chain of the extended partition in slot `number`. False when the budget
    /// of EBRs is spent.
    fn follow(&mut self, number: u32, extended: MbrEntry) -> bool {
        let ext_start = u64::from(extended.start);
        let ext_end = ext_start + u64::from(extended.sectors);
        let mut visited: Vec<u64> = Vec::new();
        let mut ebr_lba = ext_start;
        loop {
            if self.ebrs_read >= MAX_EBRS {
                self.notes.push(format!(
                    "more than {MAX_EBRS} EBRs: the chain of extended partition {number} was \
                     not followed past sector {ebr_lba}"
                ));
                return false;
            }
            if visited.contains(&ebr_lba) {
                self.notes.push(format!(
                    "the EBR chain of extended partition {number} loops back to the EBR at \
                     sector {ebr_lba}; it was followed no further"
                ));
                return true;
            }
            visited.push(ebr_lba);
            self.ebrs_read += 1;
            if ebr_lba < ext_start || ebr_lba >= ext_end {
                self.notes.push(format!(
                    "the EBR at sector {ebr_lba} lies outside extended partition {number} \
                     (sectors {ext_start} to {})",
                    ext_end.saturating_sub(1)
                ));
            }
            let mut sector = [0u8; 512];
            let read = ebr_lba
                .checked_mul(self.ss)
                .ok_or_else(|| io::Error::other("the sector number overflows"))
                .and_then(|offset| self.disk.read_exact_at(&mut sector, offset));
            if let Err(err) = read {
                self.notes.push(format!(
                    "the EBR at sector {ebr_lba} cannot be read ({err}); the chain of extended \
                     partition {number} stops there"
                ));
                return true;
            }
            let Some(ebr) = Mbr::parse(&sector) else {
                self.notes.push(format!(
                    "the EBR at sector {ebr_lba} has no 0x55AA signature; the chain of \
                     extended partition {number} stops there"
                ));
                return true;
            };
            // Usually entry 1 is the logical partition (relative to this EBR) and entry 2 the
            // link to the next EBR (relative to the extended partition); take the first of
            // each kind, as Linux and libfdisk do.
            let data = ebr
                .entries
                .iter()
                .find(|e| !e.is_empty() && !is_extended_type(e.kind));
            if let Some(data) = data {
                let number = self.next_number;
                self.next_number = self.next_number.saturating_add(1);
                let start = ebr_lba + u64::from(data.start);
                let end = start + u64::from(data.sectors);
                // At most (2^32 + 2^33) sectors of 4096 bytes: no overflow.
                let offset = start * self.ss;
                let recorded_size = u64::from(data.sectors) * self.ss;
                if start < ext_start || end > ext_end {
                    self.notes.push(format!(
                        "logical partition {number} (sectors {start} to {}) lies outside \
                         its extended partition (sectors {ext_start} to {})",
                        end.saturating_sub(1),
                        ext_end.saturating_sub(1)
                    ));
                }
                let size = cut_to_disk(number, offset, recorded_size, self.disk.len(), self.notes);
                self.partitions.push(Partition {
                    number,
                    offset,
                    size,
                    recorded_size,
                    kind: PartitionKind::Mbr {
                        type_byte: data.kind,
                        logical: true,
                        bootable: data.status == 0x80,
                    },
                });
            }
            let link = ebr
                .entries
                .iter()
                .find(|e| !e.is_empty() && is_extended_type(e.kind));
            match link {
                Some(link) => ebr_lba = ext_start + u64::from(link.start),
                None => return true,
            }
        }
    }
}

/// 512, unless the MBR only makes sense in 4096-byte sectors (an MBR on a 4Kn disk): no
/// primary partition starts with a file system boot sector when its sector numbers are read
/// as 512-byte sectors, at least one does when they are read as 4096-byte sectors, and then
/// every primary partition ends inside the image.
fn mbr_sector_size(disk: &dyn ReadAt, mbr: &Mbr, notes: &mut Vec<String>) -> u32 {
    let primaries: Vec<&MbrEntry> = mbr
        .entries
        .iter()
        .filter(|e| !e.is_empty() && !is_extended_type(e.kind))
        .collect();
    let boot_sectors = |ss: u64| {
        primaries
            .iter()
            .filter(|e| {
                let mut sector = [0u8; 512];
                disk.read_exact_at(&mut sector, u64::from(e.start) * ss)
                    .is_ok_and(|()| FileSystem::identify(&sector) != FileSystem::Other)
            })
            .count()
    };
    let fits_in_4k = primaries
        .iter()
        .all(|e| (u64::from(e.start) + u64::from(e.sectors)) * 4096 <= disk.len());
    if primaries.is_empty() || !fits_in_4k || boot_sectors(512) > 0 {
        return 512;
    }
    let found = boot_sectors(4096);
    if found == 0 {
        return 512;
    }
    notes.push(format!(
        "the MBR's sector numbers were read as 4096-byte sectors: only so do its partitions \
         start with file system boot sectors ({found} of {}) and fill the image",
        primaries.len()
    ));
    4096
}

// ---------------------------------------------------------------------------------------------
// Both

/// The size of a partition that the image holds, with a note when it is less than recorded.
fn cut_to_disk(
    number: u32,
    offset: u64,
    recorded_size: u64,
    disk_len: u64,
    notes: &mut Vec<String>,
) -> u64 {
    if offset >= disk_len {
        notes.push(format!(
            "partition {number} starts at byte {offset}, past the end of the image ({disk_len} \
             bytes); it is kept with size 0"
        ));
        0
    } else if recorded_size > disk_len - offset {
        let held = disk_len - offset;
        notes.push(format!(
            "partition {number} ends past the end of the image: {held} of its {recorded_size} \
             bytes are in it"
        ));
        held
    } else {
        recorded_size
    }
}

/// Notes partitions that share bytes (an extended partition and its logical ones aside).
fn note_overlaps(partitions: &[Partition], notes: &mut Vec<String>) {
    let mut spans: Vec<(u64, u64, u32)> = partitions
        .iter()
        .filter(|p| !p.is_extended() && p.recorded_size > 0)
        .map(|p| (p.offset, p.offset.saturating_add(p.recorded_size), p.number))
        .collect();
    spans.sort_unstable();
    let mut overlaps = 0usize;
    // The partition reaching furthest so far, and where it ends.
    let mut reach: Option<(u64, u32)> = None;
    for &(start, end, number) in &spans {
        if let Some((reach_end, reach_number)) = reach {
            if start < reach_end {
                overlaps += 1;
                if overlaps <= MAX_OVERLAP_NOTES {
                    notes.push(format!(
                        "partitions {reach_number} and {number} overlap (from byte {start})"
                    ));
                }
            }
        }
        if reach.is_none_or(|(reach_end, _)| end > reach_end) {
            reach = Some((end, number));
        }
    }
    if overlaps > MAX_OVERLAP_NOTES {
        notes.push(format!(
            "{} more overlaps between partitions",
            overlaps - MAX_OVERLAP_NOTES
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

    /// The 16 bytes of a GUID written as text (the inverse of `format_guid`).
    fn guid(text: &str) -> [u8; 16] {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        bytes[0..4].reverse();
        bytes[4..6].reverse();
        bytes[6..8].reverse();
        bytes
    }

    struct GptPart {
        type_guid: [u8; 16],
        unique_guid: [u8; 16],
        first: u64,
        last: u64,
        name: &'static str,
    }

    fn part(n: u8, first: u64, last: u64, name: &'static str) -> GptPart {
        GptPart {
            type_guid: guid(BASIC_DATA),
            unique_guid: [n; 16],
            first,
            last,
            name,
        }
    }

    fn put(disk: &mut [u8], at: usize, bytes: &[u8]) {
        disk[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn protective_mbr(disk: &mut [u8], sectors: u64) {
        let entry = MBR_TABLE;
        disk[entry + 4] = PROTECTIVE_TYPE;
        put(disk, entry + 8, &1u32.to_le_bytes());
        let size = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
        put(disk, entry + 12, &size.to_le_bytes());
        put(disk, 510, &BOOT_SIGNATURE);
    }

    /// Writes one GPT header at `lba` whose entry array is at `entries_lba`.
    fn write_header(
        disk: &mut [u8],
        ss: usize,
        lba: u64,
        alternate: u64,
        entries_lba: u64,
        entries_crc: u32,
        sectors: u64,
    ) {
        let entry_sectors = (128 * 128) / ss as u64;
        let mut header = vec![0u8; 92];
        put(&mut header, 0, GPT_SIGNATURE);
        put(&mut header, 8, &0x0001_0000u32.to_le_bytes());
        put(&mut header, 12, &92u32.to_le_bytes());
        put(&mut header, 24, &lba.to_le_bytes());
        put(&mut header, 32, &alternate.to_le_bytes());
        put(&mut header, 40, &(2 + entry_sectors).to_le_bytes());
        put(
            &mut header,
            48,
            &(sectors - 2 - entry_sectors).to_le_bytes(),
        );
        put(&mut header, 56, &[0xD1; 16]);
        put(&mut header, 72, &entries_lba.to_le_bytes());
        put(&mut header, 80, &128u32.to_le_bytes());
        put(&mut header, 84, &128u32.to_le_bytes());
        put(&mut header, 88, &entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&header);
        put(&mut header, 16, &crc.to_le_bytes());
        put(disk, lba as usize * ss, &header);
    }

    /// A disk of `sectors` sectors of `ss` bytes with a protective MBR, both GPT headers and
    /// both entry arrays (128 entries of 128 bytes).
    fn gpt_disk(ss: usize, sectors: u64, parts: &[GptPart]) -> Vec<u8> {
        let mut disk = vec![0u8; ss * sectors as usize];
        protective_mbr(&mut disk, sectors);
        let mut entries = vec![0u8; 128 * 128];
        for (i, p) in parts.iter().enumerate() {
            let e = &mut entries[i * 128..(i + 1) * 128];
            put(e, 0, &p.type_guid);
            put(e, 16, &p.unique_guid);
            put(e, 32, &p.first.to_le_bytes());
            put(e, 40, &p.last.to_le_bytes());
            for (j, unit) in p.name.encode_utf16().enumerate() {
                put(e, 56 + 2 * j, &unit.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&entries);
        let entry_sectors = entries.len() as u64 / ss as u64;
        let last = sectors - 1;
        put(&mut disk, 2 * ss, &entries);
        put(&mut disk, (last - entry_sectors) as usize * ss, &entries);
        write_header(&mut disk, ss, 1, last, 2, crc, sectors);
        write_header(&mut disk, ss, last, 1, last - entry_sectors, crc, sectors);
        disk
    }

    fn three_parts() -> Vec<GptPart> {
        vec![
            part(1, 2048, 4095, "Basic data partition"),
            part(2, 4096, 6143, "Données"),
            part(3, 6144, 8191, ""),
        ]
    }

    fn offsets(table: &PartitionTable) -> Vec<(u32, u64, u64)> {
        table
            .partitions
            .iter()
            .map(|p| (p.number, p.offset, p.size))
            .collect()
    }

    #[test]
    fn guid_text_is_mixed_endian_upper_case() {
        let raw = [
            0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26,
            0x99, 0xC7,
        ];
        assert_eq!(format_guid(&raw), BASIC_DATA);
        assert_eq!(guid(BASIC_DATA), raw);
    }

    #[test]
    fn file_systems_by_signature() {
        let mut sector = [0u8; 512];
        assert_eq!(FileSystem::identify(&sector), FileSystem::Other);
        for (at, signature, fs) in [
            (3, &b"NTFS    "[..], FileSystem::Ntfs),
            (3, b"-FVE-FS-", FileSystem::BitLocker),
            (3, b"EXFAT   ", FileSystem::ExFat),
            (3, b"ReFS\0\0\0\0", FileSystem::Refs),
            (0x36, b"FAT16   ", FileSystem::Fat),
            (0x52, b"FAT32   ", FileSystem::Fat),
        ] {
            sector = [0u8; 512];
            put(&mut sector, at, signature);
            assert_eq!(FileSystem::identify(&sector), fs, "{signature:?}");
        }
        // Short input is no signature, not a panic.
        assert_eq!(FileSystem::identify(b"EB5"), FileSystem::Other);
    }

    #[test]
    fn gpt_with_both_headers() {
        for ss in [512usize, 4096] {
            let sectors = 16384 * 512 / ss as u64;
            let parts = if ss == 512 {
                three_parts()
            } else {
                vec![part(1, 256, 511, "EFI system"), part(2, 512, 1023, "x")]
            };
            let disk = gpt_disk(ss, sectors, &parts);
            let table = read_partition_table(&disk).unwrap();
            assert_eq!(table.sector_size, ss as u32);
            assert_eq!(
                table.scheme,
                Scheme::Gpt {
                    disk_guid: [0xD1; 16],
                    backup_used: false
                }
            );
            assert!(table.notes.is_empty(), "{:?}", table.notes);
            assert_eq!(table.partitions.len(), parts.len());
            for (p, want) in table.partitions.iter().zip(&parts) {
                assert_eq!(p.offset, want.first * ss as u64);
                assert_eq!(p.size, (want.last - want.first + 1) * ss as u64);
                assert_eq!(p.recorded_size, p.size);
                let PartitionKind::Gpt {
                    type_guid,
                    unique_guid,
                    name,
                    ..
                } = &p.kind
                else {
                    panic!("{p:?}");
                };
                assert_eq!(format_guid(type_guid), BASIC_DATA);
                assert_eq!(unique_guid, &want.unique_guid);
                assert_eq!(name, want.name);
            }
        }
    }

    #[test]
    fn unused_entries_keep_their_numbers_out() {
        let mut parts = three_parts();
        parts[1].type_guid = [0; 16];
        let table = read_partition_table(&gpt_disk(512, 16384, &parts)).unwrap();
        let numbers: Vec<u32> = table.partitions.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 3]);
    }

    #[test]
    fn damaged_primary_header_uses_the_backup() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        let good = read_partition_table(&disk).unwrap();
        disk[512 + 60] ^= 0xFF; // a byte of the disk GUID
        let table = read_partition_table(&disk).unwrap();
        assert!(matches!(
            table.scheme,
            Scheme::Gpt {
                backup_used: true,
                ..
            }
        ));
        assert_eq!(table.partitions, good.partitions);
        assert_eq!(table.notes.len(), 1, "{:?}", table.notes);
        let note = &table.notes[0];
        assert!(
            note.starts_with("the primary GPT header is damaged (CRC mismatch: stored 0x"),
            "{note}"
        );
        assert!(
            note.ends_with("the backup header at sector 16383 was used"),
            "{note}"
        );
    }

    #[test]
    fn damaged_primary_entries_use_the_backup() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        disk[2 * 512 + 40] ^= 1; // the first entry's last LBA
        let table = read_partition_table(&disk).unwrap();
        assert!(matches!(
            table.scheme,
            Scheme::Gpt {
                backup_used: true,
                ..
            }
        ));
        assert_eq!(table.partitions[0].size, 2048 * 512);
        assert!(
            table.notes[0].starts_with(
                "the primary GPT entry array is damaged (entry array CRC mismatch at sector 2"
            ),
            "{:?}",
            table.notes
        );
    }

    #[test]
    fn wiped_primary_with_protective_mbr_uses_the_backup() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        disk[512..1024].fill(0);
        let table = read_partition_table(&disk).unwrap();
        assert!(matches!(
            table.scheme,
            Scheme::Gpt {
                backup_used: true,
                ..
            }
        ));
        assert_eq!(table.partitions.len(), 3);
        assert!(table.notes[0].contains("is missing"), "{:?}", table.notes);
    }

    #[test]
    fn both_copies_damaged_is_an_error() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        disk[512 + 60] ^= 0xFF;
        let last = disk.len() - 512;
        disk[last + 60] ^= 0xFF;
        let err = read_partition_table(&disk).unwrap_err();
        let PartitionError::GptUnusable {
            sector_size: 512,
            backup_lba: 16383,
            primary: GptProblem::HeaderCrc { lba: 1, .. },
            backup: GptProblem::HeaderCrc { lba: 16383, .. },
        } = err
        else {
            panic!("{err:?}");
        };
        assert!(err.to_string().contains("no usable GPT"), "{err}");
        // Wiped entirely, with its protective MBR left: missing, not an MBR with type 0xEE.
        disk[512..1024].fill(0);
        disk[last..].fill(0);
        assert!(matches!(
            read_partition_table(&disk),
            Err(PartitionError::GptMissing)
        ));
    }

    #[test]
    fn damaged_backup_and_truncation_are_noted() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        let last = disk.len() - 512;
        disk[last + 60] ^= 0xFF;
        let table = read_partition_table(&disk).unwrap();
        assert!(matches!(
            table.scheme,
            Scheme::Gpt {
                backup_used: false,
                ..
            }
        ));
        assert_eq!(table.notes.len(), 1);
        assert!(table.notes[0].starts_with("the backup GPT header at sector 16383 is damaged"));

        // Cut in the middle of partition 3: it is kept, cut, and the missing backup told.
        let disk = gpt_disk(512, 16384, &three_parts());
        let cut = disk[..7000 * 512].to_vec();
        let table = read_partition_table(&cut).unwrap();
        assert_eq!(
            offsets(&table),
            [
                (1, 2048 * 512, 2048 * 512),
                (2, 4096 * 512, 2048 * 512),
                (3, 6144 * 512, 856 * 512)
            ]
        );
        assert_eq!(table.partitions[2].recorded_size, 2048 * 512);
        let notes = table.notes.join("\n");
        assert!(
            notes.contains("past the image's last sector 6999"),
            "{notes}"
        );
        assert!(notes.contains("may be truncated"), "{notes}");
        assert!(
            notes.contains("partition 3 ends past the end of the image"),
            "{notes}"
        );
    }

    #[test]
    fn hostile_entry_counts_and_sizes_are_refused() {
        for (field, value) in [(80usize, 1_000_000u32), (84, 100), (84, 1 << 20)] {
            let mut disk = gpt_disk(512, 16384, &three_parts());
            for at in [512usize, disk.len() - 512] {
                put(&mut disk, at + field, &value.to_le_bytes());
                put(&mut disk, at + 16, &[0; 4]);
                let crc = crc32fast::hash(&disk[at..at + 92]);
                put(&mut disk, at + 16, &crc.to_le_bytes());
            }
            let err = read_partition_table(&disk).unwrap_err();
            assert!(
                matches!(
                    err,
                    PartitionError::GptUnusable {
                        primary: GptProblem::TooManyEntries { .. } | GptProblem::EntrySize { .. },
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn stale_backup_on_an_mbr_disk_is_ignored() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        disk[..1024].fill(0);
        mbr_entry(&mut disk, 0, 0, 0x07, 2048, 4096);
        let table = read_partition_table(&disk).unwrap();
        assert!(matches!(table.scheme, Scheme::Mbr { .. }));
        assert_eq!(offsets(&table), [(1, 2048 * 512, 4096 * 512)]);
    }

    #[test]
    fn gpt_without_protective_mbr_or_with_hybrid_is_noted() {
        let mut disk = gpt_disk(512, 16384, &three_parts());
        disk[..512].fill(0);
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.partitions.len(), 3);
        assert!(table.notes[0].contains("no protective MBR"));
        let mut disk = gpt_disk(512, 16384, &three_parts());
        mbr_entry(&mut disk, 0, 1, 0x07, 2048, 2048);
        let table = read_partition_table(&disk).unwrap();
        assert!(table.notes[0].contains("hybrid MBR"), "{:?}", table.notes);
    }

    /// Writes an MBR or EBR entry into the sector at `sector` and its 0x55AA.
    fn mbr_entry(disk: &mut [u8], sector: usize, slot: usize, kind: u8, start: u32, size: u32) {
        let at = sector * 512 + MBR_TABLE + slot * 16;
        disk[at + 4] = kind;
        put(disk, at + 8, &start.to_le_bytes());
        put(disk, at + 12, &size.to_le_bytes());
        put(disk, sector * 512 + 510, &BOOT_SIGNATURE);
    }

    /// Two primaries, an extended partition (slot 3) at sector 10240 with two logical
    /// partitions, the sfdisk layout of tests/partition_tables.rs.
    fn mbr_disk() -> Vec<u8> {
        let mut disk = vec![0u8; 32768 * 512];
        put(&mut disk, MBR_DISK_SIGNATURE, &0x1234_5678u32.to_le_bytes());
        mbr_entry(&mut disk, 0, 0, 0x07, 2048, 4096);
        disk[MBR_TABLE] = 0x80;
        mbr_entry(&mut disk, 0, 1, 0x83, 6144, 4096);
        mbr_entry(&mut disk, 0, 2, 0x0F, 10240, 20480);
        // EBR 1: a logical partition 2048 sectors after it, a link to EBR 2.
        mbr_entry(&mut disk, 10240, 0, 0x07, 2048, 4096);
        mbr_entry(&mut disk, 10240, 1, 0x05, 6144, 10240);
        // EBR 2 at 10240 + 6144.
        mbr_entry(&mut disk, 16384, 0, 0x0B, 2048, 8192);
        disk
    }

    #[test]
    fn mbr_with_an_extended_chain() {
        let table = read_partition_table(&mbr_disk()).unwrap();
        assert_eq!(
            table.scheme,
            Scheme::Mbr {
                disk_signature: 0x1234_5678
            }
        );
        assert_eq!(table.sector_size, 512);
        assert!(table.notes.is_empty(), "{:?}", table.notes);
        assert_eq!(
            offsets(&table),
            [
                (1, 2048 * 512, 4096 * 512),
                (2, 6144 * 512, 4096 * 512),
                (3, 10240 * 512, 20480 * 512),
                (5, 12288 * 512, 4096 * 512),
                (6, 18432 * 512, 8192 * 512),
            ]
        );
        let kinds: Vec<_> = table.partitions.iter().map(|p| p.kind.clone()).collect();
        assert_eq!(
            kinds[0],
            PartitionKind::Mbr {
                type_byte: 0x07,
                logical: false,
                bootable: true
            }
        );
        assert_eq!(
            kinds[4],
            PartitionKind::Mbr {
                type_byte: 0x0B,
                logical: true,
                bootable: false
            }
        );
        assert!(table.partitions[2].is_extended());
        assert!(!table.partitions[3].is_extended());
    }

    #[test]
    fn looping_ebr_chain_stops() {
        let mut disk = mbr_disk();
        // EBR 2 links back to EBR 1 (relative 0).
        mbr_entry(&mut disk, 16384, 1, 0x05, 0, 10240);
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.partitions.len(), 5);
        assert_eq!(table.notes.len(), 1, "{:?}", table.notes);
        assert!(table.notes[0].contains("loops back to the EBR at sector 10240"));
        // An EBR that links to itself.
        let mut disk = mbr_disk();
        mbr_entry(&mut disk, 16384, 1, 0x05, 6144, 10240);
        let table = read_partition_table(&disk).unwrap();
        assert!(table.notes[0].contains("loops back to the EBR at sector 16384"));
    }

    #[test]
    fn long_ebr_chain_is_capped() {
        let ebrs = MAX_EBRS + 50;
        let mut disk = vec![0u8; (ebrs + 2048) * 512];
        mbr_entry(&mut disk, 0, 0, 0x05, 2048, ebrs as u32);
        for i in 0..ebrs {
            // No data partition, only a link to the next sector.
            mbr_entry(&mut disk, 2048 + i, 1, 0x05, i as u32 + 1, 1);
        }
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.partitions.len(), 1);
        assert!(
            table.notes.iter().any(|n| n.contains("more than 256 EBRs")),
            "{:?}",
            table.notes
        );
    }

    #[test]
    fn broken_ebr_chain_keeps_what_was_read() {
        let mut disk = mbr_disk();
        disk[16384 * 512 + 510] = 0;
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.partitions.len(), 4);
        assert!(table.notes[0].contains("has no 0x55AA signature"));
        // A link past the end of the image.
        let mut disk = mbr_disk();
        mbr_entry(&mut disk, 10240, 1, 0x05, u32::MAX, 10);
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.partitions.len(), 4);
        assert!(table.notes.iter().any(|n| n.contains("cannot be read")));
    }

    #[test]
    fn mbr_partition_past_the_end_is_kept_and_cut() {
        let mut disk = vec![0u8; 4096 * 512];
        mbr_entry(&mut disk, 0, 0, 0x07, 2048, 4096);
        mbr_entry(&mut disk, 0, 1, 0x07, 8192, 4096);
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(
            offsets(&table),
            [(1, 2048 * 512, 2048 * 512), (2, 8192 * 512, 0)]
        );
        assert_eq!(table.notes.len(), 2, "{:?}", table.notes);
    }

    #[test]
    fn volume_images_have_no_table() {
        let mut ntfs = vec![0u8; 64 * 1024];
        put(&mut ntfs, 0, &[0xEB, 0x52, 0x90]);
        put(&mut ntfs, 3, b"NTFS    ");
        put(&mut ntfs, 510, &BOOT_SIGNATURE);
        // Boot code where the MBR table would be.
        ntfs[MBR_TABLE..510].fill(0x0E);
        let table = read_partition_table(&ntfs).unwrap();
        assert_eq!(table.scheme, Scheme::None);
        assert!(table.partitions.is_empty());
        assert!(
            table.notes[0].contains("NTFS boot sector"),
            "{:?}",
            table.notes
        );

        // An NTFS boot sector is a volume even when its last bytes look like a table.
        ntfs[MBR_TABLE..510].fill(0);
        mbr_entry(&mut ntfs, 0, 0, 0x07, 1, 10);
        assert_eq!(read_partition_table(&ntfs).unwrap().scheme, Scheme::None);

        let mut fat = vec![0u8; 64 * 1024];
        put(&mut fat, 3, b"mkfs.fat");
        put(&mut fat, 0x52, b"FAT32   ");
        put(&mut fat, 510, &BOOT_SIGNATURE);
        assert_eq!(read_partition_table(&fat).unwrap().scheme, Scheme::None);
        // A stale FAT BPB under a plausible partition table is an MBR.
        mbr_entry(&mut fat, 0, 0, 0x0C, 64, 64);
        let table = read_partition_table(&fat).unwrap();
        assert!(matches!(table.scheme, Scheme::Mbr { .. }));
    }

    #[test]
    fn no_signature_and_garbage_mbr_have_no_table() {
        let zeros = vec![0u8; 8192];
        let table = read_partition_table(&zeros).unwrap();
        assert_eq!(table.scheme, Scheme::None);
        assert!(table.notes[0].contains("no 0x55AA signature"));
        let mut garbage = vec![0u8; 8192];
        mbr_entry(&mut garbage, 0, 0, 0x07, 1, 10);
        garbage[MBR_TABLE + 16] = 0x12;
        let table = read_partition_table(&garbage).unwrap();
        assert_eq!(table.scheme, Scheme::None);
        assert!(
            table.notes[0].contains("slot 2 is 0x12"),
            "{:?}",
            table.notes
        );
    }

    #[test]
    fn tiny_images_are_errors_or_empty() {
        assert!(matches!(
            read_partition_table(&vec![0u8; 100]),
            Err(PartitionError::TooSmall { len: 100 })
        ));
        let mut one = vec![0u8; 512];
        put(&mut one, 510, &BOOT_SIGNATURE);
        let table = read_partition_table(&one).unwrap();
        assert_eq!(table.scheme, Scheme::Mbr { disk_signature: 0 });
    }

    #[test]
    fn mbr_on_a_4k_disk_is_read_with_4096_byte_sectors() {
        let mut disk = vec![0u8; 1024 * 4096];
        mbr_entry(&mut disk, 0, 0, 0x07, 256, 512);
        put(&mut disk, 256 * 4096 + 3, b"NTFS    ");
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.sector_size, 4096);
        assert_eq!(offsets(&table), [(1, 256 * 4096, 512 * 4096)]);
        assert_eq!(table.notes.len(), 1);

        // 512-byte sectors where a second partition's boot sector sits at the first one's
        // start times 4096: still 512.
        let mut disk = vec![0u8; 16384 * 512];
        mbr_entry(&mut disk, 0, 0, 0x83, 1024, 7168);
        mbr_entry(&mut disk, 0, 1, 0x07, 8192, 8192);
        put(&mut disk, 8192 * 512 + 3, b"NTFS    ");
        let table = read_partition_table(&disk).unwrap();
        assert_eq!(table.sector_size, 512);
        assert!(table.notes.is_empty(), "{:?}", table.notes);
    }

    #[test]
    fn overlapping_partitions_are_noted() {
        let parts = vec![part(1, 2048, 6143, "a"), part(2, 4096, 8191, "b")];
        let table = read_partition_table(&gpt_disk(512, 16384, &parts)).unwrap();
        assert_eq!(table.partitions.len(), 2);
        assert_eq!(
            table.notes,
            ["partitions 1 and 2 overlap (from byte 2097152)"]
        );
    }

    /// Mutated tables never panic, and what they list stays inside the image.
    #[test]
    fn mutated_tables_do_not_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let bases = [
            gpt_disk(512, 4096, &three_parts()[..1]),
            mbr_disk()[..20000 * 512].to_vec(),
        ];
        for base in &bases {
            for _ in 0..300 {
                let mut disk = base.clone();
                for _ in 0..1 + next() % 8 {
                    // Mostly the structures: sector 0, the headers, the EBRs.
                    let hot = [0usize, 512, 10240 * 512, disk.len() - 512];
                    let at = hot[next() as usize % hot.len()] + (next() % 512) as usize;
                    if at < disk.len() {
                        disk[at] = next() as u8;
                    }
                }
                if let Ok(table) = read_partition_table(&disk) {
                    for p in &table.partitions {
                        assert!(p.size == 0 || p.end() <= disk.len() as u64, "{p:?}");
                        assert!(p.size <= p.recorded_size);
                    }
                }
            }
        }
    }
}
