//! Evidence: read-only access to input files.
//!
//! Every input (the hive, every file on the image's volumes) comes through here, so that one
//! place guarantees the forensic rules: files are opened read-only, without updating their
//! access time where the OS allows it, and nothing is ever written beside them. Files are
//! memory-mapped so that a reader touches only the pages it needs, unless [`set_no_mmap`] asked
//! for plain reads (a file that shrinks under a mapping stops the process with SIGBUS; a file
//! that shrinks under a read is only shorter).

pub mod image;
#[cfg(unix)]
mod stitch;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

/// Process-wide: read evidence into memory instead of mapping it (`--no-mmap`).
static NO_MMAP: AtomicBool = AtomicBool::new(false);

/// Files up to this size are read, not mapped.
const SMALL_FILE: u64 = 64 * 1024;

/// Makes every later [`Evidence::open`] read the whole file into an owned buffer instead of
/// mapping it. For evidence that may change while it is read (a live system, a failing disk):
/// a mapped file that shrinks kills the process with SIGBUS, a read one just ends early. Costs
/// memory for the whole of every file examined.
pub fn set_no_mmap(on: bool) {
    NO_MMAP.store(on, Ordering::Relaxed);
}

/// Whether [`set_no_mmap`] is in effect.
pub fn no_mmap() -> bool {
    NO_MMAP.load(Ordering::Relaxed)
}

/// The bytes of one input file: a read-only private mapping, or an owned buffer for files that
/// are not mapped (empty files, and every file under [`set_no_mmap`]).
pub struct Evidence {
    path: PathBuf,
    bytes: Bytes,
}

enum Bytes {
    /// A file mapped, or the range of an image where a file's bytes lie (a contiguous,
    /// uncompressed file of an NTFS volume read in place).
    Mapped(Mmap),
    /// Owned bytes, kept in 8-byte units so that parsers that need aligned input (pelite needs
    /// 4-byte alignment) can use them as they use a mapping.
    Owned { words: Vec<u64>, len: usize },
    /// A fragmented file of an image, its extents mapped one after another.
    #[cfg(unix)]
    Stitched(stitch::Stitched),
}

/// Where one part of a file's bytes lies in an image, in file order: `len` bytes at `offset`,
/// or `len` zeros (a sparse run) where `offset` is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub offset: Option<u64>,
    pub len: u64,
}

impl Evidence {
    /// Opens `path` read-only and maps it (or reads it, under [`set_no_mmap`]). For a path
    /// the user named: what is there is asked before the open (see [`open_read_only`]).
    pub fn open(path: &Path) -> io::Result<Evidence> {
        Self::open_with(path, Ask::PathFirst)
    }

    /// [`Evidence::open`] for an entry a folder listing has just reported as a regular file
    /// (a volume's files): the path is not asked again before the open, the descriptor still
    /// is after it. A queue can name 100,000 files; the second look at each was a sixth of a
    /// check's time.
    pub fn open_listed(path: &Path) -> io::Result<Evidence> {
        Self::open_with(path, Ask::DescriptorOnly)
    }

