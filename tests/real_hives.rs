//! The real Windows hives in `../shared/hives`: decoded queues must equal what an independent
//! reader (Debian's `hivexget`) reports for the raw value, and odd hives must give clear
//! outcomes. Skipped with a message when `../shared` is absent.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use nextboot::hive::{ControlSetChoice, SystemHive};
use nextboot::queue::{decode_registry, Action};

/// hivexget's strings for a REG_MULTI_SZ value (it prints one per line, and one extra empty
/// string for the list terminator).
fn hivexget_strings(hive: &Path, key: &str, value: &str) -> Option<Vec<String>> {
    let output = match Command::new("hivexget")
        .arg(hive)
        .arg(key)
        .arg(value)
        .output()
    {
        Ok(output) if output.status.success() => output,
        other => {
            let why = format!("hivexget is not usable: {other:?}");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            support::skip("hivexget oracle", &why);
            return None;
        }
    };
    let text = String::from_utf8(output.stdout).expect("hivexget prints UTF-8");
    let mut strings: Vec<String> = text.split('\n').map(str::to_string).collect();
    // The output ends with a newline after the last string.
    assert_eq!(strings.pop().as_deref(), Some(""));
    Some(strings)
}

/// Our queue, flattened back into the strings as stored.
fn our_strings(hive: &Path) -> Vec<String> {
    let bytes = std::fs::read(hive).unwrap();
    let system = SystemHive::read(&bytes).unwrap();
    let set = system.choose_control_set(ControlSetChoice::Next).unwrap();
    let queue = decode_registry(&system.control_set(set).unwrap().pending);
    let mut strings = Vec::new();
    for op in &queue.operations {
        strings.push(op.source.stored.to_string());
        strings.push(match &op.destination {
            Some(dest) => dest.stored.to_string(),
            None => String::new(),
        });
    }
    strings
}

fn compare_with_hivex(name: &str, expected_pairs: usize, expected_deletes: usize) {
    let Some(dir) = support::shared_hives() else {
        support::skip(name, "../shared/hives is absent");
        return;
    };
    let hive = dir.join(name);
    let ours = our_strings(&hive);
    assert_eq!(ours.len(), expected_pairs * 2, "{name}: pairs");
    let bytes = std::fs::read(&hive).unwrap();
    let system = SystemHive::read(&bytes).unwrap();
    let queue = decode_registry(&system.control_set(1).unwrap().pending);
    let deletes = queue
        .operations
        .iter()
        .filter(|o| o.action == Action::Delete)
        .count();
    assert_eq!(deletes, expected_deletes, "{name}: deletes");
    let Some(mut theirs) = hivexget_strings(
        &hive,
        "ControlSet001\\Control\\Session Manager",
        "PendingFileRenameOperations",
    ) else {
        return;
    };
    // hivex adds one empty string for the list terminator.
    assert_eq!(
        theirs.pop().as_deref(),
        Some(""),
        "{name}: hivex terminator"
    );
    assert_eq!(ours, theirs, "{name}");
}

#[test]
fn system_2_matches_hivexget() {
    compare_with_hivex("regipy/SYSTEM_2", 2, 2);
}

#[test]
fn system_b_primary_matches_hivexget() {
    compare_with_hivex("regipy/SYSTEM_B", 8, 8);
}

#[test]
fn system_win_10_1709_matches_hivexget() {
    compare_with_hivex("regipy/SYSTEM_WIN_10_1709", 101, 65);
    let Some(dir) = support::shared_hives() else {
        return;
    };
    let bytes = std::fs::read(dir.join("regipy/SYSTEM_WIN_10_1709")).unwrap();
    let system = SystemHive::read(&bytes).unwrap();
    let queue = decode_registry(&system.control_set(1).unwrap().pending);
    let renames: Vec<_> = queue
        .operations
        .iter()
        .filter(|o| o.action == Action::Rename)
        .collect();
    assert_eq!(renames.iter().filter(|o| o.replace_existing).count(), 4);
    assert_eq!(renames.iter().filter(|o| !o.replace_existing).count(), 32);
}

