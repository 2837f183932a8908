//! The VMDK container (VMware Virtual Disk Format 1.1), as written by VMware products,
//! VirtualBox and `qemu-img -O vmdk`.
//!
//! Three shapes reach this reader:
//! - a hosted sparse extent (`KDMV` at byte 0) holding its own descriptor: monolithicSparse,
//!   or streamOptimized, whose grains are deflate-compressed behind a small marker and
//!   whose grain directory may be in a footer at the end of the file;
//! - a descriptor file, a small text file starting `# Disk DescriptorFile`, naming the
//!   extents the disk is made of (flat files, sparse files, zeros), each opened read-only
//!   from the descriptor's folder and read one after the other;
//! - anything else with the magic (a delta disk, an encrypted one, an ESX-only extent) is
//!   refused with the reason.
//!
//! A sparse extent is read through its grain directory (GD) and grain tables (GT), both
//! read on demand; grain tables and decompressed grains are kept in small caches shared
//! by all the extents of one disk.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use flate2::read::{DeflateDecoder, ZlibDecoder};

use super::cache::Lru;
use super::{le16, le32, le64, ContainerError, ContainerInfo, Opened};
use crate::evidence::image::{within, ImageFile, ReadAt, Slice};
use crate::evidence::{Evidence, Piece};

const FORMAT: &str = "vmdk";
const SECTOR: u64 = 512;
const SPARSE_MAGIC: &[u8; 4] = b"KDMV";
/// The ESX "vmfsSparse" extent (and VMware 3 disks): another format, refused by name.
const COWD_MAGIC: &[u8; 4] = b"COWD";
/// The grain directory's offset in a streamOptimized header whose real values are in the
/// footer, near the end of the file.
const GD_AT_END: u64 = u64::MAX;
const FLAG_NEWLINE_TEST: u32 = 1;
const FLAG_REDUNDANT_GD: u32 = 1 << 1;
const FLAG_ZEROED_GTE: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
const COMPRESS_DEFLATE: u16 = 1;
/// The newline-detection bytes: altered when the file went through a text-mode copy.
const NEWLINE_TEST: [u8; 4] = *b"\n \r\n";
/// Descriptors are a few hundred bytes; more than this is not one.
const MAX_DESCRIPTOR: u64 = 64 << 10;
/// Grains are 64 KiB (128 sectors) everywhere; at most 1 MiB is read.
const MAX_GRAIN_SECTORS: u64 = 2048;
/// Grain tables have 512 entries everywhere; at most 4096 are read.
const MAX_GTES_PER_GT: u64 = 4096;
const MAX_EXTENTS: usize = 10_000;
/// The shared caches hold at most about this many bytes.
const TABLE_CACHE_BYTES: u64 = 2 << 20;
const GRAIN_CACHE_BYTES: u64 = 4 << 20;

/// Opens `file` as a vmdk container; `None` when its signature is not there.
pub fn open(path: &Path, file: &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError> {
    let mut head = [0u8; 512];
    let n = file.len().min(512) as usize;
    read(file.as_ref(), &mut head[..n], 0, "header")?;
    let head = &head[..n];
    if head.starts_with(SPARSE_MAGIC) {
        return open_monolithic(path, file).map(Some);
    }
    if head.starts_with(COWD_MAGIC) && n >= 8 && le32(head, 4) == 1 {
        return Err(ContainerError::Unsupported {
            format: FORMAT,
            why: format!(
                "{} is a COWD sparse extent (ESX vmfsSparse or VMware 3), which is not read",
                path.display()
            ),
        });
    }
    if is_descriptor(head) {
        return open_descriptor(path, file).map(Some);
    }
    Ok(None)
}

/// A descriptor file's first line is `# Disk DescriptorFile` (spacing and case vary).
fn is_descriptor(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    line.trim()
        .strip_prefix('#')
        .is_some_and(|rest| rest.trim().eq_ignore_ascii_case("Disk DescriptorFile"))
}

// ---------------------------------------------------------------------------------------
// The monolithic sparse file

/// A sparse extent opened on its own: monolithicSparse or streamOptimized. Its embedded
/// descriptor must be there and name no parent; a sparse file without one is one extent of
/// a split disk, whose other parts only the descriptor file names.
fn open_monolithic(path: &Path, file: &Arc<dyn ReadAt>) -> Result<Opened, ContainerError> {
    let geometry = Geometry::read(file.as_ref())?;
    let Some(text) = embedded_descriptor(file.as_ref())? else {
        return Err(ContainerError::Unsupported {
            format: FORMAT,
            why: format!(
                "{} is a sparse extent without a descriptor of its own: one part of a split \
                 disk; open the descriptor .vmdk file that names it",
                path.display()
            ),
        });
    };
    let descriptor =
        Descriptor::parse(&text).map_err(|why| damaged("embedded descriptor", SECTOR, why))?;
    descriptor.check_readable()?;
    match descriptor.extents.as_slice() {
        [] => {}
        [one] if one.sectors.checked_mul(SECTOR) == Some(geometry.capacity) => {}
        [one] => {
            return Err(damaged(
                "embedded descriptor",
                SECTOR,
                format!(
                    "its extent has {} sectors but the header says {}",
                    one.sectors,
                    geometry.capacity / SECTOR
                ),
            ))
        }
        several => {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!(
                    "{} is one extent of a disk of {}; open the descriptor .vmdk file that \
                     names them",
                    path.display(),
                    several.len()
                ),
            })
        }
    }
    let kind = descriptor.create_type.clone().unwrap_or_else(|| {
        if geometry.compressed {
            "streamOptimized".into()
        } else {
            "monolithicSparse".into()
        }
    });
    let caches = Arc::new(Caches::new(&[&geometry]));
    let disk: Arc<dyn ReadAt> = Arc::new(SparseExtent::new(file.clone(), geometry, caches, 0, 0));
    Ok(Opened {
        info: ContainerInfo {
            format: format!("vmdk ({kind})"),
            virtual_size: disk.len(),
            ..ContainerInfo::default()
        },
        disk,
    })
}

