use super::*;

fn gen(long: &str, n: u32) -> Option<String> {
    generate(long, n)
}

// ---- looks_generated ----------------------------------------------------------------

#[test]
fn looks_generated_accepts_generated_forms() {
    for name in [
        "PROGRA~1",
        "progra~2",
        "Progra~4",
        "SET4A2~1.TMP",
        "set4a2~1.tmp",
        "AB12C~10",
        "A1B2~123",
        "ADMINI~1",
        "MYDOCU~1",
        "INDEX~1.HTM",
        "BERWEI~1.TXT",
        "SOBC84~1.ASP",
        "XB885~1.HTM",
        "8E03~1.TXT",
        "A~B~1.TXT",
        "A~1.~TM",
        "5_6JUN~1.DOC",
        "X~1",
        "A~123456",
    ] {
        assert!(looks_generated(name), "{name:?} should look generated");
    }
}

#[test]
fn looks_generated_rejects_other_names() {
    for name in [
        "",
        "FILE.DLL",
        "KERNEL32.DLL",
        "A~.TXT",
        "~1",
        "~1.TXT",
        "ABCDEFGHI~1",
        "ABCDEFG~12",
        "PROGRA~0",
        "PROGRA~01",
        "PROGRA~X",
        "PROGRA~1X",
        "PROGRA~",
        "PROGRA~1.",
        "PROGRA~1.TOOL",
        "PROGRA~1.A.B",
        "A.B~1",
        "PRO GR~1",
        "PRO+GR~1",
        "PROG[~1",
        "ÜBERWE~1.TXT",
        "BERWEI~1.TXÜ",
        "PROGRA~1\\X",
        ".",
        "..",
        "~",
        "😀~1",
        "A~1\u{7f}",
        "A~1\t",
        "A~99999999",
    ] {
        assert!(!looks_generated(name), "{name:?} should not look generated");
    }
}

// ---- generate: the brief's examples and published examples --------------------------

#[test]
fn program_files_and_x86_share_the_basis() {
    assert_eq!(gen("Program Files", 1).as_deref(), Some("PROGRA~1"));
    assert_eq!(gen("Program Files", 2).as_deref(), Some("PROGRA~2"));
    assert_eq!(gen("Program Files (x86)", 1).as_deref(), Some("PROGRA~1"));
    assert_eq!(gen("Program Files (x86)", 2).as_deref(), Some("PROGRA~2"));
    assert_eq!(gen("ProgramData", 3).as_deref(), Some("PROGRA~3"));
    assert_eq!(gen("Program Files", 4).as_deref(), Some("PROGRA~4"));
}

#[test]
fn profile_and_documents_names() {
    assert_eq!(gen("Administrator", 1).as_deref(), Some("ADMINI~1"));
    assert_eq!(gen("My Documents", 1).as_deref(), Some("MYDOCU~1"));
}

#[test]
fn extension_is_after_the_last_period() {
    assert_eq!(gen("SET4A2B.tmp.new", 1).as_deref(), Some("SET4A2~1.NEW"));
    assert_eq!(gen("SET4A2B0C.tmp", 1).as_deref(), Some("SET4A2~1.TMP"));
    assert_eq!(
        gen("TextFile1.Mine.txt", 1).as_deref(),
        Some("TEXTFI~1.TXT")
    );
    assert_eq!(
        gen("TextFile1.Mine.txt", 2).as_deref(),
        Some("TEXTFI~2.TXT")
    );
    assert_eq!(gen("ver +1.2.text", 1).as_deref(), Some("VER_12~1.TEX"));
    assert_eq!(
        gen("a.testing.file.bat", 1).as_deref(),
        Some("ATESTI~1.BAT")
    );
}

#[test]
fn kb142982_examples() {
    assert_eq!(gen("A file.doc", 1).as_deref(), Some("AFILE~1.DOC"));
    assert_eq!(
        gen("A long filename.txt", 1).as_deref(),
        Some("ALONGF~1.TXT")
    );
    assert_eq!(gen("A_file.doc", 1), None);
    assert_eq!(
        gen("this is a really long filename.123.45 6.789.txt", 1).as_deref(),
        Some("THISIS~1.TXT")
    );
    // Nothing usable after the final period: the one before it is used.
    assert_eq!(
        gen("this is a really long filename.123.45 6.789.", 1).as_deref(),
        Some("THISIS~1.789")
    );
}

