//! Queue: the pending file operations, decoded from each source in boot order.
//!
//! Two sources, in the order the boot runs them: the registry (`PendingFileRenameOperations`,
//! then `...2`, run by smss), then a servicing action list (`pending.xml`, run by poqexec:
//! [`action_list`] reads it, [`decode_action_list`] turns its primitives into operations).
//! Each [`Operation`] says where it came from ([`Origin`]).

pub mod action_list;
pub mod multi_sz;

use std::sync::Arc;

use serde::Serialize;

use crate::finding::Finding;
use crate::hive::{type_name, RawValue};

/// Which queue an operation is in (the report's `queue` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueSource {
    /// `Session Manager\PendingFileRenameOperations[2]` in the SYSTEM hive.
    Registry,
    /// The servicing action list the next boot runs.
    ActionList,
}

/// Where exactly an operation was queued: its place in its source. A second queue (the
/// servicing action list) is one more variant, with its own coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A pair of strings of a pending value.
    Registry {
        /// The registry value the operation's source string is in, as stored. One allocation
        /// per value, shared by its operations; a thin pointer, so that an operation (100,000
        /// in a large queue) stays as small as it was before it had an origin.
        value: Arc<String>,
        /// Index of the source string within that value (0-based, empty strings counted).
        string_index: u32,
    },
    /// A primitive of an action list's first POQ.
    ActionList {
        /// The list, shared by its operations (a thin pointer: see `Registry::value`).
        list: Arc<ListOrigin>,
        /// The primitive's index among the elements of its POQ (every element counted).
        element: u32,
    },
}

/// What the operations of one action list share: which list, and where each primitive is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOrigin {
    /// The list's path as the registry (or the default) names it.
    pub path: String,
    /// The POQ the primitives are in (0: the one run at boot).
    pub poq: u32,
    /// The index of the list's first operation.
    first_index: usize,
    /// The line each operation of the list starts on, in order (one `u32` each: a list can
    /// hold a million).
    lines: Vec<u32>,
}

impl ListOrigin {
    /// The line the list's operation `index` (its index in the report) starts on.
    pub fn line(&self, index: usize) -> Option<u32> {
        self.lines
            .get(index.checked_sub(self.first_index)?)
            .copied()
    }
}

impl Origin {
    pub fn queue(&self) -> QueueSource {
        match self {
            Origin::Registry { .. } => QueueSource::Registry,
            Origin::ActionList { .. } => QueueSource::ActionList,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Rename,
    Delete,
    /// Action lists only (`HardlinkFile`): the destination gets the source's content, and
    /// the source stays.
    Hardlink,
    /// Action lists only (`CreateFile`): an empty file.
    Create,
    /// Action lists only (`CreateDirectory`).
    CreateDirectory,
}

/// A path as the queue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePath {
    /// The string exactly as stored, prefixes included (shared with the report).
    pub stored: Arc<str>,
    /// Bytes of `stored` taken by the `*N`, `!` and `@` prefixes (at most 6).
    pub prefix_len: u8,
    /// The character after a `*` prefix (`*1` -> `1`), if there was one.
    pub star: Option<char>,
}

impl QueuePath {
    /// The NT path after the `*N`, `!` and `@` prefixes.
    pub fn path(&self) -> &str {
        &self.stored[usize::from(self.prefix_len)..]
    }

    /// A path exactly as stored, without prefixes (an action list's attributes have none).
    pub fn plain(stored: Arc<str>) -> QueuePath {
        QueuePath {
            stored,
            prefix_len: 0,
            star: None,
        }
    }
}

/// A path to resolve on the volumes: an action list may name `C:\x` where the rename queue
/// says `\??\C:\x` (both mean the same file to poqexec, which runs after the drive letters
/// exist).
pub fn nt_form(path: &str) -> std::borrow::Cow<'_, str> {
    let bytes = path.as_bytes();
    if bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'\\' {
        std::borrow::Cow::Owned(format!("\\??\\{path}"))
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// What is unusual about how an operation was stored. Few operations have any, so it is
/// kept out of line (a queue can hold 100,000 operations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Irregular {
    /// Raw UTF-16LE bytes (hex) of a stored string that did not decode exactly.
    pub source_raw_hex: Option<String>,
    pub destination_raw_hex: Option<String>,
    pub notes: Vec<String>,
}

/// One operation smss will attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Position in boot order, from 0.
    pub index: usize,
    pub origin: Origin,
    pub action: Action,
    /// The destination had `!` (MOVEFILE_REPLACE_EXISTING) or `@`.
    pub replace_existing: bool,
    pub source: QueuePath,
    /// `None` for a delete.
    pub destination: Option<QueuePath>,
    /// Notes and undecodable bytes, when there are any.
    pub irregular: Option<Box<Irregular>>,
}

