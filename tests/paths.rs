//! Paths as Windows sees them: NT path forms, case, short names, links and containment.

mod support;

use support::{regf, verdicts, Scenario};

fn sys32(name: &str) -> String {
    format!("\\??\\C:\\Windows\\System32\\{name}")
}

fn replace(path: &str) -> String {
    format!("!{path}")
}

fn reason(report: &serde_json::Value, index: usize) -> String {
    report["operations"][index]["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_dos_device_form_and_systemroot_name_the_same_file() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    for name in ["A", "B", "C", "D", "E"] {
        s.put(&format!("Windows/System32/{name}.tmp"), "file_v8.dll");
    }
    s.hive.pending(
        1,
        &[
            (
                "\\??\\C:\\Windows\\System32\\A.tmp",
                "!\\??\\C:\\Windows\\System32\\File.dll",
            ),
            (
                "\\DosDevices\\C:\\Windows\\System32\\B.tmp",
                "!\\DosDevices\\c:\\windows\\system32\\file.dll",
            ),
            (
                "\\GLOBAL??\\C:\\Windows\\System32\\C.tmp",
                "!\\GLOBAL??\\C:\\Windows\\System32\\File.dll",
            ),
            (
                "\\SystemRoot\\System32\\D.tmp",
                "!\\SystemRoot\\system32\\FILE.DLL",
            ),
            // The unnamed data stream is the file itself.
            (
                "\\??\\C:\\Windows\\System32\\E.tmp::$DATA",
                "!\\??\\C:\\Windows\\System32\\File.dll",
            ),
        ],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(
        verdicts(&report),
        [
            "superseded",
            "superseded",
            "superseded",
            "superseded",
            "downgrade"
        ]
    );
    assert_eq!(report["windows_directory"], "Windows");
    // One file, five spellings: one entry in the list of changed files for the target.
    let targets: Vec<&serde_json::Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["operations"].as_array().unwrap().len() == 5)
        .collect();
    assert_eq!(targets.len(), 1);
}

#[test]
fn unresolved_forms_say_why() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/x.tmp", "file_v8.dll");
    let cases = [
        ("\\??\\UNC\\server\\share\\x.dll", "network share"),
        ("\\Device\\HarddiskVolume7\\x.dll", "--device 7=DIR"),
        ("\\Device\\Floppy0\\x.dll", "HarddiskVolumeN"),
        (
            "\\??\\Volume{01234567-89AB-CDEF-0123-456789ABCDEF}\\x.dll",
            "MountedDevices",
        ),
        (
            "\\??\\C:\\Windows\\System32\\x.tmp:payload",
            "alternate data stream \"payload\"",
        ),
        ("\\??\\Q:\\x.dll", "--drive Q:=DIR"),
        ("C:\\Windows\\x.dll", "not an NT path"),
    ];
    let pairs: Vec<(&str, String)> = cases
        .iter()
        .map(|(path, _)| (*path, replace(&sys32("File.dll"))))
        .collect();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (*a, b.as_str())).collect();
    s.hive.pending(1, &refs);
    let (_, report) = s.check(&[]);
    for (index, (path, why)) in cases.iter().enumerate() {
        assert_eq!(
            report["operations"][index]["verdict"], "unresolved",
            "{path}"
        );
        assert!(
            reason(&report, index).contains(why),
            "{path}: {}",
            reason(&report, index)
        );
        // The reason as fields too: every unresolved operation names its case.
        assert!(
            report["operations"][index]["detail"]["kind"].is_string(),
            "{path}: {}",
            report["operations"][index]
        );
    }
    let detail = |path: &str| {
        let index = cases.iter().position(|(p, _)| *p == path).unwrap();
        report["operations"][index]["detail"].clone()
    };
    assert_eq!(
        detail("\\??\\Q:\\x.dll"),
        serde_json::json!({"kind": "drive-not-mapped", "drive": "Q"})
    );
    assert_eq!(
        detail("\\??\\C:\\Windows\\System32\\x.tmp:payload"),
        serde_json::json!({"kind": "stream", "name": "x.tmp", "stream": "payload"})
    );
}

