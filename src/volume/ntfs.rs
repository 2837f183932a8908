//! A volume read from an NTFS file system in an image ([`crate::evidence::image::ntfs`]),
//! behind the same [`Volume`] interface as a host directory.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{DirEntry, EntryKind, EntryMetadata, Folding, ImageOrigin, Volume};
use crate::evidence::image::container::Disk;
use crate::evidence::image::ntfs::{
    self, File, IndexEntry, Ntfs, FILE_ATTRIBUTE_REPARSE_POINT, FILE_NAME_INDEX_PRESENT,
    NAMESPACE_DOS, REPARSE_TAG_MOUNT_POINT, REPARSE_TAG_SYMLINK, REPARSE_TAG_WOF, ROOT_RECORD,
};
use crate::evidence::Evidence;

/// An NTFS volume of an image.
pub struct NtfsVolume {
    ntfs: Arc<Ntfs>,
    /// How paths of this volume are shown: the image and the partition.
    shown: String,
    /// Each folder's names, by record number, read once.
    folders: Mutex<HashMap<u64, Arc<Folder>>>,
    origin: Option<ImageOrigin>,
    /// The volume's `$UpCase`, or Unicode's simple upper case where it cannot be read.
    folding: Folding,
    /// Why the volume's `$UpCase` is not used, if it is not.
    folding_problem: Option<String>,
    /// The image the volume is in, shared with the image's other volumes.
    image: Arc<Disk>,
}

/// One folder's index, as names.
struct Folder {
    entries: Vec<Named>,
    by_name: HashMap<OsString, usize>,
    /// DOS (8.3) names by record number.
    dos: HashMap<u64, String>,
}

struct Named {
    name: OsString,
    record: u64,
    sequence: u16,
    kind: EntryKind,
    /// The name is in the Win32-and-DOS namespace: it is its own short name.
    both: bool,
}

/// Where a path leads: the file's reference and what it is.
#[derive(Clone, Copy)]
struct Target {
    record: u64,
    sequence: u16,
    kind: EntryKind,
}

impl NtfsVolume {
    pub fn new(ntfs: Arc<Ntfs>, shown: String, image: Arc<Disk>) -> NtfsVolume {
        let table = ntfs.upcase_table().map_err(|err| err.to_string());
        let (folding, folding_problem) = match table.and_then(Folding::from_table) {
            Ok(folding) => (folding, None),
            Err(why) => (Folding::Unicode, Some(why)),
        };
        NtfsVolume {
            ntfs,
            shown,
            folders: Mutex::new(HashMap::new()),
            origin: None,
            folding,
            folding_problem,
            image,
        }
    }

    /// Why names are not compared through the volume's own `$UpCase`, if they are not.
    pub fn upcase_problem(&self) -> Option<&str> {
        self.folding_problem.as_deref()
    }

    pub fn set_origin(&mut self, origin: ImageOrigin) {
        self.origin = Some(origin);
    }

    /// Whether the root's `hiberfil.sys` starts with a hibernation signature (`hibr`, `HIBR`:
    /// hibernated or shut down with Fast Startup; Windows zeroes or rewrites it on resume).
    pub fn hibernated(&self) -> bool {
        let Ok(root) = self.folder(ROOT_RECORD, 0) else {
            return false;
        };
        let Some(named) = root.entries.iter().find(|e| {
            e.name
                .to_string_lossy()
                .eq_ignore_ascii_case("hiberfil.sys")
        }) else {
            return false;
        };
        let Ok(file) = self.ntfs.file_by_reference(named.record, named.sequence) else {
            return false;
        };
        let Some(data) = file.data().filter(|d| d.size() >= 4) else {
            return false;
        };
        let mut magic = [0u8; 4];
        self.ntfs
            .read_stream(data, 0, &mut magic, "hiberfil.sys")
            .is_ok()
            && magic.eq_ignore_ascii_case(b"hibr")
    }

