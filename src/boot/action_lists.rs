//! Which servicing action lists the next boot runs, after the rename queue: every list the
//! registry names (each control set's `SetupExecute`, SOFTWARE's `PoqexecCmdline`) and the
//! default `\SystemRoot\WinSxS\pending.xml`, each read off the volumes, put through the
//! identifier gate, and judged for the indicators of an attack (`docs/action-lists.md`).
//!
//! What is assumed where Windows' behaviour is not confirmed leans toward running: a gate
//! must not pass an image because a list was guessed not to run.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::evidence::sha256_hex;
use crate::finding::Finding;
use crate::hive::RawValue;
use crate::queue::action_list::{self, read_action_list, ActionList};
use crate::queue::{decode_action_list, nt_form, Action, Operation};
use crate::volume::{EntryKind, PathKey, Resolved, Unresolved, Volumes};

/// Where the list is when nothing names another.
pub const DEFAULT_LIST: &str = r"\SystemRoot\WinSxS\pending.xml";
/// The component store: genuine sources of a list's moves and links are inside it.
const COMPONENT_STORE: &str = r"\SystemRoot\WinSxS";
/// The root `Identifier` of the public Windows Downdate template, whatever the host.
pub const ATTACK_TEMPLATE_IDENTIFIER: &str = "916ae75edb30da0146730000dc1be027";
const ATTACK_TEMPLATE_WCP_VERSION: &str = "10.0.22621.2567";
/// Sources outside the store named in a finding's detail; the rest are counted.
const EXAMPLES: usize = 10;

/// What names an action list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum RegisteredBy {
    /// SYSTEM `ControlSetNNN\Control\Session Manager\SetupExecute`.
    SetupExecute,
    /// SOFTWARE `...\SideBySide\Configuration\PoqexecCmdline`.
    PoqexecCmdline,
    /// Nothing: the file is at the default place.
    #[serde(rename = "default")]
    Default,
}

/// The registry values that name and gate the lists.
#[derive(Clone, Debug, Default)]
pub struct Registrations {
    /// Each control set's `SetupExecute`, with the set's number.
    pub setup_execute: Vec<(u32, RawValue)>,
    /// The control set that boots next (its `SetupExecute` is the one smss runs).
    pub next_control_set: u32,
    /// `None`: SOFTWARE was not read.
    pub software: Option<SoftwareValues>,
    /// `None`: COMPONENTS was not read.
    pub components: Option<ComponentsValues>,
    /// SYSTEM `Services\TrustedInstaller\Start` of the next control set.
    pub trusted_installer_start: Option<u32>,
    pub hash: bool,
}

#[derive(Clone, Debug, Default)]
pub struct SoftwareValues {
    pub poqexec_cmdline: Option<RawValue>,
    pub dont_run_poqexec_in_smss: Option<RawValue>,
}

/// What the gate reads of COMPONENTS (its other values are in the report's
/// `servicing_hives`).
#[derive(Clone, Debug, Default)]
pub struct ComponentsValues {
    pub pending_xml_identifier: Option<RawValue>,
}

/// One candidate list: the report's `action_lists` entry.
#[derive(Clone, Debug, Serialize)]
pub struct ActionListSection {
    /// As the registry names it (the first registration's spelling).
    pub path: String,
    pub registered_by: Vec<RegisteredBy>,
    /// The control sets whose `SetupExecute` names it.
    pub setup_execute_control_sets: Vec<u32>,
    /// The commands that name it, as stored.
    pub commands: Vec<String>,
    /// Where it is on the volumes, when it is there.
    pub host_path: Option<String>,
    pub exists: bool,
    pub runs_next_boot: bool,
    /// Why it runs or not, and what was assumed.
    pub why: String,
    pub version: Option<String>,
    pub wcp_version: Option<String>,
    pub identifier: Option<String>,
    /// COMPONENTS `PendingXmlIdentifier` as text (`null` when absent or not read).
    pub components_identifier: Option<String>,
    /// Count per element name of the first POQ (registry, marker and unknown ones included).
    pub primitives: BTreeMap<String, usize>,
    /// `POQ` elements in the list (only the first runs at boot).
    pub poqs: usize,
    /// Its operations in `operations` (file primitives of the first POQ).
    pub operations: usize,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// What the reader did not expect (unknown elements and attributes...).
    pub notes: Vec<String>,
    /// The codes of the alert findings about this list.
    pub alerts: Vec<&'static str>,
}

