//! One directory's listing, indexed for case-insensitive lookup.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::OnceLock;

use super::key::Folding;
use super::DirEntry;

/// One directory's entries, with their folded names for case-insensitive lookup. Kept compact:
/// a check over 100,000 files holds every listing of their folders.
pub(super) struct Listing {
    /// The directory's own on-disk names from the volume root.
    pub(super) dir: Vec<OsString>,
    pub(super) entries: Box<[DirEntry]>,
    /// The folded names, back to back: entry `i`'s ends at `folded_ends[i]`.
    folded: String,
    folded_ends: Box<[u32]>,
    /// Entry indexes ordered by folded name (names that fold alike are neighbours, in
    /// listing order).
    by_folded: Box<[u32]>,
    /// Open-addressing hash table over folded names: the index of the first entry with each
    /// name, [`FREE`] for a free slot. One hop from a name to its entry.
    slots: Box<[u32]>,
    /// Some names fold alike (a case-sensitive mount): lookups go through `by_folded`.
    has_twins: bool,
    /// Folded short name -> entry, when the volume records short names; filled on first need.
    pub(super) short: OnceLock<Option<HashMap<String, usize>>>,
    /// Entries whose on-disk name is not valid Unicode (bytes that are not UTF-8 on a Unix
    /// host: a tree copied from a Latin-1 file system): their folded names are lossy, so
    /// a queue name that is not found could still be one of them.
    pub(super) undecodable: Box<[u32]>,
}

const FREE: u32 = u32::MAX;

fn name_hash(folded: &str) -> usize {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(folded.as_bytes());
    hasher.finish() as usize
}

