//! The VHD reader against `qemu-img -O vpc` (fixed and dynamic, with and without
//! `force_size`): the whole virtual disk read through the container equals the raw disk it
//! was made from, and damaged variants give errors, never a panic or a hang.

mod support;

use std::path::{Path, PathBuf};

use nextboot::evidence::image::container::{self, vhd, ContainerError};
use nextboot::evidence::image::ReadAt;
use support::container::{
    assert_disk_is, be32, be64, expect_unsupported, in_memory, made_with, marked_disk,
    mutation_rounds, open_both, patch, path_arg, qemu_convert, qemu_img, read_failures, scratch,
    write_file, Made, Opening, Rng, MARKED_DISK_SIZE,
};

const MIB: usize = 1 << 20;
const DISK_SIZE: usize = MARKED_DISK_SIZE;
const BLOCK: usize = 2 * MIB;

/// The raw disk: a `marked_disk`, one of its random runs straddling a block boundary, whole
/// blocks of zeros.
fn raw_disk() -> Vec<u8> {
    marked_disk(0x9E37_79B9_7F4A_7C15)
}

/// The raw disk written in `dir` and converted to a VHD of `subformat`.
fn make_vhd(dir: &Path, raw: &[u8], subformat: &str, force_size: bool) -> PathBuf {
    let options = format!(
        "subformat={subformat}{}",
        if force_size { ",force_size=on" } else { "" }
    );
    qemu_convert(
        &write_file(dir, "disk.raw", raw),
        "vpc",
        &["-o", &options],
        &dir.join(format!("{subformat}-{force_size}.vhd")),
    )
}

/// With qemu-img: the raw disk as a VHD of `subformat` (its size forced), and its bytes.
fn vhd_of(subformat: &str) -> Option<Made> {
    made_with("qemu-img", raw_disk, |dir, raw| {
        make_vhd(dir, raw, subformat, true)
    })
}

fn open_vhd(path: &Path, data: Vec<u8>) -> Opening {
    vhd::open(path, &in_memory(data))
}

/// The whole disk read in odd-sized chunks equals `raw` (then zeros up to the disk's
/// size), reads straddling block boundaries too, and a read past the end fails.
fn assert_reads_as(disk: &dyn ReadAt, raw: &[u8]) {
    let size = disk.len() as usize;
    assert!(size >= raw.len());
    let mut expected = raw.to_vec();
    expected.resize(size, 0);
    assert_disk_is(
        disk,
        &expected,
        [BLOCK, 4 * BLOCK, 8 * BLOCK, 16 * MIB - 65536, size - 512],
        &[(1, 2), (511, 1024), (4096, 70_000), (BLOCK + 1, BLOCK + 3)],
    );
}

#[test]
fn fixed_and_dynamic_vhds_read_as_the_raw_disk() {
    let Some((dir, raw)) = scratch("qemu-img", |_| raw_disk()) else {
        return;
    };
    for (subformat, format) in [("fixed", "vhd (fixed)"), ("dynamic", "vhd (dynamic)")] {
        let path = make_vhd(dir.path(), &raw, subformat, true);
        for opened in open_both(vhd::open, &path) {
            assert_eq!(opened.info.format, format);
            assert_eq!(opened.info.virtual_size, raw.len() as u64);
            assert!(opened.info.files.is_empty());
            assert_reads_as(opened.disk.as_ref(), &raw);
        }
    }
}

/// Without `force_size` qemu rounds the size up to a whole CHS geometry: the disk is then
/// larger than the raw one, and the rest reads as zeros.
#[test]
fn without_force_size_the_disk_is_rounded_up_to_its_geometry() {
    let Some((dir, raw)) = scratch("qemu-img", |_| raw_disk()) else {
        return;
    };
    for subformat in ["fixed", "dynamic"] {
        let path = make_vhd(dir.path(), &raw, subformat, false);
        let out = qemu_img(&["info", "-f", "vpc", "--output=json", path_arg(&path)]);
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let qemu_size = info["virtual-size"].as_u64().unwrap();
        let [opened, _] = open_both(vhd::open, &path);
        assert_eq!(opened.info.virtual_size, qemu_size, "{subformat}");
        assert!(qemu_size > raw.len() as u64, "{subformat}");
        assert_reads_as(opened.disk.as_ref(), &raw);
    }
}