    fn open_with(path: &Path, ask: Ask) -> io::Result<Evidence> {
        let (file, len) = open_checked(path, ask)?;
        let bytes = if len == 0 {
            Bytes::Owned {
                words: Vec::new(),
                len: 0,
            }
        } else if no_mmap() || len <= SMALL_FILE {
            // A small file costs less to read than to map (one read against mmap, a page
            // fault and munmap), and reading it whole touches no more pages.
            read_owned(file, len)?
        } else {
            // SAFETY: the map is private and read-only. Its contents can still change if another
            // process truncates or rewrites the file while we hold it (SIGBUS on truncation);
            // evidence is expected to be at rest, and the README says so.
            // The length is the one the descriptor reported: memmap2 would ask again.
            Bytes::Mapped(unsafe { memmap2::MmapOptions::new().len(len as usize).map(&file)? })
        };
        Ok(Evidence {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// Wraps bytes that are already in memory (a replayed hive, test data).
    pub fn from_vec(path: PathBuf, data: Vec<u8>) -> Evidence {
        let len = data.len();
        let mut words = vec![0u64; len.div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(data.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(buf);
        }
        Evidence {
            path,
            bytes: Bytes::Owned { words, len },
        }
    }

    /// `len` bytes that `fill` writes, in an owned buffer it fills in place (a file read from
    /// an image: one copy, into memory aligned as a mapping is).
    pub fn from_filled(
        path: PathBuf,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> io::Result<()>,
    ) -> io::Result<Evidence> {
        let mut words: Vec<u64> = Vec::new();
        words.try_reserve_exact(len.div_ceil(8)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("{len} bytes do not fit in memory"),
            )
        })?;
        words.resize(len.div_ceil(8), 0);
        fill(&mut bytemuck_words_mut(&mut words)[..len])?;
        Ok(Evidence {
            path,
            bytes: Bytes::Owned { words, len },
        })
    }

    /// The bytes of `pieces` of the image `file`, one after another, mapped read-only (not
    /// read): one mapping for one piece, the pieces' mappings side by side in one region for
    /// several (Unix, where each lies at a page boundary). `None` where [`set_no_mmap`] asked
    /// for reads, the file is small, or it cannot be mapped so: the caller reads it. The same
    /// rules as for a file: a private read-only mapping of evidence at rest.
    pub fn map_pieces(
        path: PathBuf,
        file: &File,
        pieces: &[Piece],
    ) -> Option<io::Result<Evidence>> {
        let len = pieces
            .iter()
            .try_fold(0u64, |sum, p| sum.checked_add(p.len))?;
        if no_mmap() || len <= SMALL_FILE {
            return None;
        }
        let len = usize::try_from(len).ok()?;
        let bytes = match pieces {
            [Piece {
                offset: Some(offset),
                ..
            }] => {
                // SAFETY: as for `Evidence::open`: private, read-only; a truncation under the
                // map is SIGBUS, which the README's caveat covers. memmap2 aligns the offset
                // to a page and keeps the pointer at `offset` itself.
                let mapped = unsafe {
                    memmap2::MmapOptions::new()
                        .offset(*offset)
                        .len(len)
                        .map(file)
                };
                mapped.map(Bytes::Mapped)
            }
            #[cfg(unix)]
            _ => match stitch::Stitched::map(file, pieces, len)? {
                Ok(stitched) => Ok(Bytes::Stitched(stitched)),
                Err(err) => Err(err),
            },
            #[cfg(not(unix))]
            _ => return None,
        };
        Some(bytes.map(|bytes| Evidence { path, bytes }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sha256(&self) -> String {
        sha256_hex(self)
    }
}

impl Deref for Evidence {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(map) => map,
            Bytes::Owned { words, len } => {
                let all: &[u8] = bytemuck_words(words);
                &all[..*len]
            }
            #[cfg(unix)]
            Bytes::Stitched(stitched) => stitched.bytes(),
        }
    }
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evidence")
            .field("path", &self.path)
            .field("len", &self.len())
            .finish()
    }
}

/// Reads up to `len` bytes (the size the file had when opened) into 8-byte aligned memory. A
/// file that shrinks meanwhile gives fewer bytes; one that grows, the first `len`.
fn read_owned(mut file: File, len: u64) -> io::Result<Bytes> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("{len} bytes do not fit in memory (read without --no-mmap)"),
        )
    };
    let len = usize::try_from(len).map_err(|_| too_large())?;
    let mut words: Vec<u64> = Vec::new();
    words
        .try_reserve_exact(len.div_ceil(8))
        .map_err(|_| too_large())?;
    words.resize(len.div_ceil(8), 0);
    let buffer = bytemuck_words_mut(&mut words);
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buffer[filled..len]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Bytes::Owned { words, len: filled })
}

