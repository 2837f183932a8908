//! `check` through each disk container (VHD, VHDX, VMDK, qcow2, E01) gives the report it
//! gives on the raw disk the container was made from: the disk is an MBR disk with a Windows
//! volume (testdata/images/build.py), converted by `qemu-img convert` and `ewfacquire`, the
//! tools that make these containers in the field. Under `--hash image` the disk's SHA-256
//! equals the raw disk's, and an E01's stored MD5 is checked. Without the tools the tests
//! say so and pass, except in CI.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::container::{adler32, ewfacquire, have, hex_digest, qemu_convert};
use support::ntfs_image::{build_or_skip, sha256_file, BuiltImage};
use support::{nextboot, pe, Scenario};

fn sys32(name: &str) -> String {
    format!("\\??\\C:\\Windows\\System32\\{name}")
}

/// An MBR disk whose Windows volume queues a downgrade, an upgrade and a delete; its files
/// are large enough to span many blocks and clusters of every container.
fn raw_disk() -> Option<BuiltImage> {
    let mut s = Scenario::new();
    let padded = |fixture: &str, pad: usize| {
        let mut bytes = std::fs::read(pe(fixture)).unwrap();
        bytes.extend(b"container padding ".iter().cycle().take(pad));
        bytes
    };
    s.write(
        "Windows/System32/File.dll",
        &padded("file_v12.dll", 3_000_000),
    );
    s.write(
        "Windows/System32/SET1.tmp",
        &padded("file_v8.dll", 1_500_000),
    );
    s.write(
        "Windows/System32/helper.dll",
        &padded("file_v5.dll", 10_000),
    );
    s.write("Windows/System32/SET2.tmp", &padded("file_v8.dll", 10_000));
    s.write("Windows/Temp/old.log", b"deleted at boot");
    s.hive.pending(
        1,
        &[
            (
                sys32("SET1.tmp").as_str(),
                format!("!{}", sys32("File.dll")).as_str(),
            ),
            (
                sys32("SET2.tmp").as_str(),
                format!("!{}", sys32("helper.dll")).as_str(),
            ),
            ("\\??\\C:\\Windows\\Temp\\old.log", ""),
        ],
    );
    s.write_hive();
    let spec = json!({"layout": "mbr", "partitions": [
        {"size_mib": 40, "fs": "ntfs", "label": "Windows", "source": "win"}]});
    build_or_skip(&spec, &[("win", s.root())])
}

/// The raw disk in each container, as (name, first file).
fn containers(raw: &Path, dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut made = Vec::new();
    let qemu = [
        ("vhd-fixed", "vpc", "subformat=fixed,force_size=on", "vhd"),
        (
            "vhd-dynamic",
            "vpc",
            "subformat=dynamic,force_size=on",
            "vhd",
        ),
        (
            "vhdx-dynamic",
            "vhdx",
            "subformat=dynamic,block_size=1M",
            "vhdx",
        ),
        ("vhdx-fixed", "vhdx", "subformat=fixed", "vhdx"),
        ("vmdk-sparse", "vmdk", "subformat=monolithicSparse", "vmdk"),
        ("vmdk-stream", "vmdk", "subformat=streamOptimized", "vmdk"),
        ("vmdk-flat", "vmdk", "subformat=monolithicFlat", "vmdk"),
        ("qcow2", "qcow2", "", "qcow2"),
        ("qcow2-zlib", "qcow2", "", "qcow2"),
    ];
    for (name, format, options, ext) in qemu {
        let mut args = Vec::new();
        if !options.is_empty() {
            args.extend(["-o", options]);
        }
        if name == "qcow2-zlib" {
            args.push("-c");
        }
        let out = qemu_convert(raw, format, &args, &dir.join(format!("{name}.{ext}")));
        made.push((name, out));
    }
    for (name, compression, segment) in [
        ("e01-none", "none", None),
        ("e01-fast", "deflate:fast", None),
        // Split: 10 MiB segments of the 42 MiB disk, uncompressed.
        ("e01-split", "none", Some("10485760")),
    ] {
        let mut args = vec!["-c", compression, "-C", "case 17", "-e", "examiner"];
        args.extend(["-D", "description", "-E", "evidence 1", "-N", "notes"]);
        if let Some(size) = segment {
            args.extend(["-S", size]);
        }
        made.push((name, ewfacquire(raw, &dir.join(name), &args)));
    }
    made
}

/// The report with what depends on where the disk is (paths, provenance) taken out.
fn comparable(report: &Value) -> Value {
    let mut operations = report["operations"].clone();
    for op in operations.as_array_mut().unwrap() {
        for side in ["source_file", "target_file"] {
            if let Some(file) = op[side].as_object_mut() {
                file.remove("path");
            }
        }
    }
    json!({"operations": operations, "summary": report["summary"], "not_examined": report["not_examined"]})
}

