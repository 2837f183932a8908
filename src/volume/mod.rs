//! Volume: from an NT path in the queue to a file on the volumes the user named.
//!
//! Two layers. A [`Volume`] is file access for one volume, whatever holds it (today a host
//! directory: a mount or a copy of the image; later an NTFS image read directly): list a
//! directory, tell what one entry is, open a file, read a link, know short names, by on-disk
//! names relative to the volume root. [`Volumes`] maps drive letters, device numbers, volume GUIDs and `\SystemRoot`
//! onto volumes, and resolves each path component the way Windows does: case-insensitively,
//! 8.3 short names included, one directory listing at a time, each listing read once.
//!
//! Containment: `.` and `..` components are refused, and links (symbolic links, junctions) are
//! followed only inside their volume: a target is taken relative to the link's folder, or to
//! the volume root when absolute, and can never climb above the root. Nothing outside the roots
//! the user named is opened.

mod dir;
mod image;
mod key;
mod listing;
mod mount;
mod nt_path;
mod ntfs;
mod short_name;
#[cfg(test)]
mod tests;
mod unresolved;
mod volumes;

pub use dir::DirVolume;
pub use image::{
    is_image, open_image, split_partition, ImageOrigin, OpenedImage, SkippedPartition,
};
pub use key::{fold, Folding, PathKey};
pub use mount::{find_system_hive, mount, volume_letters, MountError, MountSpec};
pub use nt_path::{parse_nt_path, Anchor, NtPath};
pub use ntfs::NtfsVolume;
pub use unresolved::{ShortNameCandidates, UndecodableMatch, Unresolved};
pub use volumes::{DiskEntry, Problem, Resolved, VolumeFolder, Volumes};

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::evidence::Evidence;

/// What an entry is, as its volume stores it (a link is a link, not what it points to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// A symbolic link or junction (ntfs-3g shows junctions as symbolic links).
    Link,
    /// Anything else (a FIFO, a socket, a device node on a host directory): never read.
    Other,
}

/// One entry of a folder's listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The on-disk name, exactly: paths to it repeat it as it is.
    pub name: OsString,
    pub kind: EntryKind,
}

/// What [`Volume::metadata`] tells about one entry, without opening it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMetadata {
    pub kind: EntryKind,
    /// The length in bytes of a file's data (its unnamed stream); `None` for anything else.
    pub size: Option<u64>,
}

/// File access for one volume: the seam between path resolution ([`Volumes`]) and whatever
/// holds the volume ([`DirVolume`] for a host directory; an NTFS image read directly next).
///
/// A path is the on-disk names of its components from the volume root, `[]` being the root,
/// each spelled exactly as [`Volume::list`] gave it: never empty, `.` or `..`, never holding a
/// separator, compared exactly (case folding and short names are the resolver's work, done
/// once on the listing). A path never goes through a link: the resolver reads each link and
/// restarts from its target, so an implementation follows no link itself, on any component.
///
/// Errors are [`io::Error`]s: `NotFound` when nothing is at the path (a component is
/// missing), which the resolver can take as an answer; any other kind when the volume cannot
/// tell (unreadable, damaged, a component that is not a folder), which leaves what needed the
/// path unresolved or unreadable. Their text is shown after the path as [`Volume::display`]
/// gives it, so it need not name the path again.
pub trait Volume: Send + Sync {
    /// The entries of the folder `dir`, in the volume's order, without `.` and `..`; links
    /// listed as [`EntryKind::Link`]. The resolver lists a folder once per run and keeps the
    /// listing. On a host directory, without changing the folder's access time.
    fn list(&self, dir: &[OsString]) -> io::Result<Vec<DirEntry>>;
    /// What the entry at `path` is, and a file's size, without following a final link (the
    /// kind is the one [`Volume::list`] reports for it). The root is a directory.
    fn metadata(&self, path: &[OsString]) -> io::Result<EntryMetadata>;
    /// The bytes of the regular file `file`, mapped or read, read-only and without changing
    /// its access time where the host allows. An error for anything that is not a regular
    /// file: reading a FIFO or a device could block forever. Callers ask only for what
    /// [`Volume::list`] or [`Volume::metadata`] reported as a regular file, so an
    /// implementation need not look at the path again before it opens it; it must still refuse
    /// what the open finds to be something else.
    fn open(&self, file: &[OsString]) -> io::Result<Evidence>;
    /// The target of the link `link`, as stored: the resolver takes a relative one from the
    /// link's folder (`\` and `/` both separate), a rooted one (`/x`, or `\x`, `C:\x` on
    /// Windows) from the volume root, or from [`Volume::host_root`] when it lies under it, and
    /// does not follow one that names another volume (a volume GUID, UNC or device prefix) or
    /// climbs above the root. An implementation that reads reparse data gives targets in that
    /// form (not the NT form `\??\C:\x`, which is not rooted on a Unix host).
    fn read_link(&self, link: &[OsString]) -> io::Result<PathBuf>;
    /// The 8.3 short names the file system recorded for `entries` (the listing of `dir`), one
    /// per entry in the same order, `None` for an entry that has none; or `None` when this
    /// volume cannot tell, and then they are derived by Windows' rules and used only when
    /// unique. Never names made up (Wine, Samba's mangled names): a wrong short name is worse
    /// than none. Asked at most once per folder, and only when a queue name looks like one.
    fn short_names(&self, dir: &[OsString], entries: &[DirEntry]) -> Option<Vec<Option<String>>>;
    /// How a path of this volume is shown in messages and reports (a host path for a
    /// directory volume). Part of the output: the same path always gives the same text.
    fn display(&self, path: &[OsString]) -> String;
    /// Where the volume sits on the host, if it is a host directory: absolute link targets
    /// under it are taken as pointing into the volume, and two volumes with one canonical
    /// host root are one volume. `None` for a volume that is not a host directory.
    fn host_root(&self) -> Option<&Path>;
    /// Where the volume is in an image (partition, file system, state), if it is read from
    /// one.
    fn origin(&self) -> Option<&ImageOrigin> {
        None
    }
    /// How this volume compares names: an NTFS image's own `$UpCase`, else Unicode simple
    /// upper case.
    fn folding(&self) -> &Folding {
        &key::UNICODE
    }
    /// The image this volume is read from (its disk, and its container if any), shared by
    /// the image's volumes; `None` for a host directory.
    fn image(&self) -> Option<&std::sync::Arc<crate::evidence::image::container::Disk>> {
        None
    }
    /// The file's number on its file system, when this volume reads the file system itself
    /// (an NTFS image: the MFT record number); `None` for a host directory.
    fn file_id(&self, _path: &[OsString]) -> Option<u64> {
        None
    }
}
