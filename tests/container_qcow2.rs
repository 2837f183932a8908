//! The qcow2 reader against images `qemu-img` makes from a raw disk this test writes: every
//! variant read through the reader must equal the raw disk byte for byte; what the reader
//! refuses must be refused plainly; damaged and mutated containers must give errors, never
//! a panic or a hang. Without `qemu-img` the tests say so and pass, unless `CI` is set.

mod support;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use nextboot::evidence::image::container::{qcow2, ContainerError, Opened};
use nextboot::evidence::image::ReadAt;
use support::container::{
    assert_disk_is, assert_reads_from_threads, be64, dispatch, error_of, expect_unsupported,
    fill_repeating, has_metadata, have, have_for_part, in_memory, metadata, mutation_rounds,
    one_to_four, open_both, open_bytes, open_file, patch, path_arg, qemu_convert, qemu_img,
    qemu_img_output, read_failures, run_ok, scratch, write_at, Opening, Rng,
};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
/// 48 MiB and three sectors: the last cluster and the last L2 table are partly used.
const DISK_SIZE: u64 = 48 * MIB + 3 * 512;

/// The raw disk: its file and its bytes.
struct Raw {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Raw {
    /// A mostly sparse disk of `size` bytes: marked first and last sectors, text (which
    /// compresses) at many offsets, some straddling cluster boundaries, random blocks (which
    /// do not compress), zeros elsewhere. Only the non-zero parts are written to the file.
    fn new(dir: &Path, size: u64) -> Raw {
        let mut bytes = vec![0u8; size as usize];
        let mut parts: Vec<(usize, usize)> = Vec::new();
        let mut put = |bytes: &mut Vec<u8>, at: u64, data: &[u8]| {
            let at = at as usize;
            if at >= bytes.len() {
                return;
            }
            let end = (at + data.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&data[..end - at]);
            parts.push((at, end));
        };
        let repeated = |pattern: &[u8], len: u64| {
            let mut data = vec![0u8; len as usize];
            fill_repeating(&mut data, pattern);
            data
        };
        put(&mut bytes, 0, &repeated(b"first sector ", 512));
        put(&mut bytes, size - 512, &repeated(b"last sector ", 512));
        let mut at = 512u64 + 7;
        let mut k = 0u64;
        while at + 4096 < size - 512 {
            let text: Vec<u8> = (0..40)
                .flat_map(|line| format!("block {k} line {line} at {at}\n").into_bytes())
                .collect();
            put(&mut bytes, at, &text);
            k += 1;
            at += MIB / 3 + 12345 * (k % 7);
        }
        // Text across 64 KiB and 2 MiB cluster boundaries, and a long compressible run.
        for boundary in [64 << 10, 2 * MIB, 6 * MIB, 30 * MIB] {
            put(&mut bytes, boundary - 100, &[0xc3; 200]);
        }
        put(&mut bytes, 10 * MIB, &repeated(b"compressible ", 2 * MIB));
        let mut rng = Rng::star(0x9e37_79b9_7f4a_7c15);
        for start in [5 * MIB, 20 * MIB + 4097, 40 * MIB - 777] {
            let mut block = vec![0u8; 256 << 10];
            rng.fill(&mut block);
            put(&mut bytes, start, &block);
        }
        let path = dir.join("disk.raw");
        let file = File::create(&path).unwrap();
        file.set_len(size).unwrap();
        for (start, end) in parts {
            write_at(&file, &bytes[start..end], start as u64);
        }
        Raw { path, bytes }
    }

    /// Applies `qemu-io -c "write -P <pattern> <offset> <len>"` to the expected bytes too.
    fn write(&mut self, image: &Path, pattern: u8, offset: u64, len: u64) {
        qemu_io(image, &format!("write -P {pattern:#x} {offset} {len}"));
        self.bytes[offset as usize..(offset + len) as usize].fill(pattern);
    }

