//! Servicing action lists (`pending.xml`): what poqexec.exe carries out at boot, after smss has
//! run the rename queue. This part reads one list: its identifier and the primitives of its
//! first `POQ`, the one run at boot (`docs/action-lists.md`).
//!
//! The list is evidence and may be written by an attacker (Windows Downdate), so it is read
//! with a streaming parser (quick-xml: no tree of the whole document), with bounds on its size
//! and its nesting, and anything unexpected in it (an element or attribute this reader does not
//! know, a primitive without its path) is a note, never a failure. A document that is not
//! well-formed is an error that says where (line and column), as poqexec would not run it.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::Serialize;

/// The largest list read (real ones with tens of thousands of primitives are tens of MB).
pub const SIZE_LIMIT: usize = 128 << 20;
/// Deeper than any list Windows writes (four levels); a bound on the parser's stack of names.
pub const DEPTH_LIMIT: usize = 64;
/// Notes kept in full; beyond that they are counted.
const NOTES_LIMIT: usize = 100;
/// File primitives read from one list: real lists hold tens of thousands (Azure's boot
/// screens count 53,017 operations); a list within the size limit could otherwise hold six
/// million tiny ones, and each costs a replay.
pub const PRIMITIVES_LIMIT: usize = 1_000_000;
/// Distinct element names counted; beyond that they are counted as one, `(other names)`.
const NAMES_LIMIT: usize = 1_000;

/// What one list holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionList {
    /// The root's `Version` (`3.1`; `2.0` in older lists).
    pub version: Option<String>,
    pub wcp_version: Option<String>,
    /// The root's `Identifier`, as stored; the boot runs the list only when it equals
    /// COMPONENTS `PendingXmlIdentifier`.
    pub identifier: Option<String>,
    /// How many `POQ` elements the root holds; only the first runs at boot.
    pub poqs: usize,
    /// The primitives of the first `POQ` that change files, in execution order.
    pub primitives: Vec<Primitive>,
    /// Every element of the first `POQ` by name (registry, marker and unknown ones included).
    pub counts: BTreeMap<String, usize>,
    /// What this reader did not expect, in document order (at most [`NOTES_LIMIT`]).
    pub notes: Vec<String>,
    /// Notes beyond the limit, counted.
    pub more_notes: usize,
}

/// The element names of a `POQ`, and what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PrimitiveKind {
    /// Renames `source` to `destination`, replacing it.
    MoveFile,
    /// Makes `destination` a hard link to `source`'s content; the source stays.
    HardlinkFile,
    DeleteFile,
    /// Creates an empty file (UNCONFIRMED in `docs/action-lists.md`).
    CreateFile,
    CreateDirectory,
    /// Metadata of a file (its security descriptor, flags): its content stays.
    SetFileInformation,
    CreateKey,
    SetKeyValue,
    SetKeySecurity,
    DeleteKeyValue,
    DeleteKey,
    Checkpoint,
    BeginTransaction,
}

impl PrimitiveKind {
    const ALL: [PrimitiveKind; 13] = [
        PrimitiveKind::MoveFile,
        PrimitiveKind::HardlinkFile,
        PrimitiveKind::DeleteFile,
        PrimitiveKind::CreateFile,
        PrimitiveKind::CreateDirectory,
        PrimitiveKind::SetFileInformation,
        PrimitiveKind::CreateKey,
        PrimitiveKind::SetKeyValue,
        PrimitiveKind::SetKeySecurity,
        PrimitiveKind::DeleteKeyValue,
        PrimitiveKind::DeleteKey,
        PrimitiveKind::Checkpoint,
        PrimitiveKind::BeginTransaction,
    ];

