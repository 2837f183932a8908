#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/TARGET/) from the project's fixtures.

Run from anywhere: python3 fuzz/seed.py. Existing corpus files are kept; seeds are named by
content hash (the container seeds by what they are, see `put`), so running it twice adds
nothing. ../shared/hives is used when present.
"""
import hashlib
import pathlib
import re
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
SHARED = REPO.parent / "shared" / "hives"
MAX_SEED = 64 * 1024


def put(target, data, name=None):
    """A seed named by its hash; or by `name` when the tool that made it writes times and
    random identifiers into it (qemu-img, ewfacquire), so that the next run replaces it."""
    corpus = FUZZ / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()
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
    # (l)-(p) disk containers: small real ones, made by qemu-img and ewfacquire (when
    # installed) from the raw disk of `container_disk()`; named, not hashed (see `put`).
    for target, name, data in container_seeds():
        put(target, data, name)


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


def container_disk():
    """A 4 MiB raw disk: 64 KiB that do not compress, 8 KiB of text across the 1 MiB mark
    (a VHDX block, a qcow2 cluster, a VMDK grain and an E01 chunk boundary), zeros elsewhere
    (unallocated blocks, zero clusters and grains, empty chunks). Its second half is zeros,
    so that a 2 MiB VHD block of it is never allocated."""
    disk = bytearray(4 << 20)
    state = 0x9E3779B97F4A7C15
    noise = bytearray()
    while len(noise) < 64 << 10:
        state = (state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        noise += (state >> 32).to_bytes(4, "little")
    disk[: 64 << 10] = noise
    text = b"nextboot container seed, sector by sector. "
    run = (text * (8192 // len(text) + 1))[:8192]
    disk[(1 << 20) - 4096:(1 << 20) + 4096] = run
    return bytes(disk)


def container_seeds():
    """(target, name, bytes) of each container seed; none without the tools."""
    import shutil
    import subprocess
    import tempfile
    disk = container_disk()
    seeds = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)

        def raw(name, data):
            path = tmp / name
            path.write_bytes(data)
            return path

        def qemu(source, fmt, options, out, *extra):
            command = ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, *extra]
            if options:
                command += ["-o", options]
            subprocess.run(command + [str(source), str(tmp / out)], check=True,
                           capture_output=True)
            return (tmp / out).read_bytes()

        if shutil.which("qemu-img"):
            whole = raw("disk.img", disk)
            # vhd: fixed (a 256 KiB disk: a fixed VHD is the disk and a footer) and dynamic
            # (2 MiB blocks: the first allocated, the second not).
            small = raw("small.img", disk[: 256 << 10])
            seeds.append(("container_vhd", "qemu-vpc-fixed",
                          qemu(small, "vpc", "subformat=fixed,force_size=on", "f.vhd")))
            seeds.append(("container_vhd", "qemu-vpc-dynamic",
                          qemu(whole, "vpc", "subformat=dynamic,force_size=on", "d.vhd")))
            # vhdx: dynamic, 1 MiB blocks, of a 2 MiB disk (the first block allocated),
            # compacted: qemu-img puts the first block at 8 MiB, after 4 MiB of zeros.
            half = raw("half.img", disk[: 1 << 20] + bytes(1 << 20))
            vhdx = vhdx_compact(qemu(half, "vhdx", "subformat=dynamic,block_size=1M", "d.vhdx"))
            seeds.append(("container_vhdx", "qemu-vhdx-dynamic", vhdx))
            seeds.append(("container_vhdx", "qemu-vhdx-dynamic-log", vhdx_with_log(vhdx)))
            # vmdk: the two shapes that hold their own descriptor, and descriptor files
            # (monolithicFlat's, whose flat extent is missing here, and the same with a ZERO
            # extent, which opens).
            seeds.append(("container_vmdk", "qemu-vmdk-monolithicSparse",
                          qemu(whole, "vmdk", "subformat=monolithicSparse", "s.vmdk")))
            seeds.append(("container_vmdk", "qemu-vmdk-streamOptimized",
                          qemu(whole, "vmdk", "subformat=streamOptimized", "o.vmdk")))
            descriptor = qemu(small, "vmdk", "subformat=monolithicFlat", "flat.vmdk")
            seeds.append(("container_vmdk", "qemu-vmdk-monolithicFlat-descriptor", descriptor))
            zero = re.sub(rb'FLAT "[^"]*" 0', b"ZERO", descriptor)
            seeds.append(("container_vmdk", "qemu-vmdk-zero-descriptor", zero))
            # qcow2 with 4 KiB clusters: plain and zlib-compressed (-c).
            seeds.append(("container_qcow2", "qemu-qcow2",
                          qemu(whole, "qcow2", "cluster_size=4096", "p.qcow2")))
            seeds.append(("container_qcow2", "qemu-qcow2-compressed",
                          qemu(whole, "qcow2", "cluster_size=4096", "c.qcow2", "-c")))
        if shutil.which("ewfacquire"):
            # E01: deflate (the whole disk; empty chunks compress to little) and stored
            # chunks (the 256 KiB disk: eight 32 KiB chunks as they are).
            for name, compression, data in [
                ("ewfacquire-deflate-fast", "deflate:fast", disk),
                ("ewfacquire-none", "none", disk[: 256 << 10]),
            ]:
                source = raw(name + ".img", data)
                target = tmp / name
                subprocess.run(["ewfacquire", "-u", "-q", "-c", compression, "-t", str(target),
                                str(source)], check=True, capture_output=True)
                seeds.append(("container_ewf", name, target.with_suffix(".E01").read_bytes()))
    return seeds


VHDX_BAT = bytes.fromhex("6677c22d23f600429d64115e9bfd4a08")
MIB = 1 << 20


def vhdx_regions(data):
    """The current header's offset, and the (offset, length) of the log and each region."""
    headers = [0x10000, 0x20000]
    current = max(headers, key=lambda at: struct.unpack_from("<Q", data, at + 8)[0])
    log_length, log_offset = struct.unpack_from("<IQ", data, current + 68)
    count = struct.unpack_from("<I", data, 0x30000 + 8)[0]
    regions = {}
    for i in range(count):
        at = 0x30000 + 16 + 32 * i
        regions[data[at:at + 16]] = struct.unpack_from("<QI", data, at + 16)
    return current, (log_offset, log_length), regions