    /// Applies `qemu-io -c "write -z [-u] <offset> <len>"` to the expected bytes too.
    fn zero(&mut self, image: &Path, offset: u64, len: u64, unmap: bool) {
        let flag = if unmap { " -u" } else { "" };
        qemu_io(image, &format!("write -z{flag} {offset} {len}"));
        self.bytes[offset as usize..(offset + len) as usize].fill(0);
    }
}

fn qemu_io(image: &Path, command: &str) {
    run_ok(
        Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", command])
            .arg(image),
    );
}

/// `qemu-img convert -O qcow2 <options> raw <name>`.
fn convert(dir: &Path, raw: &Raw, name: &str, options: &[&str]) -> PathBuf {
    qemu_convert(&raw.path, "qcow2", options, &dir.join(name))
}

fn open(path: &Path) -> Opening {
    open_file(qcow2::open, path)
}

/// Reads the whole disk in odd-sized chunks, and reads straddling cluster boundaries, and
/// compares them with `expected`.
fn assert_same(disk: &dyn ReadAt, expected: &[u8], cluster: u64) {
    let (size, cluster, mib) = (expected.len(), cluster as usize, MIB as usize);
    let starts = [
        cluster - 1,
        2 * cluster - 3,
        2 * mib - 5,
        10 * mib + cluster - 7,
        size - 513,
        size - 1,
    ];
    assert_disk_is(disk, expected, starts, &[(0, 9)]);
    let error = disk
        .read_exact_at(&mut [0u8; 2], size as u64 - 1)
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
}

/// Opens `image` directly and through the dispatcher, and compares it with `raw`.
fn check_image(image: &Path, expected: &[u8], version: &str, cluster: u64) -> Opened {
    let [direct, dispatched] = open_both(qcow2::open, image);
    assert_eq!(direct.info.format, format!("qcow2 {version}"));
    assert_eq!(direct.info.virtual_size, expected.len() as u64);
    assert!(has_metadata(
        &direct,
        "cluster size",
        &format!("{cluster} bytes")
    ));
    assert_same(direct.disk.as_ref(), expected, cluster);
    let mut first = vec![0u8; 4096];
    dispatched.disk.read_exact_at(&mut first, 0).unwrap();
    assert_eq!(first, expected[..4096]);
    direct
}

/// `image` changed by `edit` (through qemu-io, and the expected bytes alike) where qemu-io is
/// installed, then checked against the expected bytes (64 KiB clusters).
fn edit_and_check(
    image: &Path,
    raw: &mut Raw,
    version: &str,
    edit: impl FnOnce(&mut Raw, &Path),
) -> Opened {
    if have_for_part("qemu-io", "the qemu-io writes") {
        edit(raw, image);
    }
    check_image(image, &raw.bytes, version, 65536)
}

/// The percentage of compressed clusters `qemu-img check` reports.
fn compressed_percent(image: &Path) -> f64 {
    let out = qemu_img(&["check", "-f", "qcow2", path_arg(image)]);
    let out = String::from_utf8_lossy(&out.stdout);
    let line = out
        .lines()
        .find(|line| line.contains("compressed clusters"))
        .expect("qemu-img check reports compressed clusters");
    let field = line.split(", ").last().unwrap();
    field.split('%').next().unwrap().trim().parse().unwrap()
}

fn supports(option: &str) -> bool {
    let out = qemu_img_output(&["create", "-f", "qcow2", "-o", "help"]);
    let supported = String::from_utf8_lossy(&out.stdout).contains(option);
    if !supported {
        eprintln!("this qemu-img has no {option} option: skipping that part");
    }
    supported
}

fn setup() -> Option<(TempDir, Raw)> {
    scratch("qemu-img", |dir| Raw::new(dir, DISK_SIZE))
}

fn bytes_error(bytes: Vec<u8>) -> ContainerError {
    error_of(open_bytes(qcow2::open, "crafted.qcow2", bytes))
}

#[test]
fn v3_default_matches_raw() {
    let Some((dir, mut raw)) = setup() else {
        return;
    };
    let image = convert(dir.path(), &raw, "v3.qcow2", &[]);
    let opened = edit_and_check(&image, &mut raw, "v3", |raw, image| {
        // The zero flag on an allocated cluster (offset kept), and on an unmapped one.
        raw.zero(image, 10 * MIB, 64 << 10, false);
        raw.zero(image, 10 * MIB + (128 << 10), 64 << 10, true);
        raw.write(image, 0x5a, 33 * MIB + 512, 1536);
    });
    assert!(has_metadata(&opened, "compression type", "zlib"));
}

#[test]
fn v2_matches_raw() {
    let Some((dir, mut raw)) = setup() else {
        return;
    };
    let image = convert(dir.path(), &raw, "v2.qcow2", &["-o", "compat=0.10"]);
    edit_and_check(&image, &mut raw, "v2", |raw, image| {
        raw.zero(image, 10 * MIB, 64 << 10, false);
        raw.write(image, 0x77, 47 * MIB, 4096);
    });
}

#[test]
fn zlib_compressed_matches_raw() {
    let Some((dir, raw)) = setup() else { return };
    let image = convert(dir.path(), &raw, "zlib.qcow2", &["-c"]);
    assert!(compressed_percent(&image) > 50.0, "the image is compressed");
    let opened = check_image(&image, &raw.bytes, "v3", 65536);
    // Four threads at once, each over the whole disk in its own order, through the shared
    // caches.
    assert_reads_from_threads(&*opened.disk, &raw.bytes, 4, |t| {
        let len = 300_007;
        let chunks = raw.bytes.len() / len;
        (0..chunks)
            .map(|i| (((i * 7 + t * 13) % chunks) * len, len))
            .collect()
    });
}

#[test]
fn zstd_compressed_matches_raw() {
    let Some((dir, raw)) = setup() else { return };
    if !supports("compression_type") {
        return;
    }
    let image = convert(
        dir.path(),
        &raw,
        "zstd.qcow2",
        &["-c", "-o", "compression_type=zstd"],
    );
    assert!(compressed_percent(&image) > 50.0, "the image is compressed");
    let opened = check_image(&image, &raw.bytes, "v3", 65536);
    assert!(has_metadata(&opened, "compression type", "zstd"));
}

#[test]
fn small_clusters_match_raw() {
    let Some((dir, raw)) = setup() else { return };
    let image = convert(dir.path(), &raw, "c512.qcow2", &["-o", "cluster_size=512"]);
    check_image(&image, &raw.bytes, "v3", 512);
}

#[test]
fn large_clusters_match_raw() {
    let Some((dir, raw)) = setup() else { return };
    let image = convert(dir.path(), &raw, "c2m.qcow2", &["-o", "cluster_size=2M"]);
    check_image(&image, &raw.bytes, "v3", 2 * MIB);
}

/// Compressed descriptors change layout with the cluster size: 1 bit of sector count with
/// 512-byte clusters, 13 with 2 MiB ones.
#[test]
fn compressed_small_and_large_clusters_match_raw() {
    let Some((dir, raw)) = setup() else { return };
    for (name, option, cluster) in [
        ("c512z.qcow2", "cluster_size=512", 512),
        ("c2mz.qcow2", "cluster_size=2M", 2 * MIB),
    ] {
        let image = convert(dir.path(), &raw, name, &["-c", "-o", option]);
        assert!(compressed_percent(&image) > 10.0, "the image is compressed");
        check_image(&image, &raw.bytes, "v3", cluster);
        fs::remove_file(&image).unwrap();
    }
}

#[test]
fn extended_l2_matches_raw() {
    let Some((dir, mut raw)) = setup() else {
        return;
    };
    if !supports("extended_l2") {
        return;
    }
    let image = convert(dir.path(), &raw, "ext.qcow2", &["-o", "extended_l2=on"]);
    let opened = edit_and_check(&image, &mut raw, "v3", |raw, image| {
        // Subclusters (2 KiB) allocated alone in a cluster that was unallocated, a partial
        // subcluster, and zeroed subclusters in an allocated cluster.
        raw.write(image, 0x11, 31 * MIB, 4096);
        raw.write(image, 0x22, 31 * MIB + 10240 + 100, 1000);
        raw.zero(image, 10 * MIB + 2048, 4096, false);
        raw.zero(image, 10 * MIB + (64 << 10) + 6144, 2048, true);
    });
    assert!(has_metadata(&opened, "extended L2 entries", "on"));
}

#[test]
fn snapshots_are_noted_and_the_active_state_is_read() {
    let Some((dir, mut raw)) = setup() else {
        return;
    };
    if !have("qemu-io") {
        return;
    }
    let image = convert(dir.path(), &raw, "snap.qcow2", &[]);
    qemu_img(&["snapshot", "-c", "before", path_arg(&image)]);
    raw.write(&image, 0x66, 5 * MIB, 64 << 10);
    raw.write(&image, 0x67, 25 * MIB + 512, 512);
    let opened = check_image(&image, &raw.bytes, "v3", 65536);
    let note = metadata(&opened, "snapshots").expect("the snapshot is noted");
    assert!(note.contains("1 internal snapshot"), "{note}");
}

#[test]
fn a_backing_file_is_refused_and_named() {
    let Some((dir, raw)) = setup() else { return };
    convert(dir.path(), &raw, "base.qcow2", &[]);
    let overlay = dir.path().join("overlay.qcow2");
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2"])
            .arg(&overlay)
            .current_dir(dir.path()),
    );
    expect_unsupported(open(&overlay), "\"base.qcow2\"");
    assert!(dispatch(&overlay).is_err());
}