#[test]
fn device_paths_with_a_device_mapping() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/x.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[(
            "\\Device\\HarddiskVolume3\\Windows\\System32\\x.tmp",
            &replace(&sys32("File.dll")),
        )],
    );
    let device = format!("3={}", s.root().display());
    let (_, report) = s.check(&["--device", &device]);
    assert_eq!(verdicts(&report), ["downgrade"]);
    // The same directory as C: and as device 3 is one volume: the file list has one entry per
    // file, not two.
    assert_eq!(report["files"].as_array().unwrap().len(), 2);
    assert_eq!(report["volumes"][1]["name"], "\\Device\\HarddiskVolume3");
}

/// MountedDevices data for a GPT partition.
fn gpt(guid_bytes: [u8; 16]) -> Vec<u8> {
    let mut data = b"DMIO:ID:".to_vec();
    data.extend_from_slice(&guid_bytes);
    data
}

#[test]
fn volume_guid_paths_go_through_mounted_devices() {
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(support::pe("file_v8.dll"), other.path().join("x.tmp")).unwrap();
    let c_partition = [1u8; 16];
    let e_partition = [2u8; 16];
    for (name, data) in [
        ("\\DosDevices\\C:", gpt(c_partition)),
        ("\\DosDevices\\E:", gpt(e_partition)),
        (
            "\\??\\Volume{22222222-2222-2222-0202-020202020202}",
            gpt(e_partition),
        ),
        (
            "\\??\\Volume{11111111-1111-1111-0101-010101010101}",
            gpt(c_partition),
        ),
    ] {
        s.hive
            .writer
            .value("MountedDevices", name, regf::REG_BINARY, &data);
    }
    s.hive.pending(
        1,
        &[(
            "\\??\\Volume{22222222-2222-2222-0202-020202020202}\\x.tmp",
            &replace(&sys32("File.dll")),
        )],
    );
    // Without E: mapped the GUID is known but has no directory.
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["unresolved"]);
    assert!(
        reason(&report, 0).contains("drive E:"),
        "{}",
        reason(&report, 0)
    );
    let drive = format!("E:={}", other.path().display());
    let (_, report) = s.check(&["--drive", &drive]);
    assert_eq!(verdicts(&report), ["downgrade"]);
    // The report says what each letter was, to judge the mapping.
    let c = &report["volumes"][0];
    assert_eq!(c["name"], "C:");
    assert_eq!(c["mounted_device"]["kind"], "gpt");
    assert_eq!(
        c["mounted_device"]["partition_guid"],
        "01010101-0101-0101-0101-010101010101"
    );
    let devices = report["mounted_devices"].as_array().unwrap();
    assert_eq!(devices.len(), 4);
    let e = devices
        .iter()
        .find(|d| d["name"] == "\\DosDevices\\E:")
        .unwrap();
    assert_eq!(e["mapped_to"], other.path().display().to_string());
}

#[test]
fn mbr_identities_are_reported() {
    let mut s = Scenario::new();
    let mut data = 0x1234_ABCDu32.to_le_bytes().to_vec();
    data.extend_from_slice(&1_048_576u64.to_le_bytes());
    s.hive.writer.value(
        "MountedDevices",
        "\\DosDevices\\C:",
        regf::REG_BINARY,
        &data,
    );
    let (_, report) = s.check(&[]);
    let c = &report["volumes"][0]["mounted_device"];
    assert_eq!(c["kind"], "mbr");
    assert_eq!(c["disk_signature"], "1234ABCD");
    assert_eq!(c["offset"], 1_048_576);
}

#[test]
fn trailing_backslash_names_a_directory() {
    let mut s = Scenario::new();
    s.mkdir("Windows/Temp/gone");
    s.hive
        .pending(1, &[("\\??\\C:\\Windows\\Temp\\gone\\", "")]);
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["delete"]);
}

