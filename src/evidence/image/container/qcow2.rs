//! The qcow2 container (QEMU's copy-on-write format, versions 2 and 3), as QEMU's
//! `docs/interop/qcow2.txt` describes it.
//!
//! A guest offset maps through two tables: the L1 table (contiguous, given by the header)
//! points to L2 tables of one cluster each, whose entries point to the host cluster holding
//! the data, say it reads as zeros, or describe a compressed cluster (zlib as raw deflate, or
//! zstd). With extended L2 entries each cluster is split into 32 subclusters, each allocated,
//! zero or unallocated on its own. Unallocated clusters read as zeros: images with a backing
//! file, whose unallocated clusters would come from another file, are refused, as are
//! encrypted images and images whose data lives in an external data file.
//!
//! Nothing is scanned on open: the header is checked, and L1 entries, L2 tables and
//! decompressed clusters are read when a read needs them, through small caches.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::{Decompress, FlushDecompress};
use ruzstd::decoding::StreamingDecoder;

use super::cache::Lru;
use super::{be32, be64, ContainerError, ContainerInfo, Opened};
use crate::evidence::image::{within, ReadAt};
use crate::evidence::{Evidence, Piece};

const FORMAT: &str = "qcow2";
const MAGIC: [u8; 4] = *b"QFI\xfb";

/// The bytes of the header read on open: the version 3 header through its compression type
/// field and padding. A version 2 header is 72 bytes; the rest is then ignored.
const HEADER_READ: usize = 112;
const V2_HEADER_LEN: u32 = 72;
const V3_MIN_HEADER_LEN: u32 = 104;

/// QEMU's bounds on the cluster size (512 bytes to 2 MiB): nothing writes larger clusters.
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/// Extended L2 entries need clusters of at least 16 KiB (32 subclusters of 512 bytes).
const MIN_EXTENDED_CLUSTER_BITS: u32 = 14;

/// QEMU's limit on the active L1 table, in bytes.
const MAX_L1_BYTES: u64 = 32 << 20;
/// QEMU's limit on the backing file name, in bytes.
const MAX_BACKING_NAME: u32 = 1023;
/// How much of the header extension area is read to name a refused feature.
const MAX_EXTENSION_AREA: u64 = 64 << 10;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 = (1 << 5) - 1;

const EXT_END: u32 = 0;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Bits 9..=55 of an L1 or standard L2 entry: a host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: the cluster is compressed.
const L2_COMPRESSED: u64 = 1 << 62;
/// Standard cluster descriptor bit 0: the cluster reads as zeros.
const L2_ZERO: u64 = 1;
/// Compressed host offsets must stay below 2^56, as all host offsets.
const MAX_HOST_OFFSET_BITS: u32 = 56;

/// L1 entries are read and cached in pages of this many entries (4 KiB).
const L1_PAGE_ENTRIES: u64 = 512;
const L1_PAGES_CACHED: usize = 16;
/// Cache budgets: L2 tables and decompressed clusters are one cluster each.
const L2_CACHE_BYTES: u64 = 8 << 20;
const L2_CACHE_MAX: usize = 64;
const CLUSTER_CACHE_BYTES: u64 = 4 << 20;
const CLUSTER_CACHE_MAX: usize = 16;
/// The largest zstd window accepted: QEMU compresses one cluster (at most 2 MiB) per frame,
/// and a larger window would only make the decoder hold more memory.
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

