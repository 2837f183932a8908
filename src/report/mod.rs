//! Report: the one type every output format reads, and the exit status.
//!
//! Field names of the JSON form are a contract (`docs/contract.md`): add, never rename.

mod build;
mod machine;
mod summaries;
mod table;
pub mod terminal;
/// Timestamps (at the bottom of the pipeline, as evidence dates need them too).
pub use crate::time;
mod verify;
mod versions;

use std::collections::BTreeSet;
use std::io::{self, Write};

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

pub use build::{hive_section, other_control_sets, ReportParts};
pub use machine::{write_csv, write_json, write_jsonl, write_yaml};
pub use summaries::{
    write_fix_summary, FixPlan, ListWithAlerts, PatternCount, Recovered, Removed, Skipped, Written,
};
pub use table::{write_table, Style};
pub use verify::{
    write_verify, BaselineSection, VerifyEntry, VerifyReport, VerifyState, VerifySummary,
    VERIFY_CSV_HEADER,
};
pub use versions::{write_versions_json, write_versions_table};

use crate::boot::{FileChange, Outcome, Reason, Verdict};
use crate::finding::Finding;
use crate::hive::log::LogFormat;
use crate::hive::VolumeIdentity;
use crate::queue::{Operation, Origin};
use crate::version::FileVersion;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: Tool,
    /// Where this report came from: the run and its inputs.
    pub provenance: Provenance,
    pub hive: HiveSection,
    pub control_set: ControlSetSection,
    /// Drive letters (and device numbers) and what they were mapped to; empty with `--hive`
    /// alone.
    pub volumes: Vec<VolumeSection>,
    /// The Windows directory on the system drive, as spelled on disk (`\SystemRoot`).
    pub windows_directory: Option<String>,
    /// `SYSTEM\MountedDevices`: each letter's and GUID's volume, and where it is mapped now.
    pub mounted_devices: Vec<MountedDeviceSection>,
    /// The queue of the control set used, in boot order, each operation with its outcome.
    pub operations: Operations,
    pub summary: Summary,
    /// Every path the boot changes, with its file before and after.
    pub files: Vec<FileChange>,
    /// Queues of the other control sets, never mixed into `operations`.
    pub other_control_sets: Vec<OtherControlSet>,
    /// SOFTWARE and COMPONENTS as read (they name and gate the action lists).
    pub servicing_hives: Vec<crate::hive::ServicingHive>,
    /// Every candidate servicing action list, whether it runs at the next boot and why.
    pub action_lists: Vec<crate::boot::ActionListSection>,
    pub findings: Vec<Finding>,
    /// Files and folders the check needed but could not read or compare (each is also a
    /// warning finding): a report with any exits 2, after it is written.
    pub not_examined: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Default for Tool {
    fn default() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The run and its inputs, so that a report found later says how it was made.
#[derive(Clone, Debug, Serialize)]
pub struct Provenance {
    pub tool: Tool,
    /// The command line as given.
    pub command_line: Vec<String>,
    /// When the run started, UTC.
    pub started: String,
    /// Every input file read as a whole: the hive and its logs (`--hash` decides the hashes).
    pub inputs: Vec<InputFile>,
    /// The hive's sequence numbers on disk, and after its logs were applied.
    pub hive_sequence: [u32; 2],
    pub hive_sequence_after_recovery: Option<[u32; 2]>,
    pub logs_applied: Vec<String>,
    /// Last write of `ControlSetNNN\Control\Session Manager`: when the queue last changed.
    pub session_manager_last_written: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct InputFile {
    /// `hive`, `log`, `software`, `components`, `action-list` or `image`.
    pub role: &'static str,
    pub path: String,
    /// The file's size; for an image in a container, the size of the disk it holds.
    pub size: u64,
    /// For an image: of the disk it holds (the same as of the file, for a raw image).
    pub sha256: Option<String>,
    /// An image's container: format, virtual size, files, metadata, stored hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::evidence::image::container::ContainerInfo>,
    /// The container's stored hashes of the disk, each checked against the disk as read
    /// (`--hash image`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hash_checks: Vec<HashCheck>,
}

/// A hash a container stores of its disk, against the one computed from the disk read.
#[derive(Clone, Debug, Serialize)]
pub struct HashCheck {
    pub algorithm: String,
    pub stored: String,
    pub computed: String,
    pub matches: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct HiveSection {
    pub path: String,
    pub size: u64,
    /// SHA-256 of the hive file as it is on disk.
    pub sha256: Option<String>,
    /// The file on disk is dirty: sequence numbers differ or the checksum is wrong.
    pub dirty: bool,
    /// A dirty hive whose transaction logs were applied: the report reads the recovered hive,
    /// as Windows will see it at the next boot.
    pub recovered: bool,
    /// The hive as read may miss writes Windows made: dirty and not recovered, or recovered
    /// while one of its logs could not be read or was rejected for what it holds. A gate
    /// treats it as not examined (exit status 2) unless `--allow-dirty`.
    pub incomplete: bool,
    /// Transaction logs that contributed to the recovered hive.
    pub logs_applied: Vec<LogReport>,
    /// Logs examined but not used, each with why.
    pub logs_not_applied: Vec<LogReport>,
    /// Sequence numbers of the file on disk.
    pub primary_sequence: u32,
    pub secondary_sequence: u32,
    /// Sequence numbers after the logs were applied.
    pub sequence_after_recovery: Option<[u32; 2]>,
    /// SHA-256 of the recovered hive (what `nextboot recover` writes).
    pub recovered_sha256: Option<String>,
    pub checksum_valid: bool,
    pub format_version: String,
}

/// One transaction log and what replay took from it.
#[derive(Clone, Debug, Serialize)]
pub struct LogReport {
    pub path: String,
    pub sha256: String,
    /// `new` (HvLE entries) or `old` (DIRT vector); `null` when not a log.
    pub format: Option<LogFormat>,
    pub entries_applied: usize,
    pub pages_applied: usize,
    pub entries_skipped: usize,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ControlSetSection {
    /// The control set whose queue is replayed.
    pub used: u32,
    /// How it was chosen: `next`, `current` or `number`.
    pub chosen_by: crate::hive::ChosenBy,
    pub current: Option<u32>,
    pub default: Option<u32>,
    pub last_known_good: Option<u32>,
    pub failed: Option<u32>,
    /// Every `ControlSetNNN` in the hive.
    pub present: Vec<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeSection {
    /// `C:` or `\Device\HarddiskVolumeN`.
    pub name: String,
    pub path: String,
    /// What MountedDevices says this letter was, to judge whether the mapping is plausible.
    pub mounted_device: Option<VolumeIdentity>,
    /// Where the volume is, when it is read from an image: partition, offset, size,
    /// identity, file system, serial number and state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::volume::ImageOrigin>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MountedDeviceSection {
    pub name: String,
    pub volume: VolumeIdentity,
    /// The directory this letter is mapped to in this run, if any.
    pub mapped_to: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OtherControlSet {
    pub control_set: u32,
    pub operations: usize,
    /// Its pending values are byte-identical to those of the set used.
    pub same_as_used: bool,
    /// Why the set could not be read, when it could not.
    pub damage: Option<String>,
    /// Value names and sizes in bytes.
    pub values: Vec<ValueSize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValueSize {
    pub name: String,
    pub bytes: usize,
}

/// The queue replayed: each operation with its outcome, in boot order. The two lists are
/// kept as the queue and the replay made them; a report of one operation is a view of both.
#[derive(Clone, Debug, Default)]
pub struct Operations {
    queue: Vec<Operation>,
    outcomes: Vec<Outcome>,
}

impl Operations {
    /// Pairs each operation with its outcome (the replay gives one per operation, in order).
    pub fn new(mut queue: Vec<Operation>, mut outcomes: Vec<Outcome>) -> Operations {
        debug_assert_eq!(queue.len(), outcomes.len());
        let paired = queue.len().min(outcomes.len());
        queue.truncate(paired);
        outcomes.truncate(paired);
        Operations { queue, outcomes }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<OperationReport<'_>> {
        Some(OperationReport {
            operation: self.queue.get(index)?,
            outcome: self.outcomes.get(index)?,
        })
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = OperationReport<'_>> + Clone {
        self.queue
            .iter()
            .zip(&self.outcomes)
            .map(|(operation, outcome)| OperationReport { operation, outcome })
    }

    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }
}

impl Serialize for Operations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// One operation and what the replay decided for it: the object of the report's
/// `operations` list.
#[derive(Clone, Copy, Debug)]
pub struct OperationReport<'r> {
    pub operation: &'r Operation,
    pub outcome: &'r Outcome,
}

impl OperationReport<'_> {
    pub fn verdict(&self) -> Verdict {
        self.outcome.verdict
    }

    /// S, or what the source holds: the version of the file the operation moves.
    pub fn source_version(&self) -> Option<FileVersion> {
        self.outcome.source_file.as_ref()?.file_version
    }

    /// The version of the file at the destination on disk before the boot.
    pub fn target_version(&self) -> Option<FileVersion> {
        self.outcome.target_file.as_ref()?.file_version
    }
}

/// Where an action-list operation is in its list (`action_list` of an operation).
#[derive(Serialize)]
struct ActionListPlace<'a> {
    path: &'a str,
    poq: u32,
    element: u32,
    line: Option<u32>,
}

impl Serialize for OperationReport<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (op, outcome) = (self.operation, self.outcome);
        let mut object = serializer.serialize_struct("OperationReport", 21)?;
        object.serialize_field("index", &op.index)?;
        object.serialize_field("queue", &op.origin.queue())?;
        match &op.origin {
            Origin::Registry {
                value,
                string_index,
            } => {
                object.serialize_field("value", value)?;
                object.serialize_field("string_index", string_index)?;
                object.skip_field("action_list")?;
            }
            Origin::ActionList { list, element } => {
                object.serialize_field("value", &None::<&str>)?;
                object.skip_field("string_index")?;
                object.serialize_field(
                    "action_list",
                    &ActionListPlace {
                        path: &list.path,
                        poq: list.poq,
                        element: *element,
                        line: list.line(op.index),
                    },
                )?;
            }
        }
        object.serialize_field("action", &op.action)?;
        // As stored, prefixes included; `null` destination for a delete.
        object.serialize_field("source", &op.source.stored)?;
        object.serialize_field("destination", &op.destination.as_ref().map(|d| &d.stored))?;
        object.serialize_field("replace_existing", &op.replace_existing)?;
        object.serialize_field("source_version", &self.source_version())?;
        object.serialize_field("target_version", &self.target_version())?;
        object.serialize_field("verdict", &outcome.verdict)?;
        object.serialize_field("reason", &outcome.reason)?;
        match &outcome.reason {
            Reason::Unresolved(why) => object.serialize_field("detail", why)?,
            _ => object.skip_field("detail")?,
        }
        object.serialize_field("source_file", &outcome.source_file)?;
        object.serialize_field("target_file", &outcome.target_file)?;
        object.serialize_field(
            "overwritten_staged_version",
            &outcome.overwritten_staged_version,
        )?;
        object.serialize_field("superseded_by", &outcome.superseded_by)?;
        // Raw UTF-16LE bytes (hex) of a stored string that did not decode exactly.
        object.serialize_field("source_raw_hex", &op.source_raw_hex())?;
        object.serialize_field("destination_raw_hex", &op.destination_raw_hex())?;
        object.serialize_field("notes", op.notes())?;
        object.end()
    }
}

/// Counts per verdict word, zeros included, after the total.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub operations: usize,
    pub counts: [usize; Verdict::ALL.len()],
}

