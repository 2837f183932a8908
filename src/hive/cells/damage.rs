//! [`Damage`]: why a cell cannot be followed, as data; its `Display` is the report's wording.

use std::fmt;

/// Why a cell cannot be followed. `what` names what was being followed, in words (`the
/// subkey list of ControlSet001`); offsets are file offsets (the hive bins start at 4,096).
///
/// Serialised (a finding's `detail`) with its case in `damage`, kebab-case, and its fields.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "damage", rename_all = "kebab-case")]
pub enum Damage {
    /// The lists checked so far name more entries in all than the hive bins could hold.
    TooManyEntries { what: String, bins_size: usize },
    /// A value's single data cell holds less than its declared size.
    CellTooSmall { what: String, size: u32 },
    /// `0xFFFF_FFFF` where a cell is required.
    NoCell { what: String },
    /// An offset past the hive bins.
    OutsideBins {
        what: String,
        offset: usize,
        bins_size: usize,
    },
    /// A size field of 0 (zeroed) or positive (a free cell).
    NotAllocated {
        what: String,
        offset: usize,
        size_field: i32,
    },
    /// A cell size that is not a multiple of 8 of at least 8.
    ImpossibleSize {
        what: String,
        offset: usize,
        size: usize,
    },
    /// A cell size running past the hive bins.
    PastEnd {
        what: String,
        offset: usize,
        size: usize,
        bins_size: usize,
    },
    /// The cell is not of the kind the reference needs.
    WrongKind {
        what: String,
        offset: usize,
        expected: CellKind,
    },
    /// A subkey list or index root names a key or leaf twice: walking it would loop.
    Loops {
        what: String,
        offset: usize,
        named: CellKind,
    },
    /// A value list or segment list names a value or segment twice.
    Repeated {
        what: String,
        offset: usize,
        named: CellKind,
    },
    /// A subkey list names the key it belongs to or one above it. `subkey` is the name
    /// looked up, when the key was found by a lookup.
    NamesAncestor {
        what: String,
        offset: usize,
        subkey: Option<String>,
    },
    /// An index leaf with no entries.
    EmptyLeaf { what: String },
    /// A key or value name longer than its cell.
    NameOverflow {
        what: String,
        kind: CellKind,
        offset: usize,
        length: usize,
    },
    /// A list declaring more items than its cell holds.
    ListOverflow {
        what: String,
        list: ListKind,
        count: usize,
        held: usize,
    },
    /// A value declaring more data than the hive bins hold.
    DataTooLarge {
        what: String,
        size: usize,
        limit: usize,
    },
    /// Fewer big-data segments than the value's size needs.
    TooFewSegments {
        what: String,
        segments: usize,
        size: usize,
    },
    /// A big-data segment holding less than its part of the value.
    ShortSegment {
        what: String,
        held: usize,
        wanted: usize,
    },
    /// The cell of a key or value the hive reader handed out is not in the hive bins.
    Unlocated { kind: CellKind },
    /// The hive reader's subkey lookup ended at another key cell than the checks' lookup.
    ReaderDisagrees,
    /// `MountedDevices` values declaring more data in all than the hive bins hold.
    ValuesTooLarge { bins_size: usize },
}

/// The kinds of cell a [`Damage`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellKind {
    Key,
    Value,
    /// An `lf`, `lh` or `li` list under an index root.
    IndexLeaf,
    /// `lf`, `lh`, `li` or `ri`.
    SubkeyList,
    /// A big-data segment.
    Segment,
}

/// The lists whose declared item count can exceed their cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListKind {
    /// A subkey list or index root.
    Subkeys,
    Values,
    /// A big-data segment list.
    Segments,
}

impl CellKind {
    fn noun(self) -> &'static str {
        match self {
            CellKind::Key => "key",
            CellKind::Value => "value",
            CellKind::IndexLeaf => "index leaf",
            CellKind::SubkeyList => "subkey list",
            CellKind::Segment => "segment",
        }
    }

    /// The kind with its signatures, as in "is not a key (nk) cell".
    fn with_signature(self) -> &'static str {
        match self {
            CellKind::Key => "a key (nk) cell",
            CellKind::Value => "a value (vk) cell",
            CellKind::IndexLeaf => "an lf, lh or li list",
            CellKind::SubkeyList => "a subkey list (lf, lh, li or ri)",
            CellKind::Segment => "a big-data segment",
        }
    }
}

