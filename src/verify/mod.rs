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

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::output::{Evidence, OutputError, OutputFile};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, MessageFormatter, Spanned};
use thiserror::Error;

use crate::report::{BaselineSection, Tool, VerifyEntry, VerifyReport, VerifySummary};
use crate::version::{read_pe_version, FileVersion};
use crate::volume::{fold, parse_nt_path, Anchor, DirVolume, EntryKind, PathKey, Volume, Volumes};

/// The baseline format this build reads and writes (`version:` at the top of the file).
pub const BASELINE_FORMAT: u32 = 1;

/// The state of one baseline entry: one word, the first that applies in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
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

impl State {
    /// Every state, in the order of precedence (and of the summary).
    pub const ALL: [State; 7] = [
        State::Ok,
        State::Older,
        State::Missing,
        State::Unversioned,
        State::HashMismatch,
        State::Unresolved,
        State::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Older => "older",
            State::Missing => "missing",
            State::Unversioned => "unversioned",
            State::HashMismatch => "hash-mismatch",
            State::Unresolved => "unresolved",
            State::Unreadable => "unreadable",
        }
    }

    pub fn parse(word: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A baseline: the files to check and what they must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// Where it was read from, as given.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// The `version:` of the format (always [`BASELINE_FORMAT`] once read).
    pub format: u32,
    pub entries: Vec<BaselineEntry>,
}

/// One file of a baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineEntry {
    /// As written in the baseline.
    pub path: String,
    pub target: Target,
    /// The lowest acceptable binary file version.
    pub min_version: Option<FileVersion>,
    /// The exact content, lower-case hex.
    pub sha256: Option<String>,
    /// Line of the entry's `path` in the baseline (1-based; 0 when not read from a file).
    pub line: u64,
}

/// Where a baseline path points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Relative to the root of the system drive (`Windows\System32\ntdll.dll`): components.
    SystemDrive(Vec<String>),
    /// An NT path for the volume stage: `\??\C:\...` or `\SystemRoot\...`.
    Nt(String),
}

impl Target {
    /// The NT path the volume stage resolves, with the system drive's letter.
    pub fn nt_path(&self, system_drive: char) -> String {
        match self {
            Target::SystemDrive(components) => {
                format!("\\??\\{system_drive}:\\{}", components.join("\\"))
            }
            Target::Nt(path) => path.clone(),
        }
    }
}

/// Reads a baseline path as written: `C:\Windows\...`, `\??\C:\...` (also `\DosDevices\`,
/// `\GLOBAL??\`, `\\?\C:\...`), `\SystemRoot\...`, `%SystemRoot%\...` / `%windir%\...`,
/// `%SystemDrive%\...`, or relative to the system drive (`Windows\System32\ntdll.dll`). `/`
/// is taken as `\`, as Windows does. The error says why a path is not accepted.
pub fn parse_baseline_path(text: &str) -> Result<Target, String> {
    if text.is_empty() {
        return Err("the path is empty".into());
    }
    if text.trim() != text {
        return Err("the path begins or ends with white space".into());
    }
    let path = text.replace('/', "\\");
    if path.ends_with('\\') {
        return Err(
            "the path ends with \\, so it names a folder; baseline entries are files".into(),
        );
    }
    let strip = |prefix: &str| {
        path.get(..prefix.len())
            .filter(|head| head.eq_ignore_ascii_case(prefix))
            .map(|_| &path[prefix.len()..])
    };
    let nt = if let Some(rest) = strip("%SystemRoot%").or_else(|| strip("%windir%")) {
        format!("\\SystemRoot{rest}")
    } else if let Some(rest) = strip("%SystemDrive%\\") {
        return relative(rest);
    } else if let Some(rest) = strip("\\\\?\\") {
        format!("\\??\\{rest}")
    } else if path.starts_with("\\\\") {
        return Err(
            "a UNC or device path (\\\\server\\share, \\\\.\\...) is not on the image".into(),
        );
    } else if path.starts_with('\\') {
        let nt_prefixes = ["\\??\\", "\\DosDevices\\", "\\GLOBAL??\\", "\\SystemRoot"];
        if !nt_prefixes.iter().any(|p| strip(p).is_some()) && strip("\\Device\\").is_none() {
            return Err(
                "a path that starts with \\ must be an NT path (\\??\\C:\\..., \\SystemRoot\\...); write C:\\Windows\\... or Windows\\... for a path on the system drive"
                    .into(),
            );
        }
        path.clone()
    } else if path.as_bytes().get(1) == Some(&b':') {
        if path.as_bytes().get(2) != Some(&b'\\') {
            return Err(
                "a drive-relative path (X:name) has no fixed meaning; write X:\\...".into(),
            );
        }
        format!("\\??\\{path}")
    } else {
        return relative(&path);
    };
    let parsed = parse_nt_path(&nt).map_err(|u| u.0)?;
    match parsed.anchor {
        Anchor::Drive(_) | Anchor::SystemRoot => {}
        Anchor::VolumeGuid(_) | Anchor::Device(_) => {
            return Err(
                "verify maps only the system volume (ROOT); write C:\\... or a path relative to the system drive"
                    .into(),
            )
        }
    }
    if parsed.components.is_empty() {
        return Err("the path names the root of a volume, not a file".into());
    }
    Ok(Target::Nt(nt))
}

