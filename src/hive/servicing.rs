//! The servicing hives beside SYSTEM: SOFTWARE (the poqexec command servicing registered,
//! `PoqexecCmdline`) and COMPONENTS (the action list's identifier gate). Each is opened as
//! SYSTEM is (mapped, its logs replayed when dirty); one that is missing or damaged is a
//! finding, never an error: the rename queue does not depend on it.

use std::ffi::{OsStr, OsString};

use serde::Serialize;

use super::{error_chain, load_in, read_key_values, KeyValues, LogChoice, RawValue};
use crate::evidence::{Folder, ListedKind};
use crate::finding::Finding;

/// Which servicing hive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServicingRole {
    Software,
    Components,
}

impl ServicingRole {
    /// The name scripts see (`software`, `components`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServicingRole::Software => "software",
            ServicingRole::Components => "components",
        }
    }

    /// The file name in `System32\config`.
    pub fn file_name(self) -> &'static str {
        match self {
            ServicingRole::Software => "SOFTWARE",
            ServicingRole::Components => "COMPONENTS",
        }
    }

    /// The key below the hive's root and the values read there.
    fn wanted(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ServicingRole::Software => (
                &[
                    "Microsoft",
                    "Windows",
                    "CurrentVersion",
                    "SideBySide",
                    "Configuration",
                ],
                &["PoqexecCmdline", "DontRunPoqexecInSmss"],
            ),
            ServicingRole::Components => (
                &[],
                &[
                    "PendingXmlIdentifier",
                    "PoqexecFailure",
                    "ExecutionState",
                    "RepairTransactionPended",
                ],
            ),
        }
    }

    fn missing_code(self) -> &'static str {
        match self {
            ServicingRole::Software => "software-hive-missing",
            ServicingRole::Components => "components-hive-missing",
        }
    }

    fn unreadable_code(self) -> &'static str {
        match self {
            ServicingRole::Software => "software-hive-unreadable",
            ServicingRole::Components => "components-hive-unreadable",
        }
    }
}

/// One servicing hive as read: the report's `servicing_hives` entry.
#[derive(Clone, Debug, Serialize)]
pub struct ServicingHive {
    pub role: ServicingRole,
    /// Where it was found or named; `null` when there was nowhere to look.
    pub path: Option<String>,
    /// It was found and read.
    pub read: bool,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub dirty: bool,
    pub recovered: bool,
    /// As for SYSTEM: dirty and not (completely) recovered. A gate treats it as not examined
    /// unless `--allow-dirty`, since the values that decide the action list may be missing.
    pub incomplete: bool,
    pub logs_applied: Vec<String>,
    /// Whether the key read exists (SOFTWARE's `SideBySide\Configuration`; COMPONENTS' root).
    pub key_found: bool,
    /// The values read, by name, as stored (type and hex), for the examiner.
    pub values: Vec<ServicingValue>,
    /// Why it was not read, when it was not.
    pub problem: Option<String>,
}

/// A value read from a servicing hive, as stored.
#[derive(Clone, Debug, Serialize)]
pub struct ServicingValue {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub data: ValueData,
}

/// A value's data in the form that reads best: the strings of a string type, the number of a
/// DWORD, hex otherwise.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ValueData {
    Strings(Vec<String>),
    Number(u32),
    Hex(String),
}

/// What was read from one servicing hive.
#[derive(Debug)]
pub struct OpenedServicing {
    pub hive: ServicingHive,
    pub values: KeyValues,
    pub findings: Vec<Finding>,
}

/// Finds SOFTWARE and COMPONENTS in the folder of the SYSTEM hive (one listing for both), by
/// name in any case: a regular file only; a link is reported and not followed, as for SYSTEM.
pub fn servicing_hives_in(folder: &dyn Folder) -> [Result<Option<OsString>, String>; 2] {
    let roles = [ServicingRole::Software, ServicingRole::Components];
    let entries = match folder.list() {
        Ok(entries) => entries,
        Err(err) => {
            let why = format!(
                "cannot list {}: {err}",
                folder.path(OsStr::new("")).display()
            );
            return [Err(why.clone()), Err(why)];
        }
    };
    roles.map(|role| {
        let wanted = role.file_name();
        let Some(entry) = entries
            .iter()
            .find(|e| e.name.to_string_lossy().eq_ignore_ascii_case(wanted))
        else {
            return Ok(None);
        };
        let path = folder.path(&entry.name);
        match entry.kind {
            ListedKind::File => Ok(Some(entry.name.clone())),
            ListedKind::Symlink => Err(format!(
                "{} is a symbolic link, which is not followed: name the file with --{}",
                path.display(),
                wanted.to_ascii_lowercase()
            )),
            _ => Err(format!("{} is not a regular file", path.display())),
        }
    })
}

