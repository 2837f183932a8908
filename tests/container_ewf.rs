//! The EWF (E01) reader against images written by ewfacquire (ewf-tools) from raw disks
//! these tests write: every byte of the virtual disk equals the raw disk, the stored MD5 and
//! SHA-1 equal md5sum's and sha1sum's, the header metadata is there, and damaged sets
//! (missing or cut segments, flipped table or chunk bytes, absurd sizes) are errors, never a
//! panic and never wrong bytes.

mod support;

use std::path::{Path, PathBuf};

use nextboot::evidence::image::container::{ewf, ContainerError, Opened};
use nextboot::evidence::image::ReadAt;
use support::container::{
    adler32, assert_disk_is, assert_reads_from_threads, dispatch, ewfacquire, fill_repeating, have,
    hex_digest, le32, le64, metadata, must_open, mutation_rounds, open_file, patch, put32, put64,
    read_in_chunks, scratch, stored_hash, write_file, Rng,
};
use tempfile::TempDir;

const MIB: usize = 1 << 20;
const CHUNK: usize = 32 * 1024;

/// A raw disk of `size` bytes: mostly zeros, labelled records at many offsets (the first
/// and last sector among them), and `random` bytes of noise in blocks that compress badly.
fn raw_disk(size: usize, random: usize, seed: u64) -> Vec<u8> {
    let mut disk = vec![0u8; size];
    let mut rng = Rng::new(seed | 1);
    let mut offset = 0;
    while offset + 600 <= size {
        let label = format!("ewf test record at byte {offset} seed {seed} ");
        fill_repeating(&mut disk[offset..offset + 600], label.as_bytes());
        offset += 256 * 1024 + 777;
    }
    disk[..16].copy_from_slice(b"FIRST SECTOR ...");
    let tail = size - 16;
    disk[tail..].copy_from_slice(b"... LAST SECTOR.");
    let block = 192 * 1024 + 13;
    let mut done = 0;
    let mut at = 3 * CHUNK + 100;
    while done < random && at + block <= size - 512 {
        let n = block.min(random - done);
        rng.fill(&mut disk[at..at + n]);
        done += n;
        at += block + 5 * CHUNK + 1;
    }
    disk
}

/// Writes `disk` as `<name>.raw` in `dir` and acquires it with ewfacquire as `name` (with
/// the case metadata of `assert_case_metadata`); the first segment's path.
fn acquire(dir: &Path, disk: &[u8], name: &str, args: &[&str]) -> PathBuf {
    let raw = write_file(dir, &format!("{name}.raw"), disk);
    let case = [
        "-C",
        "case-4711",
        "-D",
        "test description",
        "-E",
        "evidence-23",
        "-e",
        "Examiner Jane",
        "-N",
        "some notes",
    ];
    let first = ewfacquire(&raw, &dir.join(name), &[&case[..], args].concat());
    std::fs::remove_file(&raw).unwrap();
    first
}

/// The hex digest `tool` (md5sum, sha1sum) gives of `disk`.
fn digest(tool: &str, dir: &Path, disk: &[u8]) -> String {
    let path = write_file(dir, "digest.raw", disk);
    let digest = hex_digest(tool, &path);
    std::fs::remove_file(&path).unwrap();
    digest
}

fn open_ewf(path: &Path) -> Result<Opened, ContainerError> {
    Ok(open_file(ewf::open, path)?.expect("an EWF signature"))
}

fn open_dispatched(path: &Path) -> Opened {
    must_open(dispatch(path))
}

/// The whole disk read in odd-sized pieces, then reads straddling chunk boundaries.
fn assert_same_disk(disk: &dyn ReadAt, raw: &[u8]) {
    assert_disk_is(
        disk,
        raw,
        (CHUNK..raw.len()).step_by(CHUNK * 7 + CHUNK),
        &[(1, 2), (3, 10), (511, 1024), (CHUNK + 5, 2 * CHUNK + 9)],
    );
    let mut one = [0u8; 1];
    disk.read_exact_at(&mut one, raw.len() as u64 - 1).unwrap();
    assert_eq!(one[0], raw[raw.len() - 1]);
}

/// Every read either fails or gives the raw disk's bytes: the number that failed.
fn assert_never_wrong(disk: &dyn ReadAt, raw: &[u8]) -> usize {
    let mut failures = 0;
    let end = raw.len().min(disk.len() as usize) as u64;
    read_in_chunks(
        disk,
        256 * 1024 + 11,
        end,
        |offset, result, got| match result {
            Ok(()) => {
                let offset = offset as usize;
                assert!(
                    got == &raw[offset..offset + got.len()],
                    "wrong bytes at {offset}"
                );
            }
            Err(_) => failures += 1,
        },
    );
    failures
}

