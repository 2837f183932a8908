//! The image's volumes: drive letters, device numbers and volume GUIDs mapped onto volumes,
//! and each path resolved on them one component at a time.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use super::listing::Listing;
use super::unresolved::{ShortNameCandidates, UndecodableMatch};
use super::{parse_nt_path, short_name, Anchor, EntryKind, NtPath, PathKey, Unresolved, Volume};
use crate::evidence::Evidence;

/// What is on disk at a path before the boot: an entry of its folder's listing, or the
/// volume root. Holds the listing rather than a copy of the names (a replay looks at every
/// path of the queue; few need their names spelled out).
#[derive(Clone)]
pub struct DiskEntry {
    pub kind: EntryKind,
    /// The folder's listing and the entry's index in it; `None` for the volume root.
    place: Option<(Arc<Listing>, u32)>,
}

impl DiskEntry {
    /// An entry the boot itself creates (an action list's `CreateFile` or `CreateDirectory`):
    /// nothing on disk to name or read.
    pub fn created(kind: EntryKind) -> DiskEntry {
        DiskEntry { kind, place: None }
    }

    fn root() -> DiskEntry {
        DiskEntry {
            kind: EntryKind::Directory,
            place: None,
        }
    }

    /// The on-disk names of every component from the volume root.
    pub fn names(&self) -> Vec<OsString> {
        match &self.place {
            None => Vec::new(),
            Some((listing, index)) => {
                let mut names = Vec::with_capacity(listing.dir.len() + 1);
                names.extend_from_slice(&listing.dir);
                names.push(listing.entries[*index as usize].name.clone());
                names
            }
        }
    }
}

impl PartialEq for DiskEntry {
    fn eq(&self, other: &DiskEntry) -> bool {
        self.kind == other.kind && self.names() == other.names()
    }
}

impl Eq for DiskEntry {}

impl std::fmt::Debug for DiskEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskEntry")
            .field("kind", &self.kind)
            .field("names", &self.names())
            .finish()
    }
}

/// A queue path mapped onto a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub key: PathKey,
    /// What is there on disk, when the whole path exists.
    pub entry: Option<DiskEntry>,
}

/// Something on a volume that the check needed and could not read or compare: each one is a
/// finding, and the report cannot pass a gate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A file or folder that could not be opened, read or listed.
    Unreadable { path: String, error: String },
    /// A name of the queue not found in a folder that holds a name which is not valid
    /// Unicode and could be it.
    Undecodable { folder: String, name: String },
}

/// Where a walk from a volume root has got to.
#[derive(Clone)]
struct Walk {
    mount: usize,
    /// Folded components so far, joined with `\\` (while they exist, the listing cache's key).
    folded: String,
    /// What the components found so far end at.
    found: DiskEntry,
    exists: bool,
    /// Links followed so far.
    hops: usize,
}

impl Walk {
    fn root(mount: usize) -> Walk {
        Walk {
            mount,
            folded: String::new(),
            found: DiskEntry::root(),
            exists: true,
            hops: 0,
        }
    }

    fn push_folded(&mut self, folded_name: &str) {
        if !self.folded.is_empty() {
            self.folded.push('\\');
        }
        self.folded.push_str(folded_name);
    }

    fn resolved(self) -> Resolved {
        Resolved {
            key: PathKey::from_joined(self.mount, self.folded),
            entry: self.exists.then_some(self.found),
        }
    }
}

/// Folders walked, by mount and components as spelled.
type FolderCache = FxHashMap<(u32, Box<str>), Result<Walk, Unresolved>>;

