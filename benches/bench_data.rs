//! Writes the inputs of `benches/compare.sh` into a directory:
//!
//! - `pe1000/`: 1,000 small PE files (copies of the project's fixtures);
//! - `win10/`: a system volume holding every file the queue of the real hive
//!   `../shared/hives/regipy/SYSTEM_WIN_10_1709` names (when `../shared` exists);
//! - `ops10k/`, `ops100k/`: volumes with N files in N/333 folders and a SYSTEM hive whose queue
//!   holds N operations over them (N/2 staged renames over existing files, N/2 deletes of the
//!   staged names, which fail at boot because the renames moved them);
//! - `list100k/`: the same 100,000 files and operations as `ops100k/`, given as a servicing
//!   action list instead (`Windows/WinSxS/pending.xml`: `MoveFile` and `DeleteFile` primitives
//!   with the same paths, spelled `\SystemRoot\...` as servicing writes them), named by
//!   SYSTEM's `SetupExecute` and admitted by COMPONENTS' `PendingXmlIdentifier`; SYSTEM's rename
//!   queue is empty.
//!
//! A set whose folder exists is kept (each is written to `NAME.tmp` and renamed when
//! complete); delete a folder to have it written again.
//!
//! Run: `cargo bench --bench bench_data -- OUT_DIR` (built in release, not timed).

use std::path::{Path, PathBuf};

use nextboot::hive::{ControlSetChoice, SystemHive};
use nextboot::queue::decode_registry;
use nextboot_regf_writer::{servicing, system};

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

    std::fs::create_dir_all(&out).unwrap();
    data_set(&out, "pe1000", |pe| {
        std::fs::create_dir_all(pe).unwrap();
        for i in 0..1000 {
            std::fs::write(
                pe.join(format!("f{i:04}.dll")),
                &fixtures[i % fixtures.len()],
            )
            .unwrap();
        }
        "1000 PE files".to_string()
    });

    let real = manifest.join("../shared/hives/regipy/SYSTEM_WIN_10_1709");
    match std::fs::read(&real) {
        Ok(hive) => data_set(&out, "win10", |root| win10_volume(root, &hive, &fixtures)),
        Err(_) => eprintln!("SKIPPED win10/: ../shared/hives is absent"),
    }
    for n in [10_000, 100_000] {
        data_set(&out, &format!("ops{}k", n / 1000), |root| {
            ops_volume(root, n, &fixtures)
        });
    }
    data_set(&out, "list100k", |root| {
        list_volume(root, 100_000, &fixtures)
    });
}

/// Writes the set `name` below `out` with `write` unless it is there: into `name.tmp` first,
/// renamed once complete, so that an interrupted run leaves no half-written set behind.
/// `write` says what it wrote.
fn data_set(out: &Path, name: &str, write: impl FnOnce(&Path) -> String) {
    let done = out.join(name);
    if done.is_dir() {
        return;
    }
    let partial = out.join(format!("{name}.tmp"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).unwrap();
    }
    let summary = write(&partial);
    std::fs::rename(&partial, &done).unwrap();
    eprintln!("{name}/: {summary}");
}

/// Every path in the real queue becomes a file (sources and destinations), so that `check`
/// does the whole job: resolve, stat, read versions.
fn win10_volume(root: &Path, hive: &[u8], fixtures: &[Vec<u8>]) -> String {
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
    format!("{} operations, {count} files", queue.operations.len())
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

/// The path (below the volume root) of file `i` of the `n` files of an ops or list volume.
fn ops_path(i: usize, n: usize) -> String {
    format!("Windows\\WinSxS\\c{:04}\\f{i:06}.dll", i % ops_folders(n))
}

fn ops_folders(n: usize) -> usize {
    (n / 333).max(1)
}

/// The `n` files of an ops or list volume, in `ops_folders(n)` folders.
fn ops_files(root: &Path, n: usize, fixtures: &[Vec<u8>]) {
    for i in 0..n {
        let file = root.join(ops_path(i, n).replace('\\', "/"));
        if i < ops_folders(n) {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        }
        std::fs::write(&file, &fixtures[i % fixtures.len()]).unwrap();
    }
}

/// The operations of an ops or list volume as (source, destination) pairs of paths below the
/// volume root, in queue order: the renames of each even file over the next one, then the
/// deletes (`None`) of the same even files.
fn ops_operations(n: usize) -> Vec<(String, Option<String>)> {
    let renames = (0..n)
        .step_by(2)
        .map(|i| (ops_path(i, n), Some(ops_path(i + 1, n))));
    let deletes = (0..n).step_by(2).map(|i| (ops_path(i, n), None));
    renames.chain(deletes).collect()
}

fn ops_volume(root: &Path, n: usize, fixtures: &[Vec<u8>]) -> String {
    let config = root.join("Windows/System32/config");
    std::fs::create_dir_all(&config).unwrap();
    ops_files(root, n, fixtures);
    let drive = |path: &str| format!("\\??\\C:\\{path}");
    let pairs: Vec<(String, String)> = ops_operations(n)
        .iter()
        .map(|(source, destination)| match destination {
            Some(destination) => (drive(source), format!("!{}", drive(destination))),
            None => (drive(source), String::new()),
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(s, d)| (&**s, &**d)).collect();
    let value = system::movefile_value(&pairs);
    let mut hive = system::SystemHiveSpec::new(1);
    hive.pending_raw(1, system::PFRO, &value);
    std::fs::write(config.join("SYSTEM"), hive.bytes()).unwrap();
    format!(
        "{n} operations, {n} files in {} folders, value {} bytes",
        ops_folders(n),
        value.len()
    )
}

/// The identifier of the list and of COMPONENTS' `PendingXmlIdentifier` in `list100k/`.
const LIST_IDENTIFIER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// `ops_volume`'s files and operations as an action list at the default place, named by
/// `SetupExecute` and admitted by COMPONENTS; SYSTEM's rename queue is empty. The list's
/// `MoveFile` replaces its destination, as `!` does in the queue.
fn list_volume(root: &Path, n: usize, fixtures: &[Vec<u8>]) -> String {
    let config = root.join("Windows/System32/config");
    std::fs::create_dir_all(&config).unwrap();
    ops_files(root, n, fixtures);
    // `Windows\...` below the root is `\SystemRoot\...`.
    let nt = |path: &str| format!("\\SystemRoot{}", &path["Windows".len()..]);
    let mut primitives = String::new();
    for (source, destination) in ops_operations(n) {
        match destination {
            Some(destination) => primitives.push_str(&format!(
                "<MoveFile source=\"{}\" destination=\"{}\"/>\n",
                nt(&source),
                nt(&destination)
            )),
            None => primitives.push_str(&format!("<DeleteFile path=\"{}\"/>\n", nt(&source))),
        }
    }
    let list = servicing::action_list(LIST_IDENTIFIER, "10.0.22621.3880", &primitives);
    std::fs::write(root.join("Windows/WinSxS/pending.xml"), &list).unwrap();
    let mut system = system::SystemHiveSpec::new(1);
    servicing::setup_execute(&mut system, 1, &[servicing::POQEXEC_DEFAULT]);
    std::fs::write(config.join("SYSTEM"), system.bytes()).unwrap();
    std::fs::write(
        config.join("SOFTWARE"),
        servicing::software_hive(None).to_bytes(),
    )
    .unwrap();
    std::fs::write(
        config.join("COMPONENTS"),
        servicing::components_hive(Some(LIST_IDENTIFIER)).to_bytes(),
    )
    .unwrap();
    format!(
        "{n} operations in an action list of {} bytes, {n} files in {} folders",
        list.len(),
        ops_folders(n)
    )
}