/// Opens `file` as a qcow2 container; `None` when its signature is not there.
pub fn open(_path: &Path, file: &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError> {
    let file_len = file.len();
    if file_len < MAGIC.len() as u64 {
        return Ok(None);
    }
    let mut magic = [0u8; 4];
    read_meta(file.as_ref(), &mut magic, 0, "signature")?;
    if magic != MAGIC {
        return Ok(None);
    }
    let mut bytes = [0u8; HEADER_READ];
    let got = file_len.min(HEADER_READ as u64) as usize;
    read_meta(file.as_ref(), &mut bytes[..got], 0, "header")?;
    let header = Header::parse(&bytes, file_len)?;
    check_features(file.as_ref(), &header)?;
    let layout = Layout::new(&header, file_len)?;
    let info = info(&header, &layout);
    let disk = Qcow2Disk::new(Arc::clone(file), layout);
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

/// Reads container metadata on open: a read past the end of the file means the container
/// is truncated (damaged), any other failure is an I/O error.
fn read_meta(
    file: &dyn ReadAt,
    buf: &mut [u8],
    offset: u64,
    what: &str,
) -> Result<(), ContainerError> {
    let len = buf.len();
    super::read_or_truncated(FORMAT, file, buf, offset, what, || {
        format!(
            "{len} bytes there lie past the end of the file ({} bytes): truncated?",
            file.len()
        )
    })
}

/// The header fields this reader uses, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    version: u32,
    backing_file_offset: u64,
    backing_file_size: u32,
    cluster_bits: u32,
    size: u64,
    crypt_method: u32,
    l1_size: u32,
    l1_table_offset: u64,
    nb_snapshots: u32,
    incompatible: u64,
    header_length: u32,
    compression_type: u8,
}

impl Header {
    /// Parses and checks the fixed header (`bytes` zero-padded past the end of a short
    /// file), without reading anything else.
    fn parse(bytes: &[u8; HEADER_READ], file_len: u64) -> Result<Header, ContainerError> {
        if file_len < 8 {
            return Err(damaged(
                "header",
                0,
                format!("the file ({file_len} bytes) ends within the signature and version"),
            ));
        }
        let version = be32(bytes, 4);
        match version {
            2 | 3 => {}
            1 => {
                return Err(unsupported(
                    "version 1 (the original qcow format) is not read",
                ))
            }
            other => return Err(unsupported(format!("unknown version {other}"))),
        }
        let header_end = if version == 2 {
            V2_HEADER_LEN
        } else {
            V3_MIN_HEADER_LEN
        };
        if file_len < u64::from(header_end) {
            return Err(damaged(
                "header",
                0,
                format!("the file ({file_len} bytes) is shorter than the {header_end}-byte header"),
            ));
        }
        let cluster_bits = be32(bytes, 20);
        if cluster_bits < MIN_CLUSTER_BITS {
            return Err(damaged(
                "header cluster_bits",
                20,
                format!("{cluster_bits} is below the minimum of {MIN_CLUSTER_BITS}"),
            ));
        }
        if cluster_bits > MAX_CLUSTER_BITS {
            return Err(unsupported(format!(
                "clusters of 2^{cluster_bits} bytes are larger than the 2 MiB QEMU reads"
            )));
        }
        let (incompatible, header_length, compression_type) = if version == 2 {
            (0, V2_HEADER_LEN, 0)
        } else {
            let header_length = be32(bytes, 100);
            if header_length < V3_MIN_HEADER_LEN || u64::from(header_length) > 1 << cluster_bits {
                return Err(damaged(
                    "header header_length",
                    100,
                    format!(
                        "{header_length} is outside {V3_MIN_HEADER_LEN}..={}",
                        1u64 << cluster_bits
                    ),
                ));
            }
            let compression = if header_length > 104 { bytes[104] } else { 0 };
            (be64(bytes, 72), header_length, compression)
        };
        Ok(Header {
            version,
            backing_file_offset: be64(bytes, 8),
            backing_file_size: be32(bytes, 16),
            cluster_bits,
            size: be64(bytes, 24),
            crypt_method: be32(bytes, 32),
            l1_size: be32(bytes, 36),
            l1_table_offset: be64(bytes, 40),
            nb_snapshots: be32(bytes, 60),
            incompatible,
            header_length,
            compression_type,
        })
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn extended_l2(&self) -> bool {
        self.incompatible & INCOMPAT_EXTENDED_L2 != 0
    }

    /// Where the header extensions start.
    fn extensions_start(&self) -> u64 {
        u64::from(self.header_length)
    }
}

/// Refuses what this reader cannot read correctly: unknown incompatible features, an image
/// QEMU marked corrupt, an external data file, encryption, a backing file.
fn check_features(file: &dyn ReadAt, header: &Header) -> Result<(), ContainerError> {
    let unknown = header.incompatible & !INCOMPAT_KNOWN;
    if unknown != 0 {
        let names = feature_names(file, header, unknown);
        return Err(unsupported(format!(
            "unknown incompatible features {}",
            names.join(", ")
        )));
    }
    if header.incompatible & INCOMPAT_CORRUPT != 0 {
        return Err(damaged(
            "header incompatible_features",
            72,
            "QEMU marked the image corrupt (bit 1): its tables are inconsistent; \
             run `qemu-img check` on a copy",
        ));
    }
    if header.incompatible & INCOMPAT_DATA_FILE != 0 {
        let name = extension(file, header, EXT_DATA_FILE)
            .map(|name| format!(" {}", shown_name(&name)))
            .unwrap_or_default();
        return Err(unsupported(format!(
            "its data is in an external data file{name}, which is not read"
        )));
    }
    match header.crypt_method {
        0 => {}
        1 => return Err(unsupported("it is encrypted (AES)")),
        2 => return Err(unsupported("it is encrypted (LUKS)")),
        other => return Err(unsupported(format!("it is encrypted (method {other})"))),
    }
    if header.backing_file_offset != 0 && header.backing_file_size != 0 {
        return Err(unsupported(format!(
            "it is an overlay on the backing file {}, which is not read \
             (convert the chain with `qemu-img convert` first)",
            backing_name(file, header)
        )));
    }
    if header.extended_l2() && header.cluster_bits < MIN_EXTENDED_CLUSTER_BITS {
        return Err(damaged(
            "header cluster_bits",
            20,
            format!(
                "extended L2 entries need clusters of 2^{MIN_EXTENDED_CLUSTER_BITS} bytes or \
                 more, not 2^{}",
                header.cluster_bits
            ),
        ));
    }
    Ok(())
}

/// The backing file's name, escaped for display, or why it cannot be shown.
fn backing_name(file: &dyn ReadAt, header: &Header) -> String {
    let offset = header.backing_file_offset;
    let len = header.backing_file_size;
    if len > MAX_BACKING_NAME {
        return format!("(name of {len} bytes at byte {offset}: longer than {MAX_BACKING_NAME})");
    }
    let mut name = vec![0u8; len as usize];
    match file.read_exact_at(&mut name, offset) {
        Ok(()) => shown_name(&name),
        Err(_) => format!("(name of {len} bytes at byte {offset}: unreadable)"),
    }
}

/// A name from the file, quoted, with anything unprintable escaped.
fn shown_name(bytes: &[u8]) -> String {
    format!("\"{}\"", String::from_utf8_lossy(bytes).escape_debug())
}

/// The header extensions, as type and data, read from the first cluster (bounded); a
/// malformed area just ends the list, since extensions are only used to word a refusal.
fn extensions(file: &dyn ReadAt, header: &Header) -> Vec<(u32, Vec<u8>)> {
    let start = header.extensions_start();
    let mut end = header.cluster_size().min(file.len());
    if header.backing_file_offset > start {
        end = end.min(header.backing_file_offset);
    }
    end = end.min(start + MAX_EXTENSION_AREA);
    let Some(len) = end.checked_sub(start) else {
        return Vec::new();
    };
    let mut area = vec![0u8; len as usize];
    if file.read_exact_at(&mut area, start).is_err() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut at = 0usize;
    while let Some(head) = area.get(at..at + 8) {
        let kind = be32(head, 0);
        let size = be32(head, 4) as usize;
        if kind == EXT_END {
            break;
        }
        let Some(data) = area.get(at + 8..at + 8 + size) else {
            break;
        };
        found.push((kind, data.to_vec()));
        at += 8 + size.div_ceil(8) * 8;
    }
    found
}

fn extension(file: &dyn ReadAt, header: &Header, kind: u32) -> Option<Vec<u8>> {
    extensions(file, header)
        .into_iter()
        .find(|(found, _)| *found == kind)
        .map(|(_, data)| data)
}

/// The incompatible feature bits in `bits`, named from the feature name table when the
/// image has one.
fn feature_names(file: &dyn ReadAt, header: &Header, bits: u64) -> Vec<String> {
    let table = extension(file, header, EXT_FEATURE_NAMES).unwrap_or_default();
    (0..64)
        .filter(|bit| bits & (1u64 << bit) != 0)
        .map(|bit| {
            let name = table
                .chunks_exact(48)
                .find(|entry| entry[0] == 0 && u32::from(entry[1]) == bit)
                .map(|entry| {
                    let raw = &entry[2..];
                    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                    shown_name(&raw[..end])
                });
            match name {
                Some(name) => format!("bit {bit} {name}"),
                None => format!("bit {bit}"),
            }
        })
        .collect()
}

/// How compressed clusters are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    /// Raw deflate (RFC 1951, no zlib header), as QEMU writes it despite the name.
    Zlib,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::Zstd => "zstd",
        }
    }
}

