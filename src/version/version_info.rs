//! `VS_VERSIONINFO`: the tree of blocks inside an `RT_VERSION` resource.
//!
//! Every block is `wLength, wValueLength, wType, szKey (UTF-16, NUL), padding to 4, Value,
//! padding to 4, children`, with alignment counted from the start of the resource. Real files
//! get lengths wrong in both directions, so every length is clamped to its parent, a child of
//! length zero ends the walk, and depth is bounded: no input can make this loop, panic or read
//! outside the resource.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::FileVersion;

const FIXED_SIGNATURE: u32 = 0xFEEF_04BD;
const FIXED_SIZE: usize = size_of::<FixedFileInfo>();
const HEADER: usize = size_of::<BlockHeader>();
/// VS_VERSIONINFO > StringFileInfo > StringTable > String is depth 3.
const MAX_DEPTH: usize = 4;
/// More children than any real resource has; a bound on the work a crafted one can cause.
const MAX_CHILDREN: usize = 4096;

/// What a version resource says. Fields absent from the resource are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionResource {
    /// `dwFileVersionMS/LS` of `VS_FIXEDFILEINFO`: the version that is compared.
    pub file_version: Option<FileVersion>,
    pub product_version: Option<FileVersion>,
    /// `StringFileInfo\<lang>\FileVersion`: free text, may disagree with the binary version.
    pub file_version_string: Option<String>,
    pub product_version_string: Option<String>,
    /// The string table the strings came from (`040904B0`).
    pub string_table: Option<String>,
    /// What was wrong with the resource, when something was.
    pub problem: Option<ResourceProblem>,
}

/// What is wrong with a version resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceProblem {
    #[error("the VS_VERSIONINFO header is truncated ({len} bytes)")]
    HeaderTruncated { len: usize },
    #[error("the VS_VERSIONINFO block has length {length}, less than its own header")]
    ShortRoot { length: u16 },
    #[error("the root block is named {key:?}, not VS_VERSION_INFO")]
    RootName { key: String },
    #[error("VS_FIXEDFILEINFO is {len} bytes, not {FIXED_SIZE}")]
    FixedInfoSize { len: usize },
    #[error("VS_FIXEDFILEINFO signature is {signature:#010x}, not {FIXED_SIGNATURE:#010x}")]
    FixedInfoSignature { signature: u32 },
}

/// The header of every block: `wLength, wValueLength, wType`.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct BlockHeader {
    length: U16,
    value_length: U16,
    /// 1: the value is text (its length counts WCHARs); 0: binary (bytes).
    kind: U16,
}

/// `VS_FIXEDFILEINFO`, the root block's value.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FixedFileInfo {
    signature: U32,
    struct_version: U32,
    file_version_ms: U32,
    file_version_ls: U32,
    product_version_ms: U32,
    product_version_ls: U32,
    file_flags_mask: U32,
    file_flags: U32,
    file_os: U32,
    file_type: U32,
    file_subtype: U32,
    file_date_ms: U32,
    file_date_ls: U32,
}

const _: () = assert!(FIXED_SIZE == 52 && HEADER == 6);

struct Block<'a> {
    /// The key's UTF-16LE bytes, without its NUL (compared in place: a version read looks at
    /// a dozen keys per file).
    key: &'a [u8],
    value: &'a [u8],
    /// Offsets (in the resource) of the children region.
    children: std::ops::Range<usize>,
}

impl Block<'_> {
    fn key_is(&self, name: &str) -> bool {
        self.key
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .eq(name.encode_utf16())
    }

    fn key_text(&self) -> String {
        utf16_text(self.key)
    }
}

