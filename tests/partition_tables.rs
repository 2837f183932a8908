//! The partition-table reader against util-linux: disk images partitioned by `sfdisk` (and
//! `fdisk -b 4096` where this sfdisk has no `--sector-size`), read back by
//! `nextboot::evidence::image::partition` and compared, partition by partition, with what
//! `sfdisk --json` (or `fdisk -l`) reports. Without sfdisk the tests say so and pass, except
//! in CI (CI set), where they fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nextboot::evidence::image::partition::{
    format_guid, read_partition_table, PartitionKind, PartitionTable, Scheme,
};
use nextboot::evidence::image::ImageFile;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// A util-linux tool by name, on PATH or in the sbin folders a non-root PATH lacks.
fn tool(name: &str) -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(name),
        Path::new("/usr/sbin").join(name),
        Path::new("/sbin").join(name),
    ];
    candidates.into_iter().find(|path| {
        Command::new(path)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// The tool, or None after saying why the test does not run (a failure in CI).
fn required(name: &str) -> Option<PathBuf> {
    let found = tool(name);
    if found.is_none() {
        let message = format!("{name} is not installed (Debian package fdisk); test skipped");
        if std::env::var_os("CI").is_some() {
            panic!("{message}, but CI must run it");
        }
        println!("{message}");
    }
    found
}

/// A sparse image file of `size` bytes.
fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// Runs `program args` with `input` on its standard input; panics with its output on failure.
fn run(program: &Path, args: &[&str], input: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {stdout}{}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Inverts one byte of a file.
fn flip_byte(path: &Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&[!byte[0]]).unwrap();
}

fn sfdisk_write(sfdisk: &Path, path: &Path, script: &str) {
    run(sfdisk, &["--quiet", path.to_str().unwrap()], script);
}

fn sfdisk_json(sfdisk: &Path, path: &Path, extra: &[&str]) -> Value {
    let mut args = extra.to_vec();
    args.extend(["--json", path.to_str().unwrap()]);
    serde_json::from_str(&run(sfdisk, &args, "")).unwrap()
}

fn read(path: &Path) -> PartitionTable {
    let disk = ImageFile::open(path).unwrap();
    read_partition_table(&disk).unwrap()
}

/// The partition number of a node such as `/tmp/x/disk.img5`: its trailing digits.
fn node_number(node: &str) -> u32 {
    let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    node[node.len() - digits..].parse().unwrap()
}

/// Every partition sfdisk lists is in the table with the same number, offset, size and
/// identity, and nothing else is.
fn assert_matches_sfdisk(table: &PartitionTable, json: &Value) {
    let pt = &json["partitiontable"];
    let sector = pt["sectorsize"].as_u64().unwrap();
    assert_eq!(u64::from(table.sector_size), sector);
    let listed = pt["partitions"].as_array().unwrap();
    assert_eq!(table.partitions.len(), listed.len(), "{table:#?}\n{json:#}");
    match (pt["label"].as_str().unwrap(), &table.scheme) {
        ("gpt", Scheme::Gpt { disk_guid, .. }) => {
            assert_eq!(format_guid(disk_guid), pt["id"].as_str().unwrap());
        }
        ("dos", Scheme::Mbr { disk_signature }) => {
            assert_eq!(
                format!("0x{disk_signature:08x}"),
                pt["id"].as_str().unwrap()
            );
        }
        (label, scheme) => panic!("sfdisk says {label}, we say {scheme:?}"),
    }
    for want in listed {
        let number = node_number(want["node"].as_str().unwrap());
        let got = table
            .partitions
            .iter()
            .find(|p| p.number == number)
            .unwrap_or_else(|| panic!("partition {number} missing: {table:#?}"));
        assert_eq!(
            got.offset,
            want["start"].as_u64().unwrap() * sector,
            "{number}"
        );
        assert_eq!(
            got.size,
            want["size"].as_u64().unwrap() * sector,
            "{number}"
        );
        assert_eq!(got.recorded_size, got.size, "{number}");
        let kind = want["type"].as_str().unwrap();
        match &got.kind {
            PartitionKind::Gpt {
                type_guid,
                unique_guid,
                name,
                ..
            } => {
                assert_eq!(format_guid(type_guid), kind, "{number}");
                assert_eq!(format_guid(unique_guid), want["uuid"].as_str().unwrap());
                assert_eq!(name, want["name"].as_str().unwrap_or(""), "{number}");
            }
            PartitionKind::Mbr { type_byte, .. } => {
                assert_eq!(format!("{type_byte:x}"), kind, "{number}");
            }
        }
    }
}

/// Three partitions: a named Basic data partition, an EFI system partition with a
/// non-ASCII name, and the rest as an MSR without a name.
const GPT_SCRIPT: &str = "label: gpt\n\
    size=1MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=\"Basic data partition\"\n\
    size=2MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"Système EFI\"\n\
    type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE\n";

fn gpt_image(sfdisk: &Path, dir: &Path) -> PathBuf {
    let path = image(dir, "gpt.img", 8 * MIB);
    sfdisk_write(sfdisk, &path, GPT_SCRIPT);
    path
}

#[test]
fn gpt_with_512_byte_sectors() {
    let Some(sfdisk) = required("sfdisk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = gpt_image(&sfdisk, dir.path());
    let table = read(&path);
    assert!(matches!(
        table.scheme,
        Scheme::Gpt {
            backup_used: false,
            ..
        }
    ));
    assert!(table.notes.is_empty(), "{:?}", table.notes);
    assert_eq!(table.partitions.len(), 3);
    assert_matches_sfdisk(&table, &sfdisk_json(&sfdisk, &path, &[]));
}

#[test]
fn gpt_with_damaged_primary_uses_the_backup() {
    let Some(sfdisk) = required("sfdisk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (what, offset) in [("header", 512 + 60), ("entry array", 2 * 512 + 40)] {
        let path = gpt_image(&sfdisk, dir.path());
        let before = sfdisk_json(&sfdisk, &path, &[]);
        flip_byte(&path, offset);
        let table = read(&path);
        assert!(
            matches!(
                table.scheme,
                Scheme::Gpt {
                    backup_used: true,
                    ..
                }
            ),
            "{what}: {table:?}"
        );
        let note = &table.notes[0];
        assert!(
            note.starts_with(&format!("the primary GPT {what} is damaged")),
            "{note}"
        );
        assert!(
            note.ends_with("the backup header at sector 16383 was used"),
            "{note}"
        );
        assert_matches_sfdisk(&table, &before);
        // sfdisk, too, falls back on the backup and lists the same.
        assert_matches_sfdisk(&table, &sfdisk_json(&sfdisk, &path, &[]));
    }
}

#[test]
fn gpt_with_4096_byte_sectors() {
    let Some(sfdisk) = required("sfdisk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), "gpt4k.img", 16 * MIB);
    let help = run(&sfdisk, &["--help"], "");
    if help.contains("--sector-size") {
        sfdisk_write(
            &sfdisk,
            &path,
            "label: gpt\nsize=1MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n\
             size=4MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=\"data\"\n",
        );
        let table = read(&path);
        assert_eq!(table.sector_size, 4096);
        assert!(table.notes.is_empty(), "{:?}", table.notes);
        assert_matches_sfdisk(
            &table,
            &sfdisk_json(&sfdisk, &path, &["--sector-size", "4096"]),
        );
        return;
    }
    // sfdisk before util-linux 2.39 has no --sector-size; fdisk -b has long had it.
    let Some(fdisk) = required("fdisk") else {
        return;
    };
    let p = path.to_str().unwrap();
    // g: a new GPT; n: three partitions (1 MiB, 4 MiB, the rest); t: types;
    // x/n: a name for partition 2.
    let script = "g\n\
        n\n\n\n+1M\n\
        n\n\n\n+4M\n\
        n\n\n\n\n\
        t\n1\nC12A7328-F81F-11D2-BA4B-00A0C93EC93B\n\
        t\n2\nEBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n\
        x\nn\n2\ndata\nr\n\
        w\n";
    run(&fdisk, &["-b", "4096", p], script);
    let table = read(&path);
    assert_eq!(table.sector_size, 4096);
    assert!(
        matches!(
            table.scheme,
            Scheme::Gpt {
                backup_used: false,
                ..
            }
        ),
        "{table:?}"
    );
    assert!(table.notes.is_empty(), "{:?}", table.notes);

    // The oracle: fdisk's own listing with the same sector size.
    let listing = run(
        &fdisk,
        &[
            "-l",
            "-b",
            "4096",
            "-o",
            "Device,Start,Sectors,Type-UUID,UUID,Name",
            p,
        ],
        "",
    );
    let disk_id = listing
        .lines()
        .find_map(|line| line.strip_prefix("Disk identifier: "))
        .unwrap();
    let Scheme::Gpt { disk_guid, .. } = table.scheme else {
        unreachable!()
    };
    assert_eq!(format_guid(&disk_guid), disk_id.trim());
    let rows: Vec<&str> = listing.lines().filter(|l| l.starts_with(p)).collect();
    assert_eq!(rows.len(), 3, "{listing}");
    assert_eq!(table.partitions.len(), 3);
    for row in rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let number = node_number(fields[0]);
        let got = table
            .partitions
            .iter()
            .find(|p| p.number == number)
            .unwrap();
        assert_eq!(got.offset, fields[1].parse::<u64>().unwrap() * 4096);
        assert_eq!(got.size, fields[2].parse::<u64>().unwrap() * 4096);
        let PartitionKind::Gpt {
            type_guid,
            unique_guid,
            name,
            ..
        } = &got.kind
        else {
            panic!("{got:?}")
        };
        assert_eq!(format_guid(type_guid), fields[3]);
        assert_eq!(format_guid(unique_guid), fields[4]);
        assert_eq!(name, &fields[5..].join(" "));
    }
    // The names as set: only partition 2 has one.
    let names: Vec<&str> = table
        .partitions
        .iter()
        .map(|p| match &p.kind {
            PartitionKind::Gpt { name, .. } => name.as_str(),
            PartitionKind::Mbr { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(names, ["", "data", ""]);
}

#[test]
fn mbr_with_an_extended_partition_and_two_logical_ones() {
    let Some(sfdisk) = required("sfdisk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), "mbr.img", 16 * MIB);
    let p = path.to_str().unwrap();
    // Partitions named by number: without names, sfdisk would put the 4th line in slot 4.
    let script = format!(
        "label: dos\nlabel-id: 0x12345678\n\
         {p}1 : start=2048, size=4096, type=7, bootable\n\
         {p}2 : start=6144, size=4096, type=83\n\
         {p}3 : start=10240, size=20480, type=f\n\
         {p}5 : start=12288, size=4096, type=7\n\
         {p}6 : start=18432, size=8192, type=b\n"
    );
    sfdisk_write(&sfdisk, &path, &script);
    let table = read(&path);
    assert!(table.notes.is_empty(), "{:?}", table.notes);
    let numbers: Vec<u32> = table.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 5, 6]);
    let flags: Vec<(bool, bool)> = table
        .partitions
        .iter()
        .map(|p| match p.kind {
            PartitionKind::Mbr {
                logical, bootable, ..
            } => (logical, bootable),
            PartitionKind::Gpt { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(
        flags,
        [
            (false, true),
            (false, false),
            (false, false),
            (true, false),
            (true, false)
        ]
    );
    assert!(table.partitions[2].is_extended());
    assert_matches_sfdisk(&table, &sfdisk_json(&sfdisk, &path, &[]));
}

/// A volume image: an NTFS boot sector ends in 0x55AA too, and is no MBR.
#[test]
fn ntfs_volume_image_has_no_partition_table() {
    let Some(mkntfs) = tool("mkntfs") else {
        let message = "mkntfs is not installed (Debian package ntfs-3g); test skipped";
        if std::env::var_os("CI").is_some() {
            panic!("{message}, but CI must run it");
        }
        println!("{message}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), "volume.img", 8 * MIB);
    run(
        &mkntfs,
        &["--quiet", "--fast", "--force", path.to_str().unwrap()],
        "",
    );
    let table = read(&path);
    assert_eq!(table.scheme, Scheme::None);
    assert!(table.partitions.is_empty());
    assert!(
        table.notes[0].contains("NTFS boot sector"),
        "{:?}",
        table.notes
    );
}
