//! `nextboot fix`: the .reg it writes, applied to a copy of the hive with Debian's
//! `hivexregedit --merge` (re-encoded to UTF-8 with LF first, as its manual says), leaves no
//! operation that downgrades or is overridden, and changes nothing else.

mod support;

use std::ffi::OsStr;

use std::process::Command;

use serde_json::Value;
use support::{reg_text, verdicts, Scenario};

const LOAD_KEY: &str = "HKEY_LOCAL_MACHINE\\NB_SYSTEM";

fn sys32(name: &str) -> String {
    format!("\\??\\C:\\Windows\\System32\\{name}")
}

fn replace(path: &str) -> String {
    format!("!{path}")
}

/// Runs `fix` on the scenario; returns the .reg bytes and the fix's stdout.
fn fix(s: &Scenario, extra: &[&str]) -> (i32, Vec<u8>, String) {
    s.write_hive();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("fix.reg");
    let mut args: Vec<&OsStr> = vec!["fix".as_ref(), s.root().as_os_str()];
    args.extend(["--out".as_ref(), out.as_os_str()]);
    args.extend(extra.iter().map(OsStr::new));
    let (status, stdout, stderr) = support::nextboot(&args);
    let bytes = std::fs::read(&out).unwrap_or_default();
    assert!(status != 0 || !bytes.is_empty(), "{stderr}");
    (status, bytes, stdout)
}

/// Applies the .reg to the scenario's hive with hivexregedit; false when the tool is missing
/// outside CI (the caller skips).
fn merge(s: &Scenario, reg: &[u8]) -> bool {
    let text = reg_text(reg);
    assert!(text.contains("\r\n"), "CRLF line ends");
    let dir = tempfile::tempdir().unwrap();
    let utf8 = dir.path().join("fix.utf8.reg");
    std::fs::write(&utf8, text.replace("\r\n", "\n")).unwrap();
    let hive = s.root().join("Windows/System32/config/SYSTEM");
    let status = Command::new("hivexregedit")
        .args([
            OsStr::new("--merge"),
            "--prefix".as_ref(),
            LOAD_KEY.as_ref(),
        ])
        .arg(&hive)
        .arg(&utf8)
        .status();
    match status {
        Ok(status) => {
            assert!(status.success(), "hivexregedit --merge failed");
            true
        }
        Err(err) => {
            assert!(std::env::var_os("CI").is_none(), "hivexregedit: {err}");
            support::skip(
                "fix round trip",
                "hivexregedit (libwin-hivex-perl) is missing",
            );
            false
        }
    }
}

/// The verdicts after the fix: apply it, then check the same volume.
fn check_after(s: &mut Scenario, reg: &[u8]) -> Option<Value> {
    // The scenario writes its spec on every check: keep the merged hive instead.
    s.write_hive();
    if !merge(s, reg) {
        return None;
    }
    let merged = std::fs::read(s.root().join("Windows/System32/config/SYSTEM")).unwrap();
    s.replace_hive(merged);
    Some(s.check(&[]).1)
}

fn assert_fixed(before: &Value, after: &Value, removed: &[usize]) {
    let before_v = verdicts(before);
    let after_v = verdicts(after);
    assert_eq!(
        before_v.len(),
        after_v.len(),
        "operations keep their places"
    );
    for (i, (b, a)) in before_v.iter().zip(&after_v).enumerate() {
        assert!(a != "downgrade" && a != "overridden", "#{i} is still {a}");
        if removed.contains(&i) {
            assert_eq!(a, "delete", "#{i}: the staged file is deleted instead");
            continue;
        }
        // Superseded renames may become the final writer once a later one is removed.
        let was_superseded_by_removed = b == "superseded"
            && before["operations"][i]["superseded_by"]
                .as_u64()
                .is_some_and(|by| removed.contains(&(by as usize)));
        if !was_superseded_by_removed {
            assert_eq!(a, b, "#{i} keeps its verdict");
        }
        assert_eq!(
            after["operations"][i]["source"], before["operations"][i]["source"],
            "#{i} keeps its bytes"
        );
        assert_eq!(
            after["operations"][i]["destination"],
            before["operations"][i]["destination"]
        );
    }
}