/// Very old Virtual PC files end with a footer of 511 bytes.
#[test]
fn a_footer_of_511_bytes_is_read() {
    let Some(image) = vhd_of("fixed") else {
        return;
    };
    let mut data = image.bytes;
    assert_eq!(data.pop(), Some(0), "the footer's last byte is reserved");
    let opened = open_vhd(&image.path, data).unwrap().unwrap();
    assert_eq!(opened.info.format, "vhd (fixed)");
    assert_reads_as(opened.disk.as_ref(), &image.raw);
}

/// Where the footer, the dynamic header and the BAT of a dynamic VHD are.
struct Layout {
    header: usize,
    table: usize,
    block_size: usize,
}

fn layout(data: &[u8]) -> Layout {
    let header = be64(data, data.len() - 512 + 16) as usize;
    Layout {
        header,
        table: be64(data, header + 16) as usize,
        block_size: be32(data, header + 32) as usize,
    }
}

/// Writes the one's complement checksum of the `len` bytes at `start`, whose checksum field
/// is at `start + field`.
fn fix_checksum(data: &mut [u8], start: usize, len: usize, field: usize) {
    data[start + field..start + field + 4].fill(0);
    let sum = data[start..start + len]
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)));
    patch(data, start + field, &(!sum).to_be_bytes());
}

/// Sets a big-endian field of both footers (end and start copy) and fixes their checksums.
fn set_footer_field(data: &mut [u8], field: usize, value: &[u8]) {
    let end = data.len() - 512;
    for start in [0, end] {
        patch(data, start + field, value);
        fix_checksum(data, start, 512, 64);
    }
}

fn set_header_field(data: &mut [u8], field: usize, value: &[u8]) {
    let header = layout(data).header;
    patch(data, header + field, value);
    fix_checksum(data, header, 1024, 36);
}

#[test]
fn clear_bitmap_bits_read_as_zeros() {
    let Some(image) = vhd_of("dynamic") else {
        return;
    };
    let (raw, mut data) = (&image.raw, image.bytes.clone());
    let at = layout(&data);
    assert_eq!(at.block_size, BLOCK);
    // Block 0 holds the first sector; block 5 the random run at 10 MiB + 512.
    let mut expected = raw.clone();
    for (block, sector) in [(0usize, 0usize), (5, 1), (5, 3)] {
        let bitmap = be32(&data, at.table + block * 4) as usize * 512;
        data[bitmap + sector / 8] &= !(0x80 >> (sector % 8));
        let start = block * BLOCK + sector * 512;
        expected[start..start + 512].fill(0);
    }
    assert_ne!(&expected, raw);
    let opened = open_vhd(&image.path, data).unwrap().unwrap();
    assert_reads_as(opened.disk.as_ref(), &expected);
}

#[test]
fn a_differencing_disk_is_refused_naming_its_parent() {
    let Some(image) = vhd_of("dynamic") else {
        return;
    };
    let mut data = image.bytes.clone();
    set_footer_field(&mut data, 60, &4u32.to_be_bytes());
    let name: Vec<u8> = "Parent Disk ünicode.vhd"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    set_header_field(&mut data, 64, &name);
    expect_unsupported(
        open_vhd(&image.path, data.clone()),
        "Parent Disk ünicode.vhd",
    );
    let dispatched = container::open(&image.path, in_memory(data));
    assert!(matches!(
        dispatched,
        Err(ContainerError::Unsupported { .. })
    ));
}

#[test]
fn raw_disks_ending_like_a_footer_stay_raw() {
    let stays_raw = |raw: &[u8]| open_vhd(Path::new("raw"), raw.to_vec()).unwrap().is_none();
    let mut raw = raw_disk();
    let end = raw.len() - 512;
    // The cookie without a right checksum.
    patch(&mut raw, end, b"conectix");
    assert!(stays_raw(&raw));
    // A right checksum, but a fixed disk whose size is not the file's.
    patch(&mut raw, end + 48, &(1u64 << 20).to_be_bytes());
    patch(&mut raw, end + 60, &2u32.to_be_bytes());
    fix_checksum(&mut raw, end, 512, 64);
    assert!(stays_raw(&raw));
    // A dynamic footer whose dynamic header is not where it says, and no copy at byte 0.
    patch(&mut raw, end + 60, &3u32.to_be_bytes());
    patch(&mut raw, end + 16, &512u64.to_be_bytes());
    fix_checksum(&mut raw, end, 512, 64);
    assert!(stays_raw(&raw));
    assert!(stays_raw(&raw_disk()));
}

