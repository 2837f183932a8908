//! Output of `nextboot version`.

use std::io::{self, Write};

use super::Style;
use crate::text::{escaped, shown};
use crate::version::VersionEntry;

pub fn write_versions_table(
    entries: &[VersionEntry],
    style: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let width = entries
        .iter()
        .map(|e| escaped(&e.path).chars().count())
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
            (Some(error), _) => style.paint(&format!("error: {}", shown(error)), "31"),
            (None, Some(reason)) => style.paint(&format!("unversioned: {}", shown(reason)), "33"),
            (None, None) => {
                escaped(entry.file_version_string.as_deref().unwrap_or_default()).into_owned()
            }
        };
        writeln!(
            out,
            "{:<width$}  {:<6}  {:<23}  {:<23}  {tail}",
            escaped(&entry.path),
            format,
            version(entry.file_version),
            version(entry.product_version),
        )?;
    }
    Ok(())
}

pub fn write_versions_json(entries: &[VersionEntry], out: &mut dyn Write) -> io::Result<()> {
    crate::text::to_json_pretty(&mut *out, entries)?;
    writeln!(out)
}