#[test]
fn galvin_examples() {
    assert_eq!(
        gen("5+6 June Report.doc", 1).as_deref(),
        Some("5_6JUN~1.DOC")
    );
    assert_eq!(gen("SomeStuff.aspx", 1).as_deref(), Some("SOMEST~1.ASP"));
    assert_eq!(gen("SomeStuff.aspx", 5).as_deref(), Some("SOBC84~1.ASP"));
    assert_eq!(gen("SomeStuff.aspx", 6).as_deref(), Some("SOBC84~2.ASP"));
    // Two-digit index: the checksum is shortened to keep eight characters.
    assert_eq!(gen("SomeStuff.aspx", 14).as_deref(), Some("SOBC8~10.ASP"));
    assert_eq!(gen("SomeStuff.aspx", 104).as_deref(), Some("SOBC~100.ASP"));
}

/// A published `dir` listing (long names and their aliases in the same order), real
/// Windows output; the checksums were also recomputed independently of this module.
const RAMMSTEIN: [(&str, &str); 8] = [
    ("Rammstein & Tatu - Moscow.mp3", "RA8E17~1.MP3"),
    ("Rammstein - Asche zu Asche.mp3", "RA23A6~1.MP3"),
    ("Rammstein - Der Meister.mp3", "RAMMST~1.MP3"),
    ("Rammstein - Du Hast.mp3", "RA0CAE~1.MP3"),
    ("Rammstein - Eifersucht.mp3", "RAMMST~2.MP3"),
    ("Rammstein - Feuer Frei.mp3", "RAMMST~3.MP3"),
    ("Rammstein - Führe Mich.mp3", "RAMMST~4.MP3"),
    ("Rammstein - Haifisch.mp3", "RA6BAA~1.MP3"),
];

#[test]
fn checksum_matches_real_windows_aliases() {
    for (long, short) in RAMMSTEIN {
        let reachable = (1..=8).any(|n| gen(long, n).as_deref() == Some(short));
        assert!(reachable, "{long:?} should reach {short:?}");
    }
    assert_eq!(checksum("SomeStuff.aspx"), 0xBC84);
    assert_eq!(checksum("Rammstein - Du Hast.mp3"), 0x0CAE);
}

#[test]
fn non_ascii_is_removed_not_replaced() {
    assert_eq!(gen("Überweisung.txt", 1).as_deref(), Some("BERWEI~1.TXT"));
    assert_eq!(gen("café.txt", 1).as_deref(), Some("CAF~1.TXT"));
    assert_eq!(
        gen("Straße der Einheit.doc", 1).as_deref(),
        Some("STRAED~1.DOC")
    );
    // Non-ASCII in the extension too.
    assert_eq!(gen("Bericht.bäk", 1).as_deref(), Some("BERICH~1.BK"));
}

#[test]
fn long_extension_is_cut_to_three() {
    assert_eq!(gen("index.html", 1).as_deref(), Some("INDEX~1.HTM"));
    assert_eq!(gen("index.html", 2).as_deref(), Some("INDEX~2.HTM"));
}

#[test]
fn valid_8dot3_names_get_no_alias_in_any_case() {
    for name in [
        "KERNEL32.DLL",
        "kernel32.dll",
        "readme.txt",
        "ReadMe.Txt",
        "README",
        "A",
        "A.B",
        "SET4A2B.tmp",
        "PROGRA~1",
        "setup~1.tmp",
        "$WINDOWS.~BT",
        ".",
        "..",
        "",
    ] {
        for n in [1, 2, 5] {
            assert_eq!(gen(name, n), None, "{name:?} step {n}");
        }
    }
}

#[test]
fn names_that_are_not_8dot3_for_other_reasons() {
    // Space, too long a base or extension, two periods, leading period, short-illegal
    // character, non-ASCII: all get an alias.
    assert_eq!(gen("a b", 1).as_deref(), Some("AB2761~1"));
    assert_eq!(gen("ABCDEFGHI", 1).as_deref(), Some("ABCDEF~1"));
    assert_eq!(gen("ABC.DEFG", 1).as_deref(), Some("ABC~1.DEF"));
    assert_eq!(gen("A.B.C", 1).as_deref(), Some("ABFE62~1.C"));
    assert_eq!(gen(".htaccess", 1).as_deref(), Some("HTACCE~1"));
    assert_eq!(gen(".config.json", 1).as_deref(), Some("CONFIG~1.JSO"));
    assert_eq!(gen("a+b.txt", 1).as_deref(), Some("A_B~1.TXT"));
    assert_eq!(gen("[1].txt", 1).as_deref(), Some("_1_~1.TXT"));
    assert_eq!(gen("é.txt", 1).as_deref(), Some("B490~1.TXT"));
}

