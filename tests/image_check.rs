//! `check` of a disk image read in place equals `check` of the same volumes mounted with
//! ntfs-3g and given as directories: every verdict, every version and every SHA-256, on
//! volumes that have what long-used Windows volumes have (compressed, fragmented, sparse and
//! attribute-list files, a fragmented $MFT, valid data length below the size, a 20,000-entry
//! folder, a junction, 8.3 and Unicode names), and a second partition lettered D: by the
//! image's own MountedDevices. Images come from testdata/images/build.py (cached).

mod support;

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{json, Value};
use support::ntfs_image::{build_or_skip, guid_bytes, skip_or_fail, BuiltImage, Mounted};
use support::{nextboot, pe, regf, verdicts, Scenario};

const C_GUID: &str = "C0C0C0C0-1111-4222-8333-444444444444";
const D_GUID: &str = "D0D0D0D0-5555-4666-8777-888888888888";

/// A PE fixture followed by `pad` bytes of text: large enough to be compressed, fragmented
/// or split by an attribute list, with its version resource where the fixture has it.
fn padded_pe(fixture: &str, pad: usize, seed: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(pe(fixture)).unwrap();
    bytes.extend(
        format!("overlay {seed} of Windows\\System32 padding; ")
            .bytes()
            .cycle()
            .take(pad),
    );
    bytes
}

fn gpt_value(guid: &str) -> Vec<u8> {
    let mut data = b"DMIO:ID:".to_vec();
    data.extend(guid_bytes(guid));
    data
}

fn sys32(name: &str) -> String {
    format!("\\??\\C:\\Windows\\System32\\{name}")
}

