//! What the disk container tests (`tests/container_*.rs`) share: the tools that make the
//! containers (qemu-img, ewfacquire), found or the test skipped; a deterministic generator and
//! a raw disk of recognisable bytes; opening a container directly, from bytes or through the
//! dispatcher; reading a whole disk in odd-sized chunks and comparing it with the raw bytes;
//! reads from several threads at once; and the loop that mutates a container at random.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use nextboot::evidence::image::container::{self, ContainerError, Opened};
use nextboot::evidence::image::{ImageFile, ReadAt};
use tempfile::TempDir;

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Tools

/// Whether `tool` runs here. Without it the test says on stderr that it is skipped and
/// passes, except when `CI` is set: there the tool must be installed, and the test fails.
pub fn have(tool: &str) -> bool {
    have_for(tool, None)
}

/// [`have`] for a part of a test only: without `tool`, that part is skipped (and said so).
pub fn have_for_part(tool: &str, part: &str) -> bool {
    have_for(tool, Some(part))
}

fn have_for(tool: &str, part: Option<&str>) -> bool {
    let version = match tool {
        "ewfacquire" => "-V",
        _ => "--version",
    };
    let ran = Command::new(tool).arg(version).output();
    if matches!(&ran, Ok(out) if out.status.success()) {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("test").to_string();
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {tool} is needed when CI is set: {ran:?}"
    );
    let skipped = match part {
        Some(part) => format!("{part} of {test}"),
        None => test,
    };
    super::skip(&skipped, &format!("{tool} is not installed"));
    false
}

/// Runs `command`; its output. Panics, with what it printed, when it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `qemu-img <args>`, which must succeed.
pub fn qemu_img(args: &[&str]) -> Output {
    run_ok(Command::new("qemu-img").args(args))
}

/// `qemu-img <args>`, whether it succeeds or not.
pub fn qemu_img_output(args: &[&str]) -> Output {
    Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img runs")
}

/// A path as a tool's argument.
pub fn path_arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// `bytes` written to `dir/<name>`: the file's path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `qemu-img convert -f raw -O <format> <options...> <raw> <out>` (the folder of `out` made
/// first): `out`.
pub fn qemu_convert(raw: &Path, format: &str, options: &[&str], out: &Path) -> PathBuf {
    if let Some(folder) = out.parent() {
        std::fs::create_dir_all(folder).unwrap();
    }
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", format])
            .args(options)
            .arg(raw)
            .arg(out),
    );
    out.to_path_buf()
}

/// `ewfacquire -q -u <args> -t <target> <raw>`: the first segment it wrote (`.E01`, `.e01`
/// or `.s01`, as the format has it).
pub fn ewfacquire(raw: &Path, target: &Path, args: &[&str]) -> PathBuf {
    run_ok(
        Command::new("ewfacquire")
            .args(["-q", "-u"])
            .args(args)
            .arg("-t")
            .arg(target)
            .arg(raw),
    );
    ["E01", "e01", "s01"]
        .map(|ext| target.with_extension(ext))
        .into_iter()
        .find(|first| first.is_file())
        .unwrap_or_else(|| panic!("ewfacquire {args:?} wrote no first segment"))
}

