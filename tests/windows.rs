//! The Windows build, `nextboot.exe` (x86_64-pc-windows-gnu), run under Wine: the same verdicts
//! and reports as the Linux binary, with the volume given as Windows PE users give it (`D:\`,
//! `E:\mnt\win`, a `Z:` path, `--system-drive`), and the library's unit tests on Windows.
//!
//! Needs the Rust target (`rustup target add x86_64-pc-windows-gnu`), mingw-w64 (its linker,
//! and the compiler for the `ProcessPrng` stand-in) and Wine (`wine64`, else `wine`). When one
//! is missing each test prints `SKIPPED ...` and passes, except under `CI`, where it fails.
//!
//! Once per test binary: `cargo build --release` and `cargo test --no-run --lib` for the
//! Windows target in `target/windows` (a target dir of their own, so no lock is shared with the
//! `cargo test` that runs us; no-ops when `.ci/run` built them first), or the exe named by
//! `NEXTBOOT_WINDOWS_EXE`; then a temporary directory under `target/tmp` with copies of both
//! exes, the stand-in `bcryptprimitives.dll` built from `testdata/wine/`, and a private
//! `WINEPREFIX`, created by the first run. The directory is removed, and its wineserver
//! stopped, when the test binary exits. Details: `docs/windows.md`.

#![cfg(unix)]

mod support;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde_json::Value;
use support::{verdicts, Scenario};

const TARGET: &str = "x86_64-pc-windows-gnu";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// The Wine environment every test shares.
struct Wine {
    loader: PathBuf,
    /// The test binary's temporary directory (removed at exit).
    root: PathBuf,
    prefix: PathBuf,
    /// `nextboot.exe`, `unit-tests.exe` and the stand-in `bcryptprimitives.dll`.
    bin: PathBuf,
}

/// Why the Wine tests cannot run: a tool is missing (skipped outside CI), or something that
/// should work did not (always a failure).
enum Unavailable {
    Missing(String),
    Broken(String),
}

static WINE: OnceLock<Result<Wine, Unavailable>> = OnceLock::new();

