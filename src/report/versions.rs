//! Output of `nextboot version`.

use std::io::{self, Write};

use super::Style;
use crate::version::VersionEntry;

pub fn write_versions_table(
    entries: &[VersionEntry],
    style: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let width = entries
        .iter()
        .map(|e| e.path.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<width$}  {:<6}  {:<23}  {:<23}  FileVersion string",
        "file", "format", "file version", "product version"
    )?;
    for entry in entries {
        let version =
            |v: Option<crate::version::FileVersion>| v.map_or("-".into(), |v| v.to_string());
        let format = entry.pe_format.map_or("-".into(), |f| f.to_string());
        let tail = match (&entry.error, &entry.unversioned_reason) {
            (Some(error), _) => style.paint(&format!("error: {error}"), "31"),
            (None, Some(reason)) => style.paint(&format!("unversioned: {reason}"), "33"),
            (None, None) => entry.file_version_string.clone().unwrap_or_default(),
        };
        writeln!(
            out,
            "{:<width$}  {:<6}  {:<23}  {:<23}  {tail}",
            entry.path,
            format,
            version(entry.file_version),
            version(entry.product_version),
        )?;
    }
    Ok(())
}

pub fn write_versions_json(entries: &[VersionEntry], out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, entries)?;
    writeln!(out)
}