/// The descriptor text a sparse extent holds, `None` when it holds none (no offset, or
/// only zeros there).
fn embedded_descriptor(file: &dyn ReadAt) -> Result<Option<String>, ContainerError> {
    let mut bytes = [0u8; 512];
    read(file, &mut bytes, 0, "header")?;
    let header = Header::parse(&bytes);
    if header.descriptor_offset == 0 || header.descriptor_size == 0 {
        return Ok(None);
    }
    let at = header.descriptor_offset.checked_mul(SECTOR);
    let len = header
        .descriptor_size
        .saturating_mul(SECTOR)
        .min(MAX_DESCRIPTOR);
    let fits = at
        .and_then(|at| at.checked_add(len))
        .is_some_and(|end| end <= file.len());
    let Some(at) = at.filter(|_| fits) else {
        return Err(damaged(
            "header",
            28,
            format!(
                "the embedded descriptor ({} sectors at sector {}) is outside the file",
                header.descriptor_size, header.descriptor_offset
            ),
        ));
    };
    let mut text = vec![0u8; len as usize];
    read(file, &mut text, at, "embedded descriptor")?;
    Ok(descriptor_text(&text))
}

/// The text of a descriptor: up to its first NUL (descriptors are padded with them);
/// `None` when there is no text at all.
fn descriptor_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

// ---------------------------------------------------------------------------------------
// The descriptor

/// What a descriptor says that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
struct Descriptor {
    create_type: Option<String>,
    parent_cid: Option<String>,
    parent_hint: Option<String>,
    /// An `encryption.*` key: the extents' data is encrypted.
    encrypted: bool,
    extents: Vec<ExtentLine>,
}

/// One extent line: `RW 65536 FLAT "disk-flat.vmdk" 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ExtentLine {
    access: String,
    sectors: u64,
    kind: String,
    file: Option<String>,
    /// In sectors, into the file (flat extents).
    offset: u64,
}

impl Descriptor {
    /// Parses descriptor text; the error says which line is wrong.
    fn parse(text: &str) -> Result<Descriptor, String> {
        let mut descriptor = Descriptor::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or_default();
            if ["RW", "RDONLY", "NOACCESS"]
                .iter()
                .any(|access| first.eq_ignore_ascii_case(access))
            {
                if descriptor.extents.len() >= MAX_EXTENTS {
                    return Err(format!("more than {MAX_EXTENTS} extents"));
                }
                let extent = ExtentLine::parse(line)
                    .map_err(|why| format!("line {}: {why}: {line:?}", number + 1))?;
                descriptor.extents.push(extent);
            } else if let Some((key, value)) = line.split_once('=') {
                descriptor.set(key.trim(), unquote(value.trim()));
            }
        }
        Ok(descriptor)
    }

    fn set(&mut self, key: &str, value: &str) {
        let slot = if key.eq_ignore_ascii_case("createType") {
            &mut self.create_type
        } else if key.eq_ignore_ascii_case("parentCID") {
            &mut self.parent_cid
        } else if key.eq_ignore_ascii_case("parentFileNameHint") {
            &mut self.parent_hint
        } else {
            if key
                .get(..11)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("encryption."))
            {
                self.encrypted = true;
            }
            return;
        };
        *slot = Some(value.to_string());
    }

    /// Refuses a delta disk (its data is partly in a parent) and an encrypted one.
    fn check_readable(&self) -> Result<(), ContainerError> {
        let parent_cid = self
            .parent_cid
            .as_deref()
            .filter(|cid| !cid.eq_ignore_ascii_case("ffffffff"));
        let parent_hint = self.parent_hint.as_deref().filter(|hint| !hint.is_empty());
        if parent_cid.is_some() || parent_hint.is_some() {
            let parent = match (parent_hint, parent_cid) {
                (Some(hint), _) => format!("\"{hint}\""),
                (None, Some(cid)) => format!("of content id {cid}"),
                (None, None) => unreachable!("one of them is there"),
            };
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!(
                    "a delta (snapshot) disk: its data is partly in its parent disk {parent}, \
                     which is not opened (open the parent, or consolidate the snapshot)"
                ),
            });
        }
        if self.encrypted {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: "an encrypted disk (its descriptor has encryption keys)".into(),
            });
        }
        Ok(())
    }
}

impl ExtentLine {
    fn parse(line: &str) -> Result<ExtentLine, String> {
        let (access, rest) = next_word(line);
        let (sectors, rest) = next_word(rest);
        let (kind, rest) = next_word(rest);
        let sectors = sectors
            .parse::<u64>()
            .map_err(|_| format!("{sectors:?} is not a number of sectors"))?;
        if kind.is_empty() {
            return Err("no extent type".into());
        }
        let rest = rest.trim_start();
        let (file, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or("a file name without its closing quote")?;
            (Some(quoted[..end].to_string()), &quoted[end + 1..])
        } else if rest.is_empty() {
            (None, rest)
        } else {
            let (word, rest) = next_word(rest);
            (Some(word.to_string()), rest)
        };
        let (offset, _) = next_word(rest);
        let offset = if offset.is_empty() {
            0
        } else {
            offset
                .parse::<u64>()
                .map_err(|_| format!("{offset:?} is not an offset in sectors"))?
        };
        Ok(ExtentLine {
            access: access.to_ascii_uppercase(),
            sectors,
            kind: kind.to_ascii_uppercase(),
            file,
            offset,
        })
    }
}