#[test]
fn short_basis_gets_the_checksum_at_once() {
    assert_eq!(gen("x.html", 1).as_deref(), Some("XB885~1.HTM"));
    assert_eq!(gen("x.html", 2).as_deref(), Some("XB885~2.HTM"));
    assert_eq!(gen("a b.txt", 1).as_deref(), Some("AB5079~1.TXT"));
    assert_eq!(gen("日本語.txt", 1).as_deref(), Some("8E03~1.TXT"));
    assert_eq!(gen("😀.txt", 1).as_deref(), Some("6A68~1.TXT"));
}

#[test]
fn step_zero_and_oversized_steps() {
    assert_eq!(gen("Program Files", 0), None);
    // Index 100_000 (step 100_004): one prefix character and six digits.
    assert_eq!(gen("Program Files", 100_004).as_deref(), Some("P~100000"));
    // Seven digits leave no room for a prefix.
    assert_eq!(gen("Program Files", 1_000_004), None);
    assert_eq!(gen("Program Files", u32::MAX), None);
}

// ---- candidates ---------------------------------------------------------------------

#[test]
fn drive_root_program_files() {
    let root = [
        "$Recycle.Bin",
        "Documents and Settings",
        "PerfLogs",
        "Program Files",
        "Program Files (x86)",
        "ProgramData",
        "Programs",
        "Recovery",
        "System Volume Information",
        "Users",
        "Windows",
        "pagefile.sys",
    ];
    let both = ["Program Files", "Program Files (x86)", "ProgramData"];
    assert_eq!(candidates("PROGRA~1", &root), both);
    assert_eq!(candidates("progra~2", &root), both);
    assert_eq!(candidates("PROGRA~4", &root), both);
    // Windows never counts a plain basis past 4.
    assert_eq!(candidates("PROGRA~5", &root), Vec::<&str>::new());
    assert_eq!(candidates("DOCUME~1", &root), ["Documents and Settings"]);
    assert_eq!(candidates("SYSTEM~1", &root), ["System Volume Information"]);
    // "Programs" is 8.3 itself and "PROGRA~1.SYS" has an extension no entry has.
    assert_eq!(candidates("PROGRA~1.SYS", &root), Vec::<&str>::new());
    // Without ProgramData the brief's pair remains, still ambiguous.
    let pair = ["Program Files", "Program Files (x86)", "Windows"];
    assert_eq!(
        candidates("PROGRA~1", &pair),
        ["Program Files", "Program Files (x86)"]
    );
    assert_eq!(
        candidates("PROGRA~2", &pair),
        ["Program Files", "Program Files (x86)"]
    );
}

#[test]
fn users_directory() {
    let users = [
        "Administrator",
        "All Users",
        "Default",
        "Default User",
        "Public",
        "desktop.ini",
    ];
    assert_eq!(candidates("ADMINI~1", &users), ["Administrator"]);
    assert_eq!(candidates("ALLUSE~1", &users), ["All Users"]);
    assert_eq!(candidates("DEFAUL~1", &users), ["Default User"]);
    assert_eq!(candidates("DESKTO~1.INI", &users), Vec::<&str>::new());
    let profile = ["My Documents", "My Music", "MyDocuments2", "Documents"];
    assert_eq!(
        candidates("MYDOCU~1", &profile),
        ["My Documents", "MyDocuments2"]
    );
    assert_eq!(candidates("MYMUSI~1", &profile), ["My Music"]);
}

#[test]
fn vendor_setup_temp_files() {
    let vendor = [
        "SET4A2B.tmp",
        "SET4A2B.tmp.new",
        "SET4A2B0C.tmp",
        "SET4A2C1D.tmp",
        "set4a2b-new.TMP",
        "SET4A3F00.tmp",
        "SET4A2B0C.tmp.bak",
        "Vendor.dll",
        "Vendor Updater.exe",
    ];
    assert_eq!(
        candidates("SET4A2~1.TMP", &vendor),
        ["SET4A2B0C.tmp", "SET4A2C1D.tmp", "set4a2b-new.TMP"]
    );
    assert_eq!(candidates("SET4A2~1.NEW", &vendor), ["SET4A2B.tmp.new"]);
    assert_eq!(candidates("SET4A2~1.BAK", &vendor), ["SET4A2B0C.tmp.bak"]);
    assert_eq!(candidates("SET4A3~1.TMP", &vendor), ["SET4A3F00.tmp"]);
    assert_eq!(candidates("VENDOR~1.EXE", &vendor), ["Vendor Updater.exe"]);
    // The common case: one temp file, one answer.
    let single = [
        "SET4A2B0C.tmp",
        "Vendor.dll",
        "Vendor Updater.exe",
        "readme.txt",
    ];
    assert_eq!(candidates("SET4A2~1.TMP", &single), ["SET4A2B0C.tmp"]);
    assert_eq!(candidates("set4a2~1.tmp", &single), ["SET4A2B0C.tmp"]);
}