/// The hex digest `tool` (md5sum, sha1sum) gives of the file at `path`.
pub fn hex_digest(tool: &str, path: &Path) -> String {
    let out = run_ok(Command::new(tool).arg(path));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A raw disk and the container made of it, in a folder of their own (removed with them).
pub struct Made {
    pub dir: TempDir,
    pub raw: Vec<u8>,
    /// The container's (first) file.
    pub path: PathBuf,
    /// The container's bytes, as made.
    pub bytes: Vec<u8>,
}

/// With `tool` installed (else `None`, the test skipped, see [`have`]): a fresh folder, and
/// what `make` makes in it (the raw disk, say).
pub fn scratch<T>(tool: &str, make: impl FnOnce(&Path) -> T) -> Option<(TempDir, T)> {
    if !have(tool) {
        return None;
    }
    let dir = TempDir::new().unwrap();
    let made = make(dir.path());
    Some((dir, made))
}

/// With `tool` installed (else `None`, the test skipped, see [`have`]): `raw()` and the
/// container `make(folder, raw)` makes of it in a fresh folder.
pub fn made_with(
    tool: &str,
    raw: impl FnOnce() -> Vec<u8>,
    make: impl FnOnce(&Path, &[u8]) -> PathBuf,
) -> Option<Made> {
    let (dir, raw) = scratch(tool, |_| raw())?;
    let path = make(dir.path(), &raw);
    let bytes = std::fs::read(&path).unwrap();
    Some(Made {
        dir,
        raw,
        path,
        bytes,
    })
}

// ---------------------------------------------------------------------------------------
// Bytes

/// A small deterministic generator: the same "random" bytes on every run. [`Rng::new`] is
/// xorshift64 (13, 7, 17), [`Rng::star`] xorshift64*.
pub struct Rng {
    state: u64,
    star: bool,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            star: false,
        }
    }

    pub fn star(seed: u64) -> Rng {
        Rng {
            state: seed,
            star: true,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        if self.star {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        } else {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            self.state
        }
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One byte a step.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            *byte = self.next_u64() as u8;
        }
    }

    /// Eight bytes a step (little-endian).
    pub fn fill_words(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `pattern` over and over.
pub fn fill_repeating(buf: &mut [u8], pattern: &[u8]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = pattern[i % pattern.len()];
    }
}

/// The size of a [`marked_disk`].
pub const MARKED_DISK_SIZE: usize = 32 * MIB;

/// A mostly empty raw disk of 32 MiB: marked first and last sectors, a tag every 3 MiB at
/// an odd offset, random runs (some across 64 KiB and 2 MiB boundaries), a compressible run,
/// zeros elsewhere (whole MiBs of them).
pub fn marked_disk(seed: u64) -> Vec<u8> {
    let size = MARKED_DISK_SIZE;
    let mut disk = vec![0u8; size];
    let mut rng = Rng::new(seed);
    rng.fill(&mut disk[..512]);
    disk[..12].copy_from_slice(b"FIRST SECTOR");
    rng.fill(&mut disk[size - 512..]);
    disk[size - 11..].copy_from_slice(b"LAST SECTOR");
    for i in 0..size / (3 * MIB) {
        let at = i * 3 * MIB + 7 * 512 + 13;
        let tag = format!("tag {i} at byte {at}");
        disk[at..at + tag.len()].copy_from_slice(tag.as_bytes());
    }
    let runs = [
        (3 * MIB, 65536),
        (10 * MIB + 512, 3 * 512),
        (16 * MIB - 65536 - 100, 200_000),
        (24 * MIB + 300, 1),
        (30 * MIB, 700_000),
    ];
    for (at, len) in runs {
        rng.fill(&mut disk[at..at + len]);
    }
    fill_repeating(&mut disk[20 * MIB..21 * MIB], b"compressible text, ");
    disk
}

/// Adler-32, as EWF checksums its sections.
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

pub fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// One way to damage a container's bytes, for tables of cases.
pub type Damage<'a> = &'a dyn Fn(&mut Vec<u8>);

/// `value` written over the bytes at `at`.
pub fn patch(b: &mut [u8], at: usize, value: &[u8]) {
    b[at..at + value.len()].copy_from_slice(value);
}

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    patch(b, at, &v.to_le_bytes());
}

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    patch(b, at, &v.to_le_bytes());
}

pub fn put64(b: &mut [u8], at: usize, v: u64) {
    patch(b, at, &v.to_le_bytes());
}

// ---------------------------------------------------------------------------------------
// Opening

/// One format's opener (`vhd::open`, `qcow2::open`...).
pub type Open = fn(&Path, &Arc<dyn ReadAt>) -> Opening;

/// What an opener gives: `None` for a file without the format's signature.
pub type Opening = Result<Option<Opened>, ContainerError>;

pub fn image_file(path: &Path) -> Arc<dyn ReadAt> {
    Arc::new(ImageFile::open(path).unwrap())
}

pub fn in_memory(bytes: Vec<u8>) -> Arc<dyn ReadAt> {
    Arc::new(bytes)
}

/// The file at `path` opened by `open`.
pub fn open_file(open: Open, path: &Path) -> Opening {
    open(path, &image_file(path))
}

