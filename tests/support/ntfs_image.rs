//! NTFS disk images built on the fly by `testdata/images/build.py` (mkntfs, an ntfs-3g FUSE
//! mount, sfdisk), each with its oracle manifest, and cached in `target/test-images/`.
//!
//! [`build_image`] takes the spec of `testdata/images/README.md`, where a partition's
//! `source` names one of the `sources` (a host directory whose tree is copied in). The
//! image is `target/test-images/<key>.img` and its manifest `<key>.json` beside it, where
//! the key is the SHA-256 of the spec, of build.py's bytes and of the source trees' names
//! and contents: a second call with the same inputs returns at once, and a change to any
//! of them builds anew. Images are built under a temporary name and renamed into place,
//! one build of a key at a time (a `flock` on `<key>.lock`), so tests running in parallel
//! never see half an image, nor one build's image with another's manifest.
//!
//! Where this machine cannot build images (a tool missing, FUSE or loop devices refused)
//! [`build_image`] returns `Err` with a plain message, which [`skip_or_fail`] prints (or,
//! when `CI` is set, fails the test with); any other failure of the builder, such as an
//! image that is not what the spec asked, panics.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A built (or cached) image and its manifest.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub image: PathBuf,
    pub manifest: Value,
}

impl BuiltImage {
    /// The manifest's entry of partition `index` (0-based, in spec order).
    pub fn partition(&self, index: usize) -> &Value {
        &self.manifest["partitions"][index]
    }

    /// The manifest's entry of the file `path` (as in the spec: `/`-separated, relative to
    /// the volume root) of partition `index`.
    pub fn file(&self, index: usize, path: &str) -> Option<&Value> {
        self.partition(index)["files"]
            .as_array()?
            .iter()
            .find(|f| f["path"] == path)
    }

    /// The manifest's reports of the specials of this kind in partition `index`.
    pub fn specials(&self, index: usize, kind: &str) -> Vec<&Value> {
        self.partition(index)["specials"]
            .as_array()
            .map(|all| all.iter().filter(|s| s["kind"] == kind).collect())
            .unwrap_or_default()
    }

    /// `len` bytes of the image at `offset`.
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        read_at(&self.image, offset, len)
    }

    /// The byte offset of partition `index` in the image.
    pub fn offset(&self, index: usize) -> u64 {
        self.partition(index)["offset"]
            .as_u64()
            .expect("partition offset")
    }
}

/// Says that a test cannot run on this machine, and why: a failure when `CI` is set (CI
/// must build the images), a printed skip elsewhere.
pub fn skip_or_fail(why: &str) {
    let test = std::thread::current().name().unwrap_or("test").to_string();
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why} (CI must be able to build NTFS test images)");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// [`build_image`], or `None` after [`skip_or_fail`] where images cannot be built here.
pub fn build_or_skip(spec: &Value, sources: &[(&str, &Path)]) -> Option<BuiltImage> {
    match build_image(spec, sources) {
        Ok(image) => Some(image),
        Err(why) => {
            skip_or_fail(&why);
            None
        }
    }
}

/// `testdata/images/build.py`.
pub fn builder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/images/build.py")
}

/// Where images are cached: `$NEXTBOOT_TEST_IMAGES`, else `test-images` in the target dir.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEXTBOOT_TEST_IMAGES") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(t)
            }
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-images")
}