fn relative(path: &str) -> Result<Target, String> {
    let parsed = parse_nt_path(&format!("\\??\\C:\\{path}")).map_err(|u| u.0)?;
    Ok(Target::SystemDrive(parsed.components))
}

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

/// A baseline that is not valid YAML or not a valid baseline, pointing at the place.
#[derive(Debug, Error, Diagnostic)]
#[error("the baseline {path} is not valid: {message}{}", at(*line, *column))]
#[diagnostic(code(nextboot::verify::baseline_invalid), help("{help}"))]
pub struct BaselineInvalid {
    pub path: String,
    /// 1-based; 0 when the place is not known.
    pub line: u64,
    pub column: u64,
    pub message: String,
    #[source_code]
    source_code: NamedSource<String>,
    #[label("{message}")]
    span: Option<SourceSpan>,
    help: &'static str,
}

fn at(line: u64, column: u64) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

const FORMAT_HELP: &str = "a baseline is `version: 1` and `files:`, a list of `path:` with `min_version: a.b.c.d` and/or `sha256:` (docs/verify.md)";

/// The parts of a baseline file, as deserialised (every field checked afterwards, with its
/// place in the file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    version: Spanned<u32>,
    #[serde(default)]
    files: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: Spanned<String>,
    #[serde(default)]
    min_version: Option<Spanned<String>>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
}

/// Only the format version, read first so that a newer format is named as such rather than
/// failing on its new fields.
#[derive(Deserialize)]
struct FormatOnly {
    version: Spanned<u32>,
}

/// Limits for reading a baseline: large enough for a baseline of a whole Windows directory
/// (several hundred thousand files), still bounded. No snippets in the parser's errors: the
/// diagnostic shows the place itself ([`BaselineInvalid`]).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 20_000_000,
            max_events: 40_000_000,
        },
        with_snippet: false,
    }
}

impl Baseline {
    /// Reads and checks a baseline file.
    pub fn read(path: &Path) -> Result<Baseline, VerifyError> {
        let shown = path.display().to_string();
        // Through the evidence reader: a FIFO or a device is refused, not waited on.
        let bytes = crate::evidence::Evidence::open(path).map_err(|source| {
            VerifyError::BaselineUnreadable {
                path: shown.clone(),
                source,
            }
        })?;
        Baseline::parse(&bytes, &shown)
    }

