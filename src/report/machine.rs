//! Formats for programs: JSON, JSON lines, CSV, YAML.

use std::io::{self, Write};
use std::sync::Arc;

use super::Report;
use crate::boot::FileFacts;
use crate::queue::Origin;

pub fn write_json<W: Write + ?Sized>(report: &Report, out: &mut W) -> io::Result<()> {
    crate::text::to_json_pretty(&mut *out, report)?;
    writeln!(out)
}

/// One operation object per line, no envelope. Each line stands alone in a timeline, so it
/// also carries the context it needs: the hive, whether it was dirty, the control set used.
pub fn write_jsonl<W: Write + ?Sized>(report: &Report, out: &mut W) -> io::Result<()> {
    #[derive(serde::Serialize)]
    struct Line<'r> {
        #[serde(flatten)]
        operation: super::OperationReport<'r>,
        hive_path: &'r str,
        hive_dirty: bool,
        control_set: u32,
        provenance: &'r super::Provenance,
    }
    for operation in report.operations.iter() {
        let line = Line {
            operation,
            hive_path: &report.hive.path,
            hive_dirty: report.hive.dirty,
            control_set: report.control_set.used,
            provenance: &report.provenance,
        };
        crate::text::to_json_line(&mut *out, &line)?;
        writeln!(out)?;
    }
    Ok(())
}

/// The CSV header; fixed, so that spreadsheets and timeline tools can rely on the columns.
pub const CSV_HEADER: [&str; 18] = [
    "index",
    "value",
    "action",
    "source",
    "destination",
    "replace_existing",
    "source_version",
    "target_version",
    "verdict",
    "reason",
    "source_path",
    "target_path",
    "source_file_version_string",
    "target_file_version_string",
    "hive_dirty",
    "control_set",
    "run_started_utc",
    "session_manager_last_written_utc",
];

/// One row, every cell neutralised for spreadsheets ([`crate::text::csv_cell`]).
pub(super) fn write_cells<W: Write, S: AsRef<str>>(
    writer: &mut csv::Writer<W>,
    cells: &[S],
) -> io::Result<()> {
    struct Cell<'a>(std::borrow::Cow<'a, str>);
    impl AsRef<[u8]> for Cell<'_> {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    writer
        .write_record(
            cells
                .iter()
                .map(|c| Cell(crate::text::csv_cell(c.as_ref()))),
        )
        .map_err(io::Error::from)
}

/// One row per operation (RFC 4180 quoting; cells that would start a formula get a `'`).
pub fn write_csv<W: Write + ?Sized>(report: &Report, out: &mut W) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_HEADER)?;
    let mut record = Vec::with_capacity(CSV_HEADER.len());
    let text = |v: Option<String>| v.unwrap_or_default();
    let path = |facts: &Option<Arc<FileFacts>>| text(facts.as_ref().map(|f| f.path.to_string()));
    let version_string = |facts: &Option<Arc<FileFacts>>| {
        text(
            facts
                .as_ref()
                .and_then(|f| f.file_version_string.as_deref().map(str::to_string)),
        )
    };
    for report_op in report.operations.iter() {
        let (op, outcome) = (report_op.operation, report_op.outcome);
        record.clear();
        record.extend([
            op.index.to_string(),
            match &op.origin {
                Origin::Registry { value, .. } => value.to_string(),
                // The CSV columns are fixed; the list's coordinates are in JSON and YAML.
                Origin::ActionList { .. } => String::new(),
            },
            serde_plain(&op.action),
            op.source.stored.to_string(),
            text(op.destination.as_ref().map(|d| d.stored.to_string())),
            op.replace_existing.to_string(),
            text(report_op.source_version().map(|v| v.to_string())),
            text(report_op.target_version().map(|v| v.to_string())),
            outcome.verdict.to_string(),
            outcome.reason.to_string(),
            path(&outcome.source_file),
            path(&outcome.target_file),
            version_string(&outcome.source_file),
            version_string(&outcome.target_file),
            report.hive.dirty.to_string(),
            report.control_set.used.to_string(),
            report.provenance.started.clone(),
            text(report.provenance.session_manager_last_written.clone()),
        ]);
        write_cells(&mut writer, &record)?;
    }
    writer.flush()
}

pub fn write_yaml<W: Write + ?Sized>(report: &Report, out: &mut W) -> io::Result<()> {
    let text = crate::text::to_yaml(report)?;
    out.write_all(text.as_bytes())
}

/// A unit enum's serialised name (`"rename"`, `"SetupExecute"`).
pub(super) fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
