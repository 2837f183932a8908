//! Evidence is never written and never has its access time changed.
//!
//! A scenario volume (a dirty SYSTEM hive with its transaction logs, PE files) has every
//! file's and folder's access time set older than its modification time first: on a
//! `relatime` mount (the Linux default) that is exactly the state in which a plain read
//! updates the access time, so the test can tell. Then `check` (every format, `--hash all`),
//! `version` and `recover` (to a file outside the volume) run over it; afterwards every input
//! has the same bytes, modification time and access time, and no file or folder was added
//! anywhere in the volume.
//!
//! Whether the access-time part means anything depends on the mount: the test first checks
//! that a plain read does update an access time in the same folder, and says SKIPPED for that
//! part when it does not (a `noatime` mount, or a file system without access times).

#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use support::regf::{multi_sz, HiveWriter, REG_DWORD, REG_MULTI_SZ};
use support::regf_log::NewLogWriter;
use support::{nextboot, Scenario};

/// Access time one day before the modification time (seconds, nanoseconds).
fn age_atime(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let times = [
        libc::timespec {
            tv_sec: meta.mtime() - 86_400,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    ];
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and two timespecs, as utimensat(2) takes them.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// What must not change about one entry of the volume.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    kind: &'static str,
    bytes: Option<Vec<u8>>,
    mtime: (i64, i64),
    atime: (i64, i64),
}

/// Every entry under `root` (root itself included), by path. Reading a file's bytes here goes
/// through `O_NOATIME`, so taking the snapshot does not change what it records.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, State> {
    let mut states = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = if meta.file_type().is_symlink() {
            "link"
        } else if meta.is_dir() {
            "dir"
        } else {
            "file"
        };
        let bytes = (kind == "file").then(|| read_noatime(&path));
        // The metadata again, after reading: it must not have moved.
        let after = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            (meta.atime(), meta.atime_nsec()),
            (after.atime(), after.atime_nsec()),
            "the snapshot itself changed the access time of {}",
            path.display()
        );
        states.insert(
            path.clone(),
            State {
                kind,
                bytes,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                atime: (meta.atime(), meta.atime_nsec()),
            },
        );
        if kind == "dir" {
            // Listing through the O_NOATIME descriptor of the folder itself.
            for name in list_noatime(&path) {
                pending.push(path.join(name));
            }
        }
    }
    states
}

fn read_noatime(path: &Path) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
        .unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

/// The names in a folder, read with `O_NOATIME` (getdents on an O_NOATIME descriptor).
fn list_noatime(dir: &Path) -> Vec<std::ffi::OsString> {
    let c_path = CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the descriptor is handed to fdopendir, which owns it
    // from then on and closes it in closedir.
    unsafe {
        let fd = libc::open(
            c_path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOATIME | libc::O_CLOEXEC,
        );
        assert!(fd >= 0, "open {}", dir.display());
        let stream = libc::fdopendir(fd);
        assert!(!stream.is_null());
        let mut names = Vec::new();
        loop {
            let entry = libc::readdir(stream);
            if entry.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*entry).d_name.as_ptr());
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(OsStr::from_bytes(bytes).to_os_string());
            }
        }
        libc::closedir(stream);
        names
    }
}

/// Whether reading a file the ordinary way updates its access time in `dir` (given an access
/// time older than its modification time): if not, access times prove nothing here.
fn plain_read_updates_atime(dir: &Path) -> bool {
    let probe = dir.join("atime-probe");
    std::fs::write(&probe, b"probe").unwrap();
    age_atime(&probe);
    let before = std::fs::metadata(&probe).unwrap().atime();
    let _ = std::fs::read(&probe).unwrap();
    let after = std::fs::metadata(&probe).unwrap().atime();
    std::fs::remove_file(&probe).unwrap();
    after != before
}

const SESSION_MANAGER: &str = "ControlSet001\\Control\\Session Manager";