/// The first word of `text` and what follows it.
fn next_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    text.split_at(end)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// A descriptor file: its extents opened from its folder and read one after the other.
fn open_descriptor(path: &Path, file: &Arc<dyn ReadAt>) -> Result<Opened, ContainerError> {
    let len = file.len();
    if len > MAX_DESCRIPTOR {
        return Err(ContainerError::Unsupported {
            format: FORMAT,
            why: format!(
                "{} starts like a descriptor but is {len} bytes long (a descriptor is at \
                 most 64 KiB)",
                path.display()
            ),
        });
    }
    let mut bytes = vec![0u8; len as usize];
    read(file.as_ref(), &mut bytes, 0, "descriptor")?;
    let text = descriptor_text(&bytes).unwrap_or_default();
    let descriptor = Descriptor::parse(&text).map_err(|why| damaged("descriptor", 0, why))?;
    descriptor.check_readable()?;
    if descriptor.extents.is_empty() {
        return Err(damaged("descriptor", 0, "it names no extent"));
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let extents = descriptor
        .extents
        .iter()
        .map(|line| OpenedExtent::open(folder, line))
        .collect::<Result<Vec<_>, _>>()?;
    let geometries: Vec<&Geometry> = extents
        .iter()
        .filter_map(|extent| match &extent.kind {
            ExtentKind::Sparse(_, geometry) => Some(geometry),
            _ => None,
        })
        .collect();
    let caches = Arc::new(Caches::new(&geometries));
    let files = extents
        .iter()
        .filter_map(|extent| extent.path.as_ref().map(|p| p.display().to_string()))
        .collect();
    let disk = concatenate(extents, &caches)?;
    let kind = descriptor.create_type.as_deref().unwrap_or("custom");
    Ok(Opened {
        info: ContainerInfo {
            format: format!("vmdk ({kind})"),
            virtual_size: disk.len(),
            files,
            ..ContainerInfo::default()
        },
        disk,
    })
}

/// An extent of a descriptor, its file opened.
struct OpenedExtent {
    sectors: u64,
    path: Option<PathBuf>,
    kind: ExtentKind,
}

enum ExtentKind {
    Zero,
    /// The file and the byte its data starts at.
    Flat(Arc<dyn ReadAt>, u64),
    Sparse(Arc<dyn ReadAt>, Geometry),
}

impl OpenedExtent {
    fn open(folder: &Path, line: &ExtentLine) -> Result<OpenedExtent, ContainerError> {
        if line.access == "NOACCESS" {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!(
                    "an extent of {} sectors is marked NOACCESS (its data is not there)",
                    line.sectors
                ),
            });
        }
        let bytes = line.sectors.checked_mul(SECTOR).ok_or_else(|| {
            damaged(
                "descriptor",
                0,
                format!("an extent of {} sectors", line.sectors),
            )
        })?;
        let kind = line.kind.as_str();
        if kind == "ZERO" {
            return Ok(OpenedExtent {
                sectors: line.sectors,
                path: None,
                kind: ExtentKind::Zero,
            });
        }
        let why = match kind {
            "FLAT" | "VMFS" | "SPARSE" => None,
            "VMFSSPARSE" => Some("a VMFS sparse (COWD) extent".to_string()),
            "SESPARSE" => Some("an ESX SE sparse extent".to_string()),
            "VMFSRDM" | "VMFSRAW" | "VMFSPASSTHROUGHRAW" => Some(format!(
                "a raw device mapping extent ({kind}): the data is on a device, not in a file"
            )),
            other => Some(format!("an extent of unknown type {other}")),
        };
        if let Some(why) = why {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why,
            });
        }
        let name = line.file.as_deref().ok_or_else(|| {
            damaged(
                "descriptor",
                0,
                format!("a {kind} extent without a file name"),
            )
        })?;
        let path = extent_path(folder, name)?;
        let file: Arc<dyn ReadAt> = Arc::new(ImageFile::open(&path).map_err(|source| {
            super::read_failed(FORMAT, format!("extent file {}", path.display()), 0, source)
        })?);
        let kind = if kind == "SPARSE" {
            let geometry = Geometry::read(file.as_ref()).map_err(|e| in_extent(e, &path))?;
            if bytes > geometry.capacity {
                return Err(damaged(
                    &format!("extent file {}", path.display()),
                    0,
                    format!(
                        "the descriptor says {} sectors but the extent holds {}",
                        line.sectors,
                        geometry.capacity / SECTOR
                    ),
                ));
            }
            ExtentKind::Sparse(file, geometry)
        } else {
            let start = line.offset.checked_mul(SECTOR);
            let fits = start
                .and_then(|start| start.checked_add(bytes))
                .is_some_and(|end| end <= file.len());
            let Some(start) = start.filter(|_| fits) else {
                return Err(damaged(
                    &format!("extent file {}", path.display()),
                    0,
                    format!(
                        "the file is {} bytes but the descriptor reads {} sectors from sector \
                         {} (a truncated file?)",
                        file.len(),
                        line.sectors,
                        line.offset
                    ),
                ));
            };
            ExtentKind::Flat(file, start)
        };
        Ok(OpenedExtent {
            sectors: line.sectors,
            path: Some(path),
            kind,
        })
    }
}

