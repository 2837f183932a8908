//! `check` on scenario volumes that carry servicing's state: SYSTEM (`SetupExecute`,
//! TrustedInstaller), SOFTWARE (`PoqexecCmdline`), COMPONENTS (`PendingXmlIdentifier`) and
//! action lists, built by `crates/regf-writer` (issue 14; `docs/action-lists.md`). The PE
//! fixtures file_v5, file_v8 and file_v12 are versions 5, 8 and 12 of one DLL.

mod support;

use nextboot_regf_writer::servicing::{
    action_list, components_hive, setup_execute, software_hive, trusted_installer_start,
    POQEXEC_DEFAULT,
};
use serde_json::Value;
use support::{verdicts, Scenario};

/// The identifier servicing would have written for the scenario's own list.
const ID: &str = "5c1b2a3d4e5f60718293a4b5c6d7e8f9";
/// The fixed Identifier and WcpVersion of the public Windows Downdate template.
const TEMPLATE_ID: &str = "916ae75edb30da0146730000dc1be027";
const TEMPLATE_WCP: &str = "10.0.22621.2567";
const WCP: &str = "10.0.22621.3880";
const CONFIG: &str = "Windows/System32/config";
const PENDING: &str = "Windows/WinSxS/pending.xml";

/// Writes SOFTWARE and COMPONENTS into the scenario's config folder.
fn servicing(s: &Scenario, poqexec_cmdline: Option<&[&str]>, identifier: Option<&str>) {
    s.write(
        &format!("{CONFIG}/SOFTWARE"),
        &software_hive(poqexec_cmdline).to_bytes(),
    );
    s.write(
        &format!("{CONFIG}/COMPONENTS"),
        &components_hive(identifier).to_bytes(),
    );
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn finding<'r>(report: &'r Value, code: &str) -> &'r Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {:#}", report["findings"]))
}

fn alerts(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "alert")
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// The rename queue stages `fixture` as SET1.tmp over System32's file.dll.
fn stage_over_file_dll(s: &mut Scenario, fixture: &str) {
    s.put("Windows/System32/SET1.tmp", fixture);
    s.hive.pending(
        1,
        &[(
            r"\??\C:\Windows\System32\SET1.tmp",
            r"!\??\C:\Windows\System32\file.dll",
        )],
    );
}

/// A component directory of the store.
const COMPONENT: &str =
    "amd64_microsoft-windows-file_31bf3856ad364e35_12.0.2195.7_none_0123456789abcdef";

/// A serviced image as DISM leaves it: the default list, named by SetupExecute, gated by
/// COMPONENTS, hard-linking newer files out of the component store.
fn cbs_image(s: &mut Scenario) {
    s.put("Windows/System32/file.dll", "file_v8.dll");
    s.put("Windows/System32/other.dll", "file_v5.dll");
    s.put(
        &format!("Windows/WinSxS/{COMPONENT}/file.dll"),
        "file_v12.dll",
    );
    s.put(
        "Windows/WinSxS/Temp/PendingRenames/0123456789abcdef0123456789abcdef.other.dll",
        "file_v8.dll",
    );
    setup_execute(&mut s.hive, 1, &[POQEXEC_DEFAULT]);
    trusted_installer_start(&mut s.hive, 1, 3);
    servicing(s, None, Some(ID));
    let primitives = format!(
        r#"<BeginTransaction id="1"/>
<HardlinkFile source="\SystemRoot\WinSxS\{COMPONENT}\file.dll" destination="\SystemRoot\System32\file.dll"/>
<MoveFile source="\SystemRoot\WinSxS\Temp\PendingRenames\0123456789abcdef0123456789abcdef.other.dll" destination="\SystemRoot\System32\other.dll"/>
<SetKeyValue path="\Registry\Machine\SOFTWARE\Microsoft\x" name="y" type="0x00000004" encoding="base64" value="AQAAAA=="/>
<Checkpoint/>"#
    );
    s.write(PENDING, &action_list(ID, WCP, &primitives));
}