/// The Windows volume (C:) and a data volume (D:) with a queue that touches every special
/// kind of file, and the image of both on one GPT disk.
fn gpt_disk() -> Option<(BuiltImage, Scenario, tempfile::TempDir)> {
    let mut s = Scenario::new();
    // Compressed target, fragmented source: a downgrade.
    s.write(
        "Windows/System32/File.dll",
        &padded_pe("file_v12.dll", 300_000, 1),
    );
    s.write(
        "Windows/System32/SET1.tmp",
        &padded_pe("file_v8.dll", 400_000, 2),
    );
    // A source split over MFT records by an attribute list: an upgrade.
    s.write(
        "Windows/System32/helper.dll",
        &padded_pe("file_v5.dll", 2_000, 3),
    );
    s.write(
        "Windows/System32/SET2.tmp",
        &padded_pe("file_v8.dll", 2_000_000, 4),
    );
    // Found through its recorded 8.3 name only.
    s.write(
        "Windows/System32/LongFileName.dll",
        &padded_pe("file_v12.dll", 1_000, 5),
    );
    s.write(
        "Windows/System32/short.tmp",
        &padded_pe("file_v8.dll", 1_000, 6),
    );
    // Through a junction and a Unicode folder.
    s.write(
        "Ünïcødé Ελληνικά/漢字.dll",
        &padded_pe("file_v8.dll", 500, 7),
    );
    s.write(
        "Windows/System32/uni.dll",
        &padded_pe("file_v12.dll", 500, 10),
    );
    s.write("Windows/System32/old.log", b"deleted through the junction");
    // One file under two names (a hard link, as System32 and WinSxS share files): replaced
    // under one name, deleted under the other.
    s.write(
        "Windows/WinSxS/amd64_kernel/kernel.dll",
        &padded_pe("file_v12.dll", 100, 13),
    );
    s.write(
        "Windows/System32/SET3.tmp",
        &padded_pe("file_v8.dll", 100, 14),
    );
    // Valid data length below the size, and a sparse file (written by the builder from the
    // spec): deleted (hashed by --hash all).
    s.write("Windows/Temp/vdl.log", &vec![b'v'; 65536]);
    // A file in a 20,000-entry folder, replaced by one from D:.
    s.write(
        "Windows/WinSxS/Manifests/target.dll",
        &padded_pe("file_v5.dll", 100, 8),
    );
    s.hive.pending(
        1,
        &[
            (
                sys32("SET1.tmp").as_str(),
                format!("!{}", sys32("File.dll")).as_str(),
            ),
            (
                "\\??\\C:\\Junction\\SET2.tmp",
                format!("!{}", sys32("helper.dll")).as_str(),
            ),
            (
                sys32("short.tmp").as_str(),
                format!("!{}", sys32("LONGFI~1.DLL")).as_str(),
            ),
            (
                "\\??\\C:\\ünïcødé ΕΛΛΗΝΙΚΆ\\漢字.dll",
                format!("!{}", sys32("uni.dll")).as_str(),
            ),
            ("\\??\\C:\\Junction\\old.log", ""),
            ("\\??\\C:\\Windows\\Temp\\vdl.log", ""),
            ("\\??\\C:\\Windows\\Temp\\sparse.log", ""),
            (
                "\\??\\D:\\Updates\\x.tmp",
                "!\\??\\C:\\Windows\\WinSxS\\Manifests\\target.dll",
            ),
            (
                sys32("SET3.tmp").as_str(),
                format!("!{}", sys32("kernel.dll")).as_str(),
            ),
            ("\\??\\C:\\Windows\\WinSxS\\amd64_kernel\\kernel.dll", ""),
        ],
    );
    for (name, guid) in [("\\DosDevices\\C:", C_GUID), ("\\DosDevices\\D:", D_GUID)] {
        s.hive
            .writer
            .value("MountedDevices", name, regf::REG_BINARY, &gpt_value(guid));
    }
    s.write_hive();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("Updates")).unwrap();
    std::fs::write(
        data.path().join("Updates/x.tmp"),
        padded_pe("file_v12.dll", 10, 9),
    )
    .unwrap();
    let spec = json!({
        "layout": "gpt",
        "partition_guids": [C_GUID, D_GUID],
        "partitions": [
            {"size_mib": 64, "fs": "ntfs", "label": "Windows", "source": "win", "special": [
                {"path": "Windows/System32/File.dll", "kind": "compressed"},
                {"path": "Windows/System32/SET1.tmp", "kind": "fragmented", "min_runs": 20},
                {"path": "Windows/System32/SET2.tmp", "kind": "attribute_list"},
                {"path": "Windows/System32/LongFileName.dll", "kind": "dos_name", "dos_name": "LONGFI~1.DLL"},
                {"path": "Windows/Temp/vdl.log", "kind": "valid_data_length", "valid_length": 10000},
                {"path": "Windows/Temp/sparse.log", "kind": "sparse", "content": {"size": 1048576, "segments": [
                    {"offset": 0, "content": {"text": "before the hole"}},
                    {"offset": 786432, "content": {"text": "after the hole"}}]}},
                {"path": "Windows/WinSxS/Manifests", "kind": "big_folder", "count": 20000},
                {"path": "Junction", "kind": "junction", "target": "C:\\Windows\\System32"},
                {"path": "Windows/System32/kernel.dll", "kind": "hard_link",
                    "target": "Windows/WinSxS/amd64_kernel/kernel.dll"},
                {"kind": "mft_fragmented"}
            ]},
            {"size_mib": 16, "fs": "ntfs", "label": "Data", "source": "data"}
        ]
    });
    let img = build_or_skip(&spec, &[("win", s.root()), ("data", data.path())])?;
    Some((img, s, data))
}

/// The report with what differs by where the volumes are (paths, provenance) taken out.
fn comparable(mut report: Value) -> Value {
    for op in report["operations"].as_array_mut().unwrap() {
        for side in ["source_file", "target_file"] {
            if let Some(file) = op[side].as_object_mut() {
                file.remove("path");
                // Only the image reader knows it; checked against ntfsls below.
                file.remove("mft_record");
            }
        }
    }
    json!({
        "operations": report["operations"],
        "summary": report["summary"],
        "files": report["files"].as_array().map(Vec::len),
        "not_examined": report["not_examined"],
    })
}

fn check(args: &[&OsStr]) -> (i32, Value, String) {
    let mut all: Vec<&OsStr> = vec!["check".as_ref()];
    all.extend(args);
    all.extend(["--format", "json", "--hash", "all"].map(OsStr::new));
    let (status, out, err) = nextboot(&all);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (status, report, err)
}

