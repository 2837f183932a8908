//! The regf base block: the first 4,096 bytes of a hive file.
//!
//! On-disk signature: `regf`. Parsed here rather than through nt-hive because nt-hive's
//! validation stops at the first problem (a dirty hive fails on its sequence numbers before
//! anything else is checked), while a forensic report needs every field: sequence numbers,
//! checksum, declared sizes, whether the file is a hive at all.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::HiveError;

/// Size of a primary file's base block, and the file offset of the first hive bin.
pub const BASE_BLOCK_SIZE: usize = 4096;
/// The checksum covers the header up to its own field.
pub(crate) const CHECKSUM_OFFSET: usize = 508;

/// The header of a regf base block: its first 512 bytes, all a transaction log keeps of it
/// and all its checksum covers (the rest of the 4,096 bytes is reserved). Unaligned, so it
/// can be read in place from any buffer.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct BaseBlockHeader {
    /// `regf`.
    pub signature: [u8; 4],
    pub primary_sequence: U32,
    pub secondary_sequence: U32,
    /// FILETIME of the last write.
    pub last_written: U64,
    pub major_version: U32,
    pub minor_version: U32,
    /// 0 = primary file, 1 and 2 = old-format transaction log, 6 = new-format log.
    pub file_type: U32,
    /// 1 = direct memory load.
    pub file_format: U32,
    pub root_cell_offset: U32,
    pub hive_bins_size: U32,
    pub clustering_factor: U32,
    /// The last 31 characters of the hive's path, UTF-16LE, NUL-terminated.
    pub file_name: [u8; 64],
    /// The resource manager GUID (meaningful when `guid_signature` is `rmtm`).
    pub rm_id: [u8; 16],
    _log_id: [u8; 16],
    pub flags: U32,
    _tm_id: [u8; 16],
    pub guid_signature: [u8; 4],
    _last_reorganized: U64,
    _reserved: [u8; 332],
    pub checksum: U32,
}

const _: () = assert!(size_of::<BaseBlockHeader>() == 512);
const _: () = assert!(std::mem::offset_of!(BaseBlockHeader, checksum) == CHECKSUM_OFFSET);

impl BaseBlockHeader {
    /// The header at the start of `bytes`, if they hold 512 bytes (a log's copy).
    pub fn parse(bytes: &[u8]) -> Option<&BaseBlockHeader> {
        BaseBlockHeader::ref_from_prefix(bytes)
            .ok()
            .map(|(header, _)| header)
    }

    /// The header of a primary file, if `bytes` hold its whole 4,096-byte base block.
    pub fn of_primary(bytes: &[u8]) -> Option<&BaseBlockHeader> {
        PrimaryBaseBlock::ref_from_prefix(bytes)
            .ok()
            .map(|(block, _)| &block.header)
    }

    /// The checksum the header's bytes sum to (see [`checksum`]).
    pub fn computed_checksum(&self) -> u32 {
        checksum(&self.as_bytes()[..CHECKSUM_OFFSET])
    }

    pub fn checksum_ok(&self) -> bool {
        self.checksum.get() == self.computed_checksum()
    }

    /// Dirty as Windows judges it at load time: sequence numbers differ or the checksum is
    /// wrong.
    pub fn is_dirty(&self) -> bool {
        self.primary_sequence != self.secondary_sequence || !self.checksum_ok()
    }

    /// The embedded file name's UTF-16 units, up to its NUL.
    pub fn name_units(&self) -> impl Iterator<Item = u16> + '_ {
        self.file_name
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .take_while(|&unit| unit != 0)
    }
}

/// A primary file's whole base block, up to the first hive bin.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PrimaryBaseBlock {
    header: BaseBlockHeader,
    /// Reserved, and boot fields (Windows 10+) nextboot does not read.
    _rest: [u8; BASE_BLOCK_SIZE - size_of::<BaseBlockHeader>()],
}

/// The fields of a base block that the report and the checks use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseBlock {
    pub primary_sequence: u32,
    pub secondary_sequence: u32,
    /// FILETIME of the last write.
    pub last_written: u64,
    pub major_version: u32,
    pub minor_version: u32,
    /// 0 = primary file, 1 and 6 = transaction logs.
    pub file_type: u32,
    pub root_cell_offset: u32,
    /// Size of the hive bins data that follows the base block.
    pub hive_bins_size: u32,
    /// The file name embedded by Windows (last 31 characters of the hive's path), if any.
    pub embedded_name: String,
    pub stored_checksum: u32,
    pub computed_checksum: u32,
}

impl BaseBlock {
    /// Parses the base block of `bytes`, or says what the file looks like instead.
    pub fn parse(bytes: &[u8]) -> Result<BaseBlock, HiveError> {
        if bytes.is_empty() {
            return Err(HiveError::Empty);
        }
        if &bytes[..bytes.len().min(4)] != b"regf" {
            return Err(sniff(bytes));
        }
        let Some(header) = BaseBlockHeader::of_primary(bytes) else {
            return Err(HiveError::Truncated {
                len: bytes.len(),
                needed: BASE_BLOCK_SIZE,
                what: "the 4,096-byte base block",
            });
        };
        let name_units: Vec<u16> = header.name_units().collect();
        let block = BaseBlock {
            primary_sequence: header.primary_sequence.get(),
            secondary_sequence: header.secondary_sequence.get(),
            last_written: header.last_written.get(),
            major_version: header.major_version.get(),
            minor_version: header.minor_version.get(),
            file_type: header.file_type.get(),
            root_cell_offset: header.root_cell_offset.get(),
            hive_bins_size: header.hive_bins_size.get(),
            embedded_name: String::from_utf16_lossy(&name_units),
            stored_checksum: header.checksum.get(),
            computed_checksum: header.computed_checksum(),
        };
        match block.file_type {
            0 => {}
            // Old (1, and 2 on NT 3.x) and new (6) transaction logs.
            1 | 2 | 6 => {
                return Err(HiveError::TransactionLog {
                    file_type: block.file_type,
                })
            }
            other => return Err(HiveError::UnknownFileType { file_type: other }),
        }
        if block.major_version != 1 || !(2..=6).contains(&block.minor_version) {
            return Err(HiveError::UnsupportedVersion {
                major: block.major_version,
                minor: block.minor_version,
            });
        }
        Ok(block)
    }

