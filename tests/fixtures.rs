//! The committed fixtures are what the project's generators write, and the generated hives
//! read back through an independent reader (hivex).
//!
//! Regenerate the demo volumes with `NEXTBOOT_REGENERATE=1 cargo test --test fixtures`.

mod support;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use support::{regf, SystemHiveSpec};

const DEMO: &str = "scenarios/kb815062";
const DOWNDATE: &str = "scenarios/downdate";

/// KB 815062: hotfix A staged File.dll v8 as SET1.tmp (file in use) with replace-existing;
/// hotfix B then copied v12 directly. A second pending pair upgrades a helper DLL, a third
/// deletes a leftover temporary file. A Windows of that time has SOFTWARE (no servicing
/// command in it) and no COMPONENTS.
fn demo() -> Demo {
    let mut system = SystemHiveSpec::new(1);
    system.select(1, 1, 1);
    system.pending(
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
    Demo {
        dir: DEMO,
        system,
        hives: vec![(
            "Windows/System32/config/SOFTWARE",
            nextboot_regf_writer::servicing::software_hive(None).to_bytes(),
        )],
        files: vec![
            ("Windows/System32/File.dll", "file_v12.dll"),
            ("Windows/System32/SET1.tmp", "file_v8.dll"),
            ("Windows/System32/helper.dll", "file_v5.dll"),
            ("Windows/System32/SET2.tmp", "file_v8.dll"),
        ],
        texts: vec![(
            "Windows/Temp/hotfix_a.log",
            b"hotfix A: File.dll in use, staged as SET1.tmp for the next boot\n".to_vec(),
        )],
    }
}

fn demo_root() -> PathBuf {
    support::testdata().join(DEMO)
}

#[test]
fn demo_volume_is_what_its_generator_writes() {
    demo().assert_committed();
}

/// Windows Downdate as published (SafeBreach, Black Hat USA 2024): SOFTWARE `PoqexecCmdline`
/// names a list of the attacker's outside WinSxS, COMPONENTS carries the template's identifier
/// (as does the list), TrustedInstaller starts automatically, and the list hard-links older
/// kernel-mode binaries from a user's folder over System32's.
fn downdate_demo() -> Demo {
    use nextboot_regf_writer::servicing::{
        action_list, components_hive, software_hive, trusted_installer_start,
    };
    const TEMPLATE: &str = "916ae75edb30da0146730000dc1be027";
    let mut system = SystemHiveSpec::new(1);
    system.select(1, 1, 1);
    trusted_installer_start(&mut system, 1, 2);
    let list = action_list(
        TEMPLATE,
        "10.0.22621.2567",
        r#"<HardlinkFile source="\??\C:\Users\Public\Downdate\ntoskrnl.exe" destination="\SystemRoot\System32\ntoskrnl.exe"/>
<HardlinkFile source="\??\C:\Users\Public\Downdate\securekernel.exe" destination="\SystemRoot\System32\securekernel.exe"/>"#,
    );
    Demo {
        dir: DOWNDATE,
        system,
        hives: vec![
            (
                "Windows/System32/config/SOFTWARE",
                software_hive(Some(&[
                    r"\??\C:\Windows\System32\poqexec.exe",
                    "/display_progress",
                    r"\??\C:\Users\Public\Downdate\pending.xml",
                ]))
                .to_bytes(),
            ),
            (
                "Windows/System32/config/COMPONENTS",
                components_hive(Some(TEMPLATE)).to_bytes(),
            ),
        ],
        files: vec![
            ("Windows/System32/ntoskrnl.exe", "file_v12.dll"),
            ("Windows/System32/securekernel.exe", "file_v12.dll"),
            ("Users/Public/Downdate/ntoskrnl.exe", "file_v5.dll"),
            ("Users/Public/Downdate/securekernel.exe", "file_v8.dll"),
        ],
        texts: vec![("Users/Public/Downdate/pending.xml", list)],
    }
}

/// A demo volume: its SYSTEM hive, other hives, PE fixtures and other files.
struct Demo {
    dir: &'static str,
    system: SystemHiveSpec,
    hives: Vec<(&'static str, Vec<u8>)>,
    files: Vec<(&'static str, &'static str)>,
    texts: Vec<(&'static str, Vec<u8>)>,
}

impl Demo {
    /// Regenerates the committed volume with `NEXTBOOT_REGENERATE`, then checks it is what
    /// the generator writes.
    fn assert_committed(&self) {
        let root = support::testdata().join(self.dir);
        let system = self.system.bytes();
        let mut written: Vec<(&str, Vec<u8>)> = vec![("Windows/System32/config/SYSTEM", system)];
        written.extend(self.hives.iter().cloned());
        written.extend(self.texts.iter().cloned());
        for (relative, fixture) in &self.files {
            written.push((relative, std::fs::read(support::pe(fixture)).unwrap()));
        }
        if std::env::var_os("NEXTBOOT_REGENERATE").is_some() {
            let _ = std::fs::remove_dir_all(&root);
            for (relative, bytes) in &written {
                let target = root.join(relative);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(target, bytes).unwrap();
            }
        }
        for (relative, bytes) in &written {
            assert!(
                std::fs::read(root.join(relative)).ok().as_ref() == Some(bytes),
                "{}/{relative} differs from the generator: NEXTBOOT_REGENERATE=1 cargo test --test fixtures",
                self.dir
            );
        }
        support::verify_with_hivex(&self.system, &root.join("Windows/System32/config/SYSTEM"));
    }
}

#[test]
fn downdate_demo_volume_is_what_its_generator_writes() {
    downdate_demo().assert_committed();
}

#[test]
fn downdate_demo_is_a_downgrade_with_alerts_and_exits_1() {
    let root = support::testdata().join(DOWNDATE);
    let (status, stdout, stderr) = support::nextboot(&["check".as_ref(), root.as_os_str()]);
    assert_eq!(status, 1, "{stderr}");
    for expected in [
        "registered by PoqexecCmdline",
        "runs at the next boot",
        "ALERT: the action list that runs at the next boot is",
        "2 operations: 2 downgrade",
        "3 alerts",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
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
    let bytes = demo().system.bytes();
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
