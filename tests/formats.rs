//! Every `check` format parses back with an independent reader and carries the same facts.

mod support;

use std::ffi::OsStr;

use serde_json::Value;

fn demo(format: &str) -> (i32, String) {
    let root = support::testdata().join("scenarios/kb815062");
    let (status, stdout, stderr) = support::nextboot(&[
        "check".as_ref(),
        root.as_os_str(),
        OsStr::new("--format"),
        OsStr::new(format),
    ]);
    assert!(stderr.is_empty(), "{stderr}");
    (status, stdout)
}

fn json_report() -> Value {
    serde_json::from_str(&demo("json").1).unwrap()
}

#[test]
fn json_has_the_contract_fields() {
    let report = json_report();
    for field in [
        "tool",
        "provenance",
        "hive",
        "control_set",
        "operations",
        "summary",
    ] {
        assert!(report.get(field).is_some(), "{field}");
    }
    assert_eq!(report["tool"]["name"], "nextboot");
    for field in ["path", "sha256", "dirty", "logs_applied"] {
        assert!(report["hive"].get(field).is_some(), "hive.{field}");
    }
    for field in ["used", "current", "default"] {
        assert!(report["control_set"][field].is_u64(), "control_set.{field}");
    }
    let op = &report["operations"][0];
    for field in [
        "index",
        "value",
        "action",
        "source",
        "destination",
        "replace_existing",
        "source_version",
        "target_version",
        "verdict",
    ] {
        assert!(op.get(field).is_some(), "operation.{field}");
    }
    let summary = report["summary"].as_object().unwrap();
    assert_eq!(summary.len(), 11, "operations plus ten verdict words");
}

#[test]
fn jsonl_is_one_operation_per_line() {
    let (status, text) = demo("jsonl");
    assert_eq!(status, 1);
    let mut lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let report = json_report();
    for line in &mut lines {
        let object = line.as_object_mut().unwrap();
        // Each line carries its context, so that it stands alone in a timeline.
        assert_eq!(object.remove("hive_dirty"), Some(Value::Bool(false)));
        assert_eq!(object.remove("control_set"), Some(Value::from(1)));
        assert_eq!(
            object.remove("hive_path").as_ref(),
            Some(&report["hive"]["path"])
        );
        assert!(object.remove("provenance").is_some());
    }
    assert_eq!(Value::Array(lines), report["operations"]);
}

#[test]
fn csv_reads_back_with_a_csv_reader() {
    let (status, text) = demo("csv");
    assert_eq!(status, 1);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..3], ["index", "value", "action"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let report = json_report();
    assert_eq!(rows.len(), report["operations"].as_array().unwrap().len());
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][column("verdict")], "downgrade");
    assert_eq!(&rows[0][column("source_version")], "8.0.2195.6");
    assert_eq!(
        &rows[0][column("destination")],
        report["operations"][0]["destination"]
    );
    assert_eq!(
        &rows[2][column("destination")],
        "",
        "a delete has no destination"
    );
}

#[test]
fn yaml_reads_back_with_the_yaml_crate() {
    let (status, text) = demo("yaml");
    assert_eq!(status, 1);
    let yaml: Value = serde_saphyr::from_str(&text).unwrap();
    let json = json_report();
    assert_eq!(yaml["operations"], json["operations"]);
    assert_eq!(yaml["summary"], json["summary"]);
}

#[test]
fn json_and_jsonl_carry_provenance() {
    let report = json_report();
    let provenance = &report["provenance"];
    assert_eq!(provenance["tool"]["name"], "nextboot");
    assert_eq!(provenance["command_line"][1], "check");
    let started = provenance["started"].as_str().unwrap();
    assert!(started.ends_with('Z') && started.len() == 20, "{started}");
    assert_eq!(provenance["inputs"][0]["role"], "hive");
    assert_eq!(provenance["inputs"][0]["sha256"], report["hive"]["sha256"]);
    assert_eq!(provenance["hive_sequence"], serde_json::json!([1, 1]));
    // The demo hive's writer stamps every key 2026-01-01.
    assert_eq!(
        provenance["session_manager_last_written"],
        "2026-01-01T00:00:00Z"
    );
    let (_, text) = demo("jsonl");
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["provenance"]["inputs"], provenance["inputs"]);
    }
    let (_, text) = demo("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let at = header
        .iter()
        .position(|h| h == "session_manager_last_written_utc")
        .unwrap();
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[at], "2026-01-01T00:00:00Z");
}

#[test]
fn completions_and_man_page_come_from_the_command_definitions() {
    let (status, bash, _) = support::nextboot(&["completions".as_ref(), "bash".as_ref()]);
    assert_eq!(status, 0);
    for word in [
        "check",
        "version",
        "recover",
        "fix",
        "verify",
        "--fail-on",
        "--load-key",
    ] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    let (status, zsh, _) = support::nextboot(&["completions".as_ref(), "zsh".as_ref()]);
    assert_eq!(status, 0);
    assert!(zsh.starts_with("#compdef nextboot"));
    let (status, man, _) = support::nextboot(&["man".as_ref()]);
    assert_eq!(status, 0);
    assert!(man.contains(".TH nextboot 1"));
    assert!(man.contains("check"));
}
