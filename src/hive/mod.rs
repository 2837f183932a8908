//! Hive: open an offline SYSTEM hive and read what the next boot depends on.
//!
//! Output is plain data ([`SystemHive`]): the base block, `Select`, and for every control set
//! the raw bytes of its pending-operation values. Nothing here interprets the queue; that is
//! the queue stage's job, and it must work from raw bytes because the usual multi-string
//! readers drop the empty strings that mean "delete".

mod base_block;
pub mod cells;
mod control_set;
mod key_values;
mod load;
pub mod log;
mod mounted_devices;
mod servicing;

pub use base_block::{checksum, BaseBlock, BASE_BLOCK_SIZE};
pub use control_set::{ChosenBy, ChosenControlSet, ControlSetChoice, Select};
pub use key_values::{read_key_values, KeyValues};
pub use load::{is_stdin, load, load_in, logs_in, LoadedHive, LogChoice};
pub use mounted_devices::{MountedDevice, VolumeIdentity};
pub use servicing::{
    open_servicing, servicing_hives_in, trusted_installer_start, OpenedServicing, ServicingHive,
    ServicingRole, ServicingValue,
};

use miette::Diagnostic;
use nt_hive::{Hive, KeyNode, KeyValue, KeyValueDataType, NtHiveError};
use thiserror::Error;

use crate::finding::Finding;
use cells::{CellKind, Cells, Damage, DataCheck, KeyCell};

/// The values smss reads, in the order it reads them.
pub const PENDING_VALUES: [&str; 2] = [
    "PendingFileRenameOperations",
    "PendingFileRenameOperations2",
];
const SESSION_MANAGER: &str = "Control\\Session Manager";

