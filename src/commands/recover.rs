//! `recover`: write a dirty hive with its transaction logs applied, for other tools.

use std::path::Path;

use miette::Diagnostic;
use thiserror::Error;

use crate::hive::{self, HiveError, LogChoice};
use crate::output::{Evidence, OutputError, OutputFile};
pub use crate::report::Recovered;

#[derive(Debug, Error, Diagnostic)]
pub enum RecoverError {
    #[error("cannot use the hive {path}")]
    #[diagnostic(code(nextboot::recover::hive))]
    Hive {
        path: String,
        #[source]
        #[diagnostic_source]
        source: HiveError,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Output(#[from] OutputError),

    #[error("the hive is dirty and no transaction log could be applied, so there is nothing recovered to write")]
    #[diagnostic(
        code(nextboot::recover::nothing_applied),
        help("name the logs with --log FILE if they are not beside the hive as NAME.LOG1/.LOG2")
    )]
    NothingApplied { findings: Vec<String> },
}

/// Applies the logs of `hive` and writes the result to `out`, a new file outside the hive's
/// folder. A clean hive is written unchanged (and said so).
pub fn recover(hive_path: &Path, logs: &LogChoice, out: &Path) -> Result<Recovered, RecoverError> {
    let invalid = |source| RecoverError::Hive {
        path: hive_path.display().to_string(),
        source,
    };
    let mut evidence = Evidence::default();
    if !hive::is_stdin(hive_path) {
        evidence.file(hive_path);
        let folder = hive_path.parent().filter(|p| !p.as_os_str().is_empty());
        evidence.folder("the hive's folder", folder.unwrap_or(Path::new(".")));
    }
    if let LogChoice::Files(files) = logs {
        for log in files {
            evidence.file(log);
        }
    }
    let output = OutputFile::new(out, &evidence)?;
    let loaded = hive::load(hive_path, logs).map_err(invalid)?;
    let before = &loaded.base;
    if before.is_dirty() && !loaded.is_recovered() {
        return Err(RecoverError::NothingApplied {
            findings: loaded.findings.iter().map(|f| f.message.clone()).collect(),
        });
    }
    let bytes = loaded.bytes();
    // The sequence numbers replay wrote, or the primary's when it was clean.
    let sequence_after = match (&loaded.recovery, loaded.is_recovered()) {
        (Some(recovery), true) => [recovery.sequence_after.0, recovery.sequence_after.1],
        _ => [before.primary_sequence, before.secondary_sequence],
    };
    output.write(bytes)?;
    Ok(Recovered {
        hive: hive_path.display().to_string(),
        out: output.shown().to_string(),
        was_dirty: before.is_dirty(),
        logs_applied: loaded
            .log_uses()
            .iter()
            .filter(|log| log.applied)
            .map(|log| log.name.clone())
            .collect(),
        sequence_before: [before.primary_sequence, before.secondary_sequence],
        sequence_after,
        sha256: crate::evidence::sha256_hex(bytes),
        incomplete: loaded.is_incomplete(),
        findings: loaded.findings,
    })
}