#[test]
fn a_serviced_image_whose_list_upgrades_components_is_clean() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(verdicts(&report), ["upgrade", "upgrade"]);
    assert!(alerts(&report).is_empty(), "{:#}", report["findings"]);
    let lists = report["action_lists"].as_array().unwrap();
    assert_eq!(lists.len(), 1, "{lists:#?}");
    let list = &lists[0];
    assert_eq!(list["path"], r"\SystemRoot\WinSxS\pending.xml");
    assert_eq!(
        list["registered_by"],
        serde_json::json!(["SetupExecute", "default"])
    );
    assert_eq!(list["runs_next_boot"], true, "{list:#}");
    assert_eq!(list["identifier"], ID);
    assert_eq!(list["components_identifier"], ID);
    assert_eq!(list["primitives"]["HardlinkFile"], 1);
    assert_eq!(list["primitives"]["SetKeyValue"], 1);
    assert_eq!(list["primitives"]["Checkpoint"], 1);
    assert_eq!(list["operations"], 2);
    assert_eq!(list["sha256"].as_str().map(str::len), Some(64));
    let op = &report["operations"][0];
    assert_eq!(op["queue"], "action-list");
    assert_eq!(op["action"], "hardlink");
    assert_eq!(op["value"], Value::Null);
    assert_eq!(op["action_list"]["element"], 1);
    assert_eq!(op["action_list"]["line"], 8);
    // Both hives and the list are inputs of the run.
    let roles: Vec<&str> = report["provenance"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["hive", "software", "components", "action-list"]);
    let hives = report["servicing_hives"].as_array().unwrap();
    assert!(hives.iter().all(|h| h["read"] == true), "{hives:#?}");
}

/// Windows Downdate as published: a list outside WinSxS named only by PoqexecCmdline, with
/// the template's identifier (written to COMPONENTS too), TrustedInstaller set to start
/// automatically, hard-linking an older kernel from a user's folder over System32's.
fn downdate(s: &mut Scenario) {
    s.put("Windows/System32/ntoskrnl.exe", "file_v12.dll");
    s.put("Users/victim/Desktop/ntoskrnl.exe", "file_v5.dll");
    trusted_installer_start(&mut s.hive, 1, 2);
    servicing(
        s,
        Some(&[
            r"\??\C:\Windows\System32\poqexec.exe",
            "/display_progress",
            r"\??\C:\Users\victim\AppData\Local\Temp\pending.xml",
        ]),
        Some(TEMPLATE_ID),
    );
    s.write(
        "Users/victim/AppData/Local/Temp/pending.xml",
        &action_list(
            TEMPLATE_ID,
            TEMPLATE_WCP,
            r#"<HardlinkFile source="\??\C:\Users\victim\Desktop\ntoskrnl.exe" destination="\SystemRoot\System32\ntoskrnl.exe"/>"#,
        ),
    );
}

#[test]
fn windows_downdate_is_a_downgrade_with_alerts() {
    let mut s = Scenario::new();
    downdate(&mut s);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    assert_eq!(verdicts(&report), ["downgrade"]);
    assert_eq!(
        alerts(&report),
        [
            "action-list-attack-template",
            "action-list-outside-winsxs",
            "action-list-source-outside-store"
        ]
    );
    assert!(codes(&report).contains(&"trusted-installer-auto-start".to_string()));
    let list = &report["action_lists"][0];
    assert_eq!(list["registered_by"], serde_json::json!(["PoqexecCmdline"]));
    assert_eq!(list["runs_next_boot"], true);
    let outside = finding(&report, "action-list-source-outside-store");
    assert_eq!(outside["detail"]["count"], 1);
    assert_eq!(
        outside["detail"]["operations"][0]["source"],
        r"\??\C:\Users\victim\Desktop\ntoskrnl.exe"
    );
    let file = &report["files"][0];
    assert!(file["nt_path"]
        .as_str()
        .unwrap()
        .ends_with(r"System32\ntoskrnl.exe"));
    assert_eq!(
        file["after"]["file_version"],
        report["operations"][0]["source_version"]
    );
}

