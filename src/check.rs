//! `check`: the whole pipeline, from the inputs the user named to a [`Report`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use crate::boot::{self, ReplayOptions};
use crate::hive::log::{LogFormat, LogUse};
use crate::hive::{
    self, BaseBlock, ControlSetChoice, HiveError, LoadedHive, LogChoice, MountedDevice, RawValue,
    Select, SystemHive,
};
use crate::queue;
use crate::queue::{Operation, Queue};
use crate::report::{
    time, ControlSetSection, HiveSection, InputFile, LogReport, MountedDeviceSection, Operations,
    OtherControlSet, Provenance, Report, Summary, Tool, ValueSize, VolumeSection,
};
use crate::volume::{fold, DirVolume, EntryKind, PathKey, Problem, Volumes};
use crate::Finding;

/// What to hash (`--hash`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashMode {
    None,
    /// The hive only.
    #[default]
    Hive,
    /// The hive and every file examined.
    All,
}

/// The inputs of one `check`.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The mounted Windows system volume.
    pub root: Option<PathBuf>,
    /// The SYSTEM hive; default `ROOT/Windows/System32/config/SYSTEM`, found case-insensitively.
    pub hive: Option<PathBuf>,
    /// Further volumes: drive letter and directory.
    pub drives: Vec<(char, PathBuf)>,
    /// Volumes by `\Device\HarddiskVolumeN` number and directory.
    pub devices: Vec<(u32, PathBuf)>,
    /// The letter Windows gave `root`.
    pub system_drive: char,
    pub control_set: ControlSetChoice,
    pub hash: HashMode,
    /// Transaction logs for a dirty hive.
    pub logs: LogChoice,
    /// The command line, for the report's provenance.
    pub command_line: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            root: None,
            hive: None,
            drives: Vec::new(),
            devices: Vec::new(),
            system_drive: 'C',
            control_set: ControlSetChoice::Next,
            hash: HashMode::Hive,
            logs: LogChoice::Beside,
            command_line: Vec::new(),
        }
    }
}

impl CheckOptions {
    /// What an output file must stay out of: every volume given, the hive's folder, the hive
    /// and the logs named.
    pub fn evidence(&self) -> crate::output::Evidence {
        let mut evidence = crate::output::Evidence::default();
        if let Some(root) = &self.root {
            evidence.folder("ROOT", root);
        }
        for (letter, dir) in &self.drives {
            evidence.folder(format!("the volume for {letter}:"), dir);
        }
        for (number, dir) in &self.devices {
            evidence.folder(
                format!("the volume for \\Device\\HarddiskVolume{number}"),
                dir,
            );
        }
        if let Some(hive) = self.hive.as_deref().filter(|h| !hive::is_stdin(h)) {
            evidence.file(hive);
            if let Some(folder) = hive.parent().filter(|p| !p.as_os_str().is_empty()) {
                evidence.folder("the hive's folder", folder);
            } else {
                evidence.folder("the hive's folder", Path::new("."));
            }
        }
        if let LogChoice::Files(logs) = &self.logs {
            for log in logs {
                evidence.file(log);
            }
        }
        evidence
    }
}

/// Why a check could not run at all (exit status 2).
#[derive(Debug, Error, Diagnostic)]
pub enum CheckError {
    #[error("nothing to examine")]
    #[diagnostic(
        code(nextboot::usage),
        help(
            "give the mounted Windows volume (nextboot check /mnt/win) or a hive (--hive SYSTEM)"
        )
    )]
    NoInput,

    #[error("{what} {path} does not exist or is not a directory")]
    #[diagnostic(
        code(nextboot::volume_missing),
        help(
            "mount the image read-only and pass the directory where its system volume is mounted"
        )
    )]
    NotADirectory { what: String, path: String },

    #[error("no SYSTEM hive under {root}: there is no {missing} (looked for Windows\\System32\\config\\SYSTEM, any case)")]
    #[diagnostic(
        code(nextboot::hive_not_found),
        help("is {root} the system volume? Otherwise pass the hive with --hive FILE")
    )]
    HiveNotFound { root: String, missing: String },

    #[error("the SYSTEM hive under {root} cannot be used: {why}")]
    #[diagnostic(
        code(nextboot::hive_unusable),
        help("pass the hive with --hive FILE if it is elsewhere, or fix what is named here")
    )]
    HiveUnusable { root: String, why: String },

    #[error("{letter}: is given twice: ROOT is the system drive {letter}:, and --drive {letter}:={dir} names another volume for it")]
    #[diagnostic(
        code(nextboot::usage),
        help("give the system volume once: as ROOT, or with --system-drive to give ROOT another letter")
    )]
    DriveTwice { letter: char, dir: String },

    #[error("cannot use the hive {path}")]
    #[diagnostic(code(nextboot::hive_invalid))]
    Hive {
        path: String,
        #[source]
        #[diagnostic_source]
        source: HiveError,
    },
}