def vhdx_compact(data):
    """The same VHDX with its payload blocks moved to just after its last structure (the BAT
    is not checksummed; qemu-img reads the result to the same disk)."""
    _, log, regions = vhdx_regions(data)
    end = max([MIB, log[0] + log[1]] + [o + n for o, n in regions.values()])
    end = -(-end // MIB) * MIB
    out = bytearray(data[:end])
    bat_offset, bat_length = regions[VHDX_BAT]
    for at in range(bat_offset, bat_offset + bat_length, 8):
        entry = struct.unpack_from("<Q", data, at)[0]
        state, block = entry & 7, (entry >> 20) * MIB
        if state in (6, 7) and block:
            struct.pack_into("<Q", out, at, state | (len(out) // MIB) << 20)
            out += data[block:block + MIB]
    return bytes(out)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def vhdx_with_log(data):
    """The compacted VHDX with its log to replay: qemu-img's last log entry (a write of the
    BAT's first page) made to write the compacted page and to hold the file's size, its GUID
    set in the current header, both checksums (CRC-32C) redone."""
    out = bytearray(data)
    current, (log_offset, log_length), regions = vhdx_regions(data)
    entries, at = [], log_offset
    while at < log_offset + log_length and out[at:at + 4] == b"loge":
        entries.append(at)
        at += struct.unpack_from("<I", out, at + 8)[0]
    entry = entries[-1]
    length, _, _, descriptors = struct.unpack_from("<IIQI", out, entry + 8)
    for i in range(descriptors):
        d = entry + 64 + 32 * i
        if out[d:d + 4] != b"desc":
            continue
        page_at = struct.unpack_from("<Q", out, d + 16)[0]
        page = out[page_at:page_at + 4096]
        sector = entry + 4096 * (1 + sum(out[entry + 64 + 32 * j:entry + 68 + 32 * j] == b"desc"
                                          for j in range(i)))
        out[d + 4:d + 8] = page[4092:4096]
        out[d + 8:d + 16] = page[0:8]
        out[sector + 8:sector + 4092] = page[8:4092]
    struct.pack_into("<QQ", out, entry + 48, len(out), len(out))
    struct.pack_into("<I", out, entry + 4, 0)
    struct.pack_into("<I", out, entry + 4, crc32c(out[entry:entry + length]))
    out[current + 48:current + 64] = out[entry + 32:entry + 48]
    struct.pack_into("<I", out, current + 4, 0)
    struct.pack_into("<I", out, current + 4, crc32c(out[current:current + 4096]))
    return bytes(out)


if __name__ == "__main__":
    main()