/// The lists of the next boot, ready for the replay.
#[derive(Debug, Default)]
pub struct ActionLists {
    pub sections: Vec<ActionListSection>,
    /// The operations of the lists that run, in boot order.
    pub running: Vec<Operation>,
    /// The operations of lists that will not run, with why: reported, not replayed.
    pub not_running: Vec<(Vec<Operation>, std::sync::Arc<str>)>,
    pub findings: Vec<Finding>,
    /// Lists that exist but could not be read: the check cannot pass a gate.
    pub not_examined: Vec<String>,
    /// Files read whole: (host path, size, sha256).
    pub inputs: Vec<(String, u64, Option<String>)>,
}

/// A candidate while it is judged.
struct Candidate {
    section: ActionListSection,
    /// Its path mapped onto the volumes (once, when it was first named).
    resolved: Result<Resolved, Unresolved>,
    list: Option<ActionList>,
}

impl Candidate {
    fn key(&self) -> Option<&PathKey> {
        self.resolved.as_ref().ok().map(|r| &r.key)
    }
}

/// Finds, reads and gates every candidate list; operations are numbered from `first_index`
/// (after the rename queue's).
pub fn find_action_lists(
    registrations: &Registrations,
    volumes: &Volumes,
    first_index: usize,
) -> ActionLists {
    let mut out = ActionLists::default();
    let mut candidates: Vec<Candidate> = Vec::new();
    let resolve = |path: &str| volumes.resolve(&nt_form(path));
    let mut add = |path: String,
                   resolved: Result<Resolved, Unresolved>,
                   by: RegisteredBy,
                   set: Option<u32>,
                   command: Option<String>| {
        let key = resolved.as_ref().ok().map(|r| &r.key);
        let at = candidates.iter().position(|c| match (c.key(), key) {
            (Some(a), Some(b)) => a == b,
            _ => c.section.path.eq_ignore_ascii_case(&path),
        });
        let at = at.unwrap_or_else(|| {
            candidates.push(Candidate {
                section: section(path),
                resolved,
                list: None,
            });
            candidates.len() - 1
        });
        let section = &mut candidates[at].section;
        if !section.registered_by.contains(&by) {
            section.registered_by.push(by);
        }
        if let Some(set) = set.filter(|s| !section.setup_execute_control_sets.contains(s)) {
            section.setup_execute_control_sets.push(set);
        }
        if let Some(command) = command.filter(|c| !section.commands.contains(c)) {
            section.commands.push(command);
        }
    };
    for (set, value) in &registrations.setup_execute {
        for command in strings(value) {
            if let Some(list) = action_list::list_named_by(&command) {
                let resolved = resolve(&list);
                add(
                    list,
                    resolved,
                    RegisteredBy::SetupExecute,
                    Some(*set),
                    Some(command),
                );
            }
        }
    }
    let software = registrations.software.as_ref();
    if let Some(value) = software.and_then(|s| s.poqexec_cmdline.as_ref()) {
        // `poqexec.exe`, its switches and the list, one per string (as Windows Downdate writes
        // it), or the whole command line in one.
        let parts = strings(value);
        let (command, list) = match parts.as_slice() {
            [one] => (one.clone(), action_list::list_named_by(one)),
            _ => (
                parts.join(" "),
                action_list::list_named_by_arguments(&parts),
            ),
        };
        if let Some(list) = list {
            let resolved = resolve(&list);
            add(
                list,
                resolved,
                RegisteredBy::PoqexecCmdline,
                None,
                Some(command),
            );
        }
    }
    // The default place counts when a file is there (or something above named it).
    let default = resolve(DEFAULT_LIST);
    let default_key = default.as_ref().ok().map(|r| r.key.clone());
    if default.as_ref().is_ok_and(|r| r.entry.is_some()) {
        add(
            DEFAULT_LIST.to_string(),
            default,
            RegisteredBy::Default,
            None,
            None,
        );
    }

    let judge = Judge {
        registrations,
        volumes,
        components_identifier: registrations
            .components
            .as_ref()
            .and_then(|c| c.pending_xml_identifier.as_ref())
            .and_then(|v| action_list::components_identifier(&v.bytes)),
        dont_run_in_smss: software
            .and_then(|s| s.dont_run_poqexec_in_smss.as_ref())
            .is_some_and(|v| v.bytes.iter().any(|&b| b != 0)),
        no_volume: volumes.drives().next().is_none() && volumes.devices().next().is_none(),
    };
    for candidate in &mut candidates {
        let mut why = Vec::new();
        candidate.list = judge.judge(candidate, &mut why, &mut out);
        candidate.section.why = why.join("; ");
    }

    // Numbered in boot order: the lists that run, then the others.
    let mut index = first_index;
    for running in [true, false] {
        for candidate in candidates
            .iter_mut()
            .filter(|c| c.section.runs_next_boot == running)
        {
            let Some(list) = &candidate.list else {
                continue;
            };
            let queue = decode_action_list(list, &candidate.section.path, index);
            index += queue.operations.len();
            candidate.section.operations = queue.operations.len();
            if running {
                out.running.extend(queue.operations);
            } else {
                let why = format!(
                    "the list will not run at the next boot: {}",
                    candidate.section.why
                );
                out.not_running.push((queue.operations, why.into()));
            }
        }
    }
    indicators(
        &mut out,
        &mut candidates,
        registrations,
        volumes,
        default_key.as_ref(),
    );
    out.sections = candidates.into_iter().map(|c| c.section).collect();
    out
}