/// `bytes`, shown as `name`, opened by `open`.
pub fn open_bytes(open: Open, name: &str, bytes: Vec<u8>) -> Opening {
    open(Path::new(name), &in_memory(bytes))
}

/// The file at `path` opened by the dispatcher, as whichever container it is.
pub fn dispatch(path: &Path) -> Opening {
    container::open(path, image_file(path))
}

/// The container that opened; panics when it is not one or does not open.
pub fn must_open(result: Opening) -> Opened {
    match result {
        Ok(Some(opened)) => opened,
        Ok(None) => panic!("not recognised as a container"),
        Err(e) => panic!("not opened: {e}"),
    }
}

/// The container at `path` opened by `open` and by the dispatcher, both, which say the same
/// of it: `[direct, dispatched]`.
pub fn open_both(open: Open, path: &Path) -> [Opened; 2] {
    let direct = must_open(open_file(open, path));
    let dispatched = must_open(dispatch(path));
    assert_eq!(direct.info, dispatched.info, "{}", path.display());
    [direct, dispatched]
}

/// The error of a container that does not open; panics when it opens or is not recognised.
pub fn error_of(result: Opening) -> ContainerError {
    match result {
        Err(error) => error,
        Ok(Some(opened)) => panic!("opened: {:?}", opened.info),
        Ok(None) => panic!("not recognised"),
    }
}

/// A refusal (`Unsupported`) saying `needle`: its reason.
pub fn expect_unsupported(result: Opening, needle: &str) -> String {
    match result {
        Err(ContainerError::Unsupported { why, .. }) => {
            assert!(why.contains(needle), "{why:?} does not say {needle:?}");
            why
        }
        other => panic!(
            "expected a refusal saying {needle:?}, got {:?}",
            other.map(|o| o.map(|o| o.info))
        ),
    }
}

/// The value of the metadata labelled `label`.
pub fn metadata<'a>(opened: &'a Opened, label: &str) -> Option<&'a str> {
    value_of(&opened.info.metadata, label)
}

/// The stored hash of the disk by `algorithm` (`md5`, `sha1`).
pub fn stored_hash<'a>(opened: &'a Opened, algorithm: &str) -> Option<&'a str> {
    value_of(&opened.info.stored_hashes, algorithm)
}

fn value_of<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Whether the metadata has `label` with `value`.
pub fn has_metadata(opened: &Opened, label: &str, value: &str) -> bool {
    opened
        .info
        .metadata
        .iter()
        .any(|(l, v)| l == label && v == value)
}

// ---------------------------------------------------------------------------------------
// Reading

/// Reads `disk` from byte 0 to `end` in reads of `chunk` bytes (the last one shorter), going
/// on past failed reads: `each` is given each read's offset, result and bytes.
pub fn read_in_chunks(
    disk: &dyn ReadAt,
    chunk: usize,
    end: u64,
    mut each: impl FnMut(u64, io::Result<()>, &[u8]),
) {
    let mut buf = vec![0u8; chunk];
    let mut at = 0u64;
    while at < end {
        let n = (chunk as u64).min(end - at) as usize;
        let result = disk.read_exact_at(&mut buf[..n], at);
        each(at, result, &buf[..n]);
        at += n as u64;
    }
}

/// The failed reads of `disk` read to its end (or to `limit`) in reads of `chunk` bytes:
/// empty when every read succeeded.
pub fn read_failures(disk: &dyn ReadAt, chunk: usize, limit: u64) -> Vec<io::Error> {
    let mut failures = Vec::new();
    read_in_chunks(disk, chunk, disk.len().min(limit), |_, result, _| {
        failures.extend(result.err())
    });
    failures
}