/// Runs the pipeline. Problems with single files end up in the report; only inputs that
/// cannot be examined at all are errors.
pub fn check(options: &CheckOptions) -> Result<Report, CheckError> {
    let mut inspection = Inspection::open(options)?;
    // The raw values are not needed for a report: free them before the replay.
    inspection.pending = Vec::new();
    let queue = std::mem::take(&mut inspection.queue);
    Ok(inspection.report(queue.operations, options))
}

/// The inputs of a check, opened and decoded: everything before the replay.
pub struct Inspection {
    pub volumes: Volumes,
    /// The control set whose queue is replayed.
    pub used: u32,
    /// Its pending values as stored.
    pub pending: Vec<RawValue>,
    /// Its decoded queue.
    pub queue: Queue,
    hive: HiveSection,
    provenance: Provenance,
    select: Select,
    present: Vec<u32>,
    mounted_devices: Vec<MountedDevice>,
    windows_directory: Option<String>,
    other_control_sets: Vec<OtherControlSet>,
    findings: Vec<Finding>,
}

impl Inspection {
    /// Opens the hive (with its logs) and the volumes, and decodes the queue.
    pub fn open(options: &CheckOptions) -> Result<Inspection, CheckError> {
        let started = time::now();
        let mut volumes = mount_volumes(options)?;
        let hive_path = match (&options.hive, &options.root) {
            (Some(hive), _) => hive.clone(),
            (None, Some(root)) => find_hive(&volumes, options.system_drive, root)?,
            (None, None) => return Err(CheckError::NoInput),
        };
        let invalid = |source| CheckError::Hive {
            path: hive_path.display().to_string(),
            source,
        };
        let loaded = hive::load(&hive_path, &options.logs).map_err(invalid)?;
        let primary = BaseBlock::parse(&loaded.primary).map_err(invalid)?;
        let mut system = SystemHive::read(loaded.bytes()).map_err(invalid)?;
        let used = system
            .choose_control_set(options.control_set)
            .map_err(invalid)?;

        let mut findings = loaded.findings.clone();
        if let Some(recovery) = loaded.recovery.as_ref().filter(|_| loaded.is_recovered()) {
            findings.push(Finding::info(
                "hive-recovered",
                format!(
                    "the hive was dirty (sequence {}/{}); its transaction logs were applied as Windows would at the next boot (sequence now {}/{})",
                    recovery.sequence_before.0,
                    recovery.sequence_before.1,
                    recovery.sequence_after.0,
                    recovery.sequence_after.1
                ),
            ));
        }
        findings.extend(system.findings.iter().cloned());
        // Everything the report needs from the files is taken now; the hive's bytes (mapped,
        // or recovered in memory) are released before the replay.
        let hive = hive_section(&loaded, &primary, options.hash);
        let mut inputs = vec![InputFile {
            role: "hive",
            path: hive.path.clone(),
            size: hive.size,
            sha256: hive.sha256.clone(),
        }];
        inputs.extend(loaded.log_uses().iter().map(|log| InputFile {
            role: "log",
            path: log.name.clone(),
            size: std::fs::metadata(&log.name).map_or(0, |m| m.len()),
            sha256: (options.hash != HashMode::None).then(|| log.sha256.clone()),
        }));
        drop(loaded);
        volumes.set_volume_guids(volume_letters(&system.mounted_devices));
        let windows_directory = volumes.find_windows_dir();
        let other_control_sets = other_control_sets(&system, used);
        let present = system.control_sets.iter().map(|s| s.control_set).collect();
        let Some(session) = system
            .control_sets
            .iter_mut()
            .find(|s| s.control_set == used)
        else {
            unreachable!("choose_control_set returns a present set");
        };
        if !session.key_found {
            findings.push(Finding::warning(
                "session-manager-missing",
                format!("ControlSet{used:03} has no Control\\Session Manager key"),
            ));
        }
        let provenance = Provenance {
            tool: Tool::default(),
            command_line: options.command_line.clone(),
            started,
            inputs,
            hive_sequence: [hive.primary_sequence, hive.secondary_sequence],
            hive_sequence_after_recovery: hive.sequence_after_recovery,
            logs_applied: hive.logs_applied.iter().map(|l| l.path.clone()).collect(),
            session_manager_last_written: session.last_written.and_then(time::from_filetime),
        };
        let pending = std::mem::take(&mut session.pending);
        let queue = queue::decode_registry(&pending);
        findings.extend(queue.findings.iter().cloned());
        Ok(Inspection {
            volumes,
            used,
            pending,
            queue,
            hive,
            provenance,
            select: system.select.unwrap_or_default(),
            present,
            mounted_devices: system.mounted_devices,
            windows_directory,
            other_control_sets,
            findings,
        })
    }

