//! Images as volumes: a disk image or device (its partition table read), or a volume image,
//! each NTFS volume in it behind the [`super::Volume`] interface.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::NtfsVolume;
use crate::evidence::image::container::open_disk;
use crate::evidence::image::ntfs::Ntfs;
use crate::evidence::image::partition::{
    format_guid, read_partition_table, FileSystem, PartitionKind, Scheme,
};
use crate::evidence::image::{ReadAt, Slice};
use crate::hive::VolumeIdentity;

/// Where a volume read from an image is: for the report's volumes section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageOrigin {
    pub image: String,
    /// The container the image is in (`vhdx (dynamic)`, `ewf (E01)`), if it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The partition's number (1-based, as Linux numbers them); none for a volume image.
    pub partition: Option<u32>,
    pub offset: u64,
    pub size: u64,
    /// How Windows' mount manager identifies it (MBR disk signature and offset, or GPT
    /// partition GUID), as MountedDevices records volumes.
    pub identity: Option<VolumeIdentity>,
    pub file_system: String,
    /// The NTFS volume serial number, as `dir` shows it (`XXXX-XXXX`) and in full.
    pub serial: String,
    pub label: String,
    /// The volume's dirty flag is set.
    pub dirty: bool,
    /// `$LogFile` holds changes not checkpointed.
    pub log_unclean: bool,
    /// `hiberfil.sys` holds a hibernation image (hibernated, or shut down with Fast Startup).
    pub hibernated: bool,
    /// Why names are not compared through the volume's own `$UpCase` (it cannot be read, or
    /// is not a table), Unicode's simple upper case standing in; none when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upcase_problem: Option<String>,
}

impl ImageOrigin {
    /// "metadata may be stale" reasons, for findings.
    pub fn staleness(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if self.dirty {
            why.push("its dirty flag is set");
        }
        if self.hibernated {
            why.push("hiberfil.sys holds a hibernation image (hibernated or Fast Startup)");
        }
        if self.log_unclean {
            why.push("$LogFile holds changes that were not checkpointed");
        }
        why
    }
}

/// A partition that holds no NTFS volume this can read, and why.
#[derive(Clone, Debug)]
pub struct SkippedPartition {
    pub number: Option<u32>,
    pub why: String,
}

/// What an image holds.
pub struct OpenedImage {
    /// Each NTFS volume, its [`ImageOrigin`] set.
    pub volumes: Vec<NtfsVolume>,
    pub skipped: Vec<SkippedPartition>,
    /// Problems with the partition table (a damaged primary GPT, say).
    pub notes: Vec<String>,
}

/// Whether `path` is an image (a regular file or a block device) rather than a directory.
pub fn is_image(path: &Path) -> bool {
    // A Windows device (`\\.\PhysicalDrive1`, `\\.\D:`) may not answer a metadata query.
    let device = cfg!(windows) && path.to_string_lossy().starts_with("\\\\.\\");
    device || std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
}

/// `IMAGE:N` as the image and its partition N (a path that is itself an image stays whole).
pub fn split_partition(path: &Path) -> (std::path::PathBuf, Option<u32>) {
    let text = path.to_string_lossy();
    match text.rsplit_once(':') {
        Some((image, n)) if !is_image(path) && n.parse::<u32>().is_ok() => {
            (Path::new(image).to_path_buf(), n.parse::<u32>().ok())
        }
        _ => (path.to_path_buf(), None),
    }
}

