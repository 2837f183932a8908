//! Boot: replay the queue as smss would, on a virtual view of the volumes, and decide a
//! verdict for every operation.
//!
//! Nothing on disk changes. The view is an overlay of what earlier operations did (a path now
//! holds some file's content, or nothing) over the disk as it was before the boot. Each
//! operation runs against the view at its point in the boot, with smss's rules:
//! - a rename needs its source to exist, the destination's folder to exist, and the
//!   destination to be absent unless the operation has `!`/`@` (then a file is replaced, a
//!   directory never);
//! - a delete needs its source to exist, and a directory to be empty;
//! - a failed operation changes nothing, and the next one runs.
//!
//! Verdicts follow `docs/contract.md`: for the final writer of a destination, S is the version
//! it puts there, B the version on disk before the boot, M the highest version that an earlier
//! rename of this boot put there and a later rename overwrote.

mod verdict;

pub use verdict::Verdict;

use std::collections::HashMap;

use serde::Serialize;

use crate::evidence::sha256_hex;
use crate::queue::{Action, Operation};
use crate::version::{read_pe_version, FileVersion, PeFormat};
use crate::volume::{DiskEntry, EntryKind, PathKey, Unresolved, Volumes};

/// What the replay knows about one file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    /// Where the content is on disk before the boot (host path for a directory volume).
    pub path: String,
    pub kind: FileKind,
    pub size: Option<u64>,
    pub file_version: Option<FileVersion>,
    pub product_version: Option<FileVersion>,
    pub file_version_string: Option<String>,
    pub pe_format: Option<PeFormat>,
    /// Why there is no comparable version (not a PE, no version resource, unreadable...).
    pub unversioned_reason: Option<String>,
    pub sha256: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    File,
    Directory,
    Other,
}

/// The replay's result for one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// One sentence on why, in the user's terms.
    pub reason: String,
    /// What the operation moves or deletes, as it is at that point of the boot; when the
    /// source is missing then, what the source path holds on disk.
    pub source_file: Option<FileFacts>,
    /// The file at the destination on disk before the boot.
    pub target_file: Option<FileFacts>,
    /// M: the highest version an earlier rename of this boot put at the destination before a
    /// later rename overwrote it.
    pub overwritten_staged_version: Option<FileVersion>,
    /// For a superseded rename, the operation that replaced, moved or deleted its result.
    pub superseded_by: Option<usize>,
}

/// A path whose content the boot changes: before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The NT path as the queue first spelled it (prefixes stripped).
    pub nt_path: String,
    pub before: Option<FileFacts>,
    pub after: Option<FileFacts>,
    /// Operations that changed this path, in boot order.
    pub operations: Vec<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// One per operation, same order as the queue.
    pub outcomes: Vec<Outcome>,
    /// Every path the boot changes, in order of first change.
    pub changes: Vec<FileChange>,
}

/// Options of the replay.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayOptions {
    /// Hash every file examined.
    pub hash_files: bool,
}

type ContentId = usize;

struct Content {
    /// The path that held this content on disk before the boot.
    origin: PathKey,
    entry: DiskEntry,
    facts: Option<FileFacts>,
    /// The rename that last put this content where it is now.
    placed_by: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Holds(ContentId),
    Empty,
}

struct View<'v> {
    volumes: &'v Volumes,
    options: ReplayOptions,
    contents: Vec<Content>,
    /// Disk content by its path before the boot.
    by_origin: HashMap<PathKey, ContentId>,
    /// What earlier operations changed.
    overlay: HashMap<PathKey, Slot>,
}

impl<'v> View<'v> {
    fn disk(&mut self, key: &PathKey) -> Result<Option<ContentId>, Unresolved> {
        if let Some(&id) = self.by_origin.get(key) {
            return Ok(Some(id));
        }
        let Some(entry) = self.volumes.stat(key)? else {
            return Ok(None);
        };
        let id = self.contents.len();
        self.contents.push(Content {
            origin: key.clone(),
            entry,
            facts: None,
            placed_by: None,
        });
        self.by_origin.insert(key.clone(), id);
        Ok(Some(id))
    }

    /// What the path holds at this point of the boot.
    fn lookup(&mut self, key: &PathKey) -> Result<Option<ContentId>, Unresolved> {
        if let Some(slot) = self.overlay.get(key) {
            return Ok(match *slot {
                Slot::Holds(id) => Some(id),
                Slot::Empty => None,
            });
        }
        // A path below something an earlier operation removed or replaced: the replaced
        // entry's own children are what counts. Moved directories keep their disk children.
        let mut ancestor = key.parent();
        while let Some(parent) = ancestor {
            if let Some(slot) = self.overlay.get(&parent).copied() {
                return match slot {
                    Slot::Empty => Ok(None),
                    Slot::Holds(id) => {
                        let content = &self.contents[id];
                        if content.entry.kind != EntryKind::Directory {
                            return Ok(None);
                        }
                        let mut moved = content.origin.clone();
                        moved
                            .folded
                            .extend_from_slice(&key.folded[parent.folded.len()..]);
                        self.disk(&moved)
                    }
                };
            }
            ancestor = parent.parent();
        }
        self.disk(key)
    }