impl Summary {
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let mut summary = Summary {
            operations: outcomes.len(),
            ..Summary::default()
        };
        for outcome in outcomes {
            summary.counts[verdict_slot(outcome.verdict)] += 1;
        }
        summary
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.counts[verdict_slot(verdict)]
    }
}

fn verdict_slot(verdict: Verdict) -> usize {
    Verdict::ALL
        .iter()
        .position(|&v| v == verdict)
        .unwrap_or_default()
}

impl Serialize for Summary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + Verdict::ALL.len()))?;
        map.serialize_entry("operations", &self.operations)?;
        for verdict in Verdict::ALL {
            map.serialize_entry(verdict.as_str(), &self.count(verdict))?;
        }
        map.end()
    }
}

/// `--fail-on`: which verdicts, and whether alert findings, make the exit status 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailOn {
    Never,
    Any {
        verdicts: BTreeSet<Verdict>,
        /// Findings of severity `alert` (the word `alert`).
        alerts: bool,
    },
}

impl Default for FailOn {
    fn default() -> FailOn {
        FailOn::Any {
            verdicts: [Verdict::Downgrade, Verdict::Overridden].into(),
            alerts: true,
        }
    }
}

impl std::str::FromStr for FailOn {
    type Err = String;

    fn from_str(text: &str) -> Result<FailOn, String> {
        if text.trim() == "never" {
            return Ok(FailOn::Never);
        }
        let mut verdicts = BTreeSet::new();
        let mut alerts = false;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "alert" {
                alerts = true;
                continue;
            }
            let verdict = Verdict::parse(word).ok_or_else(|| {
                let words: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
                format!(
                    "`{word}` is not a verdict; use `never` or a comma list of: {}, alert",
                    words.join(", ")
                )
            })?;
            verdicts.insert(verdict);
        }
        if verdicts.is_empty() && !alerts {
            return Err("give `never` or at least one verdict or `alert`".into());
        }
        Ok(FailOn::Any { verdicts, alerts })
    }
}

