//! Directory indexes (`$I30`): `$INDEX_ROOT` and the `INDX` blocks of `$INDEX_ALLOCATION`,
//! walked in order, and the `$FILE_NAME` keys they hold.

use super::record::{apply_fixups, u16_at, u32_at, u64_at};
use super::NtfsError;

/// File name namespaces.
pub const NAMESPACE_DOS: u8 = 2;

/// `$FILE_NAME` flags (file attributes as the index copies them).
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
pub const FILE_NAME_INDEX_PRESENT: u32 = 0x1000_0000;

/// One name in a directory.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    pub record: u64,
    pub sequence: u16,
    pub name: Vec<u16>,
    pub namespace: u8,
    pub flags: u32,
    /// The reparse tag, when the entry is a reparse point (the index keeps it).
    pub reparse_tag: u32,
    pub data_size: u64,
}

/// A `$FILE_NAME` value (the key of an index entry, or an attribute of a record).
pub fn parse_file_name(key: &[u8]) -> Option<(u64, IndexEntry)> {
    let parent = u64_at(key, 0)? & 0x0000_ffff_ffff_ffff;
    let name_len = usize::from(*key.get(0x40)?);
    let namespace = *key.get(0x41)?;
    let name = key
        .get(0x42..0x42 + 2 * name_len)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let flags = u32_at(key, 0x38)?;
    Some((
        parent,
        IndexEntry {
            record: 0,
            sequence: 0,
            name,
            namespace,
            flags,
            reparse_tag: if flags & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
                u32_at(key, 0x3c)?
            } else {
                0
            },
            data_size: u64_at(key, 0x30)?,
        },
    ))
}

/// The entries of one index node (the part after its index header), and the sub-node VCNs to
/// visit before each (in order) and after the last.
pub struct Node {
    pub items: Vec<NodeItem>,
}

pub enum NodeItem {
    Child(u64),
    Entry(IndexEntry),
}

/// Parses the index header at `header` in `buf` and its entries.
pub fn parse_node(buf: &[u8], header: usize, what: &str, at: u64) -> Result<Node, NtfsError> {
    let damaged = |why: String| NtfsError::Damaged {
        what: what.to_string(),
        offset: at,
        why,
    };
    let first =
        u32_at(buf, header).ok_or_else(|| damaged("index header cut short".into()))? as usize;
    let length = u32_at(buf, header + 4).unwrap_or(0) as usize;
    let end = header
        .checked_add(length)
        .filter(|e| *e <= buf.len())
        .ok_or_else(|| damaged(format!("index of {length} bytes is past the block's end")))?;
    let mut offset = header + first;
    let mut items = Vec::new();
    loop {
        if offset + 16 > end {
            return Err(damaged(format!(
                "index entry at byte {offset} is past the index's end"
            )));
        }
        let reference = u64_at(buf, offset).unwrap_or(0);
        let length = usize::from(u16_at(buf, offset + 8).unwrap_or(0));
        let key_length = usize::from(u16_at(buf, offset + 10).unwrap_or(0));
        let flags = u16_at(buf, offset + 12).unwrap_or(0);
        if length < 16 || offset + length > end {
            return Err(damaged(format!(
                "index entry at byte {offset} has length {length}"
            )));
        }
        if flags & 1 != 0 {
            let vcn = u64_at(buf, offset + length - 8).ok_or_else(|| {
                damaged(format!("index entry at byte {offset}: sub-node cut short"))
            })?;
            items.push(NodeItem::Child(vcn));
        }
        if flags & 2 != 0 {
            break;
        }
        let key = buf
            .get(offset + 16..offset + 16 + key_length)
            .filter(|_| 16 + key_length <= length)
            .ok_or_else(|| damaged(format!("index entry at byte {offset}: key past its end")))?;
        let (_, mut entry) = parse_file_name(key)
            .ok_or_else(|| damaged(format!("index entry at byte {offset}: file name cut short")))?;
        entry.record = reference & 0x0000_ffff_ffff_ffff;
        entry.sequence = (reference >> 48) as u16;
        items.push(NodeItem::Entry(entry));
        offset += length;
    }
    Ok(Node { items })
}

/// One `INDX` block, fixups applied; its node starts at byte 24.
pub fn parse_block(mut buf: Vec<u8>, what: &str, at: u64) -> Result<Node, NtfsError> {
    apply_fixups(&mut buf, b"INDX", what, at)?;
    parse_node(&buf, 24, what, at)
}
