//! The VMDK reader against `qemu-img -O vmdk` (monolithicSparse, streamOptimized,
//! monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat), a VMware-style stream whose
//! grain directory is in a footer (written here, as qemu does not write one), and
//! hand-written descriptors: the whole virtual disk read through the container equals the
//! raw disk, and damaged variants give errors, never a panic or a hang.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use nextboot::evidence::image::container::{vmdk, ContainerError};
use nextboot::evidence::image::ReadAt;
use support::container::{
    assert_disk_is, assert_reads_around, assert_reads_from_threads, dispatch, expect_unsupported,
    have, le32, le64, made_with, marked_disk, mutation_rounds, one_to_four, open_both, open_file,
    patch, path_arg, put32, put64, qemu_convert, qemu_img, read_failures, scratch, write_file,
    Damage, Made, Opening, Rng, MARKED_DISK_SIZE,
};

const MIB: usize = 1 << 20;
const DISK_SIZE: usize = MARKED_DISK_SIZE;
const GRAIN: usize = 64 << 10;

/// The raw disk: a `marked_disk`, some of its random runs straddling grain boundaries, whole
/// grain tables of zeros.
fn raw_disk() -> Vec<u8> {
    marked_disk(0x2545_F491_4F6C_DD1D)
}

/// The raw disk converted to a VMDK of `subformat`, in a folder of its own in `dir`.
fn make_vmdk(dir: &Path, raw: &[u8], subformat: &str) -> PathBuf {
    qemu_convert(
        &write_file(dir, "disk.raw", raw),
        "vmdk",
        &["-o", &format!("subformat={subformat}")],
        &dir.join(subformat).join("disk.vmdk"),
    )
}

/// With qemu-img: the raw disk as a VMDK of `subformat`, and its bytes.
fn vmdk_of(subformat: &str) -> Option<Made> {
    made_with("qemu-img", raw_disk, |dir, raw| {
        make_vmdk(dir, raw, subformat)
    })
}

fn open_path(path: &Path) -> Opening {
    open_file(vmdk::open, path)
}

fn open_bytes(data: Vec<u8>) -> Opening {
    support::container::open_bytes(vmdk::open, "bytes.vmdk", data)
}

/// The paths of the files `names` in `folder`, as the container lists them.
fn files_in(folder: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| folder.join(name).display().to_string())
        .collect()
}

/// The whole disk read in odd-sized chunks equals `raw`, reads straddling grain and
/// grain-table boundaries too, and a read past the end fails.
fn assert_reads_as(disk: &dyn ReadAt, raw: &[u8]) {
    let size = raw.len();
    assert_disk_is(
        disk,
        raw,
        [
            GRAIN,
            3 * MIB + GRAIN,
            16 * MIB,
            16 * MIB - GRAIN,
            size - 512,
        ],
        &[(1, 2), (511, 1024), (4096, 70_000), (GRAIN + 1, 3 * GRAIN)],
    );
}

#[test]
fn qemu_subformats_read_as_the_raw_disk() {
    let Some((dir, raw)) = scratch("qemu-img", |_| raw_disk()) else {
        return;
    };
    let cases = [
        ("monolithicSparse", &[][..]),
        ("streamOptimized", &[][..]),
        ("monolithicFlat", &["disk-flat.vmdk"][..]),
        ("twoGbMaxExtentSparse", &["disk-s001.vmdk"][..]),
        ("twoGbMaxExtentFlat", &["disk-f001.vmdk"][..]),
    ];
    for (subformat, extents) in cases {
        let path = make_vmdk(dir.path(), &raw, subformat);
        let folder = path.parent().unwrap();
        for opened in open_both(vmdk::open, &path) {
            assert_eq!(opened.info.format, format!("vmdk ({subformat})"));
            assert_eq!(opened.info.virtual_size, raw.len() as u64);
            assert_eq!(opened.info.files, files_in(folder, extents), "{subformat}");
            assert_reads_as(opened.disk.as_ref(), &raw);
        }
    }
}

