//! `verify`: installed files against a baseline of minimum versions, offline.
//!
//! Microsoft's Qfecheck checked, on a live system, that the files updates had installed were
//! not older than the versions the updates recorded. `verify` does the same for an offline
//! image against a baseline (YAML, `docs/verify.md`): for each file the baseline lists, is it
//! there, is its binary file version at least the minimum, and, when the baseline pins a
//! SHA-256, is it exactly that file.
//!
//! Paths go through the volume stage ([`Volumes`]) exactly as `check`'s do: case-insensitive,
//! 8.3 short names, links followed only inside the volume, never `..`. Versions are read by
//! [`read_pe_version`]. [`write_baseline`] writes a baseline from a known-good image.
//!
//! Here: the check of each entry. The baseline file (its paths, reading and checking the YAML)
//! is `baseline`, the `--include` patterns `patterns`, and `--write-baseline` (the scan and
//! the file it writes) `write`; it reads each file through the same `look` as the check.

mod baseline;
mod patterns;
mod write;

pub use baseline::{
    parse_baseline_path, Baseline, BaselineEntry, BaselineInvalid, Target, BASELINE_FORMAT,
};
pub use patterns::Pattern;
pub use write::{baseline_yaml, scan, write_baseline, Scan, WriteOptions};

use std::io;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use rayon::prelude::*;
use thiserror::Error;

use crate::output::OutputError;
pub use crate::report::VerifyState as State;
use crate::report::{BaselineSection, Tool, VerifyEntry, VerifyReport, VerifySummary};
pub use crate::report::{PatternCount, Skipped, Written};
use crate::version::{read_pe_version, FileVersion};
use crate::volume::{fold, parse_nt_path, EntryKind, PathKey, Volumes};

/// Why `verify` (or `--write-baseline`) could not examine its input at all (exit status 2).
#[derive(Debug, Error, Diagnostic)]
pub enum VerifyError {
    #[error("ROOT {path} does not exist or is not a directory")]
    #[diagnostic(
        code(nextboot::verify::root_missing),
        help(
            "mount the image read-only and pass the directory where its system volume is mounted"
        )
    )]
    RootMissing { path: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Mount(#[from] crate::volume::MountError),

    #[error("cannot read the baseline {path}")]
    #[diagnostic(code(nextboot::verify::baseline_unreadable))]
    BaselineUnreadable {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    BaselineInvalid(Box<BaselineInvalid>),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Output(#[from] OutputError),

    #[error("cannot list {dir}")]
    #[diagnostic(
        code(nextboot::verify::list),
        help("a baseline is written only from an image that can be read in full")
    )]
    CannotList {
        dir: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {path}: {reason}")]
    #[diagnostic(
        code(nextboot::verify::read),
        help("a baseline is written only from an image that can be read in full")
    )]
    CannotRead { path: String, reason: String },

    #[error("no --include pattern given")]
    #[diagnostic(
        code(nextboot::verify::no_pattern),
        help("name the files to cover, relative to the system drive: --include 'Windows\\System32\\*.dll'")
    )]
    NoPattern,

    #[error("{} matched no file: {}", plural_word(patterns.len(), "pattern", "patterns"), patterns.join(", "))]
    #[diagnostic(
        code(nextboot::verify::nothing_matched),
        help("patterns are Windows paths relative to the system drive, any case: * and ? within a name, ** for any number of folders; links are not followed")
    )]
    NothingMatched { patterns: Vec<String> },

    #[error("nothing to write: the {matched} file(s) matched have no version resource")]
    #[diagnostic(
        code(nextboot::verify::nothing_to_write),
        help("--with-sha256 records files without a version by their hash")
    )]
    NothingToWrite { matched: usize },
}

fn plural_word(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The inputs of one `verify`.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The mounted Windows system volume.
    pub root: PathBuf,
    /// The letter Windows gave ROOT (`C`).
    pub system_drive: char,
    /// Which partition of a disk image ROOT is, when several hold Windows.
    pub partition: Option<u32>,
    /// Hash every file found, not only those the baseline gives a SHA-256 for.
    pub hash_all: bool,
}

