//! Volume: from an NT path in the queue to a file on the volumes the user named.
//!
//! Two layers. A [`Volume`] is file access for one drive, whatever holds it (today a directory:
//! a mount or a copy of the image; later an NTFS image read directly); it lists a directory and
//! opens a file, by the names it has on disk. [`Volumes`] maps drive letters onto volumes and
//! resolves each path component the way Windows does (case-insensitively), one directory
//! listing at a time, with every listing read once and cached.
//!
//! Containment: `.` and `..` are refused, and a symbolic link or junction is never followed,
//! so nothing outside the roots the user named is ever opened.

mod dir;
mod nt_path;

pub use dir::DirVolume;
pub use nt_path::{parse_nt_path, DrivePath};

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::sync::{Arc, Mutex};

use crate::evidence::Evidence;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// A symbolic link or junction (ntfs-3g shows junctions as symlinks): never followed.
    Link,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: EntryKind,
}

/// File access for one volume, by on-disk names relative to the volume root (`[]` is the root).
pub trait Volume: Send + Sync {
    fn list(&self, dir: &[OsString]) -> io::Result<Vec<DirEntry>>;
    fn open(&self, file: &[OsString]) -> io::Result<Evidence>;
    /// How to show a path of this volume to the user (a host path for a directory volume).
    fn display(&self, path: &[OsString]) -> String;
}

/// A path that names something on one of the mapped volumes, in Windows' terms: the drive
/// and the components as the queue spelled them, plus their case-folded form, which is the
/// identity of the file (two spellings of one file fold to the same key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub drive: char,
    pub components: Vec<String>,
}

/// The identity of a path on the mapped volumes: mount index and folded components.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    pub mount: usize,
    pub folded: Vec<String>,
}

impl PathKey {
    pub fn parent(&self) -> Option<PathKey> {
        let (_, parent) = self.folded.split_last()?;
        Some(PathKey {
            mount: self.mount,
            folded: parent.to_vec(),
        })
    }

    /// Whether `self` lies strictly below `ancestor`.
    pub fn is_below(&self, ancestor: &PathKey) -> bool {
        self.mount == ancestor.mount
            && self.folded.len() > ancestor.folded.len()
            && self.folded.starts_with(&ancestor.folded)
    }
}

/// What is on disk at a path before the boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskEntry {
    /// The on-disk names of every component.
    pub names: Vec<OsString>,
    pub kind: EntryKind,
}

/// Why a path cannot be mapped onto the given volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved(pub String);

struct Mount {
    drive: char,
    volume: Box<dyn Volume>,
}

struct Listing {
    entries: Vec<DirEntry>,
    by_folded: HashMap<String, Vec<usize>>,
}

/// Directory listings by mount and on-disk directory path.
type ListingCache = HashMap<(usize, Vec<OsString>), Arc<Listing>>;

/// The image's volumes by drive letter, with cached, case-insensitive lookups.
pub struct Volumes {
    mounts: Vec<Mount>,
    listings: Mutex<ListingCache>,
}

impl Volumes {
    pub fn new() -> Volumes {
        Volumes {
            mounts: Vec::new(),
            listings: Mutex::new(HashMap::new()),
        }
    }

    /// Adds a volume for a drive letter (a later mapping of the same letter replaces it).
    pub fn mount(&mut self, drive: char, volume: Box<dyn Volume>) {
        let drive = drive.to_ascii_uppercase();
        self.mounts.retain(|m| m.drive != drive);
        self.mounts.push(Mount { drive, volume });
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    pub fn mount_index(&self, drive: char) -> Option<usize> {
        let drive = drive.to_ascii_uppercase();
        self.mounts.iter().position(|m| m.drive == drive)
    }

    pub fn drives(&self) -> impl Iterator<Item = (char, String)> + '_ {
        self.mounts.iter().map(|m| (m.drive, m.volume.display(&[])))
    }

    /// Maps an NT path (prefixes already stripped) onto a mounted volume, without touching
    /// the disk.
    pub fn locate(&self, nt_path: &str) -> Result<(Location, PathKey), Unresolved> {
        let DrivePath { drive, components } = parse_nt_path(nt_path)?;
        let Some(mount) = self.mount_index(drive) else {
            return Err(Unresolved(format!(
                "drive {drive}: is not mapped to a volume (use ROOT, --system-drive or --drive {drive}:=DIR)"
            )));
        };
        let folded = components.iter().map(|c| fold(c)).collect();
        Ok((Location { drive, components }, PathKey { mount, folded }))
    }

