//! Volume: from an NT path in the queue to a file on the volumes the user named.
//!
//! Two layers. A [`Volume`] is file access for one volume, whatever holds it (today a host
//! directory: a mount or a copy of the image; later an NTFS image read directly): list a
//! directory, open a file, read a link, know short names, by on-disk names relative to the
//! volume root. [`Volumes`] maps drive letters, device numbers, volume GUIDs and `\SystemRoot`
//! onto volumes, and resolves each path component the way Windows does: case-insensitively,
//! 8.3 short names included, one directory listing at a time, each listing read once.
//!
//! Containment: `.` and `..` components are refused, and links (symbolic links, junctions) are
//! followed only inside their volume: a target is taken relative to the link's folder, or to
//! the volume root when absolute, and can never climb above the root. Nothing outside the roots
//! the user named is opened.

mod dir;
mod nt_path;
mod short_name;

pub use dir::DirVolume;
pub use nt_path::{parse_nt_path, Anchor, NtPath};

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::evidence::Evidence;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// A symbolic link or junction (ntfs-3g shows junctions as symbolic links).
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
    /// The target of a link, as stored.
    fn read_link(&self, link: &[OsString]) -> io::Result<PathBuf>;
    /// The 8.3 short names the file system recorded for the entries of `dir`, in listing
    /// order, or `None` when this volume cannot tell (then they are derived).
    fn short_names(&self, dir: &[OsString], entries: &[DirEntry]) -> Option<Vec<Option<String>>>;
    /// How to show a path of this volume to the user (a host path for a directory volume).
    fn display(&self, path: &[OsString]) -> String;
    /// Where the volume sits on the host, if it is a host directory: absolute link targets
    /// under it are taken as pointing into the volume.
    fn host_root(&self) -> Option<&Path>;
}

/// The identity of a path on the mapped volumes: mount index and case-folded on-disk names
/// (for the part that exists; the requested names, folded, for the rest), joined with `\`.
/// Two spellings of one file, through different case, short names or links, have the same
/// key. Cheap to clone and hash: one shared string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    mount: u32,
    /// Folded components joined with `\`; empty for the volume root.
    folded: Arc<str>,
}

impl PathKey {
    /// A key from folded components (which never contain `\`).
    pub fn new<S: AsRef<str>>(mount: usize, folded: impl IntoIterator<Item = S>) -> PathKey {
        let mut joined = String::new();
        for (i, part) in folded.into_iter().enumerate() {
            if i > 0 {
                joined.push('\\');
            }
            joined.push_str(part.as_ref());
        }
        PathKey {
            mount: mount as u32,
            folded: joined.into(),
        }
    }

    pub fn mount(&self) -> usize {
        self.mount as usize
    }

    /// The folded path below the volume root, components joined with `\`.
    pub fn as_str(&self) -> &str {
        &self.folded
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.folded.split('\\').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<PathKey> {
        if self.folded.is_empty() {
            return None;
        }
        let parent = self.folded.rfind('\\').map_or("", |at| &self.folded[..at]);
        Some(PathKey {
            mount: self.mount,
            folded: parent.into(),
        })
    }

    /// The key of a folded name inside this directory.
    pub fn child(&self, folded_name: &str) -> PathKey {
        let joined = if self.folded.is_empty() {
            folded_name.to_string()
        } else {
            format!("{}\\{folded_name}", self.folded)
        };
        PathKey {
            mount: self.mount,
            folded: joined.into(),
        }
    }

    /// This path with `from` (an ancestor) replaced by `to`: where it is after `from` moved.
    pub fn rebase(&self, from: &PathKey, to: &PathKey) -> PathKey {
        let rest = self.folded[from.folded.len()..].trim_start_matches('\\');
        let mut key = to.clone();
        if !rest.is_empty() {
            key = key.child(rest);
        }
        key
    }
}

/// What is on disk at a path before the boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskEntry {
    /// The on-disk names of every component.
    pub names: Vec<OsString>,
    pub kind: EntryKind,
}

/// A queue path mapped onto a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub key: PathKey,
    /// What is there on disk, when the whole path exists.
    pub entry: Option<DiskEntry>,
}

/// Why a path cannot be mapped onto the given volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved(pub String);

struct Listing {
    entries: Vec<DirEntry>,
    /// Entry by folded name.
    by_folded: HashMap<Box<str>, u32>,
    /// Names that fold alike (a case-sensitive mount): all their entries.
    same_fold: HashMap<Box<str>, Vec<u32>>,
    /// Folded short name -> entry, when the volume records short names; filled on first need.
    short: OnceLock<Option<HashMap<String, usize>>>,
}