    /// Checks a baseline held in memory; `name` is how to show it.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Baseline, VerifyError> {
        let sha256 = crate::evidence::sha256_hex(bytes);
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid = &bytes[..err.valid_up_to()];
                let text = String::from_utf8_lossy(valid).into_owned();
                let line = text.matches('\n').count() as u64 + 1;
                let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
                return Err(invalid(
                    name,
                    &text,
                    line,
                    column,
                    format!("not UTF-8 text (byte {})", err.valid_up_to()),
                ));
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let yaml_error = |err: serde_saphyr::Error| {
            let message = crate::text::escaped(
                &serde_saphyr::UserMessageFormatter.format_message(err.without_snippet()),
            )
            .into_owned();
            let (line, column) = err
                .location()
                .map_or((0, 0), |l: Location| (l.line(), l.column()));
            invalid(name, text, line, column, message)
        };
        let format: FormatOnly =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_error)?;
        if format.version.value != BASELINE_FORMAT {
            let place = format.version.referenced;
            return Err(invalid(
                name,
                text,
                place.line(),
                place.column(),
                format!(
                    "baseline format version {} is not supported; this nextboot {} reads version {BASELINE_FORMAT}",
                    format.version.value,
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        let raw: RawBaseline =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_error)?;
        let mut entries = Vec::with_capacity(raw.files.len());
        // Same spelling (folded) -> line of its first entry.
        let mut seen: HashMap<(String, Vec<String>), u64> = HashMap::new();
        for file in raw.files {
            let fail = |place: Location, message: String| {
                invalid(name, text, place.line(), place.column(), message)
            };
            let path = file.path.value;
            let place = file.path.referenced;
            let target = parse_baseline_path(&path)
                .map_err(|why| fail(place, format!("`{}`: {why}", crate::text::escaped(&path))))?;
            let min_version =
                match file.min_version {
                    Some(v) => Some(v.value.parse::<FileVersion>().map_err(|why| {
                        fail(v.referenced, crate::text::escaped(&why).into_owned())
                    })?),
                    None => None,
                };
            let sha256 = match file.sha256 {
                Some(s) => Some(parse_sha256(&s.value).map_err(|why| fail(s.referenced, why))?),
                None => None,
            };
            if min_version.is_none() && sha256.is_none() {
                return Err(fail(
                    place,
                    format!(
                        "`{}` has neither min_version nor sha256: nothing to check",
                        crate::text::escaped(&path)
                    ),
                ));
            }
            let key = match &target {
                Target::SystemDrive(components) => (String::new(), fold_all(components)),
                Target::Nt(nt) => match parse_nt_path(nt) {
                    Ok(parsed) => (format!("{:?}", parsed.anchor), fold_all(&parsed.components)),
                    Err(_) => (nt.clone(), Vec::new()),
                },
            };
            if let Some(first) = seen.insert(key, place.line()) {
                return Err(fail(
                    place,
                    format!(
                        "`{}` is listed twice (first on line {first}); give each file once",
                        crate::text::escaped(&path)
                    ),
                ));
            }
            entries.push(BaselineEntry {
                path,
                target,
                min_version,
                sha256,
                line: place.line(),
            });
        }
        Ok(Baseline {
            path: name.to_string(),
            sha256,
            format: raw.version.value,
            entries,
        })
    }
}

fn fold_all(components: &[String]) -> Vec<String> {
    components.iter().map(|c| fold(c)).collect()
}

fn parse_sha256(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{}` is not a SHA-256 (64 hexadecimal digits)",
            crate::text::escaped(text)
        ))
    }
}

fn invalid(name: &str, text: &str, line: u64, column: u64, message: String) -> VerifyError {
    let span = byte_offset(text, line, column).map(|start| {
        let rest = &text[start..];
        let len = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        SourceSpan::from((start, len))
    });
    VerifyError::BaselineInvalid(Box::new(BaselineInvalid {
        path: name.to_string(),
        line,
        column,
        message,
        source_code: NamedSource::new(name, text.to_string()),
        span,
        help: FORMAT_HELP,
    }))
}

/// The byte offset of a 1-based line and (character) column.
fn byte_offset(text: &str, line: u64, column: u64) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let start = if line == 0 {
        0
    } else {
        text.match_indices('\n').nth(line - 1)?.0 + 1
    };
    let rest = &text[start..];
    let end_of_line = rest.find(['\r', '\n']).unwrap_or(rest.len());
    let column = usize::try_from(column).ok()?.saturating_sub(1);
    let within = rest[..end_of_line]
        .char_indices()
        .nth(column)
        .map_or(end_of_line, |(i, _)| i);
    Some(start + within)
}

/// The inputs of one `verify`.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The mounted Windows system volume.
    pub root: PathBuf,
    /// The letter Windows gave ROOT (`C`).
    pub system_drive: char,
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
    let volumes = mount(&options.root, options.system_drive)?;
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
    if root.is_dir() {
        Ok(())
    } else {
        Err(VerifyError::RootMissing {
            path: root.display().to_string(),
        })
    }
}

fn mount(root: &Path, system_drive: char) -> Result<Volumes, VerifyError> {
    check_root(root)?;
    let system_drive = system_drive.to_ascii_uppercase();
    let mut volumes = Volumes::new(system_drive);
    volumes.add_drive(system_drive, Box::new(DirVolume::new(root)));
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
        Err(unresolved) => return failed(State::Unresolved, unresolved.0, None),
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

/// One `--include` pattern: a Windows path relative to the system drive, matched without
/// regard to case; `*` and `?` within one name, `**` as a whole component for any number of
/// folders (none included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// `**`: zero or more components.
    AnyDepth,
    /// One component: folded literal characters and wildcards.
    Name(Vec<Glyph>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Glyph {
    Char(char),
    /// `?`
    One,
    /// `*`
    Any,
}

impl Pattern {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a relative path (components separated by `\` or `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut states = self.start();
        for component in path.split(['\\', '/']).filter(|c| !c.is_empty()) {
            states = self.advance(&states, &fold(component));
            if states.is_empty() {
                return false;
            }
        }
        states.contains(&self.parts.len())
    }

    /// Positions in `parts` reachable before any component: 0 and what `**` may skip.
    fn start(&self) -> Vec<usize> {
        self.close(vec![0])
    }

    /// Adds the positions after every `**` that can match nothing.
    fn close(&self, mut states: Vec<usize>) -> Vec<usize> {
        let mut i = 0;
        while i < states.len() {
            let at = states[i];
            if matches!(self.parts.get(at), Some(Part::AnyDepth)) && !states.contains(&(at + 1)) {
                states.push(at + 1);
            }
            i += 1;
        }
        states.sort_unstable();
        states
    }

    /// The positions after one (folded) component.
    fn advance(&self, states: &[usize], folded: &str) -> Vec<usize> {
        let mut next = Vec::new();
        for &at in states {
            match self.parts.get(at) {
                Some(Part::AnyDepth) => next.push(at),
                Some(Part::Name(glyphs)) if glob(glyphs, folded) => next.push(at + 1),
                _ => {}
            }
        }
        next.dedup();
        self.close(next)
    }
}

