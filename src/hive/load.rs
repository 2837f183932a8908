//! Loading a hive from evidence: the primary file, and when it is dirty its transaction logs
//! applied into an owned copy (a clean hive stays a zero-copy mapping).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::log::{recover, LogFile, LogUse, Recovery};
use super::{BaseBlock, HiveError};
use crate::evidence::{Evidence, Folder, HostFolder};
use crate::finding::Finding;

/// Which transaction logs to use for a dirty hive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogChoice {
    /// `NAME.LOG1`, `NAME.LOG2`, `NAME.LOG` beside the hive, any case.
    Beside,
    /// Exactly these files.
    Files(Vec<PathBuf>),
    /// None: read the primary as it is.
    Ignore,
}

/// A hive ready to read, and how it was obtained.
#[derive(Debug)]
pub struct LoadedHive {
    pub path: PathBuf,
    pub primary: Evidence,
    /// The primary file's base block, as on disk (parsed once, here).
    pub base: BaseBlock,
    /// The hive with its logs applied, when any log entry was applied.
    pub recovered: Option<Evidence>,
    /// What log replay did, when it was attempted (dirty hive, logs not ignored).
    pub recovery: Option<Recovery>,
    /// The log files examined, in the order given to replay.
    pub log_paths: Vec<PathBuf>,
    /// Logs that could not be opened or read.
    pub unreadable_logs: usize,
    pub findings: Vec<Finding>,
}

impl LoadedHive {
    /// The bytes to read: recovered if logs were applied, the primary otherwise.
    pub fn bytes(&self) -> &[u8] {
        self.recovered.as_deref().unwrap_or(&self.primary)
    }

    /// Dirty on disk and made clean by its logs.
    pub fn is_recovered(&self) -> bool {
        self.recovered.is_some()
    }

    /// The logs that contributed, and those that did not.
    pub fn log_uses(&self) -> &[LogUse] {
        self.recovery.as_ref().map_or(&[], |r| r.logs.as_slice())
    }

    /// The hive as read may miss writes Windows made: dirty and not recovered, or recovered
    /// while a log beside it could not be read or was rejected for what it holds.
    pub fn is_incomplete(&self) -> bool {
        self.base.is_dirty()
            && (!self.is_recovered()
                || self.unreadable_logs > 0
                || self.log_uses().iter().any(|log| log.damaged))
    }
}

/// Opens a hive and, when it is dirty, applies its transaction logs as Windows would at load
/// time. A log that is corrupt, stale or from another hive is skipped with a note; only a
/// hive that cannot be read at all is an error.
///
/// The path `-` is standard input, read whole into memory (bounded by
/// [`crate::evidence::STDIN_LIMIT`]); such a hive has no folder, so its logs must be named.
pub fn load(path: &Path, logs: &LogChoice) -> Result<LoadedHive, HiveError> {
    let unreadable = |source| HiveError::Unreadable {
        path: path.display().to_string(),
        source,
    };
    if is_stdin(path) {
        let primary =
            crate::evidence::read_stdin(crate::evidence::STDIN_LIMIT).map_err(unreadable)?;
        return load_evidence(path.to_path_buf(), primary, None, logs);
    }
    let primary = Evidence::open(path).map_err(unreadable)?;
    let folder = HostFolder::of(path);
    let name = path.file_name().unwrap_or_default();
    load_evidence(path.to_path_buf(), primary, Some((&folder, name)), logs)
}

