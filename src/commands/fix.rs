//! `fix`: what QChain did, offline. Rewrites the pending values of the control set that boots
//! next so that no operation downgrades a file or loses a queued fix, as a `.reg` file an admin
//! applies with `reg load` + `reg import` (the evidence itself is never changed).
//!
//! Each operation that would downgrade or be overridden is removed; its destination string
//! becomes empty, so that the same slot now deletes the staged file at boot instead of leaving
//! it behind. Removing one can make an earlier staged file the final writer of a target, which
//! may itself be older than the disk: the replay is repeated until no such operation is left,
//! so for every target the newest version, staged or on disk, survives. Every other string
//! keeps its place and its bytes.

use std::collections::BTreeMap;
use std::path::Path;

use miette::Diagnostic;
use thiserror::Error;

use super::check::{CheckError, CheckOptions, Inspection};
use crate::boot::{RegisteredBy, ReplayOptions, Verdict};
use crate::hive::RawValue;
use crate::output::{OutputError, OutputFile};
use crate::queue::{multi_sz, Action, Operation};
pub use crate::report::{FixPlan, ListWithAlerts, Removed};
use crate::text::shown;

#[derive(Debug, Error, Diagnostic)]
pub enum FixError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Check(#[from] CheckError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Output(#[from] OutputError),

    #[error("the hive is dirty and was not read completely (no transaction log applied, or one rejected): a fix computed from it could undo recent writes. Nothing written")]
    #[diagnostic(
        code(nextboot::fix::dirty),
        help("`nextboot check` on the same inputs shows the warnings; --allow-dirty accepts the hive as it was read")
    )]
    Dirty,

    #[error("the check could not read or compare {what}, so a fix could miss a downgrade. Nothing written")]
    #[diagnostic(
        code(nextboot::fix::not_examined),
        help("`nextboot check` on the same inputs names each one in a warning; make them readable (permissions, a copy that keeps the names) and run fix again")
    )]
    NotExamined { what: String },
}

/// Where the admin loads the offline SYSTEM hive: `HKLM\NAME` or `HKU\NAME` (`--load-key`),
/// with a NAME that `reg load` takes and that is safe to print in the `.reg` and in the
/// commands its comment gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadKey {
    /// `HKLM` or `HKU`, as `reg` spells it.
    pub root: &'static str,
    pub name: String,
}

impl LoadKey {
    /// `HKEY_LOCAL_MACHINE\NAME` or `HKEY_USERS\NAME`, as a `.reg` spells it.
    pub fn full(&self) -> String {
        let root = match self.root {
            "HKLM" => "HKEY_LOCAL_MACHINE",
            _ => "HKEY_USERS",
        };
        format!("{root}\\{}", self.name)
    }
}

impl std::fmt::Display for LoadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\\{}", self.root, self.name)
    }
}

impl std::str::FromStr for LoadKey {
    type Err = String;

    fn from_str(text: &str) -> Result<LoadKey, String> {
        let usage = |why: &str| {
            format!(
                "`{}` {why}: give HKLM\\NAME or HKU\\NAME (reg load loads a hive only directly under those two)",
                shown(text)
            )
        };
        let (root, name) = text
            .split_once('\\')
            .ok_or_else(|| usage("names no key under a root"))?;
        let root = match root.to_ascii_uppercase().as_str() {
            "HKLM" | "HKEY_LOCAL_MACHINE" => "HKLM",
            "HKU" | "HKEY_USERS" => "HKU",
            _ => return Err(usage("is not under HKLM or HKU")),
        };
        if name.is_empty() {
            return Err(usage("has an empty NAME"));
        }
        if name.contains('\\') {
            return Err(usage("names a subkey, not a key directly under the root"));
        }
        if name.encode_utf16().count() > 255 {
            return Err(usage("has a NAME longer than 255 characters"));
        }
        if name.trim() != name {
            return Err(usage("has a NAME that starts or ends with a space"));
        }
        if let Some(c) = name
            .chars()
            .find(|&c| crate::text::is_unsafe(c) || "\"[]%^&|<>*?".contains(c))
        {
            return Err(usage(&format!(
                "has {} in its NAME, which a .reg key line or the reg command line cannot carry",
                shown(&c.to_string())
            )));
        }
        Ok(LoadKey {
            root,
            name: name.to_string(),
        })
    }
}

/// What `fix` does about action lists that run with alerts, and where the admin loads the
/// hives that disable them.
#[derive(Clone, Debug)]
pub struct ListFix {
    /// `--disable-action-list`: the `.reg` also disables each list that runs and has alerts,
    /// as Microsoft's recovery does (COMPONENTS `PendingXmlIdentifier` deleted, so that the
    /// gate stops every list; SOFTWARE `PoqexecCmdline` deleted when it names one).
    pub disable: bool,
    pub software_key: LoadKey,
    pub components_key: LoadKey,
}