/// The geometry of the image, checked against the file on open.
#[derive(Clone, Debug)]
struct Layout {
    cluster_bits: u32,
    extended: bool,
    /// log2 of the entries in one L2 table.
    l2_bits: u32,
    virtual_size: u64,
    l1_offset: u64,
    /// The L1 entries the virtual size needs (the table may hold more, for VM state).
    l1_entries: u64,
    compression: Compression,
    file_len: u64,
}

impl Layout {
    fn new(header: &Header, file_len: u64) -> Result<Layout, ContainerError> {
        let compression = compression(header)?;
        let cluster_bits = header.cluster_bits;
        let extended = header.extended_l2();
        let l2_bits = cluster_bits - if extended { 4 } else { 3 };
        let size = header.size;
        if size > i64::MAX as u64 {
            return Err(damaged(
                "header size",
                24,
                format!("{size} bytes is absurd"),
            ));
        }
        // Each L1 entry covers 2^(l2_bits + cluster_bits) bytes of the disk: at most 2^39.
        let l1_entries = size.div_ceil(1u64 << (l2_bits + cluster_bits));
        let l1_size = u64::from(header.l1_size);
        if l1_size * 8 > MAX_L1_BYTES {
            return Err(damaged(
                "header l1_size",
                36,
                format!("{l1_size} entries exceed QEMU's limit of {MAX_L1_BYTES} bytes"),
            ));
        }
        if l1_size < l1_entries {
            return Err(damaged(
                "header l1_size",
                36,
                format!("{l1_size} entries cannot map {size} bytes ({l1_entries} needed)"),
            ));
        }
        let l1_offset = header.l1_table_offset;
        let cluster_mask = (1u64 << cluster_bits) - 1;
        if l1_entries > 0 {
            if l1_offset & cluster_mask != 0 || l1_offset == 0 {
                return Err(damaged(
                    "header l1_table_offset",
                    40,
                    format!("{l1_offset} is not a cluster boundary past the header"),
                ));
            }
            let fits = l1_offset
                .checked_add(l1_entries * 8)
                .is_some_and(|end| end <= file_len);
            if !fits {
                return Err(damaged(
                    "L1 table",
                    l1_offset,
                    format!(
                        "its {l1_entries} entries lie past the end of the file ({file_len} \
                         bytes): truncated?"
                    ),
                ));
            }
        }
        Ok(Layout {
            cluster_bits,
            extended,
            l2_bits,
            virtual_size: size,
            l1_offset,
            l1_entries,
            compression,
            file_len,
        })
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Decodes L2 entry `entry` (with `bitmap`, its subcluster bitmap, when entries are
    /// extended), or says why it is invalid.
    fn decode(&self, entry: u64, bitmap: u64) -> Result<Cluster, String> {
        if entry & L2_COMPRESSED != 0 {
            return self.decode_compressed(entry);
        }
        let host = entry & OFFSET_MASK;
        let cluster_mask = self.cluster_size() - 1;
        if host & cluster_mask != 0 {
            return Err(format!("host cluster offset {host} is not cluster-aligned"));
        }
        if self.extended {
            let allocated = bitmap & 0xffff_ffff;
            let zeros = bitmap >> 32;
            if allocated & zeros != 0 {
                return Err(format!(
                    "subcluster bitmap {bitmap:#018x} marks subclusters both allocated and zero"
                ));
            }
            if allocated == 0 {
                return Ok(Cluster::Zero);
            }
            if host == 0 {
                return Err(format!(
                    "subcluster bitmap {bitmap:#018x} allocates subclusters of an unallocated \
                     cluster"
                ));
            }
            return Ok(Cluster::Subclusters { host, allocated });
        }
        // QEMU reads the zero flag in version 2 images too, where it should never be set.
        if entry & L2_ZERO != 0 || host == 0 {
            return Ok(Cluster::Zero);
        }
        Ok(Cluster::Data(host))
    }

    fn decode_compressed(&self, entry: u64) -> Result<Cluster, String> {
        // x = 62 - (cluster_bits - 8): the offset is in bits 0..x, the count of additional
        // 512-byte sectors in bits x..62.
        let shift = 70 - self.cluster_bits;
        let offset = entry & ((1u64 << shift) - 1);
        let sectors = (entry >> shift) & ((1u64 << (self.cluster_bits - 8)) - 1);
        if offset >> MAX_HOST_OFFSET_BITS != 0 {
            return Err(format!("compressed cluster offset {offset} is beyond 2^56"));
        }
        let len = (sectors + 1) * 512 - (offset & 511);
        Ok(Cluster::Compressed { offset, len })
    }
}

/// The compression type: version 3 images may name zstd; zlib otherwise.
fn compression(header: &Header) -> Result<Compression, ContainerError> {
    let flagged = header.incompatible & INCOMPAT_COMPRESSION != 0;
    let compression = match header.compression_type {
        0 => Compression::Zlib,
        1 => Compression::Zstd,
        other => return Err(unsupported(format!("unknown compression type {other}"))),
    };
    if flagged != (compression != Compression::Zlib) {
        return Err(damaged(
            "header compression_type",
            104,
            format!(
                "compression type {} does not match the compression type feature bit ({})",
                header.compression_type,
                if flagged { "set" } else { "clear" }
            ),
        ));
    }
    Ok(compression)
}

/// What the container says about itself.
fn info(header: &Header, layout: &Layout) -> ContainerInfo {
    let mut metadata = vec![
        (
            "cluster size".to_string(),
            format!("{} bytes", layout.cluster_size()),
        ),
        (
            "compression type".to_string(),
            layout.compression.name().to_string(),
        ),
    ];
    if layout.extended {
        metadata.push(("extended L2 entries".to_string(), "on".to_string()));
    }
    if header.incompatible & INCOMPAT_DIRTY != 0 {
        metadata.push((
            "dirty".to_string(),
            "the image was not closed cleanly: its refcounts may be stale, which does not \
             affect its data (read through the L1 and L2 tables)"
                .to_string(),
        ));
    }
    if header.nb_snapshots > 0 {
        metadata.push((
            "snapshots".to_string(),
            format!(
                "{} internal snapshot(s), not read: the disk shown is the active state",
                header.nb_snapshots
            ),
        ));
    }
    ContainerInfo {
        format: format!("qcow2 v{}", header.version),
        virtual_size: layout.virtual_size,
        files: Vec::new(),
        metadata,
        stored_hashes: Vec::new(),
    }
}

/// Where one guest cluster's data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cluster {
    /// Reads as zeros: unallocated (no backing file) or marked zero.
    Zero,
    /// Stored at this host offset.
    Data(u64),
    /// Compressed: `len` bytes at most from `offset` (the last sector may be shared or cut
    /// short at the end of the file).
    Compressed { offset: u64, len: u64 },
    /// Extended L2 entry: subcluster `i` is at `host + i * subcluster size` when bit `i` of
    /// `allocated` is set, zeros otherwise (no backing file).
    Subclusters { host: u64, allocated: u64 },
}

/// The virtual disk of a qcow2 container.
struct Qcow2Disk {
    file: Arc<dyn ReadAt>,
    layout: Layout,
    /// L1 entries by page (`L1_PAGE_ENTRIES` entries each).
    l1_pages: Lru<u64, Arc<[u64]>>,
    /// L2 tables by host offset, as 64-bit words.
    l2_tables: Lru<u64, Arc<[u64]>>,
    /// Decompressed clusters by the host offset and length of their compressed data (two
    /// entries may give one offset different lengths, only one of which may decompress).
    clusters: Lru<(u64, u64), Arc<[u8]>>,
}

/// An `InvalidData` I/O error carrying a [`ContainerError::Damaged`], for damage found
/// while reading.
fn damaged_io(what: impl Into<String>, offset: u64, why: impl Into<String>) -> io::Error {
    super::damaged_io(FORMAT, what, offset, why)
}

impl Qcow2Disk {
    fn new(file: Arc<dyn ReadAt>, layout: Layout) -> Qcow2Disk {
        let cluster = layout.cluster_size();
        Qcow2Disk {
            file,
            l1_pages: Lru::new(L1_PAGES_CACHED),
            l2_tables: Lru::with_budget(L2_CACHE_BYTES, cluster, 2, L2_CACHE_MAX),
            clusters: Lru::with_budget(CLUSTER_CACHE_BYTES, cluster, 2, CLUSTER_CACHE_MAX),
            layout,
        }
    }

