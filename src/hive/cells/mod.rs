//! Bounds checks on the cells nt-hive is about to follow.
//!
//! nt-hive 0.3 reads cells by offset and trusts what it finds: an offset of `0xFFFF_FFFF`
//! where a cell is required trips an `assert!`, and a cell whose size field is 0 makes it
//! subtract past zero. Before we ask it to open a key's subkey list, its value list or a
//! value's data, the cells it will touch are checked here, so a damaged hive gives a clear
//! [`Damage`] message (with the file offset) instead of a panic. The checks are exactly the
//! references nt-hive follows for the calls `hive/mod.rs` makes: subkey lists (`lf`, `lh`,
//! `li`, and `ri` with its leaves), the key cells they name, value lists and the `vk` cells they
//! name, and a value's data cell or big-data (`db`) segments.
//!
//! They also bound the work: lists must not repeat a key, a value or an index leaf, nor name
//! the key they belong to or one above it on the path being walked (a list that loops), and a
//! value's data may not claim more bytes than the hive bins hold (big-data segments that lie).
//! Every check is linear in the size of the list it looks at, which is at most the hive's size.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashSet;

use nt_hive::{KeyNode, KeyValue, NtHiveNameString};
use zerocopy::little_endian::U32;
use zerocopy::FromBytes;

mod damage;
mod layout;

pub use damage::{CellKind, Damage, ListKind};
use layout::{
    BigDataHeader, CellHeader, HashedItem, KeyNodeHeader, ListHeader, ListItem, ValueKeyHeader,
};

/// Offset of the key name in an `nk` cell's payload (the fixed header before it).
const NK_HEADER: usize = size_of::<KeyNodeHeader>();
/// Offset of the value name in a `vk` cell's payload.
const VK_HEADER: usize = size_of::<ValueKeyHeader>();
const CELL_HEADER: usize = size_of::<CellHeader>();
/// "No cell" in an offset field.
const NO_CELL: u32 = u32::MAX;
/// Data size flag: the data (up to 4 bytes) is in the data offset field itself.
const DATA_INLINE: u32 = 0x8000_0000;
/// Bytes per big-data segment; values up to this size are one cell.
const BIG_DATA_SEGMENT: usize = 16_344;
/// `nk` flag: the name is Latin-1, not UTF-16LE.
const KEY_COMP_NAME: u16 = 0x0020;
/// `vk` flag: the name is Latin-1, not UTF-16LE.
const VALUE_COMP_NAME: u16 = 0x0001;
/// Offset of the hive bins in the file, for messages.
const BINS_START: usize = 4096;
/// List entries any hive may have checked, however small.
const MIN_BUDGET: usize = 65_536;

type Checked<T> = Result<T, Damage>;

/// The hive bins data (the file after its base block, up to the declared size), as nt-hive
/// sees it: cell offsets count from its start.
pub struct Cells<'a> {
    data: &'a [u8],
    /// List entries the checks may still look at, over all calls. Distinct lists of a real
    /// hive hold far fewer entries than its size in bytes; keys sharing one huge list many
    /// times over (a crafted hive) run it out.
    budget: Cell<usize>,
}

/// What the report needs to know about a value's data before reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCheck {
    /// nt-hive can read it.
    Readable,
    /// The value holds no data bytes; whatever its data offset says, there is nothing to read
    /// (Windows writes offset 0 or `0xFFFF_FFFF` beside a size of 0; nt-hive panics on the
    /// latter).
    Empty,
    /// Over 16,344 bytes but in one plain cell, not big data: how hives before regf 1.4 and
    /// hivex (also in 1.4+ hives) store large values. nt-hive reads any such value as big data
    /// and fails on it, so it is read here: `size` bytes from the cell at `offset`.
    SingleCell { offset: u32, size: u32 },
}

impl<'a> Cells<'a> {
    pub fn new(data: &'a [u8]) -> Cells<'a> {
        Cells {
            data,
            budget: Cell::new(data.len().max(MIN_BUDGET)),
        }
    }

    /// Accounts for looking at `entries` more list entries.
    fn spend(&self, entries: usize, what: &str) -> Checked<()> {
        let left = self.budget.get();
        if entries > left {
            return Err(Damage::TooManyEntries {
                what: what.to_string(),
                bins_size: self.data.len(),
            });
        }
        self.budget.set(left - entries);
        Ok(())
    }

    /// The payload of a value's single data cell ([`DataCheck::SingleCell`]).
    pub fn single_cell(&self, offset: u32, size: u32, what: &str) -> Checked<&'a [u8]> {
        let cell = self.cell(offset, what)?;
        cell.get(..size as usize)
            .ok_or_else(|| Damage::CellTooSmall {
                what: what.to_string(),
                size,
            })
    }