#[test]
fn encryption_is_refused() {
    let Some((dir, _raw)) = setup() else { return };
    let aes = dir.path().join("aes.qcow2");
    let made = qemu_img_output(&[
        "create",
        "-f",
        "qcow2",
        "--object",
        "secret,id=s0,data=0123456789abcdef",
        "-o",
        "encrypt.format=aes,encrypt.key-secret=s0",
        path_arg(&aes),
        "4M",
    ]);
    if made.status.success() {
        let error = error_of(open(&aes));
        assert!(error.to_string().contains("encrypted (AES)"), "{error}");
    } else {
        eprintln!("qemu-img cannot make an AES image: crafting the header field only");
    }
    // LUKS takes seconds of key derivation to create: set the field in a plain image.
    let plain = dir.path().join("plain.qcow2");
    qemu_img(&["create", "-f", "qcow2", path_arg(&plain), "4M"]);
    let mut bytes = fs::read(&plain).unwrap();
    patch(&mut bytes, 32, &2u32.to_be_bytes());
    expect_unsupported(
        open_bytes(qcow2::open, "crafted.qcow2", bytes),
        "encrypted (LUKS)",
    );
}

#[test]
fn an_external_data_file_is_refused_and_named() {
    let Some((dir, _raw)) = setup() else { return };
    let image = dir.path().join("meta.qcow2");
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-f", "qcow2", "-o", "data_file=data.raw"])
            .arg(&image)
            .arg("4M")
            .current_dir(dir.path()),
    );
    expect_unsupported(open(&image), "\"data.raw\"");
}