#[test]
fn a_gpt_disk_reads_as_its_mounted_volumes() {
    let Some((img, _scenario, _data)) = gpt_disk() else {
        return;
    };
    let (status, image_report, err) = check(&[img.image.as_os_str()]);
    let mounts = match (Mounted::new(&img, 0), Mounted::new(&img, 1)) {
        (Ok(c), Ok(d)) => (c, d),
        (Err(why), _) | (_, Err(why)) => return skip_or_fail(&why),
    };
    let drive = format!("D:={}", mounts.1.path.display());
    let (mounted_status, mounted_report, _) = check(&[
        mounts.0.path.as_os_str(),
        "--drive".as_ref(),
        drive.as_ref(),
    ]);
    assert_eq!(
        verdicts(&image_report),
        [
            "downgrade",
            "upgrade",
            "downgrade",
            "downgrade",
            "delete",
            "delete",
            "delete",
            "upgrade",
            "downgrade",
            "delete"
        ],
        "{image_report:#}\n{err}"
    );
    // The hard link's two names are one file: one MFT record, the one ntfsls gives.
    let ops = &image_report["operations"];
    assert_eq!(
        ops[8]["target_file"]["mft_record"],
        ops[9]["source_file"]["mft_record"]
    );
    assert_eq!(
        ops[8]["target_file"]["mft_record"],
        img.file(0, "Windows/WinSxS/amd64_kernel/kernel.dll")
            .unwrap()["mft_record"]
    );
    assert_eq!(status, mounted_status);
    assert_eq!(comparable(image_report.clone()), comparable(mounted_report));
    // The second partition got D: from MountedDevices, and the report says where each is.
    let volumes = image_report["volumes"].as_array().unwrap();
    let d = volumes
        .iter()
        .find(|v| v["name"] == "D:")
        .expect("D: mapped");
    assert_eq!(d["image"]["partition"], 2);
    assert_eq!(d["image"]["identity"]["partition_guid"], D_GUID);
    assert_eq!(d["image"]["offset"], img.offset(1));
    let c = &volumes[0];
    assert_eq!(c["image"]["partition"], 1);
    assert_eq!(c["image"]["file_system"], "NTFS 3.1");
    let serial = img.partition(0)["volume_serial"].as_str().unwrap();
    assert!(
        c["image"]["serial"].as_str().unwrap().starts_with(serial),
        "{} vs {serial}",
        c["image"]["serial"]
    );
    // Every file's SHA-256 equals the builder's, which ntfscat confirmed.
    for (path, index) in [
        ("Windows/System32/File.dll", 0),
        ("Windows/System32/SET2.tmp", 1),
        ("Windows/Temp/vdl.log", 5),
    ] {
        let side = if path.ends_with(".tmp") {
            "source_file"
        } else {
            "target_file"
        };
        let side = if path.ends_with(".log") {
            "source_file"
        } else {
            side
        };
        let file = &image_report["operations"][index][side];
        assert_eq!(
            file["sha256"],
            img.file(0, path).unwrap()["sha256"],
            "{path}"
        );
        // And its MFT record number is the one ntfsls gives.
        assert_eq!(
            file["mft_record"],
            img.file(0, path).unwrap()["mft_record"],
            "{path}"
        );
    }
}

#[test]
fn several_windows_partitions_need_a_choice() {
    let Some((img, _scenario, _data)) = gpt_disk() else {
        return;
    };
    // Partition 2 has no Windows: asking for it names what the image holds.
    let (status, _, err) = nextboot(&[
        "check".as_ref(),
        img.image.as_os_str(),
        "--partition".as_ref(),
        "2".as_ref(),
    ]);
    assert_eq!(status, 2, "{err}");
    assert!(
        err.contains("hive_not_found") || err.contains("no SYSTEM"),
        "{err}"
    );
    let (status, _, err) = nextboot(&[
        "check".as_ref(),
        img.image.as_os_str(),
        "--partition".as_ref(),
        "7".as_ref(),
    ]);
    assert_eq!(status, 2);
    assert!(
        err.contains("partition 7") && err.contains("partition 1"),
        "{err}"
    );
}