fn bytemuck_words_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as for `bytemuck_words`; the borrow is unique, and any byte pattern written is a
    // valid u64.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

fn bytemuck_words(words: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and every bit pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// Why an input that must be a regular file is refused: reading a FIFO or a socket blocks
/// until a writer comes (forever, for evidence), a character device never ends, and a
/// directory has no bytes to read.
#[derive(Debug, thiserror::Error)]
#[error("not a regular file: it is {kind}")]
pub struct NotAFile {
    pub kind: &'static str,
}

impl NotAFile {
    fn check(meta: &std::fs::Metadata) -> io::Result<()> {
        if meta.is_file() {
            return Ok(());
        }
        let kind = file_kind(meta);
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotAFile { kind },
        ))
    }
}

/// What is at `path` (not following a final link), in words: for messages about an entry
/// that is not what was expected.
pub fn kind_of(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => "a symbolic link".into(),
        Ok(meta) if meta.is_file() => "a regular file".into(),
        Ok(meta) => file_kind(&meta).into(),
        Err(err) => format!("unreadable ({err})"),
    }
}

/// What a non-regular file is, in words.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    "not a regular file"
}

/// Opens a file for reading only, and only a regular file (see [`NotAFile`]), asked of the
/// path before the open and of the descriptor after it. On Unix the open does not wait (`O_NONBLOCK`: opening a FIFO for reading would block until a writer
/// opens it) and takes no controlling terminal; the check on the descriptor means a path
/// swapped between the two cannot slip through. On Linux it asks for `O_NOATIME`
/// first, so that reading evidence does not change its access time, and falls back to a plain
/// read-only open when the kernel refuses (O_NOATIME needs file ownership or CAP_FOWNER).
#[cfg(not(windows))]
pub fn open_read_only(path: &Path) -> io::Result<File> {
    open_checked(path, Ask::PathFirst).map(|(file, _)| file)
}

/// Whether the path is asked what it is before the open, or only the descriptor after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    PathFirst,
    DescriptorOnly,
}

/// Opens `path` for reading without waiting (`O_NONBLOCK`), without taking a controlling
/// terminal, and on Linux with `O_NOATIME` when the kernel allows it (it needs file ownership
/// or CAP_FOWNER), else without. What the descriptor is must still be checked.
#[cfg(not(windows))]
pub(crate) fn open_no_atime(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |extra: libc::c_int| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | extra)
            .open(path)
    };
    #[cfg(target_os = "linux")]
    let opened = match open(libc::O_NOATIME) {
        Err(err) if err.raw_os_error() == Some(libc::EPERM) => open(0),
        other => other,
    };
    #[cfg(not(target_os = "linux"))]
    let opened = open(0);
    opened
}

/// The open of [`open_read_only`], with the file's length from the descriptor's check.
#[cfg(not(windows))]
fn open_checked(path: &Path, ask: Ask) -> io::Result<(File, u64)> {
    // Asked of the path first: opening some devices acts on them (a tape rewinds), and a
    // socket cannot be opened at all. A listed entry was asked by its listing.
    if ask == Ask::PathFirst {
        NotAFile::check(&std::fs::metadata(path)?)?;
    }
    let file = open_no_atime(path)?;
    let meta = file.metadata()?;
    NotAFile::check(&meta)?;
    // O_NONBLOCK stays set: it has no effect on a regular file (POSIX), and nothing else
    // gets past the check above.
    Ok((file, meta.len()))
}

/// The largest hive read from standard input (`--hive -`): more than any real hive (SYSTEM
/// hives are tens to hundreds of megabytes; the format's limit is 4 GiB).
pub const STDIN_LIMIT: u64 = 4 << 30;

/// Reads standard input whole into memory, up to `limit` bytes: for a hive piped in
/// (`--hive -`), which cannot be mapped.
pub fn read_stdin(limit: u64) -> io::Result<Evidence> {
    read_bounded(io::stdin().lock(), limit)
}