#[test]
fn an_alert_alone_fails_the_default_gate() {
    // The attacker's list only puts the same kind of file in place, newer: no downgrade, but
    // the list is the attack's.
    let mut s = Scenario::new();
    downdate(&mut s);
    s.put("Users/victim/Desktop/ntoskrnl.exe", "file_v12.dll");
    s.put("Windows/System32/ntoskrnl.exe", "file_v8.dll");
    let (status, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["upgrade"]);
    assert_eq!(status, 1, "alerts fail the default --fail-on");
    assert_eq!(s.check(&["--fail-on", "downgrade,overridden"]).0, 0);
    assert_eq!(s.check(&["--fail-on", "alert"]).0, 1);
    assert_eq!(s.check(&["--fail-on", "never"]).0, 0);
}

#[test]
fn the_list_has_the_last_word_over_the_rename_queue() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    // The rename queue stages 5 over file.dll; the list then links the store's 12 there.
    stage_over_file_dll(&mut s, "file_v5.dll");
    let (status, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["superseded", "upgrade", "upgrade"]);
    assert_eq!(report["operations"][0]["queue"], "registry");
    assert_eq!(report["operations"][0]["superseded_by"], 1);
    assert_eq!(report["operations"][1]["index"], 1);
    assert_eq!(status, 0);
    let file = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["nt_path"].as_str().unwrap().ends_with("file.dll"))
        .unwrap();
    assert_eq!(file["operations"], serde_json::json!([0, 1]));
    assert_eq!(file["after"]["file_version"], "12.0.2195.7");
}

#[test]
fn a_list_whose_identifier_differs_from_components_does_not_run() {
    let mut s = Scenario::new();
    downdate(&mut s);
    servicing(
        &s,
        Some(&[r"poqexec.exe \??\C:\Users\victim\AppData\Local\Temp\pending.xml"]),
        Some(ID),
    );
    let (status, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["no-effect"]);
    let reason = report["operations"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("will not run"), "{reason}");
    assert!(reason.contains("Identifier"), "{reason}");
    assert_eq!(report["action_lists"][0]["runs_next_boot"], false);
    let mismatch = finding(&report, "action-list-identifier-mismatch");
    assert_eq!(mismatch["severity"], "warning");
    assert_eq!(mismatch["detail"]["components_identifier"], ID);
    // The template's identifier is still an alert: someone wrote the attack's list.
    assert_eq!(alerts(&report), ["action-list-attack-template"]);
    assert_eq!(status, 1);
    assert_eq!(s.check(&["--fail-on", "downgrade"]).0, 0, "nothing runs");
}

#[test]
fn a_list_that_is_not_well_formed_is_a_finding_with_its_place_and_not_examined() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    s.write(
        PENDING,
        b"<PendingTransaction Identifier=\"x\">\n<POQ>\n<MoveFile source=\"a\" destination=\"b\">\n</POQ>\n",
    );
    stage_over_file_dll(&mut s, "file_v12.dll");
    let (status, report) = s.check(&[]);
    assert_eq!(status, 2, "what the list does is unknown");
    assert_eq!(
        verdicts(&report),
        ["upgrade"],
        "the rename queue is reported"
    );
    let unreadable = finding(&report, "action-list-unreadable");
    assert_eq!(unreadable["detail"]["error"], "not-well-formed");
    assert_eq!(unreadable["detail"]["line"], 4);
    assert!(unreadable["detail"]["column"].as_u64().unwrap() > 0);
    assert_eq!(report["action_lists"][0]["runs_next_boot"], false);
    assert_eq!(report["not_examined"].as_array().unwrap().len(), 1);
}

