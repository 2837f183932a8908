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

mod action_lists;
mod verdict;
mod view;

pub use action_lists::{
    find_action_lists, ActionListSection, ActionLists, ComponentsValues, RegisteredBy,
    Registrations, SoftwareValues, DEFAULT_LIST,
};
pub use verdict::{Reason, Verdict};

use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};
use smallvec::SmallVec;

use crate::evidence::sha256_hex;
use crate::queue::{Action, Operation, Origin, QueuePath};
use crate::version::{read_pe_version, FileVersion, PeFormat};
use crate::volume::{DiskEntry, EntryKind, PathKey, Unresolved, Volumes};
use view::{Content, ContentId, Located, Slot, View};

/// What the replay knows about one file's content. Absent facts are left out of the output.
/// One per file the report shows (hundreds of thousands for a large queue): the facts most
/// files lack are boxed together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFacts {
    /// Where the content is on disk before the boot (host path for a directory volume).
    pub path: Box<str>,
    pub kind: FileKind,
    pub size: Option<u64>,
    pub file_version: Option<FileVersion>,
    pub product_version: Option<FileVersion>,
    pub file_version_string: Option<Box<str>>,
    pub pe_format: Option<PeFormat>,
    /// Why there is no comparable version (not a PE, no version resource, unreadable...).
    pub unversioned_reason: Option<Box<str>>,
    rare: Option<Box<RareFacts>>,
}

/// Facts few files have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RareFacts {
    read_error: Option<Box<str>>,
    sha256: Option<Box<str>>,
    /// The MFT record number, for a file read from an NTFS image.
    mft_record: Option<u64>,
}

impl FileFacts {
    /// Facts of a content of `kind` at `path`, nothing else known yet.
    pub fn new(path: Box<str>, kind: FileKind) -> FileFacts {
        FileFacts {
            path,
            kind,
            size: None,
            file_version: None,
            product_version: None,
            file_version_string: None,
            pe_format: None,
            unversioned_reason: None,
            rare: None,
        }
    }

    /// The file exists but could not be opened or read (permissions, an I/O error): its
    /// version is unknown, and the check cannot pass a gate.
    pub fn read_error(&self) -> Option<&str> {
        self.rare.as_ref()?.read_error.as_deref()
    }

    pub fn sha256(&self) -> Option<&str> {
        self.rare.as_ref()?.sha256.as_deref()
    }

    pub fn set_read_error(&mut self, error: Box<str>) {
        self.rare.get_or_insert_default().read_error = Some(error);
    }

    pub fn set_sha256(&mut self, sha256: Box<str>) {
        self.rare.get_or_insert_default().sha256 = Some(sha256);
    }

    /// The file's MFT record number, when it was read from an NTFS image.
    pub fn mft_record(&self) -> Option<u64> {
        self.rare.as_ref()?.mft_record
    }

    pub fn set_mft_record(&mut self, record: u64) {
        self.rare.get_or_insert_default().mft_record = Some(record);
    }
}

impl Serialize for FileFacts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        fn optional<S: SerializeStruct, T: Serialize + ?Sized>(
            object: &mut S,
            key: &'static str,
            value: Option<&T>,
        ) -> Result<(), S::Error> {
            match value {
                Some(value) => object.serialize_field(key, value),
                None => object.skip_field(key),
            }
        }
        let mut object = serializer.serialize_struct("FileFacts", 11)?;
        object.serialize_field("path", &self.path)?;
        object.serialize_field("kind", &self.kind)?;
        optional(&mut object, "size", self.size.as_ref())?;
        optional(&mut object, "file_version", self.file_version.as_ref())?;
        optional(
            &mut object,
            "product_version",
            self.product_version.as_ref(),
        )?;
        optional(
            &mut object,
            "file_version_string",
            self.file_version_string.as_deref(),
        )?;
        optional(&mut object, "pe_format", self.pe_format.as_ref())?;
        optional(
            &mut object,
            "unversioned_reason",
            self.unversioned_reason.as_deref(),
        )?;
        optional(&mut object, "read_error", self.read_error())?;
        optional(&mut object, "sha256", self.sha256())?;
        optional(&mut object, "mft_record", self.mft_record().as_ref())?;
        object.end()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    File,
    Directory,
    Other,
}