    fn is_dir(&self, id: ContentId) -> bool {
        self.contents[id].entry.kind == EntryKind::Directory
    }

    /// Whether a directory holds anything at this point of the boot.
    fn has_children(&mut self, key: &PathKey, id: ContentId) -> Result<bool, Unresolved> {
        let disk_children: Vec<String> = self.volumes.children(&self.contents[id].origin);
        for name in disk_children {
            let mut child = key.clone();
            child.folded.push(name);
            if self.lookup(&child)?.is_some() {
                return Ok(true);
            }
        }
        let added: Vec<PathKey> = self
            .overlay
            .iter()
            .filter(|(k, slot)| matches!(slot, Slot::Holds(_)) && k.parent().as_ref() == Some(key))
            .map(|(k, _)| k.clone())
            .collect();
        for child in added {
            if self.lookup(&child)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn facts(&mut self, id: ContentId) -> FileFacts {
        if let Some(facts) = &self.contents[id].facts {
            return facts.clone();
        }
        let content = &self.contents[id];
        let facts = read_facts(self.volumes, content, self.options);
        self.contents[id].facts = Some(facts.clone());
        facts
    }
}

fn read_facts(volumes: &Volumes, content: &Content, options: ReplayOptions) -> FileFacts {
    let path = volumes.display(content.origin.mount, &content.entry.names);
    let mut facts = FileFacts {
        path,
        kind: match content.entry.kind {
            EntryKind::File => FileKind::File,
            EntryKind::Directory => FileKind::Directory,
            _ => FileKind::Other,
        },
        size: None,
        file_version: None,
        product_version: None,
        file_version_string: None,
        pe_format: None,
        unversioned_reason: None,
        sha256: None,
    };
    if facts.kind != FileKind::File {
        facts.unversioned_reason = Some("not a regular file".into());
        return facts;
    }
    let evidence = match volumes.open(content.origin.mount, &content.entry) {
        Ok(evidence) => evidence,
        Err(err) => {
            facts.unversioned_reason = Some(format!("cannot read the file: {err}"));
            return facts;
        }
    };
    facts.size = Some(evidence.len() as u64);
    if options.hash_files {
        facts.sha256 = Some(sha256_hex(&evidence));
    }
    match read_pe_version(&evidence) {
        Ok(pe) => {
            facts.pe_format = Some(pe.format);
            facts.unversioned_reason = pe.unversioned_reason();
            if let Some(resource) = pe.resource {
                facts.file_version = resource.file_version;
                facts.product_version = resource.product_version;
                facts.file_version_string = resource.file_version_string;
            }
        }
        Err(err) => facts.unversioned_reason = Some(err.to_string()),
    }
    facts
}

/// Per-operation state kept during the replay.
enum Step {
    Decided(Verdict, String),
    /// A rename that applied: where it put which content.
    Applied {
        destination: PathKey,
        content: ContentId,
    },
}

/// Replays `operations` in order over `volumes`.
pub fn replay(operations: &[Operation], volumes: &Volumes, options: ReplayOptions) -> Replay {
    let mut view = View {
        volumes,
        options,
        contents: Vec::new(),
        by_origin: HashMap::new(),
        overlay: HashMap::new(),
    };
    let mut steps = Vec::with_capacity(operations.len());
    let mut source_content: Vec<Option<ContentId>> = vec![None; operations.len()];
    let mut target_content: Vec<Option<ContentId>> = vec![None; operations.len()];
    let mut superseded_by: Vec<Option<usize>> = vec![None; operations.len()];
    // Per destination: contents this boot put there that a later rename overwrote.
    let mut overwritten: HashMap<PathKey, Vec<ContentId>> = HashMap::new();
    let mut changes: Vec<FileChange> = Vec::new();
    let mut change_index: HashMap<PathKey, usize> = HashMap::new();

    for (index, operation) in operations.iter().enumerate() {
        let step = replay_one(
            &mut view,
            operation,
            index,
            &mut source_content[index],
            &mut target_content[index],
            &mut superseded_by,
            &mut overwritten,
        );
        let step = match step {
            Ok(step) => step,
            Err(Unresolved(why)) => Step::Decided(Verdict::Unresolved, why),
        };
        // Record which paths this operation changed.
        let mut touched = Vec::new();
        match (&step, operation.action) {
            (Step::Applied { destination, .. }, _) => {
                if let Ok(source) = volumes.resolve(&operation.source.path) {
                    touched.push((source.key, operation.source.path.clone()));
                }
                if let Some(dest) = &operation.destination {
                    touched.push((destination.clone(), dest.path.clone()));
                }
            }
            (Step::Decided(Verdict::Delete, _), Action::Delete) => {
                if let Ok(source) = volumes.resolve(&operation.source.path) {
                    touched.push((source.key, operation.source.path.clone()));
                }
            }
            _ => {}
        }
        for (key, nt_path) in touched {
            let at = *change_index.entry(key.clone()).or_insert_with(|| {
                changes.push(FileChange {
                    nt_path,
                    before: None,
                    after: None,
                    operations: Vec::new(),
                });
                changes.len() - 1
            });
            changes[at].operations.push(index);
            // Before: the disk; filled once, at the first change.
            if changes[at].operations.len() == 1 {
                changes[at].before = match view.disk(&key) {
                    Ok(Some(id)) => Some(view.facts(id)),
                    _ => None,
                };
            }
        }
        steps.push(step);
    }

    // After: what each changed path holds at the end.
    let keys: Vec<(PathKey, usize)> = change_index.into_iter().collect();
    for (key, at) in keys {
        changes[at].after = match view.lookup(&key) {
            Ok(Some(id)) => Some(view.facts(id)),
            _ => None,
        };
    }

    let mut outcomes = Vec::with_capacity(operations.len());
    for (index, step) in steps.into_iter().enumerate() {
        let source_file = source_content[index].map(|id| view.facts(id));
        let target_file = target_content[index].map(|id| view.facts(id));
        let (verdict, reason, m) = match step {
            Step::Decided(verdict, reason) => (verdict, reason, None),
            Step::Applied {
                destination,
                content,
            } => match superseded_by[index] {
                Some(later) => (
                    Verdict::Superseded,
                    format!("operation {later} later replaces, moves or deletes what this rename puts in place"),
                    None,
                ),
                None => {
                    let staged: Vec<ContentId> =
                        overwritten.get(&destination).cloned().unwrap_or_default();
                    let m = staged
                        .into_iter()
                        .filter(|&id| id != content)
                        .filter_map(|id| view.facts(id).file_version)
                        .max();
                    let (verdict, reason) = verdict::final_writer(
                        source_file.as_ref(),
                        target_file.as_ref(),
                        m,
                    );
                    (verdict, reason, m)
                }
            },
        };
        outcomes.push(Outcome {
            verdict,
            reason,
            source_file,
            target_file,
            overwritten_staged_version: m,
            superseded_by: superseded_by[index],
        });
    }
    Replay { outcomes, changes }
}

fn replay_one(
    view: &mut View<'_>,
    operation: &Operation,
    index: usize,
    source_content: &mut Option<ContentId>,
    target_content: &mut Option<ContentId>,
    superseded_by: &mut [Option<usize>],
    overwritten: &mut HashMap<PathKey, Vec<ContentId>>,
) -> Result<Step, Unresolved> {
    let source = view.volumes.resolve(&operation.source.path)?.key;
    let destination = match &operation.destination {
        Some(dest) => Some(view.volumes.resolve(&dest.path)?.key),
        None => None,
    };
    if let Some(dest) = &destination {
        *target_content = view.disk(dest)?;
    }
    let Some(moving) = view.lookup(&source)? else {
        *source_content = view.disk(&source)?;
        let why = if source_content.is_some() {
            "the source no longer exists at this point of the boot (an earlier operation moved or deleted it)"
        } else {
            "the source does not exist"
        };
        return Ok(Step::Decided(Verdict::NoEffect, why.into()));
    };
    *source_content = Some(moving);

    let Some(destination) = destination else {
        if view.is_dir(moving) && view.has_children(&source, moving)? {
            return Ok(Step::Decided(
                Verdict::NoEffect,
                "the directory is not empty, and smss deletes only empty directories".into(),
            ));
        }
        view.overlay.insert(source, Slot::Empty);
        if let Some(writer) = view.contents[moving].placed_by {
            superseded_by[writer] = Some(index);
        }
        return Ok(Step::Decided(Verdict::Delete, "deletes the source".into()));
    };

    match destination.parent() {
        Some(parent) => match view.lookup(&parent)? {
            Some(id) if view.is_dir(id) => {}
            _ => {
                return Ok(Step::Decided(
                    Verdict::NoEffect,
                    "the destination's folder does not exist".into(),
                ))
            }
        },
        None => {
            return Ok(Step::Decided(
                Verdict::NoEffect,
                "the destination is the root of a volume".into(),
            ))
        }
    }
    if source != destination {
        if let Some(existing) = view.lookup(&destination)? {
            if view.is_dir(existing) {
                return Ok(Step::Decided(
                    Verdict::NoEffect,
                    "the destination is a directory, which a rename never replaces".into(),
                ));
            }
            if !operation.replace_existing {
                return Ok(Step::Decided(
                    Verdict::NoEffect,
                    "the destination exists and the operation lacks ! (replace existing), so the rename fails".into(),
                ));
            }
            if let Some(writer) = view.contents[existing].placed_by {
                superseded_by[writer] = Some(index);
                overwritten
                    .entry(destination.clone())
                    .or_default()
                    .push(existing);
            }
        }
    }
    if let Some(writer) = view.contents[moving].placed_by {
        superseded_by[writer] = Some(index);
    }
    view.overlay.insert(source, Slot::Empty);
    view.overlay
        .insert(destination.clone(), Slot::Holds(moving));
    view.contents[moving].placed_by = Some(index);
    Ok(Step::Applied {
        destination,
        content: moving,
    })
}