/// Directory listings by mount, then by folded directory path.
type ListingCache = FxHashMap<u32, FxHashMap<Box<str>, Arc<Listing>>>;

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
    /// Further volumes of the system volume's image, lettered once MountedDevices is read.
    unlettered: Vec<Box<dyn Volume>>,
    listings: Mutex<ListingCache>,
    folders: Mutex<FolderCache>,
    problems: Mutex<std::collections::BTreeSet<Problem>>,
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
            unlettered: Vec::new(),
            listings: Mutex::new(FxHashMap::default()),
            folders: Mutex::new(FxHashMap::default()),
            problems: Mutex::new(Default::default()),
        }
    }

    /// Maps a drive letter to a volume (a later mapping of the same letter replaces it).
    pub fn add_drive(&mut self, drive: char, volume: Box<dyn Volume>) {
        let drive = drive.to_ascii_uppercase();
        let mount = self.add_mount(volume);
        self.drives.retain(|(d, _)| *d != drive);
        self.drives.push((drive, mount));
    }

    /// A further volume of the image, to be given the letter MountedDevices records for it
    /// ([`Volumes::assign_letters`]).
    pub fn add_unlettered(&mut self, volume: Box<dyn Volume>) {
        self.unlettered.push(volume);
    }

    /// Gives each further volume of the image the drive letter MountedDevices recorded for its
    /// identity (MBR disk signature and offset, or GPT partition GUID), unless the user named
    /// a volume for that letter. Returns the letters given.
    pub fn assign_letters(&mut self, devices: &[crate::hive::MountedDevice]) -> Vec<char> {
        let mut given = Vec::new();
        for volume in std::mem::take(&mut self.unlettered) {
            let letter = volume.origin().and_then(|origin| {
                let identity = origin.identity.as_ref()?;
                devices
                    .iter()
                    .filter(|d| &d.volume == identity)
                    .find_map(crate::hive::MountedDevice::drive_letter)
            });
            match letter {
                Some(letter) if self.mount_index(letter).is_none() => {
                    self.add_drive(letter, volume);
                    given.push(letter);
                }
                _ => self.unlettered.push(volume),
            }
        }
        given
    }

    /// Where the volume of `drive` is in an image, if it is read from one.
    pub fn drive_origin(&self, drive: char) -> Option<&super::ImageOrigin> {
        self.mount_index(drive)
            .and_then(|m| self.mounts[m].origin())
    }

    /// The volume of the system drive (ROOT).
    pub fn system_volume(&self) -> &dyn Volume {
        let mount = self.mount_index(self.system_drive).unwrap_or(0);
        self.mounts[mount].as_ref()
    }

    /// Each image a volume (mapped, or of ROOT's image and not lettered) is read from, once,
    /// in the order of their paths.
    pub fn images(&self) -> Vec<Arc<crate::evidence::image::container::Disk>> {
        let mut images: Vec<Arc<_>> = Vec::new();
        for volume in self.mounts.iter().chain(&self.unlettered) {
            if let Some(image) = volume.image() {
                if !images.iter().any(|known| Arc::ptr_eq(known, image)) {
                    images.push(Arc::clone(image));
                }
            }
        }
        // One image named twice (ROOT and `--drive D:=IMAGE:2`) is opened twice: listed once.
        images.sort_by(|a, b| a.path.cmp(&b.path));
        images.dedup_by(|a, b| a.path == b.path);
        images
    }

    /// Where each mapped volume is in an image, by drive letter or device.
    pub fn origins(&self) -> impl Iterator<Item = &super::ImageOrigin> + '_ {
        self.mounts.iter().filter_map(|m| m.origin())
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
            let key = PathKey::new(
                mount,
                [candidate, "System32", "config"].map(|c| self.fold(mount, c)),
            );
            if let Ok(Some(entry)) = self.stat(&key) {
                if entry.kind == EntryKind::Directory {
                    let name = entry.names().swap_remove(0);
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
                    Unresolved::SystemDriveNotMapped {
                        drive: self.system_drive,
                    }
                })?;
                let windows = self.windows_dir.clone().ok_or(Unresolved::NoWindowsDir)?;
                let windows = windows.iter().map(|n| n.to_string_lossy().into_owned());
                (mount, windows.collect())
            }
            Anchor::VolumeGuid(guid) => {
                let Some(&drive) = self.volume_guids.get(&guid) else {
                    return Err(Unresolved::GuidWithoutDrive { guid: guid.into() });
                };
                let mount =
                    self.drive_mount(drive)
                        .map_err(|_| Unresolved::GuidDriveNotMapped {
                            guid: guid.into(),
                            drive,
                        })?;
                (mount, Vec::new())
            }
            Anchor::Device(number) => {
                let Some(&(_, mount)) = self.devices.iter().find(|(n, _)| *n == number) else {
                    return Err(Unresolved::DeviceNotMapped { number });
                };
                (mount, Vec::new())
            }
        };
        let mut all = prefix;
        all.extend(components);
        self.walk(mount, all)
    }

    fn drive_mount(&self, drive: char) -> Result<usize, Unresolved> {
        self.mount_index(drive)
            .ok_or(Unresolved::DriveNotMapped { drive })
    }

    /// Resolves components from the root of `mount`. The folder part of a path is walked once
    /// per spelling and remembered: a queue names many files in few folders.
    fn walk(&self, mount: usize, mut components: Vec<String>) -> Result<Resolved, Unresolved> {
        let Some(last) = components.pop() else {
            return Ok(Walk::root(mount).resolved());
        };
        let key = (mount as u32, Box::<str>::from(components.join("\\")));
        let cached = self.folder_cache().get(&key).cloned();
        let folder = match cached {
            Some(folder) => folder,
            None => {
                let folder = self.advance(Walk::root(mount), components);
                self.folder_cache().insert(key, folder.clone());
                folder
            }
        }?;
        Ok(self.advance(folder, vec![last])?.resolved())
    }

    /// Walks on from `walk`, one component at a time.
    fn advance(&self, mut walk: Walk, components: Vec<String>) -> Result<Walk, Unresolved> {
        let mount = walk.mount;
        let mut pending: VecDeque<String> = components.into();
        while let Some(component) = pending.pop_front() {
            if !walk.exists || walk.found.kind != EntryKind::Directory {
                // Below something missing, or below a file: does not exist.
                walk.exists = false;
                walk.push_folded(&self.fold(mount, &component));
                continue;
            }
            let listing = match self.listing(mount, &walk.folded, || walk.found.names()) {
                Ok(listing) => listing,
                Err(err) => return Err(self.cannot_list(mount, &walk.found.names(), &err)),
            };
            let Some(index) = self.match_component(mount, &listing, &component)? else {
                walk.exists = false;
                walk.push_folded(&self.fold(mount, &component));
                continue;
            };
            let entry = &listing.entries[index];
            if entry.kind == EntryKind::Link {
                walk.hops += 1;
                if walk.hops > MAX_LINK_HOPS {
                    return Err(Unresolved::TooManyLinks {
                        limit: MAX_LINK_HOPS,
                    });
                }
                let mut link = listing.dir.clone();
                link.push(entry.name.clone());
                let target = self.mounts[mount].read_link(&link).map_err(|err| {
                    Unresolved::UnreadableLink {
                        link: self.mounts[mount].display(&link).into(),
                        error: err.to_string().into(),
                    }
                })?;
                let restart = self.link_target(mount, &listing.dir, &link, &target)?;
                pending = restart.into_iter().chain(pending).collect();
                walk = Walk {
                    hops: walk.hops,
                    ..Walk::root(mount)
                };
                continue;
            }
            walk.push_folded(listing.folded_name(index as u32));
            walk.found = DiskEntry {
                kind: entry.kind,
                place: Some((Arc::clone(&listing), index as u32)),
            };
        }
        Ok(walk)
    }

    /// Finds `component` in a listing: by case-folded name, else as an 8.3 short name.
    fn match_component(
        &self,
        mount: usize,
        listing: &Listing,
        component: &str,
    ) -> Result<Option<usize>, Unresolved> {
        let dir = &listing.dir;
        let where_ = || self.mounts[mount].display(dir);
        // Components from canonical keys are folded already; fold only when needed.
        let folding = self.mounts[mount].folding();
        let folded = if component.chars().all(|c| folding.fold_char(c) == c) {
            Cow::Borrowed(component)
        } else {
            Cow::Owned(folding.fold(component))
        };
        match listing.find(&folded) {
            [] => {
                if let Some(index) = listing.could_be_undecodable(&folded) {
                    let folder = where_();
                    let name = listing.entries[index as usize].name.to_string_lossy();
                    self.problem(Problem::Undecodable {
                        folder: folder.clone(),
                        name: name.clone().into_owned(),
                    });
                    return Err(Unresolved::Undecodable(Box::new(UndecodableMatch {
                        component: component.into(),
                        folder: folder.into(),
                        name: name.into(),
                    })));
                }
            }
            [one] => return Ok(Some(*one as usize)),
            several => {
                let spellings = several
                    .iter()
                    .map(|&i| listing.entries[i as usize].name.to_string_lossy().into())
                    .collect();
                return Err(Unresolved::CaseTwins {
                    folder: where_().into(),
                    names: spellings,
                });
            }
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
                        .filter_map(|(i, s)| s.map(|s| (folding.fold(&s), i)))
                        .collect()
                })
        });
        if let Some(recorded) = recorded {
            return Ok(recorded.get(&folding.fold(component)).copied());
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
            several => Err(Unresolved::AmbiguousShortName(Box::new(
                ShortNameCandidates {
                    short: component.into(),
                    folder: where_().into(),
                    candidates: several.iter().map(|&name| name.into()).collect(),
                },
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
        let outside = || Unresolved::LinkOutside {
            link: volume.display(link).into(),
            target: target.into(),
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
                        return Err(Unresolved::LinkToOtherVolume {
                            link: volume.display(link).into(),
                            target: target.into(),
                        })
                    }
                },
                Component::CurDir | Component::RootDir => {}
            }
        }
        Ok(components)
    }

    fn cannot_list(&self, mount: usize, dir: &[OsString], err: &io::Error) -> Unresolved {
        let path = self.mounts[mount].display(dir);
        let error = err.to_string();
        self.problem(Problem::Unreadable {
            path: path.clone(),
            error: error.clone(),
        });
        Unresolved::Unlistable {
            folder: path.into(),
            error: error.into(),
        }
    }

    fn problem(&self, problem: Problem) {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(problem);
    }

    /// What the check needed from the volumes and could not read or compare, so far.
    pub fn problems(&self) -> Vec<Problem> {
        let problems = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        problems.iter().cloned().collect()
    }

    /// Folders listed so far that hold names which are not valid Unicode, with how many.
    pub fn undecodable_folders(&self) -> Vec<(String, usize)> {
        let mut folders: Vec<(String, usize)> = self
            .cache()
            .iter()
            .flat_map(|(&mount, dirs)| {
                dirs.values()
                    .filter(|listing| !listing.undecodable.is_empty())
                    .map(move |listing| {
                        (
                            self.mounts[mount as usize].display(&listing.dir),
                            listing.undecodable.len(),
                        )
                    })
            })
            .collect();
        folders.sort();
        folders
    }

    /// What the disk holds at a key from [`Volumes::resolve`] (or built from one, such as its
    /// parent or a child from [`Volumes::children`]): `Ok(None)` when nothing is there.
    pub fn stat(&self, key: &PathKey) -> Result<Option<DiskEntry>, Unresolved> {
        let mount = key.mount();
        let path = key.as_str();
        // The folder is usually listed already (the key came from a walk): one lookup.
        if let Some(parent) = key.parent() {
            let folder = self
                .cache()
                .get(&(mount as u32))
                .and_then(|dirs| dirs.get(parent.as_str()))
                .cloned();
            if let Some(listing) = folder {
                let name = path[parent.as_str().len()..].trim_start_matches('\\');
                let found = self.match_component(mount, &listing, name)?;
                return Ok(found.map(|index| DiskEntry {
                    kind: listing.entries[index].kind,
                    place: Some((listing, index as u32)),
                }));
            }
        }
        let mut found = DiskEntry::root();
        let mut dir_end = 0;
        for component in key.components() {
            if found.kind != EntryKind::Directory {
                return Ok(None);
            }
            // Keys are canonical: the folded prefix is the directory's cache key.
            let listing = match self.listing(mount, &path[..dir_end], || found.names()) {
                Ok(listing) => listing,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(self.cannot_list(mount, &found.names(), &err)),
            };
            let Some(index) = self.match_component(mount, &listing, component)? else {
                return Ok(None);
            };
            found = DiskEntry {
                kind: listing.entries[index].kind,
                place: Some((listing, index as u32)),
            };
            dir_end = if dir_end == 0 {
                component.len()
            } else {
                dir_end + 1 + component.len()
            };
        }
        Ok(Some(found))
    }

    /// The folded names in a directory on disk (empty when it cannot be listed).
    pub fn children(&self, key: &PathKey) -> Vec<String> {
        match self.stat(key) {
            Ok(Some(entry)) if entry.kind == EntryKind::Directory => self
                .listing(key.mount(), key.as_str(), || entry.names())
                .map(|listing| listing.folded_names().map(str::to_string).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Opens a file by its on-disk names (from [`DiskEntry::names`]). A file that cannot be
    /// opened or read is also kept as a [`Problem`].
    pub fn open(&self, mount: usize, names: &[OsString]) -> io::Result<Evidence> {
        self.mounts[mount].open(names).inspect_err(|err| {
            self.problem(Problem::Unreadable {
                path: self.display(mount, names),
                error: err.to_string(),
            })
        })
    }

    /// `name` folded as volume `mount` compares names (its `$UpCase`, for an NTFS image).
    pub fn fold(&self, mount: usize, name: &str) -> String {
        self.mounts[mount].folding().fold(name)
    }

    /// The file's number on its file system, where the volume knows it (an NTFS image: the
    /// MFT record number).
    pub fn file_id(&self, mount: usize, names: &[OsString]) -> Option<u64> {
        self.mounts[mount].file_id(names)
    }

    pub fn display(&self, mount: usize, names: &[OsString]) -> String {
        self.mounts[mount].display(names)
    }

    /// The folder `dir` (on-disk names) of a volume, as evidence: what the hive stage reads a
    /// hive, its logs and its neighbours through, wherever the volume is held.
    pub fn folder(&self, mount: usize, dir: Vec<OsString>) -> VolumeFolder<'_> {
        VolumeFolder {
            volumes: self,
            mount,
            dir,
        }
    }

    /// The listing of a directory, by its folded path (the cache key); `dir` gives its on-disk
    /// names when it has not been listed yet.
    fn listing(
        &self,
        mount: usize,
        folded: &str,
        dir: impl FnOnce() -> Vec<OsString>,
    ) -> io::Result<Arc<Listing>> {
        if let Some(listing) = self
            .cache()
            .get(&(mount as u32))
            .and_then(|dirs| dirs.get(folded))
        {
            return Ok(Arc::clone(listing));
        }
        let dir = dir();
        let entries = self.mounts[mount].list(&dir)?;
        let listing = Arc::new(Listing::new(dir, entries, self.mounts[mount].folding()));
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

    fn folder_cache(&self) -> std::sync::MutexGuard<'_, FolderCache> {
        self.folders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many directories have been listed so far (each is listed once).
    pub fn listings_read(&self) -> usize {
        self.cache().values().map(HashMap::len).sum()
    }
}

/// A folder of one of the [`Volumes`], as an [`crate::evidence::Folder`].
pub struct VolumeFolder<'a> {
    volumes: &'a Volumes,
    mount: usize,
    dir: Vec<OsString>,
}

impl VolumeFolder<'_> {
    fn child(&self, name: &std::ffi::OsStr) -> Vec<OsString> {
        let mut names = self.dir.clone();
        if !name.is_empty() {
            names.push(name.to_os_string());
        }
        names
    }
}