#[test]
fn feature_bits_dirty_corrupt_and_unknown() {
    let Some((dir, raw)) = setup() else { return };
    let image = convert(dir.path(), &raw, "bits.qcow2", &[]);
    let bytes = fs::read(&image).unwrap();

    let mut dirty = bytes.clone();
    dirty[79] |= 1;
    let opened = open_bytes(qcow2::open, "dirty.qcow2", dirty)
        .unwrap()
        .unwrap();
    assert!(metadata(&opened, "dirty").is_some());
    assert_same(opened.disk.as_ref(), &raw.bytes, 65536);

    let mut corrupt = bytes.clone();
    corrupt[79] |= 2;
    let error = bytes_error(corrupt);
    assert!(matches!(error, ContainerError::Damaged { .. }));
    assert!(error.to_string().contains("corrupt"), "{error}");

    let mut unknown = bytes.clone();
    unknown[79] |= 1 << 5;
    expect_unsupported(open_bytes(qcow2::open, "crafted.qcow2", unknown), "bit 5");

    // A raw disk is not claimed.
    let raw_start = raw.bytes[..1 << 20].to_vec();
    assert!(open_bytes(qcow2::open, "disk.raw", raw_start)
        .unwrap()
        .is_none());
}

#[test]
fn absurd_header_fields_are_refused() {
    let Some((dir, raw)) = setup() else { return };
    let image = convert(dir.path(), &raw, "absurd.qcow2", &[]);
    let bytes = fs::read(&image).unwrap();
    let patches: [(usize, &[u8]); 9] = [
        (4, &7u32.to_be_bytes()),          // version
        (20, &8u32.to_be_bytes()),         // cluster_bits too small
        (20, &30u32.to_be_bytes()),        // cluster_bits too large
        (24, &(1u64 << 62).to_be_bytes()), // size beyond the L1 table
        (24, &u64::MAX.to_be_bytes()),     // size absurd
        (36, &u32::MAX.to_be_bytes()),     // l1_size beyond QEMU's limit
        (40, &(12345u64).to_be_bytes()),   // l1_table_offset unaligned
        (40, &(1u64 << 50).to_be_bytes()), // L1 table past the end of the file
        (100, &(50u32).to_be_bytes()),     // header_length too short
    ];
    for (at, value) in patches {
        let mut patched = bytes.clone();
        patch(&mut patched, at, value);
        let error = bytes_error(patched);
        eprintln!("refused as expected: {error}");
    }
    // Too short to hold a header.
    let error = bytes_error(bytes[..64].to_vec());
    assert!(matches!(error, ContainerError::Damaged { .. }), "{error}");
}

/// The first read of the whole disk (in reads of a cluster and a byte) that fails.
fn first_failure(disk: &dyn ReadAt) -> std::io::Error {
    read_failures(disk, 65536 + 1, u64::MAX)
        .into_iter()
        .next()
        .expect("a read of the damaged disk fails")
}

