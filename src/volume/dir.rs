//! A volume held in a host directory: a read-only mount of the image, or a copy of it.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::{DirEntry, EntryKind, Volume};
use crate::evidence::Evidence;

pub struct DirVolume {
    root: PathBuf,
}

impl DirVolume {
    pub fn new(root: impl Into<PathBuf>) -> DirVolume {
        DirVolume { root: root.into() }
    }

    fn host_path(&self, names: &[OsString]) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(names);
        path
    }
}

impl Volume for DirVolume {
    fn list(&self, dir: &[OsString]) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        // One level, links reported as links, never followed.
        let walk = WalkDir::new(self.host_path(dir))
            .min_depth(1)
            .max_depth(1)
            .follow_links(false)
            .follow_root_links(false);
        for entry in walk {
            let entry = entry.map_err(|err| match err.into_io_error() {
                Some(io) => io,
                None => io::Error::other("directory loop"),
            })?;
            let file_type = entry.file_type();
            let kind = if file_type.is_symlink() {
                EntryKind::Link
            } else if file_type.is_dir() {
                EntryKind::Directory
            } else if file_type.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            entries.push(DirEntry {
                name: entry.file_name().to_os_string(),
                kind,
            });
        }
        Ok(entries)
    }

    fn open(&self, file: &[OsString]) -> io::Result<Evidence> {
        Evidence::open(&self.host_path(file))
    }

    fn read_link(&self, link: &[OsString]) -> io::Result<PathBuf> {
        std::fs::read_link(self.host_path(link))
    }

    fn short_names(&self, dir: &[OsString], entries: &[DirEntry]) -> Option<Vec<Option<String>>> {
        short_names::recorded(&self.host_path(dir), entries)
    }

    fn display(&self, path: &[OsString]) -> String {
        self.host_path(path).display().to_string()
    }

    fn host_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// Short names as the file system records them.
#[cfg(target_os = "linux")]
mod short_names {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use super::DirEntry;

    /// ntfs-3g exposes each file's DOS name as the extended attribute `system.ntfs_dos_name`.
    /// `None` unless at least one entry has one: other file systems refuse the attribute or
    /// have none, and then short names are derived instead.
    pub fn recorded(dir: &Path, entries: &[DirEntry]) -> Option<Vec<Option<String>>> {
        let mut shorts = Vec::with_capacity(entries.len());
        for entry in entries {
            match dos_name(&dir.join(&entry.name)) {
                Ok(name) => shorts.push(name),
                Err(errno) if errno == libc::ENOTSUP => return None,
                Err(_) => shorts.push(None),
            }
        }
        shorts.iter().any(Option::is_some).then_some(shorts)
    }

    /// `Ok(None)`: supported but the file has no short name.
    fn dos_name(path: &Path) -> Result<Option<String>, i32> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
        let mut buf = [0u8; 64];
        // SAFETY: both strings are NUL-terminated and the buffer length is passed with it.
        // lgetxattr does not follow links, and only reads.
        let len = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c"system.ntfs_dos_name".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if len < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return if errno == libc::ENODATA {
                Ok(None)
            } else {
                Err(errno)
            };
        }
        let bytes = &buf[..len as usize];
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[cfg(not(target_os = "linux"))]
mod short_names {
    use std::path::Path;

    use super::DirEntry;

    pub fn recorded(_dir: &Path, _entries: &[DirEntry]) -> Option<Vec<Option<String>>> {
        None
    }
}