/// Why a hive could not be examined at all. Problems that leave the queue readable are
/// [`Finding`]s instead.
#[derive(Debug, Error, Diagnostic)]
pub enum HiveError {
    #[error("cannot read the hive {path}")]
    #[diagnostic(
        code(nextboot::hive::unreadable),
        help("a hive is a regular file (FIFOs and devices are refused, never waited on); to read one from a pipe, give --hive -")
    )]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the hive file is empty")]
    #[diagnostic(
        code(nextboot::hive::empty),
        help("an empty SYSTEM file usually means the copy or the mount failed; take the file again from the image")
    )]
    Empty,

    #[error("this is a registry text export (\"{header}\"), not a hive file")]
    #[diagnostic(
        code(nextboot::hive::reg_export),
        help("nextboot reads the binary hive: Windows\\System32\\config\\SYSTEM on the image, not a .reg export")
    )]
    RegExport { header: String },

    #[error(
        "this is not a registry hive: it looks like {looks_like} (first bytes: {first_bytes})"
    )]
    #[diagnostic(
        code(nextboot::hive::not_a_hive),
        help("a hive file starts with \"regf\"; the SYSTEM hive is Windows\\System32\\config\\SYSTEM on the image")
    )]
    NotAHive {
        looks_like: String,
        first_bytes: String,
    },

    #[error("this is a hive transaction log (file type {file_type}), not the hive itself")]
    #[diagnostic(
        code(nextboot::hive::transaction_log),
        help("pass the primary file (SYSTEM), not SYSTEM.LOG1 or SYSTEM.LOG2")
    )]
    TransactionLog { file_type: u32 },

    #[error("this starts like a hive (\"regf\") but is not one: its base block says file type {file_type}, neither a primary hive (0) nor a transaction log (1, 2 or 6)")]
    #[diagnostic(
        code(nextboot::hive::unknown_file_type),
        help("the base block is damaged or the file is not a hive; take SYSTEM again from the image, or recover it with its transaction logs")
    )]
    UnknownFileType { file_type: u32 },

    #[error("the hive is truncated: its base block declares {declared} bytes of hive bins, the file holds {held}, and what is there cannot be read ({damage})")]
    #[diagnostic(
        code(nextboot::hive::truncated),
        help("the copy or the image is incomplete: take SYSTEM again from the image")
    )]
    TruncatedAndDamaged {
        declared: u32,
        held: usize,
        damage: String,
    },

    #[error("the hive is truncated: {len} bytes, but {what} needs {needed}")]
    #[diagnostic(code(nextboot::hive::truncated))]
    Truncated {
        len: usize,
        needed: usize,
        what: &'static str,
    },

    #[error("unsupported hive format version {major}.{minor}")]
    #[diagnostic(
        code(nextboot::hive::version),
        help("Windows NT 3.1 to Windows 11 write versions 1.2 to 1.6")
    )]
    UnsupportedVersion { major: u32, minor: u32 },

    #[error("the hive structure is damaged while reading {what}: {source}")]
    #[diagnostic(
        code(nextboot::hive::structure),
        help("the byte offset points into the hive file; a hive with transaction logs may need them applied first")
    )]
    Structure {
        what: String,
        #[source]
        source: NtHiveError,
    },

    #[error("the hive structure is damaged while reading {what}: {damage}")]
    #[diagnostic(
        code(nextboot::hive::structure),
        help("the byte offset points into the hive file; a hive with transaction logs may need them applied first")
    )]
    Damaged {
        what: String,
        #[source]
        damage: Damage,
    },

    #[error("the hive structure is damaged: the hive reader stopped with \"{message}\"")]
    #[diagnostic(
        code(nextboot::hive::reader_failed),
        help("the hive is corrupt in a way the reader does not survive; try a copy recovered with its transaction logs")
    )]
    ReaderFailed { message: String },

    #[error("ControlSet{number:03}, the set to replay, cannot be read: {damage}")]
    #[diagnostic(
        code(nextboot::hive::control_set_damaged),
        help("choose another control set with --control-set N (sets present: {present})")
    )]
    ControlSetDamaged {
        number: u32,
        damage: String,
        present: String,
    },

    #[error("the hive has no control set: no key named ControlSetNNN under its root")]
    #[diagnostic(
        code(nextboot::hive::no_control_set),
        help("is this a SYSTEM hive? SOFTWARE, SAM and user hives have no control sets")
    )]
    NoControlSet,

    #[error("the hive has no Select key, so the control set of the next boot is unknown")]
    #[diagnostic(
        code(nextboot::hive::no_select),
        help("name the control set to use with --control-set N (sets present: {present})")
    )]
    NoSelect { present: String },

    #[error("{named_by} names control set {number}, which is not in the hive")]
    #[diagnostic(
        code(nextboot::hive::missing_control_set),
        help("sets present: {present}; choose one with --control-set N")
    )]
    MissingControlSet {
        /// `Select\Default`, `Select\Current` or `--control-set`.
        named_by: &'static str,
        number: u32,
        present: String,
    },
}

/// A registry value exactly as stored: its type and its data bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue {
    pub name: String,
    /// The registry type number (7 = REG_MULTI_SZ).
    pub data_type: u32,
    pub bytes: Vec<u8>,
}

/// What one `ControlSetNNN\Control\Session Manager` holds for the boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionManager {
    pub control_set: u32,
    pub key_found: bool,
    /// Present pending values, in smss order (`PendingFileRenameOperations` first).
    pub pending: Vec<RawValue>,
    /// Why the control set could not be read, when it could not.
    pub damage: Option<String>,
    /// Pending values over 16,344 bytes stored in one cell rather than as big data.
    pub single_cell: Vec<String>,
    /// The last-write time (FILETIME) of the Session Manager key.
    pub last_written: Option<u64>,
    /// `SetupExecute`: what smss starts after the rename queue (poqexec and the action list
    /// it names, when servicing has one pending); `Err` says why it cannot be read, which
    /// does not keep the rename queue from being read.
    pub setup_execute: Option<Result<RawValue, String>>,
}

/// The parts of an offline SYSTEM hive that decide what the next boot does to files.
#[derive(Clone, Debug)]
pub struct SystemHive {
    pub base: BaseBlock,
    pub select: Option<Select>,
    /// Every `ControlSetNNN` under the root, ascending.
    pub control_sets: Vec<SessionManager>,
    /// `MountedDevices`: drive letters and volume GUIDs with their volumes.
    pub mounted_devices: Vec<MountedDevice>,
    pub findings: Vec<Finding>,
}