fn assert_case_metadata(opened: &Opened) {
    assert_eq!(metadata(opened, "case number"), Some("case-4711"));
    assert_eq!(metadata(opened, "examiner"), Some("Examiner Jane"));
    assert_eq!(metadata(opened, "evidence number"), Some("evidence-23"));
    assert_eq!(metadata(opened, "description"), Some("test description"));
    assert_eq!(metadata(opened, "notes"), Some("some notes"));
    assert!(metadata(opened, "acquisition date").is_some());
    assert!(metadata(opened, "acquisition software version").is_some());
    assert_eq!(metadata(opened, "media"), Some("fixed disk, physical"));
}

/// The stored MD5 (and SHA-1 with `sha1`) are md5sum's (and sha1sum's) of `raw`.
fn assert_stored_hashes(opened: &Opened, dir: &Path, raw: &[u8], sha1: bool) {
    for (algorithm, tool) in [("md5", "md5sum"), ("sha1", "sha1sum")] {
        if algorithm == "md5" || sha1 {
            assert_eq!(
                stored_hash(opened, algorithm),
                Some(digest(tool, dir, raw).as_str()),
                "{algorithm} of {:?}",
                opened.info.files
            );
        }
    }
}

/// One acquisition checked whole: bytes, size, format, hashes, metadata, and the same
/// through the dispatching opener.
fn check_acquisition(args: &[&str], size: usize, random: usize, seed: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk(size, random, seed);
    let first = acquire(dir.path(), &raw, "disk", args);
    let opened = open_ewf(&first).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(opened.info.virtual_size, raw.len() as u64);
    assert!(
        opened.info.format.starts_with("ewf ("),
        "{}",
        opened.info.format
    );
    assert_same_disk(&*opened.disk, &raw);
    assert_stored_hashes(&opened, dir.path(), &raw, args.contains(&"sha1"));
    let dispatched = open_dispatched(&first);
    assert_eq!(dispatched.info, opened.info);
    let mut head = [0u8; 16];
    dispatched.disk.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head, b"FIRST SECTOR ...");
    opened
        .info
        .metadata
        .iter()
        .map(|(l, _)| l.clone())
        .collect()
}

#[test]
fn uncompressed_e01_reads_as_the_raw_disk() {
    let Some((dir, raw)) = scratch("ewfacquire", |_| raw_disk(32 * MIB, 2 * MIB, 1)) else {
        return;
    };
    let first = acquire(dir.path(), &raw, "plain", &["-c", "none", "-f", "encase6"]);
    let opened = open_ewf(&first).unwrap();
    assert_eq!(opened.info.format, "ewf (E01)");
    assert_eq!(opened.info.virtual_size, raw.len() as u64);
    assert_eq!(opened.info.files, vec![first.display().to_string()]);
    assert_case_metadata(&opened);
    assert_same_disk(&*opened.disk, &raw);
    assert_stored_hashes(&opened, dir.path(), &raw, false);
    assert_eq!(open_dispatched(&first).info, opened.info);
}

#[test]
fn compressed_e01_reads_as_the_raw_disk() {
    if !have("ewfacquire") {
        return;
    }
    for (args, size, random, seed) in [
        (
            ["-c", "deflate:fast", "-f", "encase6"],
            32 * MIB,
            2 * MIB,
            2,
        ),
        (["-c", "deflate:best", "-f", "encase5"], 8 * MIB, MIB, 3),
        (["-c", "empty-block", "-f", "encase6"], 8 * MIB, MIB, 4),
    ] {
        check_acquisition(&args, size, random, seed);
    }
}

#[test]
fn split_e01_reads_across_segments() {
    let Some((dir, raw)) = scratch("ewfacquire", |_| raw_disk(24 * MIB, 4 * MIB, 5)) else {
        return;
    };
    let args = [
        "-c",
        "deflate:fast",
        "-S",
        "1MiB",
        "-d",
        "sha1",
        "-f",
        "encase6",
    ];
    let first = acquire(dir.path(), &raw, "split", &args);
    let opened = open_ewf(&first).unwrap();
    assert!(opened.info.files.len() >= 3, "{:?}", opened.info.files);
    assert!(opened.info.files[1].ends_with("split.E02"));
    assert_case_metadata(&opened);
    assert_same_disk(&*opened.disk, &raw);
    assert_stored_hashes(&opened, dir.path(), &raw, true);
    // Several readers at once, from opposite ends.
    assert_reads_from_threads(&*opened.disk, &raw, 2, |reversed| {
        let len = 100_003;
        let mut reads: Vec<(usize, usize)> = (0..raw.len() - len)
            .step_by(len)
            .map(|offset| (offset, len))
            .collect();
        if reversed == 1 {
            reads.reverse();
        }
        reads
    });
}