/// Reads from several threads at once through the shared caches give the same bytes.
#[test]
fn concurrent_reads_of_a_stream_agree() {
    let Some(image) = vmdk_of("streamOptimized") else {
        return;
    };
    let disk = open_path(&image.path).unwrap().unwrap().disk;
    assert_reads_from_threads(&*disk, &image.raw, 4, |t| {
        let chunk = 3 * 4096 + 512 * t + 1;
        (0..2000)
            .map(|i| ((i * 7919 * 512 + t * 333) % (DISK_SIZE - chunk), chunk))
            .collect()
    });
}

// ---------------------------------------------------------------------------------------
// A VMware-style stream, written here

/// How a stream's grains are compressed.
#[derive(Clone, Copy)]
enum Deflate {
    Zlib,
    Raw,
}

fn compress(data: &[u8], how: Deflate) -> Vec<u8> {
    let level = flate2::Compression::fast();
    match how {
        Deflate::Zlib => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        Deflate::Raw => {
            let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), level);
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
    }
}

const GD_AT_END: u64 = u64::MAX;

/// A sparse header of a stream (compressed grains, markers).
fn stream_header(capacity: u64, grain_sectors: u64, gtes: usize, gd_offset: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&0x0003_0001u32.to_le_bytes());
    h[12..20].copy_from_slice(&capacity.to_le_bytes());
    h[20..28].copy_from_slice(&grain_sectors.to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes());
    h[36..44].copy_from_slice(&2u64.to_le_bytes());
    h[44..48].copy_from_slice(&(gtes as u32).to_le_bytes());
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&4u64.to_le_bytes());
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&1u16.to_le_bytes());
    h
}

/// A metadata marker sector: `sectors` of metadata of `kind` follow (0 EOS, 1 GT, 2 GD,
/// 3 footer).
fn marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

fn pad_to_sector(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(512), 0);
}

/// `raw` as VMware writes a streamOptimized disk: header with its grain directory at the
/// end, grains (each behind its marker), each grain table behind a GT marker after its
/// grains (none for a table of zeros), the directory, the footer, end of stream. Grain
/// tables have `gtes` entries.
fn vmware_stream(raw: &[u8], grain_sectors: u64, gtes: usize, how: Deflate) -> Vec<u8> {
    let capacity = raw.len().div_ceil(512) as u64;
    let grain = grain_sectors as usize * 512;
    let grains = raw.len().div_ceil(grain);
    let tables = grains.div_ceil(gtes);
    let descriptor = format!(
        "# Disk DescriptorFile\nversion=1\nCID=1a2b3c4d\nparentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\n# Extent description\n\
         RW {capacity} SPARSE \"vmware.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
         ddb.adapterType = \"lsilogic\"\n"
    );
    let mut out = stream_header(capacity, grain_sectors, gtes, GD_AT_END).to_vec();
    out.extend_from_slice(descriptor.as_bytes());
    out.resize(4 * 512, 0);
    let mut gd = vec![0u32; tables];
    for (t, entry) in gd.iter_mut().enumerate() {
        let mut gt = vec![0u32; gtes];
        for (e, gte) in gt.iter_mut().enumerate() {
            let g = t * gtes + e;
            if g >= grains {
                break;
            }
            let data = &raw[g * grain..((g + 1) * grain).min(raw.len())];
            if data.iter().all(|&b| b == 0) {
                continue;
            }
            *gte = (out.len() / 512) as u32;
            let compressed = compress(data, how);
            out.extend_from_slice(&(g as u64 * grain_sectors).to_le_bytes());
            out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
            out.extend_from_slice(&compressed);
            pad_to_sector(&mut out);
        }
        if gt.iter().all(|&s| s == 0) {
            continue;
        }
        out.extend_from_slice(&marker((gtes * 4).div_ceil(512) as u64, 1));
        *entry = (out.len() / 512) as u32;
        out.extend(gt.iter().flat_map(|s| s.to_le_bytes()));
        pad_to_sector(&mut out);
    }
    let gd_sectors = (tables * 4).div_ceil(512) as u64;
    out.extend_from_slice(&marker(gd_sectors, 2));
    let gd_offset = (out.len() / 512) as u64;
    out.extend(gd.iter().flat_map(|s| s.to_le_bytes()));
    pad_to_sector(&mut out);
    out.extend_from_slice(&marker(1, 3));
    out.extend_from_slice(&stream_header(capacity, grain_sectors, gtes, gd_offset));
    out.extend_from_slice(&marker(0, 0));
    out
}