/// What decides whether a candidate runs, the same for every candidate.
struct Judge<'a> {
    registrations: &'a Registrations,
    volumes: &'a Volumes,
    /// COMPONENTS `PendingXmlIdentifier` as text.
    components_identifier: Option<String>,
    /// SOFTWARE `DontRunPoqexecInSmss` is set (non-zero).
    dont_run_in_smss: bool,
    no_volume: bool,
}

impl Judge<'_> {
    /// Whether `candidate` runs at the next boot (its `runs_next_boot`, and why, in `why`),
    /// and the list, when it was read.
    fn judge(
        &self,
        candidate: &mut Candidate,
        why: &mut Vec<String>,
        out: &mut ActionLists,
    ) -> Option<ActionList> {
        let registrations = self.registrations;
        let section = &mut candidate.section;
        section.components_identifier = self.components_identifier.clone();
        let registered = |by| section.registered_by.contains(&by);
        let next_set = section
            .setup_execute_control_sets
            .contains(&registrations.next_control_set);
        let named_to_run = if next_set {
            why.push(format!(
                "named by SetupExecute of ControlSet{:03}, the set that boots next",
                registrations.next_control_set
            ));
            true
        } else if registered(RegisteredBy::PoqexecCmdline) {
            why.push("named by PoqexecCmdline, which servicing runs at the next boot".into());
            true
        } else if registered(RegisteredBy::Default) {
            why.push("at the default place; assumed to run although nothing names it (servicing carries out a pending list it finds)".into());
            true
        } else {
            why.push(format!(
                "named only by SetupExecute of {}, not the set that boots next",
                sets(&section.setup_execute_control_sets)
            ));
            false
        };
        if self.no_volume {
            why.push("no volume was given, so the list was not read".into());
            return None;
        }
        let resolved = match &candidate.resolved {
            Ok(resolved) => resolved,
            Err(unresolved) => {
                why.push(format!(
                    "the path cannot be mapped onto the volumes: {unresolved}"
                ));
                if named_to_run {
                    out.not_examined.push(section.path.clone());
                    out.findings.push(Finding::warning(
                        "action-list-unreadable",
                        format!(
                            "the action list {} cannot be found on the volumes ({unresolved}): what it does at the next boot is unknown",
                            section.path
                        ),
                    ));
                }
                return None;
            }
        };
        let Some(entry) = &resolved.entry else {
            why.push("the file does not exist, so there is nothing to run".into());
            return None;
        };
        let mount = resolved.key.mount();
        let names = entry.names();
        let host = self.volumes.display(mount, &names);
        section.exists = true;
        section.host_path = Some(host.clone());
        if entry.kind != EntryKind::File {
            why.push("it is not a regular file".into());
            return None;
        }
        let evidence = match self.volumes.open(mount, &names) {
            Ok(evidence) => evidence,
            Err(err) => {
                why.push(format!("it cannot be read: {err}"));
                out.not_examined.push(host.clone());
                out.findings.push(Finding::warning(
                    "action-list-unreadable",
                    format!("cannot read the action list {host}: {err}; what it does at the next boot is unknown"),
                ));
                return None;
            }
        };
        section.size = Some(evidence.len() as u64);
        section.sha256 = registrations.hash.then(|| sha256_hex(&evidence));
        out.inputs
            .push((host.clone(), evidence.len() as u64, section.sha256.clone()));
        let list = match read_action_list(&evidence) {
            Ok(list) => list,
            Err(err) => {
                why.push(format!(
                    "{err}; poqexec would not run it, but another reader may (not examined)"
                ));
                out.not_examined.push(host.clone());
                out.findings.push(
                    Finding::warning(
                        "action-list-unreadable",
                        format!("the action list {host} cannot be read: {err}"),
                    )
                    .with_detail(&err),
                );
                return None;
            }
        };
        section.version = list.version.clone();
        section.wcp_version = list.wcp_version.clone();
        section.identifier = list.identifier.clone();
        section.primitives = list.counts.clone();
        section.poqs = list.poqs;
        section.notes = list.notes.clone();
        if list.more_notes > 0 {
            section
                .notes
                .push(format!("and {} more notes", list.more_notes));
        }
        section.runs_next_boot = named_to_run && self.gate(&list, &host, section, why, out);
        if section.runs_next_boot && self.dont_run_in_smss {
            why.push("DontRunPoqexecInSmss is set (its meaning is unconfirmed): assumed to run later in the boot all the same".into());
        }
        Some(list)
    }

    /// The identifier gate: whether poqexec will run `list`, with why.
    fn gate(
        &self,
        list: &ActionList,
        host: &str,
        section: &ActionListSection,
        why: &mut Vec<String>,
        out: &mut ActionLists,
    ) -> bool {
        let components = self.components_identifier.as_deref();
        if self.registrations.components.is_none() {
            why.push(
                "COMPONENTS was not read, so the identifier gate is assumed to let it run".into(),
            );
            return true;
        }
        if action_list::identifier_admits(list, components) {
            why.push("its Identifier equals COMPONENTS PendingXmlIdentifier".into());
            return true;
        }
        let because = format!(
            "its Identifier {} differs from COMPONENTS PendingXmlIdentifier {}, so poqexec will not run it",
            list.identifier.as_deref().unwrap_or("(none)"),
            components.unwrap_or("(absent)")
        );
        out.findings.push(
            Finding::warning(
                "action-list-identifier-mismatch",
                format!(
                    "the action list {host}: {because}; its operations are reported as no-effect"
                ),
            )
            .with_detail(&serde_json::json!({
                "list": section.path,
                "identifier": list.identifier,
                "components_identifier": components,
            })),
        );
        why.push(because);
        false
    }
}

