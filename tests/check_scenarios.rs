//! End-to-end `check` on scenario volumes: the seed scenarios of KB 815062 and the
//! overridden fix, and each rule of the boot replay.

mod support;

use support::{verdicts, Scenario, SystemHiveSpec, PFRO2};

const SYS32: &str = "\\??\\C:\\Windows\\System32";

fn sys32(name: &str) -> String {
    format!("{SYS32}\\{name}")
}

fn replace(path: &str) -> String {
    format!("!{path}")
}

#[test]
fn kb815062_older_staged_file_over_newer_copy_is_a_downgrade() {
    // Hotfix A staged v8 while the file was in use; hotfix B then copied v12 directly.
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1, "a downgrade fails the default --fail-on");
    let op = &report["operations"][0];
    assert_eq!(op["verdict"], "downgrade");
    assert_eq!(op["action"], "rename");
    assert_eq!(op["source"], sys32("SET1.tmp"));
    assert_eq!(op["destination"], replace(&sys32("File.dll")));
    assert_eq!(op["replace_existing"], true);
    assert_eq!(op["source_version"], "8.0.2195.6");
    assert_eq!(op["target_version"], "12.0.2195.7");
    assert_eq!(report["summary"]["downgrade"], 1);
    assert_eq!(report["summary"]["overridden"], 0);
    assert_eq!(report["summary"]["operations"], 1);
    // The file's before and after.
    let file = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["nt_path"] == sys32("File.dll"))
        .expect("the target is listed among changed files");
    assert_eq!(file["before"]["file_version"], "12.0.2195.7");
    assert_eq!(file["after"]["file_version"], "8.0.2195.6");
}

#[test]
fn two_fixes_for_one_target_lose_the_newer_one() {
    // Disk has 0.1; fix 1 queues 0.3, fix 2 queues 0.2: the target ends at 0.2, newer than
    // disk, but the 0.3 fix is lost.
    let mut s = Scenario::new();
    s.put("Windows/System32/fix.dll", "fix_v0_1.dll");
    s.put("Windows/System32/SETA.tmp", "fix_v0_3.dll");
    s.put("Windows/System32/SETB.tmp", "fix_v0_2.dll");
    s.hive.pending(
        1,
        &[
            (&sys32("SETA.tmp"), &replace(&sys32("fix.dll"))),
            (&sys32("SETB.tmp"), &replace(&sys32("fix.dll"))),
        ],
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    assert_eq!(verdicts(&report), ["superseded", "overridden"]);
    let last = &report["operations"][1];
    assert_eq!(last["source_version"], "0.2.0.0");
    assert_eq!(last["target_version"], "0.1.0.0");
    assert_eq!(last["overwritten_staged_version"], "0.3.0.0");
    assert_eq!(report["operations"][0]["superseded_by"], 1);
    assert_eq!(report["summary"]["overridden"], 1);
}

#[test]
fn chain_of_three_on_one_target_ending_newest_is_an_upgrade() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v5.dll");
    s.put("Windows/System32/T1.tmp", "file_v5.dll");
    s.put("Windows/System32/T2.tmp", "file_v8.dll");
    s.put("Windows/System32/T3.tmp", "file_v12.dll");
    let target = replace(&sys32("File.dll"));
    s.hive.pending(
        1,
        &[
            (&sys32("T1.tmp"), &target),
            (&sys32("T2.tmp"), &target),
            (&sys32("T3.tmp"), &target),
        ],
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0);
    assert_eq!(verdicts(&report), ["superseded", "superseded", "upgrade"]);
}

#[test]
fn chain_of_three_ending_older_than_the_middle_is_overridden() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v5.dll");
    s.put("Windows/System32/T1.tmp", "file_v12.dll");
    s.put("Windows/System32/T2.tmp", "file_v5.dll");
    s.put("Windows/System32/T3.tmp", "file_v8.dll");
    let target = replace(&sys32("File.dll"));
    s.hive.pending(
        1,
        &[
            (&sys32("T1.tmp"), &target),
            (&sys32("T2.tmp"), &target),
            (&sys32("T3.tmp"), &target),
        ],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(
        verdicts(&report),
        ["superseded", "superseded", "overridden"]
    );
    assert_eq!(
        report["operations"][2]["overwritten_staged_version"],
        "12.0.2195.7"
    );
}

