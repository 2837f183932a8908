//! The committed fixtures are what the project's generators write, and the generated hives
//! read back through an independent reader (hivex).
//!
//! Regenerate the demo volume with `NEXTBOOT_REGENERATE=1 cargo test --test fixtures`.

mod support;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use support::{regf, SystemHiveSpec};

const DEMO: &str = "scenarios/kb815062";

/// KB 815062: hotfix A staged File.dll v8 as SET1.tmp (file in use) with replace-existing;
/// hotfix B then copied v12 directly. A second pending pair upgrades a helper DLL, a third
/// deletes a leftover temporary file.
fn demo() -> (SystemHiveSpec, Vec<(&'static str, &'static str)>) {
    let mut hive = SystemHiveSpec::new(1);
    hive.select(1, 1, 1);
    hive.pending(
        1,
        &[
            (
                "\\??\\C:\\WINDOWS\\system32\\SET1.tmp",
                "!\\??\\C:\\WINDOWS\\system32\\File.dll",
            ),
            (
                "\\??\\C:\\WINDOWS\\system32\\SET2.tmp",
                "!\\??\\C:\\WINDOWS\\system32\\helper.dll",
            ),
            ("\\??\\C:\\WINDOWS\\TEMP\\hotfix_a.log", ""),
        ],
    );
    let files = vec![
        ("Windows/System32/File.dll", "file_v12.dll"),
        ("Windows/System32/SET1.tmp", "file_v8.dll"),
        ("Windows/System32/helper.dll", "file_v5.dll"),
        ("Windows/System32/SET2.tmp", "file_v8.dll"),
    ];
    (hive, files)
}

/// A plain text file of the demo (not a PE).
const DEMO_LOG: (&str, &str) = (
    "Windows/Temp/hotfix_a.log",
    "hotfix A: File.dll in use, staged as SET1.tmp for the next boot\n",
);

fn demo_root() -> PathBuf {
    support::testdata().join(DEMO)
}

#[test]
fn demo_volume_is_what_its_generator_writes() {
    let (hive, files) = demo();
    let root = demo_root();
    let hive_path = root.join("Windows/System32/config/SYSTEM");
    if std::env::var_os("NEXTBOOT_REGENERATE").is_some() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(hive_path.parent().unwrap()).unwrap();
        std::fs::write(&hive_path, hive.bytes()).unwrap();
        for (relative, fixture) in &files {
            let target = root.join(relative);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(support::pe(fixture), target).unwrap();
        }
        let log = root.join(DEMO_LOG.0);
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(log, DEMO_LOG.1).unwrap();
    }
    assert_eq!(
        std::fs::read(&hive_path).expect("the demo hive is committed"),
        hive.bytes(),
        "the committed demo hive differs from the generator: NEXTBOOT_REGENERATE=1 cargo test --test fixtures"
    );
    for (relative, fixture) in &files {
        assert_eq!(
            std::fs::read(root.join(relative)).unwrap(),
            std::fs::read(support::pe(fixture)).unwrap(),
            "{relative}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join(DEMO_LOG.0)).unwrap(),
        DEMO_LOG.1
    );
    support::verify_with_hivex(&hive, &hive_path);
}

#[test]
fn demo_check_prints_a_table_that_names_the_downgrade_and_exits_1() {
    let (status, stdout, stderr) = support::nextboot(&["check".as_ref(), demo_root().as_os_str()]);
    assert_eq!(status, 1, "{stderr}");
    let block: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.contains("DOWNGRADE"))
        .take(6)
        .collect();
    assert!(!block.is_empty(), "no DOWNGRADE in:\n{stdout}");
    let block = block.join("\n");
    for expected in [
        "SET1.tmp",
        "File.dll",
        "8.0.2195.6",
        "on disk: 12.0.2195.7",
        "puts version 8.0.2195.6 in place of version 12.0.2195.7",
    ] {
        assert!(
            block.contains(expected),
            "missing {expected:?} in:\n{block}"
        );
    }
    assert!(
        stdout.contains("3 operations: 1 downgrade, 1 upgrade, 1 delete"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no colour when not on a terminal");
}

/// hivexregedit prints exact value bytes (`hex(7):..`); the values hivexget cannot print
/// (odd lengths, bad UTF-16, big data) are checked here.
#[test]
fn odd_and_big_values_read_back_exactly_with_hivexregedit() {
    let mut hive = SystemHiveSpec::new(1);
    let big: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                format!("\\??\\C:\\Windows\\WinSxS\\Temp\\PendingRenames\\{i:04}.dll"),
                format!("!\\??\\C:\\Windows\\System32\\file{i:04}.dll"),
            )
        })
        .collect();
    hive.pending_owned(1, &big);
    let mut odd = support::utf16("\\??\\C:\\a\0\\??\\C:\\b\0\0");
    odd.push(0x41);
    hive.pending_raw(1, support::PFRO2, &odd);
    let value = support::movefile_value(&big);
    assert!(
        value.len() > 16_344,
        "exercise big data ({} bytes)",
        value.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SYSTEM");
    std::fs::write(&path, hive.bytes()).unwrap();
    support::verify_with_hivex(&hive, &path);

    let output = match Command::new("hivexregedit")
        .args([OsStr::new("--export"), path.as_os_str(), OsStr::new("\\")])
        .output()
    {
        Ok(output) if output.status.success() => output,
        other => {
            assert!(std::env::var_os("CI").is_none(), "hivexregedit: {other:?}");
            support::skip(
                "hivexregedit read-back",
                "hivexregedit (libwin-hivex-perl) is missing",
            );
            return;
        }
    };
    let export = String::from_utf8_lossy(&output.stdout);
    assert_eq!(exported_bytes(&export, support::PFRO), Some(value));
    assert_eq!(exported_bytes(&export, support::PFRO2), Some(odd));
}

/// The bytes of `"name"=hex(7):..` in a regedit export (continuation lines end in `\`).
fn exported_bytes(export: &str, name: &str) -> Option<Vec<u8>> {
    let start = export.find(&format!("\"{name}\"=hex(7):"))?;
    let rest = &export[start + name.len() + 10..];
    let mut hex = String::new();
    for line in rest.lines() {
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(continued) => hex.push_str(continued),
            None => {
                hex.push_str(line);
                break;
            }
        }
    }
    hex.split(',')
        .filter(|b| !b.is_empty())
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

#[test]
fn regf_writer_output_is_accepted_by_nt_hive_as_clean() {
    let (hive, _) = demo();
    let bytes = hive.bytes();
    let system = nextboot::hive::SystemHive::read(&bytes).unwrap();
    assert!(!system.base.is_dirty());
    assert_eq!(
        nt_hive::Hive::new(bytes.as_slice())
            .err()
            .map(|e| e.to_string()),
        None
    );
    assert_eq!(
        regf::base_block_checksum(&bytes[..4096]),
        system.base.stored_checksum
    );
}