#[test]
fn non_ascii_and_long_extension_candidates() {
    let dir = [
        "Überweisung.txt",
        "Überweisung.pdf",
        "Bericht.txt",
        "index.html",
        "index.htm",
    ];
    assert_eq!(candidates("BERWEI~1.TXT", &dir), ["Überweisung.txt"]);
    assert_eq!(candidates("_BERWE~1.TXT", &dir), Vec::<&str>::new());
    assert_eq!(candidates("INDEX~1.HTM", &dir), ["index.html"]);
    assert_eq!(candidates("INDEX~1.HTML", &dir), Vec::<&str>::new());
}

#[test]
fn checksum_candidates_pick_one_of_many() {
    let songs: Vec<&str> = RAMMSTEIN.iter().map(|(long, _)| *long).collect();
    for (long, short) in RAMMSTEIN {
        let found = candidates(short, &songs);
        assert!(found.contains(&long), "{short:?} should list {long:?}");
        if short.starts_with("RAMMST") {
            // The plain aliases are ambiguous without the creation order.
            assert_eq!(found, songs, "{short:?}");
        } else {
            assert_eq!(found, [long], "{short:?}");
        }
    }
}

#[test]
fn short_basis_accepts_both_forms() {
    let dir = ["x.html", "y.html", "a b.txt", "ab.txt"];
    assert_eq!(candidates("XB885~1.HTM", &dir), ["x.html"]);
    assert_eq!(candidates("X~1.HTM", &dir), ["x.html"]);
    assert_eq!(candidates("AB5079~1.TXT", &dir), ["a b.txt"]);
    assert_eq!(candidates("AB~1.TXT", &dir), ["a b.txt"]);
    assert_eq!(candidates("X~5.HTM", &dir), Vec::<&str>::new());
}

#[test]
fn exact_name_wins() {
    let dir = ["Program Files", "PROGRA~1", "Program Files (x86)"];
    assert_eq!(candidates("progra~1", &dir), ["PROGRA~1"]);
    assert_eq!(
        candidates("PROGRA~2", &dir),
        ["Program Files", "Program Files (x86)"]
    );
}

#[test]
fn not_generated_looking_has_no_candidates() {
    let dir = ["KERNEL32.DLL", "Program Files"];
    assert_eq!(candidates("KERNEL32.DLL", &dir), Vec::<&str>::new());
    assert_eq!(candidates("", &dir), Vec::<&str>::new());
    assert_eq!(candidates("PROGRA~1", &[]), Vec::<&str>::new());
}

