//! `check`: the whole pipeline, from the inputs the user named to a [`Report`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use crate::boot::{
    self, find_action_lists, ActionLists, ComponentsValues, Reason, Registrations, Replay,
    ReplayOptions, SoftwareValues, Verdict,
};
use crate::evidence::{Folder, HostFolder};
use crate::finding::Finding;
use crate::hive::{
    self, ControlSetChoice, HiveError, LogChoice, OpenedServicing, RawValue, ServicingHive,
    ServicingRole, SystemHive,
};
use crate::queue::{self, Operation, Queue};
use crate::report::{
    hive_section, other_control_sets, time, InputFile, Provenance, Report, ReportParts, Tool,
};
use crate::volume::{self, MountError, MountSpec, Volumes};

/// What to hash (`--hash`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashMode {
    None,
    /// The hive only.
    #[default]
    Hive,
    /// The hive and every file examined.
    All,
    /// As `All`, and each image given (ROOT, `--drive`, `--device`), whole.
    Image,
}

/// The inputs of one `check`.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The mounted Windows system volume.
    pub root: Option<PathBuf>,
    /// The SYSTEM hive; default `ROOT/Windows/System32/config/SYSTEM`, found case-insensitively.
    pub hive: Option<PathBuf>,
    /// The SOFTWARE hive; default: beside SYSTEM, any case.
    pub software: Option<PathBuf>,
    /// The COMPONENTS hive; default: beside SYSTEM, any case.
    pub components: Option<PathBuf>,
    /// Further volumes: drive letter and directory.
    pub drives: Vec<(char, PathBuf)>,
    /// Volumes by `\Device\HarddiskVolumeN` number and directory.
    pub devices: Vec<(u32, PathBuf)>,
    /// The letter Windows gave `root`.
    pub system_drive: char,
    /// Which partition of a disk image `root` is, when several hold Windows.
    pub partition: Option<u32>,
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
            software: None,
            components: None,
            drives: Vec::new(),
            devices: Vec::new(),
            system_drive: 'C',
            partition: None,
            control_set: ControlSetChoice::Next,
            hash: HashMode::Hive,
            logs: LogChoice::Beside,
            command_line: Vec::new(),
        }
    }
}

impl CheckOptions {
    /// The volumes to mount.
    pub fn mounts(&self) -> MountSpec {
        MountSpec {
            root: self.root.clone(),
            drives: self.drives.clone(),
            devices: self.devices.clone(),
            system_drive: self.system_drive,
            partition: self.partition,
        }
    }