#[test]
fn short_names_resolve_when_unique_and_list_candidates_when_not() {
    let mut s = Scenario::new();
    s.put("Program Files/Vendor/tool.dll", "file_v12.dll");
    s.put("Program Files/Vendor/SET4A2B.tmp.new", "file_v8.dll");
    s.put("Users/Administrator/app.dll", "file_v5.dll");
    s.put("Users/Administrator/staged.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[
            (
                "\\??\\C:\\PROGRA~1\\Vendor\\SET4A2~1.NEW",
                "!\\??\\C:\\PROGRA~1\\VENDOR\\tool.dll",
            ),
            (
                "\\??\\C:\\Users\\ADMINI~1\\staged.tmp",
                "!\\??\\C:\\Users\\Administrator\\app.dll",
            ),
        ],
    );
    let (_, report) = s.check(&[]);
    assert_eq!(verdicts(&report), ["downgrade", "upgrade"]);

    // With both Program Files folders, PROGRA~1 depends on creation order: not guessed.
    s.mkdir("Program Files (x86)");
    let (_, report) = s.check(&[]);
    assert_eq!(report["operations"][0]["verdict"], "unresolved");
    let why = reason(&report, 0);
    assert!(
        why.contains("Program Files, Program Files (x86)")
            || why.contains("Program Files (x86), Program Files"),
        "{why}"
    );
}

#[cfg(unix)]
#[test]
fn links_inside_the_volume_are_followed_as_windows_would() {
    use std::os::unix::fs::symlink;
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/a.tmp", "file_v8.dll");
    s.put("Windows/System32/b.tmp", "file_v5.dll");
    // Relative, absolute under the mount, and absolute from the volume root (a junction as
    // ntfs-3g may show it when the mount point is unknown).
    symlink("System32", s.root().join("Windows/rel")).unwrap();
    symlink(
        s.root().join("Windows/System32"),
        s.root().join("Windows/abs"),
    )
    .unwrap();
    symlink("/Windows/System32", s.root().join("Windows/rootabs")).unwrap();
    s.hive.pending(
        1,
        &[
            (
                "\\??\\C:\\Windows\\rel\\a.tmp",
                "!\\??\\C:\\Windows\\abs\\File.dll",
            ),
            (
                "\\??\\C:\\Windows\\rootabs\\b.tmp",
                "!\\??\\C:\\Windows\\System32\\File.dll",
            ),
        ],
    );
    let (_, report) = s.check(&[]);
    // The second writes the same file as the first (one key for all spellings): the first is
    // superseded, and the final 5.x over the disk's 12.x is a downgrade.
    assert_eq!(verdicts(&report), ["superseded", "downgrade"]);
    assert_eq!(
        report["operations"][1]["overwritten_staged_version"],
        "8.0.2195.6"
    );
}

#[cfg(unix)]
#[test]
fn hostile_paths_never_leave_the_volume() {
    use std::os::unix::fs::symlink;
    // A canary outside the root with a version that must never be reported.
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::pe("big_parts.dll"),
        outside.path().join("canary.dll"),
    )
    .unwrap();
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    // Absolute links to outside: taken relative to the volume root, where nothing is.
    symlink(outside.path(), s.root().join("Windows/link")).unwrap();
    symlink(
        outside.path().join("canary.dll"),
        s.root().join("Windows/System32/canary.tmp"),
    )
    .unwrap();
    // Relative links that climb out.
    let depth = "../".repeat(12);
    symlink(
        format!("{depth}{}", outside.path().display()),
        s.root().join("Windows/climb"),
    )
    .unwrap();
    symlink(
        "../../../canary.dll",
        s.root().join("Windows/System32/up.tmp"),
    )
    .unwrap();
    // A loop.
    symlink("loop2", s.root().join("Windows/loop1")).unwrap();
    symlink("loop1", s.root().join("Windows/loop2")).unwrap();
    let target = replace(&sys32("File.dll"));
    s.hive.pending(
        1,
        &[
            ("\\??\\C:\\Windows\\link\\canary.dll", &target),
            (&sys32("canary.tmp"), &target),
            ("\\??\\C:\\Windows\\climb\\canary.dll", &target),
            (&sys32("up.tmp"), &target),
            ("\\??\\C:\\..\\..\\..\\canary.dll", &target),
            (&sys32("..\\..\\..\\canary.dll"), ""),
            ("\\??\\C:\\Windows\\loop1\\x.dll", &target),
        ],
    );
    let (_, report) = s.check(&["--hash", "all"]);
    assert_eq!(
        verdicts(&report),
        [
            "no-effect",
            "no-effect",
            "unresolved",
            "unresolved",
            "unresolved",
            "unresolved",
            "unresolved"
        ]
    );
    assert!(
        reason(&report, 2).contains("outside its volume"),
        "{}",
        reason(&report, 2)
    );
    assert!(
        reason(&report, 3).contains("outside its volume"),
        "{}",
        reason(&report, 3)
    );
    assert!(
        reason(&report, 6).contains("link loop"),
        "{}",
        reason(&report, 6)
    );
    assert_eq!(report["operations"][2]["detail"]["kind"], "link-outside");
    assert_eq!(report["operations"][6]["detail"]["kind"], "too-many-links");
    // Operations that are not unresolved carry no detail.
    assert!(report["operations"][0].get("detail").is_none());
    let text = report.to_string();
    assert!(
        !text.contains("65535.65535"),
        "the canary's version leaked: {text}"
    );
}