impl SystemHive {
    /// Reads a SYSTEM hive from its bytes. A dirty hive is read as it is on disk (the caller
    /// decides what that means); a file that is not a usable hive is an error.
    pub fn read(bytes: &[u8]) -> Result<SystemHive, HiveError> {
        // nt-hive trusts some size fields with arithmetic that can overflow on corrupt cells;
        // such a hive is reported as damaged instead of ending the run.
        crate::guard::contain(|| Self::read_unguarded(bytes))
            .unwrap_or_else(|message| Err(HiveError::ReaderFailed { message }))
    }

    /// Reads the SYSTEM hive that [`load`] opened: the recovered bytes when its logs were
    /// applied, the primary file otherwise (whose base block `load` has already parsed).
    pub fn open(loaded: &LoadedHive) -> Result<SystemHive, HiveError> {
        match &loaded.recovered {
            Some(recovered) => Self::read(recovered),
            None => {
                crate::guard::contain(|| Self::read_parsed(&loaded.primary, loaded.base.clone()))
                    .unwrap_or_else(|message| Err(HiveError::ReaderFailed { message }))
            }
        }
    }

    fn read_unguarded(bytes: &[u8]) -> Result<SystemHive, HiveError> {
        Self::read_parsed(bytes, BaseBlock::parse(bytes)?)
    }

    fn read_parsed(bytes: &[u8], base: BaseBlock) -> Result<SystemHive, HiveError> {
        let declared = base.hive_bins_size;
        let declared_end = BASE_BLOCK_SIZE.saturating_add(declared as usize);
        Self::read_cells(bytes, base).map_err(|err| match err {
            // What cannot be read in a truncated hive is, first of all, not there.
            HiveError::Structure { .. } | HiveError::Damaged { .. }
                if declared_end > bytes.len() =>
            {
                HiveError::TruncatedAndDamaged {
                    declared,
                    held: bytes.len() - BASE_BLOCK_SIZE,
                    damage: err.to_string(),
                }
            }
            other => other,
        })
    }