/// The replay's result for one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// One sentence on why, in the user's terms.
    pub reason: Reason,
    /// What the operation moves or deletes, as it is at that point of the boot; when the
    /// source is missing then, what the source path holds on disk.
    pub source_file: Option<Arc<FileFacts>>,
    /// The file at the destination on disk before the boot.
    pub target_file: Option<Arc<FileFacts>>,
    /// M: the highest version an earlier rename of this boot put at the destination before a
    /// later rename overwrote it.
    pub overwritten_staged_version: Option<FileVersion>,
    /// For a superseded rename, the operation that replaced, moved or deleted its result
    /// (a `u32`, as every index of the replay: one per operation of hundreds of thousands).
    pub superseded_by: Option<u32>,
}

/// Operation indexes: most changed paths are changed by one or two.
pub type OperationList = SmallVec<[u32; 2]>;

/// A path whose content the boot changes: before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The NT path as the queue first spelled it (prefixes stripped); the queue's own string.
    #[serde(rename = "nt_path", serialize_with = "nt_path")]
    pub path: QueuePath,
    pub before: Option<Arc<FileFacts>>,
    pub after: Option<Arc<FileFacts>>,
    /// Operations that changed this path, in boot order.
    pub operations: OperationList,
}

impl FileChange {
    pub fn nt_path(&self) -> &str {
        self.path.path()
    }
}

