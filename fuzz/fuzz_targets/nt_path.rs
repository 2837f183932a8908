//! (e) NT path resolution: arbitrary strings through `parse_nt_path` and `Volumes::resolve`
//! against a small directory tree made once, with a link inside it, links pointing out of it
//! (absolute and relative), and a link loop. Whatever resolves must name a real entry under the
//! tree's root through no link: resolution never leaves the tree.
#![no_main]

use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nextboot::volume::{parse_nt_path, DirVolume, EntryKind, Volumes};

struct Tree {
    root: PathBuf,
    volumes: Volumes,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("nextboot-fuzz-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("volume");
        for dir in [
            "Windows/System32/config",
            "Windows/System32/drivers",
            "Program Files/Common Files",
            "Program Files (x86)",
            "Case/sub",
        ] {
            std::fs::create_dir_all(root.join(dir)).expect("make the tree");
        }
        for file in [
            "Windows/System32/config/SYSTEM",
            "Windows/System32/kernel32.dll",
            "Windows/System32/drivers/x.sys",
            "Program Files/Common Files/A Long File Name.txt",
            "Program Files/Common Files/A Long File Nam2.txt",
            "Case/File.txt",
            "Case/FILE.TXT",
            "straße.dll",
        ] {
            std::fs::write(root.join(file), b"x").expect("make a file");
        }
        std::fs::write(base.join("secret"), b"outside").expect("make the outside file");
        symlink("System32", root.join("Windows/sys")).expect("link inside");
        symlink("/Windows/System32/drivers", root.join("Windows/abs")).expect("absolute link");
        symlink(&base, root.join("Windows/host")).expect("link to the host folder");
        symlink("../../..", root.join("Windows/System32/up")).expect("link up and out");
        symlink("../secret", root.join("escape")).expect("link to a file outside");
        symlink("loop", root.join("loop")).expect("link loop");
        symlink("a/b", root.join("Case/sub/dangling")).expect("dangling link");
        symlink("..\\..\\..", root.join("Case/backslashes")).expect("link with backslashes");
        let root = root.canonicalize().expect("canonical root");
        let mut volumes = Volumes::new('C');
        volumes.add_drive('C', Box::new(DirVolume::new(&root)));
        volumes.add_drive('D', Box::new(DirVolume::new(root.join("Program Files"))));
        volumes.add_device(3, Box::new(DirVolume::new(&root)));
        volumes.set_volume_guids(HashMap::from([("1234-ABCD".to_string(), 'C')]));
        volumes.find_windows_dir();
        Tree { root, volumes }
    })
}

/// The host path of `names` under `root`, checked to be a real entry reached through no link.
fn check_inside(root: &Path, names: &[std::ffi::OsString], kind: EntryKind) {
    let mut path = root.to_path_buf();
    for name in names {
        assert!(
            !name.is_empty()
                && name != "."
                && name != ".."
                && !name.to_string_lossy().contains('/'),
            "component {name:?}"
        );
        path.push(name);
        let meta = std::fs::symlink_metadata(&path).expect("resolved entries exist");
        assert!(
            !meta.file_type().is_symlink(),
            "resolved through a link: {}",
            path.display()
        );
    }
    let canonical = path.canonicalize().expect("canonical");
    assert!(
        canonical.starts_with(root),
        "{} left the tree",
        canonical.display()
    );
    let meta = std::fs::symlink_metadata(&path).expect("exists");
    match kind {
        EntryKind::File => assert!(meta.is_file()),
        EntryKind::Directory => assert!(meta.is_dir()),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tree = tree();
    let parsed = parse_nt_path(&text);
    let resolved = tree.volumes.resolve(&text);
    if parsed.is_err() {
        assert!(
            resolved.is_err(),
            "resolve accepted what parse_nt_path refused: {text:?}"
        );
    }
    if let Ok(resolved) = resolved {
        if let Some(entry) = &resolved.entry {
            // Drive D: is "Program Files"; every other anchor is the whole tree.
            let mount_root = if Some(resolved.key.mount()) == tree.volumes.mount_index('D') {
                tree.root.join("Program Files")
            } else {
                tree.root.clone()
            };
            check_inside(&mount_root, &entry.names(), entry.kind);
            assert_eq!(entry.names().len(), resolved.key.components().count());
            let again = tree
                .volumes
                .stat(&resolved.key)
                .expect("a resolved key stats");
            assert_eq!(
                again.as_ref(),
                Some(entry),
                "stat disagrees with resolve for {text:?}"
            );
        }
    }
    // The listing cache holds only folders of the tree.
    assert!(tree.volumes.listings_read() < 64);
});
