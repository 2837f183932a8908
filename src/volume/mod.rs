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
mod key;
mod listing;
mod nt_path;
mod short_name;
mod unresolved;
mod volumes;

pub use dir::DirVolume;
pub use key::{fold, PathKey};
pub use nt_path::{parse_nt_path, Anchor, NtPath};
pub use unresolved::{ShortNameCandidates, UndecodableMatch, Unresolved};
pub use volumes::{DiskEntry, Problem, Resolved, Volumes};

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

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
