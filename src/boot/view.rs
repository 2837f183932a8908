//! The volumes as the boot changes them: every path the queues name, what the disk held there
//! and what earlier operations left there, and the contents the boot moves around.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::volume::{DiskEntry, EntryKind, PathKey, Unresolved, Volumes};

pub(super) type ContentId = u32;

/// A queue path mapped onto the volumes: its key, and what the disk holds there.
pub(super) type Located = (PathKey, Option<DiskEntry>);

/// A file or directory as it was on disk before the boot; the boot moves it around.
pub(super) struct Content {
    /// The path that held it on disk before the boot.
    pub(super) origin: PathKey,
    /// What it is there: kept from the walk that found it, so that reading it needs no
    /// second look.
    pub(super) entry: DiskEntry,
    /// The rename that last put this content where it is now.
    pub(super) placed_by: Option<u32>,
    /// Made by the boot (an action list's create), not on disk; its path as the list spells
    /// it is in the view's `created` (few contents are: a flag keeps every other one small).
    pub(super) created: bool,
}

impl Content {
    /// The same file on disk, placed by the hard link `index`.
    pub(super) fn clone_for_link(&self, index: u32) -> Content {
        Content {
            origin: self.origin.clone(),
            entry: self.entry.clone(),
            placed_by: Some(index),
            created: self.created,
        }
    }

    /// Records what a path held on disk before the boot; returns its id.
    pub(super) fn add(
        contents: &mut Vec<Content>,
        origin: &PathKey,
        entry: DiskEntry,
    ) -> ContentId {
        contents.push(Content {
            origin: origin.clone(),
            entry,
            placed_by: None,
            created: false,
        });
        (contents.len() - 1) as ContentId
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Holds(ContentId),
    Empty,
}

/// Everything the replay knows about one path, in one map entry (a queue of 100,000
/// operations names about as many paths).
#[derive(Clone, Copy, Default)]
pub(super) struct PathState {
    /// What the disk holds here before the boot, once looked up.
    pub(super) disk: Option<Option<ContentId>>,
    /// What earlier operations left here, when one changed it.
    pub(super) now: Option<Slot>,
    /// How many paths in this folder earlier operations filled (to tell whether a folder is
    /// empty without scanning every path).
    pub(super) filled_children: u32,
    /// This path's entry in the list of changes, once the boot changes it.
    pub(super) change: Option<u32>,
}

/// The volumes as the boot changes them: an overlay of what earlier operations did over the
/// disk as it was.
pub(super) struct View<'v> {
    pub(super) volumes: &'v Volumes,
    pub(super) contents: Vec<Content>,
    pub(super) paths: FxHashMap<PathKey, PathState>,
    /// An earlier operation moved or deleted a directory: only then can what a path holds
    /// depend on what happened to one of its ancestors.
    pub(super) directory_moved: bool,
    /// The contents the boot creates, with their paths as spelled, in order of creation.
    pub(super) created: Vec<(ContentId, Arc<str>)>,
}

impl View<'_> {
    /// Notes what the disk holds at a located path (the walk has just seen it: no second
    /// look), and returns its key.
    pub(super) fn note(&mut self, (key, entry): Located) -> PathKey {
        let state = self.paths.entry(key.clone()).or_default();
        if state.disk.is_none() {
            let contents = &mut self.contents;
            state.disk = Some(entry.map(|entry| Content::add(contents, &key, entry)));
        }
        key
    }

    pub(super) fn disk(&mut self, key: &PathKey) -> Result<Option<ContentId>, Unresolved> {
        if let Some(disk) = self.paths.get(key).and_then(|state| state.disk) {
            return Ok(disk);
        }
        let found = self
            .volumes
            .stat(key)?
            .map(|entry| Content::add(&mut self.contents, key, entry));
        self.paths.entry(key.clone()).or_default().disk = Some(found);
        Ok(found)
    }

    pub(super) fn now(&self, key: &PathKey) -> Option<Slot> {
        self.paths.get(key).and_then(|state| state.now)
    }

    /// What the path holds at this point of the boot.
    pub(super) fn lookup(&mut self, key: &PathKey) -> Result<Option<ContentId>, Unresolved> {
        if let Some(slot) = self.now(key) {
            return Ok(match slot {
                Slot::Holds(id) => Some(id),
                Slot::Empty => None,
            });
        }
        // A path below something an earlier operation removed or replaced: the replaced
        // entry's own children are what counts. Moved directories keep their disk children.
        let mut ancestor = key.parent().filter(|_| self.directory_moved);
        while let Some(parent) = ancestor {
            if let Some(slot) = self.now(&parent) {
                return match slot {
                    Slot::Empty => Ok(None),
                    Slot::Holds(id) => {
                        let content = &self.contents[id as usize];
                        if content.entry.kind != EntryKind::Directory {
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

    pub(super) fn content(&mut self, id: ContentId) -> &mut Content {
        &mut self.contents[id as usize]
    }

    pub(super) fn is_dir(&self, id: ContentId) -> bool {
        self.contents[id as usize].entry.kind == EntryKind::Directory
    }

    /// Whether a directory holds anything at this point of the boot.
    pub(super) fn has_children(
        &mut self,
        key: &PathKey,
        id: ContentId,
    ) -> Result<bool, Unresolved> {
        let disk_children = self.volumes.children(&self.contents[id as usize].origin);
        for name in disk_children {
            if self.lookup(&key.child(&name))?.is_some() {
                return Ok(true);
            }
        }
        Ok(self.paths.get(key).is_some_and(|s| s.filled_children > 0))
    }

    pub(super) fn put(&mut self, key: PathKey, slot: Slot) {
        let parent = key.parent();
        let state = self.paths.entry(key).or_default();
        let was_filled = matches!(state.now.replace(slot), Some(Slot::Holds(_)));
        let now_filled = matches!(slot, Slot::Holds(_));
        if let (Some(parent), true) = (parent, was_filled != now_filled) {
            let count = &mut self.paths.entry(parent).or_default().filled_children;
            *count = if now_filled {
                *count + 1
            } else {
                count.saturating_sub(1)
            };
        }
    }
}