/// Parses a `VS_VERSIONINFO` resource. Never fails: what cannot be read is left `None` and
/// described in `problem`.
pub fn parse_version_info(data: &[u8]) -> VersionResource {
    let mut resource = VersionResource::default();
    let Some(root) = block_at(data, 0, data.len()) else {
        resource.problem = Some(match BlockHeader::ref_from_prefix(data) {
            Err(_) => ResourceProblem::HeaderTruncated { len: data.len() },
            Ok((header, _)) => ResourceProblem::ShortRoot {
                length: header.length.get(),
            },
        });
        return resource;
    };
    if !root.key_is("VS_VERSION_INFO") {
        resource.problem = Some(ResourceProblem::RootName {
            key: root.key_text(),
        });
        return resource;
    }
    match fixed_file_info(root.value) {
        Ok(Some((file, product))) => {
            resource.file_version = Some(file);
            resource.product_version = Some(product);
        }
        Ok(None) => {}
        Err(problem) => resource.problem = Some(problem),
    }
    for_each_child(data, &root, 1, &mut |child, depth| {
        if depth == 1 && child.key_is("StringFileInfo") {
            for_each_child(data, &child, depth + 1, &mut |table, depth| {
                if resource.file_version_string.is_some() && resource.string_table.is_some() {
                    return;
                }
                let mut found_any = false;
                for_each_child(data, &table, depth + 1, &mut |string, _| {
                    let text = || Some(utf16_text(string.value));
                    if resource.file_version_string.is_none() && string.key_is("FileVersion") {
                        resource.file_version_string = text();
                        found_any = true;
                    } else if resource.product_version_string.is_none()
                        && string.key_is("ProductVersion")
                    {
                        resource.product_version_string = text();
                        found_any = true;
                    }
                });
                if found_any && resource.string_table.is_none() {
                    resource.string_table = Some(table.key_text());
                }
            });
        }
    });
    resource
}

fn fixed_file_info(value: &[u8]) -> Result<Option<(FileVersion, FileVersion)>, ResourceProblem> {
    if value.is_empty() {
        return Ok(None);
    }
    let Ok((fixed, _)) = FixedFileInfo::ref_from_prefix(value) else {
        return Err(ResourceProblem::FixedInfoSize { len: value.len() });
    };
    if fixed.signature.get() != FIXED_SIGNATURE {
        return Err(ResourceProblem::FixedInfoSignature {
            signature: fixed.signature.get(),
        });
    }
    Ok(Some((
        FileVersion::from_ms_ls(fixed.file_version_ms.get(), fixed.file_version_ls.get()),
        FileVersion::from_ms_ls(
            fixed.product_version_ms.get(),
            fixed.product_version_ls.get(),
        ),
    )))
}

fn for_each_child<'a>(
    data: &'a [u8],
    parent: &Block<'a>,
    depth: usize,
    visit: &mut dyn FnMut(Block<'a>, usize),
) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut offset = parent.children.start;
    for _ in 0..MAX_CHILDREN {
        let Some(child) = block_at(data, offset, parent.children.end) else {
            return;
        };
        let length = read_u16(data, offset) as usize;
        let next = align4(offset + length);
        visit(child, depth);
        if length < HEADER || next <= offset {
            return;
        }
        offset = next;
    }
}

/// Reads the block at `offset`, clamped to `limit` (its parent's end).
fn block_at(data: &[u8], offset: usize, limit: usize) -> Option<Block<'_>> {
    let limit = limit.min(data.len());
    if offset.checked_add(HEADER)? > limit {
        return None;
    }
    let (header, _) = BlockHeader::ref_from_prefix(&data[offset..]).ok()?;
    let length = usize::from(header.length.get());
    if length < HEADER {
        return None;
    }
    let end = (offset + length).min(limit);
    let value_length = usize::from(header.value_length.get());
    let value_is_text = header.kind.get() == 1;

    let key_start = offset + HEADER;
    let mut cursor = key_start;
    let mut key_end = None;
    while cursor + 2 <= end {
        let unit = read_u16(data, cursor);
        cursor += 2;
        if unit == 0 {
            key_end = Some(cursor - 2);
            break;
        }
    }
    let key_end = key_end.unwrap_or(cursor);
    let value_start = align4(cursor).min(end);
    // Text values count WCHARs; binary values count bytes. Files get this wrong, so clamp.
    let value_bytes = if value_is_text {
        value_length * 2
    } else {
        value_length
    };
    let value_end = (value_start + value_bytes).min(end);
    let children_start = align4(value_end).min(end);
    Some(Block {
        key: &data[key_start..key_end],
        value: &data[value_start..value_end],
        children: children_start..end,
    })
}

fn read_u16(data: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([data[offset], data[offset + 1]])
}