/// The shared environment, prepared on first use; `None` (after saying so) when a tool is
/// missing outside CI.
fn wine(test: &str) -> Option<&'static Wine> {
    match WINE.get_or_init(prepare) {
        Ok(wine) => Some(wine),
        Err(Unavailable::Missing(why)) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {why} (required in CI)"
            );
            support::skip(test, why);
            None
        }
        Err(Unavailable::Broken(why)) => panic!("{test}: {why}"),
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn prepare() -> Result<Wine, Unavailable> {
    let started = Instant::now();
    let loader = find_wine().ok_or_else(|| {
        Unavailable::Missing("Wine is not installed (apt-get install wine64)".into())
    })?;
    let server = find_wineserver(&loader).ok_or_else(|| {
        Unavailable::Missing(format!("no wineserver beside {}", loader.display()))
    })?;
    if !runs(Command::new(MINGW_GCC).arg("--version")) {
        return Err(Unavailable::Missing(format!(
            "{MINGW_GCC} is not installed (apt-get install mingw-w64)"
        )));
    }
    if !windows_std_installed() {
        return Err(Unavailable::Missing(format!(
            "the Rust target {TARGET} is not installed (rustup target add {TARGET})"
        )));
    }
    let exe = windows_exe().map_err(Unavailable::Broken)?;
    let unit_tests = windows_unit_tests().map_err(Unavailable::Broken)?;
    let built = started.elapsed();

    let root = tempfile::Builder::new()
        .prefix("nextboot-wine-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| Unavailable::Broken(format!("temporary directory: {e}")))?
        .keep();
    let prefix = root.join("prefix");
    let bin = root.join("bin");
    clean_up_at_exit(&server, &prefix, &root);
    let wine = Wine {
        loader,
        root,
        prefix,
        bin,
    };
    wine.install(&exe, &unit_tests)
        .map_err(Unavailable::Broken)?;

    // The first start creates the prefix.
    let first = wine.run(&["--version"], manifest_dir());
    if !first.status.success() || !String::from_utf8_lossy(&first.stdout).contains("nextboot") {
        return Err(Unavailable::Broken(format!(
            "nextboot.exe --version under Wine failed ({}):\n{}",
            first.status,
            String::from_utf8_lossy(&first.stderr)
        )));
    }
    eprintln!(
        "windows: Windows build ready in {:.1} s, Wine prefix created in {:.1} s",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    Ok(wine)
}

impl Wine {
    /// Copies the exes beside the stand-in DLL, which is built there from `testdata/wine`.
    fn install(&self, exe: &Path, unit_tests: &Path) -> Result<(), String> {
        std::fs::create_dir_all(&self.bin).map_err(|e| format!("{}: {e}", self.bin.display()))?;
        for (from, name) in [(exe, "nextboot.exe"), (unit_tests, "unit-tests.exe")] {
            std::fs::copy(from, self.bin.join(name))
                .map_err(|e| format!("copy {}: {e}", from.display()))?;
        }
        let source = manifest_dir().join("testdata/wine");
        let output = Command::new(MINGW_GCC)
            .args(["-shared", "-O2", "-s", "-nostdlib", "-e", "DllMain", "-o"])
            .arg(self.bin.join("bcryptprimitives.dll"))
            .arg(source.join("bcryptprimitives.c"))
            .arg(source.join("bcryptprimitives.def"))
            .args(["-lkernel32", "-ladvapi32"])
            .output()
            .map_err(|e| format!("{MINGW_GCC}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the ProcessPrng stand-in failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    fn command(&self, exe: &str, cwd: &Path) -> Command {
        let mut command = Command::new(&self.loader);
        command
            .arg(self.bin.join(exe))
            .current_dir(cwd)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer prompts when the prefix is created.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("NO_COLOR", "1")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    /// Runs `nextboot.exe` with `args` in `cwd` (Wine maps it to `Z:\...`).
    fn run<S: AsRef<OsStr>>(&self, args: &[S], cwd: &Path) -> Output {
        self.command("nextboot.exe", cwd)
            .args(args)
            .output()
            .expect("run Wine")
    }

    /// Maps a drive letter of the prefix to a host directory (`dosdevices/x:`).
    fn map_drive(&self, letter: char, dir: &Path) {
        let link = self
            .prefix
            .join("dosdevices")
            .join(format!("{}:", letter.to_ascii_lowercase()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir, &link)
            .unwrap_or_else(|e| panic!("map {letter}: to {}: {e}", dir.display()));
    }
}

/// `NEXTBOOT_WINE`, else the first of `wine64`, `/usr/lib/wine/wine64`, `wine` that runs.
fn find_wine() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("NEXTBOOT_WINE") {
        Some(wine) => vec![wine.into()],
        // Debian's /usr/bin/wine wrapper prefers a 32-bit wine; wine64 is what runs our exe.
        None => ["wine64", "/usr/lib/wine/wine64", "wine"]
            .map(PathBuf::from)
            .to_vec(),
    };
    candidates
        .into_iter()
        .find(|wine| runs(Command::new(wine).arg("--version")))
}

fn find_wineserver(loader: &Path) -> Option<PathBuf> {
    let beside = std::fs::canonicalize(loader)
        .ok()
        .and_then(|p| p.parent().map(|dir| dir.join("wineserver")));
    beside
        .into_iter()
        .chain(["wineserver".into(), "/usr/lib/wine/wineserver".into()])
        .find(|server| runs(Command::new(server).arg("--version")))
}

fn runs(command: &mut Command) -> bool {
    command
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

fn windows_std_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(manifest_dir())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| {
            let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(TARGET)
                .join("lib")
                .is_dir()
        })
        .unwrap_or(false)
}

fn cargo(args: &[&str]) -> Result<Output, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let target_dir = manifest_dir().join("target/windows");
    Command::new(cargo)
        .args(args)
        .args(["--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .current_dir(manifest_dir())
        .output()
        .map_err(|e| format!("cargo: {e}"))
}

/// `NEXTBOOT_WINDOWS_EXE`, else the release exe built now (a no-op when up to date).
fn windows_exe() -> Result<PathBuf, String> {
    if let Some(exe) = std::env::var_os("NEXTBOOT_WINDOWS_EXE") {
        let exe = PathBuf::from(exe);
        return if exe.is_file() {
            Ok(exe)
        } else {
            Err(format!(
                "NEXTBOOT_WINDOWS_EXE={} is not a file",
                exe.display()
            ))
        };
    }
    let output = cargo(&["build", "--release", "--bin", "nextboot"])?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --release --target {TARGET} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(manifest_dir().join(format!("target/windows/{TARGET}/release/nextboot.exe")))
}

/// The library's unit-test exe for Windows, built now (a no-op when up to date).
fn windows_unit_tests() -> Result<PathBuf, String> {
    let output = cargo(&["test", "--lib", "--no-run", "--message-format=json"])?;
    if !output.status.success() {
        return Err(format!(
            "cargo test --lib --no-run --target {TARGET} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|message| {
            message["reason"] == "compiler-artifact" && message["executable"].is_string()
        })
        .and_then(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo test --no-run named no unit-test executable".to_string())
}

/// What to stop and remove when the test binary exits.
static CLEAN_UP: Mutex<Option<(PathBuf, PathBuf, PathBuf)>> = Mutex::new(None);

fn clean_up_at_exit(server: &Path, prefix: &Path, root: &Path) {
    *CLEAN_UP.lock().unwrap_or_else(|e| e.into_inner()) = Some((
        server.to_path_buf(),
        prefix.to_path_buf(),
        root.to_path_buf(),
    ));
    extern "C" fn clean_up() {
        let Some((server, prefix, root)) = CLEAN_UP.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        // Stops the prefix's wineserver and the Wine services it keeps, then removes the
        // prefix (about 700 MB on Debian: the DLLs are copied into it).
        let _ = Command::new(&server)
            .arg("-k")
            .env("WINEPREFIX", &prefix)
            .output();
        let _ = Command::new(&server)
            .arg("-w")
            .env("WINEPREFIX", &prefix)
            .output();
        let _ = std::fs::remove_dir_all(&root);
    }
    // SAFETY: registers a function with no arguments that libtest's exit, whether the tests
    // passed or failed, calls once; it only runs commands and removes our own directory.
    unsafe {
        libc::atexit(clean_up);
    }
}

/// A Wine drive path for a host path: Wine maps `/` to `Z:`.
fn z_path(path: &Path) -> String {
    let text = path.to_str().expect("UTF-8 temporary path");
    assert!(text.starts_with('/'), "{text} is not absolute");
    format!("Z:{}", text.replace('/', "\\"))
}

/// Runs the Linux binary.
fn linux<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nextboot"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run nextboot")
}

fn json(output: &Output, who: &str) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{who}: not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A Windows host path as the Linux binary shows it: the Windows root replaced by the Linux
/// one, the rest with `/`. Strings that do not start with a Windows root stay as they are.
fn as_linux_path(text: &str, roots: &[(&str, &str)]) -> String {
    for (windows, linux) in roots {
        let windows = windows.trim_end_matches('\\');
        if text.trim_end_matches('\\') == windows {
            return linux.to_string();
        }
        if let Some(rest) = text.strip_prefix(windows) {
            if let Some(rest) = rest.strip_prefix('\\') {
                return format!("{linux}/{}", rest.replace('\\', "/"));
            }
        }
    }
    text.to_string()
}

/// Every difference between the Linux and the Windows report, paths under the given roots
/// compared after [`as_linux_path`]; nothing else may differ but the provenance (the command
/// line and the start time of each run).
fn differences(linux: &Value, windows: &Value, roots: &[(&str, &str)], at: &str) -> Vec<String> {
    match (linux, windows) {
        (Value::Object(l), Value::Object(w)) => {
            let mut found: Vec<String> = l
                .keys()
                .chain(w.keys().filter(|k| !l.contains_key(*k)))
                .filter(|key| *key != "provenance")
                .flat_map(|key| {
                    let (lv, wv) = (&l.get(key), &w.get(key));
                    match (lv, wv) {
                        (Some(lv), Some(wv)) => differences(lv, wv, roots, &format!("{at}.{key}")),
                        _ => vec![format!("{at}.{key}: {lv:?} on Linux, {wv:?} on Windows")],
                    }
                })
                .collect();
            found.sort();
            found
        }
        (Value::Array(l), Value::Array(w)) if l.len() == w.len() => l
            .iter()
            .zip(w)
            .enumerate()
            .flat_map(|(i, (lv, wv))| differences(lv, wv, roots, &format!("{at}[{i}]")))
            .collect(),
        (Value::String(l), Value::String(w)) if *l == as_linux_path(w, roots) => Vec::new(),
        (l, w) if l == w => Vec::new(),
        (l, w) => vec![format!("{at}: {l} on Linux, {w} on Windows")],
    }
}

fn assert_same_report(linux: &Value, windows: &Value, roots: &[(&str, &str)]) {
    let found = differences(linux, windows, roots, "");
    assert!(
        found.is_empty(),
        "the Windows report differs from the Linux one:\n{}",
        found.join("\n")
    );
}

/// Runs `check` on both binaries and compares exit status and JSON report.
fn check_both(
    wine: &Wine,
    linux_args: &[&str],
    windows_args: &[&str],
    roots: &[(&str, &str)],
    cwd: &Path,
) -> (i32, Value) {
    fn with_format<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["check"];
        all.extend_from_slice(args);
        all.extend(["--format", "json"]);
        all
    }
    let on_linux = linux(&with_format(linux_args), cwd);
    let on_windows = wine.run(&with_format(windows_args), cwd);
    let report = json(&on_linux, "Linux");
    assert_same_report(&report, &json(&on_windows, "Windows"), roots);
    let status = on_linux.status.code().unwrap_or(-1);
    assert_eq!(
        on_windows.status.code(),
        Some(status),
        "exit status; stderr under Wine:\n{}",
        String::from_utf8_lossy(&on_windows.stderr)
    );
    (status, report)
}

const DEMO: &str = "testdata/scenarios/kb815062";

#[test]
fn demo_volume_gives_the_linux_report() {
    let Some(wine) = wine("demo_volume_gives_the_linux_report") else {
        return;
    };
    let windows_root = DEMO.replace('/', "\\");
    let (status, report) = check_both(
        wine,
        &[DEMO],
        &[&windows_root],
        &[(&windows_root, DEMO)],
        manifest_dir(),
    );
    assert_eq!(status, 1, "the demo has a downgrade");
    assert_eq!(verdicts(&report), ["downgrade", "upgrade", "delete"]);
}

#[test]
fn drive_root_as_in_windows_pe() {
    // The PE session: the broken installation is D:, its queue says C:.
    let Some(wine) = wine("drive_root_as_in_windows_pe") else {
        return;
    };
    let demo = manifest_dir().join(DEMO);
    wine.map_drive('D', &demo);
    let demo = demo.to_str().expect("UTF-8 path");
    for root in ["D:\\", "d:\\"] {
        let (status, report) = check_both(wine, &[demo], &[root], &[(root, demo)], &wine.root);
        assert_eq!(status, 1, "{root}");
        assert_eq!(verdicts(&report), ["downgrade", "upgrade", "delete"]);
    }
}

/// Copies a directory tree, renaming each directory (and each file named SYSTEM) with `name`.
fn copy_tree(from: &Path, to: &Path, name: &dyn Fn(&str) -> String) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &to.join(name(&file_name)), name);
        } else {
            let renamed = if file_name == "SYSTEM" {
                name(&file_name)
            } else {
                file_name
            };
            std::fs::copy(entry.path(), to.join(renamed)).expect("copy file");
        }
    }
}