/// Exit statuses of the contract.
pub mod exit {
    /// No finding at or above `--fail-on`.
    pub const CLEAN: u8 = 0;
    /// Findings at or above `--fail-on`.
    pub const FINDINGS: u8 = 1;
    /// The input could not be examined (or, without `--allow-dirty`, only a dirty hive was).
    pub const NOT_EXAMINED: u8 = 2;
}

impl Report {
    /// The hive as read may miss writes ([`HiveSection::incomplete`]) and the user did not
    /// accept that (`--allow-dirty`): then no answer from it passes, and nothing is written
    /// from it.
    pub fn hive_unaccepted(&self, allow_dirty: bool) -> bool {
        (self.hive.incomplete || self.servicing_hives.iter().any(|h| h.incomplete)) && !allow_dirty
    }

    /// Why the exit status is 2 although the report was written, if it is.
    pub fn not_examined_because(&self, allow_dirty: bool) -> Option<String> {
        if let Some(first) = self.not_examined.first() {
            let more = match self.not_examined.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            return Some(format!(
                "the check needed {}{more} and could not read or compare it (see the warnings), so the image was not fully examined",
                crate::text::shown(first)
            ));
        }
        let hive = &self.hive;
        if let Some(other) = self
            .servicing_hives
            .iter()
            .find(|h| h.incomplete && !allow_dirty && !hive.incomplete)
        {
            return Some(format!(
                "the {} hive is dirty and could not be recovered completely with its transaction logs, so the action lists may be judged on missing values. Use --allow-dirty to accept it as it was read",
                other.role.file_name()
            ));
        }
        if self.hive_unaccepted(allow_dirty) {
            let has = |code: &str| self.findings.iter().any(|f| f.code == code);
            let why = if has("logs-ignored") {
                "--no-logs was given, so its transaction logs were not applied"
            } else if has("logs-missing") {
                "no transaction log was found beside it"
            } else if !hive.recovered {
                "no transaction log could be applied"
            } else {
                "a transaction log beside it could not be read or was rejected, so the recovered hive may miss writes"
            };
            return Some(format!(
                "the hive is dirty (sequence numbers {} and {}) and {why}. Use --allow-dirty to accept the answer from the hive as it was read",
                hive.primary_sequence, hive.secondary_sequence
            ));
        }
        None
    }