    /// Replays `operations` (the decoded queue, or a changed one) and builds the report.
    pub fn report(self, operations: Vec<Operation>, options: &CheckOptions) -> Report {
        let volumes = self.volumes;
        let replay = boot::replay(
            &operations,
            &volumes,
            ReplayOptions {
                hash_files: options.hash == HashMode::All,
            },
        );
        let operations = Operations::new(operations, replay.outcomes);
        let mut findings = self.findings;
        let not_examined = volume_problems(&volumes, &mut findings);
        Report {
            tool: Tool::default(),
            provenance: self.provenance,
            hive: self.hive,
            control_set: ControlSetSection {
                used: self.used,
                chosen_by: match options.control_set {
                    ControlSetChoice::Next => "next",
                    ControlSetChoice::Current => "current",
                    ControlSetChoice::Number(_) => "number",
                },
                current: self.select.current,
                default: self.select.default,
                last_known_good: self.select.last_known_good,
                failed: self.select.failed,
                present: self.present,
            },
            volumes: volume_sections(&volumes, &self.mounted_devices),
            windows_directory: self.windows_directory,
            mounted_devices: self
                .mounted_devices
                .iter()
                .map(|device| MountedDeviceSection {
                    name: device.name.clone(),
                    volume: device.volume.clone(),
                    mapped_to: device
                        .drive_letter()
                        .and_then(|letter| volumes.drives().find(|(d, _)| *d == letter))
                        .map(|(_, path)| path),
                })
                .collect(),
            summary: Summary::of(operations.outcomes()),
            operations,
            files: replay.changes,
            other_control_sets: self.other_control_sets,
            findings,
            not_examined,
        }
    }
}

/// The queues of the control sets not replayed, and whether they equal the one used.
fn other_control_sets(system: &SystemHive, used: u32) -> Vec<OtherControlSet> {
    let used_values = system.control_set(used).map(|s| &s.pending);
    system
        .control_sets
        .iter()
        .filter(|set| set.control_set != used)
        .map(|set| OtherControlSet {
            control_set: set.control_set,
            operations: queue::decode_registry(&set.pending).operations.len(),
            same_as_used: set.damage.is_none() && Some(&set.pending) == used_values,
            damage: set.damage.clone(),
            values: set
                .pending
                .iter()
                .map(|v| ValueSize {
                    name: v.name.clone(),
                    bytes: v.bytes.len(),
                })
                .collect(),
        })
        .collect()
}

fn hive_section(loaded: &LoadedHive, primary: &BaseBlock, hash: HashMode) -> HiveSection {
    let hashing = hash != HashMode::None;
    let (applied, not_applied): (Vec<&LogUse>, Vec<&LogUse>) =
        loaded.log_uses().iter().partition(|log| log.applied);
    let log_report = |log: &&LogUse| LogReport {
        path: log.name.clone(),
        sha256: log.sha256.clone(),
        format: log.format.map(|f| match f {
            LogFormat::New => "new",
            LogFormat::Old => "old",
        }),
        entries_applied: log.entries_applied,
        pages_applied: log.pages_applied,
        entries_skipped: log.entries_skipped,
        notes: log.notes.clone(),
    };
    HiveSection {
        path: loaded.path.display().to_string(),
        size: loaded.primary.len() as u64,
        sha256: hashing.then(|| loaded.primary.sha256()),
        dirty: primary.is_dirty(),
        recovered: loaded.is_recovered(),
        incomplete: loaded.is_incomplete(primary.is_dirty()),
        logs_applied: applied.iter().map(log_report).collect(),
        logs_not_applied: not_applied.iter().map(log_report).collect(),
        primary_sequence: primary.primary_sequence,
        secondary_sequence: primary.secondary_sequence,
        sequence_after_recovery: loaded
            .recovered
            .as_ref()
            .and(loaded.recovery.as_ref())
            .map(|r| [r.sequence_after.0, r.sequence_after.1]),
        recovered_sha256: loaded
            .recovered
            .as_ref()
            .filter(|_| hashing)
            .map(|bytes| bytes.sha256()),
        checksum_valid: primary.checksum_valid(),
        format_version: format!("{}.{}", primary.major_version, primary.minor_version),
    }
}