fn nt_path<S: Serializer>(path: &QueuePath, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(path.path())
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

/// Reads the facts of one content: kind, size, version resource, hash.
fn read_facts(
    volumes: &Volumes,
    content: &Content,
    created: Option<&str>,
    options: ReplayOptions,
) -> FileFacts {
    let mut facts = FileFacts::new(
        Box::from(""),
        match content.entry.kind {
            EntryKind::File => FileKind::File,
            EntryKind::Directory => FileKind::Directory,
            _ => FileKind::Other,
        },
    );
    if let Some(path) = created {
        facts.path = Box::from(path);
        facts.size = (facts.kind == FileKind::File).then_some(0);
        facts.unversioned_reason = Some("created empty by the boot".into());
        return facts;
    }
    let mount = content.origin.mount();
    let names = content.entry.names();
    facts.path = volumes.display(mount, &names).into();
    if facts.kind != FileKind::File {
        facts.unversioned_reason = Some("not a regular file".into());
        return facts;
    }
    let evidence = match volumes.open(mount, &names) {
        Ok(evidence) => evidence,
        Err(err) => {
            facts.unversioned_reason = Some(format!("cannot read the file: {err}").into());
            facts.set_read_error(err.to_string().into());
            return facts;
        }
    };
    facts.size = Some(evidence.len() as u64);
    if let Some(record) = volumes.file_id(mount, &names) {
        facts.set_mft_record(record);
    }
    if options.hash_files {
        facts.set_sha256(sha256_hex(&evidence).into());
    }
    match read_pe_version(&evidence) {
        Ok(pe) => {
            facts.pe_format = Some(pe.format);
            facts.unversioned_reason = pe.unversioned_reason().map(String::into_boxed_str);
            if let Some(resource) = pe.resource {
                facts.file_version = resource.file_version;
                facts.product_version = resource.product_version;
                facts.file_version_string =
                    resource.file_version_string.map(String::into_boxed_str);
            }
        }
        Err(err) => facts.unversioned_reason = Some(err.to_string().into()),
    }
    facts
}

/// Per-operation state kept during the replay.
enum Step {
    Decided(Verdict, Reason),
    /// A rename that applied: where it put which content.
    Applied {
        destination: PathKey,
        content: ContentId,
    },
}

/// What the replay noted about one operation, facts still to be read.
struct Noted {
    step: Step,
    files: Involved,
}

/// The contents an operation involves: what it moves or deletes, and what was at its
/// destination on disk.
#[derive(Default)]
struct Involved {
    source: Option<ContentId>,
    target: Option<ContentId>,
}

/// A path the boot changes, with contents still to be read.
struct Change {
    path: QueuePath,
    before: Option<ContentId>,
    after: Option<ContentId>,
    operations: OperationList,
}

/// Replays the queues over `volumes`, in the order given (the registry queue first, as smss
/// runs it; the servicing action list next), each in its own order: one boot, one view.
/// Outcomes come in that order too.
///
/// Three passes: the replay itself (sequential: each operation sees what the earlier ones
/// did; it needs only what exists where), then the version resources of every file involved
/// (in parallel: each file once), then the verdicts.
pub fn replay(queues: &[&[Operation]], volumes: &Volumes, options: ReplayOptions) -> Replay {
    // The queues in boot order, one after the other (no list of them is kept: a queue can
    // hold 100,000 operations).
    let operations = || queues.iter().flat_map(|queue| queue.iter());
    let count: usize = queues.iter().map(|queue| queue.len()).sum();
    // Sized once for a path per operation (renames name two, deletes often one already named).
    let mut view = View {
        volumes,
        contents: Vec::new(),
        paths: FxHashMap::with_capacity_and_hasher(count, Default::default()),
        directory_moved: false,
        created: Vec::new(),
    };
    let mut noted: Vec<Noted> = Vec::with_capacity(count);
    let mut superseded_by: Vec<Option<u32>> = vec![None; count];
    // Per destination: contents this boot put there that a later rename overwrote.
    let mut overwritten: FxHashMap<PathKey, Vec<ContentId>> = FxHashMap::default();
    let mut changes: Vec<Change> = Vec::new();

    // Where each path is depends only on the volumes, not on the replay: found first, on
    // every core; the replay then only looks the answers up.
    let locate = |path: &str| -> Result<Located, Unresolved> {
        let resolved = volumes.resolve(path)?;
        Ok((resolved.key, resolved.entry))
    };
    let mut located = Vec::with_capacity(count);
    for queue in queues {
        located.par_extend(queue.par_iter().map(|op| {
            let destination = op.destination.as_ref().map(|d| locate(&resolvable(op, d)));
            (locate(&resolvable(op, &op.source)), destination)
        }));
    }

    for ((index, operation), paths) in operations().enumerate().zip(located) {
        let mut files = Involved::default();
        let outcome = replay_one(
            &mut view,
            operation,
            paths,
            index as u32,
            &mut files,
            &mut superseded_by,
            &mut overwritten,
        );
        let (step, touched) = match outcome {
            Ok(done) => done,
            Err(why) => (
                Step::Decided(Verdict::Unresolved, Reason::Unresolved(Box::new(why))),
                Vec::new(),
            ),
        };
        for (key, path) in touched {
            let at = match view.paths.get(&key).and_then(|state| state.change) {
                Some(at) => at as usize,
                None => {
                    // Before: the disk, at the first change.
                    let before = view.disk(&key).ok().flatten();
                    changes.push(Change {
                        path: path.clone(),
                        before,
                        after: None,
                        operations: OperationList::new(),
                    });
                    view.paths.entry(key).or_default().change = Some(changes.len() as u32 - 1);
                    changes.len() - 1
                }
            };
            changes[at].operations.push(index as u32);
        }
        noted.push(Noted { step, files });
    }
    // After: what each changed path holds at the end.
    let changed: Vec<(PathKey, u32)> = view
        .paths
        .iter()
        .filter_map(|(key, state)| Some((key.clone(), state.change?)))
        .collect();
    for (key, at) in changed {
        changes[at as usize].after = view.lookup(&key).ok().flatten();
    }
    // The view's map is done with: free it before the files are read (a partial move would
    // keep it to the end of the function).
    let View {
        contents,
        paths,
        created,
        ..
    } = view;
    drop(paths);

    // Every content whose facts the report shows or the verdicts need, each read once.
    let mut wanted = vec![false; contents.len()];
    let mut want = |id: Option<ContentId>| {
        if let Some(id) = id {
            wanted[id as usize] = true;
        }
    };
    for note in &noted {
        want(note.files.source);
        want(note.files.target);
        if let Step::Applied { content, .. } = note.step {
            want(Some(content));
        }
    }
    for change in &changes {
        want(change.before);
        want(change.after);
    }
    overwritten
        .values()
        .flatten()
        .for_each(|&id| want(Some(id)));
    let wanted: Vec<ContentId> = (0..contents.len() as ContentId)
        .filter(|&id| wanted[id as usize])
        .collect();
    let read: Vec<Arc<FileFacts>> = wanted
        .par_iter()
        .map(|&id| {
            let content = &contents[id as usize];
            let created = content.created.then(|| {
                let at = created.partition_point(|&(c, _)| c < id);
                created.get(at).map_or("", |(_, path)| &**path)
            });
            Arc::new(read_facts(volumes, content, created, options))
        })
        .collect();
    let mut facts: Vec<Option<Arc<FileFacts>>> = vec![None; contents.len()];
    drop(contents);
    for (id, f) in wanted.into_iter().zip(read) {
        facts[id as usize] = Some(f);
    }
    let facts_of = |id: Option<ContentId>| id.and_then(|id| facts[id as usize].clone());

    let mut outcomes = Vec::with_capacity(count);
    for (index, note) in noted.into_iter().enumerate() {
        let source_file = facts_of(note.files.source);
        let target_file = facts_of(note.files.target);
        let superseded = superseded_by[index];
        let (verdict, reason, m) = match note.step {
            Step::Decided(verdict, reason) => (verdict, reason, None),
            Step::Applied {
                destination,
                content,
            } => match superseded {
                Some(later) => (
                    Verdict::Superseded,
                    Reason::SupersededBy(later as usize),
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
            superseded_by: superseded,
        });
    }
    // Same size as `Change`: the list is converted in place.
    let changes = changes
        .into_iter()
        .map(|change| FileChange {
            path: change.path,
            before: facts_of(change.before),
            after: facts_of(change.after),
            operations: change.operations,
        })
        .collect();
    Replay { outcomes, changes }
}

/// The path to resolve: an action list may spell a drive path Win32-style (`C:\x`), which
/// the rename queue may not (smss cannot open it).
fn resolvable<'p>(op: &Operation, path: &'p QueuePath) -> std::borrow::Cow<'p, str> {
    match op.origin {
        Origin::ActionList { .. } => crate::queue::nt_form(path.path()),
        Origin::Registry { .. } => std::borrow::Cow::Borrowed(path.path()),
    }
}