/// The file an extent line names, inside the descriptor's folder: a name with `..`, a root
/// or a drive would let a descriptor read any file of the machine, so it is refused.
/// Backslashes are separators (descriptors written on Windows).
fn extent_path(folder: &Path, name: &str) -> Result<PathBuf, ContainerError> {
    let name = name.replace('\\', "/");
    let relative = Path::new(&name);
    let inside = !name.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(ContainerError::Unsupported {
            format: FORMAT,
            why: format!(
                "the extent file \"{name}\" is not inside the descriptor's folder (an absolute \
                 path or a `..`): only files in that folder or below it are opened"
            ),
        });
    }
    Ok(folder.join(relative))
}

/// A damaged sparse extent of a descriptor, said with its file's name.
fn in_extent(error: ContainerError, path: &Path) -> ContainerError {
    match error {
        ContainerError::Damaged {
            format,
            what,
            offset,
            why,
        } => ContainerError::Damaged {
            format,
            what: format!("{what} of extent file {}", path.display()),
            offset,
            why,
        },
        ContainerError::Io {
            format,
            what,
            offset,
            source,
        } => ContainerError::Io {
            format,
            what: format!("{what} of extent file {}", path.display()),
            offset,
            source,
        },
        other => other,
    }
}

/// The disk the extents make, one after the other; one data extent alone is the disk.
fn concatenate(
    extents: Vec<OpenedExtent>,
    caches: &Arc<Caches>,
) -> Result<Arc<dyn ReadAt>, ContainerError> {
    let mut parts = Vec::new();
    let mut start = 0u64;
    let mut base_sector = 0u64;
    let mut sparse_id = 0u32;
    for extent in extents {
        let len = extent.sectors * SECTOR;
        let source: Option<(Arc<dyn ReadAt>, u64)> = match extent.kind {
            ExtentKind::Zero => None,
            ExtentKind::Flat(file, at) => Some((file, at)),
            ExtentKind::Sparse(file, geometry) => {
                let sparse =
                    SparseExtent::new(file, geometry, caches.clone(), sparse_id, base_sector);
                sparse_id += 1;
                Some((Arc::new(sparse), 0))
            }
        };
        base_sector += extent.sectors;
        if len > 0 {
            parts.push(Part { start, len, source });
        }
        start = start.checked_add(len).ok_or_else(|| {
            damaged(
                "descriptor",
                0,
                "the extents add up to more than 2^64 bytes",
            )
        })?;
    }
    if let [Part {
        start: 0,
        len,
        source: Some((file, at)),
    }] = parts.as_slice()
    {
        return Ok(Arc::new(Slice::new(file.clone(), *at, *len)));
    }
    Ok(Arc::new(Concat { parts, len: start }))
}

/// Extents read one after the other.
struct Concat {
    parts: Vec<Part>,
    len: u64,
}

/// `len` bytes of the disk from `start`: zeros (`None`), or bytes of a reader from an offset.
struct Part {
    start: u64,
    len: u64,
    source: Option<(Arc<dyn ReadAt>, u64)>,
}

impl ReadAt for Concat {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.len, "vmdk disk")?;
        let mut index = self.parts.partition_point(|p| p.start + p.len <= offset);
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let part = self.parts.get(index).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the last vmdk extent",
                )
            })?;
            let within = at - part.start;
            let n = ((part.len - within) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match &part.source {
                None => out.fill(0),
                Some((reader, base)) => reader.read_exact_at(out, base + within)?,
            }
            done += n;
            index += 1;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

// ---------------------------------------------------------------------------------------
// The sparse extent

/// The fields of a sparse extent header (the one at byte 0, or the footer).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    magic: [u8; 4],
    version: u32,
    flags: u32,
    /// In sectors, as the other sizes and offsets.
    capacity: u64,
    grain_size: u64,
    descriptor_offset: u64,
    descriptor_size: u64,
    gtes_per_gt: u32,
    rgd_offset: u64,
    gd_offset: u64,
    newline_test: [u8; 4],
    compress_algorithm: u16,
}

impl Header {
    fn parse(bytes: &[u8; 512]) -> Header {
        Header {
            magic: bytes[..4].try_into().expect("4 bytes"),
            version: le32(bytes, 4),
            flags: le32(bytes, 8),
            capacity: le64(bytes, 12),
            grain_size: le64(bytes, 20),
            descriptor_offset: le64(bytes, 28),
            descriptor_size: le64(bytes, 36),
            gtes_per_gt: le32(bytes, 44),
            rgd_offset: le64(bytes, 48),
            gd_offset: le64(bytes, 56),
            newline_test: bytes[73..77].try_into().expect("4 bytes"),
            compress_algorithm: le16(bytes, 77),
        }
    }
}

/// A sparse extent's header checked against its file: sizes in bytes, the grain directory
/// inside the file.
#[derive(Debug)]
struct Geometry {
    capacity: u64,
    grain_bytes: u64,
    gtes_per_gt: u64,
    /// In bytes; its entries, as many as the capacity needs, are inside the file.
    gd_offset: u64,
    compressed: bool,
    markers: bool,
    zeroed_gte: bool,
}