/// Opens `path` as a disk (partition table) or volume image and every NTFS volume in it.
pub fn open_image(path: &Path) -> Result<OpenedImage, String> {
    let image = Arc::new(open_disk(path).map_err(|e| e.to_string())?);
    let disk = Arc::clone(&image.reader);
    let container = image.container.as_ref().map(|c| c.format.clone());
    let shown = path.display().to_string();
    let table = read_partition_table(&*disk).map_err(|e| {
        format!(
            "{}: the partition table cannot be read: {e}",
            path.display()
        )
    })?;
    let mut opened = OpenedImage {
        volumes: Vec::new(),
        skipped: Vec::new(),
        notes: table.notes.clone(),
    };
    let spans: Vec<(Option<u32>, u64, u64, Option<VolumeIdentity>)> = match table.scheme {
        Scheme::None => vec![(None, 0, disk.len(), None)],
        scheme => table
            .partitions
            .iter()
            .filter(|p| !p.is_extended() && p.size > 0)
            .map(|p| {
                let identity = match (&p.kind, scheme) {
                    (PartitionKind::Gpt { unique_guid, .. }, _) => Some(VolumeIdentity::Gpt {
                        partition_guid: format_guid(unique_guid),
                    }),
                    (PartitionKind::Mbr { .. }, Scheme::Mbr { disk_signature }) => {
                        Some(VolumeIdentity::Mbr {
                            disk_signature: format!("{disk_signature:08X}"),
                            offset: p.offset,
                        })
                    }
                    _ => None,
                };
                (Some(p.number), p.offset, p.size, identity)
            })
            .collect(),
    };
    for (number, offset, size, identity) in spans {
        let slice: Arc<dyn ReadAt> = Arc::new(Slice::new(Arc::clone(&disk), offset, size));
        let mut boot = [0u8; 512];
        let file_system = match slice.read_exact_at(&mut boot, 0) {
            Ok(()) => FileSystem::identify(&boot),
            Err(_) => FileSystem::Other,
        };
        let skip = |why: String| SkippedPartition { number, why };
        match file_system {
            FileSystem::Ntfs => {}
            FileSystem::BitLocker => {
                opened.skipped.push(skip("a BitLocker-encrypted volume (signature -FVE-FS-): unlock it (dislocker, or Windows) and pass the unlocked volume".into()));
                continue;
            }
            other => {
                opened.skipped.push(skip(format!("not NTFS ({other:?})")));
                continue;
            }
        }
        let ntfs = match Ntfs::open(slice) {
            Ok(ntfs) => Arc::new(ntfs),
            Err(err) => {
                opened.skipped.push(skip(err.to_string()));
                continue;
            }
        };
        let label = match number {
            Some(n) => format!("{shown}:p{n}:"),
            None => format!("{shown}:"),
        };
        let info = ntfs.info.clone();
        let mut volume = NtfsVolume::new(ntfs, label, Arc::clone(&image));
        let hibernated = volume.hibernated();
        let upcase_problem = volume.upcase_problem().map(str::to_string);
        volume.set_origin(ImageOrigin {
            image: shown.clone(),
            container: container.clone(),
            partition: number,
            offset,
            size,
            identity,
            file_system: format!("NTFS {}.{}", info.version.0, info.version.1),
            serial: format!(
                "{:04X}-{:04X} ({:016X})",
                (info.serial >> 16) & 0xffff,
                info.serial & 0xffff,
                info.serial
            ),
            label: info.label.clone(),
            dirty: info.dirty,
            log_unclean: info.log_unclean,
            hibernated,
            upcase_problem,
        });
        opened.volumes.push(volume);
    }
    Ok(opened)
}

/// Whether `volume` holds `Windows\System32\config\SYSTEM` (any case): the Windows volume.
pub fn holds_system_hive(volume: &dyn super::Volume) -> bool {
    let mut dir: Vec<std::ffi::OsString> = Vec::new();
    for (i, wanted) in ["Windows", "System32", "config", "SYSTEM"]
        .iter()
        .enumerate()
    {
        let Ok(entries) = volume.list(&dir) else {
            return false;
        };
        let want_kind = if i == 3 {
            super::EntryKind::File
        } else {
            super::EntryKind::Directory
        };
        let Some(entry) = entries
            .into_iter()
            .find(|e| e.kind == want_kind && e.name.to_string_lossy().eq_ignore_ascii_case(wanted))
        else {
            return false;
        };
        dir.push(entry.name);
    }
    true
}