/// Verify reads the image as it reads the mount: write a baseline from the image and verify
/// the mount against it.
#[test]
fn verify_takes_an_image() {
    let Some((img, _scenario, _data)) = gpt_disk() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let baseline = out.path().join("baseline.yaml");
    let (status, _, err) = nextboot(&[
        "verify".as_ref(),
        img.image.as_os_str(),
        "--write-baseline".as_ref(),
        baseline.as_os_str(),
        "--include".as_ref(),
        "Windows/System32/*.dll".as_ref(),
        "--with-sha256".as_ref(),
    ]);
    assert_eq!(status, 0, "{err}");
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert!(text.contains("File.dll") && text.contains("12.0"), "{text}");
    let mounted = match Mounted::new(&img, 0) {
        Ok(m) => m,
        Err(why) => return skip_or_fail(&why),
    };
    let (status, out, err) = nextboot(&[
        "verify".as_ref(),
        mounted.path.as_os_str(),
        "--baseline".as_ref(),
        baseline.as_os_str(),
    ]);
    assert_eq!(status, 0, "{out}\n{err}");
}

/// A volume that Windows did not finish with is said to be: dirty flag, hibernation file,
/// unclean $LogFile.
#[test]
fn a_volume_windows_did_not_finish_is_a_finding() {
    let mut s = Scenario::new();
    s.write(
        "Windows/System32/File.dll",
        &padded_pe("file_v12.dll", 10, 1),
    );
    s.hive.pending(1, &[(sys32("File.dll").as_str(), "")]);
    s.write_hive();
    let spec = json!({
        "layout": "mbr",
        "partitions": [{"size_mib": 32, "fs": "ntfs", "source": "win", "dirty": true,
            "logfile_unclean": true,
            "special": [{"path": "hiberfil.sys", "kind": "hiberfil", "magic": "HIBR", "size": 65536}]}]
    });
    let Some(img) = build_or_skip(&spec, &[("win", s.root())]) else {
        return;
    };
    let (_, report, err) = check(&[img.image.as_os_str()]);
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "volume-not-clean")
        .unwrap_or_else(|| panic!("{report:#}\n{err}"));
    let message = finding["message"].as_str().unwrap();
    for part in ["dirty flag", "hiberfil.sys", "$LogFile", "may be stale"] {
        assert!(message.contains(part), "{message}");
    }
    let identity = &report["volumes"][0]["image"]["identity"];
    assert_eq!(identity["kind"], "mbr");
    assert_eq!(identity["offset"], img.offset(0));
}

/// A BitLocker volume, an empty partition and a disk with no NTFS are named, not misread.
#[test]
fn what_is_not_ntfs_is_named() {
    let s = Scenario::new();
    let spec = json!({
        "layout": "mbr-extended",
        "partitions": [
            {"size_mib": 16, "fs": "bitlocker-like"},
            {"size_mib": 16, "fs": "none"},
            {"size_mib": 16, "fs": "ntfs", "source": "win"}
        ]
    });
    let Some(img) = build_or_skip(&spec, &[("win", s.root())]) else {
        return;
    };
    let (status, _, err) = nextboot(&["check".as_ref(), img.image.as_os_str()]);
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("BitLocker"), "{err}");
    assert!(
        err.contains("partition 5"),
        "the logical partition is listed: {err}"
    );
    // Never written: the image is unchanged by every run above.
    let _ = Path::new(&img.image);
}

/// A dirty SYSTEM hive in an image: its logs are found beside it on the image's volume and
/// applied, as on a mounted volume.
#[test]
fn a_dirty_hive_in_an_image_gets_its_logs() {
    use support::regf_log::NewLogWriter;
    let s = support::dirty_scenario(|old, new| NewLogWriter::new(old, new).entries(2).build());
    s.write_hive();
    let spec = json!({"layout": "volume", "partitions": [{"size_mib": 16, "fs": "ntfs", "source": "win"}]});
    let Some(img) = build_or_skip(&spec, &[("win", s.root())]) else {
        return;
    };
    let (status, report, err) = check(&[img.image.as_os_str()]);
    assert_eq!(status, 1, "{err}");
    assert_eq!(report["hive"]["recovered"], true);
    assert_eq!(verdicts(&report), ["new-file", "downgrade"]);
    let logs: Vec<&Value> = report["provenance"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["role"] == "log")
        .collect();
    assert_eq!(logs.len(), 2, "{report:#}");
    for log in logs {
        let name = log["path"].as_str().unwrap().rsplit('\\').next().unwrap();
        let local = s.root().join("Windows/System32/config").join(name);
        assert_eq!(
            log["size"],
            std::fs::metadata(&local).unwrap().len(),
            "{name}"
        );
    }
    // And with the image given with --hash image, its digest is the file's.
    let (_, report, _) = {
        let mut all: Vec<&OsStr> = vec!["check".as_ref(), img.image.as_os_str()];
        all.extend(["--format", "json", "--hash", "image"].map(OsStr::new));
        let (status, out, err) = nextboot(&all);
        (status, serde_json::from_str::<Value>(&out).unwrap(), err)
    };
    let image = report["provenance"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "image")
        .expect("the image is an input");
    assert_eq!(
        image["sha256"].as_str().unwrap(),
        support::ntfs_image::sha256_file(&img.image)
    );
}

