//! Disk image containers read in place: VHD, VHDX, VMDK, qcow2 and EWF (E01). Each is
//! recognised by its signature and opened as a [`ReadAt`] over the virtual disk it holds,
//! which the partition and NTFS readers then read as they read a raw disk. Metadata tables
//! are read on demand (a small cache at most), never the whole container.

mod cache;
pub mod ewf;
pub mod qcow2;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

use std::io;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;

use super::ReadAt;
use crate::evidence::Piece;

/// What a container says about itself, for the report's inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// The format and its variant: `vhd (fixed)`, `vhdx (dynamic)`, `vmdk (streamOptimized)`,
    /// `qcow2 v3`, `ewf (E01)`.
    pub format: String,
    /// The size of the disk the container holds, in bytes.
    pub virtual_size: u64,
    /// The container's files when it has several (VMDK extents, E01 segments), in order.
    pub files: Vec<String>,
    /// Metadata the container records, as label and value, in the container's order (E01:
    /// case number, examiner, acquisition date, acquiring tool...).
    pub metadata: Vec<(String, String)>,
    /// Hashes of the whole disk stored in the container, as algorithm (`md5`, `sha1`) and
    /// lower-case hex (E01).
    pub stored_hashes: Vec<(String, String)>,
}

/// A container opened: the disk it holds, and what it says about itself.
pub struct Opened {
    pub disk: Arc<dyn ReadAt>,
    pub info: ContainerInfo,
}

#[derive(Debug, Error)]
pub enum ContainerError {
    #[error("cannot read the {format} container {what} at byte {offset}: {source}")]
    Io {
        format: &'static str,
        what: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// The container's own structures are wrong (a bad signature or checksum past the first
    /// one, a table entry outside the file, a size out of range).
    #[error("the {format} container is damaged: {what} (at byte {offset}): {why}")]
    Damaged {
        format: &'static str,
        what: String,
        offset: u64,
        why: String,
    },
    /// A container this cannot read correctly, said plainly (a differencing disk and its
    /// parent, encryption, a backing file, a feature not implemented).
    #[error("the {format} container cannot be read: {why}")]
    Unsupported { format: &'static str, why: String },
}

/// The container's `what` at byte `offset` is wrong: `why`.
fn damaged(
    format: &'static str,
    what: impl Into<String>,
    offset: u64,
    why: impl Into<String>,
) -> ContainerError {
    ContainerError::Damaged {
        format,
        what: what.into(),
        offset,
        why: why.into(),
    }
}

fn unsupported(format: &'static str, why: impl Into<String>) -> ContainerError {
    ContainerError::Unsupported {
        format,
        why: why.into(),
    }
}

/// The read of the container's `what` at byte `offset` failed.
fn read_failed(
    format: &'static str,
    what: impl Into<String>,
    offset: u64,
    source: io::Error,
) -> ContainerError {
    ContainerError::Io {
        format,
        what: what.into(),
        offset,
        source,
    }
}

/// Reads the container's `what` at byte `offset`.
fn read(
    format: &'static str,
    file: &dyn ReadAt,
    buf: &mut [u8],
    offset: u64,
    what: &str,
) -> Result<(), ContainerError> {
    file.read_exact_at(buf, offset)
        .map_err(|source| read_failed(format, what, offset, source))
}

/// Reads the container's `what` at byte `offset`, where a read past the end of the file is
/// a damaged (truncated) container, said by `truncated`, and any other failure an I/O error.
fn read_or_truncated(
    format: &'static str,
    file: &dyn ReadAt,
    buf: &mut [u8],
    offset: u64,
    what: &str,
    truncated: impl FnOnce() -> String,
) -> Result<(), ContainerError> {
    file.read_exact_at(buf, offset).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            damaged(format, what, offset, truncated())
        } else {
            read_failed(format, what, offset, source)
        }
    })
}

/// A damaged structure met while reading the disk, as the I/O error the read returns.
fn damaged_io(
    format: &'static str,
    what: impl Into<String>,
    offset: u64,
    why: impl Into<String>,
) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        damaged(format, what, offset, why),
    )
}

