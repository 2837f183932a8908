//! The regf base block: the first 4,096 bytes of a hive file.
//!
//! On-disk signature: `regf`. Parsed here rather than through nt-hive because nt-hive's
//! validation stops at the first problem (a dirty hive fails on its sequence numbers before
//! anything else is checked), while a forensic report needs every field: sequence numbers,
//! checksum, declared sizes, whether the file is a hive at all.

use super::HiveError;

pub const BASE_BLOCK_SIZE: usize = 4096;
const CHECKSUM_OFFSET: usize = 508;

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
        if bytes.len() < BASE_BLOCK_SIZE {
            return Err(HiveError::Truncated {
                len: bytes.len(),
                needed: BASE_BLOCK_SIZE,
                what: "the 4,096-byte base block",
            });
        }
        let u32_at = |offset: usize| {
            u32::from_le_bytes([
                bytes[offset],
                bytes[offset + 1],
                bytes[offset + 2],
                bytes[offset + 3],
            ])
        };
        let name_units: Vec<u16> = bytes[48..112]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .take_while(|&unit| unit != 0)
            .collect();
        let block = BaseBlock {
            primary_sequence: u32_at(4),
            secondary_sequence: u32_at(8),
            last_written: u64::from(u32_at(12)) | (u64::from(u32_at(16)) << 32),
            major_version: u32_at(20),
            minor_version: u32_at(24),
            file_type: u32_at(28),
            root_cell_offset: u32_at(36),
            hive_bins_size: u32_at(40),
            embedded_name: String::from_utf16_lossy(&name_units),
            stored_checksum: u32_at(CHECKSUM_OFFSET),
            computed_checksum: checksum(&bytes[..CHECKSUM_OFFSET]),
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