    /// What the disk holds at `key` before the boot: `Ok(None)` when nothing is there.
    /// Looking through a link, or at a name that exists in two spellings differing only by
    /// case, is `Unresolved`: the tool does not guess.
    pub fn stat(&self, key: &PathKey) -> Result<Option<DiskEntry>, Unresolved> {
        let mut names: Vec<OsString> = Vec::with_capacity(key.folded.len());
        let mut kind = EntryKind::Directory;
        for (depth, component) in key.folded.iter().enumerate() {
            if kind != EntryKind::Directory {
                // A file where a directory was needed: the path does not exist.
                return Ok(None);
            }
            let listing = match self.listing(key.mount, &names) {
                Ok(listing) => listing,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => {
                    return Err(Unresolved(format!(
                        "cannot list {}: {err}",
                        self.mounts[key.mount].volume.display(&names)
                    )))
                }
            };
            let Some(matches) = listing.by_folded.get(component) else {
                return Ok(None);
            };
            if matches.len() > 1 {
                let spellings: Vec<String> = matches
                    .iter()
                    .map(|&i| listing.entries[i].name.to_string_lossy().into_owned())
                    .collect();
                return Err(Unresolved(format!(
                    "{} names in {} differ only by case ({}); Windows would see one file, this mount has several",
                    matches.len(),
                    self.mounts[key.mount].volume.display(&names),
                    spellings.join(", ")
                )));
            }
            let entry = &listing.entries[matches[0]];
            names.push(entry.name.clone());
            kind = entry.kind;
            if kind == EntryKind::Link && depth + 1 < key.folded.len() {
                return Err(Unresolved(format!(
                    "{} is a symbolic link or junction; links are not followed",
                    self.mounts[key.mount].volume.display(&names)
                )));
            }
        }
        Ok(Some(DiskEntry { names, kind }))
    }

    /// The folded names in a directory on disk (empty when it cannot be listed).
    pub fn children(&self, key: &PathKey) -> Vec<String> {
        match self.stat(key) {
            Ok(Some(DiskEntry {
                names,
                kind: EntryKind::Directory,
            })) => self
                .listing(key.mount, &names)
                .map(|listing| listing.by_folded.keys().cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub fn open(&self, mount: usize, entry: &DiskEntry) -> io::Result<Evidence> {
        self.mounts[mount].volume.open(&entry.names)
    }

    pub fn display(&self, mount: usize, names: &[OsString]) -> String {
        self.mounts[mount].volume.display(names)
    }

    fn listing(&self, mount: usize, dir: &[OsString]) -> io::Result<Arc<Listing>> {
        let cache_key = (mount, dir.to_vec());
        if let Some(listing) = self.cache().get(&cache_key) {
            return Ok(Arc::clone(listing));
        }
        let entries = self.mounts[mount].volume.list(dir)?;
        let mut by_folded: HashMap<String, Vec<usize>> = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            by_folded
                .entry(fold(&entry.name.to_string_lossy()))
                .or_default()
                .push(index);
        }
        let listing = Arc::new(Listing { entries, by_folded });
        self.cache().insert(cache_key, Arc::clone(&listing));
        Ok(listing)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ListingCache> {
        // A poisoned cache only means another thread panicked mid-insert; the map is still valid.
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Volumes {
    fn default() -> Self {
        Volumes::new()
    }
}

/// Case folding as NTFS compares names: each character upper-cased on its own (simple
/// mapping, as the volume's $UpCase table does), characters whose upper case is several
/// characters (`ß`) left as they are.
pub fn fold(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_simple_upper_case() {
        assert_eq!(fold("System32\\ntoskrnl.exe"), "SYSTEM32\\NTOSKRNL.EXE");
        assert_eq!(fold("straße"), "STRAßE");
        assert_eq!(fold("Ωmega"), "ΩMEGA");
    }

    #[test]
    fn unmapped_drive_is_unresolved_with_advice() {
        let volumes = Volumes::new();
        let err = volumes.locate("\\??\\E:\\x.dll").unwrap_err();
        assert!(err.0.contains("--drive E:=DIR"), "{}", err.0);
    }

    #[test]
    fn path_keys_know_their_ancestors() {
        let key = |parts: &[&str]| PathKey {
            mount: 0,
            folded: parts.iter().map(|s| s.to_string()).collect(),
        };
        assert!(key(&["A", "B"]).is_below(&key(&["A"])));
        assert!(!key(&["A"]).is_below(&key(&["A"])));
        assert_eq!(key(&["A", "B"]).parent(), Some(key(&["A"])));
        assert_eq!(key(&[]).parent(), None);
    }
}