/// Directory listings by mount, then by folded directory path.
type ListingCache = HashMap<u32, HashMap<Box<str>, Arc<Listing>>>;

/// Links followed while resolving one path, at most (Windows allows 63 reparse hops).
const MAX_LINK_HOPS: usize = 32;

/// The image's volumes, with cached, case-insensitive lookups.
pub struct Volumes {
    mounts: Vec<Box<dyn Volume>>,
    drives: Vec<(char, usize)>,
    devices: Vec<(u32, usize)>,
    system_drive: char,
    /// On-disk names of the Windows directory on the system drive.
    windows_dir: Option<Vec<OsString>>,
    /// Volume GUID (upper case, no braces) -> drive letter, from MountedDevices.
    volume_guids: HashMap<String, char>,
    listings: Mutex<ListingCache>,
}

impl Volumes {
    /// No volumes yet; `system_drive` is the letter `\SystemRoot` lives on.
    pub fn new(system_drive: char) -> Volumes {
        Volumes {
            mounts: Vec::new(),
            drives: Vec::new(),
            devices: Vec::new(),
            system_drive: system_drive.to_ascii_uppercase(),
            windows_dir: None,
            volume_guids: HashMap::new(),
            listings: Mutex::new(HashMap::new()),
        }
    }

    /// Maps a drive letter to a volume (a later mapping of the same letter replaces it).
    pub fn add_drive(&mut self, drive: char, volume: Box<dyn Volume>) {
        let drive = drive.to_ascii_uppercase();
        let mount = self.add_mount(volume);
        self.drives.retain(|(d, _)| *d != drive);
        self.drives.push((drive, mount));
    }

    /// Maps `\Device\HarddiskVolumeN` to a volume.
    pub fn add_device(&mut self, number: u32, volume: Box<dyn Volume>) {
        let mount = self.add_mount(volume);
        self.devices.retain(|(n, _)| *n != number);
        self.devices.push((number, mount));
    }

    /// One mount per host directory, so that one file reached through two names (a letter and
    /// a device number) is one file in the replay.
    fn add_mount(&mut self, volume: Box<dyn Volume>) -> usize {
        let identity = |v: &dyn Volume| v.host_root().and_then(|p| p.canonicalize().ok());
        if let Some(id) = identity(volume.as_ref()) {
            if let Some(existing) = self
                .mounts
                .iter()
                .position(|m| identity(m.as_ref()).as_ref() == Some(&id))
            {
                return existing;
            }
        }
        self.mounts.push(volume);
        self.mounts.len() - 1
    }

    /// Volume GUID -> drive letter, as the image's MountedDevices recorded them.
    pub fn set_volume_guids(&mut self, guids: HashMap<String, char>) {
        self.volume_guids = guids;
    }

    pub fn mount_index(&self, drive: char) -> Option<usize> {
        let drive = drive.to_ascii_uppercase();
        self.drives
            .iter()
            .find(|(d, _)| *d == drive)
            .map(|&(_, m)| m)
    }