#[test]
fn lower_case_and_other_case_segment_names() {
    let Some((dir, raw)) = scratch("ewfacquire", |_| raw_disk(4 * MIB, 3 * MIB, 6)) else {
        return;
    };
    let first = acquire(dir.path(), &raw, "cased", &["-c", "none", "-S", "1MiB"]);
    // Renamed to lower case except the first: the next segments are found in the other case.
    let files = open_ewf(&first).unwrap().info.files;
    assert!(files.len() >= 3);
    for file in &files[1..] {
        let path = Path::new(file);
        let lower = path.with_extension(path.extension().unwrap().to_str().unwrap().to_lowercase());
        std::fs::rename(path, lower).unwrap();
    }
    let opened = open_ewf(&first).unwrap();
    assert!(opened.info.files[1].ends_with("cased.e02"));
    assert_same_disk(&*opened.disk, &raw);
}

#[test]
fn other_writers_formats() {
    if !have("ewfacquire") {
        return;
    }
    for format in [
        "ftk", "encase2", "encase4", "encase7", "linen6", "ewfx", "smart", "ewf",
    ] {
        let labels = check_acquisition(
            &["-c", "deflate:fast", "-S", "1MiB", "-f", format],
            4 * MIB,
            2 * MIB,
            7,
        );
        assert!(
            labels.iter().any(|l| l == "case number"),
            "{format}: {labels:?}"
        );
    }
}

#[test]
fn short_last_chunk_and_odd_chunk_sizes() {
    if !have("ewfacquire") {
        return;
    }
    // 3 sectors past a whole number of chunks: the last chunk is short.
    let size = 4 * MIB + 3 * 512;
    for (args, seed) in [
        (&["-c", "none", "-f", "encase6"][..], 8),
        (&["-c", "deflate:best", "-f", "encase6"][..], 9),
        (&["-c", "deflate:fast", "-b", "16", "-f", "encase6"][..], 10),
        (&["-c", "none", "-b", "128", "-f", "encase6"][..], 11),
    ] {
        check_acquisition(args, size, MIB, seed);
    }
}

/// A section of a segment file as the tests see it: type, offset, size.
fn sections(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut offset = 13;
    while offset + 76 <= bytes.len() {
        let kind = String::from_utf8_lossy(&bytes[offset..offset + 16])
            .trim_end_matches('\0')
            .to_string();
        let next = le64(bytes, offset + 16) as usize;
        let size = le64(bytes, offset + 24) as usize;
        found.push((kind.clone(), offset, size));
        if kind == "done" || kind == "next" || next <= offset {
            break;
        }
        offset = next;
    }
    found
}

/// The offset and size of the first section of `kind` in a segment file.
fn section(bytes: &[u8], kind: &str) -> (usize, usize) {
    let (_, offset, size) = sections(bytes)
        .into_iter()
        .find(|s| s.0 == kind)
        .unwrap_or_else(|| panic!("no {kind} section"));
    (offset, size)
}

/// Rewrites the Adler-32 that follows `bytes[start..end]`.
fn reseal(bytes: &mut [u8], start: usize, end: usize) {
    let sum = adler32(&bytes[start..end]);
    put32(bytes, end, sum);
}

/// The compressions the damage tests are run with.
const COMPRESSIONS: [&str; 2] = ["deflate:fast", "none"];

/// A split set for the damage tests: its raw disk and files (in a folder removed with it).
struct DamageSet {
    _dir: TempDir,
    raw: Vec<u8>,
    files: Vec<PathBuf>,
}

impl DamageSet {
    fn new(args: &[&str]) -> DamageSet {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_disk(8 * MIB, 3 * MIB, 12);
        let mut all = vec!["-S", "1MiB", "-f", "encase6"];
        all.extend_from_slice(args);
        let first = acquire(dir.path(), &raw, "hurt", &all);
        let files = open_ewf(&first)
            .unwrap()
            .info
            .files
            .iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>();
        assert!(files.len() >= 3, "{files:?}");
        DamageSet {
            _dir: dir,
            raw,
            files,
        }
    }