/// WOF-compressed files (CompactOS) in all four formats are decoded: their versions and
/// SHA-256 are those of the files compressed (ntfs-3g cannot read them, so the builder's
/// digest of the original, which it checked against libwim's decoding, is the oracle).
#[test]
fn wof_compressed_files_are_decoded() {
    let mut s = Scenario::new();
    let mut pairs = Vec::new();
    let mut special = Vec::new();
    for (i, algorithm) in ["xpress4k", "xpress8k", "xpress16k", "lzx"]
        .iter()
        .enumerate()
    {
        let target = format!("Windows/System32/wof_{algorithm}.dll");
        // Large enough for several chunks, and not all compressible (a stored chunk too).
        let mut bytes = padded_pe("file_v12.dll", 70_000, i as u8);
        bytes.extend((0..40_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8));
        s.write(&target, &bytes);
        s.write(
            &format!("Windows/System32/SET{i}.tmp"),
            &padded_pe("file_v8.dll", 10, 1),
        );
        special.push(json!({"path": target, "kind": "wof", "algorithm": algorithm}));
        pairs.push((
            sys32(&format!("SET{i}.tmp")),
            format!("!{}", sys32(&format!("wof_{algorithm}.dll"))),
        ));
    }
    s.hive.pending_owned(1, &pairs);
    s.write_hive();
    let spec = json!({"layout": "volume", "partitions": [
        {"size_mib": 32, "fs": "ntfs", "source": "win", "special": special}]});
    let Some(img) = build_or_skip(&spec, &[("win", s.root())]) else {
        return;
    };
    let (_, report, err) = check(&[img.image.as_os_str()]);
    assert_eq!(verdicts(&report), ["downgrade"; 4], "{report:#}\n{err}");
    for (i, algorithm) in ["xpress4k", "xpress8k", "xpress16k", "lzx"]
        .iter()
        .enumerate()
    {
        let path = format!("Windows/System32/wof_{algorithm}.dll");
        let file = img.file(0, &path).unwrap();
        assert_eq!(file["kind"], "wof", "{file}");
        let target = &report["operations"][i]["target_file"];
        assert_eq!(target["sha256"], file["sha256"], "{algorithm}");
        assert_eq!(target["file_version"], "12.0.2195.7", "{algorithm}");
        assert_eq!(
            target["sha256"].as_str().unwrap(),
            support::ntfs_image::sha256_file(&s.root().join(&path))
        );
    }
}

/// `fix` takes an image as `check` does, and nothing writes to or beside the image: an
/// output named as the image is refused, and the image's bytes and times are unchanged.
#[test]
fn fix_takes_an_image_and_never_writes_it() {
    let Some((img, _scenario, _data)) = gpt_disk() else {
        return;
    };
    // Hashed first: this read of the test's own may move the access time, nextboot's may not.
    let digest = support::ntfs_image::sha256_file(&img.image);
    let before = std::fs::metadata(&img.image).unwrap();
    let out = tempfile::tempdir().unwrap();
    let reg = out.path().join("fix.reg");
    let (status, stdout, err) = nextboot(&[
        "fix".as_ref(),
        img.image.as_os_str(),
        "--out".as_ref(),
        reg.as_os_str(),
    ]);
    assert_eq!(status, 0, "{stdout}\n{err}");
    // Each downgrade check finds is removed.
    let (_, report, _) = check(&[img.image.as_os_str()]);
    let downgrades = verdicts(&report)
        .iter()
        .filter(|v| *v == "downgrade")
        .count();
    assert!(downgrades >= 3, "{report:#}");
    let removed = format!("{downgrades} operations removed");
    assert!(stdout.contains(&removed), "{removed}: {stdout}");
    assert!(reg.is_file());
    let (status, _, err) = nextboot(&[
        "fix".as_ref(),
        img.image.as_os_str(),
        "--out".as_ref(),
        img.image.as_os_str(),
    ]);
    assert_eq!(status, 2, "{err}");
    let after = std::fs::metadata(&img.image).unwrap();
    assert_eq!(before.modified().unwrap(), after.modified().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let atime = |m: &std::fs::Metadata| (m.atime(), m.atime_nsec());
        assert_eq!(atime(&before), atime(&after));
    }
    assert_eq!(support::ntfs_image::sha256_file(&img.image), digest);
}