/// A System32-like listing: 8.3 names (no alias), long names with near-collisions in the
/// first six characters and the extension, and the large `api-ms-win-*` family.
fn system32() -> Vec<String> {
    const SHORT: &[&str] = &[
        "ACLUI.DLL",
        "ACTIVEDS.DLL",
        "ADVAPI32.DLL",
        "APPHELP.DLL",
        "ARP.EXE",
        "ATTRIB.EXE",
        "AUDIOSRV.DLL",
        "AUTHZ.DLL",
        "BCRYPT.DLL",
        "BOOTVID.DLL",
        "CALC.EXE",
        "CERTUTIL.EXE",
        "CFGMGR32.DLL",
        "CHKDSK.EXE",
        "CLIP.EXE",
        "CMD.EXE",
        "COMBASE.DLL",
        "COMCTL32.DLL",
        "COMDLG32.DLL",
        "CRYPT32.DLL",
        "CSCRIPT.EXE",
        "D3D11.DLL",
        "D3D9.DLL",
        "DBGHELP.DLL",
        "DHCPCSVC.DLL",
        "DISKPART.EXE",
        "DNSAPI.DLL",
        "DWMAPI.DLL",
        "DXGI.DLL",
        "FIND.EXE",
        "FONTSUB.DLL",
        "GDI32.DLL",
        "HAL.DLL",
        "HID.DLL",
        "ICACLS.EXE",
        "IMM32.DLL",
        "IPCONFIG.EXE",
        "KERNEL32.DLL",
        "KERNELBA.DLL",
        "LSASS.EXE",
        "MPR.DLL",
        "MSCTF.DLL",
        "MSI.DLL",
        "MSVCRT.DLL",
        "NETAPI32.DLL",
        "NETSH.EXE",
        "NOTEPAD.EXE",
        "NTDLL.DLL",
        "NTOSKRNL.EXE",
        "OLE32.DLL",
        "OLEAUT32.DLL",
        "PING.EXE",
        "POWRPROF.DLL",
        "PSAPI.DLL",
        "REG.EXE",
        "REGEDT32.EXE",
        "RPCRT4.DLL",
        "RUNDLL32.EXE",
        "SAMLIB.DLL",
        "SCHANNEL.DLL",
        "SECHOST.DLL",
        "SERVICES.EXE",
        "SETUPAPI.DLL",
        "SHELL32.DLL",
        "SHLWAPI.DLL",
        "SMSS.EXE",
        "SVCHOST.EXE",
        "TASKMGR.EXE",
        "USER32.DLL",
        "USERENV.DLL",
        "UXTHEME.DLL",
        "VERSION.DLL",
        "WINHTTP.DLL",
        "WININET.DLL",
        "WINLOGON.EXE",
        "WINMM.DLL",
        "WINSPOOL.DRV",
        "WINTRUST.DLL",
        "WS2_32.DLL",
        "WTSAPI32.DLL",
        "Window.dll",
        "Windows.dll",
        "winload.efi",
        "winload.exe",
        "wbem",
        "drivers",
        "config",
        "en-US",
        "spool",
        "catroot",
        "catroot2",
        "LogFiles",
        "Tasks",
        "Com",
        "oobe",
        "Sysprep",
        "MicroSD.dll",
        "Micros.dll",
    ];
    const LONG: &[&str] = &[
        "WindowsCodecs.dll",
        "WindowsCodecsExt.dll",
        "WindowsCodecsRaw.dll",
        "WindowsCodecs.tlb",
        "Windows.Storage.dll",
        "windows.storage.search.dll",
        "Windows.UI.Xaml.dll",
        "WindowManagement.dll",
        "WindowsPowerShell",
        "Windows.Media.winmd",
        "windowsudk.shellcommon.dll",
        "Windows.Web.Http.dll",
        "WindowsDefaultHeatProcessor.dll",
        "Windows.Internal.Shell.Broker.dll",
        "windows.immersiveshell.serviceprovider.dll",
        "Windows.Devices.Enumeration.dl_",
        "Wind0wsFake.dll",
        "WinBioPlugIns",
        "WinMetadata",
        "Microsoft.Bluetooth.Proxy.dll",
        "microsoft-windows-kernel-power-events.dll",
        "Microsoft.Management.Infrastructure.dll",
        "MicrosoftAccountTokenProvider.dll",
        "Microsoft.Uev.AppAgent.ps1",
        "Microsoft-Windows-Internal-Shell-NearShareExperience.dll",
        "Micros oft.txt",
        "DriverStore",
        "DriverStore.bak",
        "driverquery.exe",
        "CodeIntegrity",
        "SecurityHealthService.exe",
        "SecurityHealthAgent.dll",
        "SecurityHealthSSO.dll",
        "SecureBootUpdates",
        "Speech_OneCore",
        "SpeechUX",
        "msvcp_win.dll",
        "ucrtbase.dll",
        "vcruntime140.dll",
        "vcruntime140_1.dll",
        "msvcp140.dll",
        "msvcp140_1.dll",
        "msvcp140_2.dll",
        "mfc140u.dll",
        "TextInputFramework.dll",
        "TextShaping.dll",
        "twinapi.appcore.dll",
        "twinui.pcshell.dll",
        "twinui.dll",
    ];
    const API: &[&str] = &[
        "core-file",
        "core-synch",
        "core-heap",
        "core-memory",
        "core-processthreads",
        "core-registry",
        "core-string",
        "core-libraryloader",
        "core-errorhandling",
        "core-handle",
        "core-console",
        "core-datetime",
        "core-debug",
        "core-delayload",
        "core-fibers",
        "core-interlocked",
        "core-io",
        "core-localization",
        "core-namedpipe",
        "core-profile",
        "core-rtlsupport",
        "core-sysinfo",
        "core-timezone",
        "core-util",
        "crt-conio",
        "crt-convert",
        "crt-environment",
        "crt-filesystem",
        "crt-heap",
        "crt-locale",
        "crt-math",
        "crt-multibyte",
        "crt-private",
        "crt-process",
        "crt-runtime",
        "crt-stdio",
        "crt-string",
        "crt-time",
        "crt-utility",
        "security-base",
        "eventing-provider",
        "shell-shellfolders",
    ];
    const EXT: &[&str] = &[
        "ntuser-window",
        "gdi-dc",
        "kernel32-package",
        "shell-shell32",
        "rtcore-ntuser-sysparams",
        "uxtheme-themes",
        "session-usermgr",
    ];
    let mut names: Vec<String> = SHORT.iter().map(|s| (*s).to_owned()).collect();
    names.extend(LONG.iter().map(|s| (*s).to_owned()));
    for api in API {
        for version in ["l1-1-0", "l1-1-1", "l1-2-0", "l2-1-0"] {
            names.push(format!("api-ms-win-{api}-{version}.dll"));
        }
    }
    for ext in EXT {
        for version in ["l1-1-0", "l1-1-1"] {
            names.push(format!("ext-ms-win-{ext}-{version}.dll"));
        }
    }
    names
}

