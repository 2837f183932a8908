//! Writes the inputs of `benches/compare.sh` into a directory:
//!
//! - `pe1000/`: 1,000 small PE files (copies of the project's fixtures);
//! - `win10/`: a system volume holding every file the queue of the real hive
//!   `../shared/hives/regipy/SYSTEM_WIN_10_1709` names (when `../shared` exists);
//! - `ops10k/`, `ops100k/`: volumes with N files in N/333 folders and a SYSTEM hive whose queue
//!   holds N operations over them (N/2 staged renames over existing files, N/2 deletes of the
//!   staged names, which fail at boot because the renames moved them).
//!
//! Run: `cargo bench --bench bench_data -- OUT_DIR` (built in release, not timed).

use std::path::{Path, PathBuf};

use nextboot::hive::{ControlSetChoice, SystemHive};
use nextboot::queue::decode_registry;
use nextboot_regf_writer::system;

const FIXTURES: [&str; 6] = [
    "file_v5.dll",
    "file_v8.dll",
    "file_v12.dll",
    "ordering_10_0.dll",
    "ordering_6_3.dll",
    "pe32_v7.dll",
];

fn main() {
    let Some(out) = std::env::args().skip(1).find(|a| !a.starts_with('-')) else {
        eprintln!("usage: cargo bench --bench bench_data -- OUT_DIR");
        std::process::exit(2);
    };
    let out = PathBuf::from(out);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures: Vec<Vec<u8>> = FIXTURES
        .iter()
        .map(|name| std::fs::read(manifest.join("testdata/pe/bin").join(name)).unwrap())
        .collect();

    let pe = out.join("pe1000");
    std::fs::create_dir_all(&pe).unwrap();
    for i in 0..1000 {
        std::fs::write(
            pe.join(format!("f{i:04}.dll")),
            &fixtures[i % fixtures.len()],
        )
        .unwrap();
    }

    let real = manifest.join("../shared/hives/regipy/SYSTEM_WIN_10_1709");
    match std::fs::read(&real) {
        Ok(hive) => win10_volume(&out.join("win10"), &hive, &fixtures),
        Err(_) => eprintln!("SKIPPED win10/: ../shared/hives is absent"),
    }
    for n in [10_000, 100_000] {
        ops_volume(&out.join(format!("ops{}k", n / 1000)), n, &fixtures);
    }
}

/// Every path in the real queue becomes a file (sources and destinations), so that `check`
/// does the whole job: resolve, stat, read versions.
fn win10_volume(root: &Path, hive: &[u8], fixtures: &[Vec<u8>]) {
    let system = SystemHive::read(hive).unwrap();
    let set = system.choose_control_set(ControlSetChoice::Next).unwrap();
    let queue = decode_registry(&system.control_set(set).unwrap().pending);
    std::fs::create_dir_all(root).unwrap();
    let mut count = 0;
    for (i, op) in queue.operations.iter().enumerate() {
        let paths =
            std::iter::once(op.source.path()).chain(op.destination.as_ref().map(|d| d.path()));
        for path in paths {
            let Some(relative) = path.strip_prefix("\\??\\C:\\") else {
                continue;
            };
            let file = create_path(root, relative);
            if !file.exists() {
                std::fs::write(&file, &fixtures[i % fixtures.len()]).unwrap();
                count += 1;
            }
        }
    }
    std::fs::write(create_path(root, "Windows\\System32\\config\\SYSTEM"), hive).unwrap();
    eprintln!(
        "win10/: {} operations, {count} files",
        queue.operations.len()
    );
}

/// Creates the folders of a Windows path below `root`, reusing existing folders whatever their
/// case (the queue spells `WINDOWS`, `Windows` and `windows` for one folder); returns the path.
fn create_path(root: &Path, windows_path: &str) -> PathBuf {
    let mut path = root.to_path_buf();
    let parts: Vec<&str> = windows_path.split('\\').collect();
    for (i, part) in parts.iter().enumerate() {
        let existing = std::fs::read_dir(&path).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name())
                .find(|name| name.to_string_lossy().eq_ignore_ascii_case(part))
        });
        path.push(existing.unwrap_or_else(|| part.into()));
        if i + 1 < parts.len() {
            std::fs::create_dir_all(&path).unwrap();
        }
    }
    path
}

fn ops_volume(root: &Path, n: usize, fixtures: &[Vec<u8>]) {
    let config = root.join("Windows/System32/config");
    std::fs::create_dir_all(&config).unwrap();
    let dirs = (n / 333).max(1);
    let path = |i: usize| format!("Windows\\WinSxS\\c{:04}\\f{i:06}.dll", i % dirs);
    for i in 0..n {
        let file = root.join(path(i).replace('\\', "/"));
        if i < dirs {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        }
        std::fs::write(&file, &fixtures[i % fixtures.len()]).unwrap();
    }
    let drive = |i: usize| format!("\\??\\C:\\{}", path(i));
    let renames = (0..n)
        .step_by(2)
        .map(|i| (drive(i), format!("!{}", drive(i + 1))));
    let deletes = (0..n).step_by(2).map(|i| (drive(i), String::new()));
    let pairs: Vec<(String, String)> = renames.chain(deletes).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(s, d)| (&**s, &**d)).collect();
    let value = system::movefile_value(&pairs);
    let mut hive = system::SystemHiveSpec::new(1);
    hive.pending_raw(1, system::PFRO, &value);
    std::fs::write(config.join("SYSTEM"), hive.bytes()).unwrap();
    eprintln!(
        "{}: {n} operations, {n} files in {dirs} folders, value {} bytes",
        root.display(),
        value.len()
    );
}