    /// Reads host bytes for the guest; the file ending first means it was truncated, which
    /// is damage, not the end of the virtual disk.
    fn read_host(&self, buf: &mut [u8], offset: u64, what: &str) -> io::Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                damaged_io(
                    what,
                    offset,
                    format!(
                        "{} bytes there lie past the end of the file ({} bytes): truncated?",
                        buf.len(),
                        self.layout.file_len
                    ),
                )
            } else {
                error
            }
        })
    }

    fn l1_entry(&self, index: u64) -> io::Result<u64> {
        let layout = &self.layout;
        if index >= layout.l1_entries {
            return Err(damaged_io(
                "L1 table",
                layout.l1_offset,
                format!(
                    "entry {index} is past the {} entries read",
                    layout.l1_entries
                ),
            ));
        }
        let page = index / L1_PAGE_ENTRIES;
        let entries = self.l1_pages.get_or_load(page, || -> io::Result<_> {
            let first = page * L1_PAGE_ENTRIES;
            let count = (layout.l1_entries - first).min(L1_PAGE_ENTRIES);
            let mut bytes = vec![0u8; count as usize * 8];
            self.read_host(&mut bytes, layout.l1_offset + first * 8, "L1 table")?;
            Ok(words(&bytes))
        })?;
        Ok(entries[(index % L1_PAGE_ENTRIES) as usize])
    }

    fn l2_table(&self, offset: u64) -> io::Result<Arc<[u64]>> {
        self.l2_tables.get_or_load(offset, || {
            let mut bytes = vec![0u8; self.layout.cluster_size() as usize];
            self.read_host(&mut bytes, offset, "L2 table")?;
            Ok(words(&bytes))
        })
    }

    /// Where guest cluster `index` is.
    fn cluster(&self, index: u64) -> io::Result<Cluster> {
        let layout = &self.layout;
        let l1_index = index >> layout.l2_bits;
        let l2_index = (index & ((1u64 << layout.l2_bits) - 1)) as usize;
        let l1_entry = self.l1_entry(l1_index)?;
        let l2_offset = l1_entry & OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(Cluster::Zero);
        }
        let entry_offset = layout.l1_offset + l1_index * 8;
        if l2_offset & (layout.cluster_size() - 1) != 0 {
            return Err(damaged_io(
                format!("L1 entry {l1_index}"),
                entry_offset,
                format!("L2 table offset {l2_offset} is not cluster-aligned"),
            ));
        }
        let table = self.l2_table(l2_offset)?;
        let (entry, bitmap) = if layout.extended {
            (table[2 * l2_index], table[2 * l2_index + 1])
        } else {
            (table[l2_index], 0)
        };
        let width = if layout.extended { 16 } else { 8 };
        layout.decode(entry, bitmap).map_err(|why| {
            damaged_io(
                format!("L2 entry {l2_index} of the table at {l2_offset}"),
                l2_offset + l2_index as u64 * width,
                why,
            )
        })
    }

    /// The decompressed bytes of a compressed cluster.
    fn decompressed(&self, offset: u64, len: u64) -> io::Result<Arc<[u8]>> {
        self.clusters.get_or_load((offset, len), || {
            let file_len = self.layout.file_len;
            if offset >= file_len {
                return Err(damaged_io(
                    "compressed cluster",
                    offset,
                    format!("it starts past the end of the file ({file_len} bytes): truncated?"),
                ));
            }
            // The last sector counted may extend past the end of the file, which QEMU does
            // not pad: read what there is, decompression says whether it was enough.
            let mut input = vec![0u8; len.min(file_len - offset) as usize];
            self.read_host(&mut input, offset, "compressed cluster")?;
            let mut out = vec![0u8; self.layout.cluster_size() as usize];
            let done = match self.layout.compression {
                Compression::Zlib => inflate_raw(&input, &mut out),
                Compression::Zstd => unzstd(&input, &mut out),
            };
            done.map_err(|why| damaged_io("compressed cluster", offset, why))?;
            Ok(Arc::from(out))
        })
    }
}

