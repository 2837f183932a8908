//! Dirty hives and their transaction logs, end to end: `check` reads what Windows will see
//! at the next boot, `recover` writes it. Ground truth is in `../shared/hives` (hives Windows
//! itself recovered, and an independent implementation's output); skipped when absent.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nextboot::hive::{ControlSetChoice, SystemHive};
use nextboot::queue::decode_registry;
use serde_json::Value;

fn shared(test: &str) -> Option<PathBuf> {
    let dir = support::shared_hives();
    if dir.is_none() {
        support::skip(test, "../shared/hives is absent");
    }
    dir
}

fn check(hive: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args: Vec<&OsStr> = vec![
        "check".as_ref(),
        "--hive".as_ref(),
        hive.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let (status, stdout, stderr) = support::nextboot(&args);
    (
        status,
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr,
    )
}

/// The stored strings of the queue of the next boot's control set.
fn queue_strings(hive_bytes: &[u8]) -> Vec<String> {
    let system = SystemHive::read(hive_bytes).unwrap();
    let set = system.choose_control_set(ControlSetChoice::Next).unwrap();
    decode_registry(&system.control_set(set).unwrap().pending)
        .operations
        .iter()
        .flat_map(|op| {
            [
                op.source.stored.to_string(),
                op.destination
                    .as_ref()
                    .map_or(String::new(), |d| d.stored.to_string()),
            ]
        })
        .collect()
}

#[test]
fn system_b_with_its_logs_has_the_queue_windows_will_see() {
    let Some(dir) = shared("system_b_with_its_logs") else {
        return;
    };
    let hive = dir.join("regipy/SYSTEM_B");
    let (status, report, stderr) = check(&hive, &[]);
    assert_eq!(status, 0, "a recovered hive is a normal result: {stderr}");
    assert_eq!(report["hive"]["dirty"], true);
    assert_eq!(report["hive"]["recovered"], true);
    assert_eq!(report["hive"]["primary_sequence"], 1622);
    assert_eq!(report["hive"]["secondary_sequence"], 1621);
    let after = report["hive"]["sequence_after_recovery"]
        .as_array()
        .unwrap();
    assert_eq!(after[0], after[1]);
    let applied: Vec<&str> = report["hive"]["logs_applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(applied[0].ends_with("SYSTEM_B.LOG1") && applied[1].ends_with("SYSTEM_B.LOG2"));
    assert_eq!(report["summary"]["operations"], 16);

    // The same 16 pairs as the independent recovery in oracle/.
    let oracle = std::fs::read(dir.join("oracle/SYSTEM_B.recovered")).unwrap();
    let expected = queue_strings(&oracle);
    assert_eq!(expected.len(), 32);
    let ours: Vec<String> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|op| {
            [
                op["source"].as_str().unwrap().to_string(),
                op["destination"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    assert_eq!(ours, expected);
}

#[test]
fn no_logs_reads_the_primary_alone_and_exits_2() {
    let Some(dir) = shared("no_logs") else { return };
    let hive = dir.join("regipy/SYSTEM_B");
    let (status, report, stderr) = check(&hive, &["--no-logs"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("dirty"), "{stderr}");
    assert_eq!(report["hive"]["recovered"], false);
    assert_eq!(report["summary"]["operations"], 8);
    let (status, _, _) = check(&hive, &["--no-logs", "--allow-dirty"]);
    assert_eq!(status, 0);
}

#[test]
fn explicit_logs_replace_the_search() {
    let Some(dir) = shared("explicit_logs") else {
        return;
    };
    let hive = dir.join("regipy/SYSTEM_B");
    let log1 = dir.join("regipy/SYSTEM_B.LOG1");
    let (_, report, _) = check(&hive, &["--log", log1.to_str().unwrap()]);
    let used: Vec<&Value> = report["hive"]["logs_applied"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["hive"]["logs_not_applied"].as_array().unwrap())
        .collect();
    assert_eq!(used.len(), 1);
    assert!(used[0]["path"].as_str().unwrap().ends_with("SYSTEM_B.LOG1"));
    // A log that is not a log: skipped with a reason, the primary read as it is.
    let bogus = support::pe("file_v8.dll");
    let (status, report, _) = check(&hive, &["--log", bogus.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert_eq!(report["hive"]["recovered"], false);
    let skipped = &report["hive"]["logs_not_applied"][0];
    assert!(
        !skipped["notes"].as_array().unwrap().is_empty(),
        "{skipped}"
    );
}

#[test]
fn dirty_hives_without_logs_are_stated_and_exit_2() {
    let Some(dir) = shared("dirty_without_logs") else {
        return;
    };
    for (name, operations) in [("regipy/SYSTEM_2", 2), ("regipy/SYSTEM_WIN_10_1709", 101)] {
        let (status, report, _) = check(&dir.join(name), &[]);
        assert_eq!(status, 2, "{name}");
        assert_eq!(report["hive"]["dirty"], true);
        assert_eq!(report["hive"]["recovered"], false);
        assert_eq!(report["summary"]["operations"], operations);
        let codes: Vec<&str> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"logs-missing"), "{name}: {codes:?}");
    }
}

fn recover(args: &[&OsStr]) -> (i32, String, String) {
    let mut all: Vec<&OsStr> = vec!["recover".as_ref()];
    all.extend_from_slice(args);
    support::nextboot(&all)
}

#[test]
fn recover_writes_what_windows_10_recovered() {
    let Some(dir) = shared("recover_new_dirty_hive") else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("recovered");
    let hive = dir.join("yarp/NewDirtyHive1/NewDirtyHive");
    let (status, stdout, stderr) = recover(&[hive.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("applied"), "{stdout}");
    let ours = std::fs::read(&out).unwrap();
    let windows = std::fs::read(dir.join("yarp/NewDirtyHive1/RecoveredHive_Windows10")).unwrap();
    let bins = |bytes: &[u8]| {
        let size = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
        bytes[4096..4096 + size].to_vec()
    };
    assert!(
        bins(&ours) == bins(&windows),
        "hive bins differ from Windows' own recovery"
    );
    assert!(
        nt_hive::Hive::new(ours.as_slice()).is_ok(),
        "the output is a clean hive"
    );

    // Never overwrites, neither the output nor the evidence.
    let (status, _, stderr) = recover(&[hive.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (status, _, stderr) = recover(&[hive.as_os_str(), "--out".as_ref(), hive.as_os_str()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("input"), "{stderr}");
}

#[test]
fn recover_json_says_which_logs_were_applied() {
    let Some(dir) = shared("recover_transactions_ntuser") else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("ntuser");
    let hive = dir.join("regipy/transactions_NTUSER.DAT");
    let (status, stdout, stderr) = recover(&[
        hive.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    let done: Value = serde_json::from_str(&stdout).unwrap();
    let applied: Vec<&str> = done["logs_applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    // log2's base sequence is older than the primary: only log1 applies.
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert!(applied[0].ends_with(".log1"));
    assert_eq!(done["sequence_after"][0], done["sequence_after"][1]);
}

#[test]
fn truncated_dirty_hive_is_a_clear_error() {
    let Some(dir) = shared("truncated_dirty_hive") else {
        return;
    };
    let hive = dir.join("yarp/TruncatedDirtyHive");
    let (status, report, stderr) = check(&hive, &[]);
    assert_eq!(status, 2);
    assert!(report.is_null());
    assert!(stderr.contains("nextboot::hive::"), "{stderr}");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("x");
    let (status, _, stderr) = recover(&[hive.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(status, 2);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !out.exists(),
        "nothing is written when nothing was recovered"
    );
}

/// A scenario volume whose SYSTEM hive is dirty: the primary still has the old queue (one
/// harmless rename), the logs hold the newer one that also downgrades File.dll.
use support::regf_log::{NewLogWriter, OldLogWriter};
use support::{dirty_scenario, verdicts};

#[test]
fn check_reads_a_dirty_scenario_hive_with_its_logs_by_default() {
    let s = dirty_scenario(|old, new| NewLogWriter::new(old, new).entries(2).build());
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1, "the downgrade exists only in the logs");
    assert_eq!(report["hive"]["recovered"], true);
    assert_eq!(verdicts(&report), ["new-file", "downgrade"]);
    // Logs are found case-insensitively beside the hive.
    assert_eq!(
        report["hive"]["logs_applied"].as_array().unwrap().len()
            + report["hive"]["logs_not_applied"].as_array().unwrap().len(),
        2
    );

    let (status, report) = s.check(&["--no-logs"]);
    assert_eq!(status, 2);
    assert_eq!(verdicts(&report), ["new-file"]);
}

#[test]
fn corrupt_logs_are_skipped_with_a_warning() {
    // (Stopping in the middle of a run is tested on the replay itself in log_replay.rs: a
    // fixture split into entries is only consistent at its end.)
    type Build = fn(&[u8], &[u8]) -> support::regf_log::DirtyHive;
    // (A log older than the primary: transactions_NTUSER.DAT's log2, above.)
    let cases: [(&str, Build); 1] = [("hash", |old, new| {
        NewLogWriter::new(old, new).corrupt_hash(0).build()
    })];
    for (what, dirty) in cases {
        let s = dirty_scenario(dirty);
        let (status, report) = s.check(&[]);
        assert_eq!(status, 2, "{what}: nothing applied, the hive stays dirty");
        assert_eq!(report["hive"]["recovered"], false);
        let notes = report["hive"]["logs_not_applied"].to_string();
        assert!(notes.to_lowercase().contains(what), "{what}: {notes}");
        // The primary as it is: the old queue.
        assert_eq!(verdicts(&report), ["new-file"], "{what}");
        let (status, _) = s.check(&["--allow-dirty"]);
        assert_eq!(status, 0);
    }
}

#[test]
fn old_format_logs_are_applied_too() {
    let s = dirty_scenario(|old, new| OldLogWriter::new(old, new).build());
    let (status, report) = s.check(&[]);
    assert_eq!(status, 1);
    assert_eq!(report["hive"]["logs_applied"][0]["format"], "old");
    assert_eq!(verdicts(&report), ["new-file", "downgrade"]);
}