fn mount_volumes(options: &CheckOptions) -> Result<Volumes, CheckError> {
    let system = options.system_drive.to_ascii_uppercase();
    if let (Some(_), Some((letter, dir))) = (
        &options.root,
        options
            .drives
            .iter()
            .find(|(d, _)| d.to_ascii_uppercase() == system),
    ) {
        return Err(CheckError::DriveTwice {
            letter: letter.to_ascii_uppercase(),
            dir: dir.display().to_string(),
        });
    }
    let mut volumes = Volumes::new(options.system_drive);
    if let Some(root) = &options.root {
        volumes.add_drive(options.system_drive, directory(root, "ROOT".into())?);
    }
    for (drive, dir) in &options.drives {
        volumes.add_drive(*drive, directory(dir, format!("the volume for {drive}:"))?);
    }
    for (number, dir) in &options.devices {
        let what = format!("the volume for \\Device\\HarddiskVolume{number}");
        volumes.add_device(*number, directory(dir, what)?);
    }
    Ok(volumes)
}

/// A volume held in a host directory, which must exist.
fn directory(dir: &Path, what: String) -> Result<Box<DirVolume>, CheckError> {
    if !dir.is_dir() {
        return Err(CheckError::NotADirectory {
            what,
            path: dir.display().to_string(),
        });
    }
    Ok(Box::new(DirVolume::new(dir)))
}

/// What the volumes could not give the replay, as warnings; returns the paths concerned (each
/// one keeps the report from passing a gate).
fn volume_problems(volumes: &Volumes, findings: &mut Vec<Finding>) -> Vec<String> {
    let mut not_examined = Vec::new();
    for problem in volumes.problems() {
        match problem {
            Problem::Unreadable { path, error } => {
                findings.push(Finding::warning(
                    "file-unreadable",
                    format!("cannot read {path}: {error}; the operations that involve it could not be judged, so the image was not fully examined"),
                ));
                not_examined.push(path);
            }
            Problem::Undecodable { folder, name } => {
                findings.push(Finding::warning(
                    "name-undecodable",
                    format!("a queue name could be {name} in {folder}, a name that is not valid Unicode on this host (a copied or Latin-1 tree?), so it cannot be compared as Windows would; the operation is unresolved"),
                ));
                not_examined.push(format!("{folder} ({name})"));
            }
        }
    }
    for (folder, count) in volumes.undecodable_folders() {
        findings.push(Finding::warning(
            "names-undecodable",
            format!(
                "{folder} holds {count} name{} that {} not valid Unicode on this host: Windows names are UTF-16, so the tree was probably copied through another encoding; queue names that could be them are unresolved",
                if count == 1 { "" } else { "s" },
                if count == 1 { "is" } else { "are" }
            ),
        ));
    }
    not_examined.sort();
    not_examined.dedup();
    not_examined
}

/// Volume GUID -> drive letter: the GUID and the letter name the same volume in MountedDevices.
fn volume_letters(devices: &[MountedDevice]) -> HashMap<String, char> {
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

fn volume_sections(volumes: &Volumes, devices: &[MountedDevice]) -> Vec<VolumeSection> {
    let mut sections: Vec<VolumeSection> = volumes
        .drives()
        .map(|(drive, path)| VolumeSection {
            name: format!("{drive}:"),
            path,
            mounted_device: devices
                .iter()
                .find(|d| d.drive_letter() == Some(drive))
                .map(|d| d.volume.clone()),
        })
        .collect();
    sections.extend(volumes.devices().map(|(number, path)| VolumeSection {
        name: format!("\\Device\\HarddiskVolume{number}"),
        path,
        mounted_device: None,
    }));
    sections
}

/// `ROOT/Windows/System32/config/SYSTEM`, each component matched case-insensitively through
/// the volume stage (the same containment rules as every queue path). When it is not a usable
/// file, the error says what is there instead.
fn find_hive(volumes: &Volumes, drive: char, root: &Path) -> Result<PathBuf, CheckError> {
    let root_shown = root.display().to_string();
    let unusable = |why: String| CheckError::HiveUnusable {
        root: root_shown.clone(),
        why,
    };
    let not_found = |missing: &str| CheckError::HiveNotFound {
        root: root_shown.clone(),
        missing: missing.to_string(),
    };
    let mount = volumes
        .mount_index(drive)
        .ok_or_else(|| not_found("the system drive"))?;
    let path = ["Windows", "System32", "config", "SYSTEM"];
    for depth in 1..=path.len() {
        let key = PathKey::new(mount, path[..depth].iter().map(|c| fold(c)));
        let entry = match volumes.stat(&key) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Err(not_found(&path[..depth].join("\\"))),
            Err(unresolved) => return Err(unusable(unresolved.to_string())),
        };
        let mut host = root.to_path_buf();
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
            return Err(unusable(format!("{} is {what}", host.display())));
        }
        if depth == path.len() {
            return Ok(host);
        }
    }
    unreachable!("the loop returns at the last component")
}
