//! `verify`: installed files against a baseline, on volumes built from the PE fixtures.
//!
//! Two layers. The library tests (`nextboot::commands::verify`) always run. The binary tests run
//! `nextboot verify` and need the subcommand in `src/main.rs`: until `nextboot --help` lists
//! it they print `SKIPPED` and pass, except under CI (`CI` set), where a missing subcommand
//! fails them.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nextboot::commands::verify::{
    self, Baseline, Pattern, State, VerifyError, VerifyOptions, WriteOptions,
};
use nextboot::output::OutputError;
use nextboot::report::exit;
use serde_json::Value;
use support::Scenario;

const V5: &str = "5.0.2195.1";
const V8: &str = "8.0.2195.6";
const V12: &str = "12.0.2195.7";

/// A small known-good system volume.
fn golden() -> Scenario {
    let scenario = Scenario::new();
    scenario.put("Windows/System32/file.dll", "file_v8.dll");
    scenario.put("Windows/System32/Kernel.dll", "file_v12.dll");
    scenario.put("Windows/System32/nover.dll", "no_version.dll");
    scenario.put("Windows/System32/pe32.dll", "pe32_v7.dll");
    scenario.put("Windows/System32/drivers/drv.sys", "exe_v1.exe");
    scenario.write("Windows/System32/readme.txt", b"not a PE file\n");
    scenario.put("Program Files/App/app.dll", "ordering_10_0.dll");
    scenario
}

/// A folder outside every scenario root, for baselines.
fn outside() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

fn sha256_of(fixture: &str) -> String {
    nextboot::evidence::sha256_hex(&std::fs::read(support::pe(fixture)).unwrap())
}

fn patterns(texts: &[&str]) -> Vec<Pattern> {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

fn write_options(root: &Path, out: PathBuf, include: &[&str], with_sha256: bool) -> WriteOptions {
    WriteOptions {
        root: root.to_path_buf(),
        system_drive: 'C',
        partition: None,
        include: patterns(include),
        with_sha256,
        out,
    }
}

fn verify_options(root: &Path) -> VerifyOptions {
    VerifyOptions {
        root: root.to_path_buf(),
        system_drive: 'C',
        partition: None,
        hash_all: false,
    }
}

/// Verifies `yaml` against a root through the library; the states in baseline order.
fn states(root: &Path, yaml: &str) -> Vec<(State, String)> {
    let baseline = Baseline::parse(yaml.as_bytes(), "test.yaml").unwrap();
    let report = verify::verify(&verify_options(root), &baseline).unwrap();
    report
        .entries
        .into_iter()
        .map(|e| (e.state, e.reason))
        .collect()
}

fn only_states(found: &[(State, String)]) -> Vec<State> {
    found.iter().map(|(s, _)| *s).collect()
}

// ---------------------------------------------------------------- library

#[test]
fn written_baseline_verifies_and_is_deterministic() {
    let image = golden();
    let dir = outside();
    let include = ["Windows\\System32\\*.dll", "windows\\**\\*.SYS"];
    let first = dir.path().join("a.yaml");
    let written =
        verify::write_baseline(&write_options(image.root(), first.clone(), &include, false))
            .unwrap();
    assert_eq!(written.entries, 4, "{written:?}");
    assert_eq!(written.patterns[0].files, 4, "four DLLs match");
    assert_eq!(written.patterns[1].files, 1, "one driver");
    // no_version.dll has no version to record without --with-sha256.
    assert_eq!(written.skipped.len(), 1, "{:?}", written.skipped);
    assert!(written.skipped[0].path.ends_with("nover.dll"));
    assert!(written.skipped[0].reason.contains("--with-sha256"));

    let text = std::fs::read_to_string(&first).unwrap();
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- path: "))
        .collect();
    assert_eq!(
        paths,
        [
            "Windows\\System32\\drivers\\drv.sys",
            "Windows\\System32\\file.dll",
            "Windows\\System32\\Kernel.dll",
            "Windows\\System32\\pe32.dll",
        ],
        "folded path order, on-disk spelling:\n{text}"
    );
    assert!(text.contains(&format!("min_version: \"{V12}\"")), "{text}");

    let second = dir.path().join("b.yaml");
    verify::write_baseline(&write_options(
        image.root(),
        second.clone(),
        &include,
        false,
    ))
    .unwrap();
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );

    let report = verify::verify_file(&verify_options(image.root()), &first).unwrap();
    assert_eq!(report.summary.count(State::Ok), 4);
    assert_eq!(report.exit_status(), exit::CLEAN);
    assert_eq!(report.baseline.sha256, written.sha256);
}