/// Big-endian 64-bit words.
fn words(bytes: &[u8]) -> Arc<[u64]> {
    bytes.chunks_exact(8).map(|word| be64(word, 0)).collect()
}

/// Inflates raw deflate data (QEMU's "zlib" clusters have no zlib header) into exactly
/// `out`. Like QEMU, the stream must fill the cluster; what follows in its last sector is
/// not looked at.
fn inflate_raw(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut inflater = Decompress::new(false);
    let status = inflater.decompress(input, out, FlushDecompress::Finish);
    let produced = inflater.total_out();
    if produced == out.len() as u64 {
        return Ok(());
    }
    match status {
        Err(error) => Err(format!("deflate data is invalid: {error}")),
        Ok(_) => Err(format!(
            "deflate data inflates to {produced} bytes, not a cluster of {}",
            out.len()
        )),
    }
}

/// Decodes zstd frames into exactly `out`. As QEMU requires, the data must fill the cluster
/// and the frame must end there.
fn unzstd(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut source = input;
    let mut filled = 0;
    while filled < out.len() {
        let window = zstd_window(source)?;
        if window > MAX_ZSTD_WINDOW {
            return Err(format!("zstd frame asks for a window of {window} bytes"));
        }
        let mut decoder = StreamingDecoder::new(&mut source)
            .map_err(|error| format!("zstd frame header is invalid: {error}"))?;
        loop {
            let read = decoder
                .read(&mut out[filled..])
                .map_err(|error| format!("zstd data is invalid: {error}"))?;
            filled += read;
            if read == 0 || filled == out.len() {
                break;
            }
        }
        if filled == out.len() {
            let mut extra = [0u8; 1];
            let more = decoder
                .read(&mut extra)
                .map_err(|error| format!("zstd data is invalid: {error}"))?;
            if more != 0 {
                return Err(format!(
                    "zstd data decodes to more than a cluster of {}",
                    out.len()
                ));
            }
            let stored = decoder.decoder.get_checksum_from_data();
            if stored.is_some() && stored != decoder.decoder.get_calculated_checksum() {
                return Err("zstd content checksum does not match".to_string());
            }
        }
    }
    Ok(())
}

