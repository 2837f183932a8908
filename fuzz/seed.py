#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/TARGET/) from the project's fixtures.

Run from anywhere: python3 fuzz/seed.py. Existing corpus files are kept; seeds are named by
content hash, so running it twice adds nothing. ../shared/hives is used when present.
"""
import hashlib
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
SHARED = REPO.parent / "shared" / "hives"
MAX_SEED = 64 * 1024


def put(target, data):
    corpus = FUZZ / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    (corpus / name).write_bytes(data)


def files(*patterns):
    for pattern in patterns:
        for path in sorted(REPO.glob(pattern)):
            if path.is_file() and path.stat().st_size <= MAX_SEED:
                yield path


def utf16(text):
    return text.encode("utf-16-le")


# What an attacker writes into evidence (issue 15): every unsafe character, ANSI sequences, a
# fake report line, a .reg directive after a line end, a right-to-left override, formulas.
UNSAFE = "".join(
    chr(c)
    for c in list(range(1, 0x20)) + [0x7F] + list(range(0x80, 0xA0))
    + [0x61C, 0x200E, 0x200F, 0x2028, 0x2029] + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A))
)
ATTACKS = [
    "all" + UNSAFE + "end",
    "\x1b[2J\x1b[H\x1b]0;owned\x07",
    "\r\n#9    UPGRADE      rename  (PendingFileRenameOperations #18)\r\n",
    "\r\n[-HKEY_LOCAL_MACHINE\\NB_SYSTEM\\Select]\r\n",
    "evil\u202elld.exe",
    "=HYPERLINK(\"http://x\",\"y\")",
    "+1", "-2", "@SUM(A1)", "\tTAB", "\rCR",
    "HKLM\\NB_SYSTEM", "HKU\\Offline System", "HKLM\\a]b", "HKLM\\x\r\n[-HKEY_LOCAL_MACHINE\\SYSTEM]",
]

QUEUES = [
    "\\??\\C:\\WINDOWS\\system32\\SET1.tmp\0!\\??\\C:\\WINDOWS\\system32\\File.dll\0\0",
    "\\??\\C:\\a.tmp\0!\\??\\C:\\a.dll\0\\??\\C:\\old.log\0\0\\??\\C:\\b.tmp\0\\??\\C:\\b.dll\0\0",
    "*1\\??\\C:\\s1\0*1!\\??\\C:\\d1\0\\??\\C:\\s2\0@\\??\\C:\\d2\0@\\??\\C:\\gone\0\0\0",
    "\\??\\C:\\x\0\0\0",
    "\\SystemRoot\\System32\\a.dll\0\\Device\\HarddiskVolume3\\b.dll\0\0",
    "a\0b",
    "\0\0",
] + ["\\??\\C:\\Windows\\System32\\SET" + a + ".tmp\0!\\??\\C:\\" + a + "\0\0" for a in ATTACKS]

# What names an action list: the commands servicing writes, their variations, and broken ones.
COMMANDS = [
    "C:\\Windows\\System32\\poqexec.exe /display_progress \\SystemRoot\\WinSxS\\pending.xml",
    "poqexec.exe /display_progress \\SystemRoot\\WinSxS\\pending.xml",
    "%SystemRoot%\\system32\\poqexec.exe /display_progress %SystemRoot%\\WinSxS\\pending.xml",
    "poqexec.exe %systemroot%\\WinSxS\\pending.xml",
    "poqexec.exe /display_progress \\??\\C:\\Users\\x\\AppData\\Local\\Temp\\pending.xml",
    '"C:\\Program Files\\x\\POQEXEC.EXE" "C:\\Users\\a b\\pending.xml" /log',
    '"C:\\Windows\\System32\\poqexec.exe" /display_progress "\\SystemRoot\\WinSxS\\pending.xml"',
    "C:/Windows/System32/PoqExec /display_progress\t\\SystemRoot\\WinSxS\\pending.xml",
    "poqexec.exe \"\"",
    "poqexec.exe",
    "poqexec.exe /display_progress",
    "poqexec.exe /a /b /c",
    "/display_progress",
    "",
    " \t ",
    '"',
    'poqexec.exe "\\SystemRoot\\WinSxS\\pending.xml',
    'poqexec.exe \\SystemRoot\\Win"Sx"S\\pending.xml',
    '"poqexec.exe /display_progress \\SystemRoot\\WinSxS\\pending.xml"',
    "autocheck autochk *",
    "notpoqexec.exe \\SystemRoot\\WinSxS\\pending.xml",
    "poqexec.exe %SystemRoo",
    "poqexec.exe \\SystemRoot\\WinSxS\\\u00e9\u202epending.xml",
]
COMMAND_PARTS = [
    ["poqexec.exe", "/display_progress", "\\SystemRoot\\WinSxS\\pending.xml"],
    ["C:\\Windows\\System32\\poqexec.exe", "/display_progress", "\\??\\C:\\Users\\x\\AppData\\Local\\Temp\\pending.xml"],
    ["C:\\Program Files\\poqexec.exe", "C:\\Users\\a b\\pending.xml", "/log"],
    ["poqexec.exe", "", " ", "%SystemRoot%\\WinSxS\\pending.xml"],
    ["poqexec.exe", "/display_progress"],
]


def main():
    # (a) hives: the demo volume's SYSTEM, the malformed corpus, small real hives.
    for path in files(
        "testdata/scenarios/*/Windows/System32/config/SYSTEM",
        "testdata/malformed/hive/*",
    ):
        put("hive_read", path.read_bytes())
    if SHARED.is_dir():
        for path in sorted(SHARED.rglob("*")):
            if path.is_file() and path.stat().st_size <= MAX_SEED:
                put("hive_read", path.read_bytes())
    # (b) queue values: flags, split point, UTF-16 bytes.
    for i, text in enumerate(QUEUES):
        data = utf16(text)
        put("queue_decode", bytes([0]) + struct.pack("<H", 0) + data)
        put("queue_decode", bytes([1]) + struct.pack("<H", len(data) // 2 | 1) + data)
        put("queue_decode", bytes([7 if i % 2 else 3]) + struct.pack("<H", 6) + data + b"\x41")
    # (c) log replay: each mode with and without rehashing, and small patches.
    for mode in range(16):
        put("log_replay", bytes([mode]))
        put("log_replay", bytes([mode, 0x00, 0x02, 0x00]) + b"HvLE")
        put("log_replay", bytes([mode, 0x28, 0x02, 0x00]) + struct.pack("<I", 1))
    # (d) PE files: the fixtures and the malformed corpus.
    for path in files("testdata/pe/bin/*.dll", "testdata/pe/bin/*.exe", "testdata/malformed/pe/*"):
        put("pe_version", path.read_bytes())
    # A FileVersion string that is an attack (same length: ESC [2J, CR, LF, RLO, BEL, DEL, CSI).
    v8 = (REPO / "testdata/pe/bin/file_v8.dll").read_bytes()
    plain = utf16("8.0.2195.6")
    at = v8.find(plain)
    if at >= 0:
        put("pe_version", v8[:at] + utf16("\x1b[2J\r\n\u202e\x07\x7f\x9b") + v8[at + len(plain):])
    # (e) NT paths.
    for path in [
        "\\??\\C:\\Windows\\System32\\kernel32.dll",
        "\\??\\c:\\windows\\sys\\KERNEL32.DLL",
        "\\SystemRoot\\System32\\drivers\\x.sys",
        "\\??\\Volume{1234-abcd}\\Windows\\abs\\x.sys",
        "\\Device\\HarddiskVolume3\\PROGRA~1\\COMMON~1\\ALONGF~1.TXT",
        "\\??\\D:\\Common Files\\A Long File Name.txt",
        "\\DosDevices\\C:\\Windows\\System32\\up\\secret",
        "\\GLOBAL??\\C:\\escape",
        "\\??\\C:\\loop\\x",
        "\\??\\C:\\Windows\\host\\secret",
        "\\??\\C:\\Case\\file.txt",
        "\\??\\C:\\Case\\backslashes\\x",
        "\\??\\C:\\STRASSE.DLL",
        "\\??\\C:\\Windows\\x.dll::$DATA",
        "\\??\\UNC\\server\\share",
    ]:
        put("nt_path", path.encode("utf-8"))
    for attack in ATTACKS:
        put("nt_path", ("\\??\\C:\\Windows\\" + attack).encode("utf-8"))
    # (f) output escaping: the attacks as they are.
    for attack in ATTACKS:
        put("output_text", attack.encode("utf-8"))
    # (g) action lists: the shape of the public Windows Downdate template, and pieces of it.
    template = (
        '\ufeff<?xml version="1.0" encoding="utf-8"?>\n'
        '<PendingTransaction Version="3.1" WcpVersion="10.0.22621.2567" '
        'Identifier="916ae75edb30da0146730000dc1be027">\n'
        '<Transactions><Transaction id="1"/></Transactions>\n'
        '<POQ postAction="reboot">\n'
        '<BeginTransaction id="1"/>\n'
        '<CreateDirectory path="\\SystemRoot\\WinSxS\\Temp\\x" fileAttribute="0x10"/>\n'
        '<HardlinkFile source="\\??\\C:\\Users\\a\\Desktop\\ntoskrnl.exe" '
        'destination="\\SystemRoot\\System32\\ntoskrnl.exe"/>\n'
        '<MoveFile source="a" destination="b"/><DeleteFile path="c &amp; d"/>\n'
        '<SetKeyValue path="\\Registry\\Machine\\SOFTWARE\\x" name="v"/><Checkpoint/>\n'
        '</POQ><POQ><DeleteFile path="later"/></POQ></PendingTransaction>\n'
    )
    put("action_list", template.encode("utf-8"))
    put("action_list", b'<MoveFile source="a" destination="b"/><HardlinkFile source="x" destination="y"/>')
    put("action_list", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><PendingTransaction Identifier="&a;"/>')
    put("action_list", b"<PendingTransaction>" + b"<a>" * 100)
    # (h) poqexec commands (SetupExecute, PoqexecCmdline) as UTF-8, as UTF-16LE strings (REG_SZ
    # with its NUL) and as REG_MULTI_SZ (one string per argument, as Windows Downdate writes
    # PoqexecCmdline); COMPONENTS PendingXmlIdentifier as REG_BINARY.
    for command in COMMANDS:
        put("poqexec_command", command.encode("utf-8"))
        put("poqexec_command", utf16(command + "\0"))
    for parts in COMMAND_PARTS:
        put("poqexec_command", utf16("".join(p + "\0" for p in parts) + "\0"))
    put("poqexec_command", utf16("".join(c + "\0" for c in COMMANDS[:4]) + "\0"))
    identifier = "916ae75edb30da0146730000dc1be027"
    put("poqexec_command", utf16(identifier))
    put("poqexec_command", utf16(identifier + "\0"))
    put("poqexec_command", utf16(identifier.upper() + "\0\0"))
    put("poqexec_command", utf16(identifier)[:-1])
    put("poqexec_command", utf16(identifier) + b"\x00\xd8")
    put("poqexec_command", b"\x3d\xd8\x00\xde" + utf16(identifier))
    # (i) NTFS volumes: a 1 MiB volume from mkntfs with a few files and folders (when mkntfs
    # and wimlib are installed), whole and with its first MFT records damaged.
    ntfs = ntfs_seed()
    if ntfs:
        put("ntfs_volume", ntfs)
        damaged = bytearray(ntfs)
        damaged[0x4000 + 0x1FE] ^= 0xFF
        put("ntfs_volume", bytes(damaged))
    # (j) partition tables: 64 KiB disks from sfdisk (GPT with both headers; MBR with an
    # extended partition of two logical ones), whole and with the primary GPT header damaged.
    for script in [
        "label: gpt\nfirst-lba: 34\nstart=40, size=40\nstart=80, size=10\n",
        "label: dos\nstart=1, size=20, type=7\nstart=21, size=60, type=f\n"
        "start=23, size=10, type=7\nstart=35, size=10, type=7\n",
    ]:
        disk = sfdisk_seed(script)
        if disk:
            put("partition_table", disk)
            if script.startswith("label: gpt"):
                damaged = bytearray(disk)
                damaged[512 + 20] ^= 0xFF
                put("partition_table", bytes(damaged))


def sfdisk_seed(script):
    import shutil
    import subprocess
    import tempfile
    if not shutil.which("sfdisk"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        image = pathlib.Path(tmp) / "disk.img"
        with open(image, "wb") as f:
            f.truncate(64 << 10)
        subprocess.run(["sfdisk", "-q", str(image)], input=script.encode(), check=True,
                       capture_output=True)
        return image.read_bytes()


def ntfs_seed():
    import shutil
    import subprocess
    import tempfile
    if not (shutil.which("mkntfs") and shutil.which("wimcapture") and shutil.which("wimapply")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tree = tmp / "tree" / "Windows" / "System32"
        tree.mkdir(parents=True)
        (tree / "file.dll").write_bytes((REPO / "testdata/pe/bin/file_v8.dll").read_bytes())
        (tree / "A Long File Name.txt").write_bytes(b"x" * 5000)
        for i in range(40):
            (tree.parent / f"entry{i:03}").write_bytes(b"%d" % i)
        image = tmp / "seed.img"
        with open(image, "wb") as f:
            f.truncate(2 << 20)
        subprocess.run(["mkntfs", "-q", "-F", "-Q", "-c", "512", str(image)], check=True,
                       capture_output=True)
        subprocess.run(["wimcapture", str(tmp / "tree"), str(tmp / "t.wim"), "--compress=none"],
                       check=True, capture_output=True)
        subprocess.run(["wimapply", str(tmp / "t.wim"), "1", str(image)], check=True,
                       capture_output=True)
        return image.read_bytes()


if __name__ == "__main__":
    main()