/// The indicators of `docs/action-lists.md` as findings.
fn indicators(
    out: &mut ActionLists,
    candidates: &mut [Candidate],
    registrations: &Registrations,
    volumes: &Volumes,
    default_key: Option<&PathKey>,
) {
    let store = volumes
        .resolve(&nt_form(COMPONENT_STORE))
        .ok()
        .map(|r| r.key);
    for candidate in candidates.iter_mut() {
        let at_default = candidate.key().is_some() && candidate.key() == default_key;
        let section = &mut candidate.section;
        let shown = &section.path;
        if section
            .identifier
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(ATTACK_TEMPLATE_IDENTIFIER))
        {
            let wcp = section.wcp_version.as_deref() == Some(ATTACK_TEMPLATE_WCP_VERSION);
            out.findings.push(
                Finding::alert(
                    "action-list-attack-template",
                    format!(
                        "the action list {shown} has Identifier {ATTACK_TEMPLATE_IDENTIFIER}{}, the fixed value of the public Windows Downdate template",
                        if wcp { format!(" and WcpVersion {ATTACK_TEMPLATE_WCP_VERSION}") } else { String::new() }
                    ),
                )
                .with_detail(&serde_json::json!({
                    "list": section.path,
                    "identifier": section.identifier,
                    "wcp_version": section.wcp_version,
                    "runs_next_boot": section.runs_next_boot,
                })),
            );
            section.alerts.push("action-list-attack-template");
        }
        if !section.runs_next_boot {
            continue;
        }
        if !at_default {
            out.findings.push(
                Finding::alert(
                    "action-list-outside-winsxs",
                    format!(
                        "the action list that runs at the next boot is {shown}{}, not \\Windows\\WinSxS\\pending.xml (registered by {})",
                        section.host_path.as_ref().map_or(String::new(), |h| format!(" ({h})")),
                        registered(&section.registered_by)
                    ),
                )
                .with_detail(&serde_json::json!({
                    "list": section.path,
                    "host_path": section.host_path,
                    "registered_by": section.registered_by,
                })),
            );
            section.alerts.push("action-list-outside-winsxs");
        }
        if registrations.trusted_installer_start == Some(2) {
            out.findings.push(Finding::info(
                "trusted-installer-auto-start",
                format!(
                    "the TrustedInstaller service starts automatically (Start=2, normally 3) while the action list {shown} is registered: Windows Downdate sets it so"
                ),
            ));
        }
    }
    // Sources outside the store, per list that runs: one finding each, a few examples.
    if out.running.is_empty() {
        return;
    }
    let outside: Vec<&Operation> = out
        .running
        .par_iter()
        .filter(|op| matches!(op.action, Action::Rename | Action::Hardlink))
        .filter(|op| {
            let source = volumes.resolve(&nt_form(op.source.path())).ok();
            match (&store, source) {
                (Some(store), Some(source)) => !source.key.is_within(store),
                _ => true,
            }
        })
        .collect();
    let mut by_list: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in outside {
        if let crate::queue::Origin::ActionList { list, .. } = &op.origin {
            by_list.entry(list.path.as_str()).or_default().push(op);
        }
    }
    for (list, ops) in by_list {
        if let Some(candidate) = candidates.iter_mut().find(|c| c.section.path == list) {
            candidate
                .section
                .alerts
                .push("action-list-source-outside-store");
        }
        let first = &ops[0];
        out.findings.push(
            Finding::alert(
                "action-list-source-outside-store",
                format!(
                    "the action list {list} takes {} file{} from outside \\Windows\\WinSxS, first {} {} over {}",
                    ops.len(),
                    if ops.len() == 1 { "" } else { "s" },
                    if first.action == Action::Hardlink { "hard-linking" } else { "moving" },
                    first.source.stored,
                    first.destination.as_ref().map_or("", |d| &d.stored),
                ),
            )
            .with_detail(&serde_json::json!({
                "list": list,
                "count": ops.len(),
                "operations": ops.iter().take(EXAMPLES).map(|op| serde_json::json!({
                    "index": op.index,
                    "action": op.action,
                    "source": &*op.source.stored,
                    "destination": op.destination.as_ref().map(|d| &*d.stored),
                })).collect::<Vec<_>>(),
            })),
        );
    }
}