/// The step an operation took, and the paths it changed (with the path as the queue spelled it).
type Done<'o> = (Step, Vec<(PathKey, &'o QueuePath)>);

fn replay_one<'o>(
    view: &mut View<'_>,
    operation: &'o Operation,
    (source, destination): (
        Result<Located, Unresolved>,
        Option<Result<Located, Unresolved>>,
    ),
    index: u32,
    files: &mut Involved,
    superseded_by: &mut [Option<u32>],
    overwritten: &mut FxHashMap<PathKey, Vec<ContentId>>,
) -> Result<Done<'o>, Unresolved> {
    let source = view.note(source?);
    let destination = match (&operation.destination, destination) {
        (Some(dest), Some(located)) => Some((view.note(located?), dest)),
        _ => None,
    };
    if let Some((dest, _)) = &destination {
        files.target = view.disk(dest)?;
    }
    fn decided<'o>(verdict: Verdict, why: &'static str) -> Result<Done<'o>, Unresolved> {
        Ok((Step::Decided(verdict, Reason::Fixed(why)), Vec::new()))
    }
    if matches!(operation.action, Action::Create | Action::CreateDirectory) {
        return create(view, operation, source, index, files);
    }
    let Some(moving) = view.lookup(&source)? else {
        files.source = view.disk(&source)?;
        return decided(
            Verdict::NoEffect,
            if files.source.is_some() {
                "the source no longer exists at this point of the boot (an earlier operation moved or deleted it)"
            } else {
                "the source does not exist"
            },
        );
    };
    files.source = Some(moving);
    if view.is_dir(moving) {
        // Set before the outcome is known: a failed move only costs later lookups a walk up.
        view.directory_moved = true;
    }

    let Some((destination, destination_path)) = destination else {
        if view.is_dir(moving) && view.has_children(&source, moving)? {
            return decided(
                Verdict::NoEffect,
                "the directory is not empty, and smss deletes only empty directories",
            );
        }
        view.put(source.clone(), Slot::Empty);
        if let Some(writer) = view.content(moving).placed_by {
            superseded_by[writer as usize] = Some(index);
        }
        return Ok((
            Step::Decided(Verdict::Delete, Reason::Fixed("deletes the source")),
            vec![(source, &operation.source)],
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
            if let Some(writer) = view.content(existing).placed_by {
                superseded_by[writer as usize] = Some(index);
                overwritten
                    .entry(destination.clone())
                    .or_default()
                    .push(existing);
            }
        }
    }
    if operation.action == Action::Hardlink {
        if view.is_dir(moving) {
            return decided(
                Verdict::NoEffect,
                "the source is a directory, which cannot be hard-linked",
            );
        }
        // The destination gets the source's content and the source keeps it: a content of
        // its own (same file on disk), so that what later happens to the source does not
        // count against the link.
        let linked = view.contents[moving as usize].clone_for_link(index);
        view.contents.push(linked);
        let link = (view.contents.len() - 1) as ContentId;
        if let Some((_, path)) = view.created.iter().find(|(id, _)| *id == moving) {
            let path = Arc::clone(path);
            view.created.push((link, path));
        }
        view.put(destination.clone(), Slot::Holds(link));
        return Ok((
            Step::Applied {
                destination: destination.clone(),
                content: link,
            },
            vec![(destination, destination_path)],
        ));
    }
    if let Some(writer) = view.content(moving).placed_by {
        superseded_by[writer as usize] = Some(index);
    }
    view.put(source.clone(), Slot::Empty);
    view.put(destination.clone(), Slot::Holds(moving));
    view.content(moving).placed_by = Some(index);
    let touched = vec![
        (source, &operation.source),
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

/// An action list's `CreateFile` or `CreateDirectory` at `path`: an empty file or folder
/// where there is none (what poqexec does with one that exists is not known: it is left as
/// it is, and the operation says so).
fn create<'o>(
    view: &mut View<'_>,
    operation: &'o Operation,
    path: PathKey,
    index: u32,
    files: &mut Involved,
) -> Result<Done<'o>, Unresolved> {
    let no_effect = |why| {
        Ok((
            Step::Decided(Verdict::NoEffect, Reason::Fixed(why)),
            Vec::new(),
        ))
    };
    match path.parent() {
        Some(parent) => match view.lookup(&parent)? {
            Some(id) if view.is_dir(id) => {}
            _ => return no_effect("the folder it would be created in does not exist"),
        },
        None => return no_effect("the path is the root of a volume"),
    }
    if let Some(existing) = view.lookup(&path)? {
        files.source = Some(existing);
        return no_effect("the path exists already; it is left as it is (assumed)");
    }
    let directory = operation.action == Action::CreateDirectory;
    view.contents.push(Content {
        origin: path.clone(),
        entry: DiskEntry::created(if directory {
            EntryKind::Directory
        } else {
            EntryKind::File
        }),
        placed_by: Some(index),
        created: true,
    });
    let id = (view.contents.len() - 1) as ContentId;
    view.created.push((id, Arc::from(operation.source.path())));
    view.put(path.clone(), Slot::Holds(id));
    let why = if directory {
        "creates the folder"
    } else {
        "creates an empty file"
    };
    Ok((
        Step::Decided(Verdict::NewFile, Reason::Fixed(why)),
        vec![(path, &operation.source)],
    ))
}
