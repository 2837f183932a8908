//! Deterministic writer for Windows registry hive files (regf), for tests only.
//!
//! [`HiveWriter`] builds a key tree in memory and [`HiveWriter::to_bytes`] lays out a primary
//! hive file; the same spec always gives the same bytes (key insertion order does not matter,
//! value order is insertion order). Format after Maxim Suhanov's regf specification, checked
//! against nt-hive 0.3, hivex 1.3.23 and the real SYSTEM hives in `../shared/hives`.
//!
//! What it writes:
//! - A 4,096-byte base block: `regf`, sequence numbers (default 1/1; differing = dirty),
//!   timestamp, version 1.minor (default 1.5), primary file, root cell, bins size, clustering
//!   factor 1, file name (last 31 UTF-16 units, default `SYSTEM`), XOR checksum.
//! - Hive bins of 4,096 bytes, or the multiple of 4,096 that holds one larger cell; cells
//!   8-byte aligned, never spanning bins; a bin's unused tail is one free cell.
//! - Per key, depth first: `nk` (root: KEY_HIVE_ENTRY | KEY_NO_DELETE; KEY_COMP_NAME when every
//!   char is below 0x80, else UTF-16LE), the value list, each `vk` with its data, an `lh` list
//!   sorted by upcased UTF-16 name with `h = h * 37 + upcase(unit)` hashes, then the subkeys.
//!   Counts and largest name/value-name (UTF-16 bytes) and value-data lengths are exact. One
//!   `sk` after the root nk: a self-relative descriptor (owner Administrators, group SYSTEM,
//!   protected DACL: Users read, Administrators/SYSTEM/CREATOR OWNER full), flink = blink =
//!   itself, reference count = number of keys.
//! - Values hold exactly the bytes given (odd lengths too): up to 4 bytes in the offset field;
//!   up to 16,344 in one cell; more as big data (`db`, segment list, 16,344-byte segments) when
//!   minor >= 4, else one large cell. Every segment cell is full size, the last one padded, as in
//!   real Windows hives. A 0-byte value is size `0x8000_0000`, offset 0, as Windows writes it
//!   (all 1,593 zero-length values of three real SYSTEM hives); [`ZeroLengthData`] gives the
//!   other encodings, which nt-hive 0.3 (panic / `UnallocatedCell`) and hivex (EFAULT) reject.
//!   The default value (name `""`) has VALUE_COMP_NAME clear, as Windows does.
//! - Names compare case-insensitively with Unicode simple uppercase mapping in the BMP, the same
//!   table as nt-hive 0.3 (checked for all 65,536 code units). A re-added key or value keeps the
//!   case it was first given; a re-set value keeps its position.
//!
//! What it does not write: transaction logs (`.LOG1`/`.LOG2`) or any recovery data (a dirty
//! hive here only has differing sequence numbers); `li`, `lf` or `ri` lists (one `lh` holds all
//! subkeys, up to 65,535, where Windows switches to an `ri` index root near 1,000); class
//! names; volatile keys, symbolic links, several security descriptors; free cells between used
//! ones; the Windows 10 base block extras (RmId/LogId GUIDs, `OfRg` flags, reorganize time).
//! Windows compresses any Latin-1 name; this writer only ASCII ones.
//!
//! hivex 1.3.23 (Debian) on these hives:
//! - `hivexregedit --export HIVE '\'` (libwin-hivex-perl) prints every key and value with the
//!   exact bytes, one value per line, keys and value names sorted: `"PFRO"=hex(7):5c,00,..`,
//!   odd length as is (`hex(7):61,00,62,00,00,00,41`), 0 bytes as `hex(7):`, the type in hex
//!   (`hex(b)` for REG_QWORD), `dword:00000001` for a 4-byte REG_DWORD, `@=hex(1):..` for the
//!   default value. Non-ASCII names come out mis-encoded (Perl prints Latin-1 bytes, or UTF-8
//!   with a "Wide character" warning).
//! - `hivexget HIVE KEY VALUE` (and hivexml's `<string>`s) for REG_MULTI_SZ: one string per line,
//!   where every UTF-16 NUL ends a string, so the list terminator shows as an extra empty
//!   string: `a\0b\0\0` prints `a`, `b` and an empty line; a rename plus a delete
//!   (`s\0d\0s2\0\0\0`) prints `s`, `d`, `s2` and two empty lines; `a\0b\0` (no terminator)
//!   prints `a`, `b`; `\0` prints one empty line; 0 bytes print nothing. Odd length: a dangling
//!   byte after a NUL is one more empty string (`61 00 62 00 00 00 41` prints `ab` and an empty
//!   line); directly after text it is dropped (`61 00 62` prints `a`). Data that is not UTF-16
//!   prints nothing and fails. REG_BINARY prints raw bytes. `hivexget HIVE KEY` (all values)
//!   writes the type in decimal (`hex(11)` for REG_QWORD).
//! - hivex reads `db` big data and also a large single cell (minor 3); nt-hive 0.3 reads any
//!   value over 16,344 bytes as big data and fails on the single cell.
//! - hivex folds only ASCII case in paths (`\controlset001\CONTROL` works, `\ÜNÏCÖDÉ` does not
//!   find `Ünïcödé`); it opens dirty hives without complaint.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