    /// With ewfacquire: `test(compression, set, bytes)` on a set of each compression, given
    /// the bytes of its segment `segment`, which are written back after.
    fn each(segment: usize, test: impl Fn(&str, &DamageSet, &[u8])) {
        if !have("ewfacquire") {
            return;
        }
        for compression in COMPRESSIONS {
            let set = DamageSet::new(&["-c", compression]);
            let whole = std::fs::read(&set.files[segment]).unwrap();
            test(compression, &set, &whole);
            std::fs::write(&set.files[segment], &whole).unwrap();
        }
    }

    /// Segment `segment` written as `bytes`, then the set opened from its first segment.
    fn open_with(&self, segment: usize, bytes: &[u8]) -> Result<Opened, ContainerError> {
        std::fs::write(&self.files[segment], bytes).unwrap();
        open_ewf(&self.files[0])
    }
}

#[test]
fn missing_or_cut_segments_are_errors() {
    if !have("ewfacquire") {
        return;
    }
    let set = DamageSet::new(&["-c", "deflate:fast"]);
    let files = &set.files;
    let last = files.len() - 1;
    let whole_last = std::fs::read(&files[last]).unwrap();
    // The last segment cut short, at several places.
    for keep in [whole_last.len() - 1, whole_last.len() / 2, 100, 13, 5] {
        match set.open_with(last, &whole_last[..keep]) {
            Ok(opened) => {
                panic!("cut to {keep} bytes and opened: {:?}", opened.info.files);
            }
            Err(e) => assert!(matches!(e, ContainerError::Damaged { .. }), "{e}"),
        }
    }
    std::fs::write(&files[last], &whole_last).unwrap();
    // A middle segment cut.
    let middle = &files[1];
    let whole_middle = std::fs::read(middle).unwrap();
    assert!(set
        .open_with(1, &whole_middle[..whole_middle.len() - 200])
        .is_err());
    // Gone.
    std::fs::remove_file(middle).unwrap();
    let err = open_ewf(&files[0])
        .err()
        .expect("a missing segment is an error");
    assert!(err.to_string().contains("missing"), "{err}");
    // Two segments swapped: their headers give them away.
    assert!(set
        .open_with(1, &std::fs::read(&files[2]).unwrap())
        .is_err());
    assert_same_disk(&*set.open_with(1, &whole_middle).unwrap().disk, &set.raw);
    // A later segment given instead of the first.
    assert!(matches!(
        open_ewf(&files[1]),
        Err(ContainerError::Unsupported { .. })
    ));
    // Only the first segment given by another name: its sequels cannot be named.
    let renamed = files[0].with_extension("bin");
    std::fs::copy(&files[0], &renamed).unwrap();
    assert!(matches!(
        open_ewf(&renamed),
        Err(ContainerError::Unsupported { .. })
    ));
}

#[test]
fn damaged_tables_are_errors_or_recovered_from_table2() {
    DamageSet::each(1, |compression, set, whole| {
        let raw = &set.raw;
        let (table, table_size) = section(whole, "table");
        let (table2, _) = section(whole, "table2");
        let entry = |at: usize, n: usize| at + 76 + 24 + 4 * n;

        // The first copy damaged: the second one serves, the bytes are right.
        let mut bytes = whole.to_vec();
        bytes[entry(table, 3)] ^= 0x40;
        let opened = set.open_with(1, &bytes).unwrap();
        assert_eq!(assert_never_wrong(&*opened.disk, raw), 0);

        // Both copies damaged alike: the chunks of that table cannot be read.
        bytes[entry(table2, 3)] ^= 0x40;
        let opened = set.open_with(1, &bytes).unwrap();
        assert!(assert_never_wrong(&*opened.disk, raw) > 0);

        // Both damaged, their checksums made to agree: the offset lands outside the chunk
        // data or on bytes that fail their own checksum.
        for (n, value) in [(3usize, 0x7fff_fff0u32), (4, 0x8000_0000), (5, 0x0000_004c)] {
            let mut bytes = whole.to_vec();
            let count = le32(&bytes, table + 76) as usize;
            assert!(table_size >= 76 + 24 + 4 * count + 4);
            for at in [table, table2] {
                put32(&mut bytes, entry(at, n), value);
                reseal(&mut bytes, entry(at, 0), entry(at, count));
            }
            let opened = set.open_with(1, &bytes).unwrap();
            assert!(
                assert_never_wrong(&*opened.disk, raw) > 0,
                "{compression} {n}"
            );
        }

        // An absurd entry count, its header checksum made right: refused on open.
        let mut bytes = whole.to_vec();
        for at in [table, table2] {
            put32(&mut bytes, at + 76, 0x4000_0000);
            reseal(&mut bytes, at + 76, at + 96);
        }
        assert!(matches!(
            set.open_with(1, &bytes),
            Err(ContainerError::Damaged { .. })
        ));

        // A table header damaged in both copies.
        let mut bytes = whole.to_vec();
        bytes[table + 76 + 8] ^= 1;
        bytes[table2 + 76 + 8] ^= 1;
        assert!(set.open_with(1, &bytes).is_err());
    });
}