/// A scenario volume: a dirty SYSTEM hive with new-format logs (recovering it applies the
/// queue), PE files that queue names, and a link.
fn volume() -> Scenario {
    let mut old = HiveWriter::new("ROOT");
    old.sequence_numbers(7, 7);
    for (name, value) in [("Current", 1u32), ("Default", 1), ("LastKnownGood", 1)] {
        old.value("Select", name, REG_DWORD, &value.to_le_bytes());
    }
    old.value(
        SESSION_MANAGER,
        support::PFRO,
        REG_MULTI_SZ,
        &multi_sz(&["\\??\\C:\\Windows\\Temp\\old.log", ""]),
    );
    let mut new = old.clone();
    new.value(
        SESSION_MANAGER,
        support::PFRO,
        REG_MULTI_SZ,
        &multi_sz(&[
            "\\??\\C:\\Windows\\System32\\SET1.tmp",
            "!\\??\\C:\\Windows\\System32\\File.dll",
            "\\??\\C:\\Windows\\System32\\SET2.tmp",
            "!\\??\\C:\\Windows\\System32\\helper.dll",
            "\\??\\C:\\Windows\\Temp\\old.log",
            "",
        ]),
    );
    let dirty = NewLogWriter::new(&old.to_bytes(), &new.to_bytes()).build();
    let mut s = Scenario::new();
    s.replace_hive(dirty.primary.clone());
    s.write_hive();
    s.write("Windows/System32/config/SYSTEM.LOG1", &dirty.log1);
    s.write("Windows/System32/config/SYSTEM.LOG2", &dirty.log2);
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.put("Windows/System32/helper.dll", "file_v5.dll");
    s.put("Windows/System32/SET2.tmp", "pe32_v7.dll");
    s.write("Windows/Temp/old.log", b"a log\n");
    std::os::unix::fs::symlink("System32", s.root().join("Windows/sys")).unwrap();
    s
}