/// Where `$UpCase` lies in a volume image: the units for `` ` `` to `{` as every table has
/// them, found in the image's bytes (not through nextboot's own reader).
fn upcase_offset(image: &[u8]) -> usize {
    let mut probe = Vec::new();
    for unit in 0x60u16..=0x7b {
        let upper = if (0x61..=0x7a).contains(&unit) {
            unit - 0x20
        } else {
            unit
        };
        probe.extend(upper.to_le_bytes());
    }
    let found: Vec<usize> = image
        .windows(probe.len())
        .enumerate()
        .filter(|(_, w)| *w == probe.as_slice())
        .map(|(i, _)| i - 0x60 * 2)
        .collect();
    assert_eq!(found.len(), 1, "one $UpCase in the image");
    found[0]
}

/// Names are compared as the volume's own `$UpCase` says, as Windows compares them: a
/// table that folds `é` to `E` makes `CAFE.DLL` name `café.dll`; a table that is not one is
/// said, and Unicode's upper case stands in.
#[test]
fn names_are_compared_through_the_volumes_own_upcase() {
    let mut s = Scenario::new();
    s.write(
        "Windows/System32/café.dll",
        &padded_pe("file_v12.dll", 10, 11),
    );
    s.write(
        "Windows/System32/SET9.tmp",
        &padded_pe("file_v8.dll", 10, 12),
    );
    s.hive.pending(
        1,
        &[(
            sys32("SET9.tmp").as_str(),
            format!("!{}", sys32("CAFE.dll")).as_str(),
        )],
    );
    s.write_hive();
    let spec = json!({"layout": "volume", "partitions": [{"size_mib": 32, "fs": "ntfs", "source": "win"}]});
    let Some(img) = build_or_skip(&spec, &[("win", s.root())]) else {
        return;
    };
    let original = std::fs::read(&img.image).unwrap();
    let table = upcase_offset(&original);
    let dir = tempfile::tempdir().unwrap();
    let variant = |name: &str, units: &[(u16, u16)]| {
        let mut bytes = original.clone();
        for &(unit, upper) in units {
            let at = table + 2 * unit as usize;
            bytes[at..at + 2].copy_from_slice(&upper.to_le_bytes());
        }
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let verdict_of = |path: &Path| {
        let (_, report, err) = check(&[path.as_os_str()]);
        let op = &report["operations"][0];
        (
            op["verdict"]
                .as_str()
                .unwrap_or_else(|| panic!("{report:#}\n{err}"))
                .to_string(),
            report,
        )
    };
    // mkntfs's table folds é to É: CAFE.dll is a new file.
    let (as_built, report) = verdict_of(&img.image);
    assert!(report["volumes"][0]["image"]
        .get("upcase_problem")
        .is_none());
    // The same volume whose table folds é to E.
    let (folded, report) = verdict_of(&variant("e.img", &[(0xe9, u16::from(b'E'))]));
    assert_eq!(folded, "downgrade", "{report:#}");
    assert_ne!(as_built, folded);
    // A table that does not upper-case q: refused, said, and Unicode folding used.
    let (_, report) = verdict_of(&variant("q.img", &[(u16::from(b'q'), u16::from(b'q'))]));
    let problem = report["volumes"][0]["image"]["upcase_problem"]
        .as_str()
        .unwrap();
    assert!(problem.contains("ASCII"), "{problem}");
    assert_eq!(report["operations"][0]["verdict"], as_built.as_str());
}