    /// Sequence numbers differ: Windows did not finish a write to the primary file, and the
    /// newest data may be in the transaction logs.
    pub fn sequence_mismatch(&self) -> bool {
        self.primary_sequence != self.secondary_sequence
    }

    pub fn checksum_valid(&self) -> bool {
        self.stored_checksum == self.computed_checksum
    }

    /// Dirty as Windows judges it at load time: either test fails.
    pub fn is_dirty(&self) -> bool {
        self.sequence_mismatch() || !self.checksum_valid()
    }
}

/// XOR-32 of the first 508 bytes, with the two reserved results remapped (regf specification).
pub fn checksum(header: &[u8]) -> u32 {
    let sum = header.chunks_exact(4).fold(0u32, |acc, c| {
        acc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]])
    });
    match sum {
        0 => 1,
        u32::MAX => u32::MAX - 1,
        other => other,
    }
}

/// Says what a file that is not a hive looks like, for the diagnostic.
fn sniff(bytes: &[u8]) -> HiveError {
    let text = decode_text_start(bytes);
    if let Some(first_line) = text.as_deref().and_then(|t| t.lines().next()) {
        let line = first_line.trim();
        if line.starts_with("Windows Registry Editor") || line.starts_with("REGEDIT") {
            return HiveError::RegExport {
                header: line.to_string(),
            };
        }
    }
    let looks_like = match bytes {
        [b'H', b'v', b'L', b'E', ..] => "a transaction log (HvLE entries), not the hive itself",
        [b'D', b'I', b'R', b'T', ..] => "a transaction log (DIRT vector), not the hive itself",
        [b'M', b'Z', ..] => "a Windows executable (PE file)",
        [b'P', b'K', 3, 4, ..] => "a ZIP archive",
        [0x1f, 0x8b, ..] => "a gzip-compressed file",
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "an xz-compressed file",
        [b'c', b'o', b'n', b'e', b'c', b't', b'i', b'x', ..] => "a VHD disk image",
        [b'v', b'h', b'd', b'x', b'f', b'i', b'l', b'e', ..] => "a VHDX disk image",
        _ if text.is_some() => "a text file",
        _ if bytes.iter().take(4096).all(|&b| b == 0) => "zeros (no data)",
        _ => "unknown binary data",
    };
    HiveError::NotAHive {
        looks_like: looks_like.to_string(),
        first_bytes: bytes
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Decodes the start of a file as text when it plausibly is text (UTF-8, or UTF-16LE with a
/// BOM as regedit writes it).
fn decode_text_start(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(512)];
    if let Some(rest) = head.strip_prefix(&[0xff, 0xfe]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        return Some(String::from_utf16_lossy(&units));
    }
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        // A multi-byte character cut at the 512-byte boundary is still text.
        Err(err) if err.error_len().is_none() => {
            std::str::from_utf8(&head[..err.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let printable = valid
        .chars()
        .all(|c| !c.is_control() || c.is_ascii_whitespace());
    printable.then(|| valid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_named_empty() {
        assert!(matches!(BaseBlock::parse(b""), Err(HiveError::Empty)));
    }

    #[test]
    fn reg_exports_are_recognised_in_both_encodings() {
        let utf8 = b"Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM]\r\n";
        assert!(matches!(
            BaseBlock::parse(utf8),
            Err(HiveError::RegExport { header }) if header == "Windows Registry Editor Version 5.00"
        ));
        let mut utf16 = vec![0xff, 0xfe];
        for unit in "REGEDIT4\r\n".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert!(matches!(
            BaseBlock::parse(&utf16),
            Err(HiveError::RegExport { .. })
        ));
    }

    #[test]
    fn other_files_say_what_they_look_like() {
        let err = BaseBlock::parse(b"MZ\x90\x00\x03\x00").unwrap_err();
        assert!(
            matches!(&err, HiveError::NotAHive { looks_like, first_bytes } if looks_like.contains("PE") && first_bytes.starts_with("4d 5a"))
        );
        let err = BaseBlock::parse(b"just some notes\n").unwrap_err();
        assert!(
            matches!(&err, HiveError::NotAHive { looks_like, .. } if looks_like == "a text file")
        );
    }

    #[test]
    fn short_regf_is_truncated() {
        assert!(matches!(
            BaseBlock::parse(b"regf\x01\x00\x00\x00"),
            Err(HiveError::Truncated { len: 8, .. })
        ));
    }

    #[test]
    fn checksum_remaps_reserved_values() {
        assert_eq!(checksum(&[0; 508]), 1);
        let mut all_ones = [0u8; 508];
        all_ones[..4].copy_from_slice(&[0xff; 4]);
        assert_eq!(checksum(&all_ones), u32::MAX - 1);
    }
}
