//! Hive: open an offline SYSTEM hive and read what the next boot depends on.
//!
//! Output is plain data ([`SystemHive`]): the base block, `Select`, and for every control set
//! the raw bytes of its pending-operation values. Nothing here interprets the queue; that is
//! the queue stage's job, and it must work from raw bytes because the usual multi-string
//! readers drop the empty strings that mean "delete".

mod base_block;
mod control_set;
mod load;
pub mod log;
mod mounted_devices;

pub use base_block::{checksum, BaseBlock, BASE_BLOCK_SIZE};
pub use control_set::{ControlSetChoice, Select};
pub use load::{load, logs_beside, LoadedHive, LogChoice};
pub use mounted_devices::{MountedDevice, VolumeIdentity};

use miette::Diagnostic;
use nt_hive::{Hive, KeyNode, KeyValueDataType, NtHiveError};
use thiserror::Error;

use crate::Finding;

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
    #[diagnostic(code(nextboot::hive::unreadable))]
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

    #[error("Select\\{field} names control set {number}, which is not in the hive")]
    #[diagnostic(
        code(nextboot::hive::missing_control_set),
        help("sets present: {present}; choose one with --control-set N")
    )]
    MissingControlSet {
        field: &'static str,
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

    fn read_unguarded(bytes: &[u8]) -> Result<SystemHive, HiveError> {
        let base = BaseBlock::parse(bytes)?;
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
        // Windows uses only the declared hive bins; bytes after them are slack.
        let declared_end = BASE_BLOCK_SIZE.saturating_add(base.hive_bins_size as usize);
        let end = if declared_end > bytes.len() {
            findings.push(Finding::warning(
                "hive-truncated",
                format!(
                    "the base block declares {} bytes of hive bins but the file holds only {}; reading what is there",
                    base.hive_bins_size,
                    bytes.len() - BASE_BLOCK_SIZE
                ),
            ));
            bytes.len()
        } else {
            declared_end
        };
        let hive = Hive::without_validation(&bytes[..end]).map_err(structure("the base block"))?;
        let root = hive.root_key_node().map_err(structure("the root key"))?;

        let select = match root
            .subkey("Select")
            .transpose()
            .map_err(structure("Select"))?
        {
            Some(key) => Some(Select::read(&key).map_err(structure("Select values"))?),
            None => None,
        };

        let mut mounted_devices = Vec::new();
        match root.subkey("MountedDevices").transpose() {
            Ok(None) => {}
            Ok(Some(key)) => match mounted_devices::read(&key) {
                Ok(devices) => mounted_devices = devices,
                Err(err) => findings.push(Finding::warning(
                    "mounted-devices-damaged",
                    format!("MountedDevices cannot be read: {err}"),
                )),
            },
            Err(err) => findings.push(Finding::warning(
                "mounted-devices-damaged",
                format!("MountedDevices cannot be read: {err}"),
            )),
        }

        let mut control_sets = Vec::new();
        if let Some(subkeys) = root.subkeys() {
            for key in subkeys.map_err(structure("the root key's subkeys"))? {
                let key = key.map_err(structure("the root key's subkeys"))?;
                let name = key
                    .name()
                    .map_err(structure("a key name"))?
                    .to_string_lossy();
                let Some(number) = control_set::parse_name(&name) else {
                    continue;
                };
                // A damaged control set is a finding; only the one replayed must be readable.
                let read = crate::guard::contain(|| read_session_manager(&key, number))
                    .unwrap_or_else(|message| Err(HiveError::ReaderFailed { message }));
                control_sets.push(read.unwrap_or_else(|err| {
                    let damage = error_chain(&err);
                    findings.push(Finding::warning(
                        "control-set-damaged",
                        format!("ControlSet{number:03} cannot be read: {damage}"),
                    ));
                    SessionManager {
                        control_set: number,
                        key_found: false,
                        pending: Vec::new(),
                        damage: Some(damage),
                    }
                }));
            }
        }
        control_sets.sort_by_key(|set| set.control_set);
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

fn read_session_manager(
    control_set: &KeyNode<&[u8]>,
    number: u32,
) -> Result<SessionManager, HiveError> {
    let what = |part: &str| format!("ControlSet{number:03}\\{SESSION_MANAGER}{part}");
    let Some(key) = control_set
        .subpath(SESSION_MANAGER)
        .transpose()
        .map_err(|source| HiveError::Structure {
            what: what(""),
            source,
        })?
    else {
        return Ok(SessionManager {
            control_set: number,
            key_found: false,
            pending: Vec::new(),
            damage: None,
        });
    };
    let mut pending = Vec::new();
    for name in PENDING_VALUES {
        let wrap = |source| HiveError::Structure {
            what: what(&format!(" value {name}")),
            source,
        };
        let Some(value) = key.value(name).transpose().map_err(wrap)? else {
            continue;
        };
        let data_type = match value.data_type() {
            Ok(known) => known as u32,
            Err(NtHiveError::UnsupportedKeyValueDataType { actual, .. }) => actual,
            Err(other) => return Err(wrap(other)),
        };
        let bytes = value.data().and_then(|d| d.into_vec()).map_err(wrap)?;
        pending.push(RawValue {
            name: name.to_string(),
            data_type,
            bytes,
        });
    }
    Ok(SessionManager {
        control_set: number,
        key_found: true,
        pending,
        damage: None,
    })
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