/// The window a zstd frame header asks for (RFC 8878, 3.1.1.1), read before the decoder
/// sees it so that a hostile header cannot make it hold a large buffer.
fn zstd_window(frame: &[u8]) -> Result<u64, String> {
    let short = || "zstd frame header is cut short".to_string();
    let descriptor = *frame.get(4).ok_or_else(short)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = *frame.get(5).ok_or_else(short)?;
        let log = 10 + u32::from(window >> 3);
        let base = 1u64 << log;
        return Ok(base + (base / 8) * u64::from(window & 7));
    }
    // Single segment: the window is the content size, after the dictionary id.
    let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let size_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let start = 5 + dict_len;
    let field = frame.get(start..start + size_len).ok_or_else(short)?;
    let mut value = 0u64;
    for (i, byte) in field.iter().enumerate() {
        value |= u64::from(*byte) << (8 * i);
    }
    Ok(if size_len == 2 { value + 256 } else { value })
}

impl Qcow2Disk {
    /// Fills `buf` with guest bytes from `offset`, cluster by cluster, merging reads of
    /// host-contiguous data.
    fn read_guest(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let layout = &self.layout;
        let cluster_size = layout.cluster_size();
        let mut run = Run::default();
        let mut done = 0usize;
        while done < buf.len() {
            let guest = offset + done as u64;
            let within = guest & (cluster_size - 1);
            let len = ((cluster_size - within) as usize).min(buf.len() - done);
            match self.cluster(guest >> layout.cluster_bits)? {
                Cluster::Zero => buf[done..done + len].fill(0),
                Cluster::Data(host) => run.add(self, buf, host + within, done, len)?,
                Cluster::Compressed {
                    offset: at,
                    len: stored,
                } => {
                    let data = self.decompressed(at, stored)?;
                    let within = within as usize;
                    buf[done..done + len].copy_from_slice(&data[within..within + len]);
                }
                Cluster::Subclusters { host, allocated } => {
                    self.read_subclusters(buf, &mut run, host, allocated, within, done, len)?
                }
            }
            done += len;
        }
        run.flush(self, buf)
    }

