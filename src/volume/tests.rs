//! The [`Volume`] contract, checked on [`DirVolume`]; a second implementation is held to the
//! same checks over a volume of the same content.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use super::{DirVolume, EntryKind, EntryMetadata, Volume};

const CONTENT: &[u8] = b"content";

/// The volume the contract is checked on: `Windows\System32\ntdll.dll` ([`CONTENT`]), an
/// empty `Windows\empty.txt`, a folder `Program Files`, and on Unix a link
/// `sys` -> `Windows/System32` and a FIFO `fifo`.
fn fixture(root: &Path) {
    std::fs::create_dir_all(root.join("Windows/System32")).unwrap();
    std::fs::create_dir(root.join("Program Files")).unwrap();
    std::fs::write(root.join("Windows/System32/ntdll.dll"), CONTENT).unwrap();
    std::fs::write(root.join("Windows/empty.txt"), b"").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("Windows/System32", root.join("sys")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
            .unwrap();
        // SAFETY: a NUL-terminated path; the result is checked.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    }
}

fn path(parts: &[&str]) -> Vec<OsString> {
    parts.iter().map(OsString::from).collect()
}

fn not_found<T: std::fmt::Debug>(result: io::Result<T>) -> bool {
    matches!(result, Err(err) if err.kind() == io::ErrorKind::NotFound)
}

/// Every method of [`Volume`] against the [`fixture`] content.
fn meets_the_contract(volume: &dyn Volume) {
    let mut root: Vec<(OsString, EntryKind)> = volume
        .list(&[])
        .unwrap()
        .into_iter()
        .map(|entry| (entry.name, entry.kind))
        .collect();
    root.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        ("Program Files", EntryKind::Directory),
        ("Windows", EntryKind::Directory),
    ];
    if cfg!(unix) {
        expected.extend([("fifo", EntryKind::Other), ("sys", EntryKind::Link)]);
    }
    let expected: Vec<(OsString, EntryKind)> = expected
        .into_iter()
        .map(|(name, kind)| (name.into(), kind))
        .collect();
    assert_eq!(root, expected);
    // A listing and the metadata of each entry agree; the root is a directory.
    for (name, kind) in &root {
        let meta = volume.metadata(std::slice::from_ref(name)).unwrap();
        assert_eq!(meta.kind, *kind, "{name:?}");
    }
    let folder = EntryMetadata {
        kind: EntryKind::Directory,
        size: None,
    };
    assert_eq!(volume.metadata(&[]).unwrap(), folder);
    assert_eq!(volume.metadata(&path(&["Windows"])).unwrap(), folder);
    let dll = path(&["Windows", "System32", "ntdll.dll"]);
    let file = EntryMetadata {
        kind: EntryKind::File,
        size: Some(CONTENT.len() as u64),
    };
    assert_eq!(volume.metadata(&dll).unwrap(), file);
    let empty = path(&["Windows", "empty.txt"]);
    assert_eq!(volume.metadata(&empty).unwrap().size, Some(0));

    // Nothing there: NotFound, from every method.
    let missing = path(&["Windows", "missing"]);
    assert!(not_found(volume.list(&missing)));
    assert!(not_found(volume.metadata(&missing)));
    assert!(not_found(volume.open(&missing)));
    assert!(not_found(volume.metadata(&path(&["missing", "below"]))));
    // Something there, but not a folder to list or a file to read.
    assert!(volume.list(&empty).is_err());
    assert!(volume.open(&path(&["Windows"])).is_err());

    assert_eq!(&volume.open(&dll).unwrap()[..], CONTENT);
    assert!(volume.open(&empty).unwrap().is_empty());
    if cfg!(unix) {
        // Refused, not waited on.
        assert!(volume.open(&path(&["fifo"])).is_err());
        let target = volume.read_link(&path(&["sys"])).unwrap();
        assert_eq!(target, Path::new("Windows/System32"));
        assert!(volume.read_link(&dll).is_err());
    }

    let windows = path(&["Windows"]);
    let entries = volume.list(&windows).unwrap();
    if let Some(shorts) = volume.short_names(&windows, &entries) {
        assert_eq!(shorts.len(), entries.len());
    }
    assert_eq!(volume.display(&dll), volume.display(&dll));
    assert_ne!(volume.display(&dll), volume.display(&windows));
}

#[test]
fn a_host_directory_meets_the_volume_contract() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let volume = DirVolume::new(dir.path());
    meets_the_contract(&volume);
    assert_eq!(volume.host_root(), Some(dir.path()));
    // Shown as its host path.
    let host = dir
        .path()
        .join("Windows")
        .join("System32")
        .join("ntdll.dll");
    let dll = path(&["Windows", "System32", "ntdll.dll"]);
    assert_eq!(volume.display(&dll), host.display().to_string());
}

#[cfg(unix)]
#[test]
fn a_host_directory_reached_through_a_link_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("linked")).unwrap();
    let volume = DirVolume::new(dir.path().join("linked"));
    assert_eq!(volume.metadata(&[]).unwrap().kind, EntryKind::Directory);
}