#[test]
fn with_sha256_pins_every_file_and_unversioned_ones_too() {
    let image = golden();
    let dir = outside();
    let out = dir.path().join("pinned.yaml");
    let written = verify::write_baseline(&write_options(
        image.root(),
        out.clone(),
        &["Windows\\System32\\*.dll"],
        true,
    ))
    .unwrap();
    assert_eq!(written.entries, 4);
    assert!(written.skipped.is_empty());
    let baseline = Baseline::read(&out).unwrap();
    let nover = baseline
        .entries
        .iter()
        .find(|e| e.path.ends_with("nover.dll"))
        .unwrap();
    assert_eq!(nover.min_version, None);
    assert_eq!(nover.sha256.as_deref(), Some(&*sha256_of("no_version.dll")));
    let report = verify::verify(&verify_options(image.root()), &baseline).unwrap();
    assert_eq!(report.exit_status(), exit::CLEAN, "{:?}", report.entries);
    assert!(report.entries.iter().all(|e| e.sha256 == e.expected_sha256));
}

#[test]
fn each_state_from_the_disk() {
    let image = golden();
    let yaml = format!(
        r#"version: 1
files:
  - path: C:\Windows\System32\file.dll
    min_version: {V8}
  - path: Windows\System32\gone.dll
    min_version: 1.0.0.0
  - path: Windows\System32\nover.dll
    min_version: 1.0.0.0
  - path: Windows\System32\readme.txt
    min_version: 1.0.0.0
  - path: Windows\System32\Kernel.dll
    min_version: {V8}
    sha256: {wrong}
  - path: Windows\System32
    min_version: 1.0.0.0
  - path: D:\Windows\x.dll
    min_version: 1.0.0.0
  - path: windows\system32\PE32.dll
    sha256: {pe32}
"#,
        wrong = "0".repeat(64),
        pe32 = sha256_of("pe32_v7.dll"),
    );
    let found = states(image.root(), &yaml);
    assert_eq!(
        only_states(&found),
        [
            State::Ok,
            State::Missing,
            State::Unversioned,
            State::Unversioned,
            State::HashMismatch,
            State::Missing,
            State::Unresolved,
            State::Ok,
        ],
        "{found:#?}"
    );
    assert!(
        found[1].1.contains("has no entry gone.dll"),
        "{}",
        found[1].1
    );
    assert!(found[2].1.contains("no version resource"), "{}", found[2].1);
    assert!(found[3].1.contains("not a PE file"), "{}", found[3].1);
    assert!(found[4].1.contains(&format!("at least the minimum {V8}")));
    assert!(found[5].1.contains("folder"), "{}", found[5].1);
    assert!(found[6].1.contains("drive D:"), "{}", found[6].1);
}

#[test]
fn an_older_file_is_older_and_its_hash_is_named() {
    let image = golden();
    let dir = outside();
    let out = dir.path().join("b.yaml");
    verify::write_baseline(&write_options(
        image.root(),
        out.clone(),
        &["Windows\\System32\\file.dll"],
        true,
    ))
    .unwrap();
    image.put("Windows/System32/file.dll", "file_v5.dll");
    let report = verify::verify_file(&verify_options(image.root()), &out).unwrap();
    let entry = &report.entries[0];
    assert_eq!(entry.state, State::Older);
    assert_eq!(entry.found_version.unwrap().to_string(), V5);
    assert_eq!(entry.expected_min_version.unwrap().to_string(), V8);
    assert!(
        entry.reason.contains("older than the minimum"),
        "{}",
        entry.reason
    );
    assert!(
        entry.reason.contains("SHA-256 also differs"),
        "{}",
        entry.reason
    );
    assert!(entry.found_path.as_deref().unwrap().ends_with("file.dll"));
    assert_eq!(report.exit_status(), exit::FINDINGS);

    // A newer file than the minimum is fine without a hash...
    image.put("Windows/System32/file.dll", "file_v12.dll");
    let newer = format!(
        "version: 1\nfiles:\n  - path: Windows\\System32\\file.dll\n    min_version: {V8}\n"
    );
    assert_eq!(only_states(&states(image.root(), &newer)), [State::Ok]);
    // ...and a hash mismatch with one.
    let report = verify::verify_file(&verify_options(image.root()), &out).unwrap();
    assert_eq!(report.entries[0].state, State::HashMismatch);
}

