//! Action lists replayed after the rename queue, at the library level (issue 14): the list is
//! read by `queue::action_list`, decoded into operations after the rename queue's, and both
//! go through the one replay over scenario volumes holding the project's PE fixtures
//! (file_v5, file_v8 and file_v12: versions 5, 8 and 12 of one DLL).

mod support;

use nextboot::boot::{replay, Replay, ReplayOptions};
use nextboot::evidence::Evidence;
use nextboot::hive::RawValue;
use nextboot::queue::action_list::read_action_list;
use nextboot::queue::{
    decode_action_list, decode_registry, Action, Operation, Origin, QueueSource,
};
use nextboot::report::OperationReport;
use nextboot::version::read_pe_version;
use nextboot::volume::{DirVolume, Volumes};
use support::{movefile_value, pe, Scenario, PFRO};

/// A fixture's file version, as the version stage reads it.
fn fixture_version(name: &str) -> String {
    let evidence = Evidence::open(&pe(name)).unwrap();
    read_pe_version(&evidence)
        .unwrap()
        .file_version()
        .unwrap()
        .to_string()
}

const LIST: &str = r"\SystemRoot\WinSxS\pending.xml";

/// Replays `renames` (the registry queue) and then the POQ `primitives` over the scenario.
fn boot(
    s: &Scenario,
    renames: &[(&str, &str)],
    primitives: &str,
) -> (Vec<String>, Replay, Vec<Operation>) {
    let mut volumes = Volumes::new('C');
    volumes.add_drive('C', Box::new(DirVolume::new(s.root())));
    volumes.find_windows_dir();
    let registry = decode_registry(&[RawValue {
        name: PFRO.into(),
        data_type: 7,
        bytes: if renames.is_empty() {
            Vec::new()
        } else {
            movefile_value(renames)
        },
    }]);
    let xml = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PendingTransaction Version=\"3.1\" Identifier=\"0123456789abcdef0123456789abcdef\">\n<POQ postAction=\"reboot\">\n{primitives}\n</POQ>\n</PendingTransaction>\n"
    );
    let list = read_action_list(xml.as_bytes()).unwrap();
    let listed = decode_action_list(&list, LIST, registry.operations.len());
    let replay = replay(
        &[&registry.operations, &listed.operations],
        &volumes,
        ReplayOptions::default(),
    );
    let verdicts = replay
        .outcomes
        .iter()
        .map(|o| o.verdict.to_string())
        .collect();
    let mut operations = registry.operations;
    operations.extend(listed.operations);
    (verdicts, replay, operations)
}

#[test]
fn windows_downdate_hard_links_an_old_kernel_over_the_new_one() {
    let s = Scenario::new();
    s.put("Windows/System32/ntoskrnl.exe", "file_v12.dll");
    s.put("Users/a/Desktop/ntoskrnl.exe", "file_v5.dll");
    let (verdicts, replay, operations) = boot(
        &s,
        &[],
        r#"<HardlinkFile source="\??\C:\Users\a\Desktop\ntoskrnl.exe" destination="\SystemRoot\System32\ntoskrnl.exe"/>"#,
    );
    assert_eq!(verdicts, ["downgrade"]);
    let outcome = &replay.outcomes[0];
    let version = |f: &Option<std::sync::Arc<nextboot::boot::FileFacts>>| {
        f.as_ref()
            .and_then(|f| f.file_version)
            .map(|v| v.to_string())
    };
    let (old, new) = (
        fixture_version("file_v5.dll"),
        fixture_version("file_v12.dll"),
    );
    assert_eq!(version(&outcome.source_file), Some(old.clone()));
    assert_eq!(version(&outcome.target_file), Some(new));
    // Only the destination changes: a hard link leaves its source where it is.
    assert_eq!(replay.changes.len(), 1);
    assert!(replay.changes[0]
        .nt_path()
        .ends_with(r"System32\ntoskrnl.exe"));
    assert_eq!(version(&replay.changes[0].after), Some(old));
    // As the report gives it (docs/contract.md, "Action lists").
    let json = serde_json::to_value(OperationReport {
        operation: &operations[0],
        outcome,
    })
    .unwrap();
    assert_eq!(json["queue"], "action-list");
    assert_eq!(json["value"], serde_json::Value::Null);
    assert!(json.get("string_index").is_none(), "{json}");
    assert_eq!(json["action"], "hardlink");
    assert_eq!(json["verdict"], "downgrade");
    assert_eq!(
        json["action_list"],
        serde_json::json!({"path": LIST, "poq": 0, "element": 0, "line": 4})
    );
}

