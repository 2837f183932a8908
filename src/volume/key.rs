//! Path identity: case-folded names, and the key of a path on the mapped volumes.

use std::sync::Arc;

/// The identity of a path on the mapped volumes: mount index and case-folded on-disk names
/// (for the part that exists; the requested names, folded, for the rest), joined with `\`.
/// Two spellings of one file, through different case, short names or links, have the same
/// key. Cheap to clone and hash: a shared string, of which an ancestor's key is a prefix (so
/// that taking the parent allocates nothing).
#[derive(Clone, Debug)]
pub struct PathKey {
    mount: u32,
    /// Bytes of `folded` that are this path.
    len: u32,
    /// Folded components joined with `\`; empty for the volume root.
    folded: Arc<str>,
}

impl PartialEq for PathKey {
    fn eq(&self, other: &PathKey) -> bool {
        self.mount == other.mount && self.as_str() == other.as_str()
    }
}

impl Eq for PathKey {}

impl std::hash::Hash for PathKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.mount.hash(state);
        self.as_str().hash(state);
    }
}

impl PartialOrd for PathKey {
    fn partial_cmp(&self, other: &PathKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathKey {
    fn cmp(&self, other: &PathKey) -> std::cmp::Ordering {
        (self.mount, self.as_str()).cmp(&(other.mount, other.as_str()))
    }
}

impl PathKey {
    /// A key from folded components (which never contain `\`).
    pub fn new<S: AsRef<str>>(mount: usize, folded: impl IntoIterator<Item = S>) -> PathKey {
        let mut joined = String::new();
        for (i, part) in folded.into_iter().enumerate() {
            if i > 0 {
                joined.push('\\');
            }
            joined.push_str(part.as_ref());
        }
        PathKey::from_joined(mount, joined)
    }

    pub(super) fn from_joined(mount: usize, joined: String) -> PathKey {
        PathKey {
            mount: mount as u32,
            len: joined.len() as u32,
            folded: joined.into(),
        }
    }

    pub fn mount(&self) -> usize {
        self.mount as usize
    }

    /// The folded path below the volume root, components joined with `\`.
    pub fn as_str(&self) -> &str {
        &self.folded[..self.len as usize]
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.as_str().split('\\').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<PathKey> {
        let path = self.as_str();
        if path.is_empty() {
            return None;
        }
        Some(PathKey {
            mount: self.mount,
            len: path.rfind('\\').unwrap_or(0) as u32,
            folded: Arc::clone(&self.folded),
        })
    }

    /// The key of a folded name inside this directory.
    pub fn child(&self, folded_name: &str) -> PathKey {
        let joined = match self.as_str() {
            "" => folded_name.to_string(),
            path => format!("{path}\\{folded_name}"),
        };
        PathKey::from_joined(self.mount(), joined)
    }

    /// This path is `ancestor` or inside it (whole components compared).
    pub fn is_within(&self, ancestor: &PathKey) -> bool {
        self.mount == ancestor.mount
            && match self.as_str().strip_prefix(ancestor.as_str()) {
                Some(rest) => {
                    rest.is_empty() || rest.starts_with('\\') || ancestor.as_str().is_empty()
                }
                None => false,
            }
    }

    /// This path with `from` (an ancestor) replaced by `to`: where it is after `from` moved.
    pub fn rebase(&self, from: &PathKey, to: &PathKey) -> PathKey {
        let rest = self.as_str()[from.as_str().len()..].trim_start_matches('\\');
        let mut key = to.clone();
        if !rest.is_empty() {
            key = key.child(rest);
        }
        key
    }
}

/// How a volume compares names. NTFS upper-cases each UTF-16 unit through the volume's own
/// `$UpCase` table (written when the volume was formatted, so its Unicode version is that of
/// the Windows that formatted it); characters outside the Basic Multilingual Plane are
/// compared as they are. A host directory has no table: Unicode's simple upper case stands
/// in for it ([`fold`]).
#[derive(Clone, Debug, Default)]
pub enum Folding {
    #[default]
    Unicode,
    /// A volume's `$UpCase`: the upper case of each of the 65,536 UTF-16 units.
    Table(Arc<[u16]>),
}

/// The folding of a volume without a table of its own.
pub static UNICODE: Folding = Folding::Unicode;

/// The units a `$UpCase` table has.
pub const UPCASE_UNITS: usize = 0x10000;

impl Folding {
    /// A volume's `$UpCase` table, if it is one: 65,536 units that upper-case the ASCII
    /// letters as every table Windows writes does (a table that does not would make the
    /// names this looks for, `Windows`, `System32`, unreachable on the volume).
    pub fn from_table(units: Vec<u16>) -> Result<Folding, String> {
        if units.len() != UPCASE_UNITS {
            return Err(format!(
                "$UpCase holds {} entries, not {UPCASE_UNITS}",
                units.len()
            ));
        }
        let ascii = (0u16..128).all(|c| {
            let expected = (c as u8).to_ascii_uppercase() as u16;
            units[c as usize] == expected
        });
        if !ascii {
            return Err("$UpCase does not upper-case ASCII as Windows does".to_string());
        }
        Ok(Folding::Table(units.into()))
    }

    pub fn fold(&self, name: &str) -> String {
        match self {
            Folding::Unicode => fold(name),
            Folding::Table(_) => name.chars().map(|c| self.fold_char(c)).collect(),
        }
    }

    pub fn fold_char(&self, c: char) -> char {
        match self {
            Folding::Unicode => fold_char(c),
            Folding::Table(table) => match table.get(c as usize) {
                // A unit mapped to a surrogate half (a damaged table) is left as it is.
                Some(&upper) => char::from_u32(u32::from(upper)).unwrap_or(c),
                None => c,
            },
        }
    }
}

/// Case folding as NTFS compares names: each character upper-cased on its own (simple
/// mapping, as the volume's $UpCase table does), characters whose upper case is several
/// characters (`ß`) left as they are.
pub fn fold(name: &str) -> String {
    name.chars().map(fold_char).collect()
}

pub(super) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_compares_whole_components() {
        let store = PathKey::new(0, ["WINDOWS", "WINSXS"]);
        assert!(PathKey::new(0, ["WINDOWS", "WINSXS", "X"]).is_within(&store));
        assert!(store.is_within(&store));
        assert!(!PathKey::new(0, ["WINDOWS", "WINSXSX", "X"]).is_within(&store));
        assert!(!PathKey::new(1, ["WINDOWS", "WINSXS", "X"]).is_within(&store));
        assert!(!PathKey::new(0, ["USERS", "A"]).is_within(&store));
    }

    #[test]
    fn a_volume_table_folds_as_it_says() {
        let mut units: Vec<u16> = (0..=u16::MAX).collect();
        for c in b'a'..=b'z' {
            units[c as usize] = u16::from(c.to_ascii_uppercase());
        }
        // This table leaves Greek lower case as it is and folds 'é' to 'E'.
        units[0xe9] = u16::from(b'E');
        let table = Folding::from_table(units.clone()).unwrap();
        assert_eq!(table.fold("café.dll"), "CAFE.DLL");
        assert_eq!(table.fold("ωmega"), "ωMEGA");
        assert_eq!(Folding::Unicode.fold("ωmega"), "ΩMEGA");
        // Outside the BMP, NTFS compares units as they are; Unicode folding would not.
        assert_eq!(table.fold("\u{10428}"), "\u{10428}");
        assert_eq!(Folding::Unicode.fold("\u{10428}"), "\u{10400}");
        // Tables that are not one: wrong size, ASCII not upper-cased.
        assert!(Folding::from_table(units[..100].to_vec()).is_err());
        units[b'q' as usize] = u16::from(b'q');
        assert!(Folding::from_table(units).is_err());
    }

    #[test]
    fn folding_is_simple_upper_case() {
        assert_eq!(fold("System32\\ntoskrnl.exe"), "SYSTEM32\\NTOSKRNL.EXE");
        assert_eq!(fold("straße"), "STRAßE");
        assert_eq!(fold("Ωmega"), "ΩMEGA");
    }

    #[test]
    fn path_keys_know_their_ancestors() {
        let key = |parts: &[&str]| PathKey::new(0, parts.iter());
        assert_eq!(key(&["A", "B"]).parent(), Some(key(&["A"])));
        assert_eq!(key(&["A"]).parent(), Some(key(&[])));
        assert_eq!(key(&[]).parent(), None);
        // A parent shares its child's string; equality and hashing see only the prefix.
        let parent = key(&["A", "B"]).parent().unwrap();
        assert_eq!(parent.as_str(), "A");
        let hash = |k: &PathKey| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(k)
        };
        assert_eq!(hash(&parent), hash(&key(&["A"])));
        assert_eq!(key(&["A"]).child("B"), key(&["A", "B"]));
        assert_eq!(key(&[]).child("B"), key(&["B"]));
        assert_eq!(
            key(&["A", "B", "C"]).rebase(&key(&["A"]), &key(&["X", "Y"])),
            key(&["X", "Y", "B", "C"])
        );
        assert_eq!(
            key(&["A", "B"]).components().collect::<Vec<_>>(),
            ["A", "B"]
        );
    }
}
