//! The report of `nextboot verify`: its types and every output format.
//!
//! Field names of the JSON form are meant for scripts (`docs/verify.md`): add, never rename.

use std::fmt;
use std::io::{self, Write};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{exit, Format, Style, Tool};
use crate::text::shown;
use crate::version::FileVersion;

/// The state of one baseline entry: one word, the first that applies in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyState {
    /// The path cannot be mapped onto ROOT (another drive, names that differ only by case on
    /// a case-sensitive copy, an ambiguous short name, a link out of the volume).
    Unresolved,
    /// No regular file at the path.
    Missing,
    /// The file is there but cannot be read.
    Unreadable,
    /// The baseline gives a minimum version and the file has no binary file version (no
    /// version resource, or not a PE file at all).
    Unversioned,
    /// The binary file version is below the minimum.
    Older,
    /// Not older, but the baseline's SHA-256 differs from the file's.
    HashMismatch,
    /// As the baseline requires.
    Ok,
}

impl VerifyState {
    /// Every state, in the order of precedence (and of the summary).
    pub const ALL: [VerifyState; 7] = [
        VerifyState::Ok,
        VerifyState::Older,
        VerifyState::Missing,
        VerifyState::Unversioned,
        VerifyState::HashMismatch,
        VerifyState::Unresolved,
        VerifyState::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyState::Ok => "ok",
            VerifyState::Older => "older",
            VerifyState::Missing => "missing",
            VerifyState::Unversioned => "unversioned",
            VerifyState::HashMismatch => "hash-mismatch",
            VerifyState::Unresolved => "unresolved",
            VerifyState::Unreadable => "unreadable",
        }
    }

    pub fn parse(word: &str) -> Option<VerifyState> {
        VerifyState::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl fmt::Display for VerifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub tool: Tool,
    /// The directory examined, as given.
    pub root: String,
    /// The letter Windows gave ROOT (`C:`): relative and `C:\` baseline paths land there.
    pub system_drive: String,
    pub baseline: BaselineSection,
    /// One per baseline entry, in the baseline's order.
    pub entries: Vec<VerifyEntry>,
    pub summary: VerifySummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct BaselineSection {
    pub path: String,
    /// SHA-256 of the baseline file, to record which baseline a gate used.
    pub sha256: String,
    /// The baseline's `version:` (its format).
    pub format: u32,
    pub entries: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyEntry {
    /// As written in the baseline.
    pub path: String,
    pub expected_min_version: Option<FileVersion>,
    pub expected_sha256: Option<String>,
    pub state: VerifyState,
    /// The binary VS_FIXEDFILEINFO file version of the file found.
    pub found_version: Option<FileVersion>,
    /// Where the file was found on the host (on-disk spelling), when something is there.
    pub found_path: Option<String>,
    /// SHA-256 of the file found: when the baseline gives one, or with `--with-sha256`.
    pub sha256: Option<String>,
    /// One sentence: why this state.
    pub reason: String,
    pub size: Option<u64>,
    /// Line of the entry in the baseline.
    pub baseline_line: u64,
}

/// The number of entries, then one count per state, zeros included.
#[derive(Clone, Debug, Default)]
pub struct VerifySummary {
    pub entries: usize,
    pub counts: [usize; VerifyState::ALL.len()],
}

impl VerifySummary {
    pub fn of(entries: &[VerifyEntry]) -> VerifySummary {
        let mut summary = VerifySummary {
            entries: entries.len(),
            ..VerifySummary::default()
        };
        for entry in entries {
            summary.counts[state_slot(entry.state)] += 1;
        }
        summary
    }

    pub fn count(&self, state: VerifyState) -> usize {
        self.counts[state_slot(state)]
    }

    /// Entries in any state but `ok`.
    pub fn not_ok(&self) -> usize {
        self.entries - self.count(VerifyState::Ok)
    }
}

fn state_slot(state: VerifyState) -> usize {
    VerifyState::ALL
        .iter()
        .position(|&s| s == state)
        .unwrap_or_default()
}

impl Serialize for VerifySummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + VerifyState::ALL.len()))?;
        map.serialize_entry("entries", &self.entries)?;
        for state in VerifyState::ALL {
            map.serialize_entry(state.as_str(), &self.count(state))?;
        }
        map.end()
    }
}