#[test]
fn registry_primitives_are_counted_not_replayed() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    s.write(
        PENDING,
        &action_list(
            ID,
            WCP,
            r#"<CreateKey path="\Registry\Machine\SOFTWARE\a"/>
<SetKeyValue path="\Registry\Machine\SOFTWARE\a" name="b"/>
<SetKeySecurity path="\Registry\Machine\SOFTWARE\a"/>
<DeleteKeyValue path="\Registry\Machine\SOFTWARE\a" name="b"/>
<DeleteKey path="\Registry\Machine\SOFTWARE\a"/>
<SetFileInformation path="\SystemRoot\System32\file.dll" flags="0"/>
<Frobnicate path="x"/>"#,
        ),
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0, "{report:#}");
    assert!(verdicts(&report).is_empty());
    let list = &report["action_lists"][0];
    for name in [
        "CreateKey",
        "SetKeyValue",
        "SetKeySecurity",
        "DeleteKeyValue",
        "DeleteKey",
        "SetFileInformation",
        "Frobnicate",
    ] {
        assert_eq!(list["primitives"][name], 1, "{name}: {list:#}");
    }
    assert_eq!(list["operations"], 0);
    let notes = list["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("Frobnicate")),
        "{notes:?}"
    );
}

#[test]
fn fifty_thousand_primitives_are_numbered_after_the_rename_queue() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    let mut primitives = String::new();
    for i in 0..50_000 {
        primitives.push_str(&format!(
            "<DeleteFile path=\"\\SystemRoot\\WinSxS\\Temp\\PendingDeletes\\{i:08x}.dll\"/>\n"
        ));
    }
    s.write(PENDING, &action_list(ID, WCP, &primitives));
    s.hive.pending(1, &[(r"\??\C:\Windows\Temp\x.log", "")]);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0);
    let ops = report["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 50_001);
    assert_eq!(ops[50_000]["index"], 50_000);
    assert_eq!(ops[50_000]["action_list"]["element"], 49_999);
    assert_eq!(report["summary"]["no-effect"], 50_001);
}

#[test]
fn a_list_named_only_by_a_control_set_that_does_not_boot_next_does_not_run() {
    let mut s = Scenario::new();
    s.hive.control_set(2);
    s.put("Windows/System32/file.dll", "file_v12.dll");
    s.put("Windows/Temp/old/file.dll", "file_v5.dll");
    setup_execute(
        &mut s.hive,
        2,
        &[r"C:\Windows\System32\poqexec.exe /display_progress C:\Windows\Temp\old\pending.xml"],
    );
    servicing(&s, None, Some(ID));
    s.write(
        "Windows/Temp/old/pending.xml",
        &action_list(
            ID,
            WCP,
            r#"<MoveFile source="C:\Windows\Temp\old\file.dll" destination="C:\Windows\System32\file.dll"/>"#,
        ),
    );
    let (status, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["no-effect"]);
    let list = &report["action_lists"][0];
    assert_eq!(list["setup_execute_control_sets"], serde_json::json!([2]));
    assert!(
        list["why"].as_str().unwrap().contains("ControlSet002"),
        "{list:#}"
    );
    assert_eq!(status, 0);
    // Booting ControlSet002 runs it, and it downgrades.
    let (status, report) = s.check(&["--control-set", "2"]);
    assert_eq!(verdicts(&report), ["downgrade"]);
    assert_eq!(status, 1);
    assert_eq!(
        alerts(&report),
        [
            "action-list-outside-winsxs",
            "action-list-source-outside-store"
        ]
    );
}