/// `*` and `?` against one folded name (iterative, with one backtrack point).
fn glob(glyphs: &[Glyph], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glyphs.get(g) {
            Some(Glyph::Any) => {
                star = Some((g, n));
                g += 1;
            }
            Some(Glyph::One) => {
                g += 1;
                n += 1;
            }
            Some(Glyph::Char(c)) if *c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((star_g, star_n)) => {
                    g = star_g + 1;
                    n = star_n + 1;
                    star = Some((star_g, star_n + 1));
                }
                None => return false,
            },
        }
    }
    glyphs[g..].iter().all(|glyph| *glyph == Glyph::Any)
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Pattern, String> {
        let relative_hint = || {
            format!("`{text}`: patterns are relative to the system drive, like Windows\\System32\\*.dll")
        };
        if text.is_empty() {
            return Err("the pattern is empty".into());
        }
        let normal = text.replace('/', "\\");
        if normal.starts_with('\\') || normal.as_bytes().get(1) == Some(&b':') {
            return Err(relative_hint());
        }
        let mut parts = Vec::new();
        for component in normal.split('\\') {
            match component {
                "" => return Err(format!("`{text}` has an empty component")),
                "." | ".." => return Err(format!("`{text}`: . and .. are not followed")),
                "**" => parts.push(Part::AnyDepth),
                c if c.contains("**") => {
                    return Err(format!(
                        "`{text}`: ** stands only for whole folders (\\**\\)"
                    ))
                }
                c => parts.push(Part::Name(
                    fold(c)
                        .chars()
                        .map(|ch| match ch {
                            '*' => Glyph::Any,
                            '?' => Glyph::One,
                            ch => Glyph::Char(ch),
                        })
                        .collect(),
                )),
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            parts,
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The inputs of `verify --write-baseline`.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// The mounted Windows system volume of a known-good image.
    pub root: PathBuf,
    pub system_drive: char,
    pub include: Vec<Pattern>,
    /// Record each file's SHA-256 (and so also files without a version).
    pub with_sha256: bool,
    /// The baseline to write: a new file, outside ROOT.
    pub out: PathBuf,
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

/// What a scan of a known-good image found: baseline entries in a fixed order (by path,
/// folded, folder by folder), what each pattern matched, and what was left out.
#[derive(Clone, Debug)]
pub struct Scan {
    pub entries: Vec<BaselineEntry>,
    pub patterns: Vec<PatternCount>,
    pub skipped: Vec<Skipped>,
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
    pub fn write_summary(&self, w: &mut dyn io::Write) -> io::Result<()> {
        use crate::text::shown;
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

/// Walks ROOT for the files the patterns match (links are not followed) and reads each one
/// through the volume stage, as `verify` will.
pub fn scan(
    root: &Path,
    system_drive: char,
    include: &[Pattern],
    with_sha256: bool,
) -> Result<Scan, VerifyError> {
    if include.is_empty() {
        return Err(VerifyError::NoPattern);
    }
    let volumes = mount(root, system_drive)?;
    let lister = DirVolume::new(root);
    let mut counts = vec![0usize; include.len()];
    let mut skipped = Vec::new();
    // Folded components -> on-disk names, so that the order is fixed and case-blind.
    let mut found: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    struct Folder {
        names: Vec<OsString>,
        shown: Vec<String>,
        folded: Vec<String>,
        /// Per pattern, the positions still possible.
        states: Vec<Vec<usize>>,
    }
    let mut stack = vec![Folder {
        names: Vec::new(),
        shown: Vec::new(),
        folded: Vec::new(),
        states: include.iter().map(Pattern::start).collect(),
    }];
    while let Some(folder) = stack.pop() {
        let listing = lister
            .list(&folder.names)
            .map_err(|source| VerifyError::CannotList {
                dir: lister.display(&folder.names),
                source,
            })?;
        let mut by_fold: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, entry) in listing.iter().enumerate() {
            by_fold
                .entry(fold(&entry.name.to_string_lossy()))
                .or_default()
                .push(i);
        }
        for (folded_name, same) in by_fold {
            let next: Vec<Vec<usize>> = include
                .iter()
                .zip(&folder.states)
                .map(|(pattern, states)| pattern.advance(states, &folded_name))
                .collect();
            let complete: Vec<usize> = include
                .iter()
                .enumerate()
                .filter(|(p, pattern)| next[*p].contains(&pattern.parts.len()))
                .map(|(p, _)| p)
                .collect();
            let deeper = include
                .iter()
                .zip(&next)
                .any(|(pattern, states)| states.iter().any(|&s| s < pattern.parts.len()));
            // Whether an entry of this kind matters here: a file that matches, a folder to
            // descend into, a link that would be either.
            let relevant = |kind: EntryKind| match kind {
                EntryKind::File | EntryKind::Other => !complete.is_empty(),
                EntryKind::Directory => deeper,
                EntryKind::Link => deeper || !complete.is_empty(),
            };
            if !same.iter().any(|&i| relevant(listing[i].kind)) {
                continue;
            }
            let entry = &listing[same[0]];
            let shown_name = entry.name.to_string_lossy().into_owned();
            let shown = |name: &str| {
                let mut parts = folder.shown.clone();
                parts.push(name.to_string());
                parts.join("\\")
            };
            if same.len() > 1 {
                let spellings: Vec<String> = same
                    .iter()
                    .map(|&i| listing[i].name.to_string_lossy().into_owned())
                    .collect();
                skipped.push(Skipped {
                    path: shown(&shown_name),
                    reason: format!(
                        "names that differ only by case ({}): Windows would see one file, verify cannot tell which",
                        spellings.join(", ")
                    ),
                });
                continue;
            }
            let Some(name) = entry.name.to_str() else {
                skipped.push(Skipped {
                    path: shown(&shown_name),
                    reason:
                        "the name is not valid Unicode, so it cannot be written as a Windows path"
                            .into(),
                });
                continue;
            };
            match entry.kind {
                EntryKind::File => {
                    for &p in &complete {
                        counts[p] += 1;
                    }
                    let mut folded = folder.folded.clone();
                    folded.push(folded_name);
                    let mut names = folder.shown.clone();
                    names.push(name.to_string());
                    // Only names that read back as the same path (no `\`, no trailing space,
                    // ...): what is written must be what verify resolves.
                    let path = names.join("\\");
                    match parse_baseline_path(&path) {
                        Ok(Target::SystemDrive(parts)) if parts == names => {
                            found.insert(folded, names);
                        }
                        Ok(_) => skipped.push(Skipped {
                            path,
                            reason: "the name does not read back as this path in a baseline".into(),
                        }),
                        Err(why) => skipped.push(Skipped {
                            path,
                            reason: format!("cannot be written as a baseline path: {why}"),
                        }),
                    }
                }
                EntryKind::Directory => {
                    let mut names = folder.names.clone();
                    names.push(entry.name.clone());
                    let mut shown_parts = folder.shown.clone();
                    shown_parts.push(name.to_string());
                    let mut folded = folder.folded.clone();
                    folded.push(folded_name);
                    stack.push(Folder {
                        names,
                        shown: shown_parts,
                        folded,
                        states: next,
                    });
                }
                EntryKind::Link => skipped.push(Skipped {
                    path: shown(name),
                    reason: "a symbolic link or junction: links are not followed".into(),
                }),
                EntryKind::Other => skipped.push(Skipped {
                    path: shown(name),
                    reason: "not a regular file".into(),
                }),
            }
        }
    }
    let unmatched: Vec<String> = include
        .iter()
        .zip(&counts)
        .filter(|(_, &n)| n == 0)
        .map(|(p, _)| p.to_string())
        .collect();
    if !unmatched.is_empty() {
        return Err(VerifyError::NothingMatched {
            patterns: unmatched,
        });
    }
    let matched = found.len();
    let files: Vec<Vec<String>> = found.into_values().collect();
    let looked: Vec<(Vec<String>, Found)> = files
        .into_par_iter()
        .map(|names| {
            let target = Target::SystemDrive(names.clone());
            let found = look(&volumes, &target, system_drive, with_sha256);
            (names, found)
        })
        .collect();
    let mut entries = Vec::with_capacity(looked.len());
    for (names, found) in looked {
        let path = names.join("\\");
        match found.failure {
            None => {}
            // A name the volume stage cannot map (a `:` in it, say): verify could not either.
            Some((State::Unresolved, why)) => {
                skipped.push(Skipped {
                    path,
                    reason: format!("verify could not resolve it: {why}"),
                });
                continue;
            }
            Some((_, why)) => {
                return Err(VerifyError::CannotRead {
                    path: found.path.unwrap_or(path),
                    reason: why,
                })
            }
        }
        if found.version.is_none() && found.sha256.is_none() {
            skipped.push(Skipped {
                path,
                reason: format!(
                    "{}: no minimum version to record; --with-sha256 records it by its hash",
                    found.unversioned.unwrap_or_default()
                ),
            });
            continue;
        }
        entries.push(BaselineEntry {
            path,
            target: Target::SystemDrive(names),
            min_version: found.version,
            sha256: found.sha256,
            line: 0,
        });
    }
    if entries.is_empty() {
        return Err(VerifyError::NothingToWrite { matched });
    }
    skipped.sort_by_key(|s| fold(&s.path));
    Ok(Scan {
        entries,
        patterns: include
            .iter()
            .zip(counts)
            .map(|(p, files)| PatternCount {
                pattern: p.to_string(),
                files,
            })
            .collect(),
        skipped,
    })
}

#[derive(Serialize)]
struct BaselineOut<'a> {
    version: u32,
    files: Vec<EntryOut<'a>>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
}

/// A baseline file for these entries (format [`BASELINE_FORMAT`]), with a comment naming the
/// patterns it was written from. The same entries always give the same bytes.
pub fn baseline_yaml(entries: &[BaselineEntry], patterns: &[Pattern]) -> String {
    let out = BaselineOut {
        version: BASELINE_FORMAT,
        files: entries
            .iter()
            .map(|e| EntryOut {
                path: &e.path,
                min_version: e.min_version.map(|v| v.to_string()),
                sha256: e.sha256.as_deref(),
            })
            .collect(),
    };
    let mut text = format!(
        "# nextboot baseline: minimum file versions for `nextboot verify ROOT --baseline FILE`\n\
         # (docs/verify.md). Written by nextboot {} --write-baseline from:\n",
        env!("CARGO_PKG_VERSION")
    );
    for pattern in patterns {
        text.push_str(&format!("#   {}\n", crate::text::escaped(pattern.as_str())));
    }
    // Serialising plain strings and numbers cannot fail.
    text.push_str(&crate::text::to_yaml(&out).unwrap_or_default());
    text
}

/// Scans a known-good image and writes a baseline to a new file outside ROOT.
pub fn write_baseline(options: &WriteOptions) -> Result<Written, VerifyError> {
    check_root(&options.root)?;
    let mut evidence = Evidence::default();
    evidence.folder("ROOT", &options.root);
    let output = OutputFile::new(&options.out, &evidence)?;
    let scan = scan(
        &options.root,
        options.system_drive,
        &options.include,
        options.with_sha256,
    )?;
    let text = baseline_yaml(&scan.entries, &options.include);
    output.write(text.as_bytes())?;
    Ok(Written {
        out: output.shown().to_string(),
        sha256: crate::evidence::sha256_hex(text.as_bytes()),
        entries: scan.entries.len(),
        patterns: scan.patterns,
        skipped: scan.skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_match_within_and_across_folders() {
        let dlls = pattern("Windows\\System32\\*.dll");
        assert!(dlls.matches("windows\\system32\\NTDLL.DLL"));
        assert!(dlls.matches("Windows/System32/a.dll"));
        assert!(!dlls.matches("Windows\\System32\\drivers\\a.dll"));
        assert!(!dlls.matches("Windows\\System32\\a.dll.mui"));
        assert!(!dlls.matches("Windows\\System32"));

        let deep = pattern("Windows\\**\\*.sys");
        assert!(deep.matches("Windows\\x.sys"), "** matches no folder too");
        assert!(deep.matches("Windows\\System32\\drivers\\tcpip.sys"));
        assert!(!deep.matches("Program Files\\x.sys"));

        let all = pattern("Windows\\**");
        assert!(all.matches("Windows\\a\\b\\c.txt"));

        let one = pattern("Windows\\System32\\ntdl?.dll");
        assert!(one.matches("Windows\\System32\\ntdll.dll"));
        assert!(!one.matches("Windows\\System32\\ntdl.dll"));

        let stars = pattern("*\\*a*b*");
        assert!(stars.matches("x\\aab"));
        assert!(stars.matches("x\\zaXbq"));
        assert!(!stars.matches("x\\ba"));
    }

    #[test]
    fn patterns_refuse_what_they_cannot_mean() {
        for bad in [
            "",
            "C:\\Windows\\*.dll",
            "\\Windows\\*.dll",
            "Windows\\\\x",
            "Windows\\..\\x",
            "Windows\\a**b",
        ] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn baseline_paths_in_every_accepted_form() {
        let nt = |s: &str| parse_baseline_path(s).unwrap().nt_path('C');
        assert_eq!(
            nt("Windows\\System32\\ntdll.dll"),
            "\\??\\C:\\Windows\\System32\\ntdll.dll"
        );
        assert_eq!(
            nt("Windows/System32/ntdll.dll"),
            nt("Windows\\System32\\ntdll.dll")
        );
        assert_eq!(nt("C:\\Windows\\x.dll"), "\\??\\C:\\Windows\\x.dll");
        assert_eq!(nt("\\??\\C:\\Windows\\x.dll"), "\\??\\C:\\Windows\\x.dll");
        assert_eq!(nt("\\\\?\\C:\\Windows\\x.dll"), "\\??\\C:\\Windows\\x.dll");
        assert_eq!(nt("\\SystemRoot\\x.dll"), "\\SystemRoot\\x.dll");
        assert_eq!(nt("%SystemRoot%\\x.dll"), "\\SystemRoot\\x.dll");
        assert_eq!(nt("%WINDIR%\\x.dll"), "\\SystemRoot\\x.dll");
        assert_eq!(nt("%SystemDrive%\\x.dll"), "\\??\\C:\\x.dll");
        assert_eq!(
            parse_baseline_path("Windows\\x.dll").unwrap().nt_path('D'),
            "\\??\\D:\\x.dll".replace("x.dll", "Windows\\x.dll")
        );
        for bad in [
            "",
            " Windows\\x.dll",
            "Windows\\",
            "C:x.dll",
            "C:\\",
            "\\\\server\\share\\x.dll",
            "\\Windows\\x.dll",
            "\\Device\\HarddiskVolume2\\x.dll",
            "Windows\\..\\x.dll",
            "Windows\\x.dll:stream",
        ] {
            assert!(parse_baseline_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn baseline_reads_and_rejects_with_places() {
        let good = b"version: 1\nfiles:\n  - path: Windows\\System32\\a.dll\n    min_version: 1.2.3.4\n  - path: C:\\x.dll\n    sha256: ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\n";
        let baseline = Baseline::parse(good, "b.yaml").unwrap();
        assert_eq!(baseline.entries.len(), 2);
        assert_eq!(baseline.entries[0].line, 3);
        assert_eq!(baseline.entries[1].line, 5);
        assert_eq!(
            baseline.entries[1].sha256.as_deref(),
            Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
        );

        let place = |text: &str| match Baseline::parse(text.as_bytes(), "b.yaml") {
            Err(VerifyError::BaselineInvalid(invalid)) => {
                (invalid.line, invalid.column, invalid.message)
            }
            other => panic!("{other:?}"),
        };
        let (line, _, message) = place(
            "version: 1\nfiles:\n  - path: a.dll\n    min_version: 1.2.3.4\n    colour: red\n",
        );
        assert_eq!(line, 5);
        assert!(message.contains("colour"), "{message}");
        let (line, column, _) =
            place("version: 1\nfiles:\n  - path: a.dll\n    min_version: 1.2.3\n");
        assert_eq!((line, column), (4, 18));
        let (line, _, message) = place("version: 2\nfiles: []\nnew_field: x\n");
        assert_eq!(line, 1);
        assert!(message.contains("version 2"), "{message}");
        let (line, _, message) = place("files: []\n");
        assert!(message.contains("version"), "{line}: {message}");
        let (line, _, message) =
            place("version: 1\nfiles:\n  - path: A.DLL\n    min_version: 1.0.0.0\n  - path: a.dll\n    min_version: 2.0.0.0\n");
        assert_eq!(line, 5);
        assert!(message.contains("line 3"), "{message}");
        let (line, _, _) = place("version: 1\nfiles:\n  - path: a.dll\n");
        assert_eq!(line, 3);
        let (line, _, _) = place("version: 1\nfiles:\n  - path: a.dll\n    sha256: 12\n");
        assert_eq!(line, 4);
        let (line, _, _) = place("version: 1\nfiles: [\n");
        assert!(line >= 2);
    }

    #[test]
    fn byte_offsets_count_characters_per_line() {
        let text = "ab\ncé: x\r\nz";
        assert_eq!(byte_offset(text, 1, 1), Some(0));
        assert_eq!(byte_offset(text, 2, 3), Some(3 + 3));
        assert_eq!(byte_offset(text, 2, 99), Some(3 + 6));
        assert_eq!(byte_offset(text, 3, 1), Some(text.len() - 1));
        assert_eq!(byte_offset(text, 9, 1), None);
        assert_eq!(byte_offset(text, 0, 0), None);
    }

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
