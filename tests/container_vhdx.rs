//! The VHDX reader against QEMU's: containers written by `qemu-img convert` read back byte
//! for byte as the raw disk they were made from, and a log left pending (written here, as
//! MS-VHDX describes it) read as QEMU reads the file once `qemu-img check -r all` has
//! replayed it, on a copy: the evidence itself is never written, by either.
//!
//! Without qemu-img the tests say so on stderr and pass, unless CI is set.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nextboot::evidence::image::container::{vhdx, ContainerError};
use nextboot::evidence::image::ReadAt;
use support::container::{
    assert_disk_is, assert_reads_from_threads, dispatch, error_of, expect_unsupported, have, le16,
    le32, le64, made_with, metadata, must_open, mutation_rounds, one_to_four, open_both, open_file,
    path_arg, put16, put32, put64, qemu_convert, qemu_img, qemu_img_output, read_failures, scratch,
    write_at, write_file, Damage, Made, Opening, Rng,
};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const SECTOR: usize = 4096;
const HEADERS: [usize; 2] = [64 * 1024, 128 * 1024];
const REGION_TABLES: [usize; 2] = [192 * 1024, 256 * 1024];

/// A raw disk of `size` bytes: labelled first and last sectors, a labelled pattern every
/// 1.5 MiB or so (so at odd offsets in every block), two runs of random bytes, zeros between.
fn raw_disk(size: usize, seed: u64) -> Vec<u8> {
    let mut disk = vec![0u8; size];
    label(&mut disk[..512], 0, "first sector");
    let end = size - 512;
    label(&mut disk[end..], end, "last sector");
    let mut at = 4096 + 17;
    while at + 3000 < end {
        label(&mut disk[at..at + 3000], at, "pattern");
        at += 1_572_864 + 4099;
    }
    let mut rng = Rng::new(seed | 1);
    rng.fill_words(&mut disk[size / 5..size / 5 + size / 16]);
    if size >= 32 << 20 {
        let tail = size - (3 << 20);
        rng.fill_words(&mut disk[tail..tail + (1 << 20)]);
    }
    disk
}

fn label(buf: &mut [u8], at: usize, what: &str) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((at + i) as u8).wrapping_mul(31) ^ (at >> 12) as u8 | 1;
    }
    let text = format!("{what} at {at}");
    let n = text.len().min(buf.len());
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
}

/// Writes `raw` to the directory and converts it with `options`: the VHDX's path.
fn convert(dir: &Path, raw: &[u8], name: &str, options: &str) -> PathBuf {
    let raw_path = write_file(dir, &format!("{name}.raw"), raw);
    qemu_convert(
        &raw_path,
        "vhdx",
        &["-o", options],
        &dir.join(format!("{name}.vhdx")),
    )
}

/// With qemu-img: a raw disk of `size` bytes (from `seed`) converted with `options` as
/// `name`, and the VHDX's bytes.
fn vhdx_of(size: usize, seed: u64, name: &str, options: &str) -> Option<Made> {
    made_with(
        "qemu-img",
        || raw_disk(size, seed),
        |dir, raw| convert(dir, raw, name, options),
    )
}

fn open_path(path: &Path) -> Opening {
    open_file(vhdx::open, path)
}

fn open_bytes(bytes: Vec<u8>) -> Opening {
    support::container::open_bytes(vhdx::open, "test.vhdx", bytes)
}

/// The whole disk equals `expected`: read in odd-sized chunks, then across every block
/// boundary, then once past the end (an error).
fn assert_reads_as(disk: &dyn ReadAt, expected: &[u8], block: u64) {
    let (block, mib) = (block as usize, MIB as usize);
    assert_disk_is(
        disk,
        expected,
        (block..expected.len()).step_by(block),
        &[(1, 2), (512, 1024), (4097, 8193), (mib / 2 + 3, mib + 5)],
    );
}

// ---------------------------------------------------------------------------------------
// The format, as the tests write it (independently of the reader)