impl Geometry {
    /// Reads and checks the header (and, for a streamOptimized file whose header says so,
    /// the footer that holds the real one).
    fn read(file: &dyn ReadAt) -> Result<Geometry, ContainerError> {
        let header = read_header(file, 0, "header")?;
        if header.magic != *SPARSE_MAGIC {
            return Err(damaged(
                "header",
                0,
                "no \"KDMV\" signature: not a sparse extent",
            ));
        }
        if !(1..=3).contains(&header.version) {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!(
                    "sparse extent version {} (versions 1 to 3 are read)",
                    header.version
                ),
            });
        }
        if header.flags & FLAG_NEWLINE_TEST != 0 && header.newline_test != NEWLINE_TEST {
            return Err(damaged(
                "header",
                73,
                "its newline-detection bytes are altered: the file was copied as text",
            ));
        }
        let header = if header.gd_offset == GD_AT_END {
            read_footer(file)?
        } else {
            header
        };
        Geometry::check(&header, file.len())
    }

    fn check(header: &Header, file_len: u64) -> Result<Geometry, ContainerError> {
        let compressed = header.compress_algorithm == COMPRESS_DEFLATE;
        if header.compress_algorithm > COMPRESS_DEFLATE
            || (header.flags & FLAG_COMPRESSED != 0 && !compressed)
        {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!(
                    "grains compressed with algorithm {} (only deflate, 1, is read)",
                    header.compress_algorithm
                ),
            });
        }
        let grain_sectors = header.grain_size;
        if grain_sectors == 0 || !grain_sectors.is_power_of_two() {
            return Err(damaged(
                "header",
                20,
                format!("a grain of {grain_sectors} sectors, not a power of two"),
            ));
        }
        if grain_sectors > MAX_GRAIN_SECTORS {
            return Err(ContainerError::Unsupported {
                format: FORMAT,
                why: format!("grains of {grain_sectors} sectors (at most 2048 are read)"),
            });
        }
        let gtes_per_gt = u64::from(header.gtes_per_gt);
        if gtes_per_gt == 0 || gtes_per_gt > MAX_GTES_PER_GT {
            return Err(damaged(
                "header",
                44,
                format!("grain tables of {gtes_per_gt} entries (1 to 4096 are read)"),
            ));
        }
        let capacity = header.capacity.checked_mul(SECTOR).ok_or_else(|| {
            damaged(
                "header",
                12,
                format!("a capacity of {} sectors", header.capacity),
            )
        })?;
        let gd_entries = header.capacity.div_ceil(grain_sectors * gtes_per_gt);
        let gd_offset = choose_gd(header, gd_entries, file_len)?;
        Ok(Geometry {
            capacity,
            grain_bytes: grain_sectors * SECTOR,
            gtes_per_gt,
            gd_offset,
            compressed,
            markers: header.flags & FLAG_MARKERS != 0,
            zeroed_gte: header.flags & FLAG_ZEROED_GTE != 0,
        })
    }

    fn table_bytes(&self) -> u64 {
        self.gtes_per_gt * 4
    }
}

/// The byte offset of the grain directory: the primary one, or the redundant one when the
/// flags say there is one and the primary does not fit in the file.
fn choose_gd(header: &Header, entries: u64, file_len: u64) -> Result<u64, ContainerError> {
    let fits = |sector: u64| {
        let at = sector.checked_mul(SECTOR)?;
        let end = at.checked_add(entries.checked_mul(4)?)?;
        (sector != 0 && end <= file_len).then_some(at)
    };
    if let Some(at) = fits(header.gd_offset) {
        return Ok(at);
    }
    if header.flags & FLAG_REDUNDANT_GD != 0 {
        if let Some(at) = fits(header.rgd_offset) {
            return Ok(at);
        }
    }
    Err(damaged(
        "header",
        56,
        format!(
            "the grain directory ({entries} entries at sector {}) is not inside the file's {file_len} bytes",
            header.gd_offset
        ),
    ))
}

fn read_header(file: &dyn ReadAt, offset: u64, what: &str) -> Result<Header, ContainerError> {
    let mut bytes = [0u8; 512];
    read(file, &mut bytes, offset, what)?;
    Ok(Header::parse(&bytes))
}

/// The footer of a streamOptimized file, the second-to-last sector (a footer marker before
/// it, an end-of-stream marker after): the header again, with the grain directory's offset.
fn read_footer(file: &dyn ReadAt) -> Result<Header, ContainerError> {
    let len = file.len();
    let Some(at) = len.checked_sub(2 * SECTOR).filter(|&at| at >= SECTOR) else {
        return Err(damaged(
            "footer",
            0,
            "the header puts the grain directory in a footer but the file is too short for one",
        ));
    };
    let footer = read_header(file, at, "footer")?;
    if footer.magic != *SPARSE_MAGIC {
        return Err(damaged(
            "footer",
            at,
            "the header puts the grain directory in a footer but there is none at the end of \
             the file (a truncated or unfinished stream?)",
        ));
    }
    if footer.gd_offset == GD_AT_END {
        return Err(damaged(
            "footer",
            at,
            "the footer gives no grain directory either",
        ));
    }
    Ok(footer)
}

/// Grain tables and decompressed grains, shared by the extents of one disk so that their
/// total stays small however many extents there are.
struct Caches {
    tables: Lru<CacheKey, Option<Arc<[u32]>>>,
    grains: Lru<CacheKey, Arc<[u8]>>,
}

/// An extent's number and a table's (or a grain's) number in it.
type CacheKey = (u32, u64);

impl Caches {
    fn new(geometries: &[&Geometry]) -> Caches {
        let table = geometries
            .iter()
            .map(|g| g.table_bytes())
            .max()
            .unwrap_or(1);
        let grain = geometries.iter().map(|g| g.grain_bytes).max().unwrap_or(1);
        Caches {
            tables: Lru::with_budget(TABLE_CACHE_BYTES, table, 4, 1024),
            grains: Lru::with_budget(GRAIN_CACHE_BYTES, grain, 4, 64),
        }
    }
}

