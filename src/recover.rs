//! `recover`: write a dirty hive with its transaction logs applied, for other tools.

use std::io::Write;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use crate::hive::{self, BaseBlock, HiveError, LogChoice};
use crate::Finding;

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
    pub findings: Vec<Finding>,
}

#[derive(Debug, Error, Diagnostic)]
pub enum RecoverError {
    #[error("cannot use the hive {path}")]
    #[diagnostic(code(nextboot::hive_invalid))]
    Hive {
        path: String,
        #[source]
        #[diagnostic_source]
        source: HiveError,
    },

    #[error("{out} already exists")]
    #[diagnostic(
        code(nextboot::recover::exists),
        help("nextboot never overwrites a file: choose a new path for --out")
    )]
    Exists { out: String },

    #[error("--out {out} is one of the input files")]
    #[diagnostic(
        code(nextboot::recover::evidence),
        help("evidence is never written: choose a path outside the inputs")
    )]
    WouldOverwriteEvidence { out: String },

    #[error("the hive is dirty and no transaction log could be applied, so there is nothing recovered to write")]
    #[diagnostic(
        code(nextboot::recover::nothing_applied),
        help("name the logs with --log FILE if they are not beside the hive as NAME.LOG1/.LOG2")
    )]
    NothingApplied { findings: Vec<String> },

    #[error("cannot write {out}")]
    #[diagnostic(code(nextboot::recover::write))]
    Write {
        out: String,
        #[source]
        source: std::io::Error,
    },
}

/// Applies the logs of `hive` and writes the result to `out`, a new file. A clean hive is
/// written unchanged (and said so).
pub fn recover(hive_path: &Path, logs: &LogChoice, out: &Path) -> Result<Recovered, RecoverError> {
    let invalid = |source| RecoverError::Hive {
        path: hive_path.display().to_string(),
        source,
    };
    let loaded = hive::load(hive_path, logs).map_err(invalid)?;
    let before = BaseBlock::parse(&loaded.primary).map_err(invalid)?;
    let shown = out.display().to_string();
    let same_file = |a: &Path| match (a.canonicalize(), absolute_parent(out)) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    };
    if same_file(hive_path) || loaded.log_paths.iter().any(|log| same_file(log)) {
        return Err(RecoverError::WouldOverwriteEvidence { out: shown });
    }
    if before.is_dirty() && !loaded.is_recovered() {
        return Err(RecoverError::NothingApplied {
            findings: loaded.findings.iter().map(|f| f.message.clone()).collect(),
        });
    }
    let bytes = loaded.bytes();
    let after = BaseBlock::parse(bytes).map_err(invalid)?;
    // create_new: never replace an existing file, evidence or not.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => RecoverError::Exists { out: shown.clone() },
            _ => RecoverError::Write {
                out: shown.clone(),
                source,
            },
        })?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|source| RecoverError::Write {
            out: shown.clone(),
            source,
        })?;
    Ok(Recovered {
        hive: hive_path.display().to_string(),
        out: shown,
        was_dirty: before.is_dirty(),
        logs_applied: loaded
            .log_uses()
            .iter()
            .filter(|log| log.applied)
            .map(|log| log.name.clone())
            .collect(),
        sequence_before: [before.primary_sequence, before.secondary_sequence],
        sequence_after: [after.primary_sequence, after.secondary_sequence],
        sha256: crate::evidence::sha256_hex(bytes),
        findings: loaded.findings,
    })
}

/// `out` as an absolute path through its (existing) parent, for comparing with inputs.
fn absolute_parent(out: &Path) -> Option<PathBuf> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(out.file_name()?))
}