/// Opens `data` and, when it opens, reads all of it: an error either way is fine, a panic
/// or a wrong success is not. Returns whether everything succeeded.
fn open_and_read_all(data: Vec<u8>) -> bool {
    let Ok(Some(opened)) = open_vhd(Path::new("bad.vhd"), data) else {
        return false;
    };
    read_failures(&*opened.disk, 4 * MIB, u64::MAX).is_empty()
}

#[test]
fn damaged_vhds_give_errors() {
    let Some(image) = vhd_of("dynamic") else {
        return;
    };
    let (raw, path, good) = (&image.raw, &image.path, &image.bytes);
    let at = layout(good);

    // Truncated: the footer at the end is gone while its copy at byte 0 is there.
    for len in [
        good.len() - 512,
        good.len() - 700,
        good.len() / 2,
        2048,
        1100,
    ] {
        let result = open_vhd(path, good[..len].to_vec());
        assert!(
            matches!(result, Err(ContainerError::Damaged { .. })),
            "truncated to {len}"
        );
    }

    // A BAT entry pointing past the end: that block fails to read, the others read.
    let mut data = good.clone();
    patch(&mut data, at.table, &0x00FF_FFFFu32.to_be_bytes());
    let opened = open_vhd(path, data).unwrap().unwrap();
    let mut sector = [0u8; 512];
    assert!(opened.disk.read_exact_at(&mut sector, 0).is_err());
    opened
        .disk
        .read_exact_at(&mut sector, 3 * MIB as u64)
        .unwrap();
    assert_eq!(sector[..], raw[3 * MIB..3 * MIB + 512]);

    // A BAT entry pointing into the footer at the end.
    let mut data = good.clone();
    let last = (good.len() / 512 - 2) as u32;
    patch(&mut data, at.table, &last.to_be_bytes());
    assert!(!open_and_read_all(data));

    // Absurd block sizes, table sizes and disk sizes, their checksums right.
    let header_cases: [(usize, Vec<u8>); 6] = [
        (32, 0u32.to_be_bytes().to_vec()),
        (32, 1000u32.to_be_bytes().to_vec()),
        (32, (1u32 << 30).to_be_bytes().to_vec()),
        (28, 3u32.to_be_bytes().to_vec()),
        (16, (u64::MAX - 3).to_be_bytes().to_vec()),
        (16, (good.len() as u64 - 600).to_be_bytes().to_vec()),
    ];
    for (field, value) in header_cases {
        let mut data = good.clone();
        set_header_field(&mut data, field, &value);
        assert!(
            !open_and_read_all(data),
            "dynamic header field {field} = {value:?}"
        );
    }
    for size in [u64::MAX, 1 << 60, (DISK_SIZE as u64 + 1) << 10] {
        let mut data = good.clone();
        set_footer_field(&mut data, 48, &size.to_be_bytes());
        assert!(open_vhd(path, data).is_err(), "current size {size}");
    }
    let mut data = good.clone();
    set_footer_field(&mut data, 16, &(u64::MAX - 100).to_be_bytes());
    assert!(open_vhd(path, data).is_err());

    // The dynamic header's checksum wrong: damaged, since the footer copy is at byte 0.
    let mut data = good.clone();
    data[at.header + 40] ^= 1;
    assert!(matches!(
        open_vhd(path, data),
        Err(ContainerError::Damaged { .. })
    ));

    // Random BAT entries: errors or data, never a panic.
    mutation_rounds(
        good,
        &mut Rng::new(7),
        20,
        |_, _| 4,
        |rng, data, _| {
            let entry = at.table + 4 * rng.below(DISK_SIZE / BLOCK);
            let value = match rng.below(3) {
                0 => rng.next_u64() as u32,
                1 => rng.below(good.len() / 512) as u32,
                _ => u32::MAX,
            };
            patch(data, entry, &value.to_be_bytes());
        },
        |_, data, _| {
            open_and_read_all(data);
        },
    );
}
