//! `verify --write-baseline`: a scan of a known-good image for the files the patterns match,
//! each read as `verify` will read it, and the baseline file written from it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::{
    check_root, look, mount, parse_baseline_path, BaselineEntry, Found, Pattern, State, Target,
    VerifyError, BASELINE_FORMAT,
};
use crate::output::{Evidence, OutputFile};
use crate::report::{PatternCount, Skipped, Written};
use crate::volume::{fold, EntryKind};

/// The inputs of `verify --write-baseline`.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// The mounted Windows system volume of a known-good image.
    pub root: PathBuf,
    pub system_drive: char,
    /// Which partition of a disk image ROOT is, when several hold Windows.
    pub partition: Option<u32>,
    pub include: Vec<Pattern>,
    /// Record each file's SHA-256 (and so also files without a version).
    pub with_sha256: bool,
    /// The baseline to write: a new file, outside ROOT.
    pub out: PathBuf,
}

/// What a scan of a known-good image found: baseline entries in a fixed order (by path,
/// folded, folder by folder), what each pattern matched, and what was left out.
#[derive(Clone, Debug)]
pub struct Scan {
    pub entries: Vec<BaselineEntry>,
    pub patterns: Vec<PatternCount>,
    pub skipped: Vec<Skipped>,
}

/// Walks ROOT for the files the patterns match (links are not followed) and reads each one
/// through the volume stage, as `verify` will.
pub fn scan(
    root: &Path,
    system_drive: char,
    partition: Option<u32>,
    include: &[Pattern],
    with_sha256: bool,
) -> Result<Scan, VerifyError> {
    if include.is_empty() {
        return Err(VerifyError::NoPattern);
    }
    let volumes = mount(root, system_drive, partition)?;
    let lister = volumes.system_volume();
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
                .filter(|(p, pattern)| next[*p].contains(&pattern.end()))
                .map(|(p, _)| p)
                .collect();
            let deeper = include
                .iter()
                .zip(&next)
                .any(|(pattern, states)| states.iter().any(|&s| s < pattern.end()));
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
    if crate::volume::is_image(&options.root) {
        evidence.file(&options.root);
    } else {
        evidence.folder("ROOT", &options.root);
    }
    let output = OutputFile::new(&options.out, &evidence)?;
    let scan = scan(
        &options.root,
        options.system_drive,
        options.partition,
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