    /// The element's name in the list.
    pub fn element(self) -> &'static str {
        match self {
            PrimitiveKind::MoveFile => "MoveFile",
            PrimitiveKind::HardlinkFile => "HardlinkFile",
            PrimitiveKind::DeleteFile => "DeleteFile",
            PrimitiveKind::CreateFile => "CreateFile",
            PrimitiveKind::CreateDirectory => "CreateDirectory",
            PrimitiveKind::SetFileInformation => "SetFileInformation",
            PrimitiveKind::CreateKey => "CreateKey",
            PrimitiveKind::SetKeyValue => "SetKeyValue",
            PrimitiveKind::SetKeySecurity => "SetKeySecurity",
            PrimitiveKind::DeleteKeyValue => "DeleteKeyValue",
            PrimitiveKind::DeleteKey => "DeleteKey",
            PrimitiveKind::Checkpoint => "Checkpoint",
            PrimitiveKind::BeginTransaction => "BeginTransaction",
        }
    }

    fn of_element(name: &[u8]) -> Option<PrimitiveKind> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.element().as_bytes() == name)
    }

    /// Whether the boot changes a file's content or existence with it (the replay's business).
    pub fn changes_files(self) -> bool {
        matches!(
            self,
            PrimitiveKind::MoveFile
                | PrimitiveKind::HardlinkFile
                | PrimitiveKind::DeleteFile
                | PrimitiveKind::CreateFile
                | PrimitiveKind::CreateDirectory
        )
    }

    /// The attributes it has in the lists of the sources (both spellings of the file
    /// attributes); others are noted. Registry primitives are counted, not read.
    fn known_attributes(self) -> &'static [&'static str] {
        match self {
            PrimitiveKind::MoveFile | PrimitiveKind::HardlinkFile => &["source", "destination"],
            PrimitiveKind::DeleteFile => &["path"],
            PrimitiveKind::CreateFile => &["path", "fileAttributes", "fileAttribute"],
            PrimitiveKind::CreateDirectory => &[
                "path",
                "fileAttributes",
                "fileAttribute",
                "securityDescriptor",
            ],
            PrimitiveKind::SetFileInformation => &["path", "securityDescriptor", "flags"],
            PrimitiveKind::BeginTransaction => &["id"],
            _ => &[],
        }
    }
}

/// One primitive that changes files, with the strings as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Primitive {
    pub kind: PrimitiveKind,
    /// Its index among the elements of the first `POQ` (0-based, every element counted).
    pub element: u32,
    /// The line of the file it starts on (1-based).
    pub line: u32,
    /// `source` of a move or hard link; `path` of the others (shared with the operation
    /// decoded from it).
    pub source: std::sync::Arc<str>,
    /// `destination` of a move or hard link.
    pub destination: Option<std::sync::Arc<str>>,
}

/// Why a list cannot be read at all (poqexec would not run it either).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum ActionListError {
    #[error("the list is {len} bytes, more than the {limit} bytes read")]
    TooLarge { len: usize, limit: usize },
    #[error("the list is not UTF-8 (byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("the list is not well-formed XML at line {line}, column {column}: {message}")]
    NotWellFormed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the list nests elements deeper than {limit} at line {line}, column {column}")]
    TooDeep {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error("the list has more than {limit} file primitives (line {line}), more than this reader replays")]
    TooManyPrimitives { line: usize, limit: usize },
    #[error("the list has no root element")]
    NoRoot,
    #[error("the root element is <{name}>, not <PendingTransaction>")]
    WrongRoot { name: String },
}

/// The action list a poqexec command names (a `SetupExecute` entry, a `PoqexecCmdline`
/// string), or `None` when the command does not start poqexec or names no list: its last
/// argument that is not a `/switch`, quotes removed, `%SystemRoot%` (any case) turned into
/// `\SystemRoot` so that it maps onto the volumes as the other forms do.
///
/// `poqexec.exe /display_progress \SystemRoot\WinSxS\pending.xml` names
/// `\SystemRoot\WinSxS\pending.xml`; `C:\Windows\System32\poqexec.exe` and a quoted
/// program path are poqexec too.
pub fn list_named_by(command: &str) -> Option<String> {
    list_named_by_arguments(&split_command(command))
}