/// Runs every command that reads the volume at `root`: `check` in every format with
/// `--hash all`, `version` on the PE files, `recover` to a file in `outside`.
fn run_every_command(root: &Path, outside: &Path) {
    let root_arg = root.as_os_str();
    for format in ["table", "json", "jsonl", "csv", "yaml"] {
        let (status, stdout, stderr) = nextboot(&[
            "check".as_ref(),
            root_arg,
            "--format".as_ref(),
            format.as_ref(),
            "--hash".as_ref(),
            "all".as_ref(),
        ]);
        assert_eq!(
            status, 1,
            "{format}: a downgrade is queued\n{stdout}{stderr}"
        );
        assert!(!stdout.is_empty(), "{format}");
    }
    let pe_files: Vec<PathBuf> = ["File.dll", "SET1.tmp", "helper.dll", "SET2.tmp"]
        .iter()
        .map(|name| root.join("Windows/System32").join(name))
        .collect();
    let mut args: Vec<&OsStr> = vec!["version".as_ref(), "--sha256".as_ref()];
    args.extend(pe_files.iter().map(|p| p.as_os_str()));
    for format in ["table", "json"] {
        let mut with_format = args.clone();
        with_format.extend([OsStr::new("--format"), OsStr::new(format)]);
        let (status, _, stderr) = nextboot(&with_format);
        assert_eq!(status, 0, "version {format}: {stderr}");
    }
    let out = outside.join("SYSTEM.recovered");
    let hive = root.join("Windows/System32/config/SYSTEM");
    let (status, stdout, stderr) = nextboot(&[
        "recover".as_ref(),
        hive.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(
        out.is_file(),
        "the recovered hive is written outside the volume"
    );
    // And `recover` refuses to write over an input.
    let (status, _, _) = nextboot(&[
        "recover".as_ref(),
        hive.as_os_str(),
        "--out".as_ref(),
        hive.as_os_str(),
    ]);
    assert_eq!(status, 2);
}

/// Ages every access time under the volume, runs every command, and returns what changed
/// (files and folders separately), or `None` for the access times when they prove nothing on
/// this mount.
fn changes_after_every_command() -> (Vec<String>, Vec<String>) {
    let s = volume();
    let root = s.root().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    let atime_meaningful = plain_read_updates_atime(&root);
    if !atime_meaningful {
        support::skip(
            "evidence_safety (access times)",
            "a plain read does not update access times on this mount (noatime?)",
        );
    }
    for path in snapshot(&root).keys() {
        if !std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_symlink()
        {
            age_atime(path);
        }
    }
    let before = snapshot(&root);
    run_every_command(&root, outside.path());
    let after = snapshot(&root);

    let mut files = Vec::new();
    let mut folders = Vec::new();
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        files.push(format!("{}: new in the volume", path.display()));
    }
    for (path, was) in &before {
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let Some(now) = after.get(path) else {
            files.push(format!("{shown}: gone from the volume"));
            continue;
        };
        if was.kind != now.kind {
            files.push(format!("{shown}: was a {}, is a {}", was.kind, now.kind));
        }
        if was.bytes != now.bytes {
            files.push(format!("{shown}: its bytes were written"));
        }
        if was.mtime != now.mtime {
            files.push(format!("{shown}: modification time changed"));
        }
        if atime_meaningful && was.kind != "link" && was.atime != now.atime {
            let list = if was.kind == "dir" {
                &mut folders
            } else {
                &mut files
            };
            list.push(format!("{shown} ({}): access time changed", was.kind));
        }
    }
    (files, folders)
}

/// Files: same bytes, modification and access times; nothing added, removed or modified
/// anywhere in the volume (folders' modification times included).
#[test]
fn reading_evidence_changes_nothing() {
    let (files, _) = changes_after_every_command();
    assert!(files.is_empty(), "evidence changed:\n{}", files.join("\n"));
}

/// Folders' access times too. Listing a folder reads it: the hive stage lists the hive's
/// folder through `evidence::list_dir` (O_NOATIME), but the volume stage
/// (`DirVolume::list`, walkdir) still opens folders without O_NOATIME, so on a relatime
/// mount every folder a queue path goes through gets a new access time. Remove the ignore
/// when `DirVolume::list` uses `evidence::list_dir` (docs/hardening.md).
#[test]
fn reading_evidence_keeps_folder_access_times() {
    let (files, folders) = changes_after_every_command();
    assert!(files.is_empty(), "evidence changed:\n{}", files.join("\n"));
    assert!(
        folders.is_empty(),
        "folders changed:\n{}",
        folders.join("\n")
    );
}

/// The check is not vacuous: the same snapshot does see a plain read.
#[test]
fn the_snapshot_sees_a_plain_read() {
    let s = volume();
    let root = s.root();
    if !plain_read_updates_atime(root) {
        support::skip(
            "the_snapshot_sees_a_plain_read",
            "a plain read does not update access times on this mount (noatime?)",
        );
        return;
    }
    let file = root.join("Windows/System32/File.dll");
    age_atime(&file);
    let before = snapshot(root);
    let _ = std::fs::read(&file).unwrap();
    let after = snapshot(root);
    assert_ne!(before[&file].atime, after[&file].atime);
}

/// `set_no_mmap`: evidence read into memory survives the file shrinking underneath, where a
/// mapping would end the process with SIGBUS.
#[test]
fn read_mode_survives_a_file_that_shrinks() {
    use nextboot::evidence::{no_mmap, set_no_mmap, Evidence};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinks.dll");
    let data = std::fs::read(support::pe("file_v8.dll")).unwrap();
    std::fs::write(&path, &data).unwrap();
    set_no_mmap(true);
    assert!(no_mmap());
    let evidence = Evidence::open(&path).unwrap();
    set_no_mmap(false);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Every byte is still readable, and still the file as it was.
    assert_eq!(&evidence[..], &data[..]);
    let version = nextboot::version::read_pe_version(&evidence).unwrap();
    assert_eq!(
        version.file_version().map(|v| v.to_string()).as_deref(),
        Some("8.0.2195.6")
    );
}
