//! Hostile evidence (issue 15): what nextboot writes never carries the evidence's text as
//! terminal commands, spreadsheet formulas or `.reg` directives, and a gate never passes on
//! what it could not read.
//!
//! The attacker controls the queue strings, the names of files and folders on the volume, the
//! version strings inside PE files and the names of the hive and its logs. Each test puts the
//! whole class of dangerous characters in every one of those places at once, then reads every
//! output format back with an independent parser (serde_json, serde-saphyr, csv, hivexregedit).

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use nextboot::text::is_unsafe;
use serde_json::Value;
use support::{reg_text, Scenario};

const SYS32: &str = "\\??\\C:\\Windows\\System32";

fn sys32(name: &str) -> String {
    format!("{SYS32}\\{name}")
}

/// Every character of the unsafe classes (C0 but NUL, DEL, C1, bidirectional controls, line
/// and paragraph separators), in one string.
fn every_unsafe() -> String {
    (1u32..=0x2fff)
        .filter_map(char::from_u32)
        .filter(|&c| is_unsafe(c))
        .collect()
}

/// Texts an attacker would write into evidence: the whole class, and the classic attacks.
fn attacks() -> Vec<String> {
    vec![
        format!("all{}end", every_unsafe()),
        "\x1b[2J\x1b[H\x1b]0;owned\x07".into(),
        "\r\n#9    UPGRADE      rename  (PendingFileRenameOperations #18)\r\n".into(),
        "\r\n[-HKEY_LOCAL_MACHINE\\NB_SYSTEM\\Select]\r\n".into(),
        "\n\"PendingFileRenameOperations\"=-\n".into(),
        "evil\u{202e}lld.exe".into(),
        "=HYPERLINK(\"http://x\",\"y\")".into(),
        "+1".into(),
        "-2".into(),
        "@SUM(A1)".into(),
        "\tTAB".into(),
        "\rCR".into(),
    ]
}

/// A file name for an attack: what a Linux file system can hold (no `/`), and a name, not a
/// path, for Windows (no `\`, and no `:`, which would name a data stream).
fn file_name(attack: &str) -> String {
    attack.replace(['/', '\\', ':'], "_")
}

/// A scenario in which every attack is a file name on disk, a queue string and a downgrade
/// (staged v8 over v12), and the staged PE's FileVersion string is itself an attack.
fn hostile_scenario() -> (Scenario, Vec<(String, String)>) {
    let mut s = Scenario::new();
    let mut pairs = Vec::new();
    let mut v8 = std::fs::read(support::pe("file_v8.dll")).unwrap();
    // Same length as "8.0.2195.6" (10 UTF-16 units): ESC [2J, CR, LF, RLO, BEL, DEL, C1.
    let hostile_version: Vec<u16> = "\x1b[2J\r\n\u{202e}\x07\x7f\u{9b}".encode_utf16().collect();
    let original: Vec<u8> = support::utf16("8.0.2195.6");
    let at = v8
        .windows(original.len())
        .position(|w| w == original)
        .expect("the FileVersion string of file_v8.dll");
    let patched: Vec<u8> = hostile_version
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    v8[at..at + patched.len()].copy_from_slice(&patched);
    for (i, attack) in attacks().iter().enumerate() {
        let name = file_name(attack);
        let staged = format!("SET{i}{name}.tmp");
        let target = format!("File{i}{name}.dll");
        s.write(&format!("Windows/System32/{staged}"), &v8);
        s.put(&format!("Windows/System32/{target}"), "file_v12.dll");
        pairs.push((sys32(&staged), format!("!{}", sys32(&target))));
        // And one that cannot be resolved, whose reason quotes the string.
        pairs.push((format!("\\??\\Q:\\{attack}"), String::new()));
    }
    s.hive.pending_owned(1, &pairs);
    // Strings with LF cannot be read back through hivexget's line output: write the hive
    // without that check (the JSON report below reads every string back instead).
    let bytes = s.hive.bytes();
    s.replace_hive(bytes);
    (s, pairs)
}