#[test]
fn system32_listing() {
    let owned = system32();
    let listing: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert!(listing.len() > 300, "{} names", listing.len());

    assert_eq!(
        candidates("WINDOW~1.DLL", &listing),
        [
            "WindowsCodecs.dll",
            "WindowsCodecsExt.dll",
            "WindowsCodecsRaw.dll",
            "Windows.Storage.dll",
            "windows.storage.search.dll",
            "Windows.UI.Xaml.dll",
            "WindowManagement.dll",
            "windowsudk.shellcommon.dll",
            "Windows.Web.Http.dll",
            "WindowsDefaultHeatProcessor.dll",
            "Windows.Internal.Shell.Broker.dll",
            "windows.immersiveshell.serviceprovider.dll",
        ]
    );
    assert_eq!(candidates("WINDOW~3", &listing), ["WindowsPowerShell"]);
    assert_eq!(candidates("WINDOW~1.TLB", &listing), ["WindowsCodecs.tlb"]);
    assert_eq!(
        candidates("WINDOW~2.WIN", &listing),
        ["Windows.Media.winmd"]
    );
    assert_eq!(
        candidates("WINDOW~1.DL_", &listing),
        ["Windows.Devices.Enumeration.dl_"]
    );
    assert_eq!(candidates("WIND0W~1.DLL", &listing), ["Wind0wsFake.dll"]);
    assert_eq!(candidates("WINDOW~5.DLL", &listing), Vec::<&str>::new());
    assert_eq!(
        candidates("MICROS~2.DLL", &listing),
        [
            "Microsoft.Bluetooth.Proxy.dll",
            "microsoft-windows-kernel-power-events.dll",
            "Microsoft.Management.Infrastructure.dll",
            "MicrosoftAccountTokenProvider.dll",
            "Microsoft-Windows-Internal-Shell-NearShareExperience.dll",
        ]
    );
    assert_eq!(
        candidates("MICROS~1.PS1", &listing),
        ["Microsoft.Uev.AppAgent.ps1"]
    );
    assert_eq!(candidates("MICROS~1.TXT", &listing), ["Micros oft.txt"]);
    assert_eq!(candidates("DRIVER~1", &listing), ["DriverStore"]);
    assert_eq!(candidates("DRIVER~1.BAK", &listing), ["DriverStore.bak"]);
    assert_eq!(candidates("DRIVER~1.EXE", &listing), ["driverquery.exe"]);
    assert_eq!(candidates("CODEIN~1", &listing), ["CodeIntegrity"]);
    assert_eq!(
        candidates("SECURI~1.DLL", &listing),
        ["SecurityHealthAgent.dll", "SecurityHealthSSO.dll"]
    );
    assert_eq!(
        candidates("SECURI~1.EXE", &listing),
        ["SecurityHealthService.exe"]
    );
    assert_eq!(candidates("SECURE~1", &listing), ["SecureBootUpdates"]);
    // "SpeechUX" is 8.3 itself.
    assert_eq!(candidates("SPEECH~1", &listing), ["Speech_OneCore"]);
    assert_eq!(
        candidates("VCRUNT~2.DLL", &listing),
        ["vcruntime140.dll", "vcruntime140_1.dll"]
    );
    assert_eq!(
        candidates("MSVCP1~1.DLL", &listing),
        ["msvcp140_1.dll", "msvcp140_2.dll"] // msvcp140.dll is 8.3 itself
    );
    assert_eq!(candidates("MSVCP_~1.DLL", &listing), ["msvcp_win.dll"]);
    assert_eq!(
        candidates("TEXTIN~1.DLL", &listing),
        ["TextInputFramework.dll"]
    );
    assert_eq!(
        candidates("TWINAP~1.DLL", &listing),
        ["twinapi.appcore.dll"]
    );
    assert_eq!(candidates("TWINUI~1.DLL", &listing), ["twinui.pcshell.dll"]);
    // 8.3 names (in any case) never appear as candidates.
    assert_eq!(candidates("KERNEL~1.DLL", &listing), Vec::<&str>::new());
    assert_eq!(candidates("UCRTBA~1.DLL", &listing), Vec::<&str>::new());

    let api: Vec<&str> = listing
        .iter()
        .copied()
        .filter(|name| name.starts_with("api-ms-win-"))
        .collect();
    assert_eq!(api.len(), 168);
    assert_eq!(candidates("API-MS~1.DLL", &listing), api);
    assert_eq!(candidates("API-MS~4.DLL", &listing), api);
    let ext: Vec<&str> = listing
        .iter()
        .copied()
        .filter(|name| name.starts_with("ext-ms-win-"))
        .collect();
    assert_eq!(candidates("EXT-MS~2.DLL", &listing), ext);
    // The checksum form names one (checksum computed independently of this module).
    assert_eq!(
        candidates("AP87F4~1.DLL", &listing),
        ["api-ms-win-core-file-l1-1-0.dll"]
    );
    assert_eq!(candidates("AP87F4~1.EXE", &listing), Vec::<&str>::new());

    // Every alias any entry can get lists that entry.
    for long in &listing {
        for n in [1, 2, 4, 5, 7] {
            if let Some(short) = generate(long, n) {
                assert!(
                    candidates(&short, &listing).contains(long),
                    "{long} {short}"
                );
            }
        }
    }
}

