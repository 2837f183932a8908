//! (i) An NTFS volume read from hostile bytes: open it, list the root and the folders below
//! it (two levels), read each file's data and each link's target. Nothing may panic, hang or
//! allocate without bound; every error is an answer.
#![no_main]

use std::ffi::OsString;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::container::Disk;
use nextboot::evidence::image::ntfs::Ntfs;
use nextboot::evidence::image::ReadAt;
use nextboot::volume::{EntryKind, NtfsVolume, Volume};

fuzz_target!(|data: &[u8]| {
    let bytes: Arc<dyn ReadAt> = Arc::new(data.to_vec());
    let Ok(ntfs) = Ntfs::open(Arc::clone(&bytes)) else {
        return;
    };
    let image = Disk {
        path: "fuzz".into(),
        reader: bytes,
        container: None,
    };
    let volume = NtfsVolume::new(Arc::new(ntfs), "fuzz:".into(), Arc::new(image));
    let mut folders = vec![Vec::<OsString>::new()];
    let mut depth = 0;
    while let (Some(dir), true) = (folders.pop(), depth < 64) {
        depth += 1;
        let Ok(entries) = volume.list(&dir) else {
            continue;
        };
        let _ = volume.short_names(&dir, &entries);
        for entry in entries.into_iter().take(64) {
            let mut path = dir.clone();
            path.push(entry.name);
            let _ = volume.metadata(&path);
            match entry.kind {
                EntryKind::File => {
                    let _ = volume.open(&path);
                }
                EntryKind::Link => {
                    let _ = volume.read_link(&path);
                }
                EntryKind::Directory if path.len() <= 2 => folders.push(path),
                _ => {}
            }
        }
    }
    let _ = volume.hibernated();
});