/// The KB 815062 case: staged v8 over v12 on disk.
fn kb815062() -> Scenario {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[(&sys32("SET1.tmp"), &format!("!{}", sys32("File.dll")))],
    );
    s
}

#[cfg(unix)]
/// The finding codes of a JSON report.
fn codes(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

/// No unsafe character but the line ends the writer itself put there.
fn assert_terminal_safe(what: &str, text: &str) {
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| is_unsafe(c) && c != '\n')
    {
        let start = (0..=at.saturating_sub(60))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let around = &text[start..at];
        panic!("{what}: raw {c:?} at byte {at}, after {around:?}");
    }
}

fn run(args: &[&OsStr]) -> (i32, String, String) {
    support::nextboot(args)
}

fn check_args<'a>(s: &'a Scenario, drive: &'a Path, format: &'a str) -> Vec<&'a OsStr> {
    vec![
        "check".as_ref(),
        s.root().as_os_str(),
        "--drive".as_ref(),
        drive.as_os_str(),
        "--format".as_ref(),
        format.as_ref(),
    ]
}

/// A second volume whose own directory name is an attack (it is printed as the volume's path).
fn hostile_drive(s: &Scenario) -> std::ffi::OsString {
    let dir = s.root().join(format!("vol{}", file_name(&every_unsafe())));
    std::fs::create_dir_all(&dir).unwrap();
    let mut arg = std::ffi::OsString::from("D:=");
    arg.push(&dir);
    arg
}

#[test]
fn every_format_keeps_evidence_text_as_data() {
    let (s, pairs) = hostile_scenario();
    s.write_hive();
    let drive = hostile_drive(&s);
    let drive = Path::new(&drive);

    let (status, json, stderr) = run(&check_args(&s, drive, "json"));
    assert_eq!(status, 1, "the downgrades fail the gate: {stderr}");
    assert_terminal_safe("json", &json);
    let report: Value = serde_json::from_str(&json).unwrap();
    let operations = report["operations"].as_array().unwrap();
    assert_eq!(operations.len(), pairs.len());
    for (op, (source, destination)) in operations.iter().zip(&pairs) {
        // The data is exact: escaping is the writer's, not a change of the string.
        assert_eq!(op["source"], source.as_str());
        if destination.is_empty() {
            assert_eq!(op["verdict"], "unresolved");
        } else {
            assert_eq!(op["destination"], destination.as_str());
            assert_eq!(op["verdict"], "downgrade", "{}", op["reason"]);
        }
    }
    let staged_string = operations[0]["source_file"]["file_version_string"]
        .as_str()
        .unwrap();
    assert!(staged_string.starts_with('\x1b'), "{staged_string:?}");

    // The table: every line on screen is one line of the report.
    let (status, table, _) = run(&check_args(&s, drive, "table"));
    assert_eq!(status, 1);
    assert_terminal_safe("table", &table);
    let operation_lines = table
        .lines()
        .filter(|l| {
            l.strip_prefix('#')
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    assert_eq!(
        operation_lines,
        pairs.len(),
        "no fake operation line:\n{table}"
    );
    assert!(table.contains("\\x1b[2J"), "escapes are visible");
    assert!(table.contains("\\u{202e}"));

    // JSON lines: each line stands alone.
    let (_, jsonl, _) = run(&check_args(&s, drive, "jsonl"));
    assert_terminal_safe("jsonl", &jsonl);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), pairs.len());
    assert_eq!(lines[0]["source"], pairs[0].0.as_str());

    // YAML, read back by a YAML parser: the same report.
    let (_, yaml, _) = run(&check_args(&s, drive, "yaml"));
    assert_terminal_safe("yaml", &yaml);
    let from_yaml: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(from_yaml["operations"], report["operations"]);

    // CSV: no cell starts a formula; a neutralised cell is the string with a leading quote.
    let (_, csv_text, _) = run(&check_args(&s, drive, "csv"));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut rows = 0;
    for (row, (source, _)) in reader.records().zip(&pairs) {
        let row = row.unwrap();
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula cell {cell:?}"
            );
        }
        let expected = if source.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{source}")
        } else {
            source.clone()
        };
        assert_eq!(&row[3], expected);
        rows += 1;
    }
    assert_eq!(rows, pairs.len());
}