/// A failed read of the container while reading the disk, said as such; a read past the
/// end of the file is damage (a table pointing outside it), not the end of the disk.
fn io_error(format: &'static str, what: &str, offset: u64, source: io::Error) -> io::Error {
    let kind = match source.kind() {
        io::ErrorKind::UnexpectedEof => io::ErrorKind::InvalidData,
        kind => kind,
    };
    io::Error::new(kind, read_failed(format, what, offset, source))
}

/// The `N` bytes at `at` (which must be there).
fn bytes_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("N bytes")
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes_at(bytes, at))
}

fn be64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes_at(bytes, at))
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes_at(bytes, at))
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(bytes, at))
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(bytes, at))
}

/// One format's opener: `None` when the file does not have its signature.
type Opener = fn(&Path, &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError>;

/// Opens `file` (shown as `path`; sibling files such as further segments are looked for next
/// to it) as whichever container its signature says; `None` when it is none of them (a raw
/// disk or volume image).
pub fn open(path: &Path, file: Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError> {
    let openers: [Opener; 5] = [
        vhdx::open,
        qcow2::open,
        vmdk::open,
        ewf::open,
        // Last: a VHD is known by its footer, the last 512 bytes, which any raw disk could in
        // principle end with; the others are known by their first bytes.
        vhd::open,
    ];
    for open in openers {
        if let Some(opened) = open(path, &file)? {
            return Ok(Some(opened));
        }
    }
    Ok(None)
}

/// `pieces` of a container's disk as pieces of its file, so that a file of the disk stored
/// as it is (not compressed, not replaced by a log) is mapped in place as on a raw disk.
/// `locate(offset, len)` tells where the first bytes of a range of the disk are: `(n, Some(at))`
/// for `n` bytes at `at` in the file, `(n, None)` for `n` zeros; `None` when they are not in
/// the file as they are. `None` overall when any part is not.
pub(super) fn pieces_in_file(
    pieces: &[Piece],
    mut locate: impl FnMut(u64, u64) -> Option<(u64, Option<u64>)>,
) -> Option<Vec<Piece>> {
    let mut out: Vec<Piece> = Vec::new();
    let mut push = |piece: Piece| match out.last_mut() {
        Some(last)
            if match (last.offset, piece.offset) {
                (Some(a), Some(b)) => a.checked_add(last.len) == Some(b),
                (None, None) => true,
                _ => false,
            } =>
        {
            last.len += piece.len
        }
        _ => out.push(piece),
    };
    for piece in pieces {
        let Some(mut offset) = piece.offset else {
            push(*piece);
            continue;
        };
        let mut rest = piece.len;
        while rest > 0 {
            let (n, at) = locate(offset, rest)?;
            // A locator that makes no progress would loop: not mappable.
            if n == 0 || n > rest {
                return None;
            }
            push(Piece { offset: at, len: n });
            offset = offset.checked_add(n)?;
            rest -= n;
        }
    }
    Some(out)
}

/// A disk as the partition and NTFS readers see it: the file itself (a raw disk or volume
/// image, a device), or the disk a container in it holds.
pub struct Disk {
    /// The file as named (the first file of a container of several).
    pub path: std::path::PathBuf,
    pub reader: Arc<dyn ReadAt>,
    /// The container, when the file is one.
    pub container: Option<ContainerInfo>,
}

/// Opens `path` read-only as a disk: through its container when it is one.
pub fn open_disk(path: &Path) -> Result<Disk, DiskError> {
    let file = super::ImageFile::open(path).map_err(|source| DiskError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let file: Arc<dyn ReadAt> = Arc::new(file);
    match open(path, Arc::clone(&file)) {
        Ok(Some(opened)) => Ok(Disk {
            path: path.to_path_buf(),
            reader: opened.disk,
            container: Some(opened.info),
        }),
        Ok(None) => Ok(Disk {
            path: path.to_path_buf(),
            reader: file,
            container: None,
        }),
        Err(source) => Err(DiskError::Container {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[derive(Debug, Error)]
pub enum DiskError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Container {
        path: String,
        #[source]
        source: ContainerError,
    },
}