/// [`list_named_by`] for a command already split into its arguments (`PoqexecCmdline` holds
/// one argument per string, as Windows Downdate writes it): the program and then the
/// arguments, each taken as it is. Empty arguments name nothing.
pub fn list_named_by_arguments<S: AsRef<str>>(arguments: &[S]) -> Option<String> {
    let (program, rest) = arguments.split_first()?;
    let program = program.as_ref();
    let name = program.rsplit(['\\', '/']).next().unwrap_or(program);
    if !name.eq_ignore_ascii_case("poqexec.exe") && !name.eq_ignore_ascii_case("poqexec") {
        return None;
    }
    let list = rest
        .iter()
        .map(AsRef::as_ref)
        .rev()
        .find(|a| !a.is_empty() && !a.starts_with('/'))?;
    Some(expand_system_root(list))
}

/// Splits a command line as Windows programs do for the simple cases: spaces separate, double
/// quotes group (and are removed).
fn split_command(command: &str) -> Vec<String> {
    let mut arguments = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in command.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    arguments.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            _ => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        arguments.push(current);
    }
    arguments
}

fn expand_system_root(path: &str) -> String {
    const VARIABLE: &str = "%SystemRoot%";
    match path.get(..VARIABLE.len()) {
        Some(head) if head.eq_ignore_ascii_case(VARIABLE) => {
            format!("\\SystemRoot{}", &path[VARIABLE.len()..])
        }
        _ => path.to_string(),
    }
}

/// COMPONENTS `PendingXmlIdentifier` as text: REG_BINARY holding UTF-16LE without a NUL
/// (a trailing NUL, should one be there, is not part of it); `None` for bytes that are not
/// UTF-16 text.
pub fn components_identifier(bytes: &[u8]) -> Option<String> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let text = char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()?;
    Some(text.trim_end_matches('\0').to_string())
}

/// The gate: poqexec runs a list only when its `Identifier` is COMPONENTS'. Hex digits are
/// compared ignoring case (assumed: servicing writes both in lower case).
pub fn identifier_admits(list: &ActionList, components: Option<&str>) -> bool {
    match (&list.identifier, components) {
        (Some(list), Some(components)) => list.eq_ignore_ascii_case(components),
        _ => false,
    }
}

/// Reads an action list within [`SIZE_LIMIT`] and [`DEPTH_LIMIT`].
pub fn read_action_list(bytes: &[u8]) -> Result<ActionList, ActionListError> {
    read_with_limits(bytes, SIZE_LIMIT, DEPTH_LIMIT)
}

/// [`read_action_list`] with other bounds (tests use small ones).
pub fn read_with_limits(
    bytes: &[u8],
    size_limit: usize,
    depth_limit: usize,
) -> Result<ActionList, ActionListError> {
    if bytes.len() > size_limit {
        return Err(ActionListError::TooLarge {
            len: bytes.len(),
            limit: size_limit,
        });
    }
    let bom = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let text = std::str::from_utf8(&bytes[bom..]).map_err(|err| ActionListError::NotUtf8 {
        offset: bom + err.valid_up_to(),
    })?;
    Parse::new(text, depth_limit).run()
}

/// Where a byte offset of the text is, as people count: line and column from 1.
struct Lines<'a> {
    text: &'a str,
    /// Lines before `counted`, and the offset they were counted up to.
    line: usize,
    counted: usize,
}