    /// The part `within..within + len` of a cluster with subclusters, into
    /// `buf[done..done + len]`.
    #[allow(clippy::too_many_arguments)]
    fn read_subclusters(
        &self,
        buf: &mut [u8],
        run: &mut Run,
        host: u64,
        allocated: u64,
        within: u64,
        done: usize,
        len: usize,
    ) -> io::Result<()> {
        let sub_bits = self.layout.cluster_bits - 5;
        let sub_size = 1u64 << sub_bits;
        let mut at = within;
        let end = within + len as u64;
        while at < end {
            let index = at >> sub_bits;
            let piece = ((index + 1) * sub_size).min(end) - at;
            let into = done + (at - within) as usize;
            if allocated & (1 << index) != 0 {
                run.add(self, buf, host + at, into, piece as usize)?;
            } else {
                buf[into..into + piece as usize].fill(0);
            }
            at += piece;
        }
        Ok(())
    }
}

/// A pending read of host-contiguous data into a contiguous part of the buffer.
#[derive(Default)]
struct Run {
    host: u64,
    start: usize,
    len: usize,
}

impl Run {
    /// Adds `len` bytes at `host` for `buf[start..]`, reading the pending run first when
    /// this does not continue it.
    fn add(
        &mut self,
        disk: &Qcow2Disk,
        buf: &mut [u8],
        host: u64,
        start: usize,
        len: usize,
    ) -> io::Result<()> {
        let continues = self.len > 0
            && self.start + self.len == start
            && self.host.checked_add(self.len as u64) == Some(host);
        if !continues {
            self.flush(disk, buf)?;
            *self = Run {
                host,
                start,
                len: 0,
            };
        }
        self.len += len;
        Ok(())
    }

    fn flush(&mut self, disk: &Qcow2Disk, buf: &mut [u8]) -> io::Result<()> {
        if self.len > 0 {
            let part = &mut buf[self.start..self.start + self.len];
            disk.read_host(part, self.host, "data cluster")?;
            self.len = 0;
        }
        Ok(())
    }
}

