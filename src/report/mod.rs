//! Report: the one type every output format reads, and the exit status.
//!
//! Field names of the JSON form are a contract (`docs/contract.md`): add, never rename.

mod machine;
mod table;
pub mod time;
mod verify;
mod versions;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

pub use machine::{write_csv, write_json, write_jsonl, write_yaml};
pub use table::{write_table, Style};
pub use verify::{
    write_verify, BaselineSection, VerifyEntry, VerifyReport, VerifySummary, VERIFY_CSV_HEADER,
};
pub use versions::{write_versions_json, write_versions_table};

use crate::boot::{FileChange, FileFacts, Verdict};
use crate::hive::VolumeIdentity;
use crate::queue::{Action, QueueSource};
use crate::version::FileVersion;
use crate::Finding;

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
    /// The queue of the control set used, in boot order.
    pub operations: Vec<OperationReport>,
    pub summary: Summary,
    /// Every path the boot changes, with its file before and after.
    pub files: Vec<FileChange>,
    /// Queues of the other control sets, never mixed into `operations`.
    pub other_control_sets: Vec<OtherControlSet>,
    pub findings: Vec<Finding>,
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

#[derive(Clone, Debug, Serialize)]
pub struct InputFile {
    /// `hive` or `log`.
    pub role: &'static str,
    pub path: String,
    pub size: u64,
    pub sha256: Option<String>,
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
    pub format: Option<&'static str>,
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
    pub chosen_by: &'static str,
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

#[derive(Clone, Debug, Serialize)]
pub struct OperationReport {
    pub index: usize,
    pub queue: QueueSource,
    pub value: Arc<str>,
    pub string_index: usize,
    pub action: Action,
    /// As stored, prefixes included.
    pub source: String,
    /// As stored, prefixes included; `null` for a delete.
    pub destination: Option<String>,
    pub replace_existing: bool,
    pub source_version: Option<FileVersion>,
    pub target_version: Option<FileVersion>,
    pub verdict: Verdict,
    pub reason: std::borrow::Cow<'static, str>,
    pub source_file: Option<Arc<FileFacts>>,
    pub target_file: Option<Arc<FileFacts>>,
    pub overwritten_staged_version: Option<FileVersion>,
    pub superseded_by: Option<usize>,
    /// Raw UTF-16LE bytes (hex) of a stored string that did not decode exactly.
    pub source_raw_hex: Option<String>,
    pub destination_raw_hex: Option<String>,
    pub notes: Vec<String>,
}

/// Counts per verdict word, zeros included, after the total.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub operations: usize,
    pub counts: [usize; Verdict::ALL.len()],
}

impl Summary {
    pub fn of(operations: &[OperationReport]) -> Summary {
        let mut summary = Summary {
            operations: operations.len(),
            ..Summary::default()
        };
        for operation in operations {
            summary.counts[verdict_slot(operation.verdict)] += 1;
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

/// `--fail-on`: which verdicts make the exit status 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailOn {
    Never,
    Any(BTreeSet<Verdict>),
}

impl Default for FailOn {
    fn default() -> FailOn {
        FailOn::Any([Verdict::Downgrade, Verdict::Overridden].into())
    }
}

impl std::str::FromStr for FailOn {
    type Err = String;

    fn from_str(text: &str) -> Result<FailOn, String> {
        if text.trim() == "never" {
            return Ok(FailOn::Never);
        }
        let mut set = BTreeSet::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let verdict = Verdict::parse(word).ok_or_else(|| {
                let words: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
                format!(
                    "`{word}` is not a verdict; use `never` or a comma list of: {}",
                    words.join(", ")
                )
            })?;
            set.insert(verdict);
        }
        if set.is_empty() {
            return Err("give `never` or at least one verdict".into());
        }
        Ok(FailOn::Any(set))
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
    /// The exit status for this report.
    pub fn exit_status(&self, fail_on: &FailOn, allow_dirty: bool) -> u8 {
        if self.hive.dirty && !self.hive.recovered && !allow_dirty {
            return exit::NOT_EXAMINED;
        }
        let failing = match fail_on {
            FailOn::Never => false,
            FailOn::Any(set) => set.iter().any(|&v| self.summary.count(v) > 0),
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

/// Writes the report in a format.
pub fn write(report: &Report, format: Format, style: Style, out: &mut dyn Write) -> io::Result<()> {
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
            Ok(FailOn::Any([Verdict::Downgrade, Verdict::NoEffect].into()))
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