/// CRC-32C over a table built bit by bit here (independently of the reader's).
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..256u32)
            .map(|i| {
                (0..8).fold(i, |crc, _| {
                    if crc & 1 != 0 {
                        (crc >> 1) ^ 0x82F6_3B78
                    } else {
                        crc >> 1
                    }
                })
            })
            .collect()
    });
    !data.iter().fold(!0u32, |crc, &byte| {
        table[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

#[test]
fn the_tests_crc32c_is_castagnoli() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

/// A GUID from the hex of its stored bytes.
fn g(hex: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn bat_guid() -> [u8; 16] {
    g("6677c22d23f600429d64115e9bfd4a08")
}
fn metadata_guid() -> [u8; 16] {
    g("06a27c8b90479a4bb8fe575f050f886e")
}
fn file_parameters_guid() -> [u8; 16] {
    g("3767a1ca36fa434db3b633f0aa44e76b")
}
fn virtual_size_guid() -> [u8; 16] {
    g("2442a52f1bcd7648b2115dbed83bf4b8")
}
fn logical_sector_guid() -> [u8; 16] {
    g("1dbf41816fa90947ba47f233a8faab5f")
}
fn parent_locator_guid() -> [u8; 16] {
    g("2d5fd3a80bb34d45abf7d3d84834ab0c")
}

/// Recomputes the CRC-32C of the `len` bytes at `at` whose checksum is at `at + 4`.
fn fix_crc(b: &mut [u8], at: usize, len: usize) {
    put32(b, at + 4, 0);
    let crc = crc32c(&b[at..at + len]);
    put32(b, at + 4, crc);
}

fn fix_header(b: &mut [u8], slot: usize) {
    fix_crc(b, HEADERS[slot], SECTOR);
}

fn fix_region_tables(b: &mut [u8]) {
    for at in REGION_TABLES {
        fix_crc(b, at, 64 * 1024);
    }
}

/// The header slot QEMU left current (both are valid).
fn current_slot(b: &[u8]) -> usize {
    usize::from(le64(b, HEADERS[1] + 8) > le64(b, HEADERS[0] + 8))
}

/// The region with `guid`: its offset and length, and where its table entry is.
fn region(b: &[u8], guid: [u8; 16]) -> (usize, usize, usize) {
    let table = REGION_TABLES[0];
    for i in 0..le32(b, table + 8) as usize {
        let e = table + 16 + 32 * i;
        if b[e..e + 16] == guid {
            return (le64(b, e + 16) as usize, le32(b, e + 24) as usize, e);
        }
    }
    panic!("no such region");
}

/// The metadata item with `guid`: where its data is (absolute), and where its entry is.
fn metadata_item(b: &[u8], guid: [u8; 16]) -> (usize, usize) {
    let (meta, _, _) = region(b, metadata_guid());
    for i in 0..le16(b, meta + 10) as usize {
        let e = meta + 32 + 32 * i;
        if b[e..e + 16] == guid {
            return (meta + le32(b, e + 16) as usize, e);
        }
    }
    panic!("no such metadata item");
}

fn block_size(b: &[u8]) -> usize {
    le32(b, metadata_item(b, file_parameters_guid()).0) as usize
}

/// One change a log entry makes.
enum Change {
    Zero(u64, u64),
    Data(u64, Vec<u8>),
}

/// A log entry as MS-VHDX 2.3.1 lays it out: the header and descriptors in whole sectors,
/// then one data sector per data descriptor, the whole under one CRC-32C.
fn log_entry(
    guid: [u8; 16],
    sequence: u64,
    tail: u32,
    flushed: u64,
    last: u64,
    changes: &[Change],
) -> Vec<u8> {
    let descriptor_sectors = (changes.len() + 2).div_ceil(128);
    let data_sectors = changes
        .iter()
        .filter(|c| matches!(c, Change::Data(..)))
        .count();
    let mut e = vec![0u8; (descriptor_sectors + data_sectors) * SECTOR];
    let len = e.len() as u32;
    e[..4].copy_from_slice(b"loge");
    put32(&mut e, 8, len);
    put32(&mut e, 12, tail);
    put64(&mut e, 16, sequence);
    put32(&mut e, 24, changes.len() as u32);
    e[32..48].copy_from_slice(&guid);
    put64(&mut e, 48, flushed);
    put64(&mut e, 56, last);
    let mut data = descriptor_sectors * SECTOR;
    for (i, change) in changes.iter().enumerate() {
        let d = 64 + 32 * i;
        match change {
            Change::Zero(offset, len) => {
                e[d..d + 4].copy_from_slice(b"zero");
                put64(&mut e, d + 8, *len);
                put64(&mut e, d + 16, *offset);
            }
            Change::Data(offset, page) => {
                assert_eq!(page.len(), SECTOR);
                e[d..d + 4].copy_from_slice(b"desc");
                e[d + 4..d + 8].copy_from_slice(&page[4092..]);
                e[d + 8..d + 16].copy_from_slice(&page[..8]);
                put64(&mut e, d + 16, *offset);
                e[data..data + 4].copy_from_slice(b"data");
                put32(&mut e, data + 4, (sequence >> 32) as u32);
                e[data + 8..data + 4092].copy_from_slice(&page[8..4092]);
                put32(&mut e, data + 4092, sequence as u32);
                data += SECTOR;
            }
        }
        put64(&mut e, d + 24, sequence);
    }
    let len = e.len();
    fix_crc(&mut e, 0, len);
    e
}

/// Gives both headers `guid` as their LogGuid, with greater sequence numbers (as a writer
/// that starts a log does): the log region's offset and length.
fn set_log_guid(b: &mut [u8], guid: [u8; 16]) -> (usize, usize) {
    let current = current_slot(b);
    let sequence = le64(b, HEADERS[current] + 8);
    for (slot, sequence) in [(1 - current, sequence + 1), (current, sequence + 2)] {
        let h = HEADERS[slot];
        b[h + 48..h + 64].copy_from_slice(&guid);
        put64(b, h + 8, sequence);
        fix_header(b, slot);
    }
    let h = HEADERS[current];
    (le64(b, h + 72) as usize, le32(b, h + 68) as usize)
}

fn page_of(byte: u8, text: &str) -> Vec<u8> {
    let mut page = vec![byte; SECTOR];
    page[..text.len()].copy_from_slice(text.as_bytes());
    let n = page.len();
    page[n - 4..].copy_from_slice(b"END!");
    page
}

const LOG_GUID: &str = "4c0c5ee1d2a34e1f9a7b3c5d11223344";

/// A dynamic VHDX (1 MiB blocks) with two log entries pending, as a crash would leave it:
/// they change a present block (a page, a zeroed range, the same page again), allocate a
/// block that was not present at a new offset past the end of the file (zeroed, two of its
/// pages written, its BAT entry changed through the BAT's page) and one older valid entry
/// elsewhere in the log that must not be replayed. Nothing of it is applied to the file.
struct Pending {
    file: Vec<u8>,
    log_offset: usize,
    /// Where each entry starts in the file, and its length.
    entries: Vec<(usize, usize)>,
    present_block: usize,
    new_block: usize,
}

fn pending_log(vhdx: &[u8], raw: &[u8]) -> Pending {
    let mut b = vhdx.to_vec();
    let block = block_size(&b);
    assert_eq!(block, MIB as usize);
    let (bat, _, _) = region(&b, bat_guid());
    let blocks = raw.len() / block;
    let entry = |b: &[u8], i: usize| le64(b, bat + 8 * i);
    let present = (1..blocks)
        .find(|&i| entry(&b, i) & 7 == 6 && raw[i * block..(i + 1) * block].iter().any(|&x| x != 0))
        .expect("a present block");
    let absent = (1..blocks)
        .find(|&i| entry(&b, i) & 7 != 6)
        .expect("a block not present");
    let present_at = (entry(&b, present) >> 20) * MIB;
    let file_len = b.len() as u64;
    let new_at = file_len.div_ceil(MIB) * MIB;
    let bat_page = (bat + absent * 8) / SECTOR * SECTOR;
    let mut bat_bytes = b[bat_page..bat_page + SECTOR].to_vec();
    put64(
        &mut bat_bytes,
        bat + absent * 8 - bat_page,
        (new_at / MIB) << 20 | 6,
    );

    let guid = g(LOG_GUID);
    let (log_offset, log_len) = set_log_guid(&mut b, guid);
    assert!(log_len >= MIB as usize);
    let last = new_at + MIB;
    let first = log_entry(
        guid,
        10,
        0,
        file_len,
        last,
        &[
            Change::Data(present_at + 8192, page_of(0xA1, "first entry's page")),
            Change::Zero(present_at + 20480, 8192),
            Change::Zero(new_at, MIB),
            Change::Data(new_at + 12288, page_of(0xA2, "new block, page 3")),
        ],
    );
    let second = log_entry(
        guid,
        11,
        0,
        file_len,
        last,
        &[
            Change::Data(present_at + 8192, page_of(0xB1, "second entry's page")),
            Change::Data(bat_page as u64, bat_bytes),
            Change::Data(new_at + MIB - 4096, page_of(0xB2, "new block, last page")),
        ],
    );
    let older = log_entry(
        guid,
        3,
        512 * 1024,
        file_len,
        file_len,
        &[Change::Data(
            present_at + 40960,
            page_of(0x03, "older sequence"),
        )],
    );
    let mut entries = Vec::new();
    for (pos, e) in [(0, &first), (first.len(), &second), (512 * 1024, &older)] {
        let at = log_offset + pos;
        b[at..at + e.len()].copy_from_slice(e);
        entries.push((at, e.len()));
    }
    Pending {
        file: b,
        log_offset,
        entries,
        present_block: present,
        new_block: absent,
    }
}

/// What QEMU reads from `vhdx` after `qemu-img check -r all` has replayed its log: run on a
/// copy, which is all that is ever written.
fn qemu_after_repair(dir: &Path, vhdx: &[u8], name: &str) -> Vec<u8> {
    let copy = write_file(dir, &format!("{name}-repaired.vhdx"), vhdx);
    qemu_img(&["check", "-r", "all", "-f", "vhdx", path_arg(&copy)]);
    qemu_raw(dir, &copy, name)
}

/// QEMU's reading of a VHDX as a raw disk.
fn qemu_raw(dir: &Path, vhdx: &Path, name: &str) -> Vec<u8> {
    let raw = dir.join(format!("{name}-qemu.raw"));
    qemu_img(&[
        "convert",
        "-f",
        "vhdx",
        "-O",
        "raw",
        path_arg(vhdx),
        path_arg(&raw),
    ]);
    fs::read(&raw).unwrap()
}

const DISK: usize = 48 << 20;
/// The options of a dynamic VHDX of 1 MiB blocks (which `pending_log` wants).
const ONE_MIB_BLOCKS: &str = "subformat=dynamic,block_size=1M";

// ---------------------------------------------------------------------------------------
// Containers QEMU wrote

#[test]
fn dynamic_and_fixed_containers_read_as_the_raw_disk() {
    let Some((dir, raw)) = scratch("qemu-img", |_| raw_disk(DISK, 7)) else {
        return;
    };
    for (name, options, format) in [
        ("dynamic", "subformat=dynamic", "vhdx (dynamic)"),
        (
            "dynamic-1m",
            "subformat=dynamic,block_size=1M",
            "vhdx (dynamic)",
        ),
        (
            "dynamic-32m",
            "subformat=dynamic,block_size=32M",
            "vhdx (dynamic)",
        ),
        ("fixed", "subformat=fixed", "vhdx (fixed)"),
        (
            "fixed-1m-allocated",
            "subformat=fixed,block_size=1M,block_state_zero=off",
            "vhdx (fixed)",
        ),
        (
            "dynamic-log-4m",
            "subformat=dynamic,log_size=4M",
            "vhdx (dynamic)",
        ),
    ] {
        let path = convert(dir.path(), &raw, name, options);
        // The dispatcher knows it too.
        let [opened, via] = open_both(vhdx::open, &path);
        assert_eq!(opened.info.format, format, "{name}");
        assert_eq!(opened.info.virtual_size, DISK as u64, "{name}");
        assert_eq!(metadata(&opened, "log"), None, "{name}: no log pending");
        assert_eq!(metadata(&opened, "logical sector size"), Some("512"));
        let block: u64 = metadata(&opened, "block size").unwrap().parse().unwrap();
        assert_reads_as(&*opened.disk, &raw, block);
        assert_eq!(via.info.format, format);
        let mut head = vec![0u8; 4096];
        via.disk.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(head, raw[..4096]);
    }
}

#[test]
fn a_raw_disk_is_not_a_vhdx() {
    let raw = raw_disk(4 << 20, 3);
    assert!(open_bytes(raw).unwrap().is_none());
    assert!(open_bytes(b"vhdx".to_vec()).unwrap().is_none());
    assert!(open_bytes(Vec::new()).unwrap().is_none());
    // The signature alone is a damaged container, not a raw disk.
    assert!(matches!(
        open_bytes(b"vhdxfile".to_vec()),
        Err(ContainerError::Damaged { .. })
    ));
}

#[test]
fn logical_sectors_of_4096_bytes() {
    let Some(image) = vhdx_of(DISK, 11, "4k", "subformat=dynamic") else {
        return;
    };
    // qemu-img writes 512-byte logical sectors only; the item is not under a checksum, and
    // with fewer blocks than a chunk the BAT is laid out the same for either size.
    let mut b = image.bytes.clone();
    let (at, _) = metadata_item(&b, logical_sector_guid());
    put32(&mut b, at, 4096);
    let opened = must_open(open_bytes(b));
    assert_eq!(metadata(&opened, "logical sector size"), Some("4096"));
    assert_reads_as(&*opened.disk, &image.raw, 8 * MIB);
}

#[test]
fn sector_bitmap_entries_are_skipped_past_the_first_chunk() {
    if !have("qemu-img") {
        return;
    }
    // With 1 MiB blocks and 512-byte sectors a chunk is 4096 blocks (4 GiB): the BAT entry
    // after the first 4096 payload entries is a sector bitmap entry, and block 4096 is at
    // index 4097.
    let dir = TempDir::new().unwrap();
    let size = (4u64 << 30) + 6 * MIB;
    let raw_path = dir.path().join("big.raw");
    let file = fs::File::create(&raw_path).unwrap();
    file.set_len(size).unwrap();
    let mut pieces = Vec::new();
    for (at, seed) in [
        (0u64, 1u64),
        (7 * MIB + 5, 2),
        ((4 << 30) - 5000, 3),
        ((4 << 30) + 3 * MIB + 17, 4),
        (size - 4096, 5),
    ] {
        let mut bytes = vec![0u8; 10_000.min((size - at) as usize)];
        Rng::new(seed).fill_words(&mut bytes);
        write_at(&file, &bytes, at);
        pieces.push((at, bytes));
    }
    drop(file);
    let path = qemu_convert(
        &raw_path,
        "vhdx",
        &["-o", "subformat=dynamic,block_size=1M"],
        &dir.path().join("big.vhdx"),
    );
    let opened = must_open(open_path(&path));
    assert_eq!(opened.info.virtual_size, size);
    for (at, bytes) in &pieces {
        let start = at.saturating_sub(3000);
        let end = (at + bytes.len() as u64 + 3000).min(size);
        let mut got = vec![0u8; (end - start) as usize];
        opened.disk.read_exact_at(&mut got, start).unwrap();
        let mut expected = vec![0u8; got.len()];
        let from = (at - start) as usize;
        expected[from..from + bytes.len()].copy_from_slice(bytes);
        assert!(got == expected, "the data written at {at}");
    }
    let mut zeros = vec![1u8; 3 * MIB as usize];
    opened.disk.read_exact_at(&mut zeros, 2 << 30).unwrap();
    assert!(zeros.iter().all(|&b| b == 0));
}

// ---------------------------------------------------------------------------------------
// The log

#[test]
fn a_pending_log_is_replayed_in_memory_as_qemu_replays_it() {
    let Some(image) = vhdx_of(DISK, 21, "base", ONE_MIB_BLOCKS) else {
        return;
    };
    let (dir, raw) = (image.dir.path(), &image.raw);
    let pending = pending_log(&image.bytes, raw);
    let evidence = write_file(dir, "pending.vhdx", &pending.file);

    // QEMU sees the log as pending: it will not read the file until it is replayed.
    let refused = qemu_img_output(&[
        "convert",
        "-f",
        "vhdx",
        "-O",
        "raw",
        path_arg(&evidence),
        path_arg(&dir.join("no.raw")),
    ]);
    assert!(
        !refused.status.success(),
        "QEMU read a VHDX with a pending log"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("log"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let expected = qemu_after_repair(dir, &pending.file, "pending");

    // The log changes the disk: the present block and the block it allocates.
    let block = MIB as usize;
    let (p, n) = (pending.present_block * block, pending.new_block * block);
    assert_ne!(expected[p..p + block], raw[p..p + block]);
    assert_ne!(expected[n..n + block], raw[n..n + block]);
    assert_eq!(expected[p + 8192..p + 8192 + 19], *b"second entry's page");
    assert!(expected[p + 20480..p + 28672].iter().all(|&b| b == 0));
    assert_eq!(
        expected[p + 40960..p + 45056],
        raw[p + 40960..p + 45056],
        "the older sequence is not replayed"
    );
    assert_eq!(expected[n + 12288..n + 12305], *b"new block, page 3");
    assert_eq!(
        expected[n + block - 4096..n + block - 4076],
        *b"new block, last page"
    );
    let mut rest = expected.clone();
    rest[p..p + block].copy_from_slice(&raw[p..p + block]);
    rest[n..n + block].copy_from_slice(&raw[n..n + block]);
    assert!(&rest == raw, "the log changes nothing else");

    let before = fs::read(&evidence).unwrap();
    let opened = must_open(open_path(&evidence));
    assert_eq!(
        metadata(&opened, "log"),
        Some("replayed 2 entries in memory (sequence numbers 10 to 11)")
    );
    assert_eq!(opened.info.format, "vhdx (dynamic)");
    assert_reads_as(&*opened.disk, &expected, MIB);
    // Several readers at once, at random places.
    assert_reads_from_threads(&*opened.disk, &expected, 4, |t| {
        let mut rng = Rng::new(t as u64 + 99);
        (0..50)
            .map(|_| {
                let n = 1 + rng.below(300_000);
                (rng.below(expected.len() - n), n)
            })
            .collect()
    });
    assert!(
        fs::read(&evidence).unwrap() == before,
        "the evidence was written"
    );

    // The dispatcher replays it too.
    let via = must_open(dispatch(&evidence));
    let mut page = vec![0u8; 4096];
    via.disk
        .read_exact_at(&mut page, (p + 8192) as u64)
        .unwrap();
    assert_eq!(page, expected[p + 8192..p + 12288]);
}

#[test]
fn a_log_entry_with_a_bad_checksum_is_not_replayed_as_qemu_does_not() {
    let Some(image) = vhdx_of(DISK, 22, "base", ONE_MIB_BLOCKS) else {
        return;
    };
    let (dir, raw) = (image.dir.path(), &image.raw);
    let pending = pending_log(&image.bytes, raw);

    // `file` is read as QEMU reads it once its log is replayed, saying `log`: QEMU's bytes.
    let replayed_as_qemu = |file: Vec<u8>, name: &str, log: &str| {
        let expected = qemu_after_repair(dir, &file, name);
        let opened = must_open(open_bytes(file));
        assert_eq!(metadata(&opened, "log"), Some(log));
        assert_reads_as(&*opened.disk, &expected, MIB);
        expected
    };
    let p = pending.present_block * MIB as usize;

    // The second entry damaged (a byte of its data): the first alone is the active
    // sequence, and QEMU replays it alone.
    let mut one_bad = pending.file.clone();
    let (second, len) = pending.entries[1];
    one_bad[second + len - 100] ^= 0x55;
    let expected = replayed_as_qemu(
        one_bad,
        "one-bad",
        "replayed 1 entry in memory (sequence number 10)",
    );
    assert_eq!(expected[p + 8192..p + 8192 + 18], *b"first entry's page");

    // The first damaged as well: no complete sequence but the older one, which QEMU replays.
    // Damage the older one too and nothing is left to replay: QEMU reads the file as it is.
    let mut all_bad = pending.file.clone();
    for &(at, _) in &pending.entries {
        all_bad[at + 100] ^= 0x55;
    }
    let evidence = write_file(dir, "all-bad.vhdx", &all_bad);
    let expected = qemu_raw(dir, &evidence, "all-bad");
    assert!(&expected == raw);
    let opened = must_open(open_path(&evidence));
    assert!(metadata(&opened, "log")
        .unwrap()
        .contains("nothing replayed"));
    assert_reads_as(&*opened.disk, raw, MIB);

    let mut only_older = pending.file.clone();
    for &(at, _) in &pending.entries[..2] {
        only_older[at + 100] ^= 0x55;
    }
    let expected = replayed_as_qemu(
        only_older,
        "only-older",
        "replayed 1 entry in memory (sequence number 3)",
    );
    assert_eq!(expected[p + 40960..p + 40960 + 14], *b"older sequence");
}

#[test]
fn a_log_whose_file_was_truncated_is_damaged() {
    let Some(image) = vhdx_of(DISK, 23, "base", ONE_MIB_BLOCKS) else {
        return;
    };
    let mut pending = pending_log(&image.bytes, &image.raw);
    // FlushedFileOffset says the file was longer than it is: QEMU refuses it, and so does
    // the reader.
    let (first, len) = pending.entries[0];
    put64(&mut pending.file, first + 48, 1 << 40);
    fix_crc(&mut pending.file, first, len);
    let copy = write_file(image.dir.path(), "truncated.vhdx", &pending.file);
    assert!(
        !qemu_img_output(&["check", "-r", "all", "-f", "vhdx", path_arg(&copy)])
            .status
            .success()
    );
    let err = error_of(open_bytes(pending.file.clone()));
    assert!(matches!(err, ContainerError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");

    // A file cut inside its log.
    let cut = pending.log_offset + 4096;
    assert!(matches!(
        open_bytes(pending.file[..cut].to_vec()),
        Err(ContainerError::Damaged { .. })
    ));
}

/// Writes `entries` (log offset, bytes) into a copy of `file` whose log GUID is set.
fn with_log(file: &[u8], entries: &[(usize, Vec<u8>)]) -> Vec<u8> {
    let mut b = file.to_vec();
    let (log, len) = set_log_guid(&mut b, g(LOG_GUID));
    b[log..log + len].fill(0);
    for (pos, e) in entries {
        for (i, byte) in e.iter().enumerate() {
            b[log + (pos + i) % len] = *byte;
        }
    }
    b
}

#[test]
fn circular_looping_and_hostile_logs_end() {
    let Some(image) = vhdx_of(16 << 20, 24, "small", ONE_MIB_BLOCKS) else {
        return;
    };
    let base = image.bytes;
    let file_len = base.len() as u64;
    let guid = g(LOG_GUID);
    let log_len = MIB as usize;
    let (bat, _, _) = region(&base, bat_guid());
    let first_block = (le64(&base, bat) >> 20) * MIB;
    let started = Instant::now();

    // The whole ring full of consecutive entries: the walk goes round once and stops.
    let full: Vec<(usize, Vec<u8>)> = (0..log_len / SECTOR)
        .map(|i| {
            (
                i * SECTOR,
                log_entry(guid, 100 + i as u64, 0, file_len, file_len, &[]),
            )
        })
        .collect();
    let opened = must_open(open_bytes(with_log(&base, &full)));
    assert_eq!(
        metadata(&opened, "log"),
        Some("replayed 256 entries in memory (sequence numbers 100 to 355)")
    );

    // A sequence that wraps round the end of the log, its first entry split across it.
    // (QEMU would take the second entry alone, found first from the start of the log, and
    // ignore that its tail points at the first; MS-VHDX replays from the tail.)
    let a = log_entry(
        guid,
        20,
        (log_len - SECTOR) as u32,
        file_len,
        file_len,
        &[Change::Data(first_block, page_of(0x20, "wrapped entry"))],
    );
    let b = log_entry(
        guid,
        21,
        (log_len - SECTOR) as u32,
        file_len,
        file_len,
        &[Change::Zero(first_block + 4096, 4096)],
    );
    assert_eq!(a.len(), 2 * SECTOR);
    let wrapped = with_log(&base, &[(log_len - SECTOR, a), (SECTOR, b)]);
    let opened = must_open(open_bytes(wrapped));
    assert_eq!(
        metadata(&opened, "log"),
        Some("replayed 2 entries in memory (sequence numbers 20 to 21)")
    );
    let mut page = vec![0u8; 8192];
    opened.disk.read_exact_at(&mut page, 0).unwrap();
    assert_eq!(&page[..13], b"wrapped entry");
    assert!(page[4096..].iter().all(|&b| b == 0));

    // An entry as long as the whole log, its tail pointing past itself: not a sequence.
    let mut long = log_entry(guid, 5, 4096, file_len, file_len, &[]);
    long.resize(log_len, 0);
    put32(&mut long, 8, log_len as u32);
    fix_crc(&mut long, 0, log_len);
    let opened = must_open(open_bytes(with_log(&base, &[(0, long)])));
    assert!(metadata(&opened, "log")
        .unwrap()
        .contains("nothing replayed"));

    // Every sector an entry header claiming the whole log, and longer than it; sequence
    // numbers at the very end of their range.
    let mut hostile = Vec::new();
    for i in 0..log_len / SECTOR {
        let mut e = log_entry(guid, u64::MAX - (i as u64 % 2), 0, file_len, u64::MAX, &[]);
        put32(
            &mut e,
            8,
            if i % 3 == 0 {
                log_len as u32
            } else {
                (log_len + SECTOR) as u32
            },
        );
        if i % 5 == 0 {
            fix_crc(&mut e, 0, SECTOR);
        }
        hostile.push((i * SECTOR, e));
    }
    let result = open_bytes(with_log(&base, &hostile));
    if let Ok(Some(opened)) = &result {
        let mut buf = vec![0u8; 65536];
        let _ = opened.disk.read_exact_at(&mut buf, 0);
    }

    // Entries of the maximal sequence number, consecutive: the walk cannot count past it.
    let top = vec![
        (0, log_entry(guid, u64::MAX - 1, 0, file_len, file_len, &[])),
        (
            SECTOR,
            log_entry(guid, u64::MAX, 0, file_len, file_len, &[]),
        ),
        (2 * SECTOR, log_entry(guid, 1, 0, file_len, file_len, &[])),
    ];
    let opened = must_open(open_bytes(with_log(&base, &top)));
    assert!(metadata(&opened, "log").unwrap().contains("2 entries"));

    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the log walks took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// What is refused

#[test]
fn a_differencing_disk_names_its_parent_and_is_refused() {
    let Some(image) = vhdx_of(DISK, 25, "child", "subformat=dynamic") else {
        return;
    };
    let mut b = image.bytes;
    let (params, _) = metadata_item(&b, file_parameters_guid());
    let flags = le32(&b, params + 4);
    put32(&mut b, params + 4, flags | 2);
    // A parent locator item (the metadata region is not under a checksum).
    let (meta, _, _) = region(&b, metadata_guid());
    let count = le16(&b, meta + 10) as usize;
    let item_at = 128 * 1024;
    let pairs = [
        ("parent_linkage", "{11111111-2222-3333-4444-555555555555}"),
        ("relative_path", r".\base-disk.vhdx"),
        ("absolute_win32_path", r"D:\Hyper-V\base-disk.vhdx"),
    ];
    let mut locator = vec![0u8; 20 + 12 * pairs.len()];
    locator[..16].copy_from_slice(&g("b7ef4ab09ed1814ab78925b8e9445913"));
    put16(&mut locator, 18, pairs.len() as u16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        let k: Vec<u8> = k.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let v: Vec<u8> = v.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let (key_at, value_at) = (locator.len(), locator.len() + k.len());
        locator.extend_from_slice(&k);
        locator.extend_from_slice(&v);
        let e = 20 + 12 * i;
        put32(&mut locator, e, key_at as u32);
        put32(&mut locator, e + 4, value_at as u32);
        put16(&mut locator, e + 8, k.len() as u16);
        put16(&mut locator, e + 10, v.len() as u16);
    }
    b[meta + item_at..meta + item_at + locator.len()].copy_from_slice(&locator);
    let e = meta + 32 + 32 * count;
    b[e..e + 16].copy_from_slice(&parent_locator_guid());
    put32(&mut b, e + 16, item_at as u32);
    put32(&mut b, e + 20, locator.len() as u32);
    put32(&mut b, e + 24, 6);
    put16(&mut b, meta + 10, count as u16 + 1);

    let why = expect_unsupported(open_bytes(b.clone()), "differencing");
    for parent in [
        r#"relative_path ".\\base-disk.vhdx""#,
        r#"absolute_win32_path "D:\\Hyper-V\\base-disk.vhdx""#,
    ] {
        assert!(why.contains(parent), "{why}");
    }

    // Without its locator: still refused.
    put16(&mut b, meta + 10, count as u16);
    let err = error_of(open_bytes(b));
    assert!(matches!(err, ContainerError::Unsupported { .. }), "{err}");
}

#[test]
fn unknown_required_regions_and_items_are_refused_unknown_optional_ones_ignored() {
    let Some(image) = vhdx_of(DISK, 26, "extra", "subformat=dynamic") else {
        return;
    };
    let (raw, base) = (&image.raw, &image.bytes);
    let unknown = g("0123456789abcdef0123456789abcdef");
    for required in [false, true] {
        // A region.
        let mut b = base.clone();
        for table in REGION_TABLES {
            let count = le32(&b, table + 8) as usize;
            let e = table + 16 + 32 * count;
            b[e..e + 16].copy_from_slice(&unknown);
            put64(&mut b, e + 16, 40 * MIB);
            put32(&mut b, e + 24, MIB as u32);
            put32(&mut b, e + 28, u32::from(required));
            put32(&mut b, table + 8, count as u32 + 1);
        }
        fix_region_tables(&mut b);
        check_refused_or_read(open_bytes(b), required, raw);

        // A metadata item.
        let mut b = base.clone();
        let (meta, _, _) = region(&b, metadata_guid());
        let count = le16(&b, meta + 10) as usize;
        let e = meta + 32 + 32 * count;
        b[e..e + 16].copy_from_slice(&unknown);
        put32(&mut b, e + 16, 65536 + 4096);
        put32(&mut b, e + 20, 8);
        put32(&mut b, e + 24, if required { 4 } else { 0 });
        put16(&mut b, meta + 10, count as u16 + 1);
        check_refused_or_read(open_bytes(b), required, raw);
    }
}

fn check_refused_or_read(result: Opening, refused: bool, raw: &[u8]) {
    if refused {
        expect_unsupported(result, "67452301-AB89-EFCD");
    } else {
        let opened = must_open(result);
        let mut buf = vec![0u8; 1 << 20];
        opened.disk.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf == raw[..1 << 20]);
    }
}

#[test]
fn malformed_containers_give_errors() {
    let Some(image) = vhdx_of(DISK, 27, "base", ONE_MIB_BLOCKS) else {
        return;
    };
    let base = image.bytes;
    let (bat, _, bat_entry) = region(&base, bat_guid());
    let (meta, _, _) = region(&base, metadata_guid());
    let (size_at, size_entry) = metadata_item(&base, virtual_size_guid());
    let (params_at, _) = metadata_item(&base, file_parameters_guid());
    let present = (0..48)
        .find(|&i| le64(&base, bat + 8 * i) & 7 == 6)
        .unwrap();
    // Errors on open.
    let on_open: [(&str, Damage); 14] = [
        ("cut in the second header", &|b| b.truncate(100 * 1024)),
        ("cut in the metadata region", &|b| {
            b.truncate(3 * MIB as usize + 1000)
        }),
        ("both headers", &|b| {
            b[HEADERS[0] + 200] ^= 1;
            b[HEADERS[1] + 200] ^= 1;
        }),
        ("both region tables", &|b| {
            b[REGION_TABLES[0] + 100] ^= 1;
            b[REGION_TABLES[1] + 100] ^= 1;
        }),
        ("a BAT past the end", &|b| {
            put64(b, bat_entry + 16, 1 << 50);
            fix_region_tables(b);
        }),
        ("the BAT over the metadata", &|b| {
            put64(b, bat_entry + 16, meta as u64);
            fix_region_tables(b);
        }),
        ("a huge disk", &|b| put64(b, size_at, u64::MAX)),
        ("a BAT too short for the disk", &|b| {
            put64(b, size_at, 1 << 40)
        }),
        ("a size not in sectors", &|b| {
            put64(b, size_at, DISK as u64 + 3)
        }),
        ("a block size not a power of 2", &|b| {
            put32(b, params_at, 3 * MIB as u32)
        }),
        ("a block size too large", &|b| {
            put32(b, params_at, 512 << 20)
        }),
        ("no block size", &|b| put32(b, params_at, 0)),
        ("the metadata signature", &|b| b[meta] = b'X'),
        ("an item outside the region", &|b| {
            put32(b, size_entry + 16, u32::MAX - 2)
        }),
    ];
    for (what, damage) in on_open {
        let mut b = base.clone();
        damage(&mut b);
        let err = error_of(open_bytes(b));
        assert!(
            matches!(err, ContainerError::Damaged { .. }),
            "{what}: {err}"
        );
    }
    let mut b = base.clone();
    b[REGION_TABLES[0] + 100] ^= 1;
    must_open(open_bytes(b)); // the copy stands in

    // Errors on read: the BAT is read on demand.
    let read_fails = |b: Vec<u8>, what: &str| {
        let opened = must_open(open_bytes(b));
        let failures = read_failures(&*opened.disk, MIB as usize, 48 * MIB);
        assert!(!failures.is_empty(), "{what}: read");
    };
    read_fails(base[..base.len() - 4096].to_vec(), "the last block cut");
    for (entry, what) in [
        (7u64, "partially present"),
        (4, "an undefined state"),
        ((1u64 << 40) << 20 | 6, "a block past the end"),
        (((bat as u64) / MIB) << 20 | 6, "a block on the BAT"),
        (6, "a block on the header section"),
    ] {
        let mut b = base.clone();
        put64(&mut b, bat + 8 * present, entry);
        read_fails(b, what);
    }
}

// ---------------------------------------------------------------------------------------
// Hostile bytes

#[test]
fn mutated_containers_never_panic_or_hang() {
    let Some(image) = vhdx_of(6 << 20, 28, "base", ONE_MIB_BLOCKS) else {
        return;
    };
    // A pending log too, so that mutations reach the replay.
    let pending = pending_log(&image.bytes, &image.raw);
    let base = pending.file;
    let (bat, _, _) = region(&base, bat_guid());
    let (meta, _, _) = region(&base, metadata_guid());
    let log = pending.log_offset;
    let areas: [(usize, usize); 7] = [
        (0, 1024),
        (HEADERS[0], 128),
        (HEADERS[1], 128),
        (REGION_TABLES[0], 256),
        (meta, 256),
        (bat, 4096),
        (log, 3 * SECTOR + 4096),
    ];
    let started = Instant::now();
    let mut opened_count = 0;
    let mut replayed = 0;
    mutation_rounds(
        &base,
        &mut Rng::new(0x9E37_79B9_7F4A_7C15),
        400,
        one_to_four,
        |rng, b, round| {
            let (start, len) = areas[round % areas.len()];
            let at = start + rng.below(len);
            match rng.below(4) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next_u64() as u8,
                2 => put32(
                    b,
                    at & !3,
                    [0, 1, u32::MAX, 0x8000_0000, rng.next_u64() as u32][rng.below(5)],
                ),
                _ => put64(
                    b,
                    at & !7,
                    [0, u64::MAX, 1 << 40, rng.next_u64()][rng.below(4)],
                ),
            }
        },
        |rng, mut b, _| {
            if rng.below(2) == 0 {
                // Checksums made right again, so that the mutation reaches what they guard.
                fix_header(&mut b, 0);
                fix_header(&mut b, 1);
                fix_region_tables(&mut b);
                for &(at, _) in &pending.entries {
                    let len = le32(&b, at + 8) as usize;
                    if len >= 64 && len <= MIB as usize && at + len <= log + MIB as usize {
                        fix_crc(&mut b, at, len);
                    }
                }
            }
            if let Ok(Some(opened)) = open_bytes(b) {
                opened_count += 1;
                replayed += usize::from(
                    metadata(&opened, "log").is_some_and(|l| l.starts_with("replayed")),
                );
                read_failures(&*opened.disk, MIB as usize + 4097, u64::MAX);
            }
        },
    );
    eprintln!("400 mutations: {opened_count} opened, {replayed} of them with a log replayed");
    assert!(
        opened_count > 0 && replayed > 0,
        "no mutation reached the disk or the log"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the mutations took {:?}",
        started.elapsed()
    );
}
