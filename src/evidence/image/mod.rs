//! Disk and volume images read in place: a raw disk image, a raw volume image or a block
//! device, opened read-only and read with positioned reads only (no mapping of a whole image,
//! no seek state shared between threads). On top of the bytes: the partition tables
//! ([`partition`]) and the NTFS file system ([`ntfs`]).

pub mod container;
pub mod ntfs;
pub mod partition;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::{Evidence, Piece};

/// Bytes readable at any offset: an image file, a device, a partition of either.
///
/// `read_at` fills the whole buffer or fails: a read past the end is an
/// [`io::ErrorKind::UnexpectedEof`] error, never a short buffer left half-filled.
pub trait ReadAt: Send + Sync {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The number of bytes readable.
    fn len(&self) -> u64;
    /// The bytes of `pieces` (offsets in this reader) as mapped evidence shown as `path`,
    /// where this reader is a file that can be mapped so and the file is worth it; `None`:
    /// read it instead.
    fn map_pieces(&self, _pieces: &[Piece], _path: &Path) -> Option<io::Result<Evidence>> {
        None
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An image file or block device, opened read-only.
#[derive(Debug)]
pub struct ImageFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl ImageFile {
    /// Opens `path` read-only: a regular file or a block device (never a FIFO, socket or
    /// character device, whose reads may block or act). No exclusive lock, so a disk behind
    /// a write blocker opens; `O_NOATIME` where allowed.
    pub fn open(path: &Path) -> io::Result<ImageFile> {
        let (file, len) = open_image(path)?;
        Ok(ImageFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ReadAt for ImageFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.len, "image")?;
        read_exact_at(&self.file, buf, offset)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        for piece in pieces {
            if let Some(offset) = piece.offset {
                within(usize::try_from(piece.len).ok()?, offset, self.len, "image").ok()?;
            }
        }
        Evidence::map_pieces(path.to_path_buf(), &self.file, pieces)
    }
}

/// A window of another [`ReadAt`]: one partition of a disk.
pub struct Slice<R> {
    inner: R,
    start: u64,
    len: u64,
}

impl<R: ReadAt> Slice<R> {
    /// `len` bytes from `start`, cut to what `inner` holds.
    pub fn new(inner: R, start: u64, len: u64) -> Slice<R> {
        let len = len.min(inner.len().saturating_sub(start));
        Slice { inner, start, len }
    }
}

impl<R: ReadAt> ReadAt for Slice<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.len, "partition")?;
        self.inner.read_exact_at(buf, self.start + offset)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        let mut shifted = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let offset = match piece.offset {
                Some(offset) => {
                    within(
                        usize::try_from(piece.len).ok()?,
                        offset,
                        self.len,
                        "partition",
                    )
                    .ok()?;
                    Some(self.start + offset)
                }
                None => None,
            };
            shifted.push(Piece { offset, ..*piece });
        }
        self.inner.map_pieces(&shifted, path)
    }
}

impl<R: ReadAt + ?Sized> ReadAt for std::sync::Arc<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn map_pieces(&self, pieces: &[Piece], path: &Path) -> Option<io::Result<Evidence>> {
        (**self).map_pieces(pieces, path)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).ok();
        let bytes = start
            .and_then(|s| self.get(s..s.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
}

/// A read of `len` bytes at `offset` of something `size` bytes long must end inside it.
fn within(len: usize, offset: u64, size: u64, what: &str) -> io::Result<()> {
    if offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= size)
    {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "read of {len} bytes at offset {offset} is past the end of the {what} ({size} bytes)"
        ),
    ))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens an image read-only and tells its length (a block device's from a seek to its end).
#[cfg(unix)]
fn open_image(path: &Path) -> io::Result<(File, u64)> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(path)?.file_type();
    if !(kind.is_file() || kind.is_block_device()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file or a block device", path.display()),
        ));
    }
    let mut file = super::open_no_atime(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !(kind.is_file() || kind.is_block_device()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file or a block device", path.display()),
        ));
    }
    let len = if kind.is_block_device() {
        file.seek(SeekFrom::End(0))?
    } else {
        meta.len()
    };
    Ok((file, len))
}

/// Opens an image read-only (a file, or a device such as `\\.\PhysicalDrive1`), sharing
/// read and write so that a disk in use or behind a write blocker opens.
#[cfg(windows)]
fn open_image(path: &Path) -> io::Result<(File, u64)> {
    use std::io::{Seek, SeekFrom};
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
        .open(path)?;
    let len = match file.metadata() {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => file.seek(SeekFrom::End(0))?,
    };
    Ok((file, len))
}

/// What [`hash_image`] computed: the SHA-256, and each further algorithm asked for.
pub struct ImageDigests {
    pub sha256: String,
    /// `(algorithm, lower-case hex)` for each of `md5` and `sha1` that was asked for.
    pub others: Vec<(String, String)>,
}

/// The SHA-256 of a whole image (and its MD5 and SHA-1 where `also` names them, to check
/// what a container stores), read in 1 MiB positioned reads (never mapped or held whole);
/// `progress(done, total)` is called after each read.
pub fn hash_image(
    image: &dyn ReadAt,
    also: &[&str],
    mut progress: impl FnMut(u64, u64),
) -> io::Result<ImageDigests> {
    use sha2::{Digest, Sha256};
    let total = image.len();
    let mut sha256 = Sha256::new();
    let mut md5 = also.contains(&"md5").then(md5::Md5::new);
    let mut sha1 = also.contains(&"sha1").then(sha1::Sha1::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(buf.len() as u64) as usize;
        image.read_exact_at(&mut buf[..n], done)?;
        sha256.update(&buf[..n]);
        if let Some(md5) = &mut md5 {
            md5.update(&buf[..n]);
        }
        if let Some(sha1) = &mut sha1 {
            sha1.update(&buf[..n]);
        }
        done += n as u64;
        progress(done, total);
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut others = Vec::new();
    if let Some(md5) = md5 {
        others.push(("md5".to_string(), hex(&md5.finalize())));
    }
    if let Some(sha1) = sha1 {
        others.push(("sha1".to_string(), hex(&sha1.finalize())));
    }
    Ok(ImageDigests {
        sha256: hex(&sha256.finalize()),
        others,
    })
}
