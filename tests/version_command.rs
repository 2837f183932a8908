//! `nextboot version` on the project's PE fixtures, checked against independent readers:
//! PyPI `pefile` (testdata/pe/oracle.py) and Debian's `exiftool`. In CI both must be present;
//! elsewhere a missing oracle is reported as skipped.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(support::testdata().join("pe/bin"))
        .expect("testdata/pe/bin")
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(OsStr::to_str), Some("dll" | "exe")))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "fixtures missing: {files:?}");
    files
}

fn ours(files: &[PathBuf]) -> BTreeMap<String, Value> {
    let mut args: Vec<&OsStr> = vec!["version".as_ref(), "--format".as_ref(), "json".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let (status, stdout, stderr) = support::nextboot(&args);
    assert_eq!(status, 0, "{stderr}");
    let list: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    list.into_iter()
        .map(|v| (v["path"].as_str().unwrap().to_string(), v))
        .collect()
}

/// Runs an oracle, or says it is missing (a failure in CI, where .ci/run installs them).
fn oracle(program: &str, args: &[&OsStr]) -> Option<String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        result => {
            let why = format!("{program} is not usable here: {result:?}");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            support::skip("oracle", &why);
            None
        }
    }
}

#[test]
fn versions_match_pefile() {
    let files = fixtures();
    let ours = ours(&files);
    let script = support::testdata().join("pe/oracle.py");
    let mut args: Vec<&OsStr> = vec![script.as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let Some(output) = oracle("python3", &args) else {
        return;
    };
    let mut compared = 0;
    for line in output.lines() {
        let theirs: Value = serde_json::from_str(line).unwrap();
        if theirs.get("error").is_some() {
            panic!("pefile could not read a fixture: {theirs}");
        }
        let path = theirs["path"].as_str().unwrap();
        let mine = &ours[path];
        for field in ["file_version", "product_version", "file_version_string"] {
            assert_eq!(mine[field], theirs[field], "{path}: {field}");
        }
        assert_eq!(mine["pe_format"], theirs["pe"], "{path}: format");
        compared += 1;
    }
    assert_eq!(compared, files.len());
}

#[test]
fn versions_match_exiftool() {
    let files = fixtures();
    let ours = ours(&files);
    let mut args: Vec<&OsStr> = vec![
        "-j".as_ref(),
        "-FileVersionNumber".as_ref(),
        "-ProductVersionNumber".as_ref(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let Some(output) = oracle("exiftool", &args) else {
        return;
    };
    let theirs: Vec<Value> = serde_json::from_str(&output).unwrap();
    assert_eq!(theirs.len(), files.len());
    for entry in theirs {
        let path = entry["SourceFile"].as_str().unwrap();
        let mine = &ours[path];
        let text = |v: &Value| v.as_str().map(str::to_string);
        assert_eq!(
            text(&mine["file_version"]),
            text(&entry["FileVersionNumber"]),
            "{path}"
        );
        assert_eq!(
            text(&mine["product_version"]),
            text(&entry["ProductVersionNumber"]),
            "{path}"
        );
    }
}

#[test]
fn table_names_each_file_and_the_unversioned_ones() {
    let (status, stdout, _) = support::nextboot(&[
        "version".as_ref(),
        support::pe("file_v8.dll").as_os_str(),
        support::pe("no_version.dll").as_os_str(),
        support::pe("string_disagrees.dll").as_os_str(),
    ]);
    assert_eq!(status, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[1].contains("file_v8.dll") && lines[1].contains("8.0.2195.6"));
    assert!(lines[2].contains("unversioned: no version resource"));
    assert!(lines[3].contains("2.0.0.0") && lines[3].contains("1.9.9.9 (winmain.160101-0800)"));
}

#[test]
fn unreadable_and_non_pe_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let truncated = dir.path().join("truncated.dll");
    let full = std::fs::read(support::pe("file_v8.dll")).unwrap();
    std::fs::write(&truncated, &full[..600]).unwrap();
    let missing = dir.path().join("missing.dll");
    let (status, stdout, _) = support::nextboot(&[
        "version".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        text.as_os_str(),
        truncated.as_os_str(),
        missing.as_os_str(),
    ]);
    assert_eq!(status, 2, "a file that cannot be opened is not examined");
    let list: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert!(list[0]["error"].as_str().unwrap().contains("not a PE"));
    assert!(list[1]["file_version"].is_null());
    assert!(list[1]["error"].is_string() || list[1]["unversioned_reason"].is_string());
    assert!(list[2]["error"].as_str().unwrap().contains("cannot read"));
}

#[test]
fn every_truncation_of_a_fixture_is_handled() {
    // Each prefix of a real PE either reads or reports a problem; none panics or loops.
    let full = std::fs::read(support::pe("string_disagrees.dll")).unwrap();
    for len in (0..full.len()).step_by(7) {
        let evidence = nextboot::evidence::Evidence::from_vec("cut".into(), full[..len].to_vec());
        let _ = nextboot::version::read_pe_version(&evidence);
    }
    let evidence = nextboot::evidence::Evidence::from_vec("full".into(), full);
    let pe = nextboot::version::read_pe_version(&evidence).unwrap();
    assert_eq!(pe.file_version().unwrap().to_string(), "2.0.0.0");
}

/// A file that is not a PE, or whose resources are malformed, gives the problem as fields
/// beside the sentence; where the problem is the file's length, the length is the file's.
#[test]
fn errors_carry_their_problem_as_fields() {
    let dir = support::testdata().join("malformed/pe");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let entries = ours(&files);
    let mut with_error = 0;
    for (path, entry) in &entries {
        if entry["error"].is_null() {
            assert!(entry.get("detail").is_none(), "{path}: {entry}");
            continue;
        }
        with_error += 1;
        let detail = &entry["detail"];
        let kind = detail["error"].as_str().unwrap_or_default();
        let sentence = entry["error"].as_str().unwrap();
        match kind {
            "not-pe" => assert!(sentence.starts_with("not a PE file: "), "{path}: {entry}"),
            "malformed" => assert!(sentence.starts_with("malformed PE resources: "), "{path}"),
            _ => panic!("{path}: no detail: {entry}"),
        }
        let problem = detail["problem"].as_str().unwrap();
        if matches!(problem, "dos-header-cut" | "truncated") {
            let size = std::fs::metadata(path).unwrap().len();
            assert_eq!(detail["len"], size, "{path}: {entry}");
        }
    }
    assert!(
        with_error >= 3,
        "the corpus has files that are not PEs: {entries:?}"
    );
}
