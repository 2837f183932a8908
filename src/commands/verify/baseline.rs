//! The baseline file: the paths it may name, and reading and checking its YAML, every error
//! pointing at its place in the file.

use std::collections::HashMap;
use std::path::Path;

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use serde_saphyr::{Location, MessageFormatter, Spanned};
use thiserror::Error;

use super::VerifyError;
use crate::version::FileVersion;
use crate::volume::{fold, parse_nt_path, Anchor};

/// The baseline format this build reads and writes (`version:` at the top of the file).
pub const BASELINE_FORMAT: u32 = 1;

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
    let parsed = parse_nt_path(&nt).map_err(|u| u.to_string())?;
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
    let parsed = parse_nt_path(&format!("\\??\\C:\\{path}")).map_err(|u| u.to_string())?;
    Ok(Target::SystemDrive(parsed.components))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