impl Operation {
    /// Anything odd about how this operation was stored.
    pub fn notes(&self) -> &[String] {
        self.irregular.as_ref().map_or(&[], |i| &i.notes)
    }

    pub fn source_raw_hex(&self) -> Option<&str> {
        self.irregular.as_ref()?.source_raw_hex.as_deref()
    }

    pub fn destination_raw_hex(&self) -> Option<&str> {
        self.irregular.as_ref()?.destination_raw_hex.as_deref()
    }

    fn irregular(&mut self) -> &mut Irregular {
        self.irregular.get_or_insert_default()
    }
}

/// The decoded queue of one control set.
#[derive(Clone, Debug, Default)]
pub struct Queue {
    pub operations: Vec<Operation>,
    pub findings: Vec<Finding>,
}

/// The operations of an action list's first POQ, in execution order, numbered from
/// `first_index` (they follow the rename queue's). `path` is the list as the registry names
/// it. Registry primitives and markers are not operations (the list's counts have them).
pub fn decode_action_list(list: &action_list::ActionList, path: &str, first_index: usize) -> Queue {
    use action_list::PrimitiveKind;
    let mut lines = Vec::new();
    let mut operations = Vec::new();
    for primitive in &list.primitives {
        let action = match primitive.kind {
            PrimitiveKind::MoveFile => Action::Rename,
            PrimitiveKind::HardlinkFile => Action::Hardlink,
            PrimitiveKind::DeleteFile => Action::Delete,
            PrimitiveKind::CreateFile => Action::Create,
            PrimitiveKind::CreateDirectory => Action::CreateDirectory,
            _ => continue,
        };
        lines.push(primitive.line);
        operations.push((primitive, action));
    }
    let origin = Arc::new(ListOrigin {
        path: path.to_string(),
        poq: 0,
        first_index,
        lines,
    });
    let operations = operations
        .into_iter()
        .enumerate()
        .map(|(n, (primitive, action))| Operation {
            index: first_index + n,
            origin: Origin::ActionList {
                list: Arc::clone(&origin),
                element: primitive.element,
            },
            action,
            // MoveFile and HardlinkFile replace what is at the destination.
            replace_existing: matches!(action, Action::Rename | Action::Hardlink),
            // The list's strings themselves, shared: no second copy of every path.
            source: QueuePath::plain(Arc::clone(&primitive.source)),
            destination: primitive
                .destination
                .as_ref()
                .map(|d| QueuePath::plain(Arc::clone(d))),
            irregular: None,
        })
        .collect();
    Queue {
        operations,
        findings: Vec::new(),
    }
}

/// Decodes the registry queue from the raw pending values, in smss order. Strings are paired
/// across the values through one shared slot, as smss does: an odd count in the first value
/// pairs its last string with the first string of the second. A final source with no partner
/// is a delete.
pub fn decode_registry(values: &[RawValue]) -> Queue {
    let mut findings = Vec::new();
    // Sized once: every two strings are an operation, a final odd one too.
    let strings: usize = values.iter().map(|v| multi_sz::max_strings(&v.bytes)).sum();
    let mut operations = Vec::with_capacity(strings.div_ceil(2));
    let mut pending_source: Option<(Arc<String>, u32, multi_sz::WideString)> = None;
    for value in values {
        if value.data_type != 7 {
            findings.push(Finding::warning(
                "queue-value-type",
                format!(
                    "{} is {}, not REG_MULTI_SZ; decoded as a multi-string list anyway, as smss does not check",
                    value.name,
                    type_name(value.data_type)
                ),
            ));
        }
        if value.bytes.is_empty() {
            findings.push(Finding::info(
                "queue-value-empty",
                format!("{} is present but holds no data", value.name),
            ));
        }
        let name = Arc::new(value.name.clone());
        let mut string_index = 0u32;
        let layout = multi_sz::for_each(&value.bytes, |string| {
            // Pairs through one slot shared by both values, as smss pairs them.
            match pending_source.take() {
                None => pending_source = Some((Arc::clone(&name), string_index, string)),
                Some(source) => {
                    let operation =
                        operation(operations.len(), source, Some((Arc::clone(&name), string)));
                    operations.push(operation);
                }
            }
            string_index = string_index.saturating_add(1);
        });
        let layout_notes = [
            (
                layout.odd_length,
                "has an odd byte length; its last byte is ignored",
            ),
            (
                layout.missing_terminator,
                "does not end with a NUL; its last string is unterminated",
            ),
            (
                layout.missing_list_terminator,
                "ends with a single NUL; the list terminator is missing",
            ),
        ];
        for (_, what) in layout_notes.iter().filter(|(present, _)| *present) {
            findings.push(Finding::warning(
                "queue-value-layout",
                format!("{} ({} bytes) {what}", value.name, value.bytes.len()),
            ));
        }
    }
    if let Some(source) = pending_source {
        operations.push(operation(operations.len(), source, None));
    }
    for operation in &mut operations {
        if operation.source.path().is_empty() {
            operation
                .irregular()
                .notes
                .push("source path is empty".into());
        }
    }
    Queue {
        operations,
        findings,
    }
}