fn check(image: &Path, hash: &str) -> (i32, Value, String) {
    let args: Vec<&OsStr> = vec![
        "check".as_ref(),
        image.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "--hash".as_ref(),
        hash.as_ref(),
    ];
    let (status, out, err) = nextboot(&args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (status, report, err)
}

fn image_input(report: &Value) -> &Value {
    report["provenance"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "image")
        .unwrap_or_else(|| panic!("an image input: {report:#}"))
}

#[test]
fn every_container_checks_as_its_raw_disk() {
    if !have("qemu-img") || !have("ewfacquire") {
        return;
    }
    let Some(img) = raw_disk() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (raw_status, raw_report, err) = check(&img.image, "image");
    assert_eq!(
        support::verdicts(&raw_report),
        ["downgrade", "upgrade", "delete"],
        "{raw_report:#}\n{err}"
    );
    let raw_sha = sha256_file(&img.image);
    assert_eq!(image_input(&raw_report)["sha256"], raw_sha.as_str());
    assert!(image_input(&raw_report).get("container").is_none());
    for (name, path) in containers(&img.image, dir.path()) {
        let (status, report, err) = check(&path, "image");
        assert_eq!(status, raw_status, "{name}: {err}");
        assert_eq!(
            comparable(&report),
            comparable(&raw_report),
            "{name}\n{err}"
        );
        let input = image_input(&report);
        // The disk the container holds is the raw disk, byte for byte.
        assert_eq!(input["sha256"], raw_sha.as_str(), "{name}");
        assert_eq!(
            input["size"],
            std::fs::metadata(&img.image).unwrap().len(),
            "{name}"
        );
        let container = &input["container"];
        let format = container["format"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {input:#}"));
        let family = match name.split('-').next().unwrap() {
            "e01" => "ewf",
            other => other,
        };
        assert!(format.starts_with(family), "{name}: {format}");
        assert_eq!(report["volumes"][0]["image"]["container"], format, "{name}");
        if family == "ewf" {
            let metadata = container["metadata"].to_string();
            assert!(
                metadata.contains("case 17") && metadata.contains("examiner"),
                "{metadata}"
            );
            let checks = input["hash_checks"].as_array().unwrap();
            let md5 = checks
                .iter()
                .find(|c| c["algorithm"] == "md5")
                .expect("md5 checked");
            assert_eq!(md5["matches"], true, "{md5}");
            if name == "e01-split" {
                assert!(
                    container["files"].as_array().unwrap().len() >= 3,
                    "{container}"
                );
            }
        }
    }
}

/// A disk whose E01 stores an MD5 other than its contents' is not examined (exit 2), and
/// the finding says which hash differs.
#[test]
fn an_e01_whose_stored_hash_differs_is_not_examined() {
    if !have("ewfacquire") {
        return;
    }
    let Some(img) = raw_disk() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The disk acquired, then the MD5 its E01 stores changed (each section's Adler-32
    // recomputed), as a tampered or damaged image would have it.
    let e01 = ewfacquire(&img.image, &dir.path().join("tampered"), &["-c", "none"]);
    let mut bytes = std::fs::read(&e01).unwrap();
    let md5 = md5_of(&img.image);
    let mut changed = 0;
    let mut at = 0;
    while let Some(found) = find(&bytes[at..], &md5) {
        let start = at + found;
        bytes[start] ^= 0xff;
        changed += 1;
        at = start + 1;
    }
    assert!(changed > 0, "the stored MD5 is in the E01");
    fix_section_checksums(&mut bytes);
    std::fs::write(&e01, &bytes).unwrap();
    let (status, report, err) = check(&e01, "image");
    assert_eq!(status, 2, "{report:#}\n{err}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "image-hash-mismatch")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        finding["message"].as_str().unwrap().contains("md5"),
        "{finding}"
    );
    // Without --hash image the stored hash is not checked: the image is examined.
    let (status, _, err) = check(&e01, "none");
    assert_eq!(status, 1, "{err}");
}

fn md5_of(path: &Path) -> Vec<u8> {
    let text = hex_digest("md5sum", path);
    (0..16)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Recomputes the Adler-32 that ends the data of each `hash` (32 bytes) and `digest`
/// (76 bytes) section, after their hashes were changed.
fn fix_section_checksums(bytes: &mut [u8]) {
    for (kind, data_len) in [(&b"hash"[..], 32usize), (&b"digest"[..], 76usize)] {
        let mut at = 0;
        while let Some(found) = find(&bytes[at..], kind) {
            let start = at + found;
            at = start + 1;
            // A section descriptor: its type padded with zeros to 16 bytes, 76 bytes long.
            if bytes[start + kind.len()..start + 16]
                .iter()
                .any(|&b| b != 0)
            {
                continue;
            }
            let data = start + 76;
            if data + data_len + 4 > bytes.len() {
                continue;
            }
            let sum = adler32(&bytes[data..data + data_len]);
            bytes[data + data_len..data + data_len + 4].copy_from_slice(&sum.to_le_bytes());
        }
    }
}
