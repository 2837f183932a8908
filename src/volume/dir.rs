//! A volume held in a host directory: a read-only mount of the image, or a copy of it.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

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

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Volume for DirVolume {
    fn list(&self, dir: &[OsString]) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(self.host_path(dir))? {
            let entry = entry?;
            // file_type() does not follow links: a link is reported as a link.
            let file_type = entry.file_type()?;
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
                name: entry.file_name(),
                kind,
            });
        }
        Ok(entries)
    }

    fn open(&self, file: &[OsString]) -> io::Result<Evidence> {
        Evidence::open(&self.host_path(file))
    }

    fn display(&self, path: &[OsString]) -> String {
        self.host_path(path).display().to_string()
    }
}