#[test]
fn folder_on_a_drive_with_names_in_other_case() {
    // ROOT as `E:\mnt\win`, and the hive found as windows\system32\config\system.
    let Some(wine) = wine("folder_on_a_drive_with_names_in_other_case") else {
        return;
    };
    let drive = tempfile::tempdir().expect("temporary directory");
    let win = drive.path().join("mnt/win");
    copy_tree(&manifest_dir().join(DEMO), &win, &|n| n.to_lowercase());
    assert!(win.join("windows/system32/config/system").is_file());
    wine.map_drive('E', drive.path());
    let linux_root = win.to_str().expect("UTF-8 path");
    for root in ["E:\\mnt\\win", "E:\\MNT\\Win\\"] {
        let (status, report) = check_both(
            wine,
            &[linux_root],
            &[root],
            &[(root, linux_root)],
            &wine.root,
        );
        assert_eq!(status, 1, "{root}");
        assert_eq!(verdicts(&report), ["downgrade", "upgrade", "delete"]);
        assert_eq!(report["windows_directory"], "windows");
    }
}

#[test]
fn wine_drive_paths_with_another_system_drive_and_a_second_volume() {
    let Some(wine) = wine("wine_drive_paths_with_another_system_drive_and_a_second_volume") else {
        return;
    };
    // The system volume was E:, a second volume F: holds an application.
    let mut s = Scenario::new();
    s.put("Windows/System32/File.dll", "file_v12.dll");
    s.put("Windows/System32/SET1.tmp", "file_v8.dll");
    s.put("Windows/System32/SET2.tmp", "fix_v0_3.dll");
    let apps = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(apps.path().join("Vendor")).expect("create directory");
    std::fs::copy(
        support::pe("fix_v0_1.dll"),
        apps.path().join("Vendor/fix.dll"),
    )
    .expect("copy fixture");
    s.hive.pending(
        1,
        &[
            (
                "\\??\\E:\\Windows\\System32\\SET1.tmp",
                "!\\??\\E:\\Windows\\System32\\File.dll",
            ),
            (
                "\\??\\E:\\Windows\\System32\\SET2.tmp",
                "!\\??\\F:\\Vendor\\fix.dll",
            ),
            ("\\SystemRoot\\System32\\gone.log", ""),
            ("\\??\\C:\\Windows\\System32\\x.dll", ""),
        ],
    );
    s.write_hive();
    let root = s.root().to_str().expect("UTF-8 path").to_string();
    let second = apps.path().to_str().expect("UTF-8 path").to_string();
    let (win_root, win_second) = (z_path(s.root()), z_path(apps.path()));
    let linux_drive = format!("F:={second}");
    let windows_drive = format!("F:={win_second}");
    let (status, report) = check_both(
        wine,
        &[&root, "--system-drive", "E:", "--drive", &linux_drive],
        &[&win_root, "--system-drive", "e:", "--drive", &windows_drive],
        &[(&win_root, &root), (&win_second, &second)],
        &wine.root,
    );
    assert_eq!(status, 1);
    assert_eq!(
        verdicts(&report),
        ["downgrade", "upgrade", "no-effect", "unresolved"]
    );
}