#[test]
fn vmware_streams_with_their_directory_in_a_footer() {
    let raw = raw_disk();
    // 8 KiB grains, 128 a table: 1 MiB a grain table, so that some tables are absent.
    for how in [Deflate::Zlib, Deflate::Raw] {
        let stream = vmware_stream(&raw, 16, 128, how);
        let opened = open_bytes(stream).unwrap().unwrap();
        assert_eq!(opened.info.format, "vmdk (streamOptimized)");
        assert_reads_as(opened.disk.as_ref(), &raw);
    }
    // A capacity that is not whole grains: the last grain is shorter.
    let short = &raw[..raw.len() - 3 * 512];
    let opened = open_bytes(vmware_stream(short, 128, 512, Deflate::Zlib))
        .unwrap()
        .unwrap();
    assert_eq!(opened.disk.len(), short.len() as u64);
    let mut tail = vec![0u8; 8192];
    opened
        .disk
        .read_exact_at(&mut tail, short.len() as u64 - 8192)
        .unwrap();
    assert!(tail == short[short.len() - 8192..]);
}

#[test]
fn damaged_vmware_streams_give_errors() {
    let raw = raw_disk();
    let good = vmware_stream(&raw, 16, 128, Deflate::Zlib);
    // Cut: the footer is gone (an unfinished download).
    for len in [
        good.len() - 512,
        good.len() - 1024,
        good.len() / 2,
        1024,
        600,
    ] {
        assert!(
            open_bytes(good[..len].to_vec()).is_err(),
            "cut to {len} bytes"
        );
    }
    // The footer's grain directory offset outside the file, or absent.
    let footer = good.len() - 1024;
    for gd in [GD_AT_END, 0, 1 << 40] {
        let mut data = good.clone();
        put64(&mut data, footer + 56, gd);
        assert!(open_bytes(data).is_err(), "footer GD {gd}");
    }
    // The footer's GD pointing at the grains: garbage tables, errors or data, no panic.
    let mut data = good.clone();
    put64(&mut data, footer + 56, 4);
    read_all_somehow(data);
    // An unknown compression.
    let mut data = good.clone();
    patch(&mut data, footer + 77, &2u16.to_le_bytes());
    assert!(matches!(
        open_bytes(data),
        Err(ContainerError::Unsupported { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Hand-written descriptors

fn write_descriptor(folder: &Path, name: &str, extents: &str, more: &str) -> PathBuf {
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n{more}\
         createType=\"custom\"\n\n# Extent description\n{extents}\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n"
    );
    write_file(folder, name, text.as_bytes())
}

#[test]
fn a_descriptor_of_several_extents_reads_them_in_order() {
    let Some((dir, raw)) = scratch("qemu-img", |_| raw_disk()) else {
        return;
    };
    // A sparse file made by qemu, moved into a subfolder, as the last extent.
    let sparse = make_vmdk(dir.path(), &raw, "monolithicSparse");
    let folder = dir.path().join("set");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::rename(&sparse, folder.join("sub/part three.vmdk")).unwrap();
    // A flat file read from sector 8, a zero extent, a flat file from its start.
    let mut rng = Rng::new(99);
    let mut one = vec![0u8; 8 * 512 + 3 * MIB + 512];
    rng.fill(&mut one);
    let mut two = vec![0u8; MIB];
    rng.fill(&mut two);
    write_file(&folder, "one-flat.vmdk", &one);
    write_file(&folder, "two-flat.vmdk", &two);
    let extents = format!(
        "RW {} FLAT \"one-flat.vmdk\" 8\nRW 4097 ZERO\nRDONLY {} FLAT \"two-flat.vmdk\" 0\n\
         RW 0 ZERO\nRW {} SPARSE \"sub\\part three.vmdk\"",
        (3 * MIB + 512) / 512,
        MIB / 512,
        DISK_SIZE / 512
    );
    let path = write_descriptor(&folder, "set.vmdk", &extents, "");
    let mut expected = one[8 * 512..].to_vec();
    expected.extend(std::iter::repeat_n(0u8, 4097 * 512));
    expected.extend_from_slice(&two);
    expected.extend_from_slice(&raw);
    for opened in open_both(vmdk::open, &path) {
        assert_eq!(opened.info.format, "vmdk (custom)");
        assert_eq!(opened.info.virtual_size, expected.len() as u64);
        let files = ["one-flat.vmdk", "two-flat.vmdk", "sub/part three.vmdk"];
        assert_eq!(opened.info.files, files_in(&folder, &files));
        let disk = opened.disk;
        let mut all = vec![0u8; expected.len()];
        disk.read_exact_at(&mut all, 0).unwrap();
        assert!(all == expected);
        // Reads across each extent boundary.
        let ends = [3 * MIB + 512, 4097 * 512, MIB]
            .into_iter()
            .scan(0, |end, len| {
                *end += len;
                Some(*end)
            });
        assert_reads_around(
            &*disk,
            &expected,
            ends,
            &[(1, 2), (512, 1024), (70_000, 140_001)],
        );
    }
}

#[test]
fn descriptors_naming_what_cannot_be_read_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("disk");
    std::fs::create_dir_all(&folder).unwrap();
    write_file(&folder, "flat.vmdk", &[1u8; 64 * 512]);
    write_file(dir.path(), "outside.vmdk", &[2u8; 64 * 512]);
    let cases = [
        ("RW 64 FLAT \"../outside.vmdk\" 0", "", "outside"),
        ("RW 64 FLAT \"..\\outside.vmdk\" 0", "", "outside"),
        ("RW 64 FLAT \"sub/../../outside.vmdk\" 0", "", "folder"),
        ("RW 64 FLAT \"/etc/passwd\" 0", "", "folder"),
        ("RW 64 VMFSSPARSE \"flat.vmdk\"", "", "COWD"),
        ("RW 64 SESPARSE \"flat.vmdk\"", "", "SE sparse"),
        ("RW 64 VMFSRDM \"flat.vmdk\"", "", "device"),
        ("RW 64 WHATEVER \"flat.vmdk\"", "", "unknown type WHATEVER"),
        ("NOACCESS 64 FLAT \"flat.vmdk\" 0", "", "NOACCESS"),
        (
            "RW 64 FLAT \"flat.vmdk\" 0",
            "encryption.keySafe = \"vmware:key/list/(pair/(phrase/x))\"\n",
            "encrypted",
        ),
        (
            "RW 64 FLAT \"flat.vmdk\" 0",
            "parentFileNameHint=\"base disk.vmdk\"\n",
            "base disk.vmdk",
        ),
    ];
    for (i, (extents, more, needle)) in cases.into_iter().enumerate() {
        let path = write_descriptor(&folder, &format!("d{i}.vmdk"), extents, more);
        expect_unsupported(open_path(&path), needle);
    }
    // Damaged: a flat extent larger than its file, a missing file, a bad line, no extent.
    let damaged = [
        "RW 65 FLAT \"flat.vmdk\" 0",
        "RW 64 FLAT \"flat.vmdk\" 1",
        "RW 64 FLAT \"flat.vmdk\" 18446744073709551615",
        "RW 18446744073709551615 FLAT \"flat.vmdk\" 0",
        "RW 64 FLAT \"missing.vmdk\" 0",
        "RW 64 SPARSE \"flat.vmdk\"",
        "RW sixty-four FLAT \"flat.vmdk\" 0",
        "RW 64 FLAT \"flat.vmdk",
        "RW 64 FLAT",
        "",
    ];
    for (i, extents) in damaged.into_iter().enumerate() {
        let path = write_descriptor(&folder, &format!("bad{i}.vmdk"), extents, "");
        assert!(open_path(&path).is_err(), "{extents:?}");
    }
    // Sizes that overflow once added up.
    let huge = "RW 18014398509481983 ZERO\nRW 18014398509481983 ZERO\nRW 64 ZERO";
    let path = write_descriptor(&folder, "huge.vmdk", huge, "");
    assert!(open_path(&path).is_err());
    // Too long to be a descriptor.
    let mut long = b"# Disk DescriptorFile\n".to_vec();
    long.resize(65 << 10, b'#');
    write_file(&folder, "long.vmdk", &long);
    assert!(open_path(&folder.join("long.vmdk")).is_err());
    // And the good one opens.
    let path = write_descriptor(&folder, "good.vmdk", "RW 64 FLAT \"flat.vmdk\" 0", "");
    let opened = open_path(&path).unwrap().unwrap();
    assert_eq!(opened.info.virtual_size, 64 * 512);
}

#[test]
fn a_delta_disk_is_refused_naming_its_parent() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base disk.vmdk");
    let child = dir.path().join("child.vmdk");
    qemu_img(&["create", "-f", "vmdk", path_arg(&base), "16M"]);
    qemu_img(&[
        "create",
        "-f",
        "vmdk",
        "-b",
        path_arg(&base),
        "-F",
        "vmdk",
        path_arg(&child),
    ]);
    expect_unsupported(open_path(&child), "base disk.vmdk");
    expect_unsupported(dispatch(&child), "parent");
}

/// qemu's extents of a split sparse disk have no descriptor of their own: opened alone,
/// one is refused (it is one part of a disk), not read as a whole disk.
#[test]
fn a_split_extent_alone_is_refused() {
    let Some(image) = vmdk_of("twoGbMaxExtentSparse") else {
        return;
    };
    let extent = image.path.with_file_name("disk-s001.vmdk");
    expect_unsupported(open_path(&extent), "descriptor");
}

// ---------------------------------------------------------------------------------------
// Damaged sparse files

/// Opens `data` and, when it opens, reads all of it: an error either way is fine, a panic
/// is not. Returns whether everything succeeded.
fn read_all_somehow(data: Vec<u8>) -> bool {
    let Ok(Some(opened)) = open_bytes(data) else {
        return false;
    };
    read_failures(&*opened.disk, 4 * MIB, u64::MAX).is_empty()
}

/// The byte of the grain directory.
fn gd_at(data: &[u8]) -> usize {
    le64(data, 56) as usize * 512
}

/// The byte of the grain table entry of grain `index` (tables of 512 entries).
fn gte_at(data: &[u8], index: usize) -> usize {
    let gt = le32(data, gd_at(data) + 4 * (index / 512)) as usize * 512;
    gt + 4 * (index % 512)
}

#[test]
fn damaged_sparse_files_give_errors() {
    let Some((dir, raw)) = scratch("qemu-img", |_| raw_disk()) else {
        return;
    };
    for subformat in ["monolithicSparse", "streamOptimized"] {
        let good = std::fs::read(make_vmdk(dir.path(), &raw, subformat)).unwrap();
        assert!(read_all_somehow(good.clone()));
        // Cut: the last grains are gone; reading them fails.
        // (qemu pads a stream after its last grain: cutting a byte loses no grain.)
        let cut = if subformat == "monolithicSparse" {
            1
        } else {
            0x10000
        };
        for len in [good.len() - cut, good.len() / 2, 0x3000, 1000, 511] {
            assert!(
                !read_all_somehow(good[..len].to_vec()),
                "{subformat} cut to {len}"
            );
        }
        // Grain 0 (the first sector) moved past the end, onto a metadata sector, onto
        // the header.
        for sector in [0x00FF_FFFFu32, 0x7FFF_FFFF, 0x15, 2] {
            let mut data = good.clone();
            let at = gte_at(&data, 0);
            put32(&mut data, at, sector);
            let opened = open_bytes(data).unwrap().unwrap();
            let mut first = [0u8; 512];
            let result = opened.disk.read_exact_at(&mut first, 0);
            assert!(
                result.is_err() || (subformat == "monolithicSparse" && sector < 0x100),
                "{subformat}: grain 0 at sector {sector:#x}"
            );
        }
        // A grain directory entry past the end.
        let mut data = good.clone();
        let gd = gd_at(&data);
        put32(&mut data, gd, 0x7FFF_FFFF);
        assert!(!read_all_somehow(data));
        // Absurd header fields.
        let fields: [(usize, Vec<u8>); 7] = [
            (12, u64::MAX.to_le_bytes().to_vec()),
            (12, (1u64 << 50).to_le_bytes().to_vec()),
            (20, 0u64.to_le_bytes().to_vec()),
            (20, 100u64.to_le_bytes().to_vec()),
            (20, (1u64 << 40).to_le_bytes().to_vec()),
            (44, u32::MAX.to_le_bytes().to_vec()),
            (4, 4u32.to_le_bytes().to_vec()),
        ];
        for (field, value) in fields {
            let mut data = good.clone();
            patch(&mut data, field, &value);
            assert!(open_bytes(data).is_err(), "{subformat}: field {field}");
        }
        // The grain directory outside the file: the redundant one is used, when it is
        // outside too the file is damaged.
        let mut data = good.clone();
        put64(&mut data, 56, 1 << 60);
        assert!(read_all_somehow(data.clone()));
        put64(&mut data, 48, 1 << 50);
        assert!(matches!(
            open_bytes(data),
            Err(ContainerError::Damaged { .. })
        ));
        // Random bytes in the metadata (header, descriptor, directory, tables): errors or
        // data, never a panic or a hang.
        mutation_rounds(
            &good,
            &mut Rng::new(subformat.len() as u64),
            60,
            one_to_four,
            |rng, data, _| {
                let at = rng.below(0x3E00);
                data[at] = rng.next_u64() as u8;
            },
            |rng, data, _| {
                if let Ok(Some(opened)) = open_bytes(data) {
                    let mut buf = vec![0u8; 3 * GRAIN];
                    for _ in 0..32 {
                        let at = rng.below(DISK_SIZE - buf.len());
                        let _ = opened.disk.read_exact_at(&mut buf, at as u64);
                    }
                }
            },
        );
    }
}

#[test]
fn damaged_compressed_grains_give_errors() {
    let Some(image) = vmdk_of("streamOptimized") else {
        return;
    };
    let (raw, good) = (&image.raw, &image.bytes);
    // The grain of the random run at 3 MiB.
    let index = 3 * MIB / GRAIN;
    let grain = le32(good, gte_at(good, index)) as usize * 512;
    let size = le32(good, grain + 8) as usize;
    let read_grain = |data: Vec<u8>| {
        let opened = open_bytes(data).unwrap().unwrap();
        let mut buf = vec![0u8; GRAIN];
        opened
            .disk
            .read_exact_at(&mut buf, (index * GRAIN) as u64)
            .map(|()| buf)
    };
    assert!(read_grain(good.clone()).unwrap() == raw[3 * MIB..3 * MIB + GRAIN]);
    let cases: [(&str, Damage); 6] = [
        ("a flipped byte in the data", &|d| {
            d[grain + 12 + size / 2] ^= 0x55
        }),
        ("a wrong checksum", &|d| d[grain + 12 + size - 1] ^= 0x01),
        ("a huge size", &|d| put32(d, grain + 8, u32::MAX)),
        ("a short size", &|d| put32(d, grain + 8, (size / 2) as u32)),
        ("a metadata marker", &|d| put32(d, grain + 8, 0)),
        ("the marker of another grain", &|d| put64(d, grain, 12345)),
    ];
    for (what, damage) in cases {
        let mut data = good.clone();
        damage(&mut data);
        assert!(read_grain(data).is_err(), "{what}");
    }
}