#[test]
fn case_and_short_names_resolve_as_check_does() {
    let image = golden();
    let yaml = format!(
        "version: 1\nfiles:\n  - path: WINDOWS\\system32\\KERNEL.DLL\n    min_version: {V12}\n  - path: \\??\\c:\\windows\\SYSTEM32\\File.Dll\n    min_version: {V8}\n  - path: PROGRA~1\\App\\APP.DLL\n    min_version: 10.0.0.0\n  - path: '%SystemRoot%/System32/pe32.dll'\n    min_version: 7.0.0.0\n"
    );
    let found = states(image.root(), &yaml);
    assert_eq!(only_states(&found), [State::Ok; 4], "{found:#?}");
    // The report shows where the file is, as spelled on disk.
    let baseline = Baseline::parse(yaml.as_bytes(), "t.yaml").unwrap();
    let report = verify::verify(&verify_options(image.root()), &baseline).unwrap();
    assert!(report.entries[0]
        .found_path
        .as_deref()
        .unwrap()
        .ends_with("Windows/System32/Kernel.dll"));
}

#[test]
fn links_out_of_the_volume_are_not_followed() {
    #[cfg(unix)]
    {
        let image = golden();
        let elsewhere = outside();
        std::fs::copy(support::pe("file_v12.dll"), elsewhere.path().join("x.dll")).unwrap();
        // A link that climbs out of the volume: never followed.
        std::os::unix::fs::symlink(
            format!("../../{}", elsewhere.path().display()),
            image.root().join("Windows/Outside"),
        )
        .unwrap();
        let yaml =
            "version: 1\nfiles:\n  - path: Windows\\Outside\\x.dll\n    min_version: 1.0.0.0\n";
        let found = states(image.root(), yaml);
        assert_eq!(only_states(&found), [State::Unresolved], "{found:?}");

        // And the writer does not walk into them.
        let dir = outside();
        let written = verify::write_baseline(&write_options(
            image.root(),
            dir.path().join("b.yaml"),
            &["Windows\\**\\*.dll"],
            false,
        ))
        .unwrap();
        assert!(written
            .skipped
            .iter()
            .any(|s| s.path == "Windows\\Outside" && s.reason.contains("not followed")));
    }
}

#[test]
fn the_example_baseline_is_valid() {
    let path = support::testdata().join("baselines/example.yaml");
    let baseline = Baseline::read(&path).unwrap();
    assert_eq!(baseline.format, 1);
    let nt: Vec<String> = baseline
        .entries
        .iter()
        .map(|e| e.target.nt_path('C'))
        .collect();
    assert_eq!(
        nt,
        [
            "\\??\\C:\\Windows\\System32\\ntdll.dll",
            "\\??\\C:\\Windows\\System32\\kernel32.dll",
            "\\??\\C:\\Windows\\System32\\drivers\\tcpip.sys",
            "\\SystemRoot\\System32\\win32k.sys",
            "\\SystemRoot\\System32\\user32.dll",
            "\\??\\C:\\Windows\\System32\\drivers\\etc\\hosts",
            "\\SystemRoot\\System32\\ci.dll",
        ]
    );
    assert!(baseline.entries[5].min_version.is_none());
    assert!(baseline.entries[6].min_version.is_some() && baseline.entries[6].sha256.is_some());
    // Against an image that has none of these files: every entry is missing.
    let image = golden();
    let report = verify::verify(&verify_options(image.root()), &baseline).unwrap();
    assert_eq!(
        report.summary.count(State::Missing),
        7,
        "{:#?}",
        report.entries
    );
}