/// Where a grain's data is.
enum Grain {
    Zero,
    /// The byte of the file its data (or, compressed, its marker) starts at.
    At(u64),
}

/// A hosted sparse extent read through its grain directory and tables.
struct SparseExtent {
    file: Arc<dyn ReadAt>,
    geometry: Geometry,
    caches: Arc<Caches>,
    /// This extent's key in the shared caches.
    id: u32,
    /// The extent's first sector in the disk (a compressed grain's marker may give its
    /// sector in the disk rather than in the extent).
    base_sector: u64,
}

impl SparseExtent {
    fn new(
        file: Arc<dyn ReadAt>,
        geometry: Geometry,
        caches: Arc<Caches>,
        id: u32,
        base_sector: u64,
    ) -> SparseExtent {
        SparseExtent {
            file,
            geometry,
            caches,
            id,
            base_sector,
        }
    }

    fn grain(&self, index: u64) -> io::Result<Grain> {
        let g = &self.geometry;
        let Some(table) = self.table(index / g.gtes_per_gt)? else {
            return Ok(Grain::Zero);
        };
        Ok(match table[(index % g.gtes_per_gt) as usize] {
            0 => Grain::Zero,
            1 if g.zeroed_gte => Grain::Zero,
            sector => Grain::At(u64::from(sector) * SECTOR),
        })
    }

    /// Grain table `index` of the directory, `None` when it is not allocated.
    fn table(&self, index: u64) -> io::Result<Option<Arc<[u32]>>> {
        self.caches
            .tables
            .get_or_load((self.id, index), || self.read_table(index))
    }