#[test]
fn the_list_runs_after_the_rename_queue_and_has_the_last_word() {
    let s = Scenario::new();
    s.put("Windows/System32/a.dll", "file_v8.dll");
    s.put("Windows/WinSxS/Temp/PendingRenames/a.dll", "file_v12.dll");
    s.put("Windows/WinSxS/x86_a_1/a.dll", "file_v5.dll");
    let (verdicts, replay, _) = boot(
        &s,
        &[(
            r"\??\C:\Windows\WinSxS\Temp\PendingRenames\a.dll",
            r"!\??\C:\Windows\System32\a.dll",
        )],
        r#"<MoveFile source="C:\Windows\WinSxS\x86_a_1\a.dll" destination="\SystemRoot\System32\a.dll"/>"#,
    );
    // The staged 12 from the rename queue is replaced by the list's 5: the list's move is
    // the final writer, older than the 8 on disk (downgrade, the first rule) and than the 12
    // it overwrote (recorded as M).
    assert_eq!(verdicts, ["superseded", "downgrade"]);
    assert_eq!(replay.outcomes[0].superseded_by, Some(1));
    assert_eq!(
        replay.outcomes[1]
            .overwritten_staged_version
            .map(|v| v.to_string()),
        Some(fixture_version("file_v12.dll"))
    );
}

#[test]
fn created_folders_and_files_are_there_for_what_follows() {
    let s = Scenario::new();
    s.put("Windows/WinSxS/x86_b_1/b.dll", "file_v8.dll");
    let (verdicts, replay, _) = boot(
        &s,
        &[],
        r#"<CreateDirectory path="\SystemRoot\System32\new" fileAttributes="0x10"/>
<MoveFile source="\SystemRoot\WinSxS\x86_b_1\b.dll" destination="\SystemRoot\System32\new\b.dll"/>
<CreateFile path="\SystemRoot\System32\new\empty.txt" fileAttribute="0x80"/>
<CreateFile path="\SystemRoot\System32\new\b.dll"/>
<CreateDirectory path="\SystemRoot\Nowhere\deeper"/>"#,
    );
    assert_eq!(
        verdicts,
        ["new-file", "new-file", "new-file", "no-effect", "no-effect"]
    );
    let reasons: Vec<String> = replay
        .outcomes
        .iter()
        .map(|o| o.reason.to_string())
        .collect();
    assert_eq!(reasons[0], "creates the folder");
    assert_eq!(reasons[2], "creates an empty file");
    assert!(reasons[3].contains("exists already"), "{}", reasons[3]);
    assert!(reasons[4].contains("does not exist"), "{}", reasons[4]);
    let created = replay
        .changes
        .iter()
        .find(|c| c.nt_path().ends_with("empty.txt"))
        .unwrap();
    let after = created.after.as_ref().unwrap();
    assert_eq!(after.size, Some(0));
    assert_eq!(&*after.path, r"\SystemRoot\System32\new\empty.txt");
}

#[test]
fn operations_say_which_list_and_element_they_come_from() {
    let list = read_action_list(
        b"<PendingTransaction><POQ>\n<BeginTransaction id=\"1\"/>\n<SetKeyValue path=\"\\Registry\\Machine\\x\"/>\n<DeleteFile path=\"C:\\x.dll\"/>\n</POQ></PendingTransaction>",
    )
    .unwrap();
    let queue = decode_action_list(&list, LIST, 7);
    assert_eq!(queue.operations.len(), 1);
    let op = &queue.operations[0];
    assert_eq!(op.index, 7);
    assert_eq!(op.action, Action::Delete);
    assert_eq!(op.origin.queue(), QueueSource::ActionList);
    let Origin::ActionList { list, element } = &op.origin else {
        panic!("{:?}", op.origin);
    };
    assert_eq!(list.path, LIST);
    assert_eq!(*element, 2);
    assert_eq!(list.line(op.index), Some(4));
    assert_eq!(list.line(6), None, "before the list's operations");
    assert_eq!(list.line(8), None, "after them");
}

/// Where a list is named: SYSTEM's SetupExecute is read with each control set, beside the
/// rename queue, and an unreadable one does not cost the queue.
#[test]
fn setup_execute_is_read_with_each_control_set() {
    use nextboot::hive::SystemHive;
    use support::regf::{multi_sz, REG_MULTI_SZ};
    let mut spec = support::SystemHiveSpec::new(1);
    spec.control_set(2);
    let command = multi_sz(&[
        r"C:\Windows\System32\poqexec.exe /display_progress \SystemRoot\WinSxS\pending.xml",
    ]);
    spec.writer.value(
        r"ControlSet001\Control\Session Manager",
        "SetupExecute",
        REG_MULTI_SZ,
        &command,
    );
    spec.pending(1, &[(r"\??\C:\a", r"!\??\C:\b")]);
    let system = SystemHive::read(&spec.bytes()).unwrap();
    let first = &system.control_sets[0];
    let setup = first.setup_execute.as_ref().unwrap().as_ref().unwrap();
    assert_eq!((setup.data_type, &setup.bytes), (REG_MULTI_SZ, &command));
    assert_eq!(first.pending.len(), 1);
    assert!(system.control_sets[1].setup_execute.is_none());
}