/// An NTFS image mounted with ntfs-3g (FUSE), unmounted on drop.
#[cfg(target_os = "linux")]
struct NtfsMount {
    _dir: tempfile::TempDir,
    mount: std::path::PathBuf,
}

#[cfg(target_os = "linux")]
impl NtfsMount {
    fn new() -> Result<NtfsMount, String> {
        use std::process::Command;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("ntfs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(16 << 20))
            .map_err(|e| e.to_string())?;
        let run = |program: &str, args: &[&std::ffi::OsStr]| -> Result<(), String> {
            let out = Command::new(program)
                .args(args)
                .output()
                .map_err(|e| format!("{program}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{program}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        run(
            "mkntfs",
            &[
                "-F".as_ref(),
                "-Q".as_ref(),
                "-q".as_ref(),
                image.as_os_str(),
            ],
        )?;
        run("ntfs-3g", &[image.as_os_str(), mount.as_os_str()])?;
        Ok(NtfsMount { _dir: dir, mount })
    }

    fn set_dos_name(&self, relative: &str, short: &str) {
        use std::os::unix::ffi::OsStrExt;
        let path =
            std::ffi::CString::new(self.mount.join(relative).as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and an exact length.
        let rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
                c"system.ntfs_dos_name".as_ptr(),
                short.as_ptr().cast(),
                short.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
}

#[cfg(target_os = "linux")]
impl Drop for NtfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn ntfs_3g_mount_short_names_come_from_the_file_system() {
    let ntfs = match NtfsMount::new() {
        Ok(ntfs) => ntfs,
        Err(why) => {
            support::skip(
                "ntfs-3g short names",
                &format!("cannot mount an NTFS image here: {why}"),
            );
            return;
        }
    };
    let root = ntfs.mount.clone();
    for dir in [
        "Program Files/Vendor",
        "Program Files (x86)/Vendor",
        "Windows/System32/config",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(
        support::pe("file_v12.dll"),
        root.join("Program Files (x86)/Vendor/tool.dll"),
    )
    .unwrap();
    std::fs::copy(
        support::pe("file_v8.dll"),
        root.join("Program Files (x86)/Vendor/SET4A2B.tmp"),
    )
    .unwrap();
    // Windows created Program Files first: PROGRA~1; the (x86) folder is PROGRA~2.
    ntfs.set_dos_name("Program Files", "PROGRA~1");
    ntfs.set_dos_name("Program Files (x86)", "PROGRA~2");
    ntfs.set_dos_name("Program Files (x86)/Vendor/SET4A2B.tmp", "SET4A2~1.TMP");
    let mut hive = support::SystemHiveSpec::new(1);
    hive.pending(
        1,
        &[(
            "\\??\\C:\\PROGRA~2\\Vendor\\SET4A2~1.TMP",
            "!\\??\\C:\\PROGRA~2\\Vendor\\tool.dll",
        )],
    );
    std::fs::write(root.join("Windows/System32/config/SYSTEM"), hive.bytes()).unwrap();
    let (status, stdout, stderr) = support::nextboot(&[
        "check".as_ref(),
        root.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stderr}"));
    assert_eq!(status, 1);
    assert_eq!(verdicts(&report), ["downgrade"]);
    let source = report["operations"][0]["source_file"]["path"]
        .as_str()
        .unwrap();
    assert!(
        source.ends_with("Program Files (x86)/Vendor/SET4A2B.tmp"),
        "{source}"
    );
}
