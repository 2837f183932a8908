//! The human-readable report: one block per operation, the findings first in the reader's eye.

use std::io::{self, Write};

use super::Report;
use crate::boot::{FileFacts, Verdict};
use crate::finding::Severity;
use crate::queue::{Action, Origin};
use crate::text::shown;

/// Presentation options of the table.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// ANSI colours (only for a terminal, never with NO_COLOR).
    pub color: bool,
}

impl Style {
    pub(super) fn paint(self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn verdict(self, verdict: Verdict) -> String {
        let word = format!("{:<12}", verdict.as_str().to_uppercase());
        let code = match verdict {
            Verdict::Downgrade | Verdict::Overridden => "1;31",
            Verdict::Unresolved | Verdict::Unversioned => "33",
            Verdict::Upgrade | Verdict::NewFile | Verdict::SameVersion => "32",
            _ => "2",
        };
        self.paint(&word, code)
    }
}

pub fn write_table<W: Write + ?Sized>(
    report: &Report,
    style: Style,
    out: &mut W,
) -> io::Result<()> {
    let hive = &report.hive;
    writeln!(
        out,
        "{} {}: pending file operations of the next boot",
        report.tool.name, report.tool.version
    )?;
    writeln!(out)?;
    images(report, out)?;
    if crate::hive::is_stdin(std::path::Path::new(&hive.path)) {
        writeln!(out, "Hive         - (standard input)")?;
    } else {
        writeln!(out, "Hive         {}", shown(&hive.path))?;
    }
    let state = match (hive.dirty, hive.recovered) {
        (true, false) => style.paint(hive_state(true, false), "1;33"),
        (dirty, recovered) => hive_state(dirty, recovered).to_string(),
    };
    let mut line = format!(
        "             {state} (sequence {}/{}",
        hive.primary_sequence, hive.secondary_sequence
    );
    if let Some([primary, secondary]) = hive.sequence_after_recovery {
        line.push_str(&format!(" -> {primary}/{secondary}"));
    }
    line.push_str(&format!(", regf {})", hive.format_version));
    if let Some(sha) = &hive.sha256 {
        line.push_str(&format!(", sha256 {sha}"));
    }
    writeln!(out, "{line}")?;
    for log in &hive.logs_applied {
        writeln!(
            out,
            "             log {}: {} entr{} applied, {} skipped",
            shown(&log.path),
            log.entries_applied,
            if log.entries_applied == 1 { "y" } else { "ies" },
            log.entries_skipped
        )?;
    }
    for log in &hive.logs_not_applied {
        let why = log.notes.first().map_or("", String::as_str);
        // The notes say "not applied: ..." themselves.
        writeln!(out, "             log {}: {}", shown(&log.path), shown(why))?;
    }
    let cs = &report.control_set;
    let show = |v: Option<u32>| v.map_or("-".to_string(), |n| n.to_string());
    writeln!(
        out,
        "Control set  ControlSet{:03} ({}; Select: Default {}, Current {}, LastKnownGood {})",
        cs.used,
        cs.chosen_by.describe(),
        show(cs.default),
        show(cs.current),
        show(cs.last_known_good)
    )?;
    if report.volumes.is_empty() {
        writeln!(
            out,
            "Volumes      none given: files are not examined (give ROOT or --drive)"
        )?;
    }
    for (i, volume) in report.volumes.iter().enumerate() {
        let label = if i == 0 { "Volumes" } else { "" };
        let was = match &volume.mounted_device {
            Some(identity) => format!("  (MountedDevices: {})", shown(&identity.to_string())),
            None => String::new(),
        };
        writeln!(
            out,
            "{label:<12} {} {}{was}",
            shown(&volume.name),
            shown(&volume.path)
        )?;
        if let Some(image) = &volume.image {
            let partition = image
                .partition
                .map_or("volume image".to_string(), |n| format!("partition {n}"));
            let partition = match &image.container {
                Some(container) => format!("{partition} in {}", shown(container)),
                None => partition,
            };
            writeln!(
                out,
                "             {partition} at byte {}, {} bytes, {}, serial {}{}",
                image.offset,
                image.size,
                shown(&image.file_system),
                image.serial,
                if image.label.is_empty() {
                    String::new()
                } else {
                    format!(", label {}", shown(&image.label))
                }
            )?;
            if let Some(why) = &image.upcase_problem {
                writeln!(
                    out,
                    "             names compared by Unicode simple upper case: {}",
                    shown(why)
                )?;
            }
        }
    }
    for other in &report.other_control_sets {
        if other.damage.is_some() {
            writeln!(
                out,
                "             ControlSet{:03} cannot be read (see the warning below)",
                other.control_set
            )?;
            continue;
        }
        let relation = if other.same_as_used {
            "the same queue as the set used"
        } else {
            "a different queue, not replayed"
        };
        writeln!(
            out,
            "             ControlSet{:03} holds {} operation{}: {relation}",
            other.control_set,
            other.operations,
            plural(other.operations)
        )?;
    }
    for hive in report.servicing_hives.iter().filter(|h| h.read) {
        let state = hive_state(hive.dirty, hive.recovered);
        let label = hive.role.file_name();
        writeln!(
            out,
            "{label:<12} {} ({state})",
            shown(hive.path.as_deref().unwrap_or(""))
        )?;
    }
    for list in &report.action_lists {
        let by: Vec<String> = list
            .registered_by
            .iter()
            .map(super::machine::serde_plain)
            .collect();
        writeln!(
            out,
            "Action list  {}  (registered by {})",
            shown(&list.path),
            by.join(", ")
        )?;
        if let Some(host) = &list.host_path {
            writeln!(out, "             at {}", shown(host))?;
        }
        let runs = if list.runs_next_boot {
            style.paint("runs at the next boot", "1")
        } else {
            "does not run at the next boot".to_string()
        };
        writeln!(out, "             {runs}: {}", shown(&list.why))?;
        if !list.primitives.is_empty() {
            let counts: Vec<String> = list
                .primitives
                .iter()
                .map(|(name, count)| format!("{name} {count}"))
                .collect();
            writeln!(
                out,
                "             first POQ: {}; {} file operation{} below",
                shown(&counts.join(", ")),
                list.operations,
                plural(list.operations)
            )?;
        }
        for note in &list.notes {
            writeln!(out, "             note: {}", shown(note))?;
        }
    }

    if !report.findings.is_empty() {
        writeln!(out)?;
        for finding in &report.findings {
            let label = match finding.severity {
                Severity::Alert => style.paint("ALERT", "1;31"),
                Severity::Warning => style.paint("warning", "33"),
                Severity::Info => "note".to_string(),
            };
            writeln!(out, "{label}: {}", shown(&finding.message))?;
        }
    }

    writeln!(out)?;
    if report.operations.is_empty() {
        writeln!(
            out,
            "No pending file operations in this control set or in an action list."
        )?;
    }
    for report_op in report.operations.iter() {
        let (op, outcome) = (report_op.operation, report_op.outcome);
        let mut action = match op.action {
            Action::Rename if op.replace_existing => "rename, replace existing".to_string(),
            Action::Rename => "rename".to_string(),
            Action::Delete => "delete".to_string(),
            Action::Hardlink => "hardlink".to_string(),
            Action::Create => "create".to_string(),
            Action::CreateDirectory => "create directory".to_string(),
        };
        match &op.origin {
            Origin::Registry {
                value,
                string_index,
            } => action.push_str(&format!("  ({} #{string_index})", shown(value))),
            Origin::ActionList { list, element } => {
                action.push_str(&format!("  ({} element {element}", shown(&list.path)));
                if let Some(line) = list.line(op.index) {
                    action.push_str(&format!(", line {line}"));
                }
                action.push(')');
            }
        }
        writeln!(
            out,
            "#{:<4} {} {action}",
            op.index,
            style.verdict(outcome.verdict)
        )?;
        let version = |facts: &Option<std::sync::Arc<FileFacts>>| match facts.as_deref() {
            Some(f) => match (&f.file_version, &f.unversioned_reason) {
                (Some(v), _) => v.to_string(),
                (None, Some(why)) => format!("unversioned: {why}"),
                (None, None) => "unversioned".to_string(),
            },
            None => String::new(),
        };
        writeln!(out, "      from  {}", shown(&op.source.stored))?;
        if outcome.source_file.is_some() {
            writeln!(out, "            {}", shown(&version(&outcome.source_file)))?;
        }
        if let Some(dest) = &op.destination {
            writeln!(out, "      to    {}", shown(&dest.stored))?;
            if outcome.target_file.is_some() {
                writeln!(
                    out,
                    "            on disk: {}",
                    shown(&version(&outcome.target_file))
                )?;
            }
        }
        writeln!(out, "      why   {}", shown(&outcome.reason.to_string()))?;
        for note in op.notes() {
            writeln!(out, "      note  {}", shown(note))?;
        }
    }

    writeln!(out)?;
    let summary = &report.summary;
    let mut parts = Vec::new();
    for verdict in Verdict::ALL {
        let count = summary.count(verdict);
        if count > 0 {
            parts.push(format!("{count} {}", verdict.as_str()));
        }
    }
    writeln!(
        out,
        "{} operation{}{}{}",
        summary.operations,
        plural(summary.operations),
        if parts.is_empty() { "" } else { ": " },
        parts.join(", ")
    )?;
    let bad = summary.count(Verdict::Downgrade) + summary.count(Verdict::Overridden);
    if bad > 0 {
        writeln!(
            out,
            "{}",
            style.paint(
                &format!(
                    "{bad} operation{} would downgrade a file or lose a queued fix",
                    plural(bad)
                ),
                "1;31"
            )
        )?;
    }
    let alerts = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Alert)
        .count();
    if alerts > 0 {
        writeln!(
            out,
            "{}",
            style.paint(
                &format!(
                    "{alerts} alert{}: the servicing action lists bear the marks of an attack on the boot (Windows Downdate); see the ALERT lines above",
                    plural(alerts)
                ),
                "1;31"
            )
        )?;
    }
    if hive.dirty && !hive.recovered {
        writeln!(
            out,
            "{}",
            style.paint(
                "The hive is dirty and its transaction logs were not applied: this answer may miss recent writes.",
                "1;33"
            )
        )?;
    }
    Ok(())
}