fn section(path: String) -> ActionListSection {
    ActionListSection {
        path,
        registered_by: Vec::new(),
        setup_execute_control_sets: Vec::new(),
        commands: Vec::new(),
        host_path: None,
        exists: false,
        runs_next_boot: false,
        why: String::new(),
        version: None,
        wcp_version: None,
        identifier: None,
        components_identifier: None,
        primitives: BTreeMap::new(),
        poqs: 0,
        operations: 0,
        size: None,
        sha256: None,
        notes: Vec::new(),
        alerts: Vec::new(),
    }
}

/// The strings of a REG_SZ, REG_EXPAND_SZ or REG_MULTI_SZ value (empty ones left out).
fn strings(value: &RawValue) -> Vec<String> {
    crate::queue::multi_sz::split(&value.bytes)
        .0
        .iter()
        .map(|s| s.text.to_string())
        .filter(|s| !s.trim().is_empty())
        .collect()
}

fn sets(numbers: &[u32]) -> String {
    let names: Vec<String> = numbers
        .iter()
        .map(|n| format!("ControlSet{n:03}"))
        .collect();
    names.join(", ")
}

fn registered(by: &[RegisteredBy]) -> String {
    let names: Vec<&str> = by
        .iter()
        .map(|b| match b {
            RegisteredBy::SetupExecute => "SetupExecute",
            RegisteredBy::PoqexecCmdline => "PoqexecCmdline",
            RegisteredBy::Default => "its place",
        })
        .collect();
    names.join(" and ")
}
