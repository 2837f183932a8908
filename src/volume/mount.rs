//! Mounting: the volumes the user named (ROOT, `--drive`, `--device`), the letters
//! MountedDevices gives volume GUIDs, and the SYSTEM hive found on the system drive. One call
//! for every command that reads an image: [`mount`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use super::{open_image, DirVolume, EntryKind, OpenedImage, PathKey, Volume, Volumes};
use crate::hive::MountedDevice;

/// What to mount: the host directories the user named, and the letter of the system drive.
#[derive(Clone, Debug, Default)]
pub struct MountSpec {
    /// The mounted Windows system volume (ROOT).
    pub root: Option<PathBuf>,
    pub drives: Vec<(char, PathBuf)>,
    pub devices: Vec<(u32, PathBuf)>,
    /// The letter Windows gave ROOT.
    pub system_drive: char,
    /// When ROOT is a disk image with several Windows volumes: which partition.
    pub partition: Option<u32>,
}

/// Why the volumes named cannot be used (exit status 2).
#[derive(Debug, Error, Diagnostic)]
pub enum MountError {
    #[error("{what} {path} does not exist or is not a directory")]
    #[diagnostic(
        code(nextboot::volume::missing),
        help(
            "mount the image read-only and pass the directory where its system volume is mounted"
        )
    )]
    NotADirectory { what: String, path: String },

    #[error("no SYSTEM hive under {root}: there is no {missing} (looked for Windows\\System32\\config\\SYSTEM, any case)")]
    #[diagnostic(
        code(nextboot::volume::hive_not_found),
        help("is {root} the system volume? Otherwise pass the hive with --hive FILE")
    )]
    HiveNotFound { root: String, missing: String },

    #[error("the SYSTEM hive under {root} cannot be used: {why}")]
    #[diagnostic(
        code(nextboot::volume::hive_unusable),
        help("pass the hive with --hive FILE if it is elsewhere, or fix what is named here")
    )]
    HiveUnusable { root: String, why: String },

    #[error("{letter}: is given twice: ROOT is the system drive {letter}:, and --drive {letter}:={dir} names another volume for it")]
    #[diagnostic(
        code(nextboot::volume::drive_twice),
        help("give the system volume once: as ROOT, or with --system-drive to give ROOT another letter")
    )]
    DriveTwice { letter: char, dir: String },

    #[error("{what} {path} cannot be read as an image: {why}")]
    #[diagnostic(
        code(nextboot::volume::image),
        help("this reads raw disk and volume images and NTFS; otherwise mount the image read-only and pass the directory (docs/images.md)")
    )]
    Image {
        what: String,
        path: String,
        why: String,
    },

    #[error("{path}: {why}")]
    #[diagnostic(code(nextboot::volume::partition), help("{help}"))]
    Partition {
        path: String,
        why: String,
        help: String,
    },
}

/// Mounts every volume the user named: ROOT as the system drive, each `--drive` and
/// `--device`. Each must be a directory; ROOT and a `--drive` for the same letter is refused.
pub fn mount(spec: &MountSpec) -> Result<Volumes, MountError> {
    let system = spec.system_drive.to_ascii_uppercase();
    if let (Some(_), Some((letter, dir))) = (
        &spec.root,
        spec.drives
            .iter()
            .find(|(d, _)| d.to_ascii_uppercase() == system),
    ) {
        return Err(MountError::DriveTwice {
            letter: letter.to_ascii_uppercase(),
            dir: dir.display().to_string(),
        });
    }
    let mut volumes = Volumes::new(spec.system_drive);
    if let Some(root) = spec.root.as_deref().filter(|root| super::is_image(root)) {
        let (system, others) = system_volume(root, spec.partition)?;
        volumes.add_drive(spec.system_drive, system);
        for other in others {
            volumes.add_unlettered(other);
        }
    } else if let Some(root) = &spec.root {
        volumes.add_drive(spec.system_drive, directory(root, "ROOT".into())?);
    }
    for (drive, dir) in &spec.drives {
        volumes.add_drive(*drive, volume_at(dir, format!("the volume for {drive}:"))?);
    }
    for (number, dir) in &spec.devices {
        let what = format!("the volume for \\Device\\HarddiskVolume{number}");
        volumes.add_device(*number, volume_at(dir, what)?);
    }
    Ok(volumes)
}

/// The Windows volume of an image and the image's other volumes.
type SystemAndOthers = (Box<dyn Volume>, Vec<Box<dyn Volume>>);