#[test]
fn short_names_are_derived_as_on_linux() {
    // Wine makes up a short name for every long name; they are not what Windows recorded, so
    // the Windows build ignores them under Wine and derives, as the Linux build does here.
    let Some(wine) = wine("short_names_are_derived_as_on_linux") else {
        return;
    };
    let mut s = Scenario::new();
    s.put("Program Files/Vendor/tool.dll", "file_v12.dll");
    s.put("Program Files/Vendor/SET4A2B.tmp.new", "file_v8.dll");
    s.put("Users/Administrator/app.dll", "file_v5.dll");
    s.put("Users/Administrator/staged.tmp", "file_v8.dll");
    s.hive.pending(
        1,
        &[
            (
                "\\??\\C:\\PROGRA~1\\Vendor\\SET4A2~1.NEW",
                "!\\??\\C:\\PROGRA~1\\VENDOR\\tool.dll",
            ),
            (
                "\\??\\C:\\Users\\ADMINI~1\\staged.tmp",
                "!\\??\\C:\\Users\\Administrator\\app.dll",
            ),
        ],
    );
    s.write_hive();
    let root = s.root().to_str().expect("UTF-8 path").to_string();
    let win_root = z_path(s.root());
    let (_, report) = check_both(
        wine,
        &[&root],
        &[&win_root],
        &[(&win_root, &root)],
        &wine.root,
    );
    assert_eq!(verdicts(&report), ["downgrade", "upgrade"]);
}