/// Reads the baseline and checks ROOT against it.
pub fn verify_file(options: &VerifyOptions, baseline: &Path) -> Result<VerifyReport, VerifyError> {
    check_root(&options.root)?;
    let baseline = Baseline::read(baseline)?;
    verify(options, &baseline)
}

/// Checks every entry of `baseline` against ROOT. Problems with single files are states in
/// the report; only a missing ROOT is an error.
pub fn verify(options: &VerifyOptions, baseline: &Baseline) -> Result<VerifyReport, VerifyError> {
    let volumes = mount(&options.root, options.system_drive, options.partition)?;
    let entries: Vec<VerifyEntry> = baseline
        .entries
        .par_iter()
        .map(|entry| examine(&volumes, entry, options.system_drive, options.hash_all))
        .collect();
    Ok(VerifyReport {
        tool: Tool::default(),
        root: options.root.display().to_string(),
        system_drive: format!("{}:", options.system_drive),
        baseline: BaselineSection {
            path: baseline.path.clone(),
            sha256: baseline.sha256.clone(),
            format: baseline.format,
            entries: baseline.entries.len(),
        },
        summary: VerifySummary::of(&entries),
        entries,
    })
}

fn check_root(root: &Path) -> Result<(), VerifyError> {
    if root.is_dir() || crate::volume::is_image(root) {
        Ok(())
    } else {
        Err(VerifyError::RootMissing {
            path: root.display().to_string(),
        })
    }
}

fn mount(root: &Path, system_drive: char, partition: Option<u32>) -> Result<Volumes, VerifyError> {
    check_root(root)?;
    let mut volumes = crate::volume::mount(&crate::volume::MountSpec {
        root: Some(root.to_path_buf()),
        system_drive: system_drive.to_ascii_uppercase(),
        partition,
        ..Default::default()
    })?;
    // For `\SystemRoot` paths; without a Windows directory they are unresolved, with a reason.
    volumes.find_windows_dir();
    Ok(volumes)
}

/// What the disk holds at a baseline path, before any comparison.
#[derive(Default)]
struct Found {
    /// Decided without a comparison (`unresolved`, `missing`, `unreadable`), with why.
    failure: Option<(State, String)>,
    /// Where it is on the host, when something is there.
    path: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
    version: Option<FileVersion>,
    /// Why a readable file has no binary file version.
    unversioned: Option<String>,
}

/// Resolves a baseline path through the volume stage and reads the file's version (and, with
/// `hash`, its SHA-256).
fn look(volumes: &Volumes, target: &Target, system_drive: char, hash: bool) -> Found {
    let failed = |state: State, why: String, path: Option<String>| Found {
        failure: Some((state, why)),
        path,
        ..Found::default()
    };
    let nt_path = target.nt_path(system_drive);
    let resolved = match volumes.resolve(&nt_path) {
        Ok(resolved) => resolved,
        Err(unresolved) => return failed(State::Unresolved, unresolved.to_string(), None),
    };
    let Some(disk) = resolved.entry else {
        let why = missing_reason(volumes, &resolved.key, &nt_path);
        return failed(State::Missing, why, None);
    };
    let mount = resolved.key.mount();
    let names = disk.names();
    let path = Some(volumes.display(mount, &names));
    match disk.kind {
        EntryKind::File => {}
        EntryKind::Directory => {
            return failed(State::Missing, "a folder is there, not a file".into(), path)
        }
        _ => {
            let why = "something other than a regular file is there".into();
            return failed(State::Missing, why, path);
        }
    }
    let evidence = match volumes.open(mount, &names) {
        Ok(evidence) => evidence,
        Err(err) => {
            let why = format!("cannot read the file: {err}");
            return failed(State::Unreadable, why, path);
        }
    };
    let (version, unversioned) = match read_pe_version(&evidence) {
        Ok(pe) => (pe.file_version(), pe.unversioned_reason()),
        Err(err) => (None, Some(err.to_string())),
    };
    Found {
        failure: None,
        path,
        size: Some(evidence.len() as u64),
        sha256: hash.then(|| evidence.sha256()),
        unversioned: match version {
            Some(_) => None,
            None => Some(unversioned.unwrap_or_else(|| "no binary file version".into())),
        },
        version,
    }
}

