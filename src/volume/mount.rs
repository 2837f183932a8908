//! Mounting: the volumes the user named (ROOT, `--drive`, `--device`), the letters
//! MountedDevices gives volume GUIDs, and the SYSTEM hive found on the system drive. One call
//! for every command that reads an image: [`mount`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use super::{fold, DirVolume, EntryKind, PathKey, Volumes};
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
    if let Some(root) = &spec.root {
        volumes.add_drive(spec.system_drive, directory(root, "ROOT".into())?);
    }
    for (drive, dir) in &spec.drives {
        volumes.add_drive(*drive, directory(dir, format!("the volume for {drive}:"))?);
    }
    for (number, dir) in &spec.devices {
        let what = format!("the volume for \\Device\\HarddiskVolume{number}");
        volumes.add_device(*number, directory(dir, what)?);
    }
    Ok(volumes)
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
/// the volume stage (the same containment rules as every queue path). When it is not a usable
/// file, the error says what is there instead.
pub fn find_system_hive(
    volumes: &Volumes,
    drive: char,
    root: &Path,
) -> Result<PathBuf, MountError> {
    let root_shown = root.display().to_string();
    let mount = volumes
        .mount_index(drive)
        .ok_or_else(|| MountError::HiveNotFound {
            root: root_shown.clone(),
            missing: "the system drive".to_string(),
        })?;
    let path = ["Windows", "System32", "config", "SYSTEM"];
    let mut host = root.to_path_buf();
    for depth in 1..=path.len() {
        let key = PathKey::new(mount, path[..depth].iter().map(|c| fold(c)));
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
        host = root.to_path_buf();
        host.extend(entry.names());
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
                EntryKind::Other => crate::evidence::kind_of(&host),
            };
            return Err(MountError::HiveUnusable {
                root: root_shown,
                why: format!("{} is {what}", host.display()),
            });
        }
    }
    Ok(host)
}