/// Builds the image of `spec` (or finds it in the cache). Each partition's `source`, when
/// present, must be the name of one of `sources`.
pub fn build_image(spec: &Value, sources: &[(&str, &Path)]) -> Result<BuiltImage, String> {
    let builder = builder();
    let script = std::fs::read(&builder).map_err(|e| format!("{}: {e}", builder.display()))?;

    // The spec as build.py gets it: source names replaced by their absolute paths.
    let mut resolved = spec.clone();
    let mut used: BTreeMap<String, PathBuf> = BTreeMap::new();
    if let Some(parts) = resolved["partitions"].as_array_mut() {
        for part in parts {
            let Some(name) = part
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                continue;
            };
            let (_, dir) = sources
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("spec names source {name:?}, not given"));
            let dir = std::fs::canonicalize(dir)
                .unwrap_or_else(|e| panic!("source {name:?} ({}): {e}", dir.display()));
            part["source"] = Value::String(dir.to_string_lossy().into_owned());
            used.insert(name, dir);
        }
    }

    let mut key = Sha256::new();
    key.update(b"spec\0");
    key.update(serde_json::to_vec(spec).expect("spec to JSON"));
    key.update(b"\0build.py\0");
    key.update(&script);
    for (name, dir) in &used {
        key.update(b"\0source\0");
        key.update(name.as_bytes());
        hash_tree(&mut key, dir);
    }
    let key = hex(&key.finalize());

    let dir = cache_dir();
    let image = dir.join(format!("{key}.img"));
    let manifest_path = dir.join(format!("{key}.json"));
    if let Some(built) = load(&image, &manifest_path) {
        return Ok(built);
    }

    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // One builder per key at a time (threads and processes alike): two builds of one spec
    // differ (serials, GUIDs), and a test must never get one's image with the other's
    // manifest. The others wait, then find the image in the cache.
    let _lock = lock(&dir.join(format!("{key}.lock")))?;
    if let Some(built) = load(&image, &manifest_path) {
        return Ok(built);
    }
    let work = tempfile::Builder::new()
        .prefix(&format!("{key}.tmp-"))
        .tempdir_in(&dir)
        .map_err(|e| format!("temporary directory in {}: {e}", dir.display()))?;
    let spec_path = work.path().join("spec.json");
    let out = work.path().join("image.img");
    let out_manifest = work.path().join("manifest.json");
    std::fs::write(
        &spec_path,
        serde_json::to_vec_pretty(&resolved).expect("spec to JSON"),
    )
    .expect("write spec");
    let output = match Command::new("python3")
        .arg(&builder)
        .arg(&spec_path)
        .arg(&out)
        .arg(&out_manifest)
        .output()
    {
        Ok(output) => output,
        Err(e) => return Err(format!("cannot run python3 for build.py: {e}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(stderr
                .lines()
                .next()
                .unwrap_or("build.py cannot build images here")
                .to_string())
        }
        _ => panic!(
            "testdata/images/build.py failed ({}) on\n{}\n{stderr}",
            output.status,
            serde_json::to_string_pretty(&resolved).unwrap()
        ),
    }
    // The image first: a manifest in the cache means its image is there.
    std::fs::rename(&out, &image).expect("move the image into the cache");
    std::fs::rename(&out_manifest, &manifest_path).expect("move the manifest into the cache");
    Ok(load(&image, &manifest_path).expect("the image just built"))
}

/// An exclusive `flock` on `path`, held until the file is dropped (or the process ends).
fn lock(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        loop {
            // SAFETY: a valid open file descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("lock {}: {err}", path.display()));
            }
        }
    }
    Ok(file)
}

fn load(image: &Path, manifest: &Path) -> Option<BuiltImage> {
    let text = std::fs::read(manifest).ok()?;
    if !image.is_file() {
        return None;
    }
    Some(BuiltImage {
        image: image.to_path_buf(),
        manifest: serde_json::from_slice(&text).ok()?,
    })
}

/// Every directory and file under `dir` (names and contents), in a fixed order.
fn hash_tree(hasher: &mut Sha256, dir: &Path) {
    for (rel, path) in tree(dir, true) {
        if path.is_dir() {
            hasher.update(b"\0dir\0");
            hasher.update(rel.as_bytes());
        } else {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            hasher.update(b"\0file\0");
            hasher.update(rel.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
}

/// The entries under `dir` as (`/`-separated relative path, host path), sorted by path;
/// directories too when `dirs`.
pub fn tree(dir: &Path, dirs: bool) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        if entry.file_type().is_dir() && !dirs {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("under dir")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        out.push((rel, entry.path().to_path_buf()));
    }
    out
}

/// Size and SHA-256 of every file under `dir`, by `/`-separated relative path.
pub fn tree_digests(dir: &Path) -> BTreeMap<String, (u64, String)> {
    tree(dir, false)
        .into_iter()
        .map(|(rel, path)| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (rel, (bytes.len() as u64, sha256_hex(&bytes)))
        })
        .collect()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}

/// `len` bytes of a file at `offset` (fewer at its end).
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.seek(SeekFrom::Start(offset)).expect("seek");
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf).expect("read");
    buf
}

/// Writes `bytes` to `root/relative`, parents created.
pub fn put(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A GUID's text (`AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE`) as the 16 bytes Windows stores
/// (the first three groups little-endian), as in a GPT entry and in MountedDevices.
pub fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// Partition `index` of an image, copied out to a file of its own and mounted read-only
/// with ntfs-3g (which cannot mount at an offset); unmounted on drop. The oracle the image
/// reader is compared with: the same volume, read by another implementation, as a directory.
pub struct Mounted {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Mounted {
    pub fn new(img: &BuiltImage, index: usize) -> Result<Mounted, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let volume = dir.path().join("volume.img");
        let offset = img.offset(index);
        let size = img.partition(index)["size"]
            .as_u64()
            .expect("partition size");
        let mut from = std::fs::File::open(&img.image).map_err(|e| e.to_string())?;
        from.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        let mut to = std::fs::File::create(&volume).map_err(|e| e.to_string())?;
        std::io::copy(&mut from.take(size), &mut to).map_err(|e| e.to_string())?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let out = Command::new("ntfs-3g")
            .arg("-o")
            .arg("ro")
            .arg(&volume)
            .arg(&path)
            .output()
            .map_err(|e| format!("ntfs-3g: {e}"))?;
        if !out.status.success() {
            return Err(format!("ntfs-3g: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(Mounted { _dir: dir, path })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