/// Reads `reader` to its end into memory, refusing more than `limit` bytes (never holding
/// more than `limit` + 1).
fn read_bounded(reader: impl Read, limit: u64) -> io::Result<Evidence> {
    let mut data = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("standard input holds more than {limit} bytes, more than a hive can be; save it to a file and pass that"),
        ));
    }
    Ok(Evidence::from_vec(PathBuf::from("-"), data))
}

/// Opens a file for reading only: read access (GENERIC_READ) and nothing else, sharing read,
/// write and delete. Evidence may be open elsewhere (a live system, an image another tool has
/// mounted); our handle must neither fail because of that nor lock anyone out.
///
/// Access times: Windows keeps a file's last-access time unchanged for one handle only through
/// `SetFileTime(handle, NULL, {0xFFFFFFFF, 0xFFFFFFFF}, NULL)`, and SetFileTime needs a handle
/// opened with FILE_WRITE_ATTRIBUTES. That is a write right on the evidence, which we never ask
/// for (it would also fail on read-only media and on files whose ACL grants read only). So on
/// Windows the access time follows the host's NTFS policy (`NtfsDisableLastAccessUpdate`: no
/// updates by default since Vista, "system managed" since Windows 10 1803). `docs/windows.md`
/// says how to check it and how to make the volume read-only in Windows PE.
#[cfg(windows)]
pub fn open_read_only(path: &Path) -> io::Result<File> {
    open_checked(path, Ask::PathFirst).map(|(file, _)| file)
}

#[cfg(windows)]
fn open_checked(path: &Path, ask: Ask) -> io::Result<(File, u64)> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    };
    if ask == Ask::PathFirst {
        NotAFile::check(&std::fs::metadata(path)?)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .open(path)?;
    let meta = file.metadata()?;
    NotAFile::check(&meta)?;
    Ok((file, meta.len()))
}

/// What a folder entry is, as [`list_dir`] reports it (links are not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListedKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One entry of a folder, as [`list_dir`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: std::ffi::OsString,
    pub kind: ListedKind,
}

/// Lists a folder of the evidence without updating its access time: on Linux through a
/// descriptor opened with `O_NOATIME` (falling back to a plain one when the kernel refuses, as
/// [`open_read_only`] does). `std::fs::read_dir` and walkdir open folders without it, and on a
/// `relatime` mount listing a folder whose access time is older than its modification time
/// updates it, as reading a file does. `.` and `..` are left out; the order is the file
/// system's.
#[cfg(target_os = "linux")]
pub fn list_dir(path: &Path) -> io::Result<Vec<Listed>> {
    use std::ffi::{CStr, CString, OsStr};
    use std::os::unix::ffi::OsStrExt;

    struct Stream(*mut libc::DIR);
    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: the stream came from a successful fdopendir and is closed once.
            unsafe { libc::closedir(self.0) };
        }
    }

    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    let open = |flags: libc::c_int| {
        // SAFETY: a NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | flags,
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    };
    let fd = match open(libc::O_NOATIME) {
        Err(err) if err.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
    // SAFETY: `fd` is an open directory descriptor; fdopendir takes it over (on failure it is
    // still ours and closed here).
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so the descriptor is still ours to close.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    let stream = Stream(stream);
    let mut entries = Vec::new();
    loop {
        // readdir returns NULL both at the end and on error; errno tells them apart.
        // SAFETY: errno is thread-local; the stream is open; the entry is read before the
        // next readdir call on this stream.
        let entry = unsafe {
            *libc::__errno_location() = 0;
            libc::readdir(stream.0)
        };
        if entry.is_null() {
            let errno = io::Error::last_os_error();
            if errno.raw_os_error().unwrap_or(0) != 0 {
                return Err(errno);
            }
            break;
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let (name, d_type) = unsafe {
            (
                CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes().to_vec(),
                (*entry).d_type,
            )
        };
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match d_type {
            libc::DT_REG => ListedKind::File,
            libc::DT_DIR => ListedKind::Directory,
            libc::DT_LNK => ListedKind::Symlink,
            libc::DT_UNKNOWN => {
                // Some file systems do not fill d_type: ask for the entry itself (a lookup
                // does not touch the folder's access time).
                let full = path.join(OsStr::from_bytes(&name));
                match std::fs::symlink_metadata(full) {
                    Ok(meta) if meta.file_type().is_symlink() => ListedKind::Symlink,
                    Ok(meta) if meta.is_dir() => ListedKind::Directory,
                    Ok(meta) if meta.is_file() => ListedKind::File,
                    _ => ListedKind::Other,
                }
            }
            _ => ListedKind::Other,
        };
        entries.push(Listed {
            name: OsStr::from_bytes(&name).to_os_string(),
            kind,
        });
    }
    Ok(entries)
}

/// Lists a folder of the evidence (elsewhere than Linux, with the standard library).
#[cfg(not(target_os = "linux"))]
pub fn list_dir(path: &Path) -> io::Result<Vec<Listed>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => ListedKind::Symlink,
            Ok(t) if t.is_dir() => ListedKind::Directory,
            Ok(t) if t.is_file() => ListedKind::File,
            _ => ListedKind::Other,
        };
        entries.push(Listed {
            name: entry.file_name(),
            kind,
        });
    }
    Ok(entries)
}