fn removed_indices(reg: &[u8]) -> Vec<usize> {
    reg_text(reg)
        .lines()
        .filter_map(|line| line.strip_prefix(";   #"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn kb815062_demo_fix_removes_the_downgrade() {
    let demo = support::testdata().join("scenarios/kb815062");
    let hive = demo.join("Windows/System32/config/SYSTEM");
    let before_hash = nextboot::evidence::sha256_hex(&std::fs::read(&hive).unwrap());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("fix.reg");
    let (status, stdout, stderr) = support::nextboot(&[
        "fix".as_ref(),
        demo.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("1 operation removed"), "{stdout}");
    let text = reg_text(&std::fs::read(&out).unwrap());
    assert!(text.starts_with("Windows Registry Editor Version 5.00\r\n"));
    assert!(
        text.contains("[HKEY_LOCAL_MACHINE\\NB_SYSTEM\\ControlSet001\\Control\\Session Manager]")
    );
    assert!(text.contains(";   #0 downgrade: \\??\\C:\\WINDOWS\\system32\\SET1.tmp"));
    assert!(text.contains("\"PendingFileRenameOperations\"=hex(7):"));
    // The evidence is unchanged, and the output is never overwritten.
    assert_eq!(
        nextboot::evidence::sha256_hex(&std::fs::read(&hive).unwrap()),
        before_hash
    );
    let (status, _, stderr) = support::nextboot(&[
        "fix".as_ref(),
        demo.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(status, 2);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn seed_scenarios_round_trip() {
    // KB 815062 and the overridden fix, in one queue.
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.put("Windows/System32/fix.dll", "fix_v0_1.dll");
    s.put("Windows/System32/SETA.tmp", "fix_v0_3.dll");
    s.put("Windows/System32/SETB.tmp", "fix_v0_2.dll");
    s.hive.pending(
        1,
        &[
            (&sys32("SET1.tmp"), &replace(&sys32("File.dll"))),
            (&sys32("SETA.tmp"), &replace(&sys32("fix.dll"))),
            (&sys32("SETB.tmp"), &replace(&sys32("fix.dll"))),
        ],
    );
    let (_, before) = s.check(&[]);
    assert_eq!(verdicts(&before), ["downgrade", "superseded", "overridden"]);
    let (status, reg, _) = fix(&s, &[]);
    assert_eq!(status, 0);
    assert_eq!(removed_indices(&reg), [0, 2]);
    let Some(after) = check_after(&mut s, &reg) else {
        return;
    };
    assert_eq!(verdicts(&after), ["delete", "upgrade", "delete"]);
    assert_fixed(&before, &after, &[0, 2]);
    // The newest staged fix (0.3) is what the target gets.
    assert_eq!(after["operations"][1]["source_version"], "0.3.0.0");
}

#[test]
fn removal_repeats_until_no_older_file_wins() {
    // Disk has v12; v8 then v5 are staged: removing the v5 makes the v8 the final writer,
    // which is still older than the disk, so it goes too.
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/T1.tmp", "file_v8.dll");
    s.put("Windows/System32/T2.tmp", "file_v5.dll");
    s.hive.pending(
        1,
        &[
            (&sys32("T1.tmp"), &replace(&sys32("File.dll"))),
            (&sys32("T2.tmp"), &replace(&sys32("File.dll"))),
        ],
    );
    let (_, before) = s.check(&[]);
    assert_eq!(verdicts(&before), ["superseded", "downgrade"]);
    let (_, reg, stdout) = fix(&s, &[]);
    assert!(
        stdout.contains("2 replays") || stdout.contains("3 replays"),
        "{stdout}"
    );
    assert_eq!(removed_indices(&reg), [0, 1]);
    let Some(after) = check_after(&mut s, &reg) else {
        return;
    };
    assert_eq!(verdicts(&after), ["delete", "delete"]);
}

#[test]
fn five_hundred_operations_round_trip() {
    let mut s = Scenario::new();
    let fixtures = ["file_v5.dll", "file_v8.dll", "file_v12.dll"];
    let mut pairs: Vec<(String, String)> = Vec::new();
    // 100 targets with disk versions and staged files of every ordering, plus deletes,
    // missing sources and renames without `!` onto existing files.
    for t in 0..100 {
        let disk = fixtures[t % 3];
        s.put(&format!("Windows/System32/t{t:03}.dll"), disk);
        for k in 0..3 {
            let staged = format!("Windows/Staging/s{t:03}_{k}.tmp");
            s.put(&staged, fixtures[(t + k) % 3]);
            pairs.push((
                format!("\\??\\C:\\{}", staged.replace('/', "\\")),
                replace(&sys32(&format!("t{t:03}.dll"))),
            ));
        }
        pairs.push((
            format!("\\??\\C:\\Windows\\Staging\\gone{t:03}.tmp"),
            String::new(),
        ));
        pairs.push((
            format!("\\??\\C:\\Windows\\Staging\\missing{t:03}.tmp"),
            sys32(&format!("t{t:03}.dll")),
        ));
    }
    assert_eq!(pairs.len(), 500);
    s.hive.pending_owned(1, &pairs);
    let (_, before) = s.check(&[]);
    let bad = |report: &Value| {
        verdicts(report)
            .iter()
            .filter(|v| *v == "downgrade" || *v == "overridden")
            .count()
    };
    assert!(bad(&before) > 0);
    let (status, reg, _) = fix(&s, &[]);
    assert_eq!(status, 0);
    let removed = removed_indices(&reg);
    assert!(!removed.is_empty());
    let Some(after) = check_after(&mut s, &reg) else {
        return;
    };
    assert_eq!(bad(&after), 0);
    assert_fixed(&before, &after, &removed);
}

#[test]
fn dirty_hive_without_logs_is_not_fixed_unless_allowed() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.hive
        .pending(1, &[(&sys32("SET1.tmp"), &replace(&sys32("File.dll")))]);
    s.hive.writer.sequence_numbers(9, 8);
    let (status, reg, _) = fix(&s, &[]);
    assert_eq!(status, 2);
    assert!(reg.is_empty(), "nothing written");
    let (status, reg, _) = fix(&s, &["--allow-dirty"]);
    assert_eq!(status, 0);
    assert_eq!(removed_indices(&reg), [0]);
}