/// `fix` as a whole: checks the output path against the evidence first, works out the plan,
/// and writes the `.reg` only for a hive that was read completely (or with `allow_dirty`).
pub fn run(
    options: &CheckOptions,
    load_key: &LoadKey,
    lists: &ListFix,
    out: &Path,
    allow_dirty: bool,
) -> Result<FixPlan, FixError> {
    let output = OutputFile::new(out, &options.evidence())?;
    let plan = plan(options, lists.disable)?;
    if plan.after.hive_unaccepted(allow_dirty) {
        return Err(FixError::Dirty);
    }
    if let Some(first) = plan.after.not_examined.first() {
        let what = match plan.after.not_examined.len() {
            1 => first.clone(),
            n => format!("{first} and {} more", n - 1),
        };
        return Err(FixError::NotExamined { what });
    }
    output.write(&reg_bytes(&plan, load_key, lists))?;
    Ok(plan)
}

/// Works out the fix for the inputs of `check`; with `disable_lists`, the action lists that
/// run with alerts are disabled first, so the rename queue is fixed for a boot without them.
pub fn plan(options: &CheckOptions, disable_lists: bool) -> Result<FixPlan, CheckError> {
    let mut inspection = Inspection::open(options)?;
    let lists_with_alerts: Vec<ListWithAlerts> = inspection
        .action_lists()
        .iter()
        .filter(|list| list.runs_next_boot && !list.alerts.is_empty())
        .map(|list| ListWithAlerts {
            path: list.path.clone(),
            alerts: list.alerts.clone(),
            by_poqexec_cmdline: list.registered_by.contains(&RegisteredBy::PoqexecCmdline),
            disabled: disable_lists,
        })
        .collect();
    if disable_lists && !lists_with_alerts.is_empty() {
        // Without PendingXmlIdentifier no list passes the gate.
        inspection.stop_lists(
            "the list will not run at the next boot: the fix deletes COMPONENTS PendingXmlIdentifier (--disable-action-list)",
        );
    }
    let original = std::mem::take(&mut inspection.queue.operations);
    let mut current = original.clone();
    let mut removed: BTreeMap<usize, Removed> = BTreeMap::new();
    let replay_options = ReplayOptions { hash_files: false };
    let mut rounds = 0;
    // Each round removes at least one operation, so this ends.
    loop {
        rounds += 1;
        // The action lists run after the rename queue and count toward its verdicts, but only
        // the rename queue's own operations can be removed from its values.
        let replay = inspection.replay(&current, replay_options);
        let mut any = false;
        for (index, outcome) in replay.outcomes.iter().take(original.len()).enumerate() {
            if matches!(outcome.verdict, Verdict::Downgrade | Verdict::Overridden)
                && !removed.contains_key(&index)
            {
                let op = &original[index];
                removed.insert(
                    index,
                    Removed {
                        index,
                        verdict: outcome.verdict,
                        source: op.source.stored.to_string(),
                        destination: op.destination.as_ref().map(|d| d.stored.to_string()),
                        reason: outcome.reason.to_string(),
                    },
                );
                current[index] = delete_instead(&original[index]);
                any = true;
            }
        }
        if !any || rounds > original.len() {
            break;
        }
    }
    let values = rewrite(&inspection.pending, &removed);
    let control_set = inspection.used;
    inspection.pending = Vec::new();
    let after = inspection.report(current, options);
    Ok(FixPlan {
        control_set,
        values,
        removed: removed.into_values().collect(),
        rounds,
        after,
        lists_with_alerts,
    })
}

/// The same slot, deleting the staged file instead of moving it.
fn delete_instead(op: &Operation) -> Operation {
    let mut delete = op.clone();
    delete.action = Action::Delete;
    delete.destination = None;
    delete.replace_existing = false;
    delete
}