/// SHA-256 of a byte string, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        use fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A folder of evidence files: a host directory, or a folder of a volume read from an image.
/// The hive stage finds a hive's logs and its neighbours through it, wherever they are.
pub trait Folder: Sync {
    /// The folder's entries, links reported as links.
    fn list(&self) -> io::Result<Vec<Listed>>;
    /// Opens the regular file `name` of this folder, read-only.
    fn open(&self, name: &std::ffi::OsStr) -> io::Result<Evidence>;
    /// How `name` in this folder is shown in messages and reports.
    fn path(&self, name: &std::ffi::OsStr) -> PathBuf;
}

/// A host directory as a [`Folder`].
pub struct HostFolder(pub PathBuf);

impl HostFolder {
    /// The folder holding `file` (the current one for a bare name, whose paths stay bare).
    pub fn of(file: &Path) -> HostFolder {
        HostFolder(file.parent().map(Path::to_path_buf).unwrap_or_default())
    }
}

impl Folder for HostFolder {
    fn list(&self) -> io::Result<Vec<Listed>> {
        if self.0.as_os_str().is_empty() {
            list_dir(Path::new("."))
        } else {
            list_dir(&self.0)
        }
    }
    fn open(&self, name: &std::ffi::OsStr) -> io::Result<Evidence> {
        Evidence::open(&self.0.join(name))
    }
    fn path(&self, name: &std::ffi::OsStr) -> PathBuf {
        self.0.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_opens_as_empty_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let evidence = Evidence::open(&path).unwrap();
        assert!(evidence.is_empty());
    }

    #[test]
    fn owned_bytes_keep_exact_length_and_alignment() {
        let evidence = Evidence::from_vec(PathBuf::from("x"), b"abcdefghij".to_vec());
        assert_eq!(&evidence[..], b"abcdefghij");
        assert_eq!(evidence.as_ptr() as usize % 8, 0);
    }

    /// An image whose 64 KiB blocks each hold their own number in every byte.
    fn numbered_blocks(dir: &Path, blocks: u8) -> File {
        let path = dir.join("image");
        let data: Vec<u8> = (0..blocks).flat_map(|b| [b; 65536]).collect();
        std::fs::write(&path, data).unwrap();
        File::open(path).unwrap()
    }

