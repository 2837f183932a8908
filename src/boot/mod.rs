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

use std::borrow::Cow;
use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::evidence::sha256_hex;
use crate::queue::Operation;
use crate::version::{read_pe_version, FileVersion, PeFormat};
use crate::volume::{EntryKind, PathKey, Unresolved, Volumes};

/// What the replay knows about one file's content. Absent facts are left out of the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    /// Where the content is on disk before the boot (host path for a directory volume).
    pub path: String,
    pub kind: FileKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_version: Option<FileVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_version: Option<FileVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_version_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe_format: Option<PeFormat>,
    /// Why there is no comparable version (not a PE, no version resource, unreadable...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unversioned_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    pub reason: Cow<'static, str>,
    /// What the operation moves or deletes, as it is at that point of the boot; when the
    /// source is missing then, what the source path holds on disk.
    pub source_file: Option<Arc<FileFacts>>,
    /// The file at the destination on disk before the boot.
    pub target_file: Option<Arc<FileFacts>>,
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
    pub before: Option<Arc<FileFacts>>,
    pub after: Option<Arc<FileFacts>>,
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

/// A file or directory as it was on disk before the boot; the boot moves it around.
struct Content {
    /// The path that held it on disk before the boot.
    origin: PathKey,
    kind: EntryKind,
    /// The rename that last put this content where it is now.
    placed_by: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Holds(ContentId),
    Empty,
}

/// The volumes as the boot changes them: an overlay of what earlier operations did over the
/// disk as it was.
struct View<'v> {
    volumes: &'v Volumes,
    contents: Vec<Content>,
    /// Disk content by its path before the boot.
    by_origin: FxHashMap<PathKey, ContentId>,
    /// What earlier operations changed.
    overlay: FxHashMap<PathKey, Slot>,
    /// How many paths in each folder earlier operations filled (to tell whether a folder is
    /// empty without scanning the overlay).
    filled_children: FxHashMap<PathKey, u32>,
}

impl View<'_> {
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
            kind: entry.kind,
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
                        if content.kind != EntryKind::Directory {
                            return Ok(None);
                        }
                        let moved = key.rebase(&parent, &content.origin);
                        self.disk(&moved)
                    }
                };
            }
            ancestor = parent.parent();
        }
        self.disk(key)
    }

    fn is_dir(&self, id: ContentId) -> bool {
        self.contents[id].kind == EntryKind::Directory
    }

    /// Whether a directory holds anything at this point of the boot.
    fn has_children(&mut self, key: &PathKey, id: ContentId) -> Result<bool, Unresolved> {
        let disk_children = self.volumes.children(&self.contents[id].origin);
        for name in disk_children {
            if self.lookup(&key.child(&name))?.is_some() {
                return Ok(true);
            }
        }
        Ok(self.filled_children.get(key).is_some_and(|&n| n > 0))
    }

    fn put(&mut self, key: PathKey, slot: Slot) {
        let parent = key.parent();
        let was_filled = matches!(self.overlay.insert(key, slot), Some(Slot::Holds(_)));
        let now_filled = matches!(slot, Slot::Holds(_));
        if let (Some(parent), true) = (parent, was_filled != now_filled) {
            let count = self.filled_children.entry(parent).or_default();
            *count = if now_filled {
                *count + 1
            } else {
                count.saturating_sub(1)
            };
        }
    }
}