#[test]
fn missing_replace_flag_with_destination_present_has_no_effect() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &sys32("File.dll"))]);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0);
    let op = &report["operations"][0];
    assert_eq!(op["verdict"], "no-effect");
    assert_eq!(op["replace_existing"], false);
    assert!(op["reason"].as_str().unwrap().contains("replace"));
    // Nothing changed: the file list is empty.
    assert_eq!(report["files"].as_array().unwrap().len(), 0);
}

#[test]
fn missing_source_has_no_effect() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.hive
        .pending(1, &[(&sys32("GONE.tmp"), &replace(&sys32("File.dll")))]);
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["no-effect"]);
    assert_eq!(
        report["operations"][0]["source_version"],
        serde_json::Value::Null
    );
    assert_eq!(report["operations"][0]["target_version"], "12.0.2195.7");
}

#[test]
fn source_moved_away_earlier_reports_its_disk_version() {
    let mut s = Scenario::new();
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[
            (&sys32("SET1.tmp"), &sys32("first.dll")),
            (&sys32("SET1.tmp"), &sys32("second.dll")),
        ],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["new-file", "no-effect"]);
    assert_eq!(report["operations"][1]["source_version"], "8.0.2195.6");
}

#[test]
fn deletes_of_files_and_directories() {
    let mut s = Scenario::new();
    s.put("Windows/Temp/old.dll", "file_v5.dll");
    s.mkdir("Windows/Temp/empty");
    s.put("Windows/Temp/full/inner.dll", "file_v5.dll");
    s.hive.pending(
        1,
        &[
            ("\\??\\C:\\Windows\\Temp\\old.dll", ""),
            ("\\??\\C:\\Windows\\Temp\\old.dll", ""),
            ("\\??\\C:\\Windows\\Temp\\empty", ""),
            ("\\??\\C:\\Windows\\Temp\\full", ""),
            // Emptied by the operation before it, then deleted.
            ("\\??\\C:\\Windows\\Temp\\full\\inner.dll", ""),
            ("\\??\\C:\\Windows\\Temp\\full\\", ""),
        ],
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0);
    assert_eq!(
        verdicts(&report),
        [
            "delete",
            "no-effect",
            "delete",
            "no-effect",
            "delete",
            "delete"
        ]
    );
    let op = &report["operations"][0];
    assert_eq!(op["action"], "delete");
    assert_eq!(op["destination"], serde_json::Value::Null);
    assert_eq!(op["source_version"], "5.0.2195.1");
    assert!(report["operations"][3]["reason"]
        .as_str()
        .unwrap()
        .contains("not empty"));
}

#[test]
fn target_that_does_not_exist_yet_is_a_new_file() {
    let mut s = Scenario::new();
    s.put("Windows/System32/SET9.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET9.tmp"), &sys32("brand_new.dll"))]);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0);
    assert_eq!(verdicts(&report), ["new-file"]);
    assert_eq!(
        report["operations"][0]["target_version"],
        serde_json::Value::Null
    );
}