    #[test]
    fn pieces_of_an_image_map_in_order_with_zeros_for_holes() {
        let dir = tempfile::tempdir().unwrap();
        let image = numbered_blocks(dir.path(), 6);
        const B: u64 = 65536;
        let pieces = [
            Piece {
                offset: Some(3 * B),
                len: B,
            },
            Piece {
                offset: None,
                len: 2 * B,
            },
            Piece {
                offset: Some(B),
                len: 2 * B,
            },
            // The last piece may end inside a page.
            Piece {
                offset: Some(5 * B),
                len: 100,
            },
        ];
        let mapped = Evidence::map_pieces(PathBuf::from("f"), &image, &pieces);
        // Windows maps one view at one offset: several pieces are read by the caller.
        #[cfg(not(unix))]
        assert!(mapped.is_none());
        #[cfg(unix)]
        {
            let mapped = mapped.expect("aligned pieces are mapped").unwrap();
            let mut expected = vec![3u8; 65536];
            expected.extend(vec![0u8; 2 * 65536]);
            expected.extend(vec![1u8; 65536]);
            expected.extend(vec![2u8; 65536]);
            expected.extend(vec![5u8; 100]);
            assert_eq!(mapped.len(), expected.len());
            assert!(mapped[..] == expected[..]);
            assert!(matches!(mapped.bytes, Bytes::Stitched(_)));
        }
        // A piece that does not start at a page boundary is left to be read.
        let unaligned = [
            Piece {
                offset: Some(B),
                len: 4096 * 20 + 1,
            },
            Piece {
                offset: Some(0),
                len: B,
            },
        ];
        assert!(Evidence::map_pieces(PathBuf::from("f"), &image, &unaligned).is_none());
        // One piece at any offset is one mapping (memmap2 aligns it).
        let one = [Piece {
            offset: Some(B + 512),
            len: 2 * B,
        }];
        let mapped = Evidence::map_pieces(PathBuf::from("f"), &image, &one)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                mapped[0],
                mapped[B as usize - 513],
                mapped[B as usize - 512]
            ),
            (1, 1, 2)
        );
    }

    #[test]
    fn sha256_matches_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn read_mode_gives_the_same_bytes_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_003).collect();
        std::fs::write(&path, &data).unwrap();
        let read = read_owned(open_read_only(&path).unwrap(), data.len() as u64).unwrap();
        let evidence = Evidence {
            path: path.clone(),
            bytes: read,
        };
        assert!(matches!(evidence.bytes, Bytes::Owned { .. }));
        assert_eq!(&evidence[..], &data[..]);
        assert_eq!(evidence.as_ptr() as usize % 8, 0);
        // A file that is shorter than its size said (it shrank meanwhile) is just shorter.
        let short = read_owned(open_read_only(&path).unwrap(), 20_000).unwrap();
        assert!(matches!(short, Bytes::Owned { len: 10_003, .. }));
    }

    #[test]
    fn list_dir_names_entries_and_their_kinds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("file", dir.path().join("link")).unwrap();
        let mut listed = list_dir(dir.path()).unwrap();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        let got: Vec<(&str, ListedKind)> = listed
            .iter()
            .map(|e| (e.name.to_str().unwrap(), e.kind))
            .collect();
        #[cfg_attr(not(unix), allow(unused_mut))] // no link is made off Unix
        let mut expected = vec![("file", ListedKind::File), ("sub", ListedKind::Directory)];
        #[cfg(unix)]
        expected.insert(1, ("link", ListedKind::Symlink));
        assert_eq!(got, expected);
        assert!(list_dir(&dir.path().join("file")).is_err());
        assert!(list_dir(&dir.path().join("missing")).is_err());
    }

    /// A FIFO with no writer, a socket, a character device and a directory are refused at
    /// once, without blocking and without reading.
    #[cfg(unix)]
    #[test]
    fn what_is_not_a_regular_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let cases = [
            (fifo.as_path(), "a FIFO (named pipe)"),
            (socket.as_path(), "a socket"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ];
        for (path, kind) in cases {
            let err = Evidence::open(path).unwrap_err();
            let refused = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<NotAFile>())
                .unwrap_or_else(|| panic!("{}: {err}", path.display()));
            assert_eq!(refused.kind, kind, "{}", path.display());
        }
    }

    #[test]
    fn standard_input_is_read_whole_up_to_its_limit() {
        let read = read_bounded(&b"regf and more"[..], 13).unwrap();
        assert_eq!(&read[..], b"regf and more");
        let err = read_bounded(&b"regf and more"[..], 12).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("more than 12 bytes"), "{err}");
        // An endless input is cut at the limit, not read forever.
        assert!(read_bounded(io::repeat(7), 1 << 20).is_err());
    }

    #[test]
    fn missing_file_is_an_error_not_a_panic() {
        assert!(Evidence::open(Path::new("/nonexistent/nextboot/x")).is_err());
    }

    /// Evidence that another program holds open for writing (a live system) can still be read.
    #[cfg(windows)]
    #[test]
    fn opens_a_file_another_handle_is_writing() {
        use std::io::Write;
        use std::os::windows::fs::OpenOptionsExt;
        use windows_sys::Win32::Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in-use");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .open(&path)
            .unwrap();
        writer.write_all(b"in use").unwrap();
        writer.flush().unwrap();
        let evidence = Evidence::open(&path).unwrap();
        assert_eq!(&evidence[..], b"in use");
    }

    /// Our handle locks nobody out: others may still write to the file and rename it.
    #[cfg(windows)]
    #[test]
    fn read_only_handle_shares_write_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        std::fs::write(&path, b"shared").unwrap();
        let held = open_read_only(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("FILE_SHARE_WRITE lets another handle write");
        let moved = dir.path().join("moved");
        std::fs::rename(&path, &moved).expect("FILE_SHARE_DELETE lets another handle rename");
        drop(held);
    }

    /// The handle holds read rights only: no write, append, attribute, EA, delete or ACL
    /// rights. Without FILE_WRITE_ATTRIBUTES it cannot pin the last-access time either (see
    /// `open_read_only`). Asked of the object manager, because Wine, unlike Windows, lets a
    /// handle without that right set the file's times.
    #[cfg(windows)]
    #[test]
    fn read_only_handle_is_granted_read_rights_only() {
        use std::io::Write;
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Storage::FileSystem::{
            DELETE, FILE_APPEND_DATA, FILE_READ_DATA, FILE_WRITE_ATTRIBUTES, FILE_WRITE_DATA,
            FILE_WRITE_EA, WRITE_DAC, WRITE_OWNER,
        };

        /// PUBLIC_OBJECT_BASIC_INFORMATION (winternl.h).
        #[repr(C)]
        #[derive(Default)]
        struct BasicInformation {
            attributes: u32,
            granted_access: u32,
            handle_count: u32,
            pointer_count: u32,
            reserved: [u32; 10],
        }
        #[link(name = "ntdll")]
        extern "system" {
            fn NtQueryObject(
                handle: *mut std::ffi::c_void,
                class: i32,
                information: *mut std::ffi::c_void,
                length: u32,
                returned: *mut u32,
            ) -> i32;
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rights");
        std::fs::write(&path, b"rights").unwrap();
        let mut file = open_read_only(&path).unwrap();
        let mut info = BasicInformation::default();
        // SAFETY: a valid open handle, ObjectBasicInformation (0) into a buffer of exactly the
        // documented size, and no return length wanted.
        let status = unsafe {
            NtQueryObject(
                file.as_raw_handle(),
                0,
                (&raw mut info).cast(),
                std::mem::size_of::<BasicInformation>() as u32,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, 0, "NtQueryObject");
        let granted = info.granted_access;
        assert_ne!(granted & FILE_READ_DATA, 0, "read access: {granted:#x}");
        let writes = FILE_WRITE_DATA
            | FILE_APPEND_DATA
            | FILE_WRITE_ATTRIBUTES
            | FILE_WRITE_EA
            | DELETE
            | WRITE_DAC
            | WRITE_OWNER;
        assert_eq!(granted & writes, 0, "write rights granted: {granted:#x}");
        assert!(
            file.write_all(b"x").is_err(),
            "writing through the handle fails"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"rights");
    }
}