fn align4(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

/// Text up to the first NUL; unpaired surrogates become U+FFFD.
fn utf16_text(bytes: &[u8]) -> String {
    let units = bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds one block as windres lays it out.
    pub(crate) fn block(key: &str, value: &[u8], text: bool, children: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER];
        for unit in key.encode_utf16().chain([0]) {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(value);
        for child in children {
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(child);
        }
        let value_length = if text { value.len() / 2 } else { value.len() };
        let length = out.len() as u16;
        out[0..2].copy_from_slice(&length.to_le_bytes());
        out[2..4].copy_from_slice(&(value_length as u16).to_le_bytes());
        out[4..6].copy_from_slice(&(u16::from(text)).to_le_bytes());
        out
    }

    pub(crate) fn fixed(file: (u32, u32), product: (u32, u32)) -> Vec<u8> {
        let mut out = Vec::new();
        for dword in [
            FIXED_SIGNATURE,
            0x0001_0000,
            file.0,
            file.1,
            product.0,
            product.1,
        ] {
            out.extend_from_slice(&dword.to_le_bytes());
        }
        out.resize(FIXED_SIZE, 0);
        out
    }

    fn text(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    fn sample() -> Vec<u8> {
        let strings = block(
            "040904B0",
            &[],
            true,
            &[
                block("CompanyName", &text("x"), true, &[]),
                block("FileVersion", &text("1.9.9.9 (winmain)"), true, &[]),
                block("ProductVersion", &text("3.1"), true, &[]),
            ],
        );
        let sfi = block("StringFileInfo", &[], true, &[strings]);
        let vfi = block(
            "VarFileInfo",
            &[],
            true,
            &[block("Translation", &[9, 4, 0xb0, 4], false, &[])],
        );
        block(
            "VS_VERSION_INFO",
            &fixed((0x0002_0000, 0), (0x0003_0001, 0)),
            false,
            &[sfi, vfi],
        )
    }

    #[test]
    fn reads_fixed_and_string_versions() {
        let parsed = parse_version_info(&sample());
        assert_eq!(parsed.file_version.unwrap().to_string(), "2.0.0.0");
        assert_eq!(parsed.product_version.unwrap().to_string(), "3.1.0.0");
        assert_eq!(
            parsed.file_version_string.as_deref(),
            Some("1.9.9.9 (winmain)")
        );
        assert_eq!(parsed.product_version_string.as_deref(), Some("3.1"));
        assert_eq!(parsed.string_table.as_deref(), Some("040904B0"));
        assert_eq!(parsed.problem, None);
    }

    #[test]
    fn every_truncation_is_handled() {
        let full = sample();
        for len in 0..full.len() {
            let parsed = parse_version_info(&full[..len]);
            if len < 6 {
                assert!(parsed.problem.is_some());
            }
        }
    }

    #[test]
    fn bad_signature_is_a_problem_not_a_version() {
        let mut data = sample();
        let sig_at = data
            .windows(4)
            .position(|w| w == FIXED_SIGNATURE.to_le_bytes())
            .unwrap();
        data[sig_at] ^= 0xff;
        let parsed = parse_version_info(&data);
        assert_eq!(parsed.file_version, None);
        let problem = parsed.problem.unwrap();
        assert_eq!(
            problem,
            ResourceProblem::FixedInfoSignature {
                signature: FIXED_SIGNATURE ^ 0xff
            }
        );
        assert_eq!(
            problem.to_string(),
            format!(
                "VS_FIXEDFILEINFO signature is {:#010x}, not 0xfeef04bd",
                FIXED_SIGNATURE ^ 0xff
            )
        );
        assert_eq!(
            parsed.file_version_string.as_deref(),
            Some("1.9.9.9 (winmain)")
        );
    }

    #[test]
    fn lengths_that_lie_are_clamped() {
        let mut data = sample();
        data[0..2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(
            parse_version_info(&data).file_version.unwrap().to_string(),
            "2.0.0.0"
        );
        // A child claiming zero length ends the walk instead of looping.
        let mut data = sample();
        let key: Vec<u8> = "StringFileInfo"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let sfi_at = data.windows(key.len()).position(|w| w == key).unwrap() - HEADER;
        data[sfi_at..sfi_at + 2].copy_from_slice(&0u16.to_le_bytes());
        let parsed = parse_version_info(&data);
        assert_eq!(parsed.file_version_string, None);
    }
}
