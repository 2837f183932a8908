//! Smoke tests of the NTFS image builder (`testdata/images/build.py`, used through
//! `support::ntfs_image`): one image per layout and one volume with every special kind,
//! checked against the manifest, and the manifest against the source trees and the raw
//! bytes of the image (boot sectors, partition tables).

mod support;

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};
use support::ntfs_image::{
    build_image, build_or_skip, guid_bytes, put, sha256_hex, skip_or_fail, tree_digests, BuiltImage,
};

const MIB: u64 = 1 << 20;

/// Deterministic bytes (the cache key hashes the source trees: they must not change).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Text-like bytes that compress.
fn prose(len: usize) -> Vec<u8> {
    b"The quick brown fox jumps over the lazy dog; Windows\\System32\\drivers\\etc. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// A small system volume: Windows/System32/config/SYSTEM and a few more files.
fn windows_tree(root: &Path) {
    let mut hive = b"regf".to_vec();
    hive.extend(noise(8188, 1));
    put(root, "Windows/System32/config/SYSTEM", &hive);
    put(root, "Windows/System32/kernel32.dll", &noise(70_000, 2));
    put(
        root,
        "Windows/System32/drivers/etc/hosts",
        b"127.0.0.1 localhost\r\n",
    );
    put(root, "Users/Public/desktop.ini", b"[.ShellClassInfo]\r\n");
    put(root, "Program Files/App/readme.txt", &prose(5000));
    put(root, "empty.txt", b"");
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A GUID's 16 bytes as GPT stores them (the first three fields little-endian).
/// Checks that every file of `source` is in the manifest of partition `index` with its
/// size and SHA-256, and at an MFT record of its own.
fn assert_tree_in_manifest(img: &BuiltImage, index: usize, source: &Path) {
    let digests = tree_digests(source);
    assert!(!digests.is_empty());
    for (path, (size, sha)) in digests {
        let entry = img
            .file(index, &path)
            .unwrap_or_else(|| panic!("{path} not in the manifest of partition {index}"));
        assert_eq!(entry["size"], size, "{path}");
        assert_eq!(entry["sha256"], sha.as_str(), "{path}");
        assert!(entry["mft_record"].as_u64().unwrap() >= 24, "{path}");
    }
}

/// The NTFS boot sector of partition `index`: OEM ID, sector size, hidden sectors, serial.
fn assert_ntfs_boot_sector(img: &BuiltImage, index: usize, sector_size: u16) {
    let part = img.partition(index);
    let boot = img.read_at(img.offset(index), 512);
    assert_eq!(&boot[3..11], b"NTFS    ", "partition {index}");
    assert_eq!(u16_at(&boot, 0x0B), sector_size);
    assert_eq!(part["sector_size"], sector_size);
    assert_eq!(
        u64::from(u32_at(&boot, 0x1C)),
        part["start_sector"].as_u64().unwrap_or(0),
        "hidden sectors are the partition's start"
    );
    assert_eq!(
        format!("{:016X}", u64_at(&boot, 0x48)),
        part["ntfs_serial"].as_str().unwrap()
    );
    // The volume fills its partition but the last sector (the backup boot sector).
    let sectors = u64_at(&boot, 0x28);
    assert_eq!(
        (sectors + 1) * u64::from(sector_size),
        part["size"].as_u64().unwrap()
    );
}

fn build_time(img: &BuiltImage) -> f64 {
    img.manifest["build_seconds"].as_f64().unwrap()
}

#[test]
fn volume_layout_and_cache() {
    let src = tempfile::tempdir().unwrap();
    windows_tree(src.path());
    let spec = json!({
        "layout": "volume",
        "partitions": [{"size_mib": 16, "fs": "ntfs", "label": "Windows", "source": "win"}]
    });
    let Some(img) = build_or_skip(&spec, &[("win", src.path())]) else {
        return;
    };
    eprintln!("volume: built in {} s", build_time(&img));
    assert_eq!(std::fs::metadata(&img.image).unwrap().len(), 16 * MIB);
    assert_eq!(img.offset(0), 0);
    assert_eq!(img.partition(0)["label"], "Windows");
    assert_eq!(img.partition(0)["cluster_size"], 4096);
    assert_ntfs_boot_sector(&img, 0, 512);
    assert_tree_in_manifest(&img, 0, src.path());

    // Same inputs, another temporary source folder: the cached image, at once.
    let again = tempfile::tempdir().unwrap();
    windows_tree(again.path());
    let started = Instant::now();
    let cached = build_image(&spec, &[("win", again.path())]).unwrap();
    assert!(started.elapsed().as_secs_f64() < 1.0);
    assert_eq!(cached.image, img.image);
    // Another content: another image.
    put(again.path(), "empty.txt", b"not empty");
    let other = build_image(&spec, &[("win", again.path())]).unwrap();
    assert_ne!(other.image, img.image);
    assert_eq!(other.file(0, "empty.txt").unwrap()["size"], 9);
}

#[test]
fn gpt_layout() {
    let src = tempfile::tempdir().unwrap();
    windows_tree(src.path());
    let disk_guid = "11111111-2222-4333-8444-555555555555";
    let first_guid = "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE";
    let spec = json!({
        "layout": "gpt",
        "disk_guid": disk_guid,
        "partition_guids": [first_guid],
        "partitions": [
            {"size_mib": 16, "fs": "ntfs", "label": "Windows", "source": "win"},
            {"size_mib": 16, "fs": "ntfs", "label": "Data"},
            {"size_mib": 4, "fs": "none"}
        ]
    });
    let Some(img) = build_or_skip(&spec, &[("win", src.path())]) else {
        return;
    };
    eprintln!("gpt: built in {} s", build_time(&img));
    assert_eq!(img.manifest["disk_guid"], disk_guid);
    let header = img.read_at(512, 512);
    assert_eq!(&header[0..8], b"EFI PART");
    assert_eq!(header[56..72], guid_bytes(disk_guid));
    let entries_lba = u64_at(&header, 72);
    for index in 0..3 {
        let part = img.partition(index);
        assert_eq!(part["number"], index + 1);
        assert_eq!(part["gpt_type"], "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
        let entry = img.read_at(entries_lba * 512 + 128 * index as u64, 128);
        assert_eq!(
            entry[0..16],
            guid_bytes("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
        );
        let guid = part["gpt_guid"].as_str().unwrap();
        assert_eq!(entry[16..32], guid_bytes(guid));
        assert_eq!(u64_at(&entry, 32) * 512, img.offset(index));
        // MountedDevices' value of a GPT volume: "DMIO:ID:" and the partition GUID.
        let mut value = b"DMIO:ID:".to_vec();
        value.extend(guid_bytes(guid));
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(part["mounted_devices"], hex.as_str());
    }
    assert_eq!(img.partition(0)["gpt_guid"], first_guid);
    assert_ne!(img.partition(1)["gpt_guid"], img.partition(2)["gpt_guid"]);
    assert_ntfs_boot_sector(&img, 0, 512);
    assert_ntfs_boot_sector(&img, 1, 512);
    assert_ne!(
        img.partition(0)["ntfs_serial"],
        img.partition(1)["ntfs_serial"]
    );
    assert_eq!(img.partition(2)["fs"], "none");
    assert!(img.read_at(img.offset(2), 4096).iter().all(|b| *b == 0));
    assert_tree_in_manifest(&img, 0, src.path());
    assert_eq!(img.partition(1)["files"], json!([]));
}

#[test]
fn gpt_with_4096_byte_sectors() {
    let src = tempfile::tempdir().unwrap();
    windows_tree(src.path());
    put(
        src.path(),
        "Windows/System32/compressed.dll",
        &prose(40_000),
    );
    let spec = json!({
        "layout": "gpt4k",
        "partitions": [{
            "size_mib": 16, "fs": "ntfs", "label": "Four", "source": "win",
            "special": [{"path": "Windows/System32/compressed.dll", "kind": "compressed"}]
        }]
    });
    let Some(img) = build_or_skip(&spec, &[("win", src.path())]) else {
        return;
    };
    eprintln!("gpt4k: built in {} s", build_time(&img));
    assert_eq!(img.manifest["sector_size"], 4096);
    // The GPT header in LBA 1 of 4096 bytes, the protective MBR's partition from LBA 1.
    assert_eq!(&img.read_at(4096, 8), b"EFI PART");
    assert_ne!(&img.read_at(512, 8), b"EFI PART");
    let mbr = img.read_at(0, 512);
    assert_eq!(mbr[0x1BE + 4], 0xEE);
    assert_eq!(img.partition(0)["start_sector"], 256);
    assert_eq!(img.offset(0), MIB);
    assert_ntfs_boot_sector(&img, 0, 4096);
    assert_tree_in_manifest(&img, 0, src.path());
    assert_eq!(
        img.file(0, "Windows/System32/compressed.dll").unwrap()["kind"],
        "compressed"
    );
}

#[test]
fn mbr_layout() {
    let src = tempfile::tempdir().unwrap();
    windows_tree(src.path());
    let spec = json!({
        "layout": "mbr",
        "disk_signature": "1234ABCD",
        "partitions": [
            {"size_mib": 16, "fs": "ntfs", "label": "System", "source": "win"},
            {"size_mib": 16, "fs": "ntfs", "label": "Data"}
        ]
    });
    let Some(img) = build_or_skip(&spec, &[("win", src.path())]) else {
        return;
    };
    eprintln!("mbr: built in {} s", build_time(&img));
    assert_eq!(img.manifest["disk_signature"], "0x1234abcd");
    let mbr = img.read_at(0, 512);
    assert_eq!(&mbr[510..512], &[0x55, 0xAA]);
    assert_eq!(u32_at(&mbr, 440), 0x1234_ABCD);
    for index in 0..2 {
        let entry = &mbr[0x1BE + 16 * index..0x1BE + 16 * index + 16];
        assert_eq!(entry[4], 0x07);
        assert_eq!(u64::from(u32_at(entry, 8)) * 512, img.offset(index));
        let part = img.partition(index);
        assert_eq!(part["number"], index + 1);
        assert_eq!(part["mbr_type"], "0x07");
        assert_eq!(part["logical"], false);
        // MountedDevices' value of an MBR volume: disk signature, then byte offset.
        let mut value = 0x1234_ABCDu32.to_le_bytes().to_vec();
        value.extend(img.offset(index).to_le_bytes());
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(part["mounted_devices"], hex.as_str());
        assert_ntfs_boot_sector(&img, index, 512);
    }
    assert_eq!(mbr[0x1BE + 32 + 4], 0, "no third partition");
    assert_tree_in_manifest(&img, 0, src.path());
}

#[test]
fn mbr_extended_layout() {
    let src = tempfile::tempdir().unwrap();
    windows_tree(src.path());
    let spec = json!({
        "layout": "mbr-extended",
        "partitions": [
            {"size_mib": 16, "fs": "ntfs", "label": "Windows", "source": "win"},
            {"size_mib": 16, "fs": "ntfs", "label": "Data"},
            {"size_mib": 8, "fs": "bitlocker-like"}
        ]
    });
    let Some(img) = build_or_skip(&spec, &[("win", src.path())]) else {
        return;
    };
    eprintln!("mbr-extended: built in {} s", build_time(&img));
    let numbers: Vec<&Value> = (0..3).map(|i| &img.partition(i)["number"]).collect();
    assert_eq!(numbers, [1, 5, 6]);
    let logical: Vec<&Value> = (0..3).map(|i| &img.partition(i)["logical"]).collect();
    assert_eq!(logical, [false, true, true]);
    let mbr = img.read_at(0, 512);
    assert_eq!(mbr[0x1BE + 4], 0x07);
    assert_eq!(mbr[0x1BE + 16 + 4], 0x0F, "an extended partition (LBA)");
    let ext_start = u64::from(u32_at(&mbr, 0x1BE + 16 + 8));
    assert_eq!(img.manifest["extended"]["offset"], ext_start * 512);
    // The chain of EBRs: each names its logical partition relative to itself, and the
    // next EBR relative to the extended partition.
    let mut ebr_lba = ext_start;
    for index in 1..3 {
        let ebr = img.read_at(ebr_lba * 512, 512);
        assert_eq!(&ebr[510..512], &[0x55, 0xAA]);
        assert_eq!(ebr[0x1BE + 4], 0x07);
        assert_eq!(
            (ebr_lba + u64::from(u32_at(&ebr, 0x1BE + 8))) * 512,
            img.offset(index)
        );
        let next = u64::from(u32_at(&ebr, 0x1BE + 16 + 8));
        if index == 1 {
            assert_eq!(ebr[0x1BE + 16 + 4], 0x05);
            ebr_lba = ext_start + next;
        } else {
            assert_eq!(next, 0, "the last EBR links no further");
        }
    }
    assert_ntfs_boot_sector(&img, 0, 512);
    assert_ntfs_boot_sector(&img, 1, 512);
    assert_tree_in_manifest(&img, 0, src.path());
    assert!(img.file(0, "Windows/System32/config/SYSTEM").is_some());
    assert_eq!(img.partition(2)["fs"], "bitlocker-like");
    let boot = img.read_at(img.offset(2), 512);
    assert_eq!(&boot[3..11], b"-FVE-FS-");
}

/// One volume with every special kind; the builder has checked each with ntfsinfo and
/// ntfscat, and the manifest says what it found.
#[test]
fn volume_with_every_special_kind() {
    let src = tempfile::tempdir().unwrap();
    windows_tree(src.path());
    let vdl_bytes = noise(65_536, 7);
    put(src.path(), "Windows/Temp/vdl.bin", &vdl_bytes);
    let wof_bytes = {
        let mut b = prose(150_000);
        b.extend(noise(10_000, 8)); // a chunk that does not compress, stored as is
        b.extend(prose(30_000));
        b
    };
    put(src.path(), "Windows/System32/wofxp.dll", &wof_bytes);
    put(src.path(), "Windows/System32/comp.dll", &prose(100_000));
    let spec = json!({
        "layout": "volume",
        "partitions": [{
            "size_mib": 48, "fs": "ntfs", "label": "Specials", "source": "win",
            "dirty": true, "logfile_unclean": true,
            "special": [
                {"path": "Windows/System32/comp.dll", "kind": "compressed"},
                {"path": "Windows/WinSxS/Backup", "kind": "compressed_dir",
                 "files": [{"name": "a.dll", "content": {"pe_like": 40000}},
                           {"name": "sub/b.dll", "content": {"pe_like": 20000, "seed": 9}}]},
                {"path": "pagefile-like.bin", "kind": "sparse", "content": {"size": 4194304,
                 "segments": [{"offset": 0, "content": {"random": 5000, "seed": 1}},
                              {"offset": 2097152, "content": {"text": "after the hole"}}]}},
                {"path": "frag.bin", "kind": "fragmented", "content": {"random": 409600, "seed": 2},
                 "min_runs": 90},
                {"path": "alist.bin", "kind": "attribute_list",
                 "content": {"random": 2000000, "seed": 3}, "first_extent_in_base": true},
                {"kind": "mft_fragmented"},
                {"path": "Windows/WinSxS/Manifests", "kind": "big_folder", "count": 3000},
                {"path": "Documents and Settings", "kind": "junction", "target": "C:\\Users"},
                {"path": "Windows/System32/link.dll", "kind": "symlink",
                 "target": "C:\\Windows\\System32\\kernel32.dll"},
                {"path": "Windows/rel", "kind": "symlink", "target": "System32\\drivers", "directory": true},
                {"path": "Program Files/LongFileName.txt", "kind": "dos_name", "dos_name": "LONGFI~1.TXT"},
                {"path": "Ünïcødé/ǅemo Ελληνικά 漢字.txt", "kind": "unicode"},
                {"path": "Windows/Temp/vdl.bin", "kind": "valid_data_length", "valid_length": 10000},
                {"path": "Windows/Temp/vdl-truncated.bin", "kind": "valid_data_length",
                 "content": {"random": 65536, "seed": 5}, "valid_length": 10000, "method": "truncate"},
                {"path": "Windows/System32/wofxp.dll", "kind": "wof", "algorithm": "xpress4k"},
                {"path": "Windows/System32/woflzx.dll", "kind": "wof", "algorithm": "lzx",
                 "content": {"pe_like": 100000}},
                {"path": "Windows/System32/wof16.dll", "kind": "wof", "algorithm": "xpress16k",
                 "content": {"pe_like": 50000}},
                {"path": "Windows/System32/kernel32-link.dll", "kind": "hard_link",
                 "target": "Windows/System32/kernel32.dll"},
                {"path": "hiberfil.sys", "kind": "hiberfil", "magic": "HIBR"}
            ]
        }]
    });
    let Some(img) = build_or_skip(&spec, &[("win", src.path())]) else {
        return;
    };
    eprintln!("specials: built in {} s", build_time(&img));
    let part = img.partition(0);
    assert_eq!(part["dirty"], true);
    assert_eq!(part["logfile_unclean"], true);
    assert_ntfs_boot_sector(&img, 0, 512);

    // Files of the source that are no special, as copied; specials from the source with
    // the logical content Windows would read.
    for (path, (size, sha)) in tree_digests(src.path()) {
        let entry = img.file(0, &path).unwrap_or_else(|| panic!("{path}"));
        assert_eq!(entry["size"], size, "{path}");
        if path != "Windows/Temp/vdl.bin" {
            assert_eq!(entry["sha256"], sha.as_str(), "{path}");
        }
    }
    let one = |kind: &str| -> &Value {
        let all = img.specials(0, kind);
        assert!(!all.is_empty(), "no {kind} special in the manifest");
        all[0]
    };

    assert_eq!(
        img.file(0, "Windows/System32/comp.dll").unwrap()["kind"],
        "compressed"
    );
    assert_eq!(
        one("compressed_dir")["files"],
        json!([
            "Windows/WinSxS/Backup/a.dll",
            "Windows/WinSxS/Backup/sub/b.dll"
        ])
    );
    assert!(one("sparse")["sparse_runs"].as_u64().unwrap() >= 1);
    assert!(one("fragmented")["data_runs"].as_u64().unwrap() >= 90);
    let alist = one("attribute_list");
    assert_eq!(alist["first_extent_in_base"], true);
    assert!(alist["data_extent_records"].as_array().unwrap().len() >= 2);
    let mft = one("mft_fragmented");
    assert_eq!(mft["attribute_list"], true);
    assert_eq!(mft["data_extent_records"][0], 0);
    assert!(mft["data_extent_records"].as_array().unwrap().len() >= 2);
    let big = one("big_folder");
    assert_eq!(big["count"], 3000);
    let names = big["names"].as_array().unwrap();
    assert_eq!(names.len(), 3000);
    assert!(names.iter().any(|n| !n.as_str().unwrap().is_ascii()));
    assert!(names.iter().any(|n| n.as_str().unwrap().len() > 100));

    let junction = img.file(0, "Documents and Settings").unwrap();
    assert_eq!(junction["reparse_tag"], "0xa0000003");
    assert_eq!(junction["target"], "C:\\Users");
    // The reparse buffer as read back by ntfscat: tag, substitute name `\??\C:\Users`.
    let data = one("junction")["reparse_data"].as_str().unwrap();
    let sub: String = "\\??\\C:\\Users"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(data.starts_with("030000a0"), "{data}");
    assert!(data.contains(&sub));
    let symlinks = img.specials(0, "symlink");
    assert_eq!(symlinks.len(), 2);
    assert!(symlinks.iter().all(|s| s["reparse_tag"] == "0xa000000c"));
    assert_eq!(
        img.file(0, "Windows/rel").unwrap()["target"],
        "System32\\drivers"
    );

    let dos = one("dos_name");
    assert!(dos["file_names"]
        .as_array()
        .unwrap()
        .contains(&json!({"namespace": "DOS", "name": "LONGFI~1.TXT"})));
    assert!(img.file(0, "Ünïcødé/ǅemo Ελληνικά 漢字.txt").is_some());
    assert_eq!(
        one("unicode")["utf16_name"],
        "ǅemo Ελληνικά 漢字.txt"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    // Valid data length: bytes past it read as zeros, while the clusters hold the source.
    let vdl = img.file(0, "Windows/Temp/vdl.bin").unwrap();
    let mut logical = vdl_bytes[..10_000].to_vec();
    logical.resize(vdl_bytes.len(), 0);
    assert_eq!(vdl["sha256"], sha256_hex(&logical).as_str());
    assert_eq!(vdl["stale_bytes_sha256"], sha256_hex(&vdl_bytes).as_str());
    assert_eq!(vdl["method"], "patch");
    for report in img.specials(0, "valid_data_length") {
        assert_eq!(report["initialized_size"], 10_000);
        assert_eq!(report["data_size"], 65_536);
    }

    let wof: Vec<&Value> = img.specials(0, "wof");
    let algorithms: Vec<&Value> = wof.iter().map(|w| &w["algorithm"]).collect();
    assert_eq!(algorithms, ["xpress4k", "lzx", "xpress16k"]);
    for w in &wof {
        assert_eq!(w["reparse_tag"], "0x80000017");
        assert_eq!(w["file_attributes"].as_str().unwrap(), "0x00000620");
    }
    assert_eq!(wof[0]["chunk_size"], 4096);
    assert!(wof[0]["chunks_stored_uncompressed"].as_u64().unwrap() >= 1);
    assert_eq!(
        wof[1]["reparse_data"],
        "170000801000000001000000020000000100000001000000"
    );
    let wof_file = img.file(0, "Windows/System32/wofxp.dll").unwrap();
    assert_eq!(wof_file["sha256"], sha256_hex(&wof_bytes).as_str());

    let link = img.file(0, "Windows/System32/kernel32-link.dll").unwrap();
    let target = img.file(0, "Windows/System32/kernel32.dll").unwrap();
    assert_eq!(link["mft_record"], target["mft_record"]);
    assert_eq!(one("hard_link")["hard_links"], 2);
    assert_eq!(one("hiberfil")["magic"], "HIBR");
    assert_eq!(img.file(0, "hiberfil.sys").unwrap()["size"], 65_536);
}

/// The builder fails loudly when the image cannot be what was asked: a file too small to
/// be non-resident cannot be compressed.
#[test]
fn builder_fails_when_a_special_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({
        "layout": "volume",
        "partitions": [{"size_mib": 8, "fs": "ntfs", "special": [
            {"path": "tiny.dll", "kind": "compressed", "content": {"text": "MZ"}}
        ]}]
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let output = std::process::Command::new("python3")
        .arg(support::ntfs_image::builder())
        .arg(&spec_path)
        .arg(dir.path().join("out.img"))
        .arg(dir.path().join("manifest.json"))
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => return skip_or_fail(&format!("python3: {e}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        return skip_or_fail(stderr.lines().next().unwrap_or("build.py"));
    }
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("resident"), "{stderr}");
    assert!(!dir.path().join("out.img").exists());
    assert!(!dir.path().join("manifest.json").exists());
    // Nothing left mounted or behind.
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the spec is left"
    );
}
