//! A volume held in a host directory: a read-only mount of the image, or a copy of it.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::{DirEntry, EntryKind, EntryMetadata, Volume};
use crate::evidence::{Evidence, ListedKind};

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
        // One level, links reported as links, never followed; without touching the folder's
        // access time (evidence::list_dir).
        let listed = crate::evidence::list_dir(&self.host_path(dir))?;
        Ok(listed
            .into_iter()
            .map(|entry| DirEntry {
                name: entry.name,
                kind: match entry.kind {
                    ListedKind::File => EntryKind::File,
                    ListedKind::Directory => EntryKind::Directory,
                    ListedKind::Symlink => EntryKind::Link,
                    ListedKind::Other => EntryKind::Other,
                },
            })
            .collect())
    }

    fn metadata(&self, path: &[OsString]) -> io::Result<EntryMetadata> {
        // The root is the folder the user named, through a link or not; below it, a final
        // link is the link itself, as a listing shows it.
        let host = self.host_path(path);
        let meta = match path {
            [] => std::fs::metadata(host)?,
            _ => std::fs::symlink_metadata(host)?,
        };
        let file_type = meta.file_type();
        let kind = if file_type.is_symlink() {
            EntryKind::Link
        } else if file_type.is_dir() {
            EntryKind::Directory
        } else if file_type.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        Ok(EntryMetadata {
            kind,
            size: (kind == EntryKind::File).then_some(meta.len()),
        })
    }

    fn open(&self, file: &[OsString]) -> io::Result<Evidence> {
        // Asked only of what a listing reported as a regular file (the trait's contract).
        Evidence::open_listed(&self.host_path(file))
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

/// Short names as Windows reports them.
#[cfg(windows)]
mod short_names {
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::io;
    use std::os::windows::ffi::{OsStrExt, OsStringExt};
    use std::path::Path;
    use std::sync::OnceLock;

    use windows_sys::Win32::Foundation::{ERROR_NO_MORE_FILES, HANDLE, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::Storage::FileSystem::{
        FindClose, FindExInfoStandard, FindExSearchNameMatch, FindFirstFileExW, FindNextFileW,
        FIND_FIRST_EX_LARGE_FETCH, WIN32_FIND_DATAW,
    };
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

    use super::DirEntry;

    /// The short names the file system recorded (`cAlternateFileName` of FindFirstFileExW /
    /// FindNextFileW on `dir\*`), mapped to `entries` by long name. As on Linux, `None` unless
    /// at least one entry has one (a volume with 8.3 names disabled: then they are derived),
    /// and `None` when the directory cannot be listed.
    ///
    /// Under Wine, `None` as well: Wine records no short names, it makes up a hash-based one
    /// (`PROG~FBU` for `Program Files`) for every long name, and those never match the names
    /// Windows generated that a queue may hold. Deriving them gives the same answer as on Linux.
    pub fn recorded(dir: &Path, entries: &[DirEntry]) -> Option<Vec<Option<String>>> {
        if under_wine() {
            return None;
        }
        by_entry(&list(dir)?, entries)
    }

    /// Long name -> short name, for each entry of `dir` whose short name the file system keeps
    /// apart from its long name (an 8.3 long name has none). `None` if listing fails.
    pub(super) fn list(dir: &Path) -> Option<HashMap<OsString, String>> {
        let pattern = search_pattern(dir);
        let mut data = WIN32_FIND_DATAW::default();
        // SAFETY: `pattern` is NUL-terminated UTF-16 that outlives the call; `data` is a
        // WIN32_FIND_DATAW, which is what FindExInfoStandard writes; no search filter.
        let handle = unsafe {
            FindFirstFileExW(
                pattern.as_ptr(),
                FindExInfoStandard,
                (&raw mut data).cast(),
                FindExSearchNameMatch,
                std::ptr::null(),
                FIND_FIRST_EX_LARGE_FETCH,
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            return None;
        }
        let search = Search(handle);
        let mut shorts = HashMap::new();
        loop {
            let short = until_nul(&data.cAlternateFileName);
            if !short.is_empty() {
                let long = OsString::from_wide(until_nul(&data.cFileName));
                shorts.insert(long, String::from_utf16_lossy(short));
            }
            // SAFETY: `search.0` is the open search handle from FindFirstFileExW, `data` a
            // valid WIN32_FIND_DATAW to fill.
            if unsafe { FindNextFileW(search.0, &mut data) } == 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(ERROR_NO_MORE_FILES as i32) {
                    return Some(shorts);
                }
                return None; // the listing broke off: do not pretend it is complete
            }
        }
    }

    /// Each entry's short name, by exact long name (both come from the same listing calls).
    pub(super) fn by_entry(
        shorts: &HashMap<OsString, String>,
        entries: &[DirEntry],
    ) -> Option<Vec<Option<String>>> {
        let mapped: Vec<Option<String>> = entries
            .iter()
            .map(|entry| shorts.get(&entry.name).cloned())
            .collect();
        mapped.iter().any(Option::is_some).then_some(mapped)
    }

    /// `dir\*` as NUL-terminated UTF-16. Past MAX_PATH, as an absolute `\\?\` path (the
    /// Find functions do not lengthen paths themselves, unlike std's file functions).
    fn search_pattern(dir: &Path) -> Vec<u16> {
        const MAX_PATH: usize = 260;
        let plain: Vec<u16> = dir.join("*").as_os_str().encode_wide().collect();
        let verbatim = |wide: &[u16]| wide.starts_with(&[92, 92, 63, 92]); // \\?\
        let wide = if plain.len() < MAX_PATH || verbatim(&plain) {
            plain
        } else {
            match std::path::absolute(dir) {
                Ok(absolute) => {
                    let absolute: Vec<u16> = absolute.join("*").as_os_str().encode_wide().collect();
                    if verbatim(&absolute) {
                        absolute
                    } else if let Some(unc) = absolute.strip_prefix(&[92, 92][..]) {
                        r"\\?\UNC\"
                            .encode_utf16()
                            .chain(unc.iter().copied())
                            .collect()
                    } else {
                        r"\\?\".encode_utf16().chain(absolute).collect()
                    }
                }
                Err(_) => plain,
            }
        };
        wide.into_iter().chain([0]).collect()
    }

    fn until_nul(units: &[u16]) -> &[u16] {
        let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
        &units[..end]
    }

    /// Closes the search handle however the listing ends.
    struct Search(HANDLE);

    impl Drop for Search {
        fn drop(&mut self) {
            // SAFETY: the handle came from a successful FindFirstFileExW and is closed once.
            unsafe { FindClose(self.0) };
        }
    }

    /// Whether this process runs under Wine (its ntdll exports `wine_get_version`).
    pub(super) fn under_wine() -> bool {
        static WINE: OnceLock<bool> = OnceLock::new();
        *WINE.get_or_init(|| {
            let ntdll: Vec<u16> = "ntdll.dll".encode_utf16().chain([0]).collect();
            // SAFETY: both names are NUL-terminated and outlive the calls; ntdll is loaded in
            // every process, and GetModuleHandleW takes no reference that would need releasing.
            unsafe {
                let module = GetModuleHandleW(ntdll.as_ptr());
                !module.is_null()
                    && GetProcAddress(module, c"wine_get_version".as_ptr().cast()).is_some()
            }
        })
    }
}

#[cfg(all(test, windows))]
mod windows_tests {
    use std::ffi::OsString;

    use super::short_names;
    use super::{DirVolume, EntryKind, Volume};

    fn is_8dot3(name: &str) -> bool {
        let (base, ext) = name.split_once('.').unwrap_or((name, ""));
        (1..=8).contains(&base.len()) && ext.len() <= 3 && !ext.contains('.')
    }

    #[test]
    fn short_names_are_mapped_to_entries_by_long_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a long file name.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("SHORT.TXT"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("Program Files")).unwrap();
        let shorts = short_names::list(dir.path()).expect("the directory lists");
        assert!(
            !shorts.contains_key(&OsString::from("SHORT.TXT")),
            "an 8.3 name has no separate short name: {shorts:?}"
        );
        for (long, short) in &shorts {
            assert!(
                is_8dot3(short) && short.contains('~'),
                "{long:?} -> {short}"
            );
        }
        let volume = DirVolume::new(dir.path());
        let entries = volume.list(&[]).unwrap();
        assert_eq!(entries.len(), 3);
        let mapped = short_names::by_entry(&shorts, &entries);
        if shorts.is_empty() {
            // A volume with 8.3 name creation disabled: nothing recorded, names are derived.
            assert_eq!(mapped, None);
            return;
        }
        let mapped = mapped.expect("recorded names map to the listing");
        for (entry, short) in entries.iter().zip(&mapped) {
            assert_eq!(short.as_ref(), shorts.get(&entry.name), "{:?}", entry.name);
            if entry.name == "Program Files" {
                assert_eq!(entry.kind, EntryKind::Directory);
            }
        }
        let recorded = volume.short_names(&[], &entries);
        if short_names::under_wine() {
            assert_eq!(recorded, None, "Wine's made-up short names are not used");
        } else {
            assert_eq!(recorded, Some(mapped));
        }
    }

    #[test]
    fn short_names_of_a_missing_directory_are_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(short_names::list(&dir.path().join("missing")), None);
        let volume = DirVolume::new(dir.path().join("missing"));
        assert_eq!(volume.short_names(&[], &[]), None);
    }

    #[test]
    fn long_directory_paths_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().to_path_buf();
        while deep.as_os_str().len() < 300 {
            deep.push("a directory name of some length");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("another long file name.txt"), b"x").unwrap();
        let shorts = short_names::list(&deep).expect("a path past MAX_PATH lists");
        assert!(shorts.len() <= 1, "{shorts:?}");
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
mod short_names {
    use std::path::Path;

    use super::DirEntry;

    pub fn recorded(_dir: &Path, _entries: &[DirEntry]) -> Option<Vec<Option<String>>> {
        None
    }
}
