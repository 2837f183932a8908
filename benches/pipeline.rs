//! Criterion benchmarks of each stage on generated inputs. The full comparison against other
//! tools is `benches/compare.sh` (issue 6).

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use nextboot::boot::{replay, ReplayOptions};
use nextboot::commands::check::{check, CheckOptions, HashMode};
use nextboot::evidence::Evidence;
use nextboot::hive::log::{recover, LogFile};
use nextboot::hive::{RawValue, SystemHive};
use nextboot::queue::action_list::read_action_list;
use nextboot::queue::{decode_action_list, decode_registry};
use nextboot::report::{self, Format, Style};
use nextboot::volume::{DirVolume, Volumes};
use nextboot_regf_writer::system;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn queue_value(operations: usize) -> Vec<u8> {
    let pairs: Vec<(String, String)> = (0..operations)
        .map(|i| {
            (
                format!("\\??\\C:\\Windows\\WinSxS\\Temp\\PendingRenames\\{i:06}.dll"),
                format!("!\\??\\C:\\Windows\\System32\\d{}\\f{i:06}.dll", i % 100),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(s, d)| (&**s, &**d)).collect();
    system::movefile_value(&pairs)
}

/// The same operations as `queue_value`'s, as an action list's MoveFile primitives.
fn action_list_xml(operations: usize) -> Vec<u8> {
    let mut xml = String::from(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PendingTransaction Version=\"3.1\" Identifier=\"0123456789abcdef0123456789abcdef\">\n<POQ postAction=\"reboot\">\n",
    );
    for i in 0..operations {
        xml.push_str(&format!(
            "<MoveFile source=\"\\??\\C:\\Windows\\WinSxS\\Temp\\PendingRenames\\{i:06}.dll\" destination=\"\\??\\C:\\Windows\\System32\\d{}\\f{i:06}.dll\"/>\n",
            i % 100
        ));
    }
    xml.push_str("</POQ>\n</PendingTransaction>\n");
    xml.into_bytes()
}

fn hive_with_queue(operations: usize) -> Vec<u8> {
    let mut hive = system::SystemHiveSpec::new(1);
    hive.pending_raw(1, system::PFRO, &queue_value(operations));
    hive.bytes()
}

fn hive_and_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("hive_open_and_queue_decode");
    for size in SIZES {
        let hive = Evidence::from_vec("SYSTEM".into(), hive_with_queue(size));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &hive, |b, hive| {
            b.iter(|| {
                let system = SystemHive::read(hive).unwrap();
                decode_registry(&system.control_sets[0].pending)
                    .operations
                    .len()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("queue_decode");
    for size in SIZES {
        let value = [RawValue {
            name: "PendingFileRenameOperations".into(),
            data_type: 7,
            bytes: queue_value(size),
        }];
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &value, |b, value| {
            b.iter(|| decode_registry(black_box(value)).operations.len())
        });
    }
    group.finish();

    // The same operations as an action list: read (XML) and decoded.
    let mut group = c.benchmark_group("action_list_read_and_decode");
    for size in SIZES {
        let xml = action_list_xml(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &xml, |b, xml| {
            b.iter(|| {
                let list = read_action_list(black_box(xml)).unwrap();
                decode_action_list(&list, r"\SystemRoot\WinSxS\pending.xml", 0)
                    .operations
                    .len()
            })
        });
    }
    group.finish();
}

fn version_read(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pe/bin/file_v8.dll");
    let evidence = Evidence::open(&path).unwrap();
    c.bench_function("version_read", |b| {
        b.iter(|| nextboot::version::read_pe_version(black_box(&evidence)).unwrap())
    });
}

/// A volume with `size` staged files and `size` targets in 100 directories, and a SYSTEM
/// hive whose queue moves each staged file over its target.
fn scenario(size: usize, fixture: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("Windows/WinSxS/Temp/PendingRenames");
    std::fs::create_dir_all(&staging).unwrap();
    for i in 0..size {
        let target_dir = dir.path().join(format!("Windows/System32/d{}", i % 100));
        std::fs::create_dir_all(&target_dir).unwrap();
        std::fs::write(staging.join(format!("{i:06}.dll")), fixture).unwrap();
        std::fs::write(target_dir.join(format!("f{i:06}.dll")), fixture).unwrap();
    }
    let config = dir.path().join("Windows/System32/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("SYSTEM"), hive_with_queue(size)).unwrap();
    dir
}

/// The replay (path resolution, the boot, every file's version) and the writing of its report,
/// on the same scenarios.
fn replay_and_report(c: &mut Criterion) {
    let fixture =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pe/bin/file_v8.dll"))
            .unwrap();
    let scenarios: Vec<(usize, tempfile::TempDir)> = SIZES
        .iter()
        .map(|&size| (size, scenario(size, &fixture)))
        .collect();

    let mut group = c.benchmark_group("resolve_and_replay");
    group.sample_size(10);
    for (size, dir) in &scenarios {
        let queue = decode_registry(&[RawValue {
            name: "PendingFileRenameOperations".into(),
            data_type: 7,
            bytes: queue_value(*size),
        }]);
        group.throughput(Throughput::Elements(*size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                let mut volumes = Volumes::new('C');
                volumes.add_drive('C', Box::new(DirVolume::new(dir.path())));
                replay(&[&queue.operations], &volumes, ReplayOptions::default())
                    .outcomes
                    .len()
            })
        });
        // The same renames from an action list instead of the registry.
        let list = read_action_list(&action_list_xml(*size)).unwrap();
        let listed = decode_action_list(&list, r"\SystemRoot\WinSxS\pending.xml", 0);
        group.bench_function(BenchmarkId::new("action_list", size), |b| {
            b.iter(|| {
                let mut volumes = Volumes::new('C');
                volumes.add_drive('C', Box::new(DirVolume::new(dir.path())));
                replay(
                    &[&[], &listed.operations],
                    &volumes,
                    ReplayOptions::default(),
                )
                .outcomes
                .len()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("report_writing");
    group.sample_size(10);
    for (size, dir) in &scenarios {
        let report = check(&CheckOptions {
            root: Some(dir.path().to_path_buf()),
            hash: HashMode::None,
            ..CheckOptions::default()
        })
        .unwrap();
        group.throughput(Throughput::Elements(*size as u64));
        for (name, format) in [("json", Format::Json), ("table", Format::Table)] {
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    let mut out = std::io::BufWriter::new(std::io::sink());
                    report::write(&report, format, Style { color: false }, &mut out).unwrap()
                })
            });
        }
    }
    group.finish();
}

/// Path resolution for 100,000 queue paths over 100,000 files in 300 directories, spelled in
/// upper case as Windows writes them: each directory is listed once.
fn resolution(c: &mut Criterion) {
    let mut group = c.benchmark_group("path_resolution");
    group.sample_size(10);
    let dirs = 300;
    let files = 100_000;
    let volume = tempfile::tempdir().unwrap();
    for d in 0..dirs {
        std::fs::create_dir_all(
            volume
                .path()
                .join(format!("Windows/WinSxS/Component{d:03}")),
        )
        .unwrap();
    }
    let mut paths = Vec::with_capacity(files);
    for i in 0..files {
        let d = i % dirs;
        std::fs::write(
            volume
                .path()
                .join(format!("Windows/WinSxS/Component{d:03}/file{i:06}.dll")),
            b"",
        )
        .unwrap();
        paths.push(format!(
            "\\??\\C:\\WINDOWS\\WINSXS\\COMPONENT{d:03}\\FILE{i:06}.DLL"
        ));
    }
    let mount = |path: &Path| {
        let mut volumes = Volumes::new('C');
        volumes.add_drive('C', Box::new(DirVolume::new(path)));
        volumes
    };
    let volumes = mount(volume.path());
    for path in &paths {
        assert!(volumes.resolve(path).unwrap().entry.is_some());
    }
    eprintln!(
        "path_resolution: {} paths, {} directory listings read",
        paths.len(),
        volumes.listings_read()
    );
    group.throughput(Throughput::Elements(files as u64));
    group.bench_function(BenchmarkId::from_parameter(files), |b| {
        b.iter(|| {
            let volumes = mount(volume.path());
            paths.iter().filter(|p| volumes.resolve(p).is_ok()).count()
        })
    });
    group.finish();
}

/// Transaction-log replay of the real Windows 10 hive `SYSTEM_B` with both logs (from
/// `../shared/hives`; skipped when absent).
fn log_replay(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/hives/regipy");
    let Ok(primary) = std::fs::read(dir.join("SYSTEM_B")) else {
        eprintln!("SKIPPED log_replay: ../shared/hives is absent");
        return;
    };
    let logs: Vec<(String, Vec<u8>)> = ["SYSTEM_B.LOG1", "SYSTEM_B.LOG2"]
        .iter()
        .map(|name| (name.to_string(), std::fs::read(dir.join(name)).unwrap()))
        .collect();
    let files: Vec<LogFile> = logs
        .iter()
        .map(|(name, bytes)| LogFile {
            name: name.clone(),
            bytes,
        })
        .collect();
    c.bench_function("log_replay_system_b", |b| {
        b.iter(|| {
            recover(black_box(&primary), &files)
                .unwrap()
                .entries_applied()
        })
    });
}

/// Opening each container (issue 17's target: under 20 ms) and reading its first sector:
/// the real hive's volume image in each, as `benches/compare.sh` builds them in
/// `target/bench-data` (run it first; a missing container is said and skipped).
fn container_open(c: &mut Criterion) {
    use nextboot::evidence::image::container::open_disk;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let mut group = c.benchmark_group("container_open");
    for ext in ["vhd", "vhdx", "vmdk", "qcow2", "E01"] {
        let path = data.join(format!("win10.{ext}"));
        if !path.is_file() {
            eprintln!(
                "container_open: {} is missing (benches/compare.sh makes it)",
                path.display()
            );
            continue;
        }
        group.bench_function(ext, |b| {
            b.iter(|| {
                let disk = open_disk(black_box(&path)).unwrap();
                let mut sector = [0u8; 512];
                disk.reader.read_exact_at(&mut sector, 0).unwrap();
                sector[510]
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    log_replay,
    hive_and_queue,
    version_read,
    replay_and_report,
    resolution,
    container_open
);
criterion_main!(benches);