#[test]
fn destination_folder_that_does_not_exist_has_no_effect() {
    let mut s = Scenario::new();
    s.put("Windows/System32/SET9.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[(&sys32("SET9.tmp"), "\\??\\C:\\Windows\\NoSuchDir\\x.dll")],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["no-effect"]);
    assert!(report["operations"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("folder"));
}

#[test]
fn rename_never_replaces_a_directory() {
    let mut s = Scenario::new();
    s.put("Windows/System32/SET9.tmp", "file_v8.dll");
    s.mkdir("Windows/System32/adir");
    s.hive
        .pending(1, &[(&sys32("SET9.tmp"), &replace(&sys32("adir")))]);
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["no-effect"]);
}

#[test]
fn a_moved_folder_carries_its_files() {
    // The folder moves first; later operations find its files under the new name only.
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Staging/New.dll", "file_v5.dll");
    s.put("Staging/Other.dll", "file_v8.dll");
    s.hive.pending(
        1,
        &[
            ("\\??\\C:\\Staging", "\\??\\C:\\Moved"),
            ("\\??\\C:\\Moved\\New.dll", &replace(&sys32("File.dll"))),
            ("\\??\\C:\\Staging\\Other.dll", &sys32("Other.dll")),
        ],
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    let verdicts = verdicts(&report);
    assert_eq!(
        verdicts[1], "downgrade",
        "New.dll is found in the moved folder"
    );
    assert_eq!(report["operations"][1]["source_version"], "5.0.2195.1");
    assert_eq!(verdicts[2], "no-effect", "Other.dll left with its folder");
    assert!(report["operations"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("no longer exists"));
}

#[test]
fn queue_case_differs_from_disk_case() {
    // Windows wrote upper case; the Linux mount keeps the on-disk spelling.
    let mut s = Scenario::new();
    s.put("Windows/System32/drivers/File.dll", "file_v12.dll");
    s.put("Windows/System32/drivers/set1a01.TMP", "file_v8.dll");
    s.hive.pending(
        1,
        &[(
            "\\??\\C:\\WINDOWS\\system32\\DRIVERS\\SET1A01.tmp",
            "!\\??\\C:\\WINDOWS\\SYSTEM32\\DRIVERS\\FILE.DLL",
        )],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["downgrade"]);
    let target = report["operations"][0]["target_file"]["path"]
        .as_str()
        .unwrap();
    assert!(
        target.ends_with("Windows/System32/drivers/File.dll"),
        "{target}"
    );
}

#[test]
fn names_differing_only_by_case_are_not_guessed() {
    let mut s = Scenario::new();
    s.put("Windows/System32/file.dll", "file_v12.dll");
    s.put("Windows/System32/FILE.dll", "file_v5.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["unresolved"]);
    assert!(report["operations"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("differ only by case"));
}

#[test]
fn next_boot_uses_select_default_not_current() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.put("Windows/System32/SET2.tmp", "file_v12.dll");
    s.hive = SystemHiveSpec::new(1);
    s.hive.control_set(2).select(1, 2, 1);
    s.hive
        .pending(1, &[(&sys32("SET2.tmp"), &replace(&sys32("File.dll")))]);
    s.hive
        .pending(2, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);

    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    assert_eq!(report["control_set"]["used"], 2);
    assert_eq!(report["control_set"]["default"], 2);
    assert_eq!(report["control_set"]["current"], 1);
    assert_eq!(verdicts(&report), ["downgrade"]);
    let other = &report["other_control_sets"][0];
    assert_eq!(other["control_set"], 1);
    assert_eq!(other["operations"], 1);
    assert_eq!(other["same_as_used"], false);

    let (status, report) = s.check(&["--control-set", "current"]);
    assert_eq!(status, 0);
    assert_eq!(report["control_set"]["used"], 1);
    assert_eq!(verdicts(&report), ["same-version"]);

    let (_, report) = s.check(&["--control-set", "2"]);
    assert_eq!(report["control_set"]["used"], 2);

    let (status, _) = nextboot_status(&s, &["--control-set", "7"]);
    assert_eq!(
        status, 2,
        "a control set that is not in the hive cannot be examined"
    );
}

fn nextboot_status(s: &Scenario, args: &[&str]) -> (i32, String) {
    s.write_hive();
    let mut all: Vec<&std::ffi::OsStr> = vec!["check".as_ref(), s.root().as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let (status, _, stderr) = support::nextboot(&all);
    (status, stderr)
}

#[test]
fn control_set_numbers_above_two() {
    let mut s = Scenario::new();
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive = SystemHiveSpec::new(47);
    s.hive.pending(47, &[(&sys32("SET1.tmp"), &sys32("x.dll"))]);
    let (_, report) = s.check(&[]);
    assert_eq!(report["control_set"]["used"], 47);
    assert_eq!(verdicts(&report), ["new-file"]);
}

#[test]
fn unversioned_files_are_not_compared() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "no_version.dll");
    s.put("Windows/System32/notes.txt", "no_version.dll");
    s.write("Windows/System32/SET2.tmp", b"plain text, not a PE file");
    s.hive.pending(
        1,
        &[
            (&sys32("SET1.tmp"), &replace(&sys32("File.dll"))),
            (&sys32("SET2.tmp"), &replace(&sys32("notes.txt"))),
        ],
    );
    let (status, report) = s.check(&[]);
    assert_eq!(status, 0);
    assert_eq!(verdicts(&report), ["unversioned", "unversioned"]);
    let reason = report["operations"][0]["source_file"]["unversioned_reason"]
        .as_str()
        .unwrap();
    assert_eq!(reason, "no version resource");
    let reason = report["operations"][1]["source_file"]["unversioned_reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("not a PE file"), "{reason}");
}

#[test]
fn versions_compare_major_first() {
    // pelite's VS_VERSION ordering would call 10.0.19041.1 older than 6.3.9600.20000.
    let mut s = Scenario::new();
    s.put("Windows/System32/a.dll", "ordering_10_0.dll");
    s.put("Windows/System32/A.tmp", "ordering_6_3.dll");
    s.put("Windows/System32/b.dll", "ordering_6_3.dll");
    s.put("Windows/System32/B.tmp", "ordering_10_0.dll");
    s.hive.pending(
        1,
        &[
            (&sys32("A.tmp"), &replace(&sys32("a.dll"))),
            (&sys32("B.tmp"), &replace(&sys32("b.dll"))),
        ],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["downgrade", "upgrade"]);
}

#[test]
fn binary_version_is_compared_not_the_string() {
    let mut s = Scenario::new();
    s.put("Windows/System32/x.dll", "file_v5.dll");
    s.put("Windows/System32/X.tmp", "string_disagrees.dll");
    s.hive
        .pending(1, &[(&sys32("X.tmp"), &replace(&sys32("x.dll")))]);
    let (_, report) = s.check(&[]);
    let op = &report["operations"][0];
    // Binary 2.0.0.0 < 5.0.2195.1 although the string says 1.9.9.9.
    assert_eq!(op["verdict"], "downgrade");
    assert_eq!(op["source_version"], "2.0.0.0");
    assert_eq!(
        op["source_file"]["file_version_string"],
        "1.9.9.9 (winmain.160101-0800)"
    );
    assert_eq!(op["source_file"]["product_version"], "3.1.0.0");
}

#[test]
fn pe32_files_are_read_too() {
    let mut s = Scenario::new();
    s.put("Windows/SysWOW64/x.dll", "pe32_v7.dll");
    s.put("Windows/SysWOW64/X.tmp", "file_v5.dll");
    s.hive.pending(
        1,
        &[(
            "\\??\\C:\\Windows\\SysWOW64\\X.tmp",
            "!\\??\\C:\\Windows\\SysWOW64\\x.dll",
        )],
    );
    let (_, report) = s.check(&[]);
    let op = &report["operations"][0];
    assert_eq!(op["verdict"], "downgrade");
    assert_eq!(op["target_file"]["pe_format"], "PE32");
    assert_eq!(op["source_file"]["pe_format"], "PE32+");
}

#[test]
fn queue_split_across_both_values_pairs_through_the_shared_slot() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.put("Windows/System32/old.log", "no_version.dll");
    // PFRO ends with a lone source; its destination is the first string of PFRO2.
    s.hive.pending_raw(
        1,
        support::PFRO,
        &support::utf16(&format!(
            "{}\0\0{}\0\0",
            sys32("old.log"),
            sys32("SET1.tmp")
        )),
    );
    s.hive.pending_raw(
        1,
        PFRO2,
        &support::utf16(&format!("{}\0\0", replace(&sys32("File.dll")))),
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["delete", "downgrade"]);
    let op = &report["operations"][1];
    assert_eq!(op["value"], "PendingFileRenameOperations");
    assert!(op["notes"][0].as_str().unwrap().contains(PFRO2));
}

#[test]
fn star_prefixes_as_windows_writes_them() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[(
            &format!("*1{}", sys32("SET1.tmp")),
            &format!("*1!{}", sys32("File.dll")),
        )],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["downgrade"]);
    assert_eq!(
        report["operations"][0]["destination"],
        format!("*1!{}", sys32("File.dll"))
    );
}

#[test]
fn system_drive_and_other_drives() {
    // In Windows PE the broken system is D: while the queue says C:; a second volume is E:.
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("Staging")).unwrap();
    std::fs::copy(
        support::pe("file_v8.dll"),
        other.path().join("Staging/SET1.tmp"),
    )
    .unwrap();
    s.hive.pending(
        1,
        &[
            ("\\??\\E:\\Staging\\SET1.tmp", &replace(&sys32("File.dll"))),
            ("\\??\\F:\\x.tmp", &sys32("y.dll")),
        ],
    );
    let drive = format!("E:={}", other.path().display());
    let (_, report) = s.check(&["--drive", &drive]);
    assert_eq!(verdicts(&report), ["downgrade", "unresolved"]);
    assert!(report["operations"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("F:"));

    // The same volume called D: by the queue: C: is now unmapped.
    let (_, report) = s.check(&["--drive", &drive, "--system-drive", "D:"]);
    assert_eq!(verdicts(&report), ["unresolved", "unresolved"]);
}

#[test]
fn hive_alone_decodes_the_queue_with_unresolved_verdicts() {
    let mut s = Scenario::new();
    s.hive.pending(
        1,
        &[
            (&sys32("SET1.tmp"), &replace(&sys32("File.dll"))),
            (&sys32("x"), ""),
        ],
    );
    let hive = s.write_hive();
    let (status, stdout, _) = support::nextboot(&[
        "check".as_ref(),
        "--hive".as_ref(),
        hive.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(status, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verdicts(&report), ["unresolved", "unresolved"]);
    assert_eq!(report["operations"][1]["action"], "delete");
    assert_eq!(report["volumes"].as_array().unwrap().len(), 0);
}

#[test]
fn fail_on_chooses_what_fails() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);
    assert_eq!(s.check(&["--fail-on", "never"]).0, 0);
    assert_eq!(s.check(&["--fail-on", "upgrade"]).0, 0);
    assert_eq!(s.check(&["--fail-on", "upgrade,downgrade"]).0, 1);
    assert_eq!(nextboot_status(&s, &["--fail-on", "sideways"]).0, 2);
}

#[test]
fn dirty_hive_prints_the_report_then_exits_2_unless_allowed() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);
    s.hive.writer.sequence_numbers(9, 8);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 2);
    assert_eq!(report["hive"]["dirty"], true);
    assert_eq!(report["hive"]["primary_sequence"], 9);
    assert_eq!(verdicts(&report), ["downgrade"]);
    let (status, report) = s.check(&["--allow-dirty"]);
    assert_eq!(status, 1);
    assert_eq!(report["hive"]["dirty"], true);
    // The table says so too.
    let (_, stdout, _) = support::nextboot(&["check".as_ref(), s.root().as_os_str()]);
    assert!(stdout.contains("DIRTY"), "{stdout}");
}

#[test]
fn hash_modes() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);
    let hive_sha = |report: &serde_json::Value| report["hive"]["sha256"].clone();
    let (_, report) = s.check(&[]);
    let expected = nextboot::evidence::sha256_hex(&s.hive.bytes());
    assert_eq!(hive_sha(&report), expected.as_str());
    assert_eq!(
        report["operations"][0]["source_file"]["sha256"],
        serde_json::Value::Null
    );
    let (_, report) = s.check(&["--hash", "all"]);
    let file_sha =
        nextboot::evidence::sha256_hex(&std::fs::read(support::pe("file_v8.dll")).unwrap());
    assert_eq!(
        report["operations"][0]["source_file"]["sha256"],
        file_sha.as_str()
    );
    let (_, report) = s.check(&["--hash", "none"]);
    assert_eq!(hive_sha(&report), serde_json::Value::Null);
}