// ---- the checksum -------------------------------------------------------------------

/// ReactOS's `RtlpGetCheckSum` (sdk/lib/rtl/dos8dot3.c), ported, with ReactOS's rendering
/// (low nibble first). Kept to show that it does not reproduce Windows' aliases.
fn reactos_hex(name: &str) -> String {
    let units: Vec<u16> = name.encode_utf16().collect();
    let hash = match units.as_slice() {
        [] => 0,
        [only] => *only,
        [first, second, ..] => {
            let mut hash = (first << 8).wrapping_add(*second);
            if units.len() > 2 {
                let mut saved = hash;
                let mut length = 2usize;
                let mut at = 0usize;
                loop {
                    at += 2;
                    let current = units.get(at).copied().unwrap_or(0);
                    hash = (hash << 7).wrapping_add(current);
                    hash = (saved >> 1).wrapping_add(hash << 8);
                    if length + 1 < units.len() {
                        hash = hash.wrapping_add(units.get(at + 1).copied().unwrap_or(0));
                    }
                    saved = hash;
                    length += 2;
                    if length >= units.len() {
                        break;
                    }
                }
            }
            hash
        }
    };
    (0..4)
        .map(|nibble| {
            let digit = (hash >> (4 * nibble)) & 0xf;
            char::from_digit(u32::from(digit), 16).map_or('?', |c| c.to_ascii_uppercase())
        })
        .collect()
}

#[test]
fn reactos_checksum_does_not_reproduce_windows() {
    let windows = [
        ("SomeStuff.aspx", "BC84"),
        ("Rammstein & Tatu - Moscow.mp3", "8E17"),
        ("Rammstein - Asche zu Asche.mp3", "23A6"),
        ("Rammstein - Du Hast.mp3", "0CAE"),
        ("Rammstein - Haifisch.mp3", "6BAA"),
    ];
    for (long, hex) in windows {
        assert_eq!(format!("{:04X}", checksum(long)), hex, "{long}");
        assert_ne!(reactos_hex(long), hex, "{long}");
    }
    assert_eq!(reactos_hex("SomeStuff.aspx"), "95F6");
}