#[test]
fn invalid_baselines_point_at_the_place() {
    let cases: [(&str, u64, &str); 6] = [
        (
            "version: 1\nfiles:\n  - path: a.dll\n    min_version: [1\n",
            4,
            "",
        ),
        (
            "version: 1\nfiles:\n  - path: a.dll\n    min_version: 1.0.0.0\n    minimum: 2\n",
            5,
            "minimum",
        ),
        (
            "version: 1\nfiles:\n  - path: a.dll\n    min_version: 1.0.0\n",
            4,
            "four parts",
        ),
        ("version: 3\nfiles: []\n", 1, "version 3"),
        (
            "version: 1\nfiles:\n  - path: \\\\server\\share\\a.dll\n    min_version: 1.0.0.0\n",
            3,
            "UNC",
        ),
        ("version: 1\nfiles:\n\t- path: a.dll\n", 3, ""),
    ];
    for (yaml, line, words) in cases {
        match Baseline::parse(yaml.as_bytes(), "b.yaml") {
            Err(VerifyError::BaselineInvalid(invalid)) => {
                assert_eq!(invalid.line, line, "{yaml}: {invalid:?}");
                assert!(
                    invalid.message.contains(words),
                    "{yaml}: {}",
                    invalid.message
                );
                let shown = format!(
                    "{:?}",
                    miette::Report::new(VerifyError::BaselineInvalid(invalid))
                );
                assert!(shown.contains(&format!("line {line}")), "{shown}");
            }
            other => panic!("{yaml}: {other:?}"),
        }
    }
}