pub const REG_NONE: u32 = 0;
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
pub const REG_LINK: u32 = 6;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;

/// 2026-01-01T00:00:00Z as a FILETIME (100 ns units since 1601-01-01).
pub const DEFAULT_TIMESTAMP: u64 = 134_116_992_000_000_000;

/// Data bytes per big-data segment; also the largest value stored in one plain cell.
pub const BIG_DATA_SEGMENT_SIZE: usize = 16_344;

/// Size of the base block, which is also the offset of the first hive bin in the file.
pub const BASE_BLOCK_SIZE: usize = 4096;

const HBIN_HEADER_SIZE: usize = 32;
const NO_CELL: u32 = 0xFFFF_FFFF;

const KEY_HIVE_ENTRY: u16 = 0x0004;
const KEY_NO_DELETE: u16 = 0x0008;
const KEY_COMP_NAME: u16 = 0x0020;
const VALUE_COMP_NAME: u16 = 0x0001;
const DATA_IN_OFFSET_FIELD: u32 = 0x8000_0000;

/// Fixed part of a cell payload before the name, per cell type.
const NK_HEADER_SIZE: usize = 76;
const VK_HEADER_SIZE: usize = 20;
const SK_HEADER_SIZE: usize = 20;
const DB_SIZE: usize = 8;

/// How a value with no data bytes is encoded in its `vk` cell.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum ZeroLengthData {
    /// Data size `0x8000_0000` (stored in the offset field, 0 bytes), data offset 0: what
    /// Windows writes (every zero-length value in the real SYSTEM hives we examined).
    #[default]
    Inline,
    /// Data size 0, data offset `0xFFFF_FFFF` (no cell). nt-hive 0.3 panics reading its data.
    NoCell,
    /// Data size 0, data offset 0. nt-hive 0.3 returns `UnallocatedCell` reading its data.
    ZeroOffset,
}

#[derive(Clone, Debug)]
struct Value {
    name: String,
    data_type: u32,
    data: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Key {
    name: String,
    values: Vec<Value>,
    /// Upcased value name -> index in `values` (which keeps insertion order).
    value_index: BTreeMap<Vec<u16>, usize>,
    subkeys: Vec<Key>,
    /// Upcased subkey name -> index in `subkeys`.
    subkey_index: BTreeMap<Vec<u16>, usize>,
}

impl Key {
    fn new(name: &str) -> Self {
        assert!(
            encoded_name(name).0.len() <= usize::from(u16::MAX),
            "key name too long for an nk cell: {name:?}"
        );
        Key {
            name: name.to_string(),
            values: Vec::new(),
            value_index: BTreeMap::new(),
            subkeys: Vec::new(),
            subkey_index: BTreeMap::new(),
        }
    }

    fn count(&self) -> usize {
        1 + self.subkeys.iter().map(Key::count).sum::<usize>()
    }