#[test]
fn formula_queue_strings_are_neutralised_in_csv() {
    let mut s = Scenario::new();
    let formulas = ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"];
    let pairs: Vec<(String, String)> = formulas
        .iter()
        .map(|f| (f.to_string(), String::new()))
        .collect();
    s.hive.pending_owned(1, &pairs);
    let bytes = s.hive.bytes();
    s.replace_hive(bytes);
    s.write_hive();
    let (_, csv_text, stderr) = run(&[
        "check".as_ref(),
        s.root().as_os_str(),
        "--format".as_ref(),
        "csv".as_ref(),
    ]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let sources: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[3].to_string())
        .collect();
    let expected: Vec<String> = formulas.iter().map(|f| format!("'{f}")).collect();
    assert_eq!(sources, expected, "{stderr}");
}

/// `fix` quotes the queue in comments: the `.reg` merged into a copy of the hive changes the
/// pending values and nothing else, whatever the strings hold.
#[test]
fn fix_reg_of_a_hostile_queue_changes_only_the_pending_values() {
    let (s, pairs) = hostile_scenario();
    let hive = s.write_hive();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("fix.reg");
    let (status, stdout, stderr) = run(&[
        "fix".as_ref(),
        s.root().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_terminal_safe("fix summary", &stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("  #")).count(),
        pairs.len() / 2,
        "one summary line per removed operation:\n{stdout}"
    );
    let text = reg_text(&std::fs::read(&out).unwrap());
    // Only CRLF ends lines, and every line is of a kind the writer makes.
    let body = text.strip_suffix("\r\n").unwrap();
    for line in body.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n']) && !line.chars().any(is_unsafe),
            "raw control in {line:?}"
        );
        let known = line.is_empty()
            || line == "Windows Registry Editor Version 5.00"
            || line.starts_with(';')
            || line.starts_with(
                "[HKEY_LOCAL_MACHINE\\NB_SYSTEM\\ControlSet001\\Control\\Session Manager]",
            )
            || line.starts_with("\"PendingFileRenameOperations")
            || line.starts_with("  ");
        assert!(known, "unexpected .reg line {line:?}");
    }

    // Merged into a copy of the hive by an independent tool, only the queue changes.
    let export = |hive: &Path| -> Option<String> {
        let output = Command::new("hivexregedit")
            .args(["--export", "--unsafe-printable-strings"])
            .arg(hive)
            .arg("\\")
            .output();
        match output {
            Ok(output) if output.status.success() => {
                Some(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            Ok(output) => panic!(
                "hivexregedit --export: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(err) => {
                assert!(std::env::var_os("CI").is_none(), "hivexregedit: {err}");
                support::skip("fix merge", "hivexregedit (libwin-hivex-perl) is missing");
                None
            }
        }
    };
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("SYSTEM");
    std::fs::copy(&hive, &copy).unwrap();
    let Some(before) = export(&copy) else {
        return;
    };
    let utf8 = copy_dir.path().join("fix.utf8.reg");
    std::fs::write(&utf8, text.replace("\r\n", "\n")).unwrap();
    let merged = Command::new("hivexregedit")
        .args(["--merge", "--prefix", "HKEY_LOCAL_MACHINE\\NB_SYSTEM"])
        .arg(&copy)
        .arg(&utf8)
        .status()
        .unwrap();
    assert!(merged.success());
    let after = export(&copy).unwrap();
    let keys = |export: &str| -> Vec<String> {
        export
            .lines()
            .filter(|l| l.starts_with('['))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(keys(&before), keys(&after), "no key added or deleted");
    // Outside the pending value, every line is the same.
    let others = |export: &str| -> Vec<String> {
        let mut keep = Vec::new();
        let mut in_pending = false;
        for line in export.lines() {
            if line.starts_with('"') {
                in_pending = line.starts_with("\"PendingFileRenameOperations");
            }
            if !in_pending {
                keep.push(line.to_string());
            }
        }
        keep
    };
    assert_eq!(others(&before), others(&after));
    assert_ne!(before, after, "the pending value itself did change");
}

/// Diagnostics, the summaries of `recover`, `version` and `verify --write-baseline` quote
/// file names: those come out escaped too.
#[test]
fn messages_that_quote_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let name = file_name(&every_unsafe());
    // A diagnostic: a hive that does not exist, named with every control.
    let missing = dir.path().join(format!("SYSTEM{name}"));
    let (status, stdout, stderr) = run(&["check".as_ref(), "--hive".as_ref(), missing.as_os_str()]);
    assert_eq!(status, 2);
    assert!(stdout.is_empty());
    assert_terminal_safe("diagnostic", &stderr);
    assert!(stderr.contains("\\x1b"), "{stderr}");

    // A diagnostic that quotes a hive's own bytes: a registry export whose header is an attack.
    let export = dir.path().join("export.reg");
    std::fs::write(&export, "REGEDIT4\x1b[2J\r\n#9 UPGRADE\u{202e}\r\n").unwrap();
    let (_, _, stderr) = run(&["check".as_ref(), "--hive".as_ref(), export.as_os_str()]);
    assert_terminal_safe("diagnostic quoting the file", &stderr);

    // recover: the hive's name.
    let hive_dir = tempfile::tempdir().unwrap();
    let hive = hive_dir.path().join(format!("SYSTEM{name}"));
    std::fs::write(&hive, support::SystemHiveSpec::new(1).bytes()).unwrap();
    let out = dir.path().join("recovered");
    let (status, stdout, stderr) = run(&[
        "recover".as_ref(),
        hive.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_terminal_safe("recover", &stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // version: a file name and a version string.
    let (s, _) = hostile_scenario();
    let staged = std::fs::read_dir(s.root().join("Windows/System32"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("SET0"))
        .unwrap();
    let (_, stdout, _) = run(&["version".as_ref(), staged.as_os_str()]);
    assert_terminal_safe("version", &stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // verify --write-baseline: the names it found, and the baseline it wrote reads back.
    let baseline = dir.path().join("baseline.yaml");
    let (status, stdout, stderr) = run(&[
        "verify".as_ref(),
        s.root().as_os_str(),
        "--write-baseline".as_ref(),
        baseline.as_os_str(),
        "--include".as_ref(),
        "Windows/System32/*.dll".as_ref(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_terminal_safe("write-baseline", &stdout);
    let written = std::fs::read_to_string(&baseline).unwrap();
    assert_terminal_safe("baseline file", &written);
    let (status, stdout, stderr) = run(&[
        "verify".as_ref(),
        s.root().as_os_str(),
        "--baseline".as_ref(),
        baseline.as_os_str(),
    ]);
    assert_eq!(
        status, 0,
        "the baseline of the image passes on it: {stdout}{stderr}"
    );
    assert_terminal_safe("verify table", &stdout);
}

#[cfg(unix)]
/// Runs nextboot without root's power over permissions (as nobody), when the tests run as
/// root; as the user otherwise.
fn run_unprivileged(args: &[&OsStr]) -> Option<(i32, String, String)> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_nextboot"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_nextboot"))
    };
    let output = match command.args(args).env("NO_COLOR", "1").output() {
        Ok(output) => output,
        Err(err) => {
            assert!(std::env::var_os("CI").is_none(), "setpriv: {err}");
            support::skip("unreadable file", "setpriv (util-linux) is missing");
            return None;
        }
    };
    Some((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[cfg(unix)]
#[test]
fn a_file_that_cannot_be_read_fails_the_gate() {
    use std::os::unix::fs::PermissionsExt;
    let s = kb815062();
    s.write_hive();
    // Everything readable to anyone but the file on disk.
    for entry in walk(s.root()) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let locked = s.root().join("Windows/System32/File.dll");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let Some((status, stdout, stderr)) = run_unprivileged(&[
        "check".as_ref(),
        s.root().as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]) else {
        return;
    };
    assert_eq!(status, 2, "could not be examined: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("the report is written first");
    let op = &report["operations"][0];
    assert_eq!(op["verdict"], "unversioned");
    let reason = op["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be read"), "{reason}");
    assert!(op["target_file"]["read_error"].as_str().is_some());
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "file-unreadable")
        .expect("a file-unreadable finding");
    assert_eq!(finding["severity"], "warning");
    assert!(finding["message"].as_str().unwrap().contains("File.dll"));
    assert_eq!(report["not_examined"].as_array().unwrap().len(), 1);
    assert!(stderr.contains("not fully examined"), "{stderr}");
    // fix writes nothing from an incomplete examination.
    let out_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = out_dir.path().join("fix.reg");
    let (status, _, stderr) = run_unprivileged(&[
        "fix".as_ref(),
        s.root().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
    .unwrap();
    assert_eq!(status, 2, "{stderr}");
    assert!(!out.exists());
    assert!(stderr.contains("could not read or compare"), "{stderr}");
    // A config folder that cannot be listed is named as such, not "no SYSTEM hive".
    let config = s.root().join("Windows/System32/config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (status, _, stderr) = run_unprivileged(&["check".as_ref(), s.root().as_os_str()]).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(status, 2);
    assert!(
        stderr.contains("cannot list") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    assert!(!stderr.contains("no SYSTEM hive"), "{stderr}");
}

#[cfg(unix)]
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// A name on disk that is not valid UTF-8 (a tree copied from a Latin-1 file system) could be
/// the queue's destination: never `new-file`.
#[cfg(unix)]
#[test]
fn a_name_that_is_not_utf8_is_never_taken_for_a_new_file() {
    use std::os::unix::ffi::OsStrExt;
    let mut s = Scenario::new();
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    // "Filé.dll" in Latin-1: é is the single byte 0xE9.
    let latin1 = OsStr::from_bytes(b"Fil\xe9.dll");
    std::fs::copy(
        support::pe("file_v12.dll"),
        s.root().join("Windows/System32").join(latin1),
    )
    .unwrap();
    s.put("Windows/System32/Other.dll", "file_v12.dll");
    s.hive.pending(
        1,
        &[
            (&sys32("SET1.tmp"), &format!("!{}", sys32("Filé.dll"))),
            // A name the undecodable one cannot be: judged as usual.
            (&sys32("Other.dll"), &format!("!{}", sys32("Unrelated.dll"))),
        ],
    );
    let (status, report) = s.check(&[]);
    assert_eq!(
        status, 2,
        "the image could not be examined as Windows would"
    );
    let ops = report["operations"].as_array().unwrap();
    assert_eq!(ops[0]["verdict"], "unresolved");
    assert!(
        ops[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid Unicode"),
        "{}",
        ops[0]["reason"]
    );
    assert_eq!(ops[1]["verdict"], "new-file");
    let codes = codes(&report);
    assert!(codes.contains(&"names-undecodable"), "{codes:?}");
    assert!(codes.contains(&"name-undecodable"), "{codes:?}");
}

/// FIFOs, sockets and devices where a file is expected are refused at once.
#[cfg(unix)]
#[test]
fn inputs_that_are_not_regular_files_are_refused_at_once() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let hive = dir.path().join("SYSTEM");
    let mut spec = support::SystemHiveSpec::new(1);
    spec.pending(1, &[("\\??\\C:\\a", "")]);
    std::fs::write(&hive, spec.bytes()).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out");
    let cases: Vec<(Vec<&OsStr>, &str)> = vec![
        (
            vec!["check".as_ref(), "--hive".as_ref(), fifo.as_os_str()],
            "FIFO",
        ),
        (
            vec!["check".as_ref(), "--hive".as_ref(), "/dev/zero".as_ref()],
            "character device",
        ),
        (
            vec!["check".as_ref(), "--hive".as_ref(), dir.path().as_os_str()],
            "directory",
        ),
        (vec!["version".as_ref(), fifo.as_os_str()], "FIFO"),
        (
            vec![
                "recover".as_ref(),
                fifo.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
            ],
            "FIFO",
        ),
        (
            vec![
                "verify".as_ref(),
                dir.path().as_os_str(),
                "--baseline".as_ref(),
                fifo.as_os_str(),
            ],
            "FIFO",
        ),
    ];
    for (args, kind) in cases {
        let started = Instant::now();
        let (status, stdout, stderr) = run(&args);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} waited"
        );
        assert_eq!(status, 2, "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(kind) || stdout.contains(kind),
            "{args:?}: {stdout}{stderr}"
        );
    }
    // A FIFO given as a transaction log of a dirty hive: a warning, and the gate fails.
    let mut dirty = spec.bytes();
    dirty[4] ^= 1; // sequence numbers differ
    std::fs::write(&hive, &dirty).unwrap();
    let (status, stdout, stderr) = run(&[
        "check".as_ref(),
        "--hive".as_ref(),
        hive.as_os_str(),
        "--log".as_ref(),
        fifo.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stdout.contains("log-unreadable") && stdout.contains("FIFO"),
        "{stdout}"
    );
}

/// `--hive -` reads the hive from standard input; `/dev/stdin` (a pipe) is refused with a
/// pointer to it.
#[test]
fn a_hive_on_standard_input() {
    let mut spec = support::SystemHiveSpec::new(1);
    spec.pending(1, &[("\\??\\C:\\staged.tmp", "!\\??\\C:\\target.dll")]);
    let bytes = spec.bytes();
    let piped = |hive: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nextboot"))
            .args(["check", "--hive", hive, "--format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&bytes);
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let output = piped("-");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["hive"]["path"], "-");
    assert_eq!(report["operations"][0]["source"], "\\??\\C:\\staged.tmp");
    #[cfg(target_os = "linux")]
    {
        let output = piped("/dev/stdin");
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("FIFO") && stderr.contains("--hive -"),
            "{stderr}"
        );
    }
}

#[test]
fn outputs_never_go_into_the_evidence() {
    let s = kb815062();
    let hive = s.write_hive();
    let other = tempfile::tempdir().unwrap();
    let hive_copy_dir = tempfile::tempdir().unwrap();
    let hive_copy = hive_copy_dir.path().join("SYSTEM");
    std::fs::copy(&hive, &hive_copy).unwrap();
    let mut drive = std::ffi::OsString::from("D:=");
    drive.push(other.path());
    let inside_root = s.root().join("Windows/fix.reg");
    let inside_drive = other.path().join("fix.reg");
    let beside_hive = hive_copy_dir.path().join("fix.reg");
    let cases: Vec<(Vec<&OsStr>, &Path, &str)> = vec![
        (vec![s.root().as_os_str()], &inside_root, "inside ROOT"),
        (
            vec![s.root().as_os_str(), "--drive".as_ref(), drive.as_os_str()],
            &inside_drive,
            "inside the volume for D:",
        ),
        (
            vec!["--hive".as_ref(), hive_copy.as_os_str()],
            &beside_hive,
            "inside the hive's folder",
        ),
        (
            vec!["--hive".as_ref(), hive_copy.as_os_str()],
            &hive_copy,
            "is the input",
        ),
    ];
    for (inputs, out, says) in cases {
        let before = std::fs::read(&hive_copy).unwrap();
        let mut args: Vec<&OsStr> = vec!["fix".as_ref()];
        args.extend(inputs);
        args.extend(["--out".as_ref(), out.as_os_str()]);
        let (status, _, stderr) = run(&args);
        assert_eq!(status, 2, "{args:?}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(
            out == hive_copy || !out.exists(),
            "{} written",
            out.display()
        );
        assert_eq!(std::fs::read(&hive_copy).unwrap(), before);
    }
    // recover: beside its hive, or over it.
    for (out, says) in [
        (
            hive_copy_dir.path().join("recovered"),
            "inside the hive's folder",
        ),
        (hive_copy.clone(), "is the input"),
    ] {
        let (status, _, stderr) = run(&[
            "recover".as_ref(),
            hive_copy.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        assert_eq!(status, 2);
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
    // A usable output elsewhere still works.
    let fine = other.path().join("..").join(format!(
        "{}-fix.reg",
        other.path().file_name().unwrap().to_string_lossy()
    ));
    let (status, _, stderr) = run(&[
        "fix".as_ref(),
        s.root().as_os_str(),
        "--out".as_ref(),
        fine.as_os_str(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    std::fs::remove_file(&fine).unwrap();
}

#[test]
fn load_keys_that_reg_load_would_not_take_are_usage_errors() {
    let s = Scenario::new();
    s.write_hive();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("fix.reg");
    for key in [
        "",
        "HKLM\\",
        "NB_SYSTEM",
        "HKCU\\X",
        "HKLM\\My\\Hive",
        "HKLM\\a]b",
        "HKLM\\x\r\n[-HKEY_LOCAL_MACHINE\\SYSTEM]",
    ] {
        let (status, _, stderr) = run(&[
            "fix".as_ref(),
            s.root().as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--load-key".as_ref(),
            key.as_ref(),
        ]);
        assert_eq!(status, 2, "{key:?}");
        assert!(
            stderr.contains("HKLM\\NAME or HKU\\NAME"),
            "{key:?}: {stderr}"
        );
        assert_terminal_safe("usage error", &stderr);
        assert!(!out.exists());
    }
    let (status, _, stderr) = run(&[
        "fix".as_ref(),
        s.root().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--load-key".as_ref(),
        "HKU\\Offline System".as_ref(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    let text = reg_text(&std::fs::read(&out).unwrap());
    assert!(text.contains("[HKEY_USERS\\Offline System\\ControlSet001\\Control\\Session Manager]"));
    assert!(
        text.contains(";   reg load \"HKU\\Offline System\" "),
        "{text}"
    );
}

/// A log that is there but rejected for what it holds is a warning in check and recover, and
/// the gate treats the hive as one whose logs could not be applied.
#[test]
fn a_rejected_log_fails_the_gate_unless_allowed() {
    use support::regf_log::NewLogWriter;
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive.pending(1, &[(&sys32("SET1.tmp"), "")]);
    let old = s.hive.bytes();
    s.hive.pending(
        1,
        &[(&sys32("SET1.tmp"), &format!("!{}", sys32("File.dll")))],
    );
    let new = s.hive.bytes();
    let dirty = NewLogWriter::new(&old, &new).build();
    s.write("Windows/System32/config/SYSTEM.LOG1", &dirty.log1);
    // LOG2 replaced by random bytes (an acquisition error, or an attacker): rejected.
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write("Windows/System32/config/SYSTEM.LOG2", &noise);
    s.replace_hive(dirty.primary);
    let (status, report) = s.check(&[]);
    assert_eq!(status, 2, "{}", report["findings"]);
    assert_eq!(report["hive"]["recovered"], true);
    assert_eq!(report["hive"]["incomplete"], true);
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "log-not-applied")
        .expect("a log-not-applied finding");
    assert_eq!(finding["severity"], "warning");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("SYSTEM.LOG2") && message.contains("may miss"),
        "{message}"
    );
    let (status, _) = s.check(&["--allow-dirty"]);
    assert_eq!(status, 1, "the downgrade the logs hold");
    // The table says it once, not "not applied: not applied:".
    s.write_hive();
    let (_, table, _) = run(&["check".as_ref(), s.root().as_os_str()]);
    assert!(!table.contains("not applied: not applied"), "{table}");
    // recover warns too.
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("recovered");
    let hive = s.root().join("Windows/System32/config/SYSTEM");
    let (status, stdout, stderr) = run(&[
        "recover".as_ref(),
        hive.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains("warning: transaction log") && stdout.contains("SYSTEM.LOG2"),
        "{stdout}"
    );
    assert!(stdout.contains("may be incomplete"), "{stdout}");
}

/// Messages for the cases that used to send a user the wrong way.
#[test]
fn messages_say_what_is_actually_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let check_hive = |bytes: &[u8], extra: &[&str]| {
        let path = dir.path().join("SYSTEM");
        std::fs::write(&path, bytes).unwrap();
        let mut args: Vec<&OsStr> = vec!["check".as_ref(), "--hive".as_ref(), path.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        let (status, _, stderr) = run(&args);
        (
            status,
            stderr
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace(" │", ""),
        )
    };
    // Random bytes after "regf": not a transaction log.
    let mut random: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
        .collect();
    random[..4].copy_from_slice(b"regf");
    let (status, stderr) = check_hive(&random, &[]);
    assert_eq!(status, 2);
    assert!(!stderr.contains("a hive transaction log"), "{stderr}");
    assert!(stderr.contains("is not one"), "{stderr}");
    // A control set that is not there, named on the command line.
    let hive = support::SystemHiveSpec::new(1).bytes();
    let (status, stderr) = check_hive(&hive, &["--control-set", "7"]);
    assert_eq!(status, 2);
    assert!(
        stderr.contains("--control-set names control set 7"),
        "{stderr}"
    );
    assert!(!stderr.contains("Select\\(--control-set)"), "{stderr}");
    // --no-logs on a dirty hive says --no-logs.
    let mut dirty = hive.clone();
    dirty[4] ^= 1;
    let (status, stderr) = check_hive(&dirty, &["--no-logs"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("--no-logs was given"), "{stderr}");
    assert!(!stderr.contains("could be applied"), "{stderr}");
    // ROOT and a --drive for the same letter.
    let s = Scenario::new();
    s.write_hive();
    let mut drive = std::ffi::OsString::from("C:=");
    drive.push(dir.path());
    let (status, _, stderr) = run(&[
        "check".as_ref(),
        s.root().as_os_str(),
        "--drive".as_ref(),
        drive.as_os_str(),
    ]);
    assert_eq!(status, 2);
    assert!(stderr.contains("C: is given twice"), "{stderr}");
}

/// What stands at Windows\System32\config\SYSTEM instead of a hive is named.
#[cfg(unix)]
#[test]
fn a_hive_that_is_not_a_file_is_named_for_what_it_is() {
    type Arrange = fn(&Path);
    let cases: [(&str, Arrange); 3] = [
        ("differ only by case", |config| {
            std::fs::write(
                config.join("system"),
                support::SystemHiveSpec::new(1).bytes(),
            )
            .unwrap();
        }),
        ("is a symbolic link", |config| {
            std::fs::rename(config.join("SYSTEM"), config.join("real")).unwrap();
            std::os::unix::fs::symlink("real", config.join("SYSTEM")).unwrap();
        }),
        ("is a FIFO", |config| {
            std::fs::remove_file(config.join("SYSTEM")).unwrap();
            let path = std::ffi::CString::new(config.join("SYSTEM").to_str().unwrap()).unwrap();
            // SAFETY: a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        }),
    ];
    for (says, arrange) in cases {
        let s = Scenario::new();
        s.write_hive();
        arrange(&s.root().join("Windows/System32/config"));
        let (status, _, stderr) = run(&["check".as_ref(), s.root().as_os_str()]);
        assert_eq!(status, 2, "{says}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(!stderr.contains("no SYSTEM hive"), "{says}: {stderr}");
    }
}