/// One entry against the disk: the first state that applies, in the order of [`State`].
fn examine(
    volumes: &Volumes,
    entry: &BaselineEntry,
    system_drive: char,
    hash_all: bool,
) -> VerifyEntry {
    let found = look(
        volumes,
        &entry.target,
        system_drive,
        hash_all || entry.sha256.is_some(),
    );
    let mut report = VerifyEntry {
        path: entry.path.clone(),
        expected_min_version: entry.min_version,
        expected_sha256: entry.sha256.clone(),
        state: State::Ok,
        found_version: found.version,
        found_path: found.path,
        sha256: found.sha256,
        reason: String::new(),
        size: found.size,
        baseline_line: entry.line,
    };
    let (state, reason) = match found.failure {
        Some(failure) => failure,
        None => decide(entry, found.version, found.unversioned, &report.sha256),
    };
    report.state = state;
    report.reason = reason;
    report
}

/// The state of a file that was read: versions first, then the hash.
fn decide(
    entry: &BaselineEntry,
    found: Option<FileVersion>,
    unversioned: Option<String>,
    sha256: &Option<String>,
) -> (State, String) {
    let got = sha256.as_deref().unwrap_or_default();
    let hash_differs = entry.sha256.as_ref().is_some_and(|want| want != got);
    let hash_note = match &entry.sha256 {
        None => String::new(),
        Some(_) if !hash_differs => ", and the SHA-256 matches".to_string(),
        Some(want) => format!("; the SHA-256 also differs ({got} is not {want})"),
    };
    match (entry.min_version, found) {
        (Some(min), None) => (
            State::Unversioned,
            format!(
                "{}; the baseline requires at least {min}",
                unversioned.unwrap_or_else(|| "no binary file version".into())
            ),
        ),
        (Some(min), Some(version)) if version < min => (
            State::Older,
            format!("version {version} is older than the minimum {min}{hash_note}"),
        ),
        _ if hash_differs => (
            State::HashMismatch,
            format!(
                "the SHA-256 is {got}, the baseline expects {}{}",
                entry.sha256.as_deref().unwrap_or_default(),
                match (entry.min_version, found) {
                    (Some(min), Some(version)) => {
                        format!(" (version {version} is at least the minimum {min})")
                    }
                    _ => String::new(),
                }
            ),
        ),
        (Some(min), Some(version)) => (
            State::Ok,
            format!("version {version} is at least {min}{hash_note}"),
        ),
        (None, _) if entry.sha256.is_some() => (State::Ok, "the SHA-256 matches".to_string()),
        (None, _) => (State::Ok, "the file is there".to_string()),
    }
}

/// "no such file", with how far the path does exist.
fn missing_reason(volumes: &Volumes, key: &PathKey, nt_path: &str) -> String {
    let mut existing = key.parent();
    while let Some(dir) = existing {
        if let Ok(Some(entry)) = volumes.stat(&dir) {
            let depth = dir.components().count();
            let next = key.components().nth(depth).map(str::to_string);
            // The name as the baseline spells it, when the path was followed as written (no
            // link on the way).
            let next = next.map(|folded| {
                let written = parse_nt_path(nt_path).ok().and_then(|parsed| {
                    let total = key.components().count();
                    let skip = total.checked_sub(parsed.components.len())?;
                    let same = key
                        .components()
                        .skip(skip)
                        .zip(&parsed.components)
                        .all(|(k, p)| fold(p) == k);
                    same.then(|| parsed.components.get(depth.checked_sub(skip)?).cloned())?
                });
                written.unwrap_or(folded)
            });
            let folder = volumes.display(key.mount(), &entry.names());
            return match (entry.kind, next) {
                (EntryKind::Directory, Some(next)) => {
                    format!("no such file: {folder} has no entry {next}")
                }
                (EntryKind::Link, _) => {
                    format!("no such file: the link {folder} leads to nothing on this volume")
                }
                (_, _) => format!("no such file: {folder} is not a folder"),
            };
        }
        existing = dir.parent();
    }
    "no such file".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_their_words() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.to_string())
            );
        }
        assert_eq!(State::HashMismatch.as_str(), "hash-mismatch");
    }
}