impl crate::evidence::Folder for VolumeFolder<'_> {
    fn list(&self) -> io::Result<Vec<crate::evidence::Listed>> {
        use crate::evidence::{Listed, ListedKind};
        let entries = self.volumes.mounts[self.mount].list(&self.dir)?;
        Ok(entries
            .into_iter()
            .map(|entry| Listed {
                name: entry.name,
                kind: match entry.kind {
                    EntryKind::File => ListedKind::File,
                    EntryKind::Directory => ListedKind::Directory,
                    EntryKind::Link => ListedKind::Symlink,
                    EntryKind::Other => ListedKind::Other,
                },
            })
            .collect())
    }

    fn open(&self, name: &std::ffi::OsStr) -> io::Result<Evidence> {
        self.volumes.mounts[self.mount].open(&self.child(name))
    }

    fn path(&self, name: &std::ffi::OsStr) -> PathBuf {
        PathBuf::from(self.volumes.display(self.mount, &self.child(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_anchors_are_unresolved_with_advice() {
        let volumes = Volumes::new('C');
        for (path, advice) in [
            ("\\??\\E:\\x.dll", "--drive E:=DIR"),
            ("\\Device\\HarddiskVolume4\\x", "--device 4=DIR"),
            ("\\??\\Volume{ABCD}\\x", "no drive letter in MountedDevices"),
            ("\\SystemRoot\\x", "system drive C:"),
        ] {
            let err = volumes.resolve(path).unwrap_err().to_string();
            assert!(err.contains(advice), "{path}: {err}");
        }
    }
}
