//! The fixed parts of the cells the checks read, as stored. All unaligned: a cell starts at
//! any multiple of 8 in a buffer whose own alignment is not known.

use zerocopy::little_endian::{I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The size field in front of every cell: negative for an allocated cell, and its magnitude
/// the cell's size, this field included.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct CellHeader {
    pub size: I32,
}

/// The fixed header of a key (`nk`) cell; the key name follows it.
#[derive(Debug, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct KeyNodeHeader {
    /// `nk`.
    pub signature: [u8; 2],
    pub flags: U16,
    /// FILETIME.
    pub last_written: U64,
    _access_bits: U32,
    _parent: U32,
    _subkey_count: U32,
    _volatile_subkey_count: U32,
    pub subkey_list: U32,
    _volatile_subkey_list: U32,
    pub value_count: U32,
    pub value_list: U32,
    _security: U32,
    _class_name: U32,
    _largest_subkey_name: U32,
    _largest_subkey_class: U32,
    _largest_value_name: U32,
    _largest_value_data: U32,
    _work_var: U32,
    pub name_length: U16,
    _class_name_length: U16,
}

/// The fixed header of a value (`vk`) cell; the value name follows it.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct ValueKeyHeader {
    /// `vk`.
    pub signature: [u8; 2],
    pub name_length: U16,
    /// With the top bit set, the data (up to 4 bytes) is `data_offset` itself.
    pub data_size: U32,
    pub data_offset: U32,
    _data_type: U32,
    pub flags: U16,
    _spare: U16,
}

/// A big-data (`db`) cell: where the segments of a value over 16,344 bytes are listed.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct BigDataHeader {
    /// `db`.
    pub signature: [u8; 2],
    pub segment_count: U16,
    pub segment_list: U32,
}

/// The header of a subkey list (`lf`, `lh`, `li`) or index root (`ri`); its items follow.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct ListHeader {
    pub signature: [u8; 2],
    pub count: U16,
}

/// An item of an `lf` or `lh` list: a key cell and a hint or hash of its name (unused here,
/// as nt-hive compares the names themselves).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct HashedItem {
    pub cell: U32,
    _name_hash: [u8; 4],
}

/// An item of a list: the cell it names. `li` and `ri` items are bare cell offsets ([`U32`]).
pub(super) trait ListItem: FromBytes + KnownLayout + Immutable + Unaligned {
    fn cell(&self) -> u32;
}

impl ListItem for U32 {
    fn cell(&self) -> u32 {
        self.get()
    }
}

impl ListItem for HashedItem {
    fn cell(&self) -> u32 {
        self.cell.get()
    }
}

const _: () = assert!(size_of::<KeyNodeHeader>() == 76 && size_of::<ValueKeyHeader>() == 20);
const _: () = assert!(size_of::<BigDataHeader>() == 8 && size_of::<ListHeader>() == 4);