/// `disk` is `expected`: of its size; read whole in chunks of an odd size; read around each
/// of `boundaries` (see [`assert_reads_around`]); and not readable past its end.
pub fn assert_disk_is(
    disk: &dyn ReadAt,
    expected: &[u8],
    boundaries: impl IntoIterator<Item = usize>,
    reads: &[(usize, usize)],
) {
    assert_eq!(disk.len(), expected.len() as u64, "virtual size");
    read_in_chunks(disk, MIB + 4097, disk.len(), |at, result, got| {
        let n = got.len();
        result.unwrap_or_else(|e| panic!("read of {n} bytes at {at}: {e}"));
        let at = at as usize;
        if got != &expected[at..at + n] {
            let first = (0..n).find(|&i| got[i] != expected[at + i]).unwrap();
            panic!(
                "the disk differs from the expected one at byte {}",
                at + first
            );
        }
    });
    assert_reads_around(disk, expected, boundaries, reads);
    assert_nothing_past_the_end(disk);
}

/// For each of `boundaries` and each `(before, len)` of `reads`: `len` bytes (fewer at the
/// end of the disk) read from `before` bytes ahead of the boundary equal `expected`'s. A read
/// that would start before byte 0 or at the end is left out.
pub fn assert_reads_around(
    disk: &dyn ReadAt,
    expected: &[u8],
    boundaries: impl IntoIterator<Item = usize>,
    reads: &[(usize, usize)],
) {
    let size = expected.len();
    for boundary in boundaries {
        for &(before, n) in reads {
            let Some(start) = boundary.checked_sub(before).filter(|&s| s < size) else {
                continue;
            };
            let n = n.min(size - start);
            let mut buf = vec![0u8; n];
            disk.read_exact_at(&mut buf, start as u64)
                .unwrap_or_else(|e| panic!("read of {n} bytes at {start}: {e}"));
            assert!(
                buf == expected[start..start + n],
                "{n} bytes at {start} (around {boundary}) differ"
            );
        }
    }
}

/// Reads past the end fail (one running over it, one starting at it, one at `u64::MAX`), and
/// an empty read at the end succeeds.
pub fn assert_nothing_past_the_end(disk: &dyn ReadAt) {
    let size = disk.len();
    assert!(disk.read_exact_at(&mut [0u8; 2], size - 1).is_err());
    assert!(disk.read_exact_at(&mut [0u8; 1], size).is_err());
    assert!(disk.read_exact_at(&mut [0u8; 1], u64::MAX).is_err());
    assert!(disk.read_exact_at(&mut [0u8; 2], u64::MAX).is_err());
    disk.read_exact_at(&mut [], size).unwrap();
}

/// Reads from `threads` threads at once: thread `t` reads each `(offset, len)` of
/// `reads_of(t)`, in order, and each must give those bytes of `expected`.
pub fn assert_reads_from_threads(
    disk: &dyn ReadAt,
    expected: &[u8],
    threads: usize,
    reads_of: impl Fn(usize) -> Vec<(usize, usize)> + Sync,
) {
    let reads_of = &reads_of;
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let reads = reads_of(t);
                let mut buf = vec![0u8; reads.iter().map(|&(_, n)| n).max().unwrap_or(0)];
                for (at, n) in reads {
                    disk.read_exact_at(&mut buf[..n], at as u64).unwrap();
                    assert!(
                        buf[..n] == expected[at..at + n],
                        "thread {t}: {n} bytes at {at}"
                    );
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------
// Mutations

/// The mutation loop: `rounds` copies of `base`, each changed by `edits(rng, round)` calls of
/// `edit(rng, bytes, round)`, then given to `check(rng, bytes, round)` (which opens and reads
/// them: an error is fine, a panic or a hang is not).
pub fn mutation_rounds(
    base: &[u8],
    rng: &mut Rng,
    rounds: usize,
    edits: impl Fn(&mut Rng, usize) -> usize,
    mut edit: impl FnMut(&mut Rng, &mut [u8], usize),
    mut check: impl FnMut(&mut Rng, Vec<u8>, usize),
) {
    for round in 0..rounds {
        let mut bytes = base.to_vec();
        for _ in 0..edits(rng, round) {
            edit(rng, &mut bytes, round);
        }
        check(rng, bytes, round);
    }
}

/// One to four edits a round.
pub fn one_to_four(rng: &mut Rng, _round: usize) -> usize {
    1 + rng.below(4)
}

/// Writes `bytes` at `at` of `file` (a sparse raw disk being made), on any platform.
pub fn write_at(file: &std::fs::File, bytes: &[u8], at: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}