impl<'a> Lines<'a> {
    /// The line of `offset`; offsets asked for never decrease, so the counting is linear.
    fn line_of(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if offset > self.counted {
            let newlines = self.text.as_bytes()[self.counted..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line += newlines;
            self.counted = offset;
        }
        self.line
    }

    /// Line and column of any offset (for an error: counted afresh).
    fn position(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

struct Parse<'a> {
    reader: Reader<&'a [u8]>,
    text: &'a str,
    lines: Lines<'a>,
    depth_limit: usize,
    primitives_limit: usize,
    list: ActionList,
}

impl<'a> Parse<'a> {
    fn new(text: &'a str, depth_limit: usize) -> Parse<'a> {
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        Parse {
            reader,
            text,
            lines: Lines {
                text,
                line: 1,
                counted: 0,
            },
            depth_limit,
            primitives_limit: PRIMITIVES_LIMIT,
            list: ActionList::default(),
        }
    }

    fn not_well_formed(&self, offset: u64, message: String) -> ActionListError {
        let (line, column) = Lines::position(self.text, offset as usize);
        ActionListError::NotWellFormed {
            line,
            column,
            message,
        }
    }

    fn note(&mut self, note: String) {
        if self.list.notes.len() < NOTES_LIMIT {
            self.list.notes.push(note);
        } else {
            self.list.more_notes += 1;
        }
    }

    fn run(mut self) -> Result<ActionList, ActionListError> {
        let mut depth = 0usize;
        let mut seen_root = false;
        // Where the current element sits: inside the first POQ (depth 2), or not.
        let mut in_first_poq = false;
        let mut element = 0u32;
        loop {
            let start = self.reader.buffer_position();
            let event = match self.reader.read_event() {
                Ok(event) => event,
                Err(err) => {
                    let at = self.reader.error_position();
                    return Err(self.not_well_formed(at, err.to_string()));
                }
            };
            match event {
                Event::Start(ref tag) | Event::Empty(ref tag) => {
                    let empty = matches!(event, Event::Empty(_));
                    let level = depth + 1;
                    if !empty {
                        depth = level;
                        if depth > self.depth_limit {
                            let (line, column) = Lines::position(self.text, start as usize);
                            return Err(ActionListError::TooDeep {
                                line,
                                column,
                                limit: self.depth_limit,
                            });
                        }
                    }
                    let name = tag.name();
                    match level {
                        1 => {
                            if seen_root {
                                return Err(
                                    self.not_well_formed(start, "a second root element".into())
                                );
                            }
                            seen_root = true;
                            if name.as_ref() != b"PendingTransaction" {
                                return Err(ActionListError::WrongRoot {
                                    name: String::from_utf8_lossy(name.as_ref()).into_owned(),
                                });
                            }
                            self.root(tag, start)?;
                        }
                        2 => {
                            let known = [
                                "Transactions",
                                "ChangeList",
                                "POQ",
                                "InstallerQueue",
                                "RollbackInformation",
                            ];
                            if name.as_ref() == b"POQ" {
                                self.list.poqs += 1;
                                in_first_poq = self.list.poqs == 1 && !empty;
                            } else if !known.iter().any(|k| k.as_bytes() == name.as_ref()) {
                                let line = self.lines.line_of(start as usize);
                                let name = String::from_utf8_lossy(name.as_ref()).into_owned();
                                self.note(format!(
                                    "line {line}: an element <{name}> in <PendingTransaction> that this reader does not know"
                                ));
                            }
                        }
                        3 if in_first_poq => {
                            self.primitive(tag, start, element)?;
                            element += 1;
                        }
                        _ => {}
                    }
                }
                Event::End(_) => {
                    if depth == 2 {
                        in_first_poq = false;
                    }
                    depth = depth.saturating_sub(1);
                }
                Event::Text(ref text)
                    if depth == 0 && !text.iter().all(u8::is_ascii_whitespace) =>
                {
                    return Err(self.not_well_formed(start, "text outside the root".into()));
                }
                Event::Eof => {
                    if depth > 0 {
                        let end = self.text.len() as u64;
                        return Err(self.not_well_formed(
                            end,
                            format!("the file ends inside {depth} open element(s)"),
                        ));
                    }
                    if !seen_root {
                        return Err(ActionListError::NoRoot);
                    }
                    return Ok(self.list);
                }
                _ => {}
            }
        }
    }

    /// The attributes of `<PendingTransaction>`.
    fn root(&mut self, tag: &BytesStart<'_>, start: u64) -> Result<(), ActionListError> {
        for (key, value) in self.attributes(tag, start)? {
            match key.as_str() {
                "Version" => self.list.version = Some(value),
                "WcpVersion" => self.list.wcp_version = Some(value),
                "Identifier" => self.list.identifier = Some(value),
                _ => {
                    let line = self.lines.line_of(start as usize);
                    self.note(format!(
                        "line {line}: an attribute {key} of <PendingTransaction> that this reader does not know"
                    ));
                }
            }
        }
        Ok(())
    }

    /// One element of the first POQ.
    fn primitive(
        &mut self,
        tag: &BytesStart<'_>,
        start: u64,
        element: u32,
    ) -> Result<(), ActionListError> {
        let name = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
        let counted =
            if self.list.counts.len() < NAMES_LIMIT || self.list.counts.contains_key(&name) {
                name.clone()
            } else {
                "(other names)".to_string()
            };
        *self.list.counts.entry(counted).or_default() += 1;
        let line = self.lines.line_of(start as usize);
        let Some(kind) = PrimitiveKind::of_element(name.as_bytes()) else {
            self.note(format!(
                "line {line}: an element <{name}> in the POQ that this reader does not know; it is counted, not replayed"
            ));
            return Ok(());
        };
        let attributes = self.attributes(tag, start)?;
        let value = |wanted: &str| {
            attributes
                .iter()
                .find(|(key, _)| key == wanted)
                .map(|(_, value)| value.as_str().into())
        };
        let (source, destination) = match kind {
            PrimitiveKind::MoveFile | PrimitiveKind::HardlinkFile => {
                (value("source"), value("destination"))
            }
            _ => (value("path"), None),
        };
        for (key, _) in &attributes {
            if !kind.known_attributes().contains(&key.as_str())
                && !matches!(
                    kind,
                    PrimitiveKind::CreateKey
                        | PrimitiveKind::SetKeyValue
                        | PrimitiveKind::SetKeySecurity
                        | PrimitiveKind::DeleteKeyValue
                        | PrimitiveKind::DeleteKey
                )
            {
                self.note(format!(
                    "line {line}: an attribute {key} of <{name}> that this reader does not know"
                ));
            }
        }
        if !kind.changes_files() {
            return Ok(());
        }
        let two_paths = matches!(kind, PrimitiveKind::MoveFile | PrimitiveKind::HardlinkFile);
        match (source, destination) {
            (Some(source), destination) if !two_paths || destination.is_some() => {
                if self.list.primitives.len() >= self.primitives_limit {
                    return Err(ActionListError::TooManyPrimitives {
                        line,
                        limit: self.primitives_limit,
                    });
                }
                self.list.primitives.push(Primitive {
                    kind,
                    element,
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    source,
                    destination,
                });
            }
            _ => {
                let wants = if two_paths {
                    "source and destination"
                } else {
                    "path"
                };
                self.note(format!(
                    "line {line}: <{name}> without its {wants}; poqexec cannot carry it out, so it is not replayed"
                ));
            }
        }
        Ok(())
    }

    /// Every attribute, unescaped; a malformed one makes the document not well-formed.
    fn attributes(
        &self,
        tag: &BytesStart<'_>,
        start: u64,
    ) -> Result<Vec<(String, String)>, ActionListError> {
        let mut out = Vec::new();
        for attribute in tag.attributes().with_checks(true) {
            let attribute =
                attribute.map_err(|err| self.not_well_formed(start, err.to_string()))?;
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| self.not_well_formed(start, err.to_string()))?;
            out.push((
                String::from_utf8_lossy(attribute.key.as_ref()).into_owned(),
                value.into_owned(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