    /// What an output file must stay out of: every volume given, the hive's folder, the hive
    /// and the logs named.
    pub fn evidence(&self) -> crate::output::Evidence {
        let mut evidence = crate::output::Evidence::default();
        if let Some(root) = &self.root {
            if volume::is_image(root) {
                evidence.file(root);
            } else {
                evidence.folder("ROOT", root);
            }
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
        for hive in self.software.iter().chain(&self.components) {
            evidence.file(hive);
            if let Some(folder) = hive.parent().filter(|p| !p.as_os_str().is_empty()) {
                evidence.folder("the folder of a hive named", folder);
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
        code(nextboot::check::no_input),
        help(
            "give the mounted Windows volume (nextboot check /mnt/win) or a hive (--hive SYSTEM)"
        )
    )]
    NoInput,

    #[error(transparent)]
    #[diagnostic(transparent)]
    Mount(#[from] MountError),

    #[error("cannot use the hive {path}")]
    #[diagnostic(code(nextboot::check::hive))]
    Hive {
        path: String,
        #[source]
        #[diagnostic_source]
        source: HiveError,
    },
}

/// Each image the volumes are read from (ROOT, `--drive`, `--device`): its container, and
/// under `--hash image` the SHA-256 of the disk it holds (streamed, with a progress line on
/// standard error when that is a terminal) and the check of the hashes the container stores.
/// A stored hash that does not match is a warning, and the image is not examined (the disk
/// read is not the disk acquired); the second list says so.
fn image_inputs(
    volumes: &Volumes,
    hash: HashMode,
    findings: &mut Vec<Finding>,
) -> (Vec<InputFile>, Vec<String>) {
    let mut inputs = Vec::new();
    let mut not_examined = Vec::new();
    for image in volumes.images() {
        let mut input = InputFile {
            role: "image",
            path: image.path.display().to_string(),
            size: image.reader.len(),
            container: image.container.clone(),
            ..Default::default()
        };
        if hash == HashMode::Image {
            let stored = input
                .container
                .as_ref()
                .map(|c| c.stored_hashes.clone())
                .unwrap_or_default();
            let digests = hash_disk(&image.path, &*image.reader, &stored);
            input.sha256 = digests.sha256;
            input.hash_checks = digests.checks;
            for check in input.hash_checks.iter().filter(|c| !c.matches) {
                let message = format!(
                    "{}: the {} stored in the container is {}, the disk read has {}: the image is not the disk acquired",
                    input.path, check.algorithm, check.stored, check.computed
                );
                findings.push(Finding::warning("image-hash-mismatch", message.clone()));
                not_examined.push(message);
            }
        }
        inputs.push(input);
    }
    (inputs, not_examined)
}

/// What hashing a disk gave: its SHA-256, and each stored hash checked.
struct DiskDigests {
    sha256: Option<String>,
    checks: Vec<crate::report::HashCheck>,
}

fn hash_disk(
    path: &Path,
    disk: &dyn crate::evidence::image::ReadAt,
    stored: &[(String, String)],
) -> DiskDigests {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let text = path.display().to_string();
    let shown = crate::text::escaped(&text);
    let mut last = u64::MAX;
    let algorithms: Vec<&str> = stored.iter().map(|(a, _)| a.as_str()).collect();
    let hashed = crate::evidence::image::hash_image(disk, &algorithms, |done, total| {
        let percent = done * 100 / total.max(1);
        if tty && percent != last {
            last = percent;
            eprint!("\rhashing {shown}: {percent}%");
        }
    });
    if tty {
        eprintln!();
    }
    let Ok(hashed) = hashed else {
        return DiskDigests {
            sha256: None,
            checks: Vec::new(),
        };
    };
    let checks = stored
        .iter()
        .filter_map(|(algorithm, stored)| {
            let computed = hashed
                .others
                .iter()
                .find(|(a, _)| a == algorithm)?
                .1
                .clone();
            Some(crate::report::HashCheck {
                algorithm: algorithm.clone(),
                stored: stored.clone(),
                matches: computed.eq_ignore_ascii_case(stored),
                computed,
            })
        })
        .collect();
    DiskDigests {
        sha256: Some(hashed.sha256),
        checks,
    }
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
    /// The servicing action lists of the next boot, read and gated.
    pub lists: ActionLists,
    parts: ReportParts,
}

impl Inspection {
    /// Opens the volumes and the hive (with its logs), and decodes the queue.
    pub fn open(options: &CheckOptions) -> Result<Inspection, CheckError> {
        let started = time::now();
        let mut volumes = volume::mount(&options.mounts())?;
        // SYSTEM: the file named, or found on ROOT's volume (a directory or an image); its
        // logs, SOFTWARE and COMPONENTS are looked for in its folder.
        let (system_folder, system_name): (Box<dyn Folder + '_>, OsString) =
            match (&options.hive, &options.root) {
                (Some(hive), _) => (
                    Box::new(HostFolder::of(hive)),
                    hive.file_name().unwrap_or_default().to_os_string(),
                ),
                (None, Some(root)) => {
                    let (mount, mut names) =
                        volume::find_system_hive(&volumes, options.system_drive, root)?;
                    let name = names.pop().unwrap_or_default();
                    (Box::new(volumes.folder(mount, names)), name)
                }
                (None, None) => return Err(CheckError::NoInput),
            };
        let hive_path = match &options.hive {
            Some(hive) => hive.clone(),
            None => system_folder.path(&system_name),
        };
        let invalid = |source| CheckError::Hive {
            path: hive_path.display().to_string(),
            source,
        };
        let loaded = match &options.hive {
            Some(hive) => hive::load(hive, &options.logs),
            None => hive::load_in(&*system_folder, &system_name, &options.logs),
        }
        .map_err(invalid)?;
        let mut system = SystemHive::open(&loaded).map_err(invalid)?;
        let chosen = system.choose(options.control_set).map_err(invalid)?;
        let used = chosen.number;

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
        let hive = hive_section(&loaded, options.hash != HashMode::None);
        let mut inputs = vec![InputFile {
            role: "hive",
            path: hive.path.clone(),
            size: hive.size,
            sha256: hive.sha256.clone(),
            ..Default::default()
        }];
        inputs.extend(loaded.log_uses().iter().map(|log| InputFile {
            role: "log",
            path: log.name.clone(),
            size: log.size,
            sha256: (options.hash != HashMode::None).then(|| log.sha256.clone()),
            ..Default::default()
        }));
        let trusted_installer_start = hive::trusted_installer_start(loaded.bytes(), used);
        drop(loaded);
        let hashing = options.hash != HashMode::None;
        // Beside SYSTEM unless named (one listing of its folder for both).
        let beside = if hive::is_stdin(&hive_path)
            || (options.software.is_some() && options.components.is_some())
        {
            [Ok(None), Ok(None)]
        } else {
            hive::servicing_hives_in(&*system_folder)
        };
        let [software_beside, components_beside] = beside;
        let named_folders = [&options.software, &options.components]
            .map(|named| named.as_deref().map(|path| (HostFolder::of(path), path)));
        let open = |role,
                    named: &Option<(HostFolder, &Path)>,
                    beside: Result<Option<OsString>, String>| {
            let found = match named {
                Some((folder, path)) => Ok(Some((
                    folder as &dyn Folder,
                    path.file_name().unwrap_or_default().to_os_string(),
                ))),
                None => beside.map(|name| name.map(|name| (&*system_folder, name))),
            };
            hive::open_servicing(role, found, &options.logs, hashing, options.root.is_some())
        };
        let software = open(ServicingRole::Software, &named_folders[0], software_beside);
        let components = open(
            ServicingRole::Components,
            &named_folders[1],
            components_beside,
        );
        drop(system_folder);
        for opened in [&software, &components] {
            findings.extend(opened.findings.iter().cloned());
            if let Some(path) = &opened.hive.path.as_ref().filter(|_| opened.hive.read) {
                inputs.push(InputFile {
                    role: opened.hive.role.as_str(),
                    path: path.to_string(),
                    size: opened.hive.size.unwrap_or_default(),
                    sha256: opened.hive.sha256.clone(),
                    ..Default::default()
                });
            }
        }
        // The image's further volumes get the letters MountedDevices recorded for them.
        volumes.assign_letters(&system.mounted_devices);
        for origin in volumes.origins() {
            let stale = origin.staleness();
            if !stale.is_empty() {
                let place = origin.partition.map_or(origin.image.clone(), |n| {
                    format!("partition {n} of {}", origin.image)
                });
                findings.push(Finding::warning(
                    "volume-not-clean",
                    format!(
                        "{place}: {}; metadata may be stale: Windows did not finish writing this volume",
                        stale.join(", ")
                    ),
                ));
            }
        }
        volumes.set_volume_guids(volume::volume_letters(&system.mounted_devices));
        let windows_directory = volumes.find_windows_dir();
        let other_control_sets = other_control_sets(&system, used);
        let present = system.control_sets.iter().map(|s| s.control_set).collect();
        let session = &mut system.control_sets[chosen.index];
        if !session.key_found {
            findings.push(Finding::warning(
                "session-manager-missing",
                format!("ControlSet{used:03} has no Control\\Session Manager key"),
            ));
        }
        let (images, images_not_examined) = image_inputs(&volumes, options.hash, &mut findings);
        inputs.extend(images);
        let mut provenance = Provenance {
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
        let registrations = Registrations {
            setup_execute: system
                .control_sets
                .iter()
                .filter_map(|set| match &set.setup_execute {
                    Some(Ok(value)) => Some((set.control_set, value.clone())),
                    _ => None,
                })
                .collect(),
            next_control_set: used,
            software: software.hive.read.then(|| SoftwareValues {
                poqexec_cmdline: software.values.get("PoqexecCmdline").cloned(),
                dont_run_poqexec_in_smss: software.values.get("DontRunPoqexecInSmss").cloned(),
            }),
            components: components.hive.read.then(|| ComponentsValues {
                pending_xml_identifier: components.values.get("PendingXmlIdentifier").cloned(),
            }),
            trusted_installer_start,
            hash: hashing,
        };
        let mut lists = find_action_lists(&registrations, &volumes, queue.operations.len());
        if lists.sections.is_empty() {
            // No list to gate: COMPONENTS would have changed nothing (older Windows has none).
            for finding in findings
                .iter_mut()
                .filter(|f| f.code == "components-hive-missing")
            {
                finding.severity = crate::finding::Severity::Info;
            }
        }
        findings.extend(lists.findings.iter().cloned());
        provenance
            .inputs
            .extend(lists.inputs.iter().map(|(path, size, sha256)| InputFile {
                role: "action-list",
                path: path.clone(),
                size: *size,
                sha256: sha256.clone(),
                ..Default::default()
            }));
        let servicing_hives = [software, components]
            .into_iter()
            .map(|opened: OpenedServicing| opened.hive)
            .collect::<Vec<ServicingHive>>();
        let action_lists = std::mem::take(&mut lists.sections);
        let mut inputs_not_examined = std::mem::take(&mut lists.not_examined);
        inputs_not_examined.extend(images_not_examined);
        Ok(Inspection {
            volumes,
            used,
            pending,
            queue,
            lists,
            parts: ReportParts {
                action_lists,
                inputs_not_examined,
                servicing_hives,
                provenance,
                hive,
                chosen,
                select: system.select.unwrap_or_default(),
                present,
                mounted_devices: system.mounted_devices,
                windows_directory,
                other_control_sets,
                findings,
            },
        })
    }

    /// Every candidate action list, as the report gives it.
    pub fn action_lists(&self) -> &[crate::boot::ActionListSection] {
        &self.parts.action_lists
    }

    /// Keeps the lists that would run from running (a fix that disables them): their
    /// operations are reported `no-effect`, `why` given.
    pub fn stop_lists(&mut self, why: &str) {
        let running = std::mem::take(&mut self.lists.running);
        if !running.is_empty() {
            self.lists.not_running.insert(0, (running, why.into()));
        }
        for list in self
            .parts
            .action_lists
            .iter_mut()
            .filter(|l| l.runs_next_boot)
        {
            list.runs_next_boot = false;
            list.why = format!("{}; {why}", list.why);
        }
    }

    /// Replays `registry` (the decoded rename queue, or a changed one) and then the action
    /// lists that run, as the next boot will.
    pub fn replay(&self, registry: &[Operation], options: ReplayOptions) -> Replay {
        boot::replay(&[registry, &self.lists.running], &self.volumes, options)
    }

    /// Replays `operations` (the decoded queue, or a changed one) with the action lists and
    /// builds the report. The operations of lists that will not run follow, each `no-effect`
    /// with why.
    pub fn report(mut self, mut operations: Vec<Operation>, options: &CheckOptions) -> Report {
        // One vector for both queues before the replay, not a second copy after it (at the
        // peak of the run): the list's own when the rename queue is empty.
        let registry = operations.len();
        if operations.is_empty() {
            operations = std::mem::take(&mut self.lists.running);
        } else {
            operations.append(&mut self.lists.running);
            self.lists.running = Vec::new();
        }
        let (renames, listed) = operations.split_at(registry);
        let mut replay = boot::replay(
            &[renames, listed],
            &self.volumes,
            ReplayOptions {
                hash_files: matches!(options.hash, HashMode::All | HashMode::Image),
            },
        );
        for (listed, why) in std::mem::take(&mut self.lists.not_running) {
            replay.outcomes.extend(listed.iter().map(|_| boot::Outcome {
                verdict: Verdict::NoEffect,
                reason: Reason::Shared(why.clone()),
                source_file: None,
                target_file: None,
                overwritten_staged_version: None,
                superseded_by: None,
            }));
            operations.extend(listed);
        }
        Report::build(self.parts, operations, replay, &self.volumes)
    }
}