/// The pending values with the destinations of removed operations emptied. Strings are paired
/// across the values exactly as the decoder paired them, so operation `i` is pair `i`.
fn rewrite(values: &[RawValue], removed: &BTreeMap<usize, Removed>) -> Vec<RawValue> {
    let mut strings: Vec<(usize, Vec<u16>)> = Vec::new();
    for (value_index, value) in values.iter().enumerate() {
        let (split, _) = multi_sz::split(&value.bytes);
        strings.extend(split.into_iter().map(|s| (value_index, s.units())));
    }
    let mut touched = vec![false; values.len()];
    for (&index, _) in removed.iter() {
        // Operation i is made of strings 2i (source) and 2i + 1 (destination).
        if let Some((value_index, destination)) = strings.get_mut(2 * index + 1) {
            destination.clear();
            touched[*value_index] = true;
        }
    }
    values
        .iter()
        .enumerate()
        .map(|(value_index, value)| {
            if !touched[value_index] {
                return value.clone();
            }
            let mut bytes = Vec::with_capacity(value.bytes.len() + 4);
            for (_, units) in strings.iter().filter(|(v, _)| *v == value_index) {
                for unit in units.iter().chain([&0u16]) {
                    bytes.extend_from_slice(&unit.to_le_bytes());
                }
            }
            // The list terminator (an all-empty list is two NULs, as MoveFileEx leaves it).
            bytes.extend_from_slice(&[0, 0]);
            if bytes.len() == 2 {
                bytes.extend_from_slice(&[0, 0]);
            }
            RawValue {
                name: value.name.clone(),
                data_type: 7,
                bytes,
            }
        })
        .collect()
}