#[test]
fn missing_servicing_hives_are_findings_and_the_rename_queue_is_still_reported() {
    let mut s = Scenario::new();
    s.put("Windows/System32/file.dll", "file_v12.dll");
    stage_over_file_dll(&mut s, "file_v8.dll");
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    assert_eq!(verdicts(&report), ["downgrade"]);
    assert_eq!(
        finding(&report, "software-hive-missing")["severity"],
        "warning"
    );
    // No list to gate: COMPONENTS would have changed nothing.
    assert_eq!(
        finding(&report, "components-hive-missing")["severity"],
        "info"
    );
    // A list at the default place, COMPONENTS absent: assumed to run, and said so.
    s.put(
        &format!("Windows/WinSxS/{COMPONENT}/file.dll"),
        "file_v5.dll",
    );
    s.write(
        PENDING,
        &action_list(
            ID,
            WCP,
            &format!(r#"<HardlinkFile source="\SystemRoot\WinSxS\{COMPONENT}\file.dll" destination="\SystemRoot\System32\file.dll"/>"#),
        ),
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["superseded", "downgrade"]);
    assert_eq!(
        finding(&report, "components-hive-missing")["severity"],
        "warning"
    );
    let why = report["action_lists"][0]["why"].as_str().unwrap();
    assert!(why.contains("assumed"), "{why}");
}

#[test]
fn hives_named_on_the_command_line_are_used_and_kept_as_evidence() {
    let mut s = Scenario::new();
    downdate(&mut s);
    let elsewhere = tempfile::tempdir().unwrap();
    for name in ["SOFTWARE", "COMPONENTS"] {
        std::fs::rename(
            s.root().join(CONFIG).join(name),
            elsewhere.path().join(name.to_lowercase()),
        )
        .unwrap();
    }
    let (_, report) = s.check(&[]);
    assert!(report["action_lists"].as_array().unwrap().is_empty());
    let software = elsewhere.path().join("software");
    let components = elsewhere.path().join("components");
    let (status, report) = s.check(&[
        "--software",
        software.to_str().unwrap(),
        "--components",
        components.to_str().unwrap(),
    ]);
    assert_eq!(status, 1);
    assert_eq!(verdicts(&report), ["downgrade"]);
    // An output file may not go beside them.
    let out = elsewhere.path().join("fix.reg");
    let (status, _, stderr) = support::nextboot(&[
        "fix".as_ref(),
        s.root().as_os_str(),
        "--software".as_ref(),
        software.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(status, 2, "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_list_path_that_leaves_the_volume_or_is_a_link_is_not_followed() {
    let mut s = Scenario::new();
    downdate(&mut s);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("pending.xml"),
        action_list(
            TEMPLATE_ID,
            TEMPLATE_WCP,
            r#"<DeleteFile path="\SystemRoot\System32\ntoskrnl.exe"/>"#,
        ),
    )
    .unwrap();
    let list = s.root().join("Users/victim/AppData/Local/Temp/pending.xml");
    std::fs::remove_file(&list).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path().join("pending.xml"), &list).unwrap();
    let (_, report) = s.check(&[]);
    assert!(verdicts(&report).is_empty(), "{:#}", report["operations"]);
    // A link is resolved inside the volume it is on: its absolute target names a path of
    // this volume, where there is no such list.
    let why = report["action_lists"][0]["why"].as_str().unwrap();
    assert!(why.contains("does not exist"), "{why}");
    // `..` does not climb out either.
    servicing(
        &s,
        Some(&[r"poqexec.exe \??\C:\..\..\pending.xml"]),
        Some(TEMPLATE_ID),
    );
    let (status, report) = s.check(&[]);
    assert!(verdicts(&report).is_empty());
    assert_eq!(
        status, 2,
        "a registered list that cannot be found is not examined"
    );
    assert!(codes(&report).contains(&"action-list-unreadable".to_string()));
}

#[test]
fn a_dirty_components_hive_without_logs_is_not_accepted_silently() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    let mut dirty = components_hive(Some(ID));
    dirty.sequence_numbers(5, 4);
    s.write(&format!("{CONFIG}/COMPONENTS"), &dirty.to_bytes());
    let (status, report) = s.check(&[]);
    assert_eq!(status, 2);
    let components = &report["servicing_hives"][1];
    assert_eq!(components["role"], "components");
    assert_eq!(components["incomplete"], true);
    assert_eq!(s.check(&["--allow-dirty"]).0, 0);
}

#[test]
fn every_format_carries_the_lists() {
    let mut s = Scenario::new();
    downdate(&mut s);
    s.write_hive();
    let root = s.root().as_os_str();
    let run = |format: &str| {
        let (status, stdout, stderr) =
            support::nextboot(&["check".as_ref(), root, "--format".as_ref(), format.as_ref()]);
        assert_eq!(status, 1, "{format}: {stderr}");
        stdout
    };
    let table = run("table");
    for expected in [
        "Action list  \\??\\C:\\Users\\victim\\AppData\\Local\\Temp\\pending.xml  (registered by PoqexecCmdline)",
        "runs at the next boot",
        "HardlinkFile 1",
        "ALERT: ",
        "(\\??\\C:\\Users\\victim\\AppData\\Local\\Temp\\pending.xml element 0, line 7)",
    ] {
        assert!(table.contains(expected), "missing {expected:?} in:\n{table}");
    }
    let line: Value = serde_json::from_str(run("jsonl").lines().next().unwrap()).unwrap();
    assert_eq!(line["queue"], "action-list");
    assert_eq!(line["action_list"]["line"], 7);
    let csv = run("csv");
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("0,,hardlink,"), "{row}");
    let yaml = run("yaml");
    assert!(yaml.contains("action_lists:"), "{yaml}");
    assert!(yaml.contains("runs_next_boot: true"), "{yaml}");
}

