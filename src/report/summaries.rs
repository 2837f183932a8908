//! What the commands that write a file report once it is written: `fix` (the `.reg` and the
//! queue it leaves), `recover` (the recovered hive) and `verify --write-baseline` (the
//! baseline). Each summary escapes every evidence string, as the other formats do.

use std::io::{self, Write};

use serde::Serialize;

use super::Report;
use crate::boot::Verdict;
use crate::finding::{Finding, Severity};
use crate::hive::RawValue;
use crate::text::shown;

/// One operation the fix removes.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    pub index: usize,
    pub verdict: Verdict,
    pub source: String,
    pub destination: Option<String>,
    pub reason: String,
}

/// The rewritten values and why.
#[derive(Clone, Debug)]
pub struct FixPlan {
    pub control_set: u32,
    /// Every pending value of that control set, rewritten (names as stored).
    pub values: Vec<RawValue>,
    pub removed: Vec<Removed>,
    /// Replays it took until no operation downgraded or was overridden.
    pub rounds: usize,
    /// The report of the queue as the fix leaves it.
    pub after: Report,
    /// Action lists that run and have alerts, with what the fix does about each.
    pub lists_with_alerts: Vec<ListWithAlerts>,
}

/// An action list that runs at the next boot and has alerts (`fix`).
#[derive(Clone, Debug)]
pub struct ListWithAlerts {
    /// As the registry names it.
    pub path: String,
    pub alerts: Vec<&'static str>,
    /// Registered by SOFTWARE `PoqexecCmdline` (which the fix then deletes too).
    pub by_poqexec_cmdline: bool,
    /// `--disable-action-list` was given: the `.reg` disables it.
    pub disabled: bool,
}

impl Removed {
    /// `#3 downgrade: SOURCE -> DESTINATION`, escaped: one line whatever the queue strings hold.
    pub fn line(&self) -> String {
        format!(
            "#{} {}: {} -> {}",
            self.index,
            self.verdict,
            shown(&self.source),
            shown(self.destination.as_deref().unwrap_or(""))
        )
    }
}

/// What `fix` prints once the `.reg` is written: every evidence string escaped.
pub fn write_fix_summary(plan: &FixPlan, out: &str, w: &mut dyn Write) -> io::Result<()> {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    writeln!(
        w,
        "wrote {}: ControlSet{:03}, {} operation{} removed ({} replay{})",
        shown(out),
        plan.control_set,
        plan.removed.len(),
        plural(plan.removed.len()),
        plan.rounds,
        plural(plan.rounds)
    )?;
    for removed in &plan.removed {
        writeln!(w, "  {}", removed.line())?;
    }
    for list in &plan.lists_with_alerts {
        if list.disabled {
            writeln!(
                w,
                "  disabled the action list {} ({}): COMPONENTS PendingXmlIdentifier deleted{}",
                shown(&list.path),
                list.alerts.join(", "),
                if list.by_poqexec_cmdline {
                    ", SOFTWARE PoqexecCmdline deleted"
                } else {
                    ""
                }
            )?;
        } else {
            writeln!(
                w,
                "  the action list {} runs at the next boot and has alerts ({}); --disable-action-list also disables it",
                shown(&list.path),
                list.alerts.join(", ")
            )?;
        }
    }
    let after = &plan.after.summary;
    writeln!(
        w,
        "after the fix: {} downgrade, {} overridden",
        after.count(Verdict::Downgrade),
        after.count(Verdict::Overridden)
    )
}

/// What `recover` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recovered {
    pub hive: String,
    pub out: String,
    /// The hive was dirty on disk.
    pub was_dirty: bool,
    /// Log entries were applied (otherwise the output is the primary unchanged).
    pub logs_applied: Vec<String>,
    pub sequence_before: [u32; 2],
    pub sequence_after: [u32; 2],
    pub sha256: String,
    /// A log could not be read or was rejected for what it holds: the recovered hive may
    /// miss writes.
    pub incomplete: bool,
    pub findings: Vec<Finding>,
}

impl Recovered {
    /// What `recover` prints: what was applied, what was written, and every finding (a log
    /// that was rejected is a warning), evidence text escaped.
    pub fn write_summary(&self, w: &mut dyn Write) -> io::Result<()> {
        let how = if !self.was_dirty {
            "the hive was clean; written unchanged".to_string()
        } else {
            let applied: Vec<String> = self
                .logs_applied
                .iter()
                .map(|l| shown(l).to_string())
                .collect();
            format!(
                "applied {} (sequence {}/{} -> {}/{})",
                applied.join(", "),
                self.sequence_before[0],
                self.sequence_before[1],
                self.sequence_after[0],
                self.sequence_after[1]
            )
        };
        writeln!(w, "{}: {how}", shown(&self.hive))?;
        writeln!(w, "wrote {} (sha256 {})", shown(&self.out), self.sha256)?;
        for finding in &self.findings {
            let label = match finding.severity {
                Severity::Alert => "ALERT",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            writeln!(w, "{label}: {}", shown(&finding.message))?;
        }
        if self.incomplete {
            writeln!(
                w,
                "warning: the recovered hive may be incomplete: a transaction log beside it could not be used (see above)"
            )?;
        }
        Ok(())
    }
}

/// A file the scan matched but did not record, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// How many files one pattern matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatternCount {
    pub pattern: String,
    pub files: usize,
}

/// What `--write-baseline` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    pub out: String,
    pub sha256: String,
    pub entries: usize,
    pub patterns: Vec<PatternCount>,
    pub skipped: Vec<Skipped>,
}

impl Written {
    /// What `verify --write-baseline` prints, evidence text escaped.
    pub fn write_summary(&self, w: &mut dyn Write) -> io::Result<()> {
        for pattern in &self.patterns {
            writeln!(w, "{}: {} file(s)", shown(&pattern.pattern), pattern.files)?;
        }
        for skipped in &self.skipped {
            writeln!(
                w,
                "note: left out {}: {}",
                shown(&skipped.path),
                shown(&skipped.reason)
            )?;
        }
        writeln!(
            w,
            "wrote {}: {} entries (sha256 {})",
            shown(&self.out),
            self.entries,
            self.sha256
        )
    }
}