#[test]
fn damaged_containers_give_errors() {
    let Some((dir, raw)) = setup() else { return };
    let image = convert(dir.path(), &raw, "damaged.qcow2", &[]);
    let bytes = fs::read(&image).unwrap();
    let l1 = be64(&bytes, 40) as usize;
    let l2 = (be64(&bytes, l1) & 0x00ff_ffff_ffff_fe00) as usize;
    assert!(l2 > 0, "the first L2 table is allocated");

    // Truncated: the data of the last clusters is gone.
    let truncated = dir.path().join("truncated.qcow2");
    fs::write(&truncated, &bytes[..bytes.len() * 3 / 5]).unwrap();
    match open(&truncated) {
        Err(error) => eprintln!("truncated: {error}"),
        Ok(opened) => {
            let error = first_failure(opened.unwrap().disk.as_ref());
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
        }
    }

    // L1 entry: an unaligned L2 table, an L2 table past the end of the file. L2 entry of the
    // first cluster: unaligned, past the end, compressed garbage.
    for (at, entry) in [
        (l1, l2 as u64 + 512),
        (l1, 1u64 << 40),
        (l2, (1u64 << 63) | (1 << 16) | 512),
        (l2, (1u64 << 63) | (1 << 45)),
        (l2, (1u64 << 62) | (3 << 54) | 1000),
    ] {
        let mut patched = bytes.clone();
        patch(&mut patched, at, &entry.to_be_bytes());
        let opened = open_bytes(qcow2::open, "damaged.qcow2", patched)
            .unwrap()
            .unwrap();
        eprintln!("{}", first_failure(opened.disk.as_ref()));
    }
}

/// Opens and reads (a bounded part of) each of a few hundred random mutations of a small
/// container's header, L1 table, L2 table and data; in a thread, so a hang fails the test.
fn mutate(image: Vec<u8>, seed: u64, rounds: usize) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let l1 = be64(&image, 40) as usize;
        let l2 = (be64(&image, l1.min(image.len() - 8)) & 0x00ff_ffff_ffff_fe00) as usize;
        let regions = [(0usize, 112usize), (l1, 64), (l2, 4096), (0, image.len())];
        let mut opened = 0;
        mutation_rounds(
            &image,
            &mut Rng::star(seed),
            rounds,
            one_to_four,
            |rng, bytes, _| {
                let (start, len) = regions[rng.below(regions.len())];
                let at = (start + rng.below(len)).min(bytes.len() - 1);
                bytes[at] = match rng.below(3) {
                    0 => rng.next_u64() as u8,
                    1 => bytes[at] ^ (1 << rng.below(8)),
                    _ => 0xff,
                };
            },
            |_, bytes, _| {
                if let Ok(Some(disk)) = open_bytes(qcow2::open, "mutated.qcow2", bytes) {
                    opened += 1;
                    read_failures(disk.disk.as_ref(), 65536 + 1, 4 * MIB);
                }
            },
        );
        done.send(opened).unwrap();
    });
    let opened = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the mutation loop finishes (no panic, no hang)");
    eprintln!("{opened} of {rounds} mutated containers opened");
}

#[test]
fn random_mutations_never_panic_or_hang() {
    let Some((dir, raw)) = scratch("qemu-img", |dir| Raw::new(dir, 2 * MIB)) else {
        return;
    };
    for (name, options, seed) in [
        ("small.qcow2", &["-o", "cluster_size=4096"][..], 1),
        ("smallz.qcow2", &["-c", "-o", "cluster_size=4096"][..], 2),
        (
            "smallzstd.qcow2",
            &["-c", "-o", "compression_type=zstd"][..],
            3,
        ),
        (
            "smallext.qcow2",
            &["-o", "extended_l2=on,cluster_size=16k"][..],
            4,
        ),
    ] {
        if options.iter().any(|o| o.contains("zstd")) && !supports("compression_type") {
            continue;
        }
        if options.iter().any(|o| o.contains("extended_l2")) && !supports("extended_l2") {
            continue;
        }
        let image = convert(dir.path(), &raw, name, options);
        let bytes = fs::read(&image).unwrap();
        // The image itself reads right, before it is mutated.
        let opened = qcow2::open(&image, &in_memory(bytes.clone()))
            .unwrap()
            .unwrap();
        assert_same(opened.disk.as_ref(), &raw.bytes, 4096);
        mutate(bytes, seed, 300);
    }
}