/// The servicing hives as written read back with hivex: the values the gate depends on.
#[test]
fn servicing_hives_read_back_with_hivex() {
    let mut s = Scenario::new();
    downdate(&mut s);
    let software = s.root().join(CONFIG).join("SOFTWARE");
    let output = match std::process::Command::new("hivexget")
        .arg(&software)
        .arg(nextboot_regf_writer::servicing::SIDE_BY_SIDE_CONFIGURATION)
        .arg("PoqexecCmdline")
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            assert!(std::env::var_os("CI").is_none(), "hivexget: {err}");
            support::skip("servicing hives with hivex", "hivexget is not installed");
            return;
        }
    };
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l == r"\??\C:\Users\victim\AppData\Local\Temp\pending.xml"),
        "{text}"
    );
    let (_, report) = s.check(&[]);
    let software_values = &report["servicing_hives"][0]["values"];
    assert_eq!(software_values[0]["name"], "PoqexecCmdline");
    assert_eq!(
        software_values[0]["data"][2],
        r"\??\C:\Users\victim\AppData\Local\Temp\pending.xml"
    );
}

/// The `.reg` sections under `key` (a hive's load key), as a file hivexregedit merges.
fn sections_under(reg: &str, key: &str) -> String {
    let mut out = String::from("Windows Registry Editor Version 5.00\n\n");
    let mut inside = false;
    for line in reg.lines() {
        if let Some(header) = line.strip_prefix('[') {
            inside = header.starts_with(key);
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn fix_can_disable_a_list_with_alerts_as_microsofts_recovery_does() {
    let mut s = Scenario::new();
    downdate(&mut s);
    s.write_hive();
    let out_dir = tempfile::tempdir().unwrap();
    let fix = |extra: &[&str], name: &str| {
        let out = out_dir.path().join(name);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "fix".as_ref(),
            s.root().as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let (status, stdout, stderr) = support::nextboot(&args);
        assert_eq!(status, 0, "{stderr}");
        (stdout, support::reg_text(&std::fs::read(out).unwrap()))
    };
    let (stdout, reg) = fix(&[], "plain.reg");
    assert!(
        stdout.contains("--disable-action-list also disables it"),
        "{stdout}"
    );
    assert!(!reg.contains("PendingXmlIdentifier\"=-"), "{reg}");
    let (stdout, reg) = fix(&["--disable-action-list"], "disable.reg");
    assert!(stdout.contains("disabled the action list"), "{stdout}");
    assert!(stdout.contains("after the fix: 0 downgrade"), "{stdout}");
    for expected in [
        "[HKEY_LOCAL_MACHINE\\NB_COMPONENTS]\r\n\"PendingXmlIdentifier\"=-",
        "[HKEY_LOCAL_MACHINE\\NB_SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\SideBySide\\Configuration]\r\n\"PoqexecCmdline\"=-",
        "reg load \"HKLM\\NB_COMPONENTS\" X:\\Windows\\System32\\config\\COMPONENTS",
    ] {
        assert!(reg.contains(expected), "missing {expected:?} in:\n{reg}");
    }
    // Applied with hivex to the image's hives, the boot no longer runs the list.
    let merge = |hive: &str, key: &str| -> bool {
        let file = out_dir.path().join(format!("{hive}.reg"));
        std::fs::write(&file, sections_under(&reg.replace("\r\n", "\n"), key)).unwrap();
        match std::process::Command::new("hivexregedit")
            .args(["--merge", "--prefix", key])
            .arg(s.root().join(CONFIG).join(hive))
            .arg(&file)
            .status()
        {
            Ok(status) => {
                assert!(status.success(), "hivexregedit --merge {hive}");
                true
            }
            Err(err) => {
                assert!(std::env::var_os("CI").is_none(), "hivexregedit: {err}");
                support::skip(
                    "fix --disable-action-list round trip",
                    "hivexregedit is missing",
                );
                false
            }
        }
    };
    if !merge("COMPONENTS", "HKEY_LOCAL_MACHINE\\NB_COMPONENTS")
        || !merge("SOFTWARE", "HKEY_LOCAL_MACHINE\\NB_SOFTWARE")
    {
        return;
    }
    let (status, report) = s.check(&[]);
    assert!(
        report["action_lists"].as_array().unwrap().is_empty(),
        "PoqexecCmdline is gone, so nothing names the list: {:#}",
        report["action_lists"]
    );
    assert!(verdicts(&report).is_empty());
    assert_eq!(status, 0);
}

#[test]
fn a_huge_or_deeply_nested_list_is_a_finding_not_a_crash() {
    let mut s = Scenario::new();
    cbs_image(&mut s);
    // 200 MB, sparse: no disk is used, and the reader refuses it before reading.
    let list = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(s.root().join(PENDING))
        .unwrap();
    list.set_len(200 << 20).unwrap();
    drop(list);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 2);
    assert_eq!(
        finding(&report, "action-list-unreadable")["detail"]["error"],
        "too-large"
    );
    // 10,000 elements deep.
    let mut deep = format!("<PendingTransaction Identifier=\"{ID}\"><POQ>");
    deep.push_str(&"<a>".repeat(10_000));
    deep.push_str(&"</a>".repeat(10_000));
    deep.push_str("</POQ></PendingTransaction>");
    s.write(PENDING, deep.as_bytes());
    let (status, report) = s.check(&[]);
    assert_eq!(status, 2);
    let deep = finding(&report, "action-list-unreadable");
    assert_eq!(deep["detail"]["error"], "too-deep");
    assert_eq!(deep["detail"]["line"], 1);
}

#[test]
fn a_one_string_poqexec_cmdline_and_dont_run_in_smss_are_read_and_said() {
    let mut s = Scenario::new();
    downdate(&mut s);
    // PoqexecCmdline as one command line, and DontRunPoqexecInSmss set.
    let software = |command: &str| {
        let mut software = software_hive(Some(&[command]));
        software.value(
            nextboot_regf_writer::servicing::SIDE_BY_SIDE_CONFIGURATION,
            "DontRunPoqexecInSmss",
            support::regf::REG_DWORD,
            &1u32.to_le_bytes(),
        );
        s.write(&format!("{CONFIG}/SOFTWARE"), &software.to_bytes());
    };
    software(
        r#""C:\Windows\System32\poqexec.exe" /display_progress "%SystemRoot%\..\Users\victim\AppData\Local\Temp\pending.xml""#,
    );
    let (status, report) = s.check(&[]);
    // `..` is not followed: the list named this way is not found, and not examined.
    assert_eq!(status, 2, "{:#}", report["action_lists"]);
    assert!(report["action_lists"][0]["path"]
        .as_str()
        .unwrap()
        .starts_with(r"\SystemRoot\..\Users"));
    // The same command without `..`: found, run, and the assumption said.
    software(
        r#""C:\Windows\System32\poqexec.exe" /display_progress "\??\C:\Users\victim\AppData\Local\Temp\pending.xml""#,
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    assert_eq!(verdicts(&report), ["downgrade"]);
    let why = report["action_lists"][0]["why"].as_str().unwrap();
    assert!(why.contains("DontRunPoqexecInSmss"), "{why}");
    let values = &report["servicing_hives"][0]["values"];
    assert_eq!(values[1]["name"], "DontRunPoqexecInSmss");
    assert_eq!(values[1]["data"], 1);
}