    /// A finding of severity `alert`: an indicator of an attack on the boot.
    pub fn has_alert(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == crate::finding::Severity::Alert)
    }

    /// The exit status for this report.
    pub fn exit_status(&self, fail_on: &FailOn, allow_dirty: bool) -> u8 {
        if !self.not_examined.is_empty() || self.hive_unaccepted(allow_dirty) {
            return exit::NOT_EXAMINED;
        }
        let failing = match fail_on {
            FailOn::Never => false,
            FailOn::Any { verdicts, alerts } => {
                verdicts.iter().any(|&v| self.summary.count(v) > 0) || (*alerts && self.has_alert())
            }
        };
        if failing {
            exit::FINDINGS
        } else {
            exit::CLEAN
        }
    }
}

/// Output formats of `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    Yaml,
}

/// Writes the report in a format. Generic over the writer: serde_json and the table make many
/// small writes, and into a buffer of a known type each is a copy rather than a call through
/// `dyn Write` (a third of the time of writing a large report).
pub fn write<W: Write + ?Sized>(
    report: &Report,
    format: Format,
    style: Style,
    out: &mut W,
) -> io::Result<()> {
    match format {
        Format::Table => write_table(report, style, out),
        Format::Json => write_json(report, out),
        Format::Jsonl => write_jsonl(report, out),
        Format::Csv => write_csv(report, out),
        Format::Yaml => write_yaml(report, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_parses_lists_and_never() {
        assert_eq!("never".parse::<FailOn>(), Ok(FailOn::Never));
        assert_eq!(
            "downgrade, no-effect".parse::<FailOn>(),
            Ok(FailOn::Any {
                verdicts: [Verdict::Downgrade, Verdict::NoEffect].into(),
                alerts: false
            })
        );
        assert_eq!(
            "downgrade,overridden,alert".parse::<FailOn>(),
            Ok(FailOn::default())
        );
        assert_eq!(
            "alert".parse::<FailOn>(),
            Ok(FailOn::Any {
                verdicts: BTreeSet::new(),
                alerts: true
            })
        );
        assert!("downgrades"
            .parse::<FailOn>()
            .unwrap_err()
            .contains("same-version"));
        assert!(",".parse::<FailOn>().is_err());
    }

    #[test]
    fn summary_serialises_every_verdict_with_zeros() {
        let json = serde_json::to_value(Summary::default()).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), 11);
        assert_eq!(object["operations"], 0);
        assert_eq!(object["same-version"], 0);
        assert_eq!(object["no-effect"], 0);
    }
}