/// A hive file's state in words.
fn hive_state(dirty: bool, recovered: bool) -> &'static str {
    match (dirty, recovered) {
        (false, _) => "clean",
        (true, true) => "dirty on disk, recovered with its transaction logs",
        (true, false) => "DIRTY, transaction logs not applied",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The images given, when one is in a container or was hashed: the container, the disk's
/// size and hash, and each stored hash checked, in words.
fn images<W: Write + ?Sized>(report: &Report, out: &mut W) -> io::Result<()> {
    let images = report
        .provenance
        .inputs
        .iter()
        .filter(|i| i.role == "image");
    for image in images.filter(|i| i.container.is_some() || i.sha256.is_some()) {
        let mut line = format!("Image        {}", shown(&image.path));
        if let Some(container) = &image.container {
            line.push_str(&format!(", {}", shown(&container.format)));
            if container.files.len() > 1 {
                line.push_str(&format!(" in {} files", container.files.len()));
            }
        }
        line.push_str(&format!(", disk of {} bytes", image.size));
        if let Some(sha) = &image.sha256 {
            line.push_str(&format!(", sha256 {sha}"));
        }
        writeln!(out, "{line}")?;
        for check in &image.hash_checks {
            let verdict = if check.matches {
                "matches the disk"
            } else {
                "DIFFERS from the disk"
            };
            writeln!(
                out,
                "             stored {} {} {verdict} ({})",
                shown(&check.algorithm),
                shown(&check.stored),
                shown(&check.computed)
            )?;
        }
    }
    Ok(())
}