    /// Subkeys in the order of their `lh` list: by upcased UTF-16 name.
    fn sorted_subkeys(&self) -> Vec<&Key> {
        self.subkey_index
            .values()
            .map(|&index| &self.subkeys[index])
            .collect()
    }
}

/// Builds a hive in memory; [`HiveWriter::to_bytes`] lays it out.
#[derive(Clone, Debug)]
pub struct HiveWriter {
    root: Key,
    primary_sequence: u32,
    secondary_sequence: u32,
    timestamp: u64,
    minor_version: u32,
    file_name: String,
    zero_length: ZeroLengthData,
}

impl HiveWriter {
    /// A hive whose root key node is called `root_name` (Windows 10 SYSTEM uses `ROOT`).
    pub fn new(root_name: &str) -> Self {
        HiveWriter {
            root: Key::new(root_name),
            primary_sequence: 1,
            secondary_sequence: 1,
            timestamp: DEFAULT_TIMESTAMP,
            minor_version: 5,
            file_name: "SYSTEM".to_string(),
            zero_length: ZeroLengthData::Inline,
        }
    }

    /// Creates the key and any missing intermediate keys. Path components are separated by
    /// `\`; empty components are skipped, so `""` is the root. An existing key is found
    /// case-insensitively and keeps the case it was first created with.
    pub fn key(&mut self, path: &str) -> &mut Self {
        self.key_node(path);
        self
    }

    /// Sets a value, creating its key if needed. `name` `""` is the key's default value.
    /// An existing value of that name (case-insensitive) keeps its position and its name's
    /// case, and gets the new type and data. `data` is stored exactly as given.
    pub fn value(&mut self, key_path: &str, name: &str, data_type: u32, data: &[u8]) -> &mut Self {
        assert!(
            encoded_name(name).0.len() <= usize::from(u16::MAX),
            "value name too long for a vk cell: {name:?}"
        );
        assert!(
            data.len() < DATA_IN_OFFSET_FIELD as usize,
            "value data too large: {} bytes",
            data.len()
        );
        let key = self.key_node(key_path);
        let index = *key
            .value_index
            .entry(upcase_units(name))
            .or_insert(key.values.len());
        if index == key.values.len() {
            key.values.push(Value {
                name: name.to_string(),
                data_type,
                data: data.to_vec(),
            });
        } else {
            key.values[index].data_type = data_type;
            key.values[index].data = data.to_vec();
        }
        self
    }

    /// Base block sequence numbers (default 1, 1). Differing numbers make a dirty hive.
    pub fn sequence_numbers(&mut self, primary: u32, secondary: u32) -> &mut Self {
        self.primary_sequence = primary;
        self.secondary_sequence = secondary;
        self
    }

    /// FILETIME written to the base block, the first hive bin and every key's last-written
    /// time (default [`DEFAULT_TIMESTAMP`]).
    pub fn timestamp(&mut self, filetime: u64) -> &mut Self {
        self.timestamp = filetime;
        self
    }

    /// regf minor version (default 5). Below 4, large values are written as one plain cell,
    /// as Windows NT 4 did, instead of as big data.
    pub fn minor_version(&mut self, minor: u32) -> &mut Self {
        self.minor_version = minor;
        self
    }

    /// The base block's file name field (default `SYSTEM`; only the last 31 UTF-16 units
    /// are kept, as in Windows).
    pub fn file_name(&mut self, name: &str) -> &mut Self {
        self.file_name = name.to_string();
        self
    }

    /// How values with no data are encoded (default [`ZeroLengthData::Inline`], as Windows).
    pub fn zero_length_data(&mut self, style: ZeroLengthData) -> &mut Self {
        self.zero_length = style;
        self
    }

    /// Lays out the hive: base block, then hive bins. Same input, same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bins = Bins::new(self.timestamp);
        let mut sk = None;
        let plan = self.plan_key(&self.root, &mut bins, &mut sk);
        let sk = sk.expect("the root key allocates the security cell");

        let descriptor = security_descriptor();
        let mut payload = Vec::with_capacity(SK_HEADER_SIZE + descriptor.len());
        payload.extend_from_slice(b"sk");
        payload.extend_from_slice(&0u16.to_le_bytes());
        payload.extend_from_slice(&sk.to_le_bytes()); // flink: the only descriptor
        payload.extend_from_slice(&sk.to_le_bytes()); // blink
        payload.extend_from_slice(&to_u32(self.root.count()).to_le_bytes());
        payload.extend_from_slice(&to_u32(descriptor.len()).to_le_bytes());
        payload.extend_from_slice(&descriptor);
        bins.write(sk, &payload);