impl Listing {
    pub(super) fn new(dir: Vec<OsString>, entries: Vec<DirEntry>, folding: &Folding) -> Listing {
        let mut folded = String::new();
        let mut folded_ends = Vec::with_capacity(entries.len());
        let mut undecodable = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            // One look at the bytes: a name that is not valid Unicode comes back owned.
            let name = entry.name.to_string_lossy();
            if matches!(name, std::borrow::Cow::Owned(_)) {
                undecodable.push(index as u32);
            }
            folded.extend(name.chars().map(|c| folding.fold_char(c)));
            folded_ends.push(folded.len() as u32);
        }
        folded.shrink_to_fit();
        let mut listing = Listing {
            dir,
            entries: entries.into_boxed_slice(),
            folded,
            folded_ends: folded_ends.into_boxed_slice(),
            by_folded: Box::new([]),
            slots: Box::new([]),
            has_twins: false,
            short: OnceLock::new(),
            undecodable: undecodable.into_boxed_slice(),
        };
        let mut order: Vec<u32> = (0..listing.entries.len() as u32).collect();
        // Stable: names that fold alike stay in listing order.
        order.sort_by(|&a, &b| listing.folded_name(a).cmp(listing.folded_name(b)));
        listing.by_folded = order.into_boxed_slice();
        // At most half full, so that a probe ends soon.
        let mut slots = vec![FREE; (2 * listing.entries.len()).next_power_of_two()];
        let mask = slots.len() - 1;
        for index in 0..listing.entries.len() as u32 {
            let name = listing.folded_name(index);
            let mut slot = name_hash(name) & mask;
            loop {
                match slots[slot] {
                    FREE => {
                        slots[slot] = index;
                        break;
                    }
                    other if listing.folded_name(other) == name => {
                        listing.has_twins = true;
                        break;
                    }
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        listing.slots = slots.into_boxed_slice();
        listing
    }

    pub(super) fn folded_name(&self, index: u32) -> &str {
        let index = index as usize;
        let start = match index {
            0 => 0,
            _ => self.folded_ends[index - 1] as usize,
        };
        &self.folded[start..self.folded_ends[index] as usize]
    }

    /// The entries whose names fold to `folded` (more than one only on a case-sensitive mount).
    pub(super) fn find(&self, folded: &str) -> &[u32] {
        if self.has_twins {
            let start = self
                .by_folded
                .partition_point(|&i| self.folded_name(i) < folded);
            let count = self.by_folded[start..].partition_point(|&i| self.folded_name(i) == folded);
            return &self.by_folded[start..start + count];
        }
        if self.slots.is_empty() {
            return &[];
        }
        let mask = self.slots.len() - 1;
        let mut slot = name_hash(folded) & mask;
        loop {
            match self.slots[slot] {
                FREE => return &[],
                index if self.folded_name(index) == folded => {
                    return std::slice::from_ref(&self.slots[slot])
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// An undecodable entry whose name could be `folded` (each undecodable part of its name
    /// standing for one character or more), if there is one.
    pub(super) fn could_be_undecodable(&self, folded: &str) -> Option<u32> {
        self.undecodable.iter().copied().find(|&index| {
            let lossy = self.folded_name(index);
            could_be(lossy.split(char::REPLACEMENT_CHARACTER), folded)
        })
    }

    /// Each folded name once.
    pub(super) fn folded_names(&self) -> impl Iterator<Item = &str> {
        let mut previous = None;
        self.by_folded.iter().filter_map(move |&i| {
            let name = self.folded_name(i);
            (previous.replace(name) != Some(name)).then_some(name)
        })
    }
}

/// Whether `text` can be the pieces joined with one or more characters between each two:
/// a name with undecodable runs (the gaps) that could spell `text`.
fn could_be<'a>(mut pieces: impl Iterator<Item = &'a str>, text: &str) -> bool {
    let Some(first) = pieces.next() else {
        return false;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        // At least one character for the gap before the piece, then the piece.
        let Some(gap) = rest.chars().next() else {
            return false;
        };
        match rest[gap.len_utf8()..].find(piece) {
            Some(at) => rest = &rest[gap.len_utf8() + at + piece.len()..],
            None => return false,
        }
    }
    rest.len() > last.len()
        && rest.ends_with(last)
        && rest[..rest.len() - last.len()].chars().next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{fold, EntryKind};

    #[test]
    fn undecodable_names_could_be_what_their_decodable_parts_allow() {
        let pieces = |lossy: &'static str| lossy.split('\u{fffd}');
        assert!(could_be(pieces("\u{fffd}BER.DLL"), "ÜBER.DLL"));
        assert!(could_be(pieces("A\u{fffd}B\u{fffd}C.DLL"), "AXXBYC.DLL"));
        assert!(could_be(pieces("A\u{fffd}"), "AB"));
        assert!(!could_be(pieces("A\u{fffd}"), "A"));
        assert!(!could_be(pieces("\u{fffd}BER.DLL"), "BER.DLL"));
        assert!(!could_be(pieces("\u{fffd}BER.DLL"), "ÜBER.EXE"));
        assert!(!could_be(pieces("A\u{fffd}B\u{fffd}C"), "ABC"));
        assert!(!could_be(pieces("A\u{fffd}B\u{fffd}C"), "AXBC"));
        assert!(could_be(pieces("X.DLL"), "X.DLL"));
        assert!(!could_be(pieces("X.DLL"), "Y.DLL"));
    }

    #[test]
    fn listings_find_names_by_fold_and_keep_case_twins_together() {
        let entry = |name: &str| DirEntry {
            name: name.into(),
            kind: EntryKind::File,
        };
        let names = ["b.dll", "A.dll", "ntdll.DLL", "a.DLL", "ß", ""];
        let listing = Listing::new(
            Vec::new(),
            names.iter().map(|n| entry(n)).collect(),
            &Folding::Unicode,
        );
        assert_eq!(listing.find("B.DLL"), [0]);
        assert_eq!(listing.find("NTDLL.DLL"), [2]);
        // Twins that fold alike come back together, in listing order.
        assert_eq!(listing.find("A.DLL"), [1, 3]);
        assert_eq!(listing.find("ß"), [4]);
        assert_eq!(listing.find(""), [5]);
        assert!(listing.find("C.DLL").is_empty());
        let folded: Vec<&str> = listing.folded_names().collect();
        assert_eq!(folded, ["", "A.DLL", "B.DLL", "NTDLL.DLL", "ß"]);
        assert!(Listing::new(Vec::new(), Vec::new(), &Folding::Unicode)
            .find("X")
            .is_empty());
        // Without twins, names are found through the hash table alone.
        let names = ["b.dll", "A.dll", "ntdll.DLL", "ß", ""];
        let listing = Listing::new(
            Vec::new(),
            names.iter().map(|n| entry(n)).collect(),
            &Folding::Unicode,
        );
        assert!(!listing.has_twins);
        for (index, name) in names.iter().enumerate() {
            assert_eq!(listing.find(&fold(name)), [index as u32], "{name}");
        }
        assert!(listing.find("C.DLL").is_empty());
    }
}