    fn read_table(&self, index: u64) -> io::Result<Option<Arc<[u32]>>> {
        let g = &self.geometry;
        let entry_at = g.gd_offset + index * 4;
        let mut entry = [0u8; 4];
        self.file
            .read_exact_at(&mut entry, entry_at)
            .map_err(|e| io_error("grain directory entry", entry_at, e))?;
        let sector = u32::from_le_bytes(entry);
        if sector == 0 {
            return Ok(None);
        }
        let at = u64::from(sector) * SECTOR;
        let len = g.table_bytes();
        if at + len > self.file.len() {
            return Err(damaged_io(
                &format!("grain directory entry {index}"),
                entry_at,
                format!("its grain table at byte {at} ends past the end of the file"),
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut bytes, at)
            .map_err(|e| io_error("grain table", at, e))?;
        let table: Arc<[u32]> = bytes.chunks_exact(4).map(|entry| le32(entry, 0)).collect();
        Ok(Some(table))
    }

    /// Grain `index` decompressed, from the cache or from the file at `at`.
    fn inflated(&self, index: u64, at: u64) -> io::Result<Arc<[u8]>> {
        self.caches.grains.get_or_load((self.id, index), || {
            let compressed = self.read_compressed(index, at)?;
            let g = &self.geometry;
            // The last grain may be cut at the capacity.
            let needed = (g.capacity - index * g.grain_bytes).min(g.grain_bytes);
            let grain = inflate(&compressed, g.grain_bytes as usize, needed as usize)
                .map_err(|why| damaged_io(&format!("compressed grain {index}"), at, why))?;
            Ok(grain.into())
        })
    }

    /// The compressed bytes of grain `index`: behind its marker (the grain's sector and the
    /// data's length) when the extent has markers, else as much as a grain can take.
    fn read_compressed(&self, index: u64, at: u64) -> io::Result<Vec<u8>> {
        let g = &self.geometry;
        let file_len = self.file.len();
        let most = 2 * g.grain_bytes + SECTOR;
        let what = format!("compressed grain {index}");
        if !g.markers {
            if at >= file_len {
                return Err(damaged_io(
                    &what,
                    at,
                    "it starts past the end of the file".into(),
                ));
            }
            let mut data = vec![0u8; (file_len - at).min(most) as usize];
            self.file
                .read_exact_at(&mut data, at)
                .map_err(|e| io_error(&what, at, e))?;
            return Ok(data);
        }
        let mut marker = [0u8; 12];
        self.file
            .read_exact_at(&mut marker, at)
            .map_err(|e| io_error(&what, at, e))?;
        let lba = le64(&marker, 0);
        let size = u64::from(le32(&marker, 8));
        let sector = index * (g.grain_bytes / SECTOR);
        if size == 0 {
            return Err(damaged_io(
                &what,
                at,
                "its grain table entry points at a metadata marker, not a grain".into(),
            ));
        }
        if lba != sector && lba != self.base_sector + sector {
            return Err(damaged_io(
                &what,
                at,
                format!("its marker says sector {lba}, the grain table sector {sector}"),
            ));
        }
        if size > most {
            return Err(damaged_io(
                &what,
                at,
                format!("{size} bytes of compressed data, more than a grain can take"),
            ));
        }
        if at + 12 + size > file_len {
            return Err(damaged_io(
                &what,
                at,
                format!("its {size} bytes of compressed data end past the end of the file"),
            ));
        }
        let mut data = vec![0u8; size as usize];
        self.file
            .read_exact_at(&mut data, at + 12)
            .map_err(|e| io_error(&what, at + 12, e))?;
        Ok(data)
    }
}

/// Decompresses a grain: zlib (RFC 1950, what qemu and VMware write) or bare deflate. The
/// result must be a whole grain of `grain` bytes, or at least the `needed` bytes of a last
/// grain cut at the capacity (padded with zeros).
fn inflate(data: &[u8], grain: usize, needed: usize) -> Result<Vec<u8>, String> {
    let limit = grain as u64 + 1;
    let mut out = Vec::with_capacity(grain);
    let zlib = data.len() >= 2
        && data[0] & 0x0F == 8
        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
    let result = if zlib {
        ZlibDecoder::new(data).take(limit).read_to_end(&mut out)
    } else {
        DeflateDecoder::new(data).take(limit).read_to_end(&mut out)
    };
    result.map_err(|e| format!("its data does not decompress: {e}"))?;
    if out.len() > grain || out.len() < needed {
        return Err(format!(
            "it decompresses to {}{} bytes, not a grain of {grain}",
            out.len(),
            if out.len() > grain { " or more" } else { "" }
        ));
    }
    out.resize(grain, 0);
    Ok(out)
}

impl ReadAt for SparseExtent {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let g = &self.geometry;
        within(buf.len(), offset, g.capacity, "vmdk disk")?;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let index = at / g.grain_bytes;
            let within = at % g.grain_bytes;
            let n = ((g.grain_bytes - within) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match self.grain(index)? {
                Grain::Zero => out.fill(0),
                Grain::At(start) if g.compressed => {
                    let grain = self.inflated(index, start)?;
                    out.copy_from_slice(&grain[within as usize..within as usize + n]);
                }
                Grain::At(start) => {
                    let from = start + within;
                    self.file
                        .read_exact_at(out, from)
                        .map_err(|e| io_error(&format!("grain {index}"), from, e))?;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.geometry.capacity
    }

    /// Files of the disk in uncompressed grains are mapped where they lie in the file (qemu
    /// and VMware place grains at grain-size boundaries); compressed grains are read.
    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        let g = &self.geometry;
        if g.compressed {
            return None;
        }
        let in_file = super::pieces_in_file(pieces, |at, len| {
            if at.checked_add(len)? > g.capacity {
                return None;
            }
            let within = at % g.grain_bytes;
            let n = (g.grain_bytes - within).min(len);
            match self.grain(at / g.grain_bytes).ok()? {
                Grain::Zero => Some((n, None)),
                Grain::At(start) => Some((n, Some(start.checked_add(within)?))),
            }
        })?;
        self.file.map_pieces(&in_file, path)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn read(file: &dyn ReadAt, buf: &mut [u8], offset: u64, what: &str) -> Result<(), ContainerError> {
    super::read(FORMAT, file, buf, offset, what)
}

fn damaged(what: &str, offset: u64, why: impl Into<String>) -> ContainerError {
    super::damaged(FORMAT, what, offset, why)
}

fn damaged_io(what: &str, offset: u64, why: String) -> io::Error {
    super::damaged_io(FORMAT, what, offset, why)
}

fn io_error(what: &str, offset: u64, source: io::Error) -> io::Error {
    super::io_error(FORMAT, what, offset, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_descriptor_first_lines() {
        assert!(is_descriptor(b"# Disk DescriptorFile\nversion=1\n"));
        assert!(is_descriptor(b"\xEF\xBB\xBF#disk descriptorfile\r\n"));
        assert!(is_descriptor(b"# Disk DescriptorFile"));
        assert!(!is_descriptor(b"# Disk Descriptor\n"));
        assert!(!is_descriptor(b"\xEB\x52\x90NTFS    "));
        assert!(!is_descriptor(b""));
    }

    #[test]
    fn parses_extent_lines() {
        let line = ExtentLine::parse(r#"RW 65536 FLAT "my disk-flat.vmdk" 128"#).unwrap();
        assert_eq!(line.access, "RW");
        assert_eq!(line.sectors, 65536);
        assert_eq!(line.kind, "FLAT");
        assert_eq!(line.file.as_deref(), Some("my disk-flat.vmdk"));
        assert_eq!(line.offset, 128);
        let zero = ExtentLine::parse("rdonly 100 zero").unwrap();
        assert_eq!(
            (zero.kind.as_str(), zero.file, zero.offset),
            ("ZERO", None, 0)
        );
        let sparse = ExtentLine::parse(r#"RW 8 SPARSE "a.vmdk""#).unwrap();
        assert_eq!(sparse.offset, 0);
        assert!(ExtentLine::parse("RW many FLAT \"a\" 0").is_err());
        assert!(ExtentLine::parse("RW 8 FLAT \"a 0").is_err());
        assert!(ExtentLine::parse("RW 8 FLAT \"a\" x").is_err());
        assert!(ExtentLine::parse("RW 8").is_err());
        assert!(ExtentLine::parse("RW 99999999999999999999999 FLAT \"a\"").is_err());
    }

    #[test]
    fn parses_a_descriptor() {
        let text = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                    createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\n\
                    RW 10 FLAT \"a.vmdk\" 0\nRW 20 ZERO\n\nddb.adapterType = \"ide\"\n";
        let d = Descriptor::parse(text).unwrap();
        assert_eq!(d.create_type.as_deref(), Some("twoGbMaxExtentFlat"));
        assert_eq!(d.extents.len(), 2);
        assert!(d.check_readable().is_ok());
    }

    #[test]
    fn refuses_delta_and_encrypted_descriptors() {
        let delta =
            Descriptor::parse("parentCID=1234abcd\nparentFileNameHint=\"base.vmdk\"\n").unwrap();
        match delta.check_readable() {
            Err(ContainerError::Unsupported { why, .. }) => assert!(why.contains("base.vmdk")),
            other => panic!("{other:?}"),
        }
        let encrypted =
            Descriptor::parse("encryption.keySafe = \"vmware:key/list/...\"\n").unwrap();
        assert!(encrypted.check_readable().is_err());
    }

    #[test]
    fn extent_paths_stay_in_the_folder() {
        let folder = Path::new("/evidence");
        assert_eq!(
            extent_path(folder, "a.vmdk").unwrap(),
            Path::new("/evidence/a.vmdk")
        );
        assert_eq!(
            extent_path(folder, "sub\\a.vmdk").unwrap(),
            Path::new("/evidence/sub/a.vmdk")
        );
        for bad in ["../a.vmdk", "/etc/passwd", "sub/../../a", "..\\a.vmdk", ""] {
            assert!(extent_path(folder, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inflate_checks_the_length() {
        use flate2::write::ZlibEncoder;
        use std::io::Write;
        let compress = |data: &[u8]| {
            let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let grain = vec![5u8; 4096];
        assert_eq!(inflate(&compress(&grain), 4096, 4096).unwrap(), grain);
        assert!(inflate(&compress(&grain[..4000]), 4096, 4096).is_err());
        let mut cut = inflate(&compress(&grain[..1024]), 4096, 1024).unwrap();
        assert_eq!(cut.split_off(1024), vec![0u8; 3072]);
        assert!(inflate(&compress(&[1u8; 8192]), 4096, 4096).is_err());
        assert!(inflate(b"\x78\x9cnot deflate at all", 4096, 4096).is_err());
        assert!(inflate(b"", 4096, 4096).is_err());
    }

    /// A minimal monolithic sparse file: header, descriptor, GD, GT, one grain.
    fn tiny_sparse(descriptor: &str) -> Vec<u8> {
        let mut file = vec![0u8; 512 * 12];
        file[..4].copy_from_slice(SPARSE_MAGIC);
        file[4..8].copy_from_slice(&1u32.to_le_bytes());
        file[8..12].copy_from_slice(&FLAG_NEWLINE_TEST.to_le_bytes());
        file[12..20].copy_from_slice(&16u64.to_le_bytes()); // capacity: 2 grains
        file[20..28].copy_from_slice(&8u64.to_le_bytes()); // grain: 8 sectors
        file[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor at sector 1
        file[36..44].copy_from_slice(&1u64.to_le_bytes());
        file[44..48].copy_from_slice(&4u32.to_le_bytes()); // 4 GTEs a GT
        file[56..64].copy_from_slice(&2u64.to_le_bytes()); // GD at sector 2
        file[73..77].copy_from_slice(&NEWLINE_TEST);
        file[512..512 + descriptor.len()].copy_from_slice(descriptor.as_bytes());
        file[1024..1028].copy_from_slice(&3u32.to_le_bytes()); // GT at sector 3
        file[1536 + 4..1536 + 8].copy_from_slice(&4u32.to_le_bytes()); // grain 1 at sector 4
        file[2048..].fill(0xAB);
        file
    }

    fn open_bytes(bytes: Vec<u8>) -> Result<Option<Opened>, ContainerError> {
        let file: Arc<dyn ReadAt> = Arc::new(bytes);
        open(Path::new("t.vmdk"), &file)
    }

    #[test]
    fn reads_a_tiny_sparse_file() {
        let text =
            "# Disk DescriptorFile\ncreateType=\"monolithicSparse\"\nRW 16 SPARSE \"t.vmdk\"\n";
        let opened = open_bytes(tiny_sparse(text)).unwrap().unwrap();
        assert_eq!(opened.info.format, "vmdk (monolithicSparse)");
        assert_eq!(opened.disk.len(), 16 * 512);
        let mut all = vec![1u8; 16 * 512];
        opened.disk.read_exact_at(&mut all, 0).unwrap();
        assert!(all[..4096].iter().all(|&b| b == 0));
        assert!(all[4096..].iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn refuses_broken_sparse_headers() {
        let text = "# Disk DescriptorFile\nRW 16 SPARSE \"t.vmdk\"\n";
        let cases: [(usize, &[u8]); 7] = [
            (4, &9u32.to_le_bytes()),          // version
            (20, &3u64.to_le_bytes()),         // grain size not a power of two
            (20, &(1u64 << 20).to_le_bytes()), // huge grains
            (44, &0u32.to_le_bytes()),         // no GTEs
            (12, &u64::MAX.to_le_bytes()),     // absurd capacity
            (56, &(1u64 << 40).to_le_bytes()), // GD outside the file
            (74, b"\n"),                       // newline test altered
        ];
        for (at, bytes) in cases {
            let mut file = tiny_sparse(text);
            file[at..at + bytes.len()].copy_from_slice(bytes);
            assert!(open_bytes(file).is_err(), "field at {at}");
        }
        // No descriptor: one extent of a split disk.
        assert!(matches!(
            open_bytes(tiny_sparse("")),
            Err(ContainerError::Unsupported { .. })
        ));
        // A grain table entry pointing past the end: an error on reading, not zeros.
        let mut file = tiny_sparse(text);
        file[1536 + 4..1536 + 8].copy_from_slice(&1000u32.to_le_bytes());
        let opened = open_bytes(file).unwrap().unwrap();
        let mut buf = [0u8; 512];
        assert!(opened.disk.read_exact_at(&mut buf, 4096).is_err());
        opened.disk.read_exact_at(&mut buf, 0).unwrap();
    }

    #[test]
    fn other_files_are_not_vmdk() {
        assert!(open_bytes(Vec::new()).unwrap().is_none());
        assert!(open_bytes(vec![0u8; 4096]).unwrap().is_none());
        assert!(open_bytes(b"KDM".to_vec()).unwrap().is_none());
        // The magic on a file too short for a header: damaged.
        assert!(open_bytes(b"KDMV".to_vec()).is_err());
    }
}