#[test]
fn damaged_chunks_are_errors_naming_the_chunk() {
    DamageSet::each(0, |compression, set, whole| {
        let raw = &set.raw;
        let (sectors, size) = section(whole, "sectors");
        // Flip one byte in the middle of the chunk data: whatever chunk it falls in, the
        // read of it fails (checksum or zlib), and the others still read right.
        let mut bytes = whole.to_vec();
        bytes[sectors + size / 2] ^= 0x01;
        let opened = set.open_with(0, &bytes).unwrap();
        let failures = assert_never_wrong(&*opened.disk, raw);
        assert!((1..=2).contains(&failures), "{compression}: {failures}");
        let mut all = vec![0u8; raw.len()];
        let err = opened.disk.read_exact_at(&mut all, 0).unwrap_err();
        assert!(err.to_string().contains("ewf chunk "), "{err}");
    });
}

#[test]
fn absurd_volumes_are_refused() {
    let Some((dir, raw)) = scratch("ewfacquire", |_| raw_disk(2 * MIB, MIB / 2, 13)) else {
        return;
    };
    let first = acquire(
        dir.path(),
        &raw,
        "vol",
        &["-c", "deflate:fast", "-f", "encase6"],
    );
    let whole = std::fs::read(&first).unwrap();
    let open_with = |bytes: &[u8]| {
        std::fs::write(&first, bytes).unwrap();
        open_ewf(&first)
    };
    let volume = section(&whole, "volume").0 + 76;
    let cases: [(usize, &[u8]); 6] = [
        (16, &(1u64 << 60).to_le_bytes()), // sectors: past what the tables hold
        (16, &u64::MAX.to_le_bytes()),     // sectors: the size overflows
        (8, &0u32.to_le_bytes()),          // no sectors per chunk
        (8, &0x0100_0000u32.to_le_bytes()), // chunks of 8 GiB
        (12, &0u32.to_le_bytes()),         // no bytes per sector
        (4, &1u32.to_le_bytes()),          // one chunk for a 2 MiB disk
    ];
    for (at, value) in cases {
        let mut bytes = whole.clone();
        patch(&mut bytes, volume + at, value);
        reseal(&mut bytes, volume, volume + 1048);
        assert!(open_with(&bytes).is_err(), "volume byte {at}");
    }
    // The volume's checksum itself wrong.
    let mut bytes = whole.clone();
    bytes[volume + 16] ^= 1;
    assert!(matches!(
        open_with(&bytes),
        Err(ContainerError::Damaged { .. })
    ));
    // A section chain that loops back, its descriptor resealed.
    let mut bytes = whole.clone();
    let sectors = section(&whole, "sectors").0;
    put64(&mut bytes, sectors + 16, 13);
    reseal(&mut bytes, sectors, sectors + 72);
    assert!(open_with(&bytes).is_err());
}

#[test]
fn random_damage_never_gives_wrong_bytes() {
    let Some((dir, raw)) = scratch("ewfacquire", |_| raw_disk(MIB, MIB / 4, 14)) else {
        return;
    };
    let mut rng = Rng::new(99);
    for compression in COMPRESSIONS {
        let first = acquire(
            dir.path(),
            &raw,
            &format!("fuzz-{compression}"),
            &["-c", compression],
        );
        let whole = std::fs::read(&first).unwrap();
        mutation_rounds(
            &whole,
            &mut rng,
            150,
            |_, round| 1 + round % 3,
            |rng, bytes, _| {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            },
            |_, bytes, round| {
                std::fs::write(&first, &bytes).unwrap();
                if let Ok(opened) = open_ewf(&first) {
                    assert_eq!(opened.info.virtual_size, raw.len() as u64, "round {round}");
                    assert_never_wrong(&*opened.disk, &raw);
                }
            },
        );
        std::fs::write(&first, &whole).unwrap();
    }
}