#[test]
fn unusable_inputs_exit_2_as_on_linux() {
    let Some(wine) = wine("unusable_inputs_exit_2_as_on_linux") else {
        return;
    };
    let missing = "testdata/scenarios/no-such-volume";
    let not_a_hive = "testdata/pe/bin/file_v8.dll";
    for (linux_args, windows_args) in [
        (
            vec!["check", missing],
            vec!["check".to_string(), missing.replace('/', "\\")],
        ),
        (
            vec!["check", "--hive", not_a_hive],
            vec![
                "check".into(),
                "--hive".into(),
                not_a_hive.replace('/', "\\"),
            ],
        ),
        (vec!["check"], vec!["check".into()]),
        (
            vec!["check", DEMO, "--system-drive", "CC"],
            vec![
                "check".into(),
                DEMO.replace('/', "\\"),
                "--system-drive".into(),
                "CC".into(),
            ],
        ),
    ] {
        let on_linux = linux(&linux_args, manifest_dir());
        let on_windows = wine.run(&windows_args, manifest_dir());
        assert_eq!(on_linux.status.code(), Some(2), "{linux_args:?} on Linux");
        assert_eq!(
            on_windows.status.code(),
            Some(2),
            "{windows_args:?} under Wine:\n{}",
            String::from_utf8_lossy(&on_windows.stderr)
        );
    }
}