    fn folder(&self, record: u64, sequence: u16) -> io::Result<Arc<Folder>> {
        if let Some(folder) = self.folders.lock().expect("not poisoned").get(&record) {
            return Ok(Arc::clone(folder));
        }
        let dir = self.ntfs.file_by_reference(record, sequence)?;
        if !dir.is_directory() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        let folder = Arc::new(Folder::new(self.ntfs.list(&dir)?));
        self.folders
            .lock()
            .expect("not poisoned")
            .insert(record, Arc::clone(&folder));
        Ok(folder)
    }

    /// Follows `path` from the root by exact on-disk names.
    fn resolve(&self, path: &[OsString]) -> io::Result<Target> {
        let mut target = Target {
            record: ROOT_RECORD,
            sequence: 0,
            kind: EntryKind::Directory,
        };
        for name in path {
            if target.kind != EntryKind::Directory {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a component is not a directory",
                ));
            }
            let folder = self.folder(target.record, target.sequence)?;
            let named = folder
                .by_name
                .get(name)
                .map(|&i| &folder.entries[i])
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            target = Target {
                record: named.record,
                sequence: named.sequence,
                kind: named.kind,
            };
        }
        Ok(target)
    }

    fn file(&self, path: &[OsString]) -> io::Result<(Target, File)> {
        let target = self.resolve(path)?;
        let file = self
            .ntfs
            .file_by_reference(target.record, target.sequence)?;
        Ok((target, file))
    }

    /// The logical bytes of a file: its unnamed stream, or its WOF-compressed data decoded.
    fn contents(&self, file: &File, shown: &str) -> io::Result<Evidence> {
        let data = file.data().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "the file has no data stream")
        })?;
        match file.reparse() {
            None => Ok(self
                .ntfs
                .read_file(data, ntfs::FILE_LIMIT, std::path::Path::new(shown))?),
            Some((REPARSE_TAG_WOF, reparse)) => {
                let compressed = file.attribute(0x80, "WofCompressedData").ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a WOF-compressed file without its WofCompressedData stream",
                    )
                })?;
                let bytes = self.ntfs.read_wof(data.size(), compressed, &reparse, shown)?;
                Ok(Evidence::from_vec(PathBuf::from(shown), bytes))
            }
            Some((tag, _)) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the file is a reparse point with tag {tag:#010x} ({}): its data is not in this file, and is not read",
                    reparse_kind(tag)
                ),
            )),
        }
    }
}

/// What a reparse tag is, for messages.
fn reparse_kind(tag: u32) -> &'static str {
    match tag {
        0x8000_0013 => "Data Deduplication",
        0x8000_0018 | 0x8000_0019 => "a WIM-backed or external file",
        0x8000_001b => "an app execution alias",
        t if t & 0xffff_0fff == 0x9000_001a => "a cloud files placeholder",
        _ => "a reparse point of another kind",
    }
}

impl Folder {
    fn new(index: Vec<IndexEntry>) -> Folder {
        let mut entries = Vec::with_capacity(index.len());
        let mut by_name = HashMap::with_capacity(index.len());
        let mut dos = HashMap::new();
        for entry in index {
            let name = String::from_utf16_lossy(&entry.name);
            if entry.namespace == NAMESPACE_DOS {
                dos.insert(entry.record, name);
                continue;
            }
            // `.` and `..` are not in NTFS indexes; the root's own entry is (`.`, record 5).
            // The metadata files (records 0-15: $MFT, $Bitmap, $Extend, ...) are not shown,
            // as Windows and ntfs-3g do not show them.
            if entry.record < 16 || name == "." || name == ".." || name.is_empty() {
                continue;
            }
            let kind = if entry.flags & FILE_ATTRIBUTE_REPARSE_POINT != 0
                && matches!(
                    entry.reparse_tag,
                    REPARSE_TAG_MOUNT_POINT | REPARSE_TAG_SYMLINK
                ) {
                EntryKind::Link
            } else if entry.flags & FILE_NAME_INDEX_PRESENT != 0 {
                EntryKind::Directory
            } else {
                EntryKind::File
            };
            let name = OsString::from(name);
            if by_name.contains_key(&name) {
                continue;
            }
            by_name.insert(name.clone(), entries.len());
            entries.push(Named {
                name,
                record: entry.record,
                sequence: entry.sequence,
                kind,
                both: entry.namespace == 3,
            });
        }
        Folder {
            entries,
            by_name,
            dos,
        }
    }
}