/// The Windows volume of the image ROOT (the one holding `Windows\System32\config\SYSTEM`,
/// or partition `partition`), and its other NTFS volumes.
fn system_volume(root: &Path, partition: Option<u32>) -> Result<SystemAndOthers, MountError> {
    let path = root.display().to_string();
    let opened = open_image(root).map_err(|why| MountError::Image {
        what: "ROOT".into(),
        path: path.clone(),
        why,
    })?;
    let found = |opened: &OpenedImage| {
        opened
            .volumes
            .iter()
            .map(|v| {
                v.origin()
                    .and_then(|o| o.partition)
                    .map_or("the volume".to_string(), |n| format!("partition {n}"))
            })
            .chain(opened.skipped.iter().map(|s| {
                format!(
                    "{}: {}",
                    s.number
                        .map_or("the volume".to_string(), |n| format!("partition {n}")),
                    s.why
                )
            }))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let index = match partition {
        Some(n) => opened
            .volumes
            .iter()
            .position(|v| v.origin().and_then(|o| o.partition) == Some(n))
            .ok_or_else(|| MountError::Partition {
                path: path.clone(),
                why: format!("there is no NTFS volume in partition {n}"),
                help: format!("the image holds: {}", found(&opened)),
            })?,
        None => {
            let windows: Vec<usize> = (0..opened.volumes.len())
                .filter(|&i| super::image::holds_system_hive(&opened.volumes[i]))
                .collect();
            match windows.as_slice() {
                [one] => *one,
                [] => {
                    return Err(MountError::Partition {
                        path,
                        why: "no volume of the image holds Windows\\System32\\config\\SYSTEM"
                            .into(),
                        help: format!(
                        "the image holds: {}. Pass the hive with --hive FILE if it is elsewhere",
                        found(&opened)
                    ),
                    })
                }
                several => {
                    let numbers: Vec<String> = several
                        .iter()
                        .filter_map(|&i| opened.volumes[i].origin().and_then(|o| o.partition))
                        .map(|n| n.to_string())
                        .collect();
                    return Err(MountError::Partition {
                        path,
                        why: format!(
                            "partitions {} each hold a Windows installation",
                            numbers.join(", ")
                        ),
                        help: "choose one with --partition N".into(),
                    });
                }
            }
        }
    };
    let mut volumes = opened.volumes;
    let system = volumes.remove(index);
    Ok((
        Box::new(system),
        volumes
            .into_iter()
            .map(|v| Box::new(v) as Box<dyn Volume>)
            .collect(),
    ))
}

/// A volume named with `--drive` or `--device`: a directory, or an image (`IMAGE` with one
/// NTFS volume, or `IMAGE:N` for its partition N).
fn volume_at(path: &Path, what: String) -> Result<Box<dyn Volume>, MountError> {
    if path.is_dir() {
        return Ok(directory(path, what)?);
    }
    let (image, partition) = super::split_partition(path);
    if !super::is_image(&image) {
        return Err(MountError::NotADirectory {
            what,
            path: path.display().to_string(),
        });
    }
    let shown = image.display().to_string();
    let opened = open_image(&image).map_err(|why| MountError::Image {
        what: what.clone(),
        path: shown.clone(),
        why,
    })?;
    let mut volumes = opened.volumes;
    let index = match partition {
        Some(n) => volumes
            .iter()
            .position(|v| v.origin().and_then(|o| o.partition) == Some(n)),
        None if volumes.len() == 1 => Some(0),
        None => None,
    };
    match index {
        Some(i) => Ok(Box::new(volumes.remove(i))),
        None => Err(MountError::Partition {
            path: shown,
            why: format!(
                "{} NTFS volumes are in the image, and {what} must be one of them",
                volumes.len()
            ),
            help: "name the partition as IMAGE:N".into(),
        }),
    }
}

/// A volume held in a host directory, which must exist.
fn directory(dir: &Path, what: String) -> Result<Box<DirVolume>, MountError> {
    if !dir.is_dir() {
        return Err(MountError::NotADirectory {
            what,
            path: dir.display().to_string(),
        });
    }
    Ok(Box::new(DirVolume::new(dir)))
}

/// Volume GUID -> drive letter: the GUID and the letter name the same volume in MountedDevices.
pub fn volume_letters(devices: &[MountedDevice]) -> HashMap<String, char> {
    let mut map = HashMap::new();
    for device in devices {
        let Some(guid) = device.volume_guid() else {
            continue;
        };
        if let Some(letter) = devices
            .iter()
            .find(|d| d.volume == device.volume && d.drive_letter().is_some())
            .and_then(MountedDevice::drive_letter)
        {
            map.insert(guid, letter);
        }
    }
    map
}

/// `ROOT/Windows/System32/config/SYSTEM`, each component matched case-insensitively through
/// the volume stage (the same containment rules as every queue path): the volume's index and
/// the on-disk names of the hive. When it is not a usable file, the error says what is there
/// instead.
pub fn find_system_hive(
    volumes: &Volumes,
    drive: char,
    root: &Path,
) -> Result<(usize, Vec<OsString>), MountError> {
    let root_shown = root.display().to_string();
    let mount = volumes
        .mount_index(drive)
        .ok_or_else(|| MountError::HiveNotFound {
            root: root_shown.clone(),
            missing: "the system drive".to_string(),
        })?;
    let path = ["Windows", "System32", "config", "SYSTEM"];
    let mut names = Vec::new();
    for depth in 1..=path.len() {
        let key = PathKey::new(mount, path[..depth].iter().map(|c| volumes.fold(mount, c)));
        let entry = match volumes.stat(&key) {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                return Err(MountError::HiveNotFound {
                    root: root_shown,
                    missing: path[..depth].join("\\"),
                })
            }
            Err(unresolved) => {
                return Err(MountError::HiveUnusable {
                    root: root_shown,
                    why: unresolved.to_string(),
                })
            }
        };
        names = entry.names();
        let shown = volumes.display(mount, &names);
        let wanted = if depth == path.len() {
            EntryKind::File
        } else {
            EntryKind::Directory
        };
        if entry.kind != wanted {
            let what = match entry.kind {
                EntryKind::Link => "a symbolic link (links are not followed to the hive: pass the file itself with --hive FILE)".to_string(),
                EntryKind::Directory => "a directory".to_string(),
                EntryKind::File => "a file".to_string(),
                EntryKind::Other => crate::evidence::kind_of(Path::new(&shown)),
            };
            return Err(MountError::HiveUnusable {
                root: root_shown,
                why: format!("{shown} is {what}"),
            });
        }
    }
    Ok((mount, names))
}