impl ListKind {
    fn items(self) -> &'static str {
        match self {
            ListKind::Subkeys => "entries",
            ListKind::Values => "values",
            ListKind::Segments => "segments",
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::TooManyEntries { what, bins_size } => write!(
                f,
                "{what}: the hive's lists name more entries in all than its {bins_size} bytes can hold (lists shared or looping)"
            ),
            Damage::CellTooSmall { what, size } => {
                write!(f, "{what}: its cell is smaller than {size} bytes")
            }
            Damage::NoCell { what } => write!(
                f,
                "{what} has no cell (offset 0xffffffff) where one is required"
            ),
            Damage::OutsideBins {
                what,
                offset,
                bins_size,
            } => write!(
                f,
                "{what} points to offset {offset:#x}, outside the {bins_size} bytes of hive bins"
            ),
            Damage::NotAllocated {
                what,
                offset,
                size_field,
            } => write!(
                f,
                "{what} points to offset {offset:#x}, which is not an allocated cell (size field {size_field}{})",
                if *size_field == 0 { ", zeroed" } else { ", a free cell" }
            ),
            Damage::ImpossibleSize { what, offset, size } => write!(
                f,
                "{what}: the cell at offset {offset:#x} has an impossible size of {size} bytes (cells are multiples of 8)"
            ),
            Damage::PastEnd {
                what,
                offset,
                size,
                bins_size,
            } => write!(
                f,
                "{what}: the cell at offset {offset:#x} declares {size} bytes, past the end of the hive bins ({bins_size} bytes)"
            ),
            Damage::WrongKind {
                what,
                offset,
                expected,
            } => write!(
                f,
                "{what}: the cell at offset {offset:#x} is not {}",
                expected.with_signature()
            ),
            Damage::Loops {
                what,
                offset,
                named,
            } => write!(
                f,
                "{what} names the {} at offset {offset:#x} twice (a list that loops)",
                named.noun()
            ),
            Damage::Repeated {
                what,
                offset,
                named,
            } => write!(
                f,
                "{what} names the {} at offset {offset:#x} twice",
                named.noun()
            ),
            Damage::NamesAncestor {
                what,
                offset,
                subkey,
            } => {
                write!(f, "{what} names the key at offset {offset:#x}")?;
                if let Some(name) = subkey {
                    write!(f, " as its subkey {name}")?;
                }
                f.write_str(", which is the key itself or one above it (a list that loops)")
            }
            Damage::EmptyLeaf { what } => write!(f, "{what} is empty"),
            Damage::NameOverflow {
                what,
                kind,
                offset,
                length,
            } => write!(
                f,
                "{what}: the {} at offset {offset:#x} has a {length}-byte name that does not fit its cell",
                kind.noun()
            ),
            Damage::ListOverflow {
                what,
                list,
                count,
                held,
            } => write!(
                f,
                "{what} declares {count} {}, but its cell holds {held} bytes",
                list.items()
            ),
            Damage::DataTooLarge { what, size, limit } => write!(
                f,
                "{what} declares {size} bytes of data, more than the {limit} bytes the hive bins hold"
            ),
            Damage::TooFewSegments {
                what,
                segments,
                size,
            } => write!(
                f,
                "{what}: {segments} big-data segments cannot hold its {size} bytes"
            ),
            Damage::ShortSegment { what, held, wanted } => write!(
                f,
                "{what} holds {held} bytes, not the {wanted} its value needs"
            ),
            Damage::Unlocated { kind } => {
                write!(f, "its {} cell cannot be located", kind.noun())
            }
            Damage::ReaderDisagrees => {
                f.write_str("the hive reader found another key cell than the checks did")
            }
            Damage::ValuesTooLarge { bins_size } => write!(
                f,
                "its values declare more data in all than the {bins_size} bytes of hive bins"
            ),
        }
    }
}

impl std::error::Error for Damage {}