/// One operation from its source string and, unless the queue ended, its destination string.
fn operation(
    index: usize,
    (value, string_index, source): (Arc<String>, u32, multi_sz::WideString),
    destination: Option<(Arc<String>, multi_sz::WideString)>,
) -> Operation {
    let mut notes = Vec::new();
    if source.unterminated {
        notes.push("source string is unterminated".to_string());
    }
    let destination = match destination {
        Some((dest_value, dest)) => {
            if dest_value != value {
                notes.push(format!("destination is the first string of {dest_value}"));
            }
            if dest.unterminated {
                notes.push("destination string is unterminated".to_string());
            }
            Some(dest)
        }
        None => {
            notes.push("final source has no destination string: treated as a delete".into());
            None
        }
    };
    let (action, role, destination, replace_existing, destination_raw_hex) =
        match destination.filter(|d| !d.text.is_empty()) {
            None => (Action::Delete, PathRole::DeleteSource, None, false, None),
            Some(dest) => {
                let (path, replace) = parse_path(dest.text, PathRole::Destination);
                (
                    Action::Rename,
                    PathRole::RenameSource,
                    Some(path),
                    replace,
                    dest.raw_hex,
                )
            }
        };
    let irregular = Irregular {
        source_raw_hex: source.raw_hex,
        destination_raw_hex,
        notes,
    };
    Operation {
        index,
        origin: Origin::Registry {
            value,
            string_index,
        },
        action,
        replace_existing,
        source: parse_path(source.text, role).0,
        destination,
        irregular: (irregular != Irregular::default()).then(|| Box::new(irregular)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PathRole {
    RenameSource,
    DeleteSource,
    Destination,
}

/// Strips the prefixes smss understands: `*N` (a `*` and one character) first, then `!` or
/// `@` on a destination (replace existing), or `@` on the source of a delete.
fn parse_path(stored: Arc<str>, role: PathRole) -> (QueuePath, bool) {
    let mut rest = &*stored;
    let mut star = None;
    if let Some(after) = rest.strip_prefix('*') {
        let mut chars = after.chars();
        if let Some(c) = chars.next() {
            star = Some(c);
            rest = chars.as_str();
        }
    }
    let marker = match role {
        PathRole::Destination => rest.strip_prefix('!').or_else(|| rest.strip_prefix('@')),
        PathRole::DeleteSource => rest.strip_prefix('@'),
        PathRole::RenameSource => None,
    };
    let replace = role == PathRole::Destination && marker.is_some();
    // `*`, one character (at most 4 bytes) and `!` or `@`: at most 6 bytes.
    let prefix_len = (stored.len() - marker.unwrap_or(rest).len()) as u8;
    let parsed = QueuePath {
        stored,
        prefix_len,
        star,
    };
    (parsed, replace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_index(op: &Operation) -> u32 {
        let Origin::Registry { string_index, .. } = &op.origin else {
            panic!("not from the registry: {:?}", op.origin);
        };
        *string_index
    }

    fn value_name(op: &Operation) -> &str {
        let Origin::Registry { value, .. } = &op.origin else {
            panic!("not from the registry: {:?}", op.origin);
        };
        value
    }

    fn value(name: &str, text: &str) -> RawValue {
        RawValue {
            name: name.into(),
            data_type: 7,
            bytes: text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
        }
    }

    fn pfro(text: &str) -> RawValue {
        value("PendingFileRenameOperations", text)
    }

    #[test]
    fn renames_and_deletes_as_movefileex_writes_them() {
        let queue = decode_registry(&[pfro(
            "\\??\\C:\\a.tmp\0!\\??\\C:\\a.dll\0\\??\\C:\\old.log\0\0\\??\\C:\\b.tmp\0\\??\\C:\\b.dll\0\0",
        )]);
        let ops = &queue.operations;
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].action, Action::Rename);
        assert!(ops[0].replace_existing);
        assert_eq!(
            ops[0].destination.as_ref().unwrap().path(),
            "\\??\\C:\\a.dll"
        );
        assert_eq!(
            &*ops[0].destination.as_ref().unwrap().stored,
            "!\\??\\C:\\a.dll"
        );
        assert_eq!(ops[1].action, Action::Delete);
        assert_eq!(ops[1].source.path(), "\\??\\C:\\old.log");
        assert_eq!(string_index(&ops[1]), 2);
        assert!(!ops[2].replace_existing);
        assert_eq!(string_index(&ops[2]), 4);
        assert!(queue.findings.is_empty());
    }

    #[test]
    fn trailing_delete_with_three_nuls() {
        let queue = decode_registry(&[pfro("\\??\\C:\\x\0\0\0")]);
        assert_eq!(queue.operations.len(), 1);
        assert_eq!(queue.operations[0].action, Action::Delete);
        assert!(queue.operations[0].notes().is_empty());
    }

    #[test]
    fn star_and_at_prefixes() {
        let queue = decode_registry(&[pfro(
            "*1\\??\\C:\\s1\0*1!\\??\\C:\\d1\0\\??\\C:\\s2\0@\\??\\C:\\d2\0@\\??\\C:\\gone\0\0\0",
        )]);
        let ops = &queue.operations;
        assert_eq!(ops[0].source.star, Some('1'));
        assert_eq!(ops[0].source.path(), "\\??\\C:\\s1");
        assert_eq!(ops[0].destination.as_ref().unwrap().path(), "\\??\\C:\\d1");
        assert!(ops[0].replace_existing);
        assert!(ops[1].replace_existing);
        assert_eq!(ops[1].destination.as_ref().unwrap().path(), "\\??\\C:\\d2");
        assert_eq!(ops[2].action, Action::Delete);
        assert_eq!(ops[2].source.path(), "\\??\\C:\\gone");
        assert_eq!(&*ops[2].source.stored, "@\\??\\C:\\gone");
    }

    #[test]
    fn bang_inside_a_path_is_not_a_prefix() {
        let queue = decode_registry(&[pfro("\\??\\C:\\s\0\\??\\C:\\d!x\0\0")]);
        assert!(!queue.operations[0].replace_existing);
    }

    #[test]
    fn odd_count_pairs_across_the_two_values() {
        let queue = decode_registry(&[
            pfro("\\??\\C:\\a\0!\\??\\C:\\b\0\\??\\C:\\c\0\0"),
            value(
                "PendingFileRenameOperations2",
                "!\\??\\C:\\d\0\\??\\C:\\e\0\0\0",
            ),
        ]);
        let ops = &queue.operations;
        assert_eq!(ops.len(), 3);
        assert_eq!(value_name(&ops[1]), "PendingFileRenameOperations");
        assert_eq!(ops[1].destination.as_ref().unwrap().path(), "\\??\\C:\\d");
        assert!(ops[1].notes()[0].contains("PendingFileRenameOperations2"));
        assert_eq!(value_name(&ops[2]), "PendingFileRenameOperations2");
        assert_eq!(ops[2].action, Action::Delete);
        assert_eq!(ops.iter().map(|o| o.index).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn unpaired_final_source_is_a_delete_with_a_note() {
        let queue = decode_registry(&[pfro("\\??\\C:\\a\0\\??\\C:\\b\0\\??\\C:\\c\0\0")]);
        assert_eq!(queue.operations.len(), 2);
        assert_eq!(queue.operations[1].action, Action::Delete);
        assert!(queue.operations[1].notes()[0].contains("no destination"));
    }

    #[test]
    fn odd_values_are_findings_not_failures() {
        let mut odd = pfro("\\??\\C:\\a\0\\??\\C:\\b\0\0");
        odd.bytes.push(0);
        odd.data_type = 1;
        let queue = decode_registry(&[odd]);
        assert_eq!(queue.operations.len(), 1);
        let codes: Vec<&str> = queue.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["queue-value-type", "queue-value-layout"]);
    }

    #[test]
    fn empty_and_all_nul_values_hold_nothing() {
        let empty = RawValue {
            name: "PendingFileRenameOperations".into(),
            data_type: 7,
            bytes: Vec::new(),
        };
        assert!(decode_registry(&[empty]).operations.is_empty());
        assert!(decode_registry(&[pfro("\0\0")]).operations.is_empty());
    }
}