    /// Drive letters and where they are, in the order given.
    pub fn drives(&self) -> impl Iterator<Item = (char, String)> + '_ {
        self.drives
            .iter()
            .map(|&(d, m)| (d, self.mounts[m].display(&[])))
    }

    /// Device numbers and where they are.
    pub fn devices(&self) -> impl Iterator<Item = (u32, String)> + '_ {
        self.devices
            .iter()
            .map(|&(n, m)| (n, self.mounts[m].display(&[])))
    }

    /// Finds the Windows directory on the system drive (`Windows`, or `WINNT` on old systems,
    /// any case): the one that holds `System32\config`. Returns how it is spelled on disk.
    pub fn find_windows_dir(&mut self) -> Option<String> {
        let mount = self.mount_index(self.system_drive)?;
        for candidate in ["Windows", "WINNT"] {
            let key = PathKey::new(mount, [candidate, "System32", "config"].map(fold));
            if let Ok(Some(entry)) = self.stat(&key) {
                if entry.kind == EntryKind::Directory {
                    let name = entry.names[0].clone();
                    self.windows_dir = Some(vec![name.clone()]);
                    return Some(name.to_string_lossy().into_owned());
                }
            }
        }
        None
    }

    /// Maps an NT path (queue prefixes already stripped) onto a volume and finds what is there.
    pub fn resolve(&self, nt_path: &str) -> Result<Resolved, Unresolved> {
        let NtPath { anchor, components } = parse_nt_path(nt_path)?;
        let (mount, prefix) = match anchor {
            Anchor::Drive(drive) => (self.drive_mount(drive)?, Vec::new()),
            Anchor::SystemRoot => {
                let mount = self.drive_mount(self.system_drive).map_err(|_| {
                    Unresolved(format!(
                        "\\SystemRoot is on the system drive {}:, which is not mapped (give ROOT)",
                        self.system_drive
                    ))
                })?;
                let windows = self.windows_dir.clone().ok_or_else(|| {
                    Unresolved(
                        "\\SystemRoot: no Windows directory (Windows\\System32\\config) on the system drive"
                            .into(),
                    )
                })?;
                let windows = windows.iter().map(|n| n.to_string_lossy().into_owned());
                (mount, windows.collect())
            }
            Anchor::VolumeGuid(guid) => {
                let Some(&drive) = self.volume_guids.get(&guid) else {
                    return Err(Unresolved(format!(
                        "volume {{{guid}}} has no drive letter in MountedDevices"
                    )));
                };
                let mount = self.drive_mount(drive).map_err(|_| {
                    Unresolved(format!(
                        "volume {{{guid}}} is drive {drive}: in MountedDevices, which is not mapped (use --drive {drive}:=DIR)"
                    ))
                })?;
                (mount, Vec::new())
            }
            Anchor::Device(number) => {
                let Some(&(_, mount)) = self.devices.iter().find(|(n, _)| *n == number) else {
                    return Err(Unresolved(format!(
                        "\\Device\\HarddiskVolume{number} is not mapped (use --device {number}=DIR)"
                    )));
                };
                (mount, Vec::new())
            }
        };
        let mut all = prefix;
        all.extend(components);
        self.walk(mount, all)
    }

    fn drive_mount(&self, drive: char) -> Result<usize, Unresolved> {
        self.mount_index(drive).ok_or_else(|| {
            Unresolved(format!(
                "drive {drive}: is not mapped to a volume (use ROOT, --system-drive or --drive {drive}:=DIR)"
            ))
        })
    }

    /// Resolves components one at a time from the root of `mount`.
    fn walk(&self, mount: usize, components: Vec<String>) -> Result<Resolved, Unresolved> {
        let mut pending: VecDeque<String> = components.into();
        let mut names: Vec<OsString> = Vec::new();
        let mut folded: Vec<String> = Vec::new();
        // The folded path of the current directory: the listing cache's key.
        let mut dir_key = String::new();
        let mut kind = EntryKind::Directory;
        let mut exists = true;
        let mut hops = 0;
        while let Some(component) = pending.pop_front() {
            if !exists || kind != EntryKind::Directory {
                // Below something missing, or below a file: does not exist.
                exists = false;
                folded.push(fold(&component));
                continue;
            }
            let listing = match self.listing(mount, &names, &dir_key) {
                Ok(listing) => listing,
                Err(err) => return Err(self.cannot_list(mount, &names, &err)),
            };
            let Some(index) = self.match_component(mount, &names, &listing, &component)? else {
                exists = false;
                folded.push(fold(&component));
                continue;
            };
            let entry = &listing.entries[index];
            if entry.kind == EntryKind::Link {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(Unresolved(format!(
                        "more than {MAX_LINK_HOPS} links on the way (a link loop?)"
                    )));
                }
                let mut link = names.clone();
                link.push(entry.name.clone());
                let target = self.mounts[mount].read_link(&link).map_err(|err| {
                    Unresolved(format!(
                        "cannot read the link {}: {err}",
                        self.mounts[mount].display(&link)
                    ))
                })?;
                let restart = self.link_target(mount, &names, &link, &target)?;
                pending = restart.into_iter().chain(pending).collect();
                names.clear();
                folded.clear();
                dir_key.clear();
                kind = EntryKind::Directory;
                continue;
            }
            let name = fold(&entry.name.to_string_lossy());
            if !dir_key.is_empty() {
                dir_key.push('\\');
            }
            dir_key.push_str(&name);
            names.push(entry.name.clone());
            folded.push(name);
            kind = entry.kind;
        }
        Ok(Resolved {
            key: PathKey::new(mount, folded),
            entry: exists.then_some(DiskEntry { names, kind }),
        })
    }

    /// Finds `component` in a listing: by case-folded name, else as an 8.3 short name.
    fn match_component(
        &self,
        mount: usize,
        dir: &[OsString],
        listing: &Listing,
        component: &str,
    ) -> Result<Option<usize>, Unresolved> {
        let where_ = || self.mounts[mount].display(dir);
        // Components from canonical keys are folded already; fold only when needed.
        let folded = if component.chars().all(|c| fold_char(c) == c) {
            Cow::Borrowed(component)
        } else {
            Cow::Owned(fold(component))
        };
        match listing.by_folded.get(&*folded) {
            Some(&one) if !listing.same_fold.contains_key(&*folded) => {
                return Ok(Some(one as usize))
            }
            Some(_) => {
                let several = &listing.same_fold[&*folded];
                let spellings: Vec<String> = several
                    .iter()
                    .map(|&i| {
                        listing.entries[i as usize]
                            .name
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect();
                return Err(Unresolved(format!(
                    "{} names in {} differ only by case ({}); Windows would see one file, this mount has several",
                    several.len(),
                    where_(),
                    spellings.join(", ")
                )));
            }
            _ => {}
        }
        if !short_name::looks_generated(component) {
            return Ok(None);
        }
        // Short names the file system recorded (ntfs-3g), else derived by Windows' rules.
        let recorded = listing.short.get_or_init(|| {
            self.mounts[mount]
                .short_names(dir, &listing.entries)
                .map(|shorts| {
                    shorts
                        .into_iter()
                        .enumerate()
                        .filter_map(|(i, s)| s.map(|s| (fold(&s), i)))
                        .collect()
                })
        });
        if let Some(recorded) = recorded {
            return Ok(recorded.get(&fold(component)).copied());
        }
        let names: Vec<String> = listing
            .entries
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let found = short_name::candidates(component, &refs);
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(refs.iter().position(|name| name == one)),
            several => Err(Unresolved(format!(
                "the short name {component} in {} could be any of: {} (the volume does not record short names here; creation order decides)",
                where_(),
                several.join(", ")
            ))),
        }
    }

    /// Where a link points, as components from the volume root: relative targets from the
    /// link's folder, absolute ones from the volume root (or from the host directory of the
    /// volume when they point into it). Never above the root.
    fn link_target(
        &self,
        mount: usize,
        parent: &[OsString],
        link: &[OsString],
        target: &Path,
    ) -> Result<Vec<String>, Unresolved> {
        let volume = &self.mounts[mount];
        let outside = || {
            Unresolved(format!(
                "the link {} points outside its volume ({}); links are never followed out of a volume",
                volume.display(link),
                target.display()
            ))
        };
        // Rooted (`/x`, `\x`, `C:\x`) targets start at the volume root; on Windows a rooted
        // target need not be absolute (`\ProgramData` has no drive).
        let (base, rest): (Vec<String>, &Path) = if target.has_root() {
            let inside = volume
                .host_root()
                .and_then(|root| target.strip_prefix(root).ok());
            (Vec::new(), inside.unwrap_or(target))
        } else {
            let base = parent
                .iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            (base, target)
        };
        let mut components = base;
        // A target written the Windows way (`..\..\x`) on a Unix mount: split on both
        // separators, so that no component holds a `\`.
        let rest_text = rest.to_string_lossy();
        let rest: PathBuf = rest_text.split('\\').collect::<Vec<_>>().join("/").into();
        for part in rest.components() {
            match part {
                Component::Normal(name) => components.push(name.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    components.pop().ok_or_else(outside)?;
                }
                // A drive letter names the image's own volume as Windows saw it; a volume GUID,
                // UNC or device prefix names another volume, which is not followed.
                Component::Prefix(prefix) => match prefix.kind() {
                    std::path::Prefix::Disk(_) | std::path::Prefix::VerbatimDisk(_) => {}
                    _ => {
                        return Err(Unresolved(format!(
                            "the link {} points to another volume ({}); it is not followed",
                            volume.display(link),
                            target.display()
                        )))
                    }
                },
                Component::CurDir | Component::RootDir => {}
            }
        }
        Ok(components)
    }

    fn cannot_list(&self, mount: usize, dir: &[OsString], err: &io::Error) -> Unresolved {
        Unresolved(format!(
            "cannot list {}: {err}",
            self.mounts[mount].display(dir)
        ))
    }

    /// What the disk holds at a key from [`Volumes::resolve`] (or built from one, such as its
    /// parent or a child from [`Volumes::children`]): `Ok(None)` when nothing is there.
    pub fn stat(&self, key: &PathKey) -> Result<Option<DiskEntry>, Unresolved> {
        let mount = key.mount();
        let mut names: Vec<OsString> = Vec::new();
        let mut kind = EntryKind::Directory;
        let path = key.as_str();
        let mut dir_end = 0;
        for component in key.components() {
            if kind != EntryKind::Directory {
                return Ok(None);
            }
            // Keys are canonical: the folded prefix is the directory's cache key.
            let listing = match self.listing(mount, &names, &path[..dir_end]) {
                Ok(listing) => listing,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(self.cannot_list(mount, &names, &err)),
            };
            let Some(index) = self.match_component(mount, &names, &listing, component)? else {
                return Ok(None);
            };
            let entry = &listing.entries[index];
            names.push(entry.name.clone());
            kind = entry.kind;
            dir_end = if dir_end == 0 {
                component.len()
            } else {
                dir_end + 1 + component.len()
            };
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
                .listing(key.mount(), &names, key.as_str())
                .map(|listing| listing.by_folded.keys().map(|k| k.to_string()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub fn open(&self, mount: usize, entry: &DiskEntry) -> io::Result<Evidence> {
        self.mounts[mount].open(&entry.names)
    }

    pub fn display(&self, mount: usize, names: &[OsString]) -> String {
        self.mounts[mount].display(names)
    }

    /// The listing of a directory, by its on-disk names and its folded path (the cache key).
    fn listing(&self, mount: usize, dir: &[OsString], folded: &str) -> io::Result<Arc<Listing>> {
        if let Some(listing) = self
            .cache()
            .get(&(mount as u32))
            .and_then(|dirs| dirs.get(folded))
        {
            return Ok(Arc::clone(listing));
        }
        let entries = self.mounts[mount].list(dir)?;
        let mut by_folded: HashMap<Box<str>, u32> = HashMap::with_capacity(entries.len());
        let mut same_fold: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let name: Box<str> = fold(&entry.name.to_string_lossy()).into();
            let index = index as u32;
            if let Some(&first) = by_folded.get(&name) {
                same_fold
                    .entry(name)
                    .or_insert_with(|| vec![first])
                    .push(index);
            } else {
                by_folded.insert(name, index);
            }
        }
        let listing = Arc::new(Listing {
            entries,
            by_folded,
            same_fold,
            short: OnceLock::new(),
        });
        self.cache()
            .entry(mount as u32)
            .or_default()
            .insert(folded.into(), Arc::clone(&listing));
        Ok(listing)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ListingCache> {
        // A poisoned cache only means another thread panicked mid-insert; the map is still valid.
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many directories have been listed so far (each is listed once).
    pub fn listings_read(&self) -> usize {
        self.cache().values().map(HashMap::len).sum()
    }
}

/// Case folding as NTFS compares names: each character upper-cased on its own (simple
/// mapping, as the volume's $UpCase table does), characters whose upper case is several
/// characters (`ß`) left as they are.
pub fn fold(name: &str) -> String {
    name.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
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
    fn unmapped_anchors_are_unresolved_with_advice() {
        let volumes = Volumes::new('C');
        for (path, advice) in [
            ("\\??\\E:\\x.dll", "--drive E:=DIR"),
            ("\\Device\\HarddiskVolume4\\x", "--device 4=DIR"),
            ("\\??\\Volume{ABCD}\\x", "no drive letter in MountedDevices"),
            ("\\SystemRoot\\x", "system drive C:"),
        ] {
            let err = volumes.resolve(path).unwrap_err();
            assert!(err.0.contains(advice), "{path}: {}", err.0);
        }
    }

    #[test]
    fn path_keys_know_their_ancestors() {
        let key = |parts: &[&str]| PathKey::new(0, parts.iter());
        assert_eq!(key(&["A", "B"]).parent(), Some(key(&["A"])));
        assert_eq!(key(&["A"]).parent(), Some(key(&[])));
        assert_eq!(key(&[]).parent(), None);
        assert_eq!(key(&["A"]).child("B"), key(&["A", "B"]));
        assert_eq!(key(&[]).child("B"), key(&["B"]));
        assert_eq!(
            key(&["A", "B", "C"]).rebase(&key(&["A"]), &key(&["X", "Y"])),
            key(&["X", "Y", "B", "C"])
        );
        assert_eq!(
            key(&["A", "B"]).components().collect::<Vec<_>>(),
            ["A", "B"]
        );
    }
}