fn check_json(hive: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args: Vec<&OsStr> = vec![
        "check".as_ref(),
        "--hive".as_ref(),
        hive.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let (status, stdout, stderr) = support::nextboot(&args);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (status, report, stderr)
}

/// The primary files alone (`--no-logs`): dirty, and exit 2 unless `--allow-dirty`.
#[test]
fn dirty_real_hives_are_reported_dirty() {
    let Some(dir) = support::shared_hives() else {
        support::skip(
            "dirty_real_hives_are_reported_dirty",
            "../shared/hives is absent",
        );
        return;
    };
    for (name, operations) in [
        ("regipy/SYSTEM_2", 2),
        ("regipy/SYSTEM_B", 8),
        ("regipy/SYSTEM_WIN_10_1709", 101),
    ] {
        let (status, report, stderr) = check_json(&dir.join(name), &["--no-logs"]);
        assert_eq!(status, 2, "{name}: dirty without --allow-dirty");
        assert!(stderr.contains("dirty"), "{name}: {stderr}");
        assert_eq!(report["hive"]["dirty"], true, "{name}");
        assert_eq!(report["summary"]["operations"], operations, "{name}");
        assert_eq!(
            report["summary"]["unresolved"], operations,
            "{name}: no volume given"
        );
        let (status, _, _) = check_json(&dir.join(name), &["--no-logs", "--allow-dirty"]);
        assert_eq!(status, 0, "{name}");
    }
}

#[test]
fn clean_real_hives_without_a_queue() {
    let Some(dir) = support::shared_hives() else {
        support::skip(
            "clean_real_hives_without_a_queue",
            "../shared/hives is absent",
        );
        return;
    };
    // Windows 7 SYSTEM: two control sets, LastKnownGood = 2, same (empty) queue in both.
    let (status, report, _) = check_json(&dir.join("regipy/SYSTEM"), &[]);
    assert_eq!(status, 0);
    assert_eq!(report["hive"]["dirty"], false);
    assert_eq!(report["control_set"]["present"], serde_json::json!([1, 2]));
    assert_eq!(report["control_set"]["last_known_good"], 2);
    assert_eq!(report["summary"]["operations"], 0);
    assert_eq!(report["other_control_sets"][0]["same_as_used"], true);
    let (status, report, _) = check_json(&dir.join("dissect.regf/SYSTEM"), &[]);
    assert_eq!(status, 0);
    assert_eq!(report["summary"]["operations"], 0);
}

#[test]
fn odd_real_hives_give_clear_errors() {
    let Some(dir) = support::shared_hives() else {
        support::skip(
            "odd_real_hives_give_clear_errors",
            "../shared/hives is absent",
        );
        return;
    };
    for (name, code) in [
        ("yarp/TruncatedDirtyHive", "nextboot::hive::no_control_set"),
        ("yarp/System_Delta", "nextboot::hive::no_select"),
        ("regipy/SYSTEM_B.LOG1", "nextboot::hive::transaction_log"),
        ("regipy/UsrClass.dat", "nextboot::hive::no_control_set"),
    ] {
        let (status, report, stderr) = check_json(&dir.join(name), &[]);
        assert_eq!(status, 2, "{name}");
        assert!(report.is_null(), "{name}: no report for an unusable hive");
        assert!(stderr.contains(code), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    // Windows XP SYSTEM with a zeroed hive bin: ControlSet003 (LastKnownGood) is damaged, the
    // set of the next boot is intact, so the report is partial and says so.
    let corrupted = dir.join("regipy/corrupted_system_hive");
    let (status, report, stderr) = check_json(&corrupted, &[]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(report["control_set"]["used"], 1);
    assert_eq!(report["findings"][0]["code"], "control-set-damaged");
    // Its detail names the cell: the file holds a zeroed size field at that offset.
    let detail = &report["findings"][0]["detail"];
    assert_eq!(detail["damage"], "not-allocated", "{detail}");
    let offset = detail["offset"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(&corrupted).unwrap();
    assert_eq!(&bytes[offset..offset + 4], &[0; 4], "{detail}");
    assert!(report["other_control_sets"][0]["damage"].is_string());
    assert_eq!(report["other_control_sets"][0]["same_as_used"], false);
    let (status, _, stderr) = check_json(&corrupted, &["--control-set", "3"]);
    assert_eq!(status, 2);
    assert!(
        stderr.contains("nextboot::hive::control_set_damaged"),
        "{stderr}"
    );
    // System_Delta has no Select key, but its one control set can be named.
    let (status, report, _) = check_json(&dir.join("yarp/System_Delta"), &["--control-set", "1"]);
    assert_eq!(status, 0);
    assert_eq!(report["control_set"]["used"], 1);
    assert_eq!(report["control_set"]["default"], serde_json::Value::Null);
    assert_eq!(report["hive"]["format_version"], "1.6");
    assert_eq!(report["summary"]["operations"], 0);
}
