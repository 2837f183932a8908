//! Building the report from what each stage gave: the hive as read, the control set chosen,
//! the volumes, the queue and its replay.

use crate::boot::{ActionListSection, Replay};
use crate::finding::Finding;
use crate::hive::log::LogUse;
use crate::hive::{ChosenControlSet, LoadedHive, MountedDevice, Select, ServicingHive, SystemHive};
use crate::queue::{self, Operation};
use crate::volume::{Problem, Volumes};

use super::{
    ControlSetSection, HiveSection, LogReport, MountedDeviceSection, Operations, OtherControlSet,
    Provenance, Report, Summary, Tool, ValueSize, VolumeSection,
};

/// What the stages before the replay give the report.
pub struct ReportParts {
    pub provenance: Provenance,
    pub hive: HiveSection,
    pub chosen: ChosenControlSet,
    pub select: Select,
    /// Every `ControlSetNNN` in the hive.
    pub present: Vec<u32>,
    pub mounted_devices: Vec<MountedDevice>,
    pub windows_directory: Option<String>,
    pub other_control_sets: Vec<OtherControlSet>,
    pub findings: Vec<Finding>,
    pub servicing_hives: Vec<ServicingHive>,
    pub action_lists: Vec<ActionListSection>,
    /// Inputs that exist and could not be read, or not trusted: action lists, an image whose
    /// stored hash does not match its contents.
    pub inputs_not_examined: Vec<String>,
}

impl Report {
    /// The report of a replay of `operations` on `volumes`.
    pub fn build(
        parts: ReportParts,
        operations: Vec<Operation>,
        replay: Replay,
        volumes: &Volumes,
    ) -> Report {
        let operations = Operations::new(operations, replay.outcomes);
        let mut findings = parts.findings;
        let mut not_examined = volume_problems(volumes, &mut findings);
        not_examined.extend(parts.inputs_not_examined);
        not_examined.sort();
        not_examined.dedup();
        let select = parts.select;
        Report {
            tool: Tool::default(),
            provenance: parts.provenance,
            hive: parts.hive,
            control_set: ControlSetSection {
                used: parts.chosen.number,
                chosen_by: parts.chosen.chosen_by,
                current: select.current,
                default: select.default,
                last_known_good: select.last_known_good,
                failed: select.failed,
                present: parts.present,
            },
            volumes: volume_sections(volumes, &parts.mounted_devices),
            windows_directory: parts.windows_directory,
            mounted_devices: mounted_device_sections(volumes, &parts.mounted_devices),
            summary: Summary::of(operations.outcomes()),
            operations,
            files: replay.changes,
            other_control_sets: parts.other_control_sets,
            servicing_hives: parts.servicing_hives,
            action_lists: parts.action_lists,
            findings,
            not_examined,
        }
    }
}

/// Each MountedDevices entry, and the directory its letter is mapped to in this run.
fn mounted_device_sections(
    volumes: &Volumes,
    devices: &[MountedDevice],
) -> Vec<MountedDeviceSection> {
    devices
        .iter()
        .map(|device| MountedDeviceSection {
            name: device.name.clone(),
            volume: device.volume.clone(),
            mapped_to: device
                .drive_letter()
                .and_then(|letter| volumes.drives().find(|(d, _)| *d == letter))
                .map(|(_, path)| path),
        })
        .collect()
}

/// The queues of the control sets not replayed, and whether they equal the one used.
pub fn other_control_sets(system: &SystemHive, used: u32) -> Vec<OtherControlSet> {
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

/// The hive as read: the file, its state, its logs and what they did.
pub fn hive_section(loaded: &LoadedHive, hashing: bool) -> HiveSection {
    let primary = &loaded.base;
    let (applied, not_applied): (Vec<&LogUse>, Vec<&LogUse>) =
        loaded.log_uses().iter().partition(|log| log.applied);
    let log_report = |log: &&LogUse| LogReport {
        path: log.name.clone(),
        sha256: log.sha256.clone(),
        format: log.format,
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
        incomplete: loaded.is_incomplete(),
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

/// What the volumes could not give the replay, as warnings; returns the paths concerned (each
/// one keeps the report from passing a gate).
pub fn volume_problems(volumes: &Volumes, findings: &mut Vec<Finding>) -> Vec<String> {
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

pub fn volume_sections(volumes: &Volumes, devices: &[MountedDevice]) -> Vec<VolumeSection> {
    let mut sections: Vec<VolumeSection> = volumes
        .drives()
        .map(|(drive, path)| VolumeSection {
            name: format!("{drive}:"),
            path,
            mounted_device: devices
                .iter()
                .find(|d| d.drive_letter() == Some(drive))
                .map(|d| d.volume.clone()),
            image: volumes.drive_origin(drive).cloned(),
        })
        .collect();
    sections.extend(volumes.devices().map(|(number, path)| VolumeSection {
        name: format!("\\Device\\HarddiskVolume{number}"),
        path,
        mounted_device: None,
        image: None,
    }));
    sections
}