    fn read_cells(bytes: &[u8], base: BaseBlock) -> Result<SystemHive, HiveError> {
        let mut findings = Vec::new();
        if base.sequence_mismatch() {
            findings.push(Finding::warning(
                "hive-dirty",
                format!(
                    "the hive is dirty: sequence numbers {} and {} differ, so recent writes may exist only in its transaction logs",
                    base.primary_sequence, base.secondary_sequence
                ),
            ));
        }
        if !base.checksum_valid() {
            findings.push(Finding::warning(
                "hive-checksum",
                format!(
                    "the base block checksum is {:#010x} but the header sums to {:#010x}",
                    base.stored_checksum, base.computed_checksum
                ),
            ));
        }
        let end = hive_bins_end(bytes, &base);
        if end < BASE_BLOCK_SIZE.saturating_add(base.hive_bins_size as usize) {
            findings.push(Finding::warning(
                "hive-truncated",
                format!(
                    "the base block declares {} bytes of hive bins but the file holds only {}; reading what is there",
                    base.hive_bins_size,
                    bytes.len() - BASE_BLOCK_SIZE
                ),
            ));
        }
        let hive = Hive::without_validation(&bytes[..end]).map_err(structure("the base block"))?;
        let cells = Cells::new(&bytes[BASE_BLOCK_SIZE..end]);
        cells
            .key(base.root_cell_offset, "the root key")
            .map_err(damaged("the root key"))?;
        let root = CheckedKey::open(
            &cells,
            hive.root_key_node().map_err(structure("the root key"))?,
            Vec::new(),
            "the root key".into(),
        )?;

        let select = match root.subkey(&cells, "Select")? {
            Some(key) => Some(Select::read(|name| key.dword(&cells, name))?),
            None => None,
        };

        let mut mounted_devices = Vec::new();
        match root.subkey(&cells, "MountedDevices").and_then(|key| {
            key.map(|key| mounted_devices::read(&cells, &key))
                .transpose()
        }) {
            Ok(None) => {}
            Ok(Some(devices)) => mounted_devices = devices,
            Err(err) => findings.push(with_damage(
                Finding::warning(
                    "mounted-devices-damaged",
                    format!("MountedDevices cannot be read: {}", error_chain(&err)),
                ),
                &err,
            )),
        }

        let mut control_sets: Vec<SessionManager> = Vec::new();
        // The root's subkey list, every key it names, is checked before nt-hive walks it.
        cells
            .subkeys(&root.cell, &root.ancestors, &root.what)
            .map_err(damaged("the root key's subkeys"))?;
        if let Some(subkeys) = root.node.subkeys() {
            for key in subkeys.map_err(structure("the root key's subkeys"))? {
                let key = key.map_err(structure("the root key's subkeys"))?;
                let name = key
                    .name()
                    .map_err(structure("a key name"))?
                    .to_string_lossy();
                let Some(number) = control_set::parse_name(&name) else {
                    continue;
                };
                if control_sets.iter().any(|set| set.control_set == number) {
                    findings.push(Finding::warning(
                        "control-set-duplicate",
                        format!(
                            "the root key lists a second key named {name}; only the first is read"
                        ),
                    ));
                    continue;
                }
                // A damaged control set is a finding; only the one replayed must be readable.
                // The checks keep nt-hive from panicking; the guard stays for what they miss.
                let read =
                    crate::guard::contain(|| read_session_manager(&cells, &root, key, number))
                        .unwrap_or_else(|message| Err(HiveError::ReaderFailed { message }));
                control_sets.push(read.unwrap_or_else(|err| {
                    let damage = error_chain(&err);
                    let finding = Finding::warning(
                        "control-set-damaged",
                        format!("ControlSet{number:03} cannot be read: {damage}"),
                    );
                    findings.push(with_damage(finding, &err));
                    SessionManager {
                        control_set: number,
                        key_found: false,
                        pending: Vec::new(),
                        damage: Some(damage),
                        single_cell: Vec::new(),
                        last_written: None,
                        setup_execute: None,
                    }
                }));
            }
        }
        control_sets.sort_by_key(|set| set.control_set);
        for set in &control_sets {
            for name in &set.single_cell {
                findings.push(Finding::info(
                    "value-single-cell",
                    format!(
                        "ControlSet{:03} {name} is over 16,344 bytes but stored in one cell, not as big data (as hivex and hives before regf 1.4 write it); read from that cell",
                        set.control_set
                    ),
                ));
            }
        }
        if control_sets.is_empty() {
            return Err(HiveError::NoControlSet);
        }
        Ok(SystemHive {
            base,
            select,
            control_sets,
            mounted_devices,
            findings,
        })
    }