impl VerifyReport {
    /// 0 when every entry is `ok` (an empty baseline included), 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        if self.summary.not_ok() == 0 {
            exit::CLEAN
        } else {
            exit::FINDINGS
        }
    }
}

/// Writes the report of `verify` in a format.
pub fn write_verify(
    report: &VerifyReport,
    format: Format,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Table => write_verify_table(report, style, out),
        Format::Json => {
            crate::text::to_json_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::Jsonl => write_verify_jsonl(report, out),
        Format::Csv => write_verify_csv(report, out),
        Format::Yaml => {
            let text = crate::text::to_yaml(report)?;
            out.write_all(text.as_bytes())
        }
    }
}

/// One entry object per line, no envelope; each line also names the root and the baseline,
/// so that it stands alone.
fn write_verify_jsonl(report: &VerifyReport, out: &mut dyn Write) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'r> {
        #[serde(flatten)]
        entry: &'r VerifyEntry,
        root: &'r str,
        baseline_path: &'r str,
        baseline_sha256: &'r str,
    }
    for entry in &report.entries {
        let line = Line {
            entry,
            root: &report.root,
            baseline_path: &report.baseline.path,
            baseline_sha256: &report.baseline.sha256,
        };
        crate::text::to_json_line(&mut *out, &line)?;
        writeln!(out)?;
    }
    Ok(())
}

/// The CSV header of `verify`; fixed.
pub const VERIFY_CSV_HEADER: [&str; 10] = [
    "path",
    "expected_min_version",
    "expected_sha256",
    "state",
    "found_version",
    "found_path",
    "sha256",
    "reason",
    "size",
    "baseline_line",
];

/// One row per entry (RFC 4180 quoting); an empty field for a missing value.
fn write_verify_csv(report: &VerifyReport, out: &mut dyn Write) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(VERIFY_CSV_HEADER)?;
    let text = |v: Option<String>| v.unwrap_or_default();
    for entry in &report.entries {
        super::machine::write_cells(
            &mut writer,
            &[
                entry.path.clone(),
                text(entry.expected_min_version.map(|v| v.to_string())),
                text(entry.expected_sha256.clone()),
                entry.state.to_string(),
                text(entry.found_version.map(|v| v.to_string())),
                text(entry.found_path.clone()),
                text(entry.sha256.clone()),
                entry.reason.clone(),
                text(entry.size.map(|s| s.to_string())),
                entry.baseline_line.to_string(),
            ],
        )?;
    }
    writer.flush()
}

fn paint_state(style: Style, state: VerifyState) -> String {
    let word = format!("{:<13}", state.as_str().to_uppercase());
    let code = match state {
        VerifyState::Ok => "32",
        VerifyState::Older | VerifyState::Missing | VerifyState::HashMismatch => "1;31",
        VerifyState::Unversioned | VerifyState::Unresolved | VerifyState::Unreadable => "33",
    };
    style.paint(&word, code)
}

