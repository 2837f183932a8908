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
mod mount;
mod nt_path;
mod short_name;

pub use dir::DirVolume;
pub use mount::{find_system_hive, mount, volume_letters, MountError, MountSpec};
pub use nt_path::{parse_nt_path, Anchor, NtPath};

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustc_hash::FxHashMap;

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
/// key. Cheap to clone and hash: a shared string, of which an ancestor's key is a prefix (so
/// that taking the parent allocates nothing).
#[derive(Clone, Debug)]
pub struct PathKey {
    mount: u32,
    /// Bytes of `folded` that are this path.
    len: u32,
    /// Folded components joined with `\`; empty for the volume root.
    folded: Arc<str>,
}

impl PartialEq for PathKey {
    fn eq(&self, other: &PathKey) -> bool {
        self.mount == other.mount && self.as_str() == other.as_str()
    }
}

impl Eq for PathKey {}

impl std::hash::Hash for PathKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.mount.hash(state);
        self.as_str().hash(state);
    }
}

impl PartialOrd for PathKey {
    fn partial_cmp(&self, other: &PathKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathKey {
    fn cmp(&self, other: &PathKey) -> std::cmp::Ordering {
        (self.mount, self.as_str()).cmp(&(other.mount, other.as_str()))
    }
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
        PathKey::from_joined(mount, joined)
    }

    fn from_joined(mount: usize, joined: String) -> PathKey {
        PathKey {
            mount: mount as u32,
            len: joined.len() as u32,
            folded: joined.into(),
        }
    }

    pub fn mount(&self) -> usize {
        self.mount as usize
    }

    /// The folded path below the volume root, components joined with `\`.
    pub fn as_str(&self) -> &str {
        &self.folded[..self.len as usize]
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.as_str().split('\\').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<PathKey> {
        let path = self.as_str();
        if path.is_empty() {
            return None;
        }
        Some(PathKey {
            mount: self.mount,
            len: path.rfind('\\').unwrap_or(0) as u32,
            folded: Arc::clone(&self.folded),
        })
    }

    /// The key of a folded name inside this directory.
    pub fn child(&self, folded_name: &str) -> PathKey {
        let joined = match self.as_str() {
            "" => folded_name.to_string(),
            path => format!("{path}\\{folded_name}"),
        };
        PathKey::from_joined(self.mount(), joined)
    }

    /// This path with `from` (an ancestor) replaced by `to`: where it is after `from` moved.
    pub fn rebase(&self, from: &PathKey, to: &PathKey) -> PathKey {
        let rest = self.as_str()[from.as_str().len()..].trim_start_matches('\\');
        let mut key = to.clone();
        if !rest.is_empty() {
            key = key.child(rest);
        }
        key
    }
}

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

/// Why a path cannot be mapped onto the given volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved(pub String);

/// One directory's entries, with their folded names for case-insensitive lookup. Kept compact:
/// a check over 100,000 files holds every listing of their folders.
struct Listing {
    /// The directory's own on-disk names from the volume root.
    dir: Vec<OsString>,
    entries: Box<[DirEntry]>,
    /// The folded names, back to back: entry `i`'s ends at `folded_ends[i]`.
    folded: String,
    folded_ends: Box<[u32]>,
    /// Entry indexes ordered by folded name (names that fold alike are neighbours, in
    /// listing order).
    by_folded: Box<[u32]>,
    /// Open-addressing hash table over folded names: the index of the first entry with each
    /// name, [`FREE`] for a free slot. One hop from a name to its entry.
    slots: Box<[u32]>,
    /// Some names fold alike (a case-sensitive mount): lookups go through `by_folded`.
    has_twins: bool,
    /// Folded short name -> entry, when the volume records short names; filled on first need.
    short: OnceLock<Option<HashMap<String, usize>>>,
    /// Entries whose on-disk name is not valid Unicode (bytes that are not UTF-8 on a Unix
    /// host: a tree copied from a Latin-1 file system): their folded names are lossy, so
    /// a queue name that is not found could still be one of them.
    undecodable: Box<[u32]>,
}

const FREE: u32 = u32::MAX;

fn name_hash(folded: &str) -> usize {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(folded.as_bytes());
    hasher.finish() as usize
}

impl Listing {
    fn new(dir: Vec<OsString>, entries: Vec<DirEntry>) -> Listing {
        let mut folded = String::new();
        let mut folded_ends = Vec::with_capacity(entries.len());
        let mut undecodable = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            if entry.name.to_str().is_none() {
                undecodable.push(index as u32);
            }
            folded.extend(entry.name.to_string_lossy().chars().map(fold_char));
            folded_ends.push(folded.len() as u32);
        }
        folded.shrink_to_fit();
        let mut listing = Listing {
            dir,
            entries: entries.into_boxed_slice(),
            folded,
            folded_ends: folded_ends.into_boxed_slice(),
            by_folded: Box::new([]),
            slots: Box::new([]),
            has_twins: false,
            short: OnceLock::new(),
            undecodable: undecodable.into_boxed_slice(),
        };
        let mut order: Vec<u32> = (0..listing.entries.len() as u32).collect();
        // Stable: names that fold alike stay in listing order.
        order.sort_by(|&a, &b| listing.folded_name(a).cmp(listing.folded_name(b)));
        listing.by_folded = order.into_boxed_slice();
        // At most half full, so that a probe ends soon.
        let mut slots = vec![FREE; (2 * listing.entries.len()).next_power_of_two()];
        let mask = slots.len() - 1;
        for index in 0..listing.entries.len() as u32 {
            let name = listing.folded_name(index);
            let mut slot = name_hash(name) & mask;
            loop {
                match slots[slot] {
                    FREE => {
                        slots[slot] = index;
                        break;
                    }
                    other if listing.folded_name(other) == name => {
                        listing.has_twins = true;
                        break;
                    }
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        listing.slots = slots.into_boxed_slice();
        listing
    }

    fn folded_name(&self, index: u32) -> &str {
        let index = index as usize;
        let start = match index {
            0 => 0,
            _ => self.folded_ends[index - 1] as usize,
        };
        &self.folded[start..self.folded_ends[index] as usize]
    }

    /// The entries whose names fold to `folded` (more than one only on a case-sensitive mount).
    fn find(&self, folded: &str) -> &[u32] {
        if self.has_twins {
            let start = self
                .by_folded
                .partition_point(|&i| self.folded_name(i) < folded);
            let count = self.by_folded[start..].partition_point(|&i| self.folded_name(i) == folded);
            return &self.by_folded[start..start + count];
        }
        if self.slots.is_empty() {
            return &[];
        }
        let mask = self.slots.len() - 1;
        let mut slot = name_hash(folded) & mask;
        loop {
            match self.slots[slot] {
                FREE => return &[],
                index if self.folded_name(index) == folded => {
                    return std::slice::from_ref(&self.slots[slot])
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// An undecodable entry whose name could be `folded` (each undecodable part of its name
    /// standing for one character or more), if there is one.
    fn could_be_undecodable(&self, folded: &str) -> Option<u32> {
        self.undecodable.iter().copied().find(|&index| {
            let lossy = self.folded_name(index);
            could_be(lossy.split(char::REPLACEMENT_CHARACTER), folded)
        })
    }

    /// Each folded name once.
    fn folded_names(&self) -> impl Iterator<Item = &str> {
        let mut previous = None;
        self.by_folded.iter().filter_map(move |&i| {
            let name = self.folded_name(i);
            (previous.replace(name) != Some(name)).then_some(name)
        })
    }
}

/// Whether `text` can be the pieces joined with one or more characters between each two:
/// a name with undecodable runs (the gaps) that could spell `text`.
fn could_be<'a>(mut pieces: impl Iterator<Item = &'a str>, text: &str) -> bool {
    let Some(first) = pieces.next() else {
        return false;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        // At least one character for the gap before the piece, then the piece.
        let Some(gap) = rest.chars().next() else {
            return false;
        };
        match rest[gap.len_utf8()..].find(piece) {
            Some(at) => rest = &rest[gap.len_utf8() + at + piece.len()..],
            None => return false,
        }
    }
    rest.len() > last.len()
        && rest.ends_with(last)
        && rest[..rest.len() - last.len()].chars().next().is_some()
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
                walk.push_folded(&fold(&component));
                continue;
            }
            let listing = match self.listing(mount, &walk.folded, || walk.found.names()) {
                Ok(listing) => listing,
                Err(err) => return Err(self.cannot_list(mount, &walk.found.names(), &err)),
            };
            let Some(index) = self.match_component(mount, &listing, &component)? else {
                walk.exists = false;
                walk.push_folded(&fold(&component));
                continue;
            };
            let entry = &listing.entries[index];
            if entry.kind == EntryKind::Link {
                walk.hops += 1;
                if walk.hops > MAX_LINK_HOPS {
                    return Err(Unresolved(format!(
                        "more than {MAX_LINK_HOPS} links on the way (a link loop?)"
                    )));
                }
                let mut link = listing.dir.clone();
                link.push(entry.name.clone());
                let target = self.mounts[mount].read_link(&link).map_err(|err| {
                    Unresolved(format!(
                        "cannot read the link {}: {err}",
                        self.mounts[mount].display(&link)
                    ))
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
        let folded = if component.chars().all(|c| fold_char(c) == c) {
            Cow::Borrowed(component)
        } else {
            Cow::Owned(fold(component))
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
                    return Err(Unresolved(format!(
                        "{component} is not in {folder} under that name, but {folder} holds a name that is not valid Unicode and could be it ({name}, undecodable bytes shown as U+FFFD); Windows would compare the real name"
                    )));
                }
            }
            [one] => return Ok(Some(*one as usize)),
            several => {
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
        let path = self.mounts[mount].display(dir);
        self.problem(Problem::Unreadable {
            path: path.clone(),
            error: err.to_string(),
        });
        Unresolved(format!("cannot list {path}: {err}"))
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
                .get(&key.mount)
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

    pub fn display(&self, mount: usize, names: &[OsString]) -> String {
        self.mounts[mount].display(names)
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
        let listing = Arc::new(Listing::new(dir, entries));
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
    fn undecodable_names_could_be_what_their_decodable_parts_allow() {
        let pieces = |lossy: &'static str| lossy.split('\u{fffd}');
        assert!(could_be(pieces("\u{fffd}BER.DLL"), "ÜBER.DLL"));
        assert!(could_be(pieces("A\u{fffd}B\u{fffd}C.DLL"), "AXXBYC.DLL"));
        assert!(could_be(pieces("A\u{fffd}"), "AB"));
        assert!(!could_be(pieces("A\u{fffd}"), "A"));
        assert!(!could_be(pieces("\u{fffd}BER.DLL"), "BER.DLL"));
        assert!(!could_be(pieces("\u{fffd}BER.DLL"), "ÜBER.EXE"));
        assert!(!could_be(pieces("A\u{fffd}B\u{fffd}C"), "ABC"));
        assert!(!could_be(pieces("A\u{fffd}B\u{fffd}C"), "AXBC"));
        assert!(could_be(pieces("X.DLL"), "X.DLL"));
        assert!(!could_be(pieces("X.DLL"), "Y.DLL"));
    }

    #[test]
    fn listings_find_names_by_fold_and_keep_case_twins_together() {
        let entry = |name: &str| DirEntry {
            name: name.into(),
            kind: EntryKind::File,
        };
        let names = ["b.dll", "A.dll", "ntdll.DLL", "a.DLL", "ß", ""];
        let listing = Listing::new(Vec::new(), names.iter().map(|n| entry(n)).collect());
        assert_eq!(listing.find("B.DLL"), [0]);
        assert_eq!(listing.find("NTDLL.DLL"), [2]);
        // Twins that fold alike come back together, in listing order.
        assert_eq!(listing.find("A.DLL"), [1, 3]);
        assert_eq!(listing.find("ß"), [4]);
        assert_eq!(listing.find(""), [5]);
        assert!(listing.find("C.DLL").is_empty());
        let folded: Vec<&str> = listing.folded_names().collect();
        assert_eq!(folded, ["", "A.DLL", "B.DLL", "NTDLL.DLL", "ß"]);
        assert!(Listing::new(Vec::new(), Vec::new()).find("X").is_empty());
        // Without twins, names are found through the hash table alone.
        let names = ["b.dll", "A.dll", "ntdll.DLL", "ß", ""];
        let listing = Listing::new(Vec::new(), names.iter().map(|n| entry(n)).collect());
        assert!(!listing.has_twins);
        for (index, name) in names.iter().enumerate() {
            assert_eq!(listing.find(&fold(name)), [index as u32], "{name}");
        }
        assert!(listing.find("C.DLL").is_empty());
    }

    #[test]
    fn path_keys_know_their_ancestors() {
        let key = |parts: &[&str]| PathKey::new(0, parts.iter());
        assert_eq!(key(&["A", "B"]).parent(), Some(key(&["A"])));
        assert_eq!(key(&["A"]).parent(), Some(key(&[])));
        assert_eq!(key(&[]).parent(), None);
        // A parent shares its child's string; equality and hashing see only the prefix.
        let parent = key(&["A", "B"]).parent().unwrap();
        assert_eq!(parent.as_str(), "A");
        let hash = |k: &PathKey| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(k)
        };
        assert_eq!(hash(&parent), hash(&key(&["A"])));
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