/// `testdata/pe/bin/*`, sorted, relative to the repository.
fn pe_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(manifest_dir().join("testdata/pe/bin"))
        .expect("testdata/pe/bin")
        .map(|entry| entry.expect("directory entry").file_name())
        .map(|name: OsString| name.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| format!("testdata/pe/bin/{name}"))
        .collect()
}

#[test]
fn version_command_matches_linux() {
    let Some(wine) = wine("version_command_matches_linux") else {
        return;
    };
    let files = pe_fixtures();
    assert!(files.len() > 10, "{files:?}");
    let windows_files: Vec<String> = files.iter().map(|f| f.replace('/', "\\")).collect();
    let roots = [("testdata\\pe\\bin", "testdata/pe/bin")];

    let mut args = vec!["version", "--format", "json", "--sha256"];
    args.extend(files.iter().map(String::as_str));
    let mut windows_args = vec!["version", "--format", "json", "--sha256"];
    windows_args.extend(windows_files.iter().map(String::as_str));
    let on_linux = linux(&args, manifest_dir());
    let on_windows = wine.run(&windows_args, manifest_dir());
    assert_eq!(on_linux.status.code(), Some(0));
    assert_eq!(on_windows.status.code(), Some(0));
    assert_same_report(
        &json(&on_linux, "Linux"),
        &json(&on_windows, "Windows"),
        &roots,
    );

    // The table too: the same text once the separators are turned round (the paths are the
    // only backslashes in it).
    let table = |files: &[String]| -> Vec<String> {
        std::iter::once("version".to_string())
            .chain(files.iter().cloned())
            .collect()
    };
    let on_linux = linux(&table(&files), manifest_dir());
    let on_windows = wine.run(&table(&windows_files), manifest_dir());
    assert_eq!(on_windows.status.code(), on_linux.status.code());
    assert_eq!(
        String::from_utf8_lossy(&on_windows.stdout).replace('\\', "/"),
        String::from_utf8_lossy(&on_linux.stdout)
    );
}

/// The DLLs the exe may import: all in Windows 10/11 and their Windows PE (docs/windows.md).
/// No mingw runtime DLL (libgcc_s, libwinpthread, libstdc++) may appear.
const WINDOWS_PE_DLLS: [&str; 5] = [
    "api-ms-win-core-synch-l1-2-0.dll",
    "bcryptprimitives.dll",
    "kernel32.dll",
    "msvcrt.dll",
    "ntdll.dll",
];

#[test]
fn exe_imports_only_dlls_windows_pe_has() {
    let Some(wine) = wine("exe_imports_only_dlls_windows_pe_has") else {
        return;
    };
    let exe = wine.bin.join("nextboot.exe");
    let output = Command::new("x86_64-w64-mingw32-objdump")
        .arg("-p")
        .arg(&exe)
        .output()
        .expect("run x86_64-w64-mingw32-objdump (binutils-mingw-w64)");
    assert!(output.status.success(), "objdump -p failed");
    let dlls: std::collections::BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("DLL Name: "))
        .map(str::to_ascii_lowercase)
        .collect();
    assert!(dlls.contains("kernel32.dll"), "{dlls:?}");
    let unexpected: Vec<&String> = dlls
        .iter()
        .filter(|dll| !WINDOWS_PE_DLLS.contains(&dll.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "nextboot.exe imports {unexpected:?}, which Windows PE may not have"
    );
    let size = std::fs::metadata(&exe).map(|m| m.len()).unwrap_or(0);
    eprintln!("windows: nextboot.exe is {size} bytes and imports {dlls:?}");
}

#[test]
fn library_unit_tests_pass_on_windows() {
    let Some(wine) = wine("library_unit_tests_pass_on_windows") else {
        return;
    };
    let output = wine
        .command("unit-tests.exe", &wine.root)
        .output()
        .expect("run Wine");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "unit tests under Wine failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The Windows-only tests ran: read-only handles, recorded short names.
    for test in [
        "evidence::tests::read_only_handle_is_granted_read_rights_only",
        "volume::dir::windows_tests::short_names_are_mapped_to_entries_by_long_name",
    ] {
        assert!(
            stdout.contains(&format!("{test} ... ok")),
            "{test}:\n{stdout}"
        );
    }
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("test result: ok."))
        .unwrap_or_default();
    eprintln!("windows: library unit tests under Wine: {summary}");
}
