//! Test support: scenario volumes built from the project's own fixtures.
//!
//! A scenario is a temporary directory laid out like a Windows system volume, with PE files
//! from `testdata/pe/bin` (built by `testdata/pe/build.sh`) and a SYSTEM hive written by the
//! regf writer of `crates/regf-writer`, re-exported here as `support::regf` and
//! `support::regf_log`.

#![allow(dead_code)]

// Not every test binary uses both (as with `dead_code` above).
#[allow(unused_imports)]
pub use nextboot_regf_writer::{regf, regf_log};

pub mod container;
pub mod ntfs_image;

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(unused_imports)]
pub use nextboot_regf_writer::system::{movefile_value, utf16, SystemHiveSpec, PFRO, PFRO2};

/// The repository's `testdata` folder.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// A PE fixture by name (`file_v8.dll`).
pub fn pe(name: &str) -> PathBuf {
    testdata().join("pe").join("bin").join(name)
}

/// `../shared/hives`, when it exists next to the repository.
pub fn shared_hives() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/hives");
    dir.is_dir().then_some(dir)
}

/// Says plainly that a test was skipped, and why.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// Reads every pending value of a written hive back with Debian's `hivexget` and checks
/// that it holds the bytes written. Required in CI; skipped with a message elsewhere when
/// hivexget is missing.
pub fn verify_with_hivex(spec: &SystemHiveSpec, hive: &Path) {
    for (set, name, bytes) in spec.pending_values() {
        let Some(expected) = well_formed_strings(bytes) else {
            continue; // hivexget cannot print these; hivexregedit checks them in fixtures.rs
        };
        let output = match Command::new("hivexget")
            .arg(hive)
            .arg(format!("ControlSet{set:03}\\Control\\Session Manager"))
            .arg(name)
            .output()
        {
            Ok(output) => output,
            Err(err) => {
                assert!(std::env::var_os("CI").is_none(), "hivexget: {err}");
                skip("hivexget read-back", "hivexget is not installed");
                return;
            }
        };
        assert!(
            output.status.success(),
            "hivexget failed on {}",
            hive.display()
        );
        let text = String::from_utf8(output.stdout).expect("UTF-8 from hivexget");
        // hivexget prints one line per NUL-terminated string, the list terminator as one
        // more empty string.
        let printed: Vec<&str> = text
            .strip_suffix('\n')
            .unwrap_or(&text)
            .split('\n')
            .collect();
        assert_eq!(
            printed, expected,
            "hivexget reads {name} of ControlSet{set:03} differently"
        );
    }
}

/// The strings hivexget prints for `bytes`, when the value is well-formed UTF-16 ending in NUL.
fn well_formed_strings(bytes: &[u8]) -> Option<Vec<String>> {
    if bytes.is_empty() || bytes.len() % 2 == 1 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    if units.last() != Some(&0) {
        return None;
    }
    let text = String::from_utf16(&units[..units.len() - 1]).ok()?;
    Some(text.split('\0').map(str::to_string).collect())
}