    /// The payload of the allocated cell at `offset` (after its 4-byte size field).
    fn cell(&self, offset: u32, what: &str) -> Checked<&'a [u8]> {
        if offset == NO_CELL {
            return Err(Damage::NoCell {
                what: what.to_string(),
            });
        }
        let start = offset as usize;
        let at = file_offset(offset);
        let Some((header, _)) = self
            .data
            .get(start..)
            .and_then(|rest| CellHeader::ref_from_prefix(rest).ok())
        else {
            return Err(Damage::OutsideBins {
                what: what.to_string(),
                offset: at,
                bins_size: self.data.len(),
            });
        };
        let size = header.size.get();
        if size >= 0 {
            return Err(Damage::NotAllocated {
                what: what.to_string(),
                offset: at,
                size_field: size,
            });
        }
        let size = size.unsigned_abs() as usize;
        if size < 8 || size % 8 != 0 {
            return Err(Damage::ImpossibleSize {
                what: what.to_string(),
                offset: at,
                size,
            });
        }
        self.data
            .get(start + CELL_HEADER..start.saturating_add(size))
            .ok_or_else(|| Damage::PastEnd {
                what: what.to_string(),
                offset: at,
                size,
                bins_size: self.data.len(),
            })
    }

    /// The `nk` cell at `offset`.
    pub fn key(&self, offset: u32, what: &str) -> Checked<KeyCell<'a>> {
        let payload = self.cell(offset, what)?;
        match KeyNodeHeader::ref_from_prefix(payload) {
            Ok((header, name)) if header.signature == *b"nk" => Ok(KeyCell {
                offset,
                header,
                name,
            }),
            _ => Err(wrong_kind(what, offset, CellKind::Key)),
        }
    }

    /// Checks the subkey list of `key` and every key cell it names, as nt-hive will follow
    /// them to look a subkey up or to list them. `path` holds the offsets of the keys above
    /// `key` on the walk (root first): a list naming one of them, or `key` itself, loops.
    /// Returns the offsets of the subkeys, in list order.
    pub fn subkeys(&self, key: &KeyCell<'a>, path: &[u32], what: &str) -> Checked<Vec<u32>> {
        let list_offset = key.header.subkey_list.get();
        if list_offset == NO_CELL {
            return Ok(Vec::new());
        }
        let what = format!("the subkey list of {what}");
        let list = self.cell(list_offset, &what)?;
        let mut offsets = Vec::new();
        match list.get(..2) {
            Some(b"ri") => {
                let leaves = items::<U32>(list, &what)?;
                self.spend(leaves.len(), &what)?;
                let mut seen_leaves = HashSet::with_capacity(leaves.len());
                for leaf_offset in leaves {
                    if !seen_leaves.insert(leaf_offset) {
                        return Err(Damage::Loops {
                            what,
                            offset: file_offset(leaf_offset),
                            named: CellKind::IndexLeaf,
                        });
                    }
                    let leaf_what = format!("an index leaf of {what}");
                    let found = self.leaf(leaf_offset, &leaf_what)?;
                    if found.is_empty() {
                        return Err(Damage::EmptyLeaf { what: leaf_what });
                    }
                    offsets.extend(found);
                }
            }
            Some(b"lf" | b"lh") => offsets = items::<HashedItem>(list, &what)?,
            Some(b"li") => offsets = items::<U32>(list, &what)?,
            _ => return Err(wrong_kind(&what, list_offset, CellKind::SubkeyList)),
        }
        self.spend(offsets.len(), &what)?;
        let mut seen = HashSet::with_capacity(offsets.len());
        for &offset in &offsets {
            if offset == key.offset || path.contains(&offset) {
                return Err(Damage::NamesAncestor {
                    what,
                    offset: file_offset(offset),
                    subkey: None,
                });
            }
            if !seen.insert(offset) {
                return Err(Damage::Loops {
                    what,
                    offset: file_offset(offset),
                    named: CellKind::Key,
                });
            }
            self.key(offset, &format!("a subkey in {what}"))?;
        }
        Ok(offsets)
    }

    /// Looks `name` up in the subkey list of `key` the way nt-hive's `KeyNode::subkey` does (a
    /// binary search over the leaf, or over the index root's leaves by their first and last
    /// names, then inside one leaf), checking each cell that search touches before nt-hive
    /// follows it. Damage elsewhere in the list does not matter to the lookup, as it does not
    /// to Windows. Returns the offset of the key found; a key that is `key` itself or one of
    /// `path` (the keys above it) is a list that loops.
    pub fn find_subkey(
        &self,
        key: &KeyCell<'a>,
        path: &[u32],
        name: &str,
        what: &str,
    ) -> Checked<Option<u32>> {
        let list_offset = key.header.subkey_list.get();
        if list_offset == NO_CELL {
            return Ok(None);
        }
        let list_what = format!("the subkey list of {what}");
        let list = self.cell(list_offset, &list_what)?;
        let found = match list.get(..2) {
            Some(b"ri") => {
                let leaves = items::<U32>(list, &list_what)?;
                self.search_index_root(&leaves, name, &list_what)?
            }
            _ => {
                let leaf = self.leaf(list_offset, &list_what)?;
                self.search_leaf(&leaf, name, &list_what)?
            }
        };
        if let Some(offset) = found {
            if offset == key.offset || path.contains(&offset) {
                return Err(Damage::NamesAncestor {
                    what: list_what,
                    offset: file_offset(offset),
                    subkey: Some(name.to_string()),
                });
            }
        }
        Ok(found)
    }

    /// The key offsets of the `lf`, `lh` or `li` list at `offset`.
    fn leaf(&self, offset: u32, what: &str) -> Checked<Vec<u32>> {
        let leaf = self.cell(offset, what)?;
        match leaf.get(..2) {
            Some(b"lf" | b"lh") => items::<HashedItem>(leaf, what),
            Some(b"li") => items::<U32>(leaf, what),
            _ => Err(wrong_kind(what, offset, CellKind::IndexLeaf)),
        }
    }

    /// nt-hive's index-root search: by the first and last key of the middle leaf.
    fn search_index_root(&self, leaves: &[u32], name: &str, what: &str) -> Checked<Option<u32>> {
        let (mut left, mut right) = (0i64, leaves.len() as i64 - 1);
        while left <= right {
            let mid = (left + right) / 2;
            let leaf_what = format!("an index leaf of {what}");
            let leaf = self.leaf(leaves[mid as usize], &leaf_what)?;
            let (Some(&first), Some(&last)) = (leaf.first(), leaf.last()) else {
                return Err(Damage::EmptyLeaf { what: leaf_what });
            };
            match self.compare_key(first, name, &leaf_what)? {
                Ordering::Equal => return Ok(Some(first)),
                Ordering::Greater => {
                    right = mid - 1;
                    continue;
                }
                Ordering::Less => {}
            }
            match self.compare_key(last, name, &leaf_what)? {
                Ordering::Equal => return Ok(Some(last)),
                Ordering::Less => {
                    left = mid + 1;
                    continue;
                }
                Ordering::Greater => {}
            }
            return self.search_leaf(&leaf, name, &leaf_what);
        }
        Ok(None)
    }

    /// nt-hive's leaf search: binary, by key name.
    fn search_leaf(&self, keys: &[u32], name: &str, what: &str) -> Checked<Option<u32>> {
        let (mut left, mut right) = (0i64, keys.len() as i64 - 1);
        while left <= right {
            let mid = (left + right) / 2;
            let offset = keys[mid as usize];
            match self.compare_key(offset, name, what)? {
                Ordering::Equal => return Ok(Some(offset)),
                Ordering::Less => left = mid + 1,
                Ordering::Greater => right = mid - 1,
            }
        }
        Ok(None)
    }

    /// The key at `offset` compared with `name`, as nt-hive compares them (case-insensitive,
    /// by its upper-case table).
    fn compare_key(&self, offset: u32, name: &str, what: &str) -> Checked<Ordering> {
        let key = self.key(offset, &format!("a subkey in {what}"))?;
        let length = usize::from(key.header.name_length.get());
        let Some(bytes) = key.name.get(..length) else {
            return Err(Damage::NameOverflow {
                what: format!("a subkey in {what}"),
                kind: CellKind::Key,
                offset: file_offset(offset),
                length,
            });
        };
        let stored = if key.header.flags.get() & KEY_COMP_NAME != 0 {
            NtHiveNameString::Latin1(bytes)
        } else {
            NtHiveNameString::Utf16LE(bytes)
        };
        Ok(stored.partial_cmp(name).unwrap_or(Ordering::Less))
    }

    /// Looks `name` up in the value list of `key` the way nt-hive's `KeyNode::value` does (in
    /// list order, until a name matches), checking each `vk` cell before nt-hive reads it.
    /// Returns the value cell's offset.
    pub fn find_value(&self, key: &KeyCell<'a>, name: &str, what: &str) -> Checked<Option<u32>> {
        let Some((list, what)) = self.value_list(key, what)? else {
            return Ok(None);
        };
        for item in list {
            self.spend(1, &what)?;
            let offset = item.get();
            let (vk, name_area) = self.value(offset, &format!("a value in {what}"))?;
            let length = usize::from(vk.name_length.get());
            let Some(bytes) = name_area.get(..length) else {
                return Err(Damage::NameOverflow {
                    what: format!("a value in {what}"),
                    kind: CellKind::Value,
                    offset: file_offset(offset),
                    length,
                });
            };
            let stored = if vk.flags.get() & VALUE_COMP_NAME != 0 {
                NtHiveNameString::Latin1(bytes)
            } else {
                NtHiveNameString::Utf16LE(bytes)
            };
            if stored == name {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// The items of the value list of `key`, and the list's name for messages.
    fn value_list(&self, key: &KeyCell<'a>, what: &str) -> Checked<Option<(&'a [U32], String)>> {
        let list_offset = key.header.value_list.get();
        if list_offset == NO_CELL {
            return Ok(None);
        }
        let count = key.header.value_count.get() as usize;
        let what = format!("the value list of {what}");
        let list = self.cell(list_offset, &what)?;
        let Ok((items, _)) = <[U32]>::ref_from_prefix_with_elems(list, count) else {
            return Err(Damage::ListOverflow {
                what,
                list: ListKind::Values,
                count,
                held: list.len(),
            });
        };
        Ok(Some((items, what)))
    }

    /// Checks the value list of `key` and every `vk` cell it names, as nt-hive follows them to
    /// find a value by name or to list them. Returns the value cell offsets, in list order.
    pub fn values(&self, key: &KeyCell<'a>, what: &str) -> Checked<Vec<u32>> {
        let Some((items, what)) = self.value_list(key, what)? else {
            return Ok(Vec::new());
        };
        let count = items.len();
        self.spend(count, &what)?;
        let mut seen = HashSet::with_capacity(count);
        let mut offsets = Vec::with_capacity(count);
        for item in items {
            let offset = item.get();
            if !seen.insert(offset) {
                return Err(Damage::Repeated {
                    what,
                    offset: file_offset(offset),
                    named: CellKind::Value,
                });
            }
            self.value(offset, &format!("a value in {what}"))?;
            offsets.push(offset);
        }
        Ok(offsets)
    }

    /// The `vk` cell at `offset`: its fixed header, and the bytes after it (the name).
    fn value(&self, offset: u32, what: &str) -> Checked<(&'a ValueKeyHeader, &'a [u8])> {
        let payload = self.cell(offset, what)?;
        match ValueKeyHeader::ref_from_prefix(payload) {
            Ok((header, name)) if header.signature == *b"vk" => Ok((header, name)),
            _ => Err(wrong_kind(what, offset, CellKind::Value)),
        }
    }

    /// Checks the data of the `vk` cell at `offset` before nt-hive reads it: its data cell, or
    /// its big-data header, segment list and the segments its size needs. The declared size
    /// may not exceed `limit` bytes (a value cannot hold more than the hive).
    pub fn value_data(&self, offset: u32, limit: usize, what: &str) -> Checked<DataCheck> {
        let (vk, _) = self.value(offset, what)?;
        let raw_size = vk.data_size.get();
        let data_offset = vk.data_offset.get();
        if raw_size & DATA_INLINE != 0 {
            // Up to 4 bytes in the offset field; nt-hive rejects larger sizes itself.
            return Ok(DataCheck::Readable);
        }
        let size = raw_size as usize;
        if size == 0 {
            return Ok(DataCheck::Empty);
        }
        if size > limit {
            return Err(Damage::DataTooLarge {
                what: what.to_string(),
                size,
                limit,
            });
        }
        let data_what = format!("the data of {what}");
        let cell = self.cell(data_offset, &data_what)?;
        if size <= BIG_DATA_SEGMENT {
            return Ok(DataCheck::Readable);
        }
        let db = match BigDataHeader::ref_from_prefix(cell) {
            Ok((db, _)) if db.signature == *b"db" => db,
            // One large cell instead of big data: read it when it holds the whole value.
            // Otherwise nt-hive reports the missing `db` signature itself.
            _ if cell.len() >= size => {
                return Ok(DataCheck::SingleCell {
                    offset: data_offset,
                    size: size as u32,
                })
            }
            _ => return Ok(DataCheck::Readable),
        };
        let segments = usize::from(db.segment_count.get());
        let needed = size.div_ceil(BIG_DATA_SEGMENT);
        if segments < needed {
            return Err(Damage::TooFewSegments {
                what: data_what,
                segments,
                size,
            });
        }
        let list_offset = db.segment_list.get();
        let list_what = format!("the big-data segment list of {what}");
        let list = self.cell(list_offset, &list_what)?;
        let Ok((items, _)) = <[U32]>::ref_from_prefix_with_elems(list, segments) else {
            return Err(Damage::ListOverflow {
                what: list_what,
                list: ListKind::Segments,
                count: segments,
                held: list.len(),
            });
        };
        self.spend(needed, &list_what)?;
        let mut seen = HashSet::with_capacity(needed);
        for (index, item) in items.iter().take(needed).enumerate() {
            let segment = item.get();
            if !seen.insert(segment) {
                return Err(Damage::Repeated {
                    what: list_what,
                    offset: file_offset(segment),
                    named: CellKind::Segment,
                });
            }
            let segment_what = format!("big-data segment {index} of {what}");
            let payload = self.cell(segment, &segment_what)?;
            let wanted = (size - index * BIG_DATA_SEGMENT).min(BIG_DATA_SEGMENT);
            if payload.len() < wanted {
                return Err(Damage::ShortSegment {
                    what: segment_what,
                    held: payload.len(),
                    wanted,
                });
            }
        }
        Ok(DataCheck::Readable)
    }

    /// The offset of the `nk` cell nt-hive handed out as `key`: its name lies in our bytes,
    /// right after the fixed header. `None` if it does not (nt-hive copied it, or the name
    /// cannot be read).
    pub fn offset_of_key(&self, key: &KeyNode<'_, &[u8]>) -> Option<u32> {
        let name = key.name().ok()?;
        self.offset_before(name_bytes(&name), NK_HEADER)
    }

    /// The offset of the `vk` cell nt-hive handed out as `value`.
    pub fn offset_of_value(&self, value: &KeyValue<'_, &[u8]>) -> Option<u32> {
        let name = value.name().ok()?;
        self.offset_before(name_bytes(&name), VK_HEADER)
    }

    fn offset_before(&self, name: &[u8], header: usize) -> Option<u32> {
        let base = self.data.as_ptr() as usize;
        let at = (name.as_ptr() as usize).checked_sub(base)?;
        if at > self.data.len() {
            return None;
        }
        let offset = at.checked_sub(header + CELL_HEADER)?;
        u32::try_from(offset).ok()
    }

    /// Bytes of hive bins data.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// An `nk` cell whose fixed header is present.
#[derive(Clone, Copy, Debug)]
pub struct KeyCell<'a> {
    pub offset: u32,
    header: &'a KeyNodeHeader,
    /// The rest of the cell: the key name, then slack.
    name: &'a [u8],
}

impl KeyCell<'_> {
    /// The key's last-write time (nt-hive has no accessor for it).
    pub fn last_written(&self) -> Option<u64> {
        Some(self.header.last_written.get())
    }
}

fn name_bytes<'n>(name: &'n NtHiveNameString<'_>) -> &'n [u8] {
    match name {
        NtHiveNameString::Latin1(bytes) | NtHiveNameString::Utf16LE(bytes) => bytes,
    }
}

/// The file offset of the cell at `offset` in the hive bins, for messages.
fn file_offset(offset: u32) -> usize {
    BINS_START + offset as usize
}

fn wrong_kind(what: &str, offset: u32, expected: CellKind) -> Damage {
    Damage::WrongKind {
        what: what.to_string(),
        offset: file_offset(offset),
        expected,
    }
}

/// The cell offsets in the items of a subkey list or index root, whose items are `T`.
fn items<T: ListItem>(list: &[u8], what: &str) -> Checked<Vec<u32>> {
    let count =
        ListHeader::ref_from_prefix(list).map_or(0, |(header, _)| usize::from(header.count.get()));
    let entries = list
        .get(size_of::<ListHeader>()..)
        .and_then(|rest| <[T]>::ref_from_prefix_with_elems(rest, count).ok());
    let Some((entries, _)) = entries else {
        return Err(Damage::ListOverflow {
            what: what.to_string(),
            list: ListKind::Subkeys,
            count,
            held: list.len(),
        });
    };
    Ok(entries.iter().map(ListItem::cell).collect())
}

#[cfg(test)]
mod tests;