    /// The control set numbers present, as `1, 2` for messages.
    pub fn present_sets(&self) -> String {
        self.control_sets
            .iter()
            .map(|set| set.control_set.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn control_set(&self, number: u32) -> Option<&SessionManager> {
        self.control_sets
            .iter()
            .find(|set| set.control_set == number)
    }
}

/// A value nt-hive handed out, and what the check of its data said.
type CheckedValue<'h, 'a> = (KeyValue<'h, &'a [u8]>, DataCheck);

/// A key nt-hive handed out, with its cell checked, and the keys above it on the walk. Its
/// subkey list and value list are checked (see [`cells`]) each time before nt-hive follows
/// them.
struct CheckedKey<'h, 'a> {
    node: KeyNode<'h, &'a [u8]>,
    cell: KeyCell<'a>,
    /// Offsets of the keys above this one, root first.
    ancestors: Vec<u32>,
    /// The key's path, for messages.
    what: String,
}

impl<'h, 'a> CheckedKey<'h, 'a> {
    fn open(
        cells: &Cells<'a>,
        node: KeyNode<'h, &'a [u8]>,
        ancestors: Vec<u32>,
        what: String,
    ) -> Result<Self, HiveError> {
        let offset = cells
            .offset_of_key(&node)
            .ok_or_else(|| HiveError::Damaged {
                what: what.clone(),
                damage: Damage::Unlocated {
                    kind: CellKind::Key,
                },
            })?;
        let cell = cells.key(offset, &what).map_err(damaged(&what))?;
        Ok(CheckedKey {
            node,
            cell,
            ancestors,
            what,
        })
    }

    /// The subkey `name` (case-insensitive), after checking the cells nt-hive's lookup
    /// touches.
    fn subkey(
        &self,
        cells: &Cells<'a>,
        name: &str,
    ) -> Result<Option<CheckedKey<'h, 'a>>, HiveError> {
        let what = if self.ancestors.is_empty() {
            name.to_string()
        } else {
            format!("{}\\{name}", self.what)
        };
        let Some(expected) = cells
            .find_subkey(&self.cell, &self.ancestors, name, &self.what)
            .map_err(damaged(&what))?
        else {
            return Ok(None);
        };
        let Some(node) = self
            .node
            .subkey(name)
            .transpose()
            .map_err(structure(&what))?
        else {
            return Ok(None);
        };
        let mut ancestors = self.ancestors.clone();
        ancestors.push(self.cell.offset);
        let key = CheckedKey::open(cells, node, ancestors, what)?;
        if key.cell.offset != expected {
            return Err(HiveError::Damaged {
                what: key.what,
                damage: Damage::ReaderDisagrees,
            });
        }
        Ok(Some(key))
    }

    /// The value `name` and what its data check said, after checking the cells nt-hive's
    /// lookup touches.
    fn value(
        &self,
        cells: &Cells<'a>,
        name: &str,
    ) -> Result<Option<CheckedValue<'h, 'a>>, HiveError> {
        let what = format!("{} value {name}", self.what);
        if cells
            .find_value(&self.cell, name, &self.what)
            .map_err(damaged(&what))?
            .is_none()
        {
            return Ok(None);
        }
        let Some(value) = self
            .node
            .value(name)
            .transpose()
            .map_err(structure(&what))?
        else {
            return Ok(None);
        };
        let check = checked_data(cells, &value, &what)?;
        Ok(Some((value, check)))
    }

    /// A DWORD value; a value of the wrong type or size is treated as absent.
    fn dword(&self, cells: &Cells<'a>, name: &str) -> Result<Option<u32>, HiveError> {
        Ok(match self.value(cells, name)? {
            Some((value, DataCheck::Readable)) => value.dword_data().ok(),
            _ => None,
        })
    }
}

/// Where the hive bins end: Windows uses only the declared bins (bytes after them are slack),
/// and a file cut short holds fewer.
fn hive_bins_end(bytes: &[u8], base: &BaseBlock) -> usize {
    BASE_BLOCK_SIZE
        .saturating_add(base.hive_bins_size as usize)
        .min(bytes.len())
}

/// The value `name` of `key` as stored (its type number and bytes), and what its data check
/// said; `None` when the key has no such value.
fn raw_value(
    cells: &Cells<'_>,
    key: &CheckedKey<'_, '_>,
    name: &str,
    wrap: impl Fn(NtHiveError) -> HiveError,
    what: &str,
) -> Result<Option<(RawValue, DataCheck)>, HiveError> {
    let Some((value, check)) = key.value(cells, name)? else {
        return Ok(None);
    };
    let data_type = match value.data_type() {
        Ok(known) => known as u32,
        Err(NtHiveError::UnsupportedKeyValueDataType { actual, .. }) => actual,
        Err(other) => return Err(wrap(other)),
    };
    let bytes = value_bytes(cells, &value, check, what)?;
    let raw = RawValue {
        name: name.to_string(),
        data_type,
        bytes,
    };
    Ok(Some((raw, check)))
}

/// Checks the data of a value nt-hive handed out before it is read.
fn checked_data(
    cells: &Cells<'_>,
    value: &KeyValue<'_, &[u8]>,
    what: &str,
) -> Result<DataCheck, HiveError> {
    let offset = cells
        .offset_of_value(value)
        .ok_or_else(|| HiveError::Damaged {
            what: what.to_string(),
            damage: Damage::Unlocated {
                kind: CellKind::Value,
            },
        })?;
    cells
        .value_data(offset, cells.len(), what)
        .map_err(damaged(what))
}

/// The bytes of a value whose data passed [`checked_data`].
fn value_bytes(
    cells: &Cells<'_>,
    value: &KeyValue<'_, &[u8]>,
    check: DataCheck,
    what: &str,
) -> Result<Vec<u8>, HiveError> {
    match check {
        DataCheck::Empty => Ok(Vec::new()),
        DataCheck::Readable => {
            value
                .data()
                .and_then(|d| d.into_vec())
                .map_err(|source| HiveError::Structure {
                    what: what.to_string(),
                    source,
                })
        }
        DataCheck::SingleCell { offset, size } => cells
            .single_cell(offset, size, what)
            .map(<[u8]>::to_vec)
            .map_err(damaged(what)),
    }
}

fn read_session_manager(
    cells: &Cells<'_>,
    root: &CheckedKey<'_, '_>,
    key: KeyNode<'_, &[u8]>,
    number: u32,
) -> Result<SessionManager, HiveError> {
    let what = |part: &str| format!("ControlSet{number:03}\\{SESSION_MANAGER}{part}");
    let not_found = SessionManager {
        control_set: number,
        key_found: false,
        pending: Vec::new(),
        damage: None,
        single_cell: Vec::new(),
        last_written: None,
        setup_execute: None,
    };
    let control_set = CheckedKey::open(
        cells,
        key,
        vec![root.cell.offset],
        format!("ControlSet{number:03}"),
    )?;
    let Some(control) = control_set.subkey(cells, "Control")? else {
        return Ok(not_found);
    };
    let Some(key) = control.subkey(cells, "Session Manager")? else {
        return Ok(not_found);
    };
    let mut pending = Vec::new();
    let mut single_cell = Vec::new();
    for name in PENDING_VALUES {
        let wrap = |source| HiveError::Structure {
            what: what(&format!(" value {name}")),
            source,
        };
        let Some((raw, check)) =
            raw_value(cells, &key, name, wrap, &what(&format!(" value {name}")))?
        else {
            continue;
        };
        if matches!(check, DataCheck::SingleCell { .. }) {
            single_cell.push(name.to_string());
        }
        pending.push(raw);
    }
    let setup_what = what(" value SetupExecute");
    let wrap = |source| HiveError::Structure {
        what: setup_what.clone(),
        source,
    };
    let setup_execute = match raw_value(cells, &key, "SetupExecute", wrap, &setup_what) {
        Ok(found) => found.map(|(raw, _)| Ok(raw)),
        Err(err) => Some(Err(error_chain(&err))),
    };
    Ok(SessionManager {
        control_set: number,
        key_found: true,
        pending,
        damage: None,
        single_cell,
        last_written: key.cell.last_written(),
        setup_execute,
    })
}

/// A finding about a part of the hive that cannot be read, with the damaged cell's fields
/// when the error is one.
fn with_damage(finding: Finding, err: &HiveError) -> Finding {
    match err {
        HiveError::Damaged { damage, .. } => finding.with_detail(damage),
        _ => finding,
    }
}

fn damaged(what: &str) -> impl Fn(Damage) -> HiveError + '_ {
    move |damage| HiveError::Damaged {
        what: what.to_string(),
        damage,
    }
}

/// An error and its sources on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

fn structure(what: &str) -> impl Fn(NtHiveError) -> HiveError + '_ {
    move |source| HiveError::Structure {
        what: what.to_string(),
        source,
    }
}

/// Registry type names for reports.
pub fn type_name(data_type: u32) -> String {
    match KeyValueDataType::n(data_type) {
        Some(KeyValueDataType::RegNone) => "REG_NONE".into(),
        Some(KeyValueDataType::RegSZ) => "REG_SZ".into(),
        Some(KeyValueDataType::RegExpandSZ) => "REG_EXPAND_SZ".into(),
        Some(KeyValueDataType::RegBinary) => "REG_BINARY".into(),
        Some(KeyValueDataType::RegDWord) => "REG_DWORD".into(),
        Some(KeyValueDataType::RegMultiSZ) => "REG_MULTI_SZ".into(),
        Some(KeyValueDataType::RegQWord) => "REG_QWORD".into(),
        _ => format!("type {data_type:#x}"),
    }
}