/// A `.reg` file as text: regedit's UTF-16LE after its BOM (as hivexregedit wants it, UTF-8).
pub fn reg_text(bytes: &[u8]) -> String {
    assert_eq!(&bytes[..2], &[0xff, 0xfe], "UTF-16LE with a BOM");
    let units: Vec<u16> = bytes[2..]
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

/// A temporary system volume.
pub struct Scenario {
    dir: tempfile::TempDir,
    pub hive: SystemHiveSpec,
    raw_hive: Option<Vec<u8>>,
}

impl Scenario {
    pub fn new() -> Scenario {
        let dir = tempfile::tempdir().expect("temporary directory");
        let scenario = Scenario {
            dir,
            hive: SystemHiveSpec::new(1),
            raw_hive: None,
        };
        scenario.mkdir("Windows/System32/config");
        scenario
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn mkdir(&self, relative: &str) {
        std::fs::create_dir_all(self.root().join(relative)).expect("create directory");
    }

    /// Copies a PE fixture to `relative` (parents created).
    pub fn put(&self, relative: &str, fixture: &str) {
        let target = self.root().join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::copy(pe(fixture), &target).unwrap_or_else(|e| panic!("copy {fixture}: {e}"));
    }

    pub fn write(&self, relative: &str, bytes: &[u8]) {
        let target = self.root().join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(target, bytes).expect("write file");
    }

    /// Writes the hive to `Windows/System32/config/SYSTEM` (unless [`Scenario::replace_hive`]
    /// gave other bytes).
    pub fn write_hive(&self) -> PathBuf {
        let path = self.root().join("Windows/System32/config/SYSTEM");
        match &self.raw_hive {
            Some(bytes) => std::fs::write(&path, bytes).expect("write hive"),
            None => {
                std::fs::write(&path, self.hive.bytes()).expect("write hive");
                verify_with_hivex(&self.hive, &path);
            }
        }
        path
    }

    /// Uses these bytes as the SYSTEM hive instead of the spec (a dirty primary, say).
    pub fn replace_hive(&mut self, bytes: Vec<u8>) {
        self.raw_hive = Some(bytes);
    }

    /// Runs `nextboot check ROOT --format json` plus `args`; returns the exit status and the
    /// parsed report.
    pub fn check(&self, args: &[&str]) -> (i32, serde_json::Value) {
        self.write_hive();
        let mut all: Vec<&std::ffi::OsStr> = vec!["check".as_ref(), self.root().as_os_str()];
        all.extend(["--format", "json"].map(std::ffi::OsStr::new));
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let output = Command::new(env!("CARGO_BIN_EXE_nextboot"))
            .args(all)
            .output()
            .expect("run nextboot");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "report is not JSON ({e}):\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap_or(-1), report)
    }
}

/// With `NEXTBOOT_KEEP_SCENARIOS=DIR`, every scenario volume is copied to `DIR` as the test
/// leaves it: a corpus of generated images for `benches/same-outputs.sh`.
impl Drop for Scenario {
    fn drop(&mut self) {
        let Some(keep) = std::env::var_os("NEXTBOOT_KEEP_SCENARIOS") else {
            return;
        };
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let test = std::thread::current()
            .name()
            .unwrap_or("scenario")
            .replace("::", "-");
        let target = Path::new(&keep).join(format!("{test}-{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&keep);
        let _ = Command::new("cp")
            .arg("-a")
            .arg(self.root())
            .arg(&target)
            .status();
    }
}

/// A volume whose SYSTEM hive is dirty: its primary queues one operation, its logs (written by
/// `logs` from the old and new hive) a second one, a downgrade.
pub fn dirty_scenario(logs: impl Fn(&[u8], &[u8]) -> regf_log::DirtyHive) -> Scenario {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.put("Windows/System32/SET2.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[(
            "\\??\\C:\\Windows\\System32\\SET2.tmp",
            "\\??\\C:\\Windows\\System32\\new.dll",
        )],
    );
    let old = s.hive.bytes();
    s.hive.pending(
        1,
        &[
            (
                "\\??\\C:\\Windows\\System32\\SET2.tmp",
                "\\??\\C:\\Windows\\System32\\new.dll",
            ),
            (
                "\\??\\C:\\Windows\\System32\\SET1.tmp",
                "!\\??\\C:\\Windows\\System32\\File.dll",
            ),
        ],
    );
    // Other writes of the same flush: the hive grows by several pages.
    s.hive.writer.value(
        "ControlSet001\\Services\\Filler",
        "Blob",
        regf::REG_BINARY,
        &[0x5a; 20_000],
    );
    let new = s.hive.bytes();
    let dirty = logs(&old, &new);
    s.write("Windows/System32/config/SYSTEM.LOG1", &dirty.log1);
    s.write("Windows/System32/config/system.log2", &dirty.log2);
    s.replace_hive(dirty.primary);
    s
}

/// Runs the binary with arguments; returns status, stdout, stderr.
pub fn nextboot(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nextboot"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run nextboot");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The verdict words of a JSON report, in operation order.
pub fn verdicts(report: &serde_json::Value) -> Vec<String> {
    report["operations"]
        .as_array()
        .expect("operations array")
        .iter()
        .map(|op| op["verdict"].as_str().expect("verdict").to_string())
        .collect()
}