/// The plan as a regedit file (UTF-16LE with BOM, CRLF), under `load_key` (where the admin
/// loads the offline SYSTEM hive).
pub fn reg_bytes(plan: &FixPlan, load_key: &LoadKey, lists: &ListFix) -> Vec<u8> {
    let text = reg_text(plan, load_key, lists);
    let mut bytes = vec![0xff, 0xfe];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// The `.reg` text. Evidence appears only in comment lines, escaped with [`shown`], so no
/// queue string can end a comment and start a directive.
fn reg_text(plan: &FixPlan, load_key: &LoadKey, lists: &ListFix) -> String {
    let key = format!(
        "{}\\ControlSet{:03}\\Control\\Session Manager",
        load_key.full(),
        plan.control_set
    );
    let mut lines = vec![
        "Windows Registry Editor Version 5.00".to_string(),
        String::new(),
        format!(
            "; nextboot {} fix: pending file operations of ControlSet{:03} without the ones that",
            env!("CARGO_PKG_VERSION"),
            plan.control_set
        ),
        "; would downgrade a file or lose a queued fix. Apply to the offline SYSTEM hive:".into(),
        format!(";   reg load \"{load_key}\" X:\\Windows\\System32\\config\\SYSTEM"),
        ";   reg import THIS-FILE.reg".into(),
        format!(";   reg unload \"{load_key}\""),
    ];
    if plan.removed.is_empty() {
        lines.push("; Nothing is removed: no operation downgrades or is overridden.".into());
    } else {
        lines.push(format!(
            "; Removed ({}); each staged file is deleted at boot instead:",
            plan.removed.len()
        ));
        for removed in &plan.removed {
            lines.push(format!(";   {}", removed.line()));
            lines.push(format!(";      {}", shown(&removed.reason)));
        }
    }
    lines.push(String::new());
    lines.push(format!("[{key}]"));
    for value in &plan.values {
        lines.extend(hex_value(&value.name, &value.bytes));
    }
    lines.push(String::new());
    lines.extend(disabling_lines(plan, lists));
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

/// The keys that disable the action lists with alerts, as Microsoft's recovery does, each
/// under the key its hive is loaded at; nothing without `--disable-action-list`.
fn disabling_lines(plan: &FixPlan, lists: &ListFix) -> Vec<String> {
    let disabled: Vec<&ListWithAlerts> = plan
        .lists_with_alerts
        .iter()
        .filter(|l| l.disabled)
        .collect();
    if disabled.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![
        "; Disables the action list(s) that run at the next boot with alerts (--disable-action-list):".to_string(),
    ];
    for list in &disabled {
        lines.push(format!(
            ";   {} ({})",
            shown(&list.path),
            list.alerts.join(", ")
        ));
    }
    lines.extend([
        "; Deleting COMPONENTS PendingXmlIdentifier stops every list at the gate, a genuine pending".to_string(),
        "; servicing transaction too (reinstall its updates after the boot). Load the hive(s) first:".to_string(),
        format!(
            ";   reg load \"{}\" X:\\Windows\\System32\\config\\COMPONENTS",
            lists.components_key
        ),
    ]);
    let software = disabled.iter().any(|l| l.by_poqexec_cmdline);
    if software {
        lines.push(format!(
            ";   reg load \"{}\" X:\\Windows\\System32\\config\\SOFTWARE",
            lists.software_key
        ));
    }
    lines.push(String::new());
    lines.push(format!("[{}]", lists.components_key.full()));
    lines.push("\"PendingXmlIdentifier\"=-".into());
    lines.push(String::new());
    if software {
        lines.push(format!(
            "[{}\\Microsoft\\Windows\\CurrentVersion\\SideBySide\\Configuration]",
            lists.software_key.full()
        ));
        lines.push("\"PoqexecCmdline\"=-".into());
        lines.push(String::new());
    }
    lines
}

/// `"Name"=hex(7):..` wrapped as regedit wraps it: lines under 80 columns, `\` continuations
/// indented by two spaces. The name is one of [`crate::hive::PENDING_VALUES`] as stored (the
/// hive stage matched it, ignoring case), so it holds no character a `.reg` cannot quote.
fn hex_value(name: &str, bytes: &[u8]) -> Vec<String> {
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    let mut lines = Vec::new();
    let mut line = format!("\"{escaped}\"=hex(7):");
    for (i, byte) in bytes.iter().enumerate() {
        let last = i + 1 == bytes.len();
        let item = if last {
            format!("{byte:02x}")
        } else {
            format!("{byte:02x},")
        };
        if line.len() + item.len() > 77 {
            line.push('\\');
            lines.push(std::mem::replace(&mut line, "  ".into()));
        }
        line.push_str(&item);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> RawValue {
        RawValue {
            name: "PendingFileRenameOperations".into(),
            data_type: 7,
            bytes: text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
        }
    }

    fn removed(index: usize) -> (usize, Removed) {
        (
            index,
            Removed {
                index,
                verdict: Verdict::Downgrade,
                source: String::new(),
                destination: None,
                reason: String::new(),
            },
        )
    }

    #[test]
    fn removed_renames_become_deletes_in_place() {
        let original = value("a\0!b\0c\0!d\0e\0\0\0");
        let rewritten = rewrite(&[original], &[removed(1)].into());
        assert_eq!(rewritten[0].bytes, value("a\0!b\0c\0\0e\0\0\0").bytes);
    }

    #[test]
    fn nothing_removed_keeps_the_bytes() {
        let original = value("a\0!b\0c\0\0\0");
        assert_eq!(
            rewrite(std::slice::from_ref(&original), &BTreeMap::new())[0].bytes,
            original.bytes
        );
    }

    #[test]
    fn pairs_across_both_values_stay_where_they_were() {
        let first = value("a\0!b\0c\0\0");
        let mut second = value("!d\0e\0\0\0");
        second.name = "PendingFileRenameOperations2".into();
        let rewritten = rewrite(&[first.clone(), second], &[removed(1)].into());
        assert_eq!(rewritten[0].bytes, first.bytes);
        assert_eq!(rewritten[1].bytes, value("\0e\0\0\0").bytes);
    }

    #[test]
    fn undecodable_strings_keep_their_raw_units() {
        let mut bytes = value("x").bytes;
        bytes.extend_from_slice(&0xd800u16.to_le_bytes());
        bytes.extend_from_slice(&value("\0!y\0\0").bytes);
        let original = RawValue {
            name: "PendingFileRenameOperations".into(),
            data_type: 7,
            bytes,
        };
        assert_eq!(
            rewrite(std::slice::from_ref(&original), &BTreeMap::new())[0].bytes,
            original.bytes
        );
    }

    #[test]
    fn hex_lines_wrap_like_regedit() {
        let lines = hex_value("PendingFileRenameOperations", &[0xab; 60]);
        assert!(lines.iter().all(|l| l.len() <= 80), "{lines:?}");
        assert!(lines[0].starts_with("\"PendingFileRenameOperations\"=hex(7):ab,"));
        assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with('\\')));
        assert!(lines[1..].iter().all(|l| l.starts_with("  ")));
        let joined: String = lines.concat().replace(['\\', ' '], "");
        assert_eq!(joined.matches("ab").count(), 60);
    }

    #[test]
    fn load_keys() {
        let key = |text: &str| text.parse::<LoadKey>().map(|k| k.full());
        assert_eq!(
            key("HKLM\\NB_SYSTEM").unwrap(),
            "HKEY_LOCAL_MACHINE\\NB_SYSTEM"
        );
        assert_eq!(key("hklm\\X").unwrap(), "HKEY_LOCAL_MACHINE\\X");
        assert_eq!(
            key("HKEY_LOCAL_MACHINE\\X").unwrap(),
            "HKEY_LOCAL_MACHINE\\X"
        );
        assert_eq!(key("HKU\\Offline").unwrap(), "HKEY_USERS\\Offline");
        assert_eq!(key("HKLM\\My Hive").unwrap(), "HKEY_LOCAL_MACHINE\\My Hive");
        for bad in [
            "",
            "HKLM\\",
            "HKLM",
            "NB_SYSTEM",
            "HKCU\\X",
            "HKCR\\X",
            "HKLM\\A\\B",
            "HKLM\\ X",
            "HKLM\\X]",
            "HKLM\\X\"",
            "HKLM\\a\r\nb",
            "HKLM\\a\u{202e}b",
            "HKLM\\%PATH%",
        ] {
            assert!(key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(key(&format!("HKLM\\{}", "x".repeat(256))).is_err());
    }
}