impl Volume for NtfsVolume {
    fn list(&self, dir: &[OsString]) -> io::Result<Vec<DirEntry>> {
        let target = self.resolve(dir)?;
        let folder = self.folder(target.record, target.sequence)?;
        Ok(folder
            .entries
            .iter()
            .map(|e| DirEntry {
                name: e.name.clone(),
                kind: e.kind,
            })
            .collect())
    }

    fn metadata(&self, path: &[OsString]) -> io::Result<EntryMetadata> {
        let (target, file) = self.file(path)?;
        let size = match target.kind {
            EntryKind::File => Some(file.data().map_or(0, |d| d.size())),
            _ => None,
        };
        Ok(EntryMetadata {
            kind: target.kind,
            size,
        })
    }

    fn open(&self, path: &[OsString]) -> io::Result<Evidence> {
        let (target, file) = self.file(path)?;
        if target.kind != EntryKind::File || file.is_directory() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let shown = self.display(path);
        self.contents(&file, &shown)
    }

    fn read_link(&self, link: &[OsString]) -> io::Result<PathBuf> {
        let (_, file) = self.file(link)?;
        let (tag, data) = file
            .reparse()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a reparse point"))?;
        link_target(tag, &data).map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))
    }

    fn short_names(&self, dir: &[OsString], entries: &[DirEntry]) -> Option<Vec<Option<String>>> {
        let target = self.resolve(dir).ok()?;
        let folder = self.folder(target.record, target.sequence).ok()?;
        Some(
            entries
                .iter()
                .map(|entry| {
                    let named = &folder.entries[*folder.by_name.get(&entry.name)?];
                    if named.both {
                        return None;
                    }
                    folder.dos.get(&named.record).cloned()
                })
                .collect(),
        )
    }

    fn display(&self, path: &[OsString]) -> String {
        let mut shown = self.shown.clone();
        for name in path {
            shown.push('\\');
            shown.push_str(&name.to_string_lossy());
        }
        if path.is_empty() {
            shown.push('\\');
        }
        shown
    }

    fn host_root(&self) -> Option<&Path> {
        None
    }

    fn origin(&self) -> Option<&ImageOrigin> {
        self.origin.as_ref()
    }

    fn folding(&self) -> &Folding {
        &self.folding
    }

    fn image(&self) -> Option<&Arc<Disk>> {
        Some(&self.image)
    }

    fn file_id(&self, path: &[OsString]) -> Option<u64> {
        self.resolve(path).ok().map(|target| target.record)
    }
}

/// A junction's or symbolic link's target in the form the resolver takes: `/rest` for a path
/// on a drive (`\??\C:\rest`; the drive is the image's own volume as Windows saw it), the
/// stored text for a relative link; anything else (a volume GUID, UNC) is refused.
fn link_target(tag: u32, data: &[u8]) -> Result<PathBuf, String> {
    let field = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes(
            data.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let (buffer, relative) = match tag {
        REPARSE_TAG_MOUNT_POINT => (8, false),
        REPARSE_TAG_SYMLINK => {
            let flags = data
                .get(8..12)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or_default()));
            (12, flags & 1 != 0)
        }
        other => return Err(format!("reparse tag {other:#010x} is not a link")),
    };
    let (offset, length) = (field(0).ok_or("cut short")?, field(2).ok_or("cut short")?);
    let name = data
        .get(buffer + offset..buffer + offset + length)
        .ok_or("the link's target is past its reparse data")?;
    let units: Vec<u16> = name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let target = String::from_utf16_lossy(&units);
    if relative {
        return Ok(PathBuf::from(target));
    }
    let rest = target
        .strip_prefix("\\??\\")
        .and_then(|t| {
            let mut chars = t.chars();
            match (chars.next(), chars.next()) {
                (Some(d), Some(':')) if d.is_ascii_alphabetic() => Some(chars.as_str()),
                _ => None,
            }
        })
        .ok_or_else(|| {
            format!("the link points to {target}, not to a path on a drive: not followed")
        })?;
    Ok(PathBuf::from(format!(
        "/{}",
        rest.trim_start_matches('\\').replace('\\', "/")
    )))
}