/// Reads the facts of one content: kind, size, version resource, hash.
fn read_facts(volumes: &Volumes, content: &Content, options: ReplayOptions) -> FileFacts {
    let mut facts = FileFacts {
        path: String::new(),
        kind: match content.kind {
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
    let entry = match volumes.stat(&content.origin) {
        Ok(Some(entry)) => entry,
        _ => {
            facts.unversioned_reason = Some("the file is no longer where it was listed".into());
            return facts;
        }
    };
    let mount = content.origin.mount();
    facts.path = volumes.display(mount, &entry.names);
    if facts.kind != FileKind::File {
        facts.unversioned_reason = Some("not a regular file".into());
        return facts;
    }
    let evidence = match volumes.open(mount, &entry) {
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
    Decided(Verdict, Cow<'static, str>),
    /// A rename that applied: where it put which content.
    Applied {
        destination: PathKey,
        content: ContentId,
    },
}

/// What the replay noted about one operation, facts still to be read.
struct Noted {
    step: Step,
    source: Option<ContentId>,
    target: Option<ContentId>,
}

/// A path the boot changes, with contents still to be read.
struct Change {
    nt_path: String,
    before: Option<ContentId>,
    after: Option<ContentId>,
    operations: Vec<usize>,
}

/// Replays `operations` in order over `volumes`.
///
/// Three passes: the replay itself (sequential: each operation sees what the earlier ones
/// did; it needs only what exists where), then the version resources of every file involved
/// (in parallel: each file once), then the verdicts.
pub fn replay(operations: &[Operation], volumes: &Volumes, options: ReplayOptions) -> Replay {
    let mut view = View {
        volumes,
        contents: Vec::new(),
        by_origin: FxHashMap::default(),
        overlay: FxHashMap::default(),
        filled_children: FxHashMap::default(),
    };
    let mut noted: Vec<Noted> = Vec::with_capacity(operations.len());
    let mut superseded_by: Vec<Option<usize>> = vec![None; operations.len()];
    // Per destination: contents this boot put there that a later rename overwrote.
    let mut overwritten: FxHashMap<PathKey, Vec<ContentId>> = FxHashMap::default();
    let mut changes: Vec<Change> = Vec::new();
    let mut change_index: FxHashMap<PathKey, usize> = FxHashMap::default();

    for (index, operation) in operations.iter().enumerate() {
        let mut source = None;
        let mut target = None;
        let outcome = replay_one(
            &mut view,
            operation,
            index,
            &mut source,
            &mut target,
            &mut superseded_by,
            &mut overwritten,
        );
        let (step, touched) = match outcome {
            Ok(done) => done,
            Err(Unresolved(why)) => (Step::Decided(Verdict::Unresolved, why.into()), Vec::new()),
        };
        for (key, nt_path) in touched {
            let at = match change_index.get(&key) {
                Some(&at) => at,
                None => {
                    // Before: the disk, at the first change.
                    let before = view.disk(&key).ok().flatten();
                    changes.push(Change {
                        nt_path: nt_path.to_string(),
                        before,
                        after: None,
                        operations: Vec::new(),
                    });
                    change_index.insert(key, changes.len() - 1);
                    changes.len() - 1
                }
            };
            changes[at].operations.push(index);
        }
        noted.push(Noted {
            step,
            source,
            target,
        });
    }
    // After: what each changed path holds at the end.
    for (key, &at) in &change_index {
        changes[at].after = view.lookup(key).ok().flatten();
    }
    // The view's maps are done with: free them before the files are read.
    drop(change_index);
    let View { contents, .. } = view;

    // Every content whose facts the report shows or the verdicts need, each read once.
    let mut wanted: FxHashSet<ContentId> = FxHashSet::default();
    for note in &noted {
        wanted.extend(note.source);
        wanted.extend(note.target);
        if let Step::Applied { content, .. } = note.step {
            wanted.insert(content);
        }
    }
    for change in &changes {
        wanted.extend(change.before);
        wanted.extend(change.after);
    }
    wanted.extend(overwritten.values().flatten().copied());
    let mut wanted: Vec<ContentId> = wanted.into_iter().collect();
    wanted.sort_unstable();
    let read: Vec<Arc<FileFacts>> = wanted
        .par_iter()
        .map(|&id| Arc::new(read_facts(volumes, &contents[id], options)))
        .collect();
    let mut facts: Vec<Option<Arc<FileFacts>>> = vec![None; contents.len()];
    drop(contents);
    for (id, f) in wanted.into_iter().zip(read) {
        facts[id] = Some(f);
    }
    let facts_of = |id: Option<ContentId>| id.and_then(|id| facts[id].clone());

    let mut outcomes = Vec::with_capacity(operations.len());
    for (index, note) in noted.into_iter().enumerate() {
        let source_file = facts_of(note.source);
        let target_file = facts_of(note.target);
        let (verdict, reason, m) = match note.step {
            Step::Decided(verdict, reason) => (verdict, reason, None),
            Step::Applied {
                destination,
                content,
            } => match superseded_by[index] {
                Some(later) => (
                    Verdict::Superseded,
                    format!("operation {later} later replaces, moves or deletes what this rename puts in place").into(),
                    None,
                ),
                None => {
                    let m = overwritten
                        .get(&destination)
                        .into_iter()
                        .flatten()
                        .filter(|&&id| id != content)
                        .filter_map(|&id| facts_of(Some(id)).and_then(|f| f.file_version))
                        .max();
                    let (verdict, reason) =
                        verdict::final_writer(source_file.as_deref(), target_file.as_deref(), m);
                    (verdict, reason.into(), m)
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
    let changes = changes
        .into_iter()
        .map(|change| FileChange {
            nt_path: change.nt_path,
            before: facts_of(change.before),
            after: facts_of(change.after),
            operations: change.operations,
        })
        .collect();
    Replay { outcomes, changes }
}

/// The step an operation took, and the paths it changed (with the NT path as spelled).
type Done<'o> = (Step, Vec<(PathKey, &'o str)>);

fn replay_one<'o>(
    view: &mut View<'_>,
    operation: &'o Operation,
    index: usize,
    source_content: &mut Option<ContentId>,
    target_content: &mut Option<ContentId>,
    superseded_by: &mut [Option<usize>],
    overwritten: &mut FxHashMap<PathKey, Vec<ContentId>>,
) -> Result<Done<'o>, Unresolved> {
    let source = view.volumes.resolve(operation.source.path())?.key;
    let destination = match &operation.destination {
        Some(dest) => Some((view.volumes.resolve(dest.path())?.key, dest.path())),
        None => None,
    };
    if let Some((dest, _)) = &destination {
        *target_content = view.disk(dest)?;
    }
    fn decided<'o>(verdict: Verdict, why: &'static str) -> Result<Done<'o>, Unresolved> {
        Ok((Step::Decided(verdict, Cow::Borrowed(why)), Vec::new()))
    }
    let Some(moving) = view.lookup(&source)? else {
        *source_content = view.disk(&source)?;
        return decided(
            Verdict::NoEffect,
            if source_content.is_some() {
                "the source no longer exists at this point of the boot (an earlier operation moved or deleted it)"
            } else {
                "the source does not exist"
            },
        );
    };
    *source_content = Some(moving);

    let Some((destination, destination_path)) = destination else {
        if view.is_dir(moving) && view.has_children(&source, moving)? {
            return decided(
                Verdict::NoEffect,
                "the directory is not empty, and smss deletes only empty directories",
            );
        }
        view.put(source.clone(), Slot::Empty);
        if let Some(writer) = view.contents[moving].placed_by {
            superseded_by[writer] = Some(index);
        }
        return Ok((
            Step::Decided(Verdict::Delete, Cow::Borrowed("deletes the source")),
            vec![(source, operation.source.path())],
        ));
    };

    match destination.parent() {
        Some(parent) => match view.lookup(&parent)? {
            Some(id) if view.is_dir(id) => {}
            _ => return decided(Verdict::NoEffect, "the destination's folder does not exist"),
        },
        None => return decided(Verdict::NoEffect, "the destination is the root of a volume"),
    }
    if source != destination {
        if let Some(existing) = view.lookup(&destination)? {
            if view.is_dir(existing) {
                return decided(
                    Verdict::NoEffect,
                    "the destination is a directory, which a rename never replaces",
                );
            }
            if !operation.replace_existing {
                return decided(
                    Verdict::NoEffect,
                    "the destination exists and the operation lacks ! (replace existing), so the rename fails",
                );
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
    view.put(source.clone(), Slot::Empty);
    view.put(destination.clone(), Slot::Holds(moving));
    view.contents[moving].placed_by = Some(index);
    let touched = vec![
        (source, operation.source.path()),
        (destination.clone(), destination_path),
    ];
    Ok((
        Step::Applied {
            destination,
            content: moving,
        },
        touched,
    ))
}