/// Opens `role`'s hive, the file named in a folder (`Err`: why there is none to open), and
/// reads its values.
/// `expected`: the system volume was given, so the hive should be there (a missing one is
/// then a warning, not a note).
pub fn open_servicing(
    role: ServicingRole,
    path: Result<Option<(&dyn Folder, OsString)>, String>,
    logs: &LogChoice,
    hashing: bool,
    expected: bool,
) -> OpenedServicing {
    let name = role.file_name();
    let mut hive = ServicingHive {
        role,
        path: None,
        read: false,
        size: None,
        sha256: None,
        dirty: false,
        recovered: false,
        incomplete: false,
        logs_applied: Vec::new(),
        key_found: false,
        values: Vec::new(),
        problem: None,
    };
    let mut findings = Vec::new();
    let unread = |mut hive: ServicingHive, mut findings: Vec<Finding>, code, why: String| {
        let message = format!(
            "{name} hive {why}: the action lists are judged without {}",
            match role {
                ServicingRole::Software => "PoqexecCmdline",
                ServicingRole::Components => "the identifier gate (a list is assumed to run)",
            }
        );
        findings.push(if expected || code == role.unreadable_code() {
            Finding::warning(code, message)
        } else {
            Finding::info(code, message)
        });
        hive.problem = Some(why);
        OpenedServicing {
            hive,
            values: KeyValues::default(),
            findings,
        }
    };
    let (folder, file) = match path {
        Ok(Some(found)) => found,
        Ok(None) => {
            let why = format!(
                "not found beside SYSTEM (--{} FILE names it)",
                name.to_ascii_lowercase()
            );
            return unread(hive, findings, role.missing_code(), why);
        }
        Err(why) => {
            return unread(
                hive,
                findings,
                role.unreadable_code(),
                format!("unusable: {why}"),
            )
        }
    };
    hive.path = Some(folder.path(&file).display().to_string());
    // Its logs: beside it, unless the user ignored logs (named logs are SYSTEM's).
    let logs = match logs {
        LogChoice::Ignore => LogChoice::Ignore,
        _ => LogChoice::Beside,
    };
    let loaded = match load_in(folder, &file, &logs) {
        Ok(loaded) => loaded,
        Err(err) => {
            let why = format!("unreadable: {}", error_chain(&err));
            return unread(hive, findings, role.unreadable_code(), why);
        }
    };
    findings.extend(loaded.findings.iter().cloned().map(|mut f| {
        f.message = format!("{name} hive: {}", f.message);
        f
    }));
    hive.size = Some(loaded.primary.len() as u64);
    hive.sha256 = hashing.then(|| loaded.primary.sha256());
    hive.dirty = loaded.base.is_dirty();
    hive.recovered = loaded.is_recovered();
    hive.incomplete = loaded.is_incomplete();
    hive.logs_applied = loaded
        .log_uses()
        .iter()
        .filter(|log| log.applied)
        .map(|log| log.name.clone())
        .collect();
    let (key, names) = role.wanted();
    match read_key_values(loaded.bytes(), key, names) {
        Ok(values) => {
            hive.read = true;
            hive.key_found = values.key_found;
            hive.values = values.values.iter().map(shown_value).collect();
            OpenedServicing {
                hive,
                values,
                findings,
            }
        }
        Err(err) => {
            let why = format!("unreadable: {}", error_chain(&err));
            unread(hive, findings, role.unreadable_code(), why)
        }
    }
}

/// `Services\TrustedInstaller\Start` of a control set of the SYSTEM hive in `bytes` (3 is
/// manual, 2 automatic), when it is there and four bytes long.
pub fn trusted_installer_start(bytes: &[u8], control_set: u32) -> Option<u32> {
    let key = format!("ControlSet{control_set:03}");
    let values =
        read_key_values(bytes, &[&key, "Services", "TrustedInstaller"], &["Start"]).ok()?;
    dword(&values.get("Start")?.bytes)
}

fn dword(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn shown_value(value: &RawValue) -> ServicingValue {
    let data = match value.data_type {
        // REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ.
        1 | 2 | 7 => {
            let units: Vec<u16> = value
                .bytes
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            ValueData::Strings(
                units
                    .split(|&unit| unit == 0)
                    .filter(|s| !s.is_empty())
                    .map(String::from_utf16_lossy)
                    .collect(),
            )
        }
        4 if value.bytes.len() == 4 => ValueData::Number(dword(&value.bytes).unwrap_or_default()),
        _ => ValueData::Hex(value.bytes.iter().map(|b| format!("{b:02x}")).collect()),
    };
    ServicingValue {
        name: value.name.clone(),
        data_type: super::type_name(value.data_type),
        data,
    }
}