fn write_verify_table(report: &VerifyReport, style: Style, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{} {}: installed files against a baseline",
        report.tool.name, report.tool.version
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Root       {} (system drive {})",
        shown(&report.root),
        report.system_drive
    )?;
    let baseline = &report.baseline;
    writeln!(
        out,
        "Baseline   {} (format {}, {} entr{}), sha256 {}",
        shown(&baseline.path),
        baseline.format,
        baseline.entries,
        if baseline.entries == 1 { "y" } else { "ies" },
        baseline.sha256
    )?;
    writeln!(out)?;
    if report.entries.is_empty() {
        writeln!(out, "The baseline lists no files.")?;
    }
    for entry in &report.entries {
        writeln!(
            out,
            "{} {}",
            paint_state(style, entry.state),
            shown(&entry.path)
        )?;
        let mut facts = Vec::new();
        match (entry.found_version, &entry.found_path) {
            (Some(version), _) => facts.push(format!("found {version}")),
            (None, Some(_)) if entry.state != VerifyState::Missing => {
                facts.push("found, no version".to_string())
            }
            _ => {}
        }
        if let Some(min) = entry.expected_min_version {
            facts.push(format!("minimum {min}"));
        }
        if entry.expected_sha256.is_some() {
            facts.push("sha256 pinned".to_string());
        }
        writeln!(out, "{:<13} {}", "", facts.join(", "))?;
        if entry.state != VerifyState::Ok {
            writeln!(out, "{:<13} why   {}", "", shown(&entry.reason))?;
            if let Some(path) = &entry.found_path {
                writeln!(out, "{:<13} at    {}", "", shown(path))?;
            }
        }
    }
    writeln!(out)?;
    let summary = &report.summary;
    let parts: Vec<String> = VerifyState::ALL
        .iter()
        .filter(|&&s| summary.count(s) > 0)
        .map(|&s| format!("{} {}", summary.count(s), s.as_str()))
        .collect();
    writeln!(
        out,
        "{} entr{}{}{}",
        summary.entries,
        if summary.entries == 1 { "y" } else { "ies" },
        if parts.is_empty() { "" } else { ": " },
        parts.join(", ")
    )?;
    let bad = summary.not_ok();
    if bad > 0 {
        writeln!(
            out,
            "{}",
            style.paint(
                &format!(
                    "{bad} entr{} not as the baseline requires",
                    if bad == 1 { "y is" } else { "ies are" }
                ),
                "1;31"
            )
        )?;
    } else {
        writeln!(out, "Every file is as the baseline requires.")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: VerifyState) -> VerifyEntry {
        VerifyEntry {
            path: "Windows\\System32\\a, \"b\".dll".into(),
            expected_min_version: Some("1.2.3.4".parse().unwrap()),
            expected_sha256: None,
            state,
            found_version: Some("1.2.3.3".parse().unwrap()),
            found_path: Some("/mnt/x/Windows/System32/a, \"b\".dll".into()),
            sha256: None,
            reason: "version 1.2.3.3 is older than the minimum 1.2.3.4".into(),
            size: Some(1024),
            baseline_line: 3,
        }
    }

    fn report(entries: Vec<VerifyEntry>) -> VerifyReport {
        VerifyReport {
            tool: Tool::default(),
            root: "/mnt/x".into(),
            system_drive: "C:".into(),
            baseline: BaselineSection {
                path: "b.yaml".into(),
                sha256: "00".repeat(32),
                format: 1,
                entries: entries.len(),
            },
            summary: VerifySummary::of(&entries),
            entries,
        }
    }

    #[test]
    fn summary_counts_every_state_with_zeros() {
        let report = report(vec![entry(VerifyState::Ok), entry(VerifyState::Older)]);
        let json = serde_json::to_value(&report.summary).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), 1 + VerifyState::ALL.len());
        assert_eq!(object["entries"], 2);
        assert_eq!(object["older"], 1);
        assert_eq!(object["hash-mismatch"], 0);
        assert_eq!(report.exit_status(), exit::FINDINGS);
        assert_eq!(
            self::report(vec![entry(VerifyState::Ok)]).exit_status(),
            exit::CLEAN
        );
        assert_eq!(self::report(Vec::new()).exit_status(), exit::CLEAN);
    }

    #[test]
    fn table_has_no_colour_without_style_and_says_why() {
        let mut out = Vec::new();
        write_verify(
            &report(vec![entry(VerifyState::Older)]),
            Format::Table,
            Style::default(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("OLDER"), "{text}");
        assert!(text.contains("why   version 1.2.3.3"), "{text}");
        assert!(
            text.contains("1 entry is not as the baseline requires"),
            "{text}"
        );

        let mut out = Vec::new();
        write_verify(
            &report(vec![entry(VerifyState::Older)]),
            Format::Table,
            Style { color: true },
            &mut out,
        )
        .unwrap();
        assert!(String::from_utf8(out).unwrap().contains('\x1b'));
    }
}