/// [`load`] for the hive `name` in `folder` (a folder of a volume in an image, say): its logs
/// are looked for in the same folder.
pub fn load_in(
    folder: &dyn Folder,
    name: &OsStr,
    logs: &LogChoice,
) -> Result<LoadedHive, HiveError> {
    let path = folder.path(name);
    let primary = folder.open(name).map_err(|source| HiveError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    load_evidence(path, primary, Some((folder, name)), logs)
}

/// The hive `primary` (shown as `path`), found as `name` in `folder` when it has one.
fn load_evidence(
    path: PathBuf,
    primary: Evidence,
    beside: Option<(&dyn Folder, &OsStr)>,
    logs: &LogChoice,
) -> Result<LoadedHive, HiveError> {
    let path = path.as_path();
    let base = BaseBlock::parse(&primary)?;
    let mut loaded = LoadedHive {
        path: path.to_path_buf(),
        primary,
        base,
        recovered: None,
        recovery: None,
        log_paths: Vec::new(),
        unreadable_logs: 0,
        findings: Vec::new(),
    };
    if !loaded.base.is_dirty() {
        return Ok(loaded);
    }
    // Beside the hive, logs are opened through its folder by name (the path shown may be
    // inside an image); named logs are host files.
    let mut beside_names = Vec::new();
    loaded.log_paths = match logs {
        LogChoice::Ignore => {
            loaded.findings.push(Finding::warning(
                "logs-ignored",
                "the hive is dirty and --no-logs was given: it is read as it is on disk, without its transaction logs".into(),
            ));
            return Ok(loaded);
        }
        LogChoice::Files(files) => files.clone(),
        LogChoice::Beside => beside.map_or_else(Vec::new, |(folder, name)| {
            beside_names = logs_in(folder, name);
            beside_names.iter().map(|log| folder.path(log)).collect()
        }),
    };
    let mut opened = Vec::new();
    for (i, log) in loaded.log_paths.iter().enumerate() {
        let evidence = match (beside, beside_names.get(i)) {
            (Some((folder, _)), Some(name)) => folder.open(name),
            _ => Evidence::open(log),
        };
        match evidence {
            Ok(evidence) => opened.push((log.display().to_string(), evidence)),
            Err(err) => {
                loaded.unreadable_logs += 1;
                loaded.findings.push(Finding::warning(
                    "log-unreadable",
                    format!(
                        "cannot read the transaction log {}: {err}; the hive may miss the writes it held",
                        log.display()
                    ),
                ));
            }
        }
    }
    if opened.is_empty() {
        let message = match logs {
            LogChoice::Files(_) => "none of the transaction logs given could be read".to_string(),
            _ if is_stdin(path) => "the hive is dirty and came from standard input, which has no folder to find its transaction logs in: name them with --log FILE".to_string(),
            _ => format!(
                "no transaction log found beside {} (looked for .LOG1, .LOG2, .LOG in any case)",
                path.display()
            ),
        };
        loaded
            .findings
            .push(Finding::warning("logs-missing", message));
        return Ok(loaded);
    }
    let files: Vec<LogFile<'_>> = opened
        .iter()
        .map(|(name, evidence)| LogFile {
            name: name.clone(),
            bytes: evidence,
        })
        .collect();
    match recover(&loaded.primary, &files) {
        Ok(recovery) => {
            for log in recovery.logs.iter().filter(|log| !log.applied) {
                let why = log.notes.first().map_or("not applied", String::as_str);
                let mut message = format!("transaction log {}: {why}", log.name);
                if log.damaged {
                    message.push_str("; the hive may miss the writes this log held");
                }
                loaded
                    .findings
                    .push(Finding::warning("log-not-applied", message));
            }
            if recovery.entries_applied() > 0 {
                loaded.recovered = Some(Evidence::from_vec(
                    path.to_path_buf(),
                    recovery.bytes.clone(),
                ));
            } else {
                loaded.findings.push(Finding::warning(
                    "logs-not-applied",
                    "the transaction logs hold nothing newer than the primary file, so the dirty primary is read as it is".into(),
                ));
            }
            loaded.recovery = Some(recovery);
        }
        Err(err) => loaded.findings.push(
            Finding::warning(
                "recovery-failed",
                format!("the transaction logs cannot be applied: {err}"),
            )
            .with_detail(&err),
        ),
    }
    Ok(loaded)
}

/// Whether a hive path names standard input (`--hive -`).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// `SYSTEM.LOG1`, `SYSTEM.LOG2`, `SYSTEM.LOG` beside the hive `name` in `folder`, any case,
/// in that order: regular files only.
pub fn logs_in(folder: &dyn Folder, name: &OsStr) -> Vec<OsString> {
    // Listed without touching the folder's access time: it is evidence too.
    let Ok(entries) = folder.list() else {
        return Vec::new();
    };
    let name = name.to_string_lossy().to_uppercase();
    let mut found: Vec<(usize, OsString)> = Vec::new();
    for entry in entries {
        let candidate = entry.name.to_string_lossy().to_uppercase();
        let rank = [".LOG1", ".LOG2", ".LOG"]
            .iter()
            .position(|ext| candidate == format!("{name}{ext}"));
        if let Some(rank) = rank {
            if entry.kind == crate::evidence::ListedKind::File {
                found.push((rank, entry.name));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}