#[test]
fn the_writer_refuses_to_overwrite_or_write_into_root() {
    let image = golden();
    let dir = outside();
    let existing = dir.path().join("exists.yaml");
    std::fs::write(&existing, "keep me").unwrap();
    let err = verify::write_baseline(&write_options(
        image.root(),
        existing.clone(),
        &["Windows\\System32\\*.dll"],
        false,
    ))
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Output(OutputError::Exists { .. })),
        "{err:?}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");

    let inside = image.root().join("Windows/baseline.yaml");
    let err = verify::write_baseline(&write_options(
        image.root(),
        inside.clone(),
        &["Windows\\System32\\*.dll"],
        false,
    ))
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Output(OutputError::InsideEvidence { .. })),
        "{err:?}"
    );
    assert!(!inside.exists());

    let err = verify::write_baseline(&write_options(
        image.root(),
        dir.path().join("new.yaml"),
        &["Windows\\System32\\*.dll", "Windows\\Sytem32\\*.dll"],
        false,
    ))
    .unwrap_err();
    match err {
        VerifyError::NothingMatched { patterns } => {
            assert_eq!(patterns, ["Windows\\Sytem32\\*.dll"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("new.yaml").exists());
}

#[test]
fn a_missing_root_cannot_be_examined() {
    let dir = outside();
    let baseline = Baseline::parse(b"version: 1\nfiles: []\n", "b.yaml").unwrap();
    let err = verify::verify(&verify_options(&dir.path().join("nope")), &baseline).unwrap_err();
    assert!(matches!(err, VerifyError::RootMissing { .. }), "{err:?}");
}

// ---------------------------------------------------------------- binary

/// Whether `nextboot --help` lists `verify`; under CI it must.
fn wired(test: &str) -> bool {
    static WIRED: OnceLock<bool> = OnceLock::new();
    let wired = *WIRED.get_or_init(|| {
        let (_, stdout, _) = support::nextboot(&[OsStr::new("--help")]);
        stdout
            .lines()
            .any(|line| line.trim_start().starts_with("verify "))
    });
    if !wired {
        assert!(
            std::env::var_os("CI").is_none(),
            "nextboot has no verify subcommand (src/main.rs)"
        );
        support::skip(test, "`nextboot verify` is not wired into src/main.rs yet");
    }
    wired
}

/// `nextboot verify ROOT` plus arguments: status, stdout, stderr.
fn run(root: &Path, args: &[&OsStr]) -> (i32, String, String) {
    let mut all: Vec<&OsStr> = vec![OsStr::new("verify"), root.as_os_str()];
    all.extend_from_slice(args);
    support::nextboot(&all)
}

fn baseline_file(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("baseline.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn json(root: &Path, baseline: &Path) -> (i32, Value) {
    let (status, stdout, stderr) = run(
        root,
        &[
            OsStr::new("--baseline"),
            baseline.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("json"),
        ],
    );
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (status, report)
}

fn entry_states(report: &Value) -> Vec<String> {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect()
}

const THREE: &str = "version: 1\nfiles:\n  - path: Windows\\System32\\file.dll\n    min_version: 8.0.2195.6\n  - path: windows\\SYSTEM32\\kernel.DLL\n    min_version: 12.0.2195.7\n  - path: C:\\Windows\\System32\\pe32.dll\n    min_version: 7.1.2600.5512\n";

#[test]
fn binary_passes_a_good_image_with_exit_0() {
    if !wired("binary_passes_a_good_image_with_exit_0") {
        return;
    }
    let image = golden();
    let dir = outside();
    let baseline = baseline_file(dir.path(), THREE);
    let (status, report) = json(image.root(), &baseline);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(entry_states(&report), ["ok", "ok", "ok"]);
    assert_eq!(report["tool"]["name"], "nextboot");
    assert_eq!(report["baseline"]["path"], baseline.display().to_string());
    assert_eq!(
        report["baseline"]["sha256"],
        nextboot::evidence::sha256_hex(THREE.as_bytes())
    );
    assert_eq!(report["root"], image.root().display().to_string());
    let entry = &report["entries"][1];
    for field in [
        "path",
        "expected_min_version",
        "expected_sha256",
        "state",
        "found_version",
        "found_path",
        "sha256",
        "reason",
    ] {
        assert!(entry.get(field).is_some(), "entries[].{field}");
    }
    assert_eq!(entry["path"], "windows\\SYSTEM32\\kernel.DLL", "as written");
    assert_eq!(entry["found_version"], "12.0.2195.7");
    let summary = report["summary"].as_object().unwrap();
    assert_eq!(summary.len(), 1 + State::ALL.len());
    assert_eq!(summary["entries"], 3);
    assert_eq!(summary["ok"], 3);
    assert_eq!(summary["hash-mismatch"], 0);
}

/// A change to a golden image.
type Change = fn(&Scenario);

#[test]
fn binary_exits_1_for_older_missing_unversioned_and_mismatch() {
    if !wired("binary_exits_1_for_older_missing_unversioned_and_mismatch") {
        return;
    }
    let dir = outside();
    let baseline = baseline_file(dir.path(), THREE);
    let cases: [(&str, Change, &str); 4] = [
        (
            "older",
            |s| s.put("Windows/System32/file.dll", "file_v5.dll"),
            "older",
        ),
        (
            "missing",
            |s| std::fs::remove_file(s.root().join("Windows/System32/file.dll")).unwrap(),
            "missing",
        ),
        (
            "unversioned",
            |s| s.put("Windows/System32/file.dll", "no_version.dll"),
            "unversioned",
        ),
        (
            "not a PE",
            |s| s.write("Windows/System32/file.dll", b"MZ but nothing else"),
            "unversioned",
        ),
    ];
    for (name, change, state) in cases {
        let image = golden();
        change(&image);
        let (status, report) = json(image.root(), &baseline);
        assert_eq!(status, 1, "{name}: {report:#}");
        assert_eq!(entry_states(&report), [state, "ok", "ok"], "{name}");
        assert_eq!(report["summary"][state], 1, "{name}");
    }

    let image = golden();
    let mismatch = baseline_file(
        dir.path(),
        &format!(
            "version: 1\nfiles:\n  - path: Windows\\System32\\Kernel.dll\n    min_version: 8.0.0.0\n    sha256: {}\n",
            sha256_of("file_v8.dll")
        ),
    );
    let (status, report) = json(image.root(), &mismatch);
    assert_eq!(status, 1);
    assert_eq!(entry_states(&report), ["hash-mismatch"]);
    assert_eq!(report["entries"][0]["sha256"], sha256_of("file_v12.dll"));
    assert_eq!(
        report["entries"][0]["expected_sha256"],
        sha256_of("file_v8.dll")
    );
}

#[test]
fn binary_exits_2_when_the_input_cannot_be_examined() {
    if !wired("binary_exits_2_when_the_input_cannot_be_examined") {
        return;
    }
    let image = golden();
    let dir = outside();

    let broken = baseline_file(
        dir.path(),
        "version: 1\nfiles:\n  - path: a.dll\n    min_version: 1.0.0.0\n    colour: red\n",
    );
    let (status, stdout, stderr) = run(
        image.root(),
        &[OsStr::new("--baseline"), broken.as_os_str()],
    );
    assert_eq!(status, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("line 5, column 5"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
    assert!(stderr.contains("baseline_invalid"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Not YAML at all: the parser's place.
    let syntax = baseline_file(
        dir.path(),
        "version: 1\nfiles:\n  - path: a.dll\n    min_version: [1\n",
    );
    let (status, stdout, stderr) = run(
        image.root(),
        &[OsStr::new("--baseline"), syntax.as_os_str()],
    );
    assert_eq!(status, 2, "{stdout}{stderr}");
    assert!(stderr.contains("(line 4, column 18)"), "{stderr}");

    let (status, _, stderr) = run(
        image.root(),
        &[
            OsStr::new("--baseline"),
            dir.path().join("none.yaml").as_os_str(),
        ],
    );
    assert_eq!(status, 2, "{stderr}");

    let good = baseline_file(dir.path(), THREE);
    let (status, _, stderr) = run(
        &dir.path().join("no-root"),
        &[OsStr::new("--baseline"), good.as_os_str()],
    );
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");

    let (status, _, stderr) = run(image.root(), &[]);
    assert_eq!(
        status, 2,
        "neither --baseline nor --write-baseline: {stderr}"
    );
}

#[test]
fn binary_write_baseline_round_trips() {
    if !wired("binary_write_baseline_round_trips") {
        return;
    }
    let image = golden();
    let dir = outside();
    let out = dir.path().join("golden.yaml");
    let (status, stdout, stderr) = run(
        image.root(),
        &[
            OsStr::new("--write-baseline"),
            out.as_os_str(),
            OsStr::new("--include"),
            OsStr::new("Windows\\System32\\*.dll"),
            OsStr::new("--include"),
            OsStr::new("Program Files/**/*.dll"),
            OsStr::new("--with-sha256"),
        ],
    );
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let (status, report) = json(image.root(), &out);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["summary"]["ok"], 5);

    // Never twice to one file, never into ROOT.
    let again = run(
        image.root(),
        &[
            OsStr::new("--write-baseline"),
            out.as_os_str(),
            OsStr::new("--include"),
            OsStr::new("Windows\\System32\\*.dll"),
        ],
    );
    assert_eq!(again.0, 2);
    assert!(again.2.contains("already exists"), "{}", again.2);
    let inside = image.root().join("golden.yaml");
    let into_root = run(
        image.root(),
        &[
            OsStr::new("--write-baseline"),
            inside.as_os_str(),
            OsStr::new("--include"),
            OsStr::new("Windows\\System32\\*.dll"),
        ],
    );
    assert_eq!(into_root.0, 2);
    assert!(!inside.exists());

    // The image changes: the same baseline now fails.
    image.put("Program Files/App/app.dll", "ordering_6_3.dll");
    let (status, report) = json(image.root(), &out);
    assert_eq!(status, 1);
    let app = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "Program Files\\App\\app.dll")
        .unwrap();
    assert_eq!(app["state"], "older");
}

fn format(root: &Path, baseline: &Path, format: &str) -> (i32, String) {
    let (status, stdout, stderr) = run(
        root,
        &[
            OsStr::new("--baseline"),
            baseline.as_os_str(),
            OsStr::new("--format"),
            OsStr::new(format),
        ],
    );
    assert!(stderr.is_empty(), "{format}: {stderr}");
    (status, stdout)
}

#[test]
fn binary_formats_parse_back() {
    if !wired("binary_formats_parse_back") {
        return;
    }
    let image = golden();
    image.put("Windows/System32/file.dll", "file_v5.dll");
    let dir = outside();
    let baseline = baseline_file(dir.path(), THREE);
    let (_, reference) = json(image.root(), &baseline);
    let states = entry_states(&reference);
    assert_eq!(states, ["older", "ok", "ok"]);

    let (status, text) = format(image.root(), &baseline, "jsonl");
    assert_eq!(status, 1);
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, state) in lines.iter().zip(&states) {
        assert_eq!(line["state"], **state);
        assert_eq!(line["baseline_path"], baseline.display().to_string());
        assert!(line["root"].is_string());
    }

    let (status, text) = format(image.root(), &baseline, "csv");
    assert_eq!(status, 1);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, nextboot::report::VERIFY_CSV_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], "Windows\\System32\\file.dll");
    assert_eq!(&rows[0][3], "older");
    assert_eq!(&rows[0][4], V5);
    assert_eq!(&rows[0][2], "", "no expected sha256: empty field");

    let (status, text) = format(image.root(), &baseline, "yaml");
    assert_eq!(status, 1);
    let yaml: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(yaml, reference, "YAML holds what JSON holds");

    let (status, text) = format(image.root(), &baseline, "table");
    assert_eq!(status, 1);
    assert!(
        !text.contains('\x1b'),
        "no colour off a terminal / with NO_COLOR"
    );
    assert!(text.contains("OLDER"), "{text}");
    assert!(text.contains("3 entries: 2 ok, 1 older"), "{text}");
}