#[test]
fn scramble_matches_the_published_c_arithmetic() {
    for folded in 0..=u16::MAX {
        // int32_t temp = checksum * 314159269; if (temp < 0) temp = -temp;
        // temp -= ((uint64_t)((int64_t)temp * 1152921497) >> 60) * 1000000007;
        let temp = i64::from(i32::from_ne_bytes(
            u32::from(folded).wrapping_mul(314_159_269).to_ne_bytes(),
        ))
        .abs();
        let quotient = (temp * 1_152_921_497) >> 60;
        let reduced = temp - quotient * 1_000_000_007;
        let value = u16::from_le_bytes([reduced.to_le_bytes()[0], reduced.to_le_bytes()[1]]);
        let expected = ((value & 0xf000) >> 12)
            | ((value & 0x0f00) >> 4)
            | ((value & 0x00f0) << 4)
            | ((value & 0x000f) << 12);
        assert_eq!(scramble(folded), expected, "{folded}");
    }
}

// ---- robustness ---------------------------------------------------------------------

/// Checks every property that must hold for any long name.
fn check_any(long: &str) {
    for n in [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        9,
        13,
        14,
        99,
        104,
        100_004,
        1_000_004,
        u32::MAX,
    ] {
        let Some(short) = generate(long, n) else {
            continue;
        };
        assert!(short.is_ascii(), "{long:?} {n} {short:?}");
        assert!(short.len() <= 12, "{long:?} {n} {short:?}");
        assert!(looks_generated(&short), "{long:?} {n} {short:?}");
        assert_eq!(short, short.to_ascii_uppercase(), "{long:?} {n}");
        assert_eq!(
            candidates(&short, &[long]),
            [long],
            "{long:?} {n} {short:?}"
        );
        assert_eq!(
            candidates(&short.to_ascii_lowercase(), &[long]),
            [long],
            "{long:?} {n} {short:?}"
        );
    }
    let _ = looks_generated(long);
    let _ = candidates(long, &[long, "", "Program Files"]);
}

#[test]
fn odd_names_do_not_panic() {
    let long_a = "a".repeat(10_000);
    let long_emoji = "😀".repeat(5_000);
    let long_dots = ".".repeat(1_000);
    let long_spaces = " ".repeat(1_000);
    for name in [
        "",
        ".",
        "..",
        "...",
        "....txt",
        " ",
        "   ",
        " . ",
        "😀",
        "😀😀😀.😀",
        "😀.txt",
        "~",
        "~1",
        "~~~~~~~~~~",
        "\0",
        "\u{7f}\u{7f}",
        ".txt",
        "name.",
        "name. ",
        "a.b.c.d.e",
        "\u{301}\u{301}.\u{301}",
        "\u{FFFD}",
        "İı.txt",
        long_a.as_str(),
        long_emoji.as_str(),
        long_dots.as_str(),
        long_spaces.as_str(),
    ] {
        check_any(name);
    }
    assert_eq!(gen("", 1), None);
    assert!(looks_generated(&gen("...", 1).unwrap_or_default()));
    assert!(looks_generated(&gen("   ", 1).unwrap_or_default()));
    assert!(looks_generated(&gen("😀", 1).unwrap_or_default()));
}

/// A small deterministic generator (xorshift64*), so the property loop needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

#[test]
fn property_loop_over_generated_names() {
    const ALPHABET: &[char] = &[
        'a',
        'b',
        'Z',
        'Y',
        'x',
        '0',
        '9',
        ' ',
        ' ',
        '.',
        '.',
        '~',
        '_',
        '-',
        '+',
        ',',
        ';',
        '=',
        '[',
        ']',
        '(',
        ')',
        '$',
        '&',
        '\'',
        '!',
        '{',
        '}',
        '^',
        '#',
        '%',
        '@',
        '`',
        'é',
        'Ü',
        'ß',
        'ı',
        'İ',
        '日',
        '本',
        '😀',
        '👍',
        '\u{301}',
        '\u{200b}',
        '\u{7f}',
        '\u{1}',
        '\u{FFFD}',
        '\u{10FFFF}',
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut with_alias = 0;
    for round in 0..4_000 {
        let len = if round % 100 == 0 {
            300 + rng.below(300)
        } else {
            rng.below(24)
        };
        let name: String = (0..len)
            .map(|_| {
                ALPHABET
                    .get(rng.below(ALPHABET.len()))
                    .copied()
                    .unwrap_or('a')
            })
            .collect();
        check_any(&name);
        if generate(&name, 1).is_some() {
            with_alias += 1;
        }
        // Random would-be short names against a random directory.
        let short: String = (0..rng.below(14))
            .map(|_| {
                ALPHABET
                    .get(rng.below(ALPHABET.len()))
                    .copied()
                    .unwrap_or('~')
            })
            .collect();
        let _ = looks_generated(&short);
        let _ = candidates(&short, &[name.as_str(), short.as_str()]);
    }
    assert!(with_alias > 3_000, "{with_alias}");
}