        self.write_key(&plan, NO_CELL, sk, &mut bins);
        let bins = bins.finish();

        let mut hive = self.base_block(plan.nk, bins.len());
        hive.extend_from_slice(&bins);
        hive
    }

    /// [`HiveWriter::to_bytes`] written to a file.
    pub fn write_to(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }

    fn key_node(&mut self, path: &str) -> &mut Key {
        let mut key = &mut self.root;
        for part in path.split('\\').filter(|part| !part.is_empty()) {
            let index = *key
                .subkey_index
                .entry(upcase_units(part))
                .or_insert(key.subkeys.len());
            if index == key.subkeys.len() {
                key.subkeys.push(Key::new(part));
            }
            key = &mut key.subkeys[index];
        }
        key
    }

    /// First pass: allocate every cell (sizes depend only on the spec), depth first.
    /// Per key: nk, (sk after the root), value list, each vk with its data, subkey list,
    /// then the subkeys in sorted order.
    fn plan_key<'a>(&self, key: &'a Key, bins: &mut Bins, sk: &mut Option<u32>) -> KeyPlan<'a> {
        let nk = bins.alloc(NK_HEADER_SIZE + encoded_name(&key.name).0.len());
        if sk.is_none() {
            *sk = Some(bins.alloc(SK_HEADER_SIZE + security_descriptor().len()));
        }
        let value_list = if key.values.is_empty() {
            NO_CELL
        } else {
            bins.alloc(4 * key.values.len())
        };
        let values = key
            .values
            .iter()
            .map(|value| {
                let vk = bins.alloc(VK_HEADER_SIZE + encoded_name(&value.name).0.len());
                let len = value.data.len();
                let data = if len <= 4 {
                    DataPlan::InOffsetField
                } else if len <= BIG_DATA_SEGMENT_SIZE || self.minor_version < 4 {
                    DataPlan::Cell(bins.alloc(len))
                } else {
                    let count = len.div_ceil(BIG_DATA_SEGMENT_SIZE);
                    assert!(
                        count <= usize::from(u16::MAX),
                        "value too large for big data"
                    );
                    let db = bins.alloc(DB_SIZE);
                    let list = bins.alloc(4 * count);
                    // Windows allocates every segment cell full size, the last one too.
                    let segments = (0..count)
                        .map(|_| bins.alloc(BIG_DATA_SEGMENT_SIZE))
                        .collect();
                    DataPlan::Big { db, list, segments }
                };
                ValuePlan { vk, data }
            })
            .collect();
        let subkeys = key.sorted_subkeys();
        assert!(
            subkeys.len() <= usize::from(u16::MAX),
            "more subkeys than one lh list holds (index roots are not written)"
        );
        let subkey_list = if subkeys.is_empty() {
            NO_CELL
        } else {
            bins.alloc(4 + 8 * subkeys.len())
        };
        let children = subkeys
            .into_iter()
            .map(|child| self.plan_key(child, bins, sk))
            .collect();
        KeyPlan {
            key,
            nk,
            value_list,
            values,
            subkey_list,
            children,
        }
    }

    /// Second pass: fill the cells allocated by `plan_key`.
    fn write_key(&self, plan: &KeyPlan<'_>, parent: u32, sk: u32, bins: &mut Bins) {
        let key = plan.key;
        let (name, compressed) = encoded_name(&key.name);
        let mut flags = if compressed { KEY_COMP_NAME } else { 0 };
        if parent == NO_CELL {
            flags |= KEY_HIVE_ENTRY | KEY_NO_DELETE;
        }
        let max_subkey_name = key.subkeys.iter().map(|k| utf16_bytes(&k.name)).max();
        let max_value_name = key.values.iter().map(|v| utf16_bytes(&v.name)).max();
        let max_value_data = key.values.iter().map(|v| v.data.len()).max();

        let mut p = Vec::with_capacity(NK_HEADER_SIZE + name.len());
        p.extend_from_slice(b"nk");
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&self.timestamp.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // access bits
        p.extend_from_slice(&parent.to_le_bytes());
        p.extend_from_slice(&to_u32(key.subkeys.len()).to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // volatile subkey count
        p.extend_from_slice(&plan.subkey_list.to_le_bytes());
        p.extend_from_slice(&NO_CELL.to_le_bytes()); // volatile subkey list
        p.extend_from_slice(&to_u32(key.values.len()).to_le_bytes());
        p.extend_from_slice(&plan.value_list.to_le_bytes());
        p.extend_from_slice(&sk.to_le_bytes());
        p.extend_from_slice(&NO_CELL.to_le_bytes()); // class name
        p.extend_from_slice(&to_u32(max_subkey_name.unwrap_or(0)).to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // largest subkey class name
        p.extend_from_slice(&to_u32(max_value_name.unwrap_or(0)).to_le_bytes());
        p.extend_from_slice(&to_u32(max_value_data.unwrap_or(0)).to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // work var
        p.extend_from_slice(&to_u16(name.len()).to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes()); // class name length
        p.extend_from_slice(&name);
        bins.write(plan.nk, &p);

        if plan.value_list != NO_CELL {
            let list: Vec<u8> = plan
                .values
                .iter()
                .flat_map(|v| v.vk.to_le_bytes())
                .collect();
            bins.write(plan.value_list, &list);
        }
        for (value, value_plan) in key.values.iter().zip(&plan.values) {
            self.write_value(value, value_plan, bins);
        }

        if plan.subkey_list != NO_CELL {
            let mut lh = Vec::with_capacity(4 + 8 * plan.children.len());
            lh.extend_from_slice(b"lh");
            lh.extend_from_slice(&to_u16(plan.children.len()).to_le_bytes());
            for child in &plan.children {
                lh.extend_from_slice(&child.nk.to_le_bytes());
                lh.extend_from_slice(&name_hash(&child.key.name).to_le_bytes());
            }
            bins.write(plan.subkey_list, &lh);
        }
        for child in &plan.children {
            self.write_key(child, plan.nk, sk, bins);
        }
    }

    fn write_value(&self, value: &Value, plan: &ValuePlan, bins: &mut Bins) {
        let (name, compressed) = encoded_name(&value.name);
        let len = value.data.len();
        let (size_field, offset_field) = match &plan.data {
            DataPlan::InOffsetField if len == 0 => match self.zero_length {
                ZeroLengthData::Inline => (DATA_IN_OFFSET_FIELD, [0; 4]),
                ZeroLengthData::NoCell => (0, NO_CELL.to_le_bytes()),
                ZeroLengthData::ZeroOffset => (0, [0; 4]),
            },
            DataPlan::InOffsetField => {
                let mut inline = [0u8; 4];
                inline[..len].copy_from_slice(&value.data);
                (to_u32(len) | DATA_IN_OFFSET_FIELD, inline)
            }
            DataPlan::Cell(cell) => {
                bins.write(*cell, &value.data);
                (to_u32(len), cell.to_le_bytes())
            }
            DataPlan::Big { db, list, segments } => {
                let mut header = Vec::with_capacity(DB_SIZE);
                header.extend_from_slice(b"db");
                header.extend_from_slice(&to_u16(segments.len()).to_le_bytes());
                header.extend_from_slice(&list.to_le_bytes());
                bins.write(*db, &header);
                let offsets: Vec<u8> = segments.iter().flat_map(|s| s.to_le_bytes()).collect();
                bins.write(*list, &offsets);
                for (segment, chunk) in segments
                    .iter()
                    .zip(value.data.chunks(BIG_DATA_SEGMENT_SIZE))
                {
                    bins.write(*segment, chunk);
                }
                (to_u32(len), db.to_le_bytes())
            }
        };
        // Windows leaves VALUE_COMP_NAME clear on the default (unnamed) value.
        let flags = if compressed && !name.is_empty() {
            VALUE_COMP_NAME
        } else {
            0
        };
        let mut p = Vec::with_capacity(VK_HEADER_SIZE + name.len());
        p.extend_from_slice(b"vk");
        p.extend_from_slice(&to_u16(name.len()).to_le_bytes());
        p.extend_from_slice(&size_field.to_le_bytes());
        p.extend_from_slice(&offset_field);
        p.extend_from_slice(&value.data_type.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes()); // spare
        p.extend_from_slice(&name);
        bins.write(plan.vk, &p);
    }

    fn base_block(&self, root_cell: u32, bins_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; BASE_BLOCK_SIZE];
        b[0..4].copy_from_slice(b"regf");
        b[4..8].copy_from_slice(&self.primary_sequence.to_le_bytes());
        b[8..12].copy_from_slice(&self.secondary_sequence.to_le_bytes());
        b[12..20].copy_from_slice(&self.timestamp.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes()); // major version
        b[24..28].copy_from_slice(&self.minor_version.to_le_bytes());
        b[28..32].copy_from_slice(&0u32.to_le_bytes()); // file type: primary
        b[32..36].copy_from_slice(&1u32.to_le_bytes()); // file format: direct memory load
        b[36..40].copy_from_slice(&root_cell.to_le_bytes());
        b[40..44].copy_from_slice(&to_u32(bins_size).to_le_bytes());
        b[44..48].copy_from_slice(&1u32.to_le_bytes()); // clustering factor
        let units: Vec<u16> = self.file_name.encode_utf16().collect();
        let tail = &units[units.len().saturating_sub(31)..];
        for (i, unit) in tail.iter().enumerate() {
            b[48 + 2 * i..50 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
        let checksum = base_block_checksum(&b);
        b[508..512].copy_from_slice(&checksum.to_le_bytes());
        b
    }
}

struct KeyPlan<'a> {
    key: &'a Key,
    nk: u32,
    value_list: u32,
    values: Vec<ValuePlan>,
    subkey_list: u32,
    children: Vec<KeyPlan<'a>>,
}

struct ValuePlan {
    vk: u32,
    data: DataPlan,
}

enum DataPlan {
    InOffsetField,
    Cell(u32),
    Big {
        db: u32,
        list: u32,
        segments: Vec<u32>,
    },
}

/// Hive bins data, allocated front to back. A cell never spans bins: a cell that does not
/// fit in what is left of the current bin closes it (the rest becomes one free cell) and
/// opens a new bin, 4096 bytes or the multiple of 4096 that holds the cell.
struct Bins {
    data: Vec<u8>,
    pos: usize,
    end: usize,
    timestamp: u64,
}

impl Bins {
    fn new(timestamp: u64) -> Self {
        Bins {
            data: Vec::new(),
            pos: 0,
            end: 0,
            timestamp,
        }
    }

    /// Allocates a cell holding `payload` bytes; returns its offset from the first bin.
    fn alloc(&mut self, payload: usize) -> u32 {
        let size = (payload + 4).next_multiple_of(8);
        if self.end - self.pos < size {
            self.close_bin();
            self.open_bin(size);
        }
        let cell = self.pos;
        let size_field = -i32::try_from(size).expect("cell too large");
        self.data[cell..cell + 4].copy_from_slice(&size_field.to_le_bytes());
        self.pos += size;
        to_u32(cell)
    }

    fn open_bin(&mut self, cell_size: usize) {
        let start = self.data.len();
        let size = (HBIN_HEADER_SIZE + cell_size).next_multiple_of(4096);
        self.data.resize(start + size, 0);
        let header = &mut self.data[start..start + HBIN_HEADER_SIZE];
        header[0..4].copy_from_slice(b"hbin");
        header[4..8].copy_from_slice(&to_u32(start).to_le_bytes());
        header[8..12].copy_from_slice(&to_u32(size).to_le_bytes());
        if start == 0 {
            header[20..28].copy_from_slice(&self.timestamp.to_le_bytes());
        }
        self.pos = start + HBIN_HEADER_SIZE;
        self.end = start + size;
    }

    fn close_bin(&mut self) {
        if self.pos < self.end {
            let free = i32::try_from(self.end - self.pos).expect("bin too large");
            self.data[self.pos..self.pos + 4].copy_from_slice(&free.to_le_bytes());
        }
        self.pos = self.end;
    }

    fn write(&mut self, cell: u32, payload: &[u8]) {
        let start = cell as usize + 4;
        let size = i32::from_le_bytes(self.data[cell as usize..start].try_into().unwrap());
        assert!(
            payload.len() + 4 <= size.unsigned_abs() as usize,
            "payload larger than its cell"
        );
        self.data[start..start + payload.len()].copy_from_slice(payload);
    }

    fn finish(mut self) -> Vec<u8> {
        self.close_bin();
        self.data
    }
}

/// The XOR-32 checksum of the first 508 bytes of a base block, with Windows' adjustments
/// (0 becomes 1, `0xFFFF_FFFF` becomes `0xFFFF_FFFE`). Useful after patching a hive's header.
pub fn base_block_checksum(base_block: &[u8]) -> u32 {
    let sum = base_block[..508].chunks_exact(4).fold(0u32, |acc, d| {
        acc ^ u32::from_le_bytes(d.try_into().unwrap())
    });
    match sum {
        0 => 1,
        u32::MAX => u32::MAX - 1,
        sum => sum,
    }
}

/// Recomputes and stores the base block checksum of a whole hive file in `hive`.
pub fn fix_checksum(hive: &mut [u8]) {
    let checksum = base_block_checksum(hive);
    hive[508..512].copy_from_slice(&checksum.to_le_bytes());
}

/// Little-endian 4 bytes (REG_DWORD data).
pub fn dword(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Little-endian 8 bytes (REG_QWORD data).
pub fn qword(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// UTF-16LE without a terminator.
pub fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// UTF-16LE plus one NUL (REG_SZ / REG_EXPAND_SZ data).
pub fn utf16z(s: &str) -> Vec<u8> {
    let mut v = utf16(s);
    v.extend_from_slice(&[0, 0]);
    v
}

/// REG_MULTI_SZ data as Windows writes it: every string NUL-terminated, then one more NUL.
/// Empty strings in `strings` are kept (they are meaningful in PendingFileRenameOperations).
pub fn multi_sz(strings: &[&str]) -> Vec<u8> {
    let mut v: Vec<u8> = strings.iter().flat_map(|s| utf16z(s)).collect();
    v.extend_from_slice(&[0, 0]);
    v
}

/// Lowercase letters whose case pair came after Unicode 13, the version of nt-hive 0.3's
/// table, but that Rust's `char::to_uppercase` (Unicode 17 in Rust 1.95) maps.
const NEWER_CASE_PAIRS: [u16; 13] = [
    0x019B, 0x0264, 0x1C8A, 0x2C5F, 0xA7C1, 0xA7CD, 0xA7CF, 0xA7D1, 0xA7D3, 0xA7D5, 0xA7D7, 0xA7D9,
    0xA7DB,
];

/// Uppercases one UTF-16 code unit the way hive name comparisons do: Unicode simple
/// (one-to-one) case mapping within the BMP, surrogates unchanged. This is exactly the
/// table nt-hive 0.3 uses (checked for all 65,536 units); Windows' own table may differ
/// for rare non-ASCII letters.
pub fn upcase_unit(unit: u16) -> u16 {
    if unit < 0x80 {
        return u16::from((unit as u8).to_ascii_uppercase());
    }
    if NEWER_CASE_PAIRS.contains(&unit) {
        return unit;
    }
    let Some(c) = char::from_u32(u32::from(unit)) else {
        return unit; // surrogate
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
        // Full mappings that expand (SpecialCasing.txt). Only the Greek letters with
        // ypogegrammeni have a different one-to-one mapping: to their prosgegrammeni form.
        _ => match unit {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => unit + 8,
            0x1FB3 | 0x1FC3 | 0x1FF3 => unit + 9,
            _ => unit,
        },
    }
}

fn upcase_units(s: &str) -> Vec<u16> {
    s.encode_utf16().map(upcase_unit).collect()
}

/// Case-insensitive order of key names, as the subkey lists must be sorted.
pub fn compare_names(a: &str, b: &str) -> Ordering {
    a.encode_utf16()
        .map(upcase_unit)
        .cmp(b.encode_utf16().map(upcase_unit))
}

/// The `lh` name hash: `h = h * 37 + upcase(unit)` over the name's UTF-16 code units.
pub fn name_hash(name: &str) -> u32 {
    upcase_units(name)
        .into_iter()
        .fold(0u32, |h, u| h.wrapping_mul(37).wrapping_add(u32::from(u)))
}

/// The bytes of a name as stored, and whether they are compressed (one byte per char, used
/// when every char is below 0x80), else UTF-16LE.
fn encoded_name(name: &str) -> (Vec<u8>, bool) {
    if name.is_ascii() {
        (name.as_bytes().to_vec(), true)
    } else {
        (utf16(name), false)
    }
}

/// Length of a name in bytes of UTF-16, as the nk "largest name" fields count it.
fn utf16_bytes(name: &str) -> usize {
    2 * name.encode_utf16().count()
}

/// A self-relative SECURITY_DESCRIPTOR like the one on a SYSTEM hive's root (without the
/// AppContainer ACEs): owner Administrators, group SYSTEM, protected DACL with
/// Users read, Administrators and SYSTEM full control, CREATOR OWNER full (inherit only).
fn security_descriptor() -> Vec<u8> {
    const SYSTEM: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
    const ADMINISTRATORS: &[u8] = &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0];
    const USERS: &[u8] = &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 2, 0, 0];
    const CREATOR_OWNER: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0];
    const KEY_READ: u32 = 0x0002_0019;
    const KEY_ALL_ACCESS: u32 = 0x000F_003F;
    const GENERIC_READ: u32 = 0x8000_0000;
    const GENERIC_ALL: u32 = 0x1000_0000;
    const INHERIT_ONLY_CONTAINER: u8 = 0x08 | 0x02;
    let aces: [(u8, u32, &[u8]); 7] = [
        (0, KEY_READ, USERS),
        (INHERIT_ONLY_CONTAINER, GENERIC_READ, USERS),
        (0, KEY_ALL_ACCESS, ADMINISTRATORS),
        (INHERIT_ONLY_CONTAINER, GENERIC_ALL, ADMINISTRATORS),
        (0, KEY_ALL_ACCESS, SYSTEM),
        (INHERIT_ONLY_CONTAINER, GENERIC_ALL, SYSTEM),
        (INHERIT_ONLY_CONTAINER, GENERIC_ALL, CREATOR_OWNER),
    ];
    let mut acl = Vec::new();
    for (flags, mask, sid) in aces {
        acl.push(0); // ACCESS_ALLOWED_ACE_TYPE
        acl.push(flags);
        acl.extend_from_slice(&to_u16(8 + sid.len()).to_le_bytes());
        acl.extend_from_slice(&mask.to_le_bytes());
        acl.extend_from_slice(sid);
    }
    let dacl_offset = 20;
    let owner_offset = dacl_offset + 8 + acl.len();
    let group_offset = owner_offset + ADMINISTRATORS.len();
    // SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_DACL_AUTO_INHERITED | SE_DACL_PRESENT
    let control: u16 = 0x8000 | 0x1000 | 0x0400 | 0x0004;
    let mut sd = vec![1, 0];
    sd.extend_from_slice(&control.to_le_bytes());
    sd.extend_from_slice(&to_u32(owner_offset).to_le_bytes());
    sd.extend_from_slice(&to_u32(group_offset).to_le_bytes());
    sd.extend_from_slice(&0u32.to_le_bytes()); // no SACL
    sd.extend_from_slice(&to_u32(dacl_offset).to_le_bytes());
    sd.extend_from_slice(&[2, 0]); // ACL_REVISION
    sd.extend_from_slice(&to_u16(8 + acl.len()).to_le_bytes());
    sd.extend_from_slice(&to_u16(aces.len()).to_le_bytes());
    sd.extend_from_slice(&[0, 0]);
    sd.extend_from_slice(&acl);
    sd.extend_from_slice(ADMINISTRATORS);
    sd.extend_from_slice(SYSTEM);
    sd
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("does not fit a 32-bit hive field")
}

fn to_u16(n: usize) -> u16 {
    u16::try_from(n).expect("does not fit a 16-bit hive field")
}