impl ReadAt for Qcow2Disk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.layout.virtual_size, "qcow2 disk")?;
        self.read_guest(buf, offset)
    }

    fn len(&self) -> u64 {
        self.layout.virtual_size
    }

    /// Files of the disk in uncompressed clusters are mapped where they lie in the file
    /// (clusters are aligned to their size); compressed ones are read.
    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        let layout = &self.layout;
        let cluster_size = layout.cluster_size();
        let in_file = super::pieces_in_file(pieces, |guest, len| {
            if guest.checked_add(len)? > layout.virtual_size {
                return None;
            }
            let within = guest & (cluster_size - 1);
            let n = (cluster_size - within).min(len);
            match self.cluster(guest >> layout.cluster_bits).ok()? {
                Cluster::Zero => Some((n, None)),
                Cluster::Data(host) => Some((n, Some(host + within))),
                Cluster::Compressed { .. } | Cluster::Subclusters { .. } => None,
            }
        })?;
        self.file.map_pieces(&in_file, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header for a 1 MiB disk of 64 KiB clusters, L1 at 3 clusters.
    fn header_bytes() -> [u8; HEADER_READ] {
        let mut h = [0u8; HEADER_READ];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        h[36..40].copy_from_slice(&1u32.to_be_bytes());
        h[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    fn layout(cluster_bits: u32, extended: bool) -> Layout {
        Layout {
            cluster_bits,
            extended,
            l2_bits: cluster_bits - if extended { 4 } else { 3 },
            virtual_size: 1 << 30,
            l1_offset: 1 << cluster_bits,
            l1_entries: 1,
            compression: Compression::Zlib,
            file_len: 1 << 30,
        }
    }

    #[test]
    fn parses_a_v3_header() {
        let header = Header::parse(&header_bytes(), 1 << 20).unwrap();
        assert_eq!(header.version, 3);
        assert_eq!(header.cluster_size(), 65536);
        let layout = Layout::new(&header, 1 << 20).unwrap();
        assert_eq!(layout.l1_entries, 1);
        assert_eq!(layout.l2_bits, 13);
    }

    #[test]
    fn refuses_bad_versions_and_cluster_sizes() {
        let mut h = header_bytes();
        h[7] = 1;
        assert!(matches!(
            Header::parse(&h, 1 << 20),
            Err(ContainerError::Unsupported { .. })
        ));
        let mut h = header_bytes();
        h[23] = 8;
        assert!(matches!(
            Header::parse(&h, 1 << 20),
            Err(ContainerError::Damaged { .. })
        ));
        h[23] = 22;
        assert!(matches!(
            Header::parse(&h, 1 << 20),
            Err(ContainerError::Unsupported { .. })
        ));
        let mut h = header_bytes();
        h[100..104].copy_from_slice(&100u32.to_be_bytes());
        assert!(matches!(
            Header::parse(&h, 1 << 20),
            Err(ContainerError::Damaged { .. })
        ));
    }

    #[test]
    fn refuses_a_small_or_huge_l1() {
        let mut h = header_bytes();
        h[24..32].copy_from_slice(&(1u64 << 40).to_be_bytes());
        let header = Header::parse(&h, 1 << 20).unwrap();
        assert!(Layout::new(&header, 1 << 20).is_err());
        let mut h = header_bytes();
        h[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        let header = Header::parse(&h, 1 << 20).unwrap();
        assert!(Layout::new(&header, 1 << 20).is_err());
        let mut h = header_bytes();
        h[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        let header = Header::parse(&h, 1 << 20).unwrap();
        assert!(Layout::new(&header, 1 << 20).is_err());
    }

    #[test]
    fn compression_type_must_match_its_bit() {
        let mut h = header_bytes();
        h[104] = 1;
        let header = Header::parse(&h, 1 << 20).unwrap();
        assert!(Layout::new(&header, 1 << 20).is_err());
        h[79] = INCOMPAT_COMPRESSION as u8;
        let header = Header::parse(&h, 1 << 20).unwrap();
        assert_eq!(
            Layout::new(&header, 1 << 20).unwrap().compression,
            Compression::Zstd
        );
        h[104] = 2;
        let header = Header::parse(&h, 1 << 20).unwrap();
        assert!(matches!(
            Layout::new(&header, 1 << 20),
            Err(ContainerError::Unsupported { .. })
        ));
    }

    #[test]
    fn decodes_standard_entries() {
        let l = layout(16, false);
        assert_eq!(l.decode(0, 0), Ok(Cluster::Zero));
        assert_eq!(l.decode(1 << 63 | 5 << 16, 0), Ok(Cluster::Data(5 << 16)));
        assert_eq!(l.decode(5 << 16 | L2_ZERO, 0), Ok(Cluster::Zero));
        assert!(l.decode(5 << 16 | 512, 0).is_err());
    }

    #[test]
    fn decodes_compressed_entries() {
        // 64 KiB clusters: x = 54, offset in bits 0..54, sectors in 54..62.
        let l = layout(16, false);
        let entry = L2_COMPRESSED | 3 << 54 | 0x1_0100;
        assert_eq!(
            l.decode(entry, 0),
            Ok(Cluster::Compressed {
                offset: 0x1_0100,
                len: 4 * 512 - 0x100
            })
        );
        // 512-byte clusters: x = 61, one bit of sectors; the offset may not pass 2^56.
        let l = layout(9, false);
        assert!(l.decode(L2_COMPRESSED | 1 << 57, 0).is_err());
        assert_eq!(
            l.decode(L2_COMPRESSED | 1 << 61 | 1024, 0),
            Ok(Cluster::Compressed {
                offset: 1024,
                len: 1024
            })
        );
    }

    #[test]
    fn decodes_extended_entries() {
        let l = layout(16, true);
        assert_eq!(l.decode(0, 0), Ok(Cluster::Zero));
        assert_eq!(l.decode(0, 0xffff_ffff_0000_0000), Ok(Cluster::Zero));
        assert_eq!(
            l.decode(5 << 16, 0b101),
            Ok(Cluster::Subclusters {
                host: 5 << 16,
                allocated: 0b101
            })
        );
        assert!(l.decode(0, 1).is_err());
        assert!(l.decode(5 << 16, 1 | 1 << 32).is_err());
    }

    #[test]
    fn zstd_window_is_read_from_the_header() {
        // Window descriptor 0x58: 2^(10 + 11) = 2 MiB.
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]),
            Ok(2 << 20)
        );
        // Single segment, 2-byte content size 0xff00 + 256.
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0xff]),
            Ok(0xff00 + 256)
        );
        assert!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x60]).is_err());
    }

    #[test]
    fn inflate_needs_a_full_cluster() {
        let mut out = [0u8; 512];
        assert!(inflate_raw(&[0x03, 0x00], &mut out).is_err());
        assert!(inflate_raw(&[0xff; 16], &mut out).is_err());
    }
}
