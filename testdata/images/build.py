#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Debian packages this builder needs (CI installs them with apt):
#   ntfs-3g     mkntfs, ntfs-3g (FUSE), ntfsinfo, ntfscat, ntfsls, ntfslabel
#   fdisk       sfdisk
#   mount       losetup (layout "gpt4k" only: this sfdisk has no --sector-size)
#   coreutils   dd, truncate
#   libwim15    XPRESS/LZX compressors for "wof" files (loaded with ctypes)
#   python3     3.11
#   dosfstools, mtools    only for partitions with "fs": "fat"
"""Builds NTFS disk images for nextboot's tests, and an oracle manifest.

    python3 testdata/images/build.py SPEC.json OUT.img MANIFEST.json

Every NTFS volume is made by mkntfs as a file of its own, populated through an ntfs-3g
FUSE mount, patched where ntfs-3g cannot make what is asked (valid data length, dirty
flag, unclean $LogFile), checked with ntfsinfo/ntfscat/ntfsls, then copied into the disk
image at its partition's offset. See README.md beside this file for the spec format.

Exit status: 0 built; 1 the build failed or what is in the image is not what was asked;
2 the spec is malformed; 3 this machine cannot build images (a tool is missing, FUSE or
loop devices are refused): the first line on stderr then says why, plainly.
"""

import contextlib
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid

GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
MIB = 1 << 20

FILE_ATTRIBUTE_COMPRESSED = 0x800
FILE_ATTRIBUTE_SPARSE_FILE = 0x200
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_WOF = 0x80000017
ATTR_FLAG_COMPRESSED = 0x0001
ATTR_FLAG_SPARSE = 0x8000

# WOF algorithm: (FILE_PROVIDER_EXTERNAL_INFO_V1.Algorithm, chunk size, libwim ctype)
WOF_ALGORITHMS = {
    "xpress4k": (0, 4096, 1),
    "lzx": (1, 32768, 2),
    "xpress8k": (2, 8192, 1),
    "xpress16k": (3, 16384, 1),
}

SPECIAL_KINDS = {
    "compressed",
    "compressed_dir",
    "sparse",
    "fragmented",
    "attribute_list",
    "mft_fragmented",
    "big_folder",
    "junction",
    "symlink",
    "dos_name",
    "unicode",
    "valid_data_length",
    "wof",
    "hard_link",
    "hiberfil",
}

# The tools' locale: names are printed and parsed as UTF-8.
TOOL_ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")


class EnvError(Exception):
    """This machine cannot build images (exit 3)."""


class SpecError(Exception):
    """The spec is malformed (exit 2)."""


class BuildError(Exception):
    """The build failed, or the image is not what was asked (exit 1)."""


def log(msg):
    if os.environ.get("NEXTBOOT_IMAGE_VERBOSE"):
        print(f"build.py: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Running tools


def need_tool(name, package):
    if shutil.which(name) is None:
        raise EnvError(f"{name} is not installed (Debian package {package})")


def run(cmd, stdin=None, check=True, binary=False):
    """Runs a tool; returns its stdout (text unless `binary`)."""
    log(" ".join(str(c) for c in cmd))
    try:
        p = subprocess.run(
            [str(c) for c in cmd],
            input=stdin,
            capture_output=True,
            env=TOOL_ENV,
        )
    except FileNotFoundError as e:
        raise EnvError(f"{cmd[0]} is not installed ({e})")
    if check and p.returncode != 0:
        raise BuildError(
            f"{' '.join(str(c) for c in cmd)} exited {p.returncode}:\n"
            + p.stderr.decode("utf-8", "replace")
            + p.stdout.decode("utf-8", "replace")[-2000:]
        )
    if binary:
        return p.stdout if check else p
    if check:
        return p.stdout.decode("utf-8", "surrogateescape")
    return p


def check_fuse():
    if not os.path.exists("/dev/fuse"):
        raise EnvError("FUSE is not available: /dev/fuse does not exist")
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        raise EnvError(f"FUSE is refused: cannot open /dev/fuse ({e.strerror})")


def umount(mnt):
    for attempt in range(50):
        if os.geteuid() == 0:
            p = run(["umount", mnt], check=False)
        else:
            p = run(["fusermount", "-u", mnt], check=False)
        if p.returncode == 0:
            return
        if b"not mounted" in p.stderr or b"not found in" in p.stderr:
            return
        time.sleep(0.05)
    raise BuildError(f"cannot unmount {mnt}: {p.stderr.decode('utf-8', 'replace')}")


@contextlib.contextmanager
def mounted(vol, mnt):
    """An ntfs-3g FUSE mount of the volume file `vol` on `mnt`, unmounted on the way out
    (ntfs-3g writes everything back before umount returns)."""
    p = run(["ntfs-3g", "-o", "streams_interface=windows", vol, mnt], check=False)
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace")
        if "fuse" in err.lower() and ("denied" in err.lower() or "not" in err.lower()):
            raise EnvError(f"FUSE mount refused: {err.strip().splitlines()[0]}")
        raise BuildError(f"ntfs-3g could not mount {vol}: {err}")
    try:
        yield mnt
    finally:
        umount(mnt)


# --------------------------------------------------------------------------------------
# Content


def pe_like(n, seed):
    """An n-byte file that looks like a PE image: MZ/PE headers, three sections of
    code-like bytes, strings and zero padding; compressible, not trivially."""
    rng = random.Random(seed)
    out = bytearray(max(n, 0x400))
    out[0:2] = b"MZ"
    struct.pack_into("<I", out, 0x3C, 0x80)
    stub = b"This program cannot be run in DOS mode.\r\r\n$"
    out[0x4E : 0x4E + len(stub)] = stub
    out[0x80:0x84] = b"PE\0\0"
    body = max(n, 0x400) - 0x400
    sect = [(b".text", 0x60000020), (b".rdata", 0x40000040), (b".rsrc", 0x40000040)]
    sizes = [body // 2 & ~0x1FF, body // 4 & ~0x1FF]
    sizes.append(body - sizes[0] - sizes[1])
    # COFF header: x64, 3 sections, optional header of PE32+ (240 bytes), DLL.
    struct.pack_into("<HHIIIHH", out, 0x84, 0x8664, 3, 0x5F5E1000 + seed % 1000, 0, 0, 240, 0x2022)
    opt = 0x98
    struct.pack_into("<HBB", out, opt, 0x20B, 14, 0)
    struct.pack_into("<III", out, opt + 4, sizes[0], sizes[1] + sizes[2], 0)
    struct.pack_into("<II", out, opt + 16, 0x1000, 0x1000)
    struct.pack_into("<Q", out, opt + 24, 0x180000000)
    struct.pack_into("<II", out, opt + 32, 0x1000, 0x200)
    struct.pack_into("<HHHHHH", out, opt + 40, 10, 0, 10, 0, 10, 0)
    image_size = 0x1000 + sum((s + 0xFFF) & ~0xFFF for s in sizes)
    struct.pack_into("<III", out, opt + 56, image_size, 0x400, 0)
    struct.pack_into("<HH", out, opt + 68, 3, 0x160)  # GUI subsystem, DLL characteristics
    struct.pack_into("<I", out, opt + 108, 16)  # NumberOfRvaAndSizes
    table = opt + 240
    raw, rva = 0x400, 0x1000
    for i, ((name, chars), size) in enumerate(zip(sect, sizes)):
        e = table + 40 * i
        out[e : e + 8] = name.ljust(8, b"\0")
        struct.pack_into("<IIII", out, e + 8, size, rva, size, raw)
        struct.pack_into("<I", out, e + 36, chars)
        raw += size
        rva += (size + 0xFFF) & ~0xFFF
    # .text: instructions from a small vocabulary, with random immediates.
    ops = [
        b"\x48\x89\x5c\x24", b"\x48\x83\xec", b"\xe8", b"\x48\x8b\xc8", b"\x33\xc0", b"\xc3",
        b"\xcc" * 4, b"\x0f\x1f\x44\x00\x00", b"\x48\x8d\x0d", b"\xff\x15",
    ]
    pos, end = 0x400, 0x400 + sizes[0]
    while pos < end:
        chunk = rng.choice(ops) + rng.randbytes(rng.choice([0, 1, 4]))
        out[pos : min(end, pos + len(chunk))] = chunk[: end - pos]
        pos += len(chunk)
    # .rdata: strings and tables.
    words = [
        b"Kernel32.dll", b"RtlUnwind", b"GetProcAddress", b"Microsoft Corporation",
        b"FileVersion", b"%s\\%s", b"CreateFileW", b"Software\\Microsoft\\Windows",
    ]
    pos, end = 0x400 + sizes[0], 0x400 + sizes[0] + sizes[1]
    while pos < end:
        chunk = rng.choice(words) + b"\0" * rng.choice([1, 2, 4]) + rng.randbytes(rng.choice([0, 8]))
        out[pos : min(end, pos + len(chunk))] = chunk[: end - pos]
        pos += len(chunk)
    # .rsrc: UTF-16 strings, then zeros.
    pos, end = 0x400 + sizes[0] + sizes[1], max(n, 0x400)
    text = "Version 10.0.19041.1 (WinBuild.160101.0800) ".encode("utf-16-le")
    while pos < end - (end - pos) // 3:
        out[pos : min(end, pos + len(text))] = text[: end - pos]
        pos += len(text)
    return bytes(out[:n])


def make_content(c, seed_hint):
    """Bytes of a `content` spec."""
    if c is None:
        raise SpecError("no content")
    if not isinstance(c, dict):
        raise SpecError(f"content must be an object: {c!r}")
    seed = c.get("seed", seed_hint)
    if not isinstance(seed, int):
        seed = int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:8], "little")
    if "random" in c:
        return random.Random(seed).randbytes(int(c["random"]))
    if "text" in c:
        return c["text"].encode("utf-8")
    if "pe_like" in c:
        return pe_like(int(c["pe_like"]), seed)
    if "zeros" in c:
        return bytes(int(c["zeros"]))
    if "segments" in c:
        size = int(c["size"])
        out = bytearray(size)
        for i, seg in enumerate(c["segments"]):
            data = make_content(seg["content"], f"{seed}/{i}")
            off = int(seg["offset"])
            if off + len(data) > size:
                raise SpecError(f"segment at {off} of {len(data)} bytes passes size {size}")
            out[off : off + len(data)] = data
        return bytes(out)
    raise SpecError(f"unknown content {c!r}: want random, text, pe_like, zeros or segments")


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def norm_path(p):
    p = p.replace("\\", "/").strip("/")
    if not p or any(part in ("", ".", "..") for part in p.split("/")):
        raise SpecError(f"bad path in volume: {p!r}")
    return p


# --------------------------------------------------------------------------------------
# Reading the image with ntfs-3g's tools (the oracle)


def parse_int(v):
    v = v.strip()
    m = re.search(r"\((0x[0-9a-fA-F]+)\)\s*$", v)
    if m:
        return int(m.group(1), 16)
    m = re.match(r"(0x[0-9a-fA-F]+|-?\d+)", v)
    if m:
        return int(m.group(1), 0)
    return None


class Attr:
    def __init__(self, name, code, record):
        self.name, self.code, self.record = name, code, record
        self.fields = {}
        self.runs = []  # (vcn, lcn or None for a hole, length)

    def get(self, key):
        v = self.fields.get(key)
        return None if v is None else parse_int(v)

    @property
    def unnamed(self):
        return self.get("Name length") == 0

    @property
    def resident(self):
        return self.fields.get("Resident", "").strip() == "Yes"


class Inode:
    def __init__(self, text):
        self.text = text
        self.number = None
        self.header = {}
        self.attrs = []
        self.total_runs = None
        cur = None
        in_runs = False
        for line in text.splitlines():
            m = re.match(r"Dumping Inode (\d+)", line)
            if m:
                self.number = int(m.group(1))
                continue
            m = re.match(r"Dumping attribute (\$\w+) \((0x[0-9a-f]+)\) from mft record (\d+)", line)
            if m:
                cur = Attr(m.group(1), int(m.group(2), 16), int(m.group(3)))
                self.attrs.append(cur)
                in_runs = False
                continue
            m = re.match(r"Total runs: (\d+)", line)
            if m:
                self.total_runs = int(m.group(1))
                continue
            if in_runs:
                m = re.match(r"^\t\t\t(0x[0-9a-f]+)\t+(0x[0-9a-f]+|<[A-Z_]+>)\t+(0x[0-9a-f]+)\s*$", line)
                if m:
                    # ntfsinfo prints the VCNs an extent does not map as <RL_NOT_MAPPED>.
                    if m.group(2) != "<RL_NOT_MAPPED>":
                        lcn = None if m.group(2).startswith("<") else int(m.group(2), 16)
                        cur.runs.append((int(m.group(1), 16), lcn, int(m.group(3), 16)))
                    continue
                in_runs = False
            if line.startswith("\tRunlist:"):
                in_runs = True
                continue
            if line.startswith("\t") and not line.startswith("\t\t"):
                body = line.strip()
                if ":" in body:
                    k, v = body.split(":", 1)
                else:
                    parts = re.split(r"\t+", body, maxsplit=1)
                    if len(parts) != 2:
                        continue
                    k, v = parts
                k, v = k.strip(), v.strip()
                target = cur.fields if cur is not None else self.header
                # Attributes with several $FILE_NAME keep the first; names are listed apart.
                target.setdefault(k, v)
                if cur is not None and k == "Filename":
                    cur.fields["Filename"] = v
            elif cur is None and ":" in line:
                k, v = line.split(":", 1)
                self.header.setdefault(k.strip(), v.strip())

    def find(self, name, unnamed=None):
        return [a for a in self.attrs if a.name == name and (unnamed is None or a.unnamed == unnamed)]

    def data(self):
        """The extents of the unnamed $DATA attribute, lowest VCN first."""
        ext = self.find("$DATA", unnamed=True)
        return sorted(ext, key=lambda a: a.get("Lowest VCN") or 0)

    def file_names(self):
        out = []
        for a in self.find("$FILE_NAME"):
            name = a.fields.get("Filename", "")
            if name.startswith("'") and name.endswith("'"):
                name = name[1:-1]
            out.append((a.fields.get("Namespace", ""), name))
        return out

    def si_attributes(self):
        si = self.find("$STANDARD_INFORMATION")
        return si[0].get("File attributes") if si else None


def ntfsinfo(vol, path=None, inode=None):
    args = ["ntfsinfo", "-f", "-t", "-v"]
    args += ["-F", "/" + path] if path is not None else ["-i", str(inode)]
    p = run(args + [vol], check=False)
    text = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0 or "Dumping Inode" not in text:
        raise BuildError(
            f"ntfsinfo cannot find {'/' + path if path is not None else 'inode %d' % inode} "
            f"in {vol}: {p.stderr.decode('utf-8', 'replace').strip()}"
        )
    return Inode(text)


def ntfscat(vol, path, attr_type=None, attr_name=None):
    args = ["ntfscat", "-f"]
    if attr_type is not None:
        args += ["-a", hex(attr_type)]
    if attr_name is not None:
        args += ["-n", attr_name]
    return run(args + [vol, "/" + path], binary=True)


def ntfsls_tree(vol):
    """{path: (mft record, size, is_dir)} for every name in the volume, from ntfsls."""
    out = run(["ntfsls", "-f", "-R", "-l", "-i", "-F", vol])
    tree = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("/") and line.endswith(":"):
            cur = line[1:-1].strip("/")
            continue
        m = re.match(r"^\s*(\d+)\s+(\d+)\s+\S+\s+\d+\s+\d\d:\d\d\s+\d{4} (.*)$", line)
        if not m or cur is None:
            continue
        name = m.group(3)
        is_dir = name.endswith("/")
        name = name.rstrip("/")
        if name in (".", ".."):
            continue
        path = f"{cur}/{name}" if cur else name
        tree[path] = (int(m.group(1)), int(m.group(2)), is_dir)
    return tree


# --------------------------------------------------------------------------------------
# Raw edits of MFT records, after unmount


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


class RawNtfs:
    """The NTFS volume file `vol`, read and patched record by record. Multi-sector
    fixups are undone on read and applied again on write (with the next update sequence
    number); records 0-3 are written to $MFTMirr too."""

    def __init__(self, vol):
        self.vol = vol
        with open(vol, "rb") as f:
            bs = f.read(512)
        if bs[3:11] != b"NTFS    ":
            raise BuildError(f"{vol} has no NTFS boot sector")
        self.bps = u16(bs, 0x0B)
        spc = bs[0x0D]
        spc = 1 << (256 - spc) if spc > 0x80 else spc
        self.cs = self.bps * spc
        self.mft_lcn = u64(bs, 0x30)
        self.mirr_lcn = u64(bs, 0x38)
        cpr = struct.unpack_from("<b", bs, 0x40)[0]
        self.rs = cpr * self.cs if cpr > 0 else 1 << -cpr
        self.serial = u64(bs, 0x48)
        mft = ntfsinfo(vol, inode=0)
        self.mft_runs = [r for a in mft.data() for r in a.runs]

    def _vcn_offset(self, runs, byte):
        vcn, within = divmod(byte, self.cs)
        for v, lcn, length in runs:
            if v <= vcn < v + length and lcn is not None:
                return (lcn + vcn - v) * self.cs + within
        raise BuildError(f"byte {byte} of $MFT is not mapped")

    def record_offset(self, n):
        start = self._vcn_offset(self.mft_runs, n * self.rs)
        if self._vcn_offset(self.mft_runs, n * self.rs + self.rs - 1) != start + self.rs - 1:
            raise BuildError(f"MFT record {n} is split across runs")
        return start

    def read_record(self, n):
        with open(self.vol, "rb") as f:
            f.seek(self.record_offset(n))
            rec = bytearray(f.read(self.rs))
        if rec[0:4] != b"FILE":
            raise BuildError(f"MFT record {n} has no FILE signature")
        usa, count = u16(rec, 4), u16(rec, 6)
        usn = rec[usa : usa + 2]
        for i in range(1, count):
            pos = i * 512 - 2
            if rec[pos : pos + 2] != usn:
                raise BuildError(f"MFT record {n}: fixup mismatch at {pos}")
            rec[pos : pos + 2] = rec[usa + 2 * i : usa + 2 * i + 2]
        return rec

    def write_record(self, n, rec):
        rec = bytearray(rec)
        usa, count = u16(rec, 4), u16(rec, 6)
        usn = u16(rec, usa) + 1
        if usn >= 0xFFFF:
            usn = 1
        struct.pack_into("<H", rec, usa, usn)
        for i in range(1, count):
            pos = i * 512 - 2
            rec[usa + 2 * i : usa + 2 * i + 2] = rec[pos : pos + 2]
            struct.pack_into("<H", rec, pos, usn)
        offsets = [self.record_offset(n)]
        if n < 4:
            offsets.append(self.mirr_lcn * self.cs + n * self.rs)
        with open(self.vol, "r+b") as f:
            for off in offsets:
                f.seek(off)
                f.write(rec)

    @staticmethod
    def attributes(rec):
        off = u16(rec, 0x14)
        while off + 8 <= len(rec):
            t = u32(rec, off)
            if t == 0xFFFFFFFF:
                return
            length = u32(rec, off + 4)
            if length == 0:
                return
            yield off, t, rec[off + 8], rec[off + 9]  # offset, type, non-resident, name length
            off += length

    def set_initialized_size(self, records, value):
        """Sets the initialized size of the first extent of the unnamed $DATA, looked for in
        `records` (the base record, then extension records)."""
        for n in records:
            rec = self.read_record(n)
            for off, t, nonres, name_len in self.attributes(rec):
                if t == 0x80 and nonres and name_len == 0 and u64(rec, off + 0x10) == 0:
                    data_size = u64(rec, off + 0x30)
                    if value > data_size:
                        raise BuildError(f"valid length {value} passes data size {data_size}")
                    struct.pack_into("<Q", rec, off + 0x38, value)
                    self.write_record(n, rec)
                    return
        raise BuildError(f"no non-resident unnamed $DATA in records {records}")

    def set_volume_dirty(self):
        rec = self.read_record(3)
        for off, t, nonres, _ in self.attributes(rec):
            if t == 0x70 and not nonres:
                value = off + u16(rec, off + 0x14)
                struct.pack_into("<H", rec, value + 10, u16(rec, value + 10) | 0x0001)
                self.write_record(3, rec)
                return
        raise BuildError("no $VOLUME_INFORMATION in MFT record 3")

    def write_unclean_logfile(self):
        """Two identical restart pages (version 1.1) whose restart area has a client in use
        and no RESTART_VOLUME_IS_CLEAN flag: a volume Windows did not shut down cleanly.
        The log record pages after them stay empty."""
        info = ntfsinfo(self.vol, inode=2)
        data = info.data()
        file_size = data[0].get("Data size")
        lcn = data[0].runs[0][1]
        if data[0].runs[0][2] * self.cs < 8192:
            raise BuildError("$LogFile's first run is shorter than two pages")
        page = bytearray(4096)
        usa_ofs, usa_count, ra_ofs = 0x1E, 1 + 4096 // 512, 0x30
        page[0:4] = b"RSTR"
        struct.pack_into("<HHQIIHhh", page, 4, usa_ofs, usa_count, 0, 4096, 4096, ra_ofs, 1, 1)
        ca_ofs, client_len = 0x30, 0xA0
        seq_bits = 67 - file_size.bit_length()
        lsn = 0x2000_0000
        struct.pack_into(
            "<QHHHHIHHqIHHI",
            page,
            ra_ofs,
            lsn,  # current LSN
            1,  # log clients
            0xFFFF,  # client free list: none
            0,  # client in use list: client 0
            0,  # flags: RESTART_VOLUME_IS_CLEAN (0x0002) not set
            seq_bits,
            ca_ofs + client_len,  # restart area length
            ca_ofs,
            file_size,
            0,  # last LSN data length
            0x30,  # log record header length
            0x40,  # log page data offset
            1,  # restart log open count
        )
        client = ra_ofs + ca_ofs
        struct.pack_into("<QQHHH", page, client, lsn - 0x100, lsn, 0xFFFF, 0xFFFF, 1)
        struct.pack_into("<I", page, client + 28, 8)
        page[client + 32 : client + 40] = "NTFS".encode("utf-16-le")
        usn = 1
        struct.pack_into("<H", page, usa_ofs, usn)
        for i in range(1, usa_count):
            pos = i * 512 - 2
            page[usa_ofs + 2 * i : usa_ofs + 2 * i + 2] = page[pos : pos + 2]
            struct.pack_into("<H", page, pos, usn)
        with open(self.vol, "r+b") as f:
            f.seek(lcn * self.cs)
            f.write(page)
            f.write(page)


# --------------------------------------------------------------------------------------
# Reparse buffers


def utf16(s):
    return s.encode("utf-16-le")


def is_absolute_windows(target):
    return re.match(r"^[A-Za-z]:\\", target) is not None


def junction_buffer(target):
    """As mklink /J writes it: substitute name `\\??\\C:\\...` then print name, each
    followed by a NUL that the lengths leave out."""
    if not is_absolute_windows(target):
        raise SpecError(f"junction target must be an absolute Windows path: {target!r}")
    sub, pr = utf16("\\??\\" + target), utf16(target)
    body = struct.pack("<HHHH", 0, len(sub), len(sub) + 2, len(pr)) + sub + b"\0\0" + pr + b"\0\0"
    return struct.pack("<IHH", IO_REPARSE_TAG_MOUNT_POINT, len(body), 0) + body


def symlink_buffer(target):
    """As CreateSymbolicLinkW writes it: print name then substitute name, no NULs; flags 1
    (SYMLINK_FLAG_RELATIVE) for a relative target."""
    relative = not is_absolute_windows(target)
    sub = utf16(target if relative else "\\??\\" + target)
    pr = utf16(target)
    body = struct.pack("<HHHHI", len(pr), len(sub), 0, len(pr), 1 if relative else 0) + pr + sub
    return struct.pack("<IHH", IO_REPARSE_TAG_SYMLINK, len(body), 0) + body


def wof_buffer(algorithm):
    body = struct.pack("<IIII", 1, 2, 1, algorithm)  # WOF_EXTERNAL_INFO + FILE_PROVIDER_EXTERNAL_INFO_V1
    return struct.pack("<IHH", IO_REPARSE_TAG_WOF, len(body), 0) + body


# --------------------------------------------------------------------------------------
# WOF compression through libwim


_libwim = None


def libwim():
    global _libwim
    if _libwim is None:
        for name in ("libwim.so.15", "libwim.so"):
            try:
                _libwim = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise EnvError("libwim is not installed (Debian package libwim15)")
        _libwim.wimlib_create_compressor.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        _libwim.wimlib_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        _libwim.wimlib_compress.restype = ctypes.c_size_t
        _libwim.wimlib_create_decompressor.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
        _libwim.wimlib_decompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        _libwim.wimlib_free_compressor.argtypes = [ctypes.c_void_p]
        _libwim.wimlib_free_decompressor.argtypes = [ctypes.c_void_p]
    return _libwim


def wof_compress(data, algorithm):
    """WofCompressedData: the chunk offset table then the chunks; returns (blob, how many
    chunks were stored uncompressed)."""
    _, chunk, ctype = WOF_ALGORITHMS[algorithm]
    lib = libwim()
    comp = ctypes.c_void_p()
    if lib.wimlib_create_compressor(ctype, chunk, 0, ctypes.byref(comp)) != 0:
        raise BuildError(f"wimlib_create_compressor({ctype}, {chunk}) failed")
    try:
        chunks, stored = [], 0
        for i in range(0, len(data), chunk):
            piece = data[i : i + chunk]
            buf = ctypes.create_string_buffer(len(piece))
            n = lib.wimlib_compress(piece, len(piece), buf, len(piece) - 1, comp) if len(piece) > 1 else 0
            if n == 0:
                chunks.append(piece)
                stored += 1
            else:
                chunks.append(buf.raw[:n])
    finally:
        lib.wimlib_free_compressor(comp)
    fmt = "<Q" if len(data) > 0xFFFFFFFF else "<I"
    table, end = b"", 0
    for c in chunks[:-1]:
        end += len(c)
        table += struct.pack(fmt, end)
    return table + b"".join(chunks), stored


def wof_decompress(blob, size, algorithm):
    """The independent read-back: the chunks of a WofCompressedData stream, decompressed."""
    _, chunk, ctype = WOF_ALGORITHMS[algorithm]
    lib = libwim()
    n = (size + chunk - 1) // chunk
    width = 8 if size > 0xFFFFFFFF else 4
    table = [0] + [struct.unpack_from("<Q" if width == 8 else "<I", blob, i * width)[0] for i in range(n - 1)]
    base = (n - 1) * width
    table.append(len(blob) - base)
    dec = ctypes.c_void_p()
    if lib.wimlib_create_decompressor(ctype, chunk, ctypes.byref(dec)) != 0:
        raise BuildError("wimlib_create_decompressor failed")
    out = bytearray()
    try:
        for i in range(n):
            piece = blob[base + table[i] : base + table[i + 1]]
            want = min(chunk, size - i * chunk)
            if len(piece) == want:
                out += piece
                continue
            buf = ctypes.create_string_buffer(want)
            if lib.wimlib_decompress(piece, len(piece), buf, want, dec) != 0:
                raise BuildError(f"WOF chunk {i} does not decompress")
            out += buf.raw
    finally:
        lib.wimlib_free_decompressor(dec)
    return bytes(out)


# --------------------------------------------------------------------------------------
# Populating a volume


def get_attrib(path):
    return struct.unpack("<I", os.getxattr(path, "system.ntfs_attrib"))[0]


def set_attrib(path, value):
    os.setxattr(path, "system.ntfs_attrib", struct.pack("<I", value))


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_sparse(path, data, cs):
    """Writes `data` skipping every all-zero cluster (seek), then sets the size."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    zero = bytes(cs)
    with open(path, "wb") as f:
        for off in range(0, len(data), cs):
            piece = data[off : off + cs]
            if piece != zero[: len(piece)]:
                f.seek(off)
                f.write(piece)
        f.truncate(len(data))


def big_folder_names(count, seed):
    """`count` distinct names, of varied length, some Unicode, none equal to another when
    case is folded."""
    rng = random.Random(seed)
    ascii_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=~!@#$%^&(){}[];,' "
    unicode_chars = "ÄÖÜäöüßéèêñçøåæŁłŒœ" "αβγδεζηθλμπσωΩΣΔ" "жщэюяЖЩЭЮЯ" "漢字仮名文件夹目録" "ǅǆǄǈǉǋǌ" "ﬁＡｚ"
    names = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            name = f"{i:x}"
        elif kind == 1:
            name = f"file{i:05d}.dll"
        elif kind == 2:
            length = rng.choice([1, 5, 12, 30, 60, 120, 200])
            name = f"{i}_" + "".join(rng.choice(ascii_chars) for _ in range(length)).strip()
        else:
            length = rng.choice([1, 3, 8, 20, 50])
            name = f"{i}·" + "".join(rng.choice(unicode_chars + "abc") for _ in range(length))
        while len(name.encode("utf-8")) > 240:
            name = name[:-1]
        names.append(name.rstrip(" ."))
    return names


class Volume:
    """One NTFS volume being built: the spec of its partition, its file and mount point."""

    def __init__(self, part, index, vol, mnt, source_base):
        self.part = part
        self.index = index
        self.vol = vol
        self.mnt = mnt
        self.cs = int(part.get("cluster_size", 4096))
        src = part.get("source")
        self.source = None
        if src is not None:
            self.source = src if os.path.isabs(src) else os.path.join(source_base, src)
            if not os.path.isdir(self.source):
                raise SpecError(f"partition {index}: source {self.source} is not a directory")
        self.specials = []
        for i, s in enumerate(part.get("special", [])):
            kind = s.get("kind")
            if kind not in SPECIAL_KINDS:
                raise SpecError(f"partition {index}: unknown special kind {kind!r}")
            s = dict(s)
            if kind != "mft_fragmented":
                s["path"] = norm_path(s.get("path") or ("hiberfil.sys" if kind == "hiberfil" else ""))
            self.specials.append(s)
        self.files = []  # manifest entries, in creation order
        self.special_reports = []
        self.expected = {}  # path -> logical bytes (what Windows would read)

    def host(self, path):
        return os.path.join(self.mnt, *path.split("/"))

    def content_of(self, s, default):
        """A special's bytes: the source tree's file if it has one, else `content`."""
        if self.source is not None:
            p = os.path.join(self.source, *s["path"].split("/"))
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    return f.read()
        return make_content(s.get("content", default), s["path"])

    def special_paths(self):
        return {s["path"] for s in self.specials if "path" in s}

    # ---- phase 1: the source tree and the specials that need no full volume

    def copy_source(self):
        if self.source is None:
            return
        skip = self.special_paths()
        cdirs = {s["path"] for s in self.specials if s["kind"] == "compressed_dir"}
        for root, dirs, files in os.walk(self.source):
            dirs.sort()
            rel_root = os.path.relpath(root, self.source)
            rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/")
            if any(rel_root == c or rel_root.startswith(c + "/") for c in cdirs):
                continue  # copied by compressed_dir, into a compressed directory
            os.makedirs(self.host(rel_root) if rel_root else self.mnt, exist_ok=True)
            for name in sorted(files):
                rel = f"{rel_root}/{name}" if rel_root else name
                src = os.path.join(root, name)
                if os.path.islink(src):
                    raise SpecError(f"source {src} is a symbolic link; use a special instead")
                if rel in skip:
                    continue
                with open(src, "rb") as f:
                    data = f.read()
                write_file(self.host(rel), data)
                self.add_file(rel, data, "file")

    def add_file(self, path, data, kind, **extra):
        self.expected[path] = data
        entry = {"path": path, "kind": kind, "size": len(data), "sha256": sha256(data)}
        entry.update(extra)
        self.files.append(entry)
        return entry

    def phase1(self):
        self.copy_source()
        for s in self.specials:
            kind, path = s["kind"], s.get("path")
            if kind == "compressed":
                data = self.content_of(s, {"pe_like": 65536})
                parent = os.path.dirname(self.host(path))
                os.makedirs(parent, exist_ok=True)
                # ntfs-3g sets FILE_ATTRIBUTE_COMPRESSED on directories only: new files in
                # a compressed directory are compressed. Flag the parent for this one file.
                old = get_attrib(parent)
                set_attrib(parent, old | FILE_ATTRIBUTE_COMPRESSED)
                try:
                    write_file(self.host(path), data)
                finally:
                    set_attrib(parent, old)
                self.add_file(path, data, kind)
            elif kind == "compressed_dir":
                d = self.host(path)
                os.makedirs(d, exist_ok=True)
                set_attrib(d, get_attrib(d) | FILE_ATTRIBUTE_COMPRESSED)
                members = []
                if self.source is not None:
                    sdir = os.path.join(self.source, *path.split("/"))
                    for root, dirs, files in os.walk(sdir):
                        dirs.sort()
                        for name in sorted(files):
                            rel = os.path.relpath(os.path.join(root, name), sdir).replace(os.sep, "/")
                            with open(os.path.join(root, name), "rb") as f:
                                members.append((rel, f.read()))
                for i, m in enumerate(s.get("files", [])):
                    members.append((norm_path(m["name"]), make_content(m.get("content", {"pe_like": 32768}), f"{path}/{i}")))
                if not members:
                    members.append(("member.dll", pe_like(32768, path)))
                for rel, data in members:
                    # Subdirectories made here inherit the flag as Windows' do.
                    sub = os.path.dirname(os.path.join(d, *rel.split("/")))
                    if not os.path.isdir(sub):
                        os.makedirs(sub)
                        set_attrib(sub, get_attrib(sub) | FILE_ATTRIBUTE_COMPRESSED)
                    write_file(os.path.join(d, *rel.split("/")), data)
                    self.add_file(f"{path}/{rel}", data, "compressed", compressed_dir=path)
            elif kind == "sparse":
                default = {
                    "segments": [
                        {"offset": 0, "content": {"random": 5000}},
                        {"offset": 1 << 20, "content": {"text": "after the hole"}},
                    ],
                    "size": 3 << 20,
                }
                data = self.content_of(s, default)
                write_sparse(self.host(path), data, self.cs)
                self.add_file(path, data, kind)
            elif kind == "big_folder":
                d = self.host(path)
                os.makedirs(d, exist_ok=True)
                names = big_folder_names(int(s.get("count", 1000)), path)
                for n in names:
                    open(os.path.join(d, n), "wb").close()
                s["_names"] = names
            elif kind in ("dos_name", "unicode"):
                data = self.content_of(s, {"text": f"{kind} {path}\r\n"})
                write_file(self.host(path), data)
                if kind == "dos_name":
                    short = s.get("dos_name")
                    if not short:
                        raise SpecError(f"dos_name {path}: no dos_name")
                    os.setxattr(self.host(path), "system.ntfs_dos_name", short.encode("utf-8"))
                self.add_file(path, data, kind, **({"dos_name": s["dos_name"]} if kind == "dos_name" else {}))
            elif kind == "valid_data_length":
                data = self.content_of(s, {"random": 65536})
                vdl = int(s.get("valid_length", len(data) // 3))
                if not 0 <= vdl < len(data):
                    raise SpecError(f"valid_data_length {path}: valid_length {vdl} not below size {len(data)}")
                method = s.get("method", "patch")
                if method == "patch":
                    # Everything is written; the initialized size is lowered after unmount,
                    # so the clusters past it keep stale, non-zero bytes.
                    write_file(self.host(path), data)
                elif method == "truncate":
                    write_file(self.host(path), data[:vdl])
                    os.truncate(self.host(path), len(data))
                else:
                    raise SpecError(f"valid_data_length method {method!r}: want patch or truncate")
                logical = data[:vdl] + bytes(len(data) - vdl)
                stale = sha256(data) if method == "patch" else None
                self.add_file(path, logical, kind, valid_length=vdl, method=method, stale_bytes_sha256=stale)
                s["_vdl"] = vdl
            elif kind == "wof":
                algo = s.get("algorithm", "xpress4k")
                if algo not in WOF_ALGORITHMS:
                    raise SpecError(f"wof {path}: algorithm {algo!r}: want one of {sorted(WOF_ALGORITHMS)}")
                data = self.content_of(s, {"pe_like": 65536})
                blob, stored = wof_compress(data, algo)
                host = self.host(path)
                os.makedirs(os.path.dirname(host), exist_ok=True)
                with open(host + ":WofCompressedData", "wb") as f:
                    f.write(blob)
                with open(host, "r+b") as f:
                    f.truncate(len(data))
                attrib = get_attrib(host)
                if not attrib & FILE_ATTRIBUTE_SPARSE_FILE:
                    set_attrib(host, attrib | FILE_ATTRIBUTE_SPARSE_FILE)
                s["_wof"] = (algo, len(blob), stored)
                self.add_file(path, data, kind, algorithm=algo, wof_stream_size=len(blob), chunks_stored_uncompressed=stored)
            elif kind in ("junction", "symlink"):
                if not s.get("target"):
                    raise SpecError(f"{kind} {path}: no target")
                host = self.host(path)
                os.makedirs(os.path.dirname(host), exist_ok=True)
                if kind == "junction" or s.get("directory"):
                    os.makedirs(host, exist_ok=True)
                else:
                    open(host, "wb").close()
            elif kind == "hiberfil":
                size = int(s.get("size", 65536))
                magic = s.get("magic", "HIBR").encode("ascii")
                if len(magic) != 4:
                    raise SpecError("hiberfil magic must be 4 characters")
                data = bytearray(self.content_of(s, {"random": size}))
                if len(data) < 4:
                    raise SpecError("hiberfil: fewer than 4 bytes")
                data[0:4] = magic
                s["_data"] = bytes(data)  # written last: ntfs-3g will not mount it again
                self.add_file(path, bytes(data), kind, magic=magic.decode())
        for s in self.specials:
            if s["kind"] == "hard_link":
                target = norm_path(s.get("target", ""))
                if target not in self.expected:
                    raise SpecError(f"hard_link {s['path']}: target {target} is no file built here")
                os.makedirs(os.path.dirname(self.host(s["path"])), exist_ok=True)
                os.link(self.host(target), self.host(s["path"]))
                self.add_file(s["path"], self.expected[target], "hard_link", target=target)

    def has_source(self, path):
        return self.source is not None and os.path.isfile(os.path.join(self.source, *path.split("/")))

    # ---- phase 2: fragmentation, on a volume kept full

    def frag_specials(self):
        return [s for s in self.specials if s["kind"] in ("fragmented", "attribute_list")]

    def want_mft(self):
        return any(s["kind"] == "mft_fragmented" for s in self.specials)

    def phase2(self):
        frags = self.frag_specials()
        if not frags and not self.want_mft():
            return
        cs = self.cs
        fill_size = max(cs, 2048 + cs - 1) // cs * cs  # never resident
        per_file = fill_size // cs
        datas = []
        for s in frags:
            default = {"random": 256 * 1024} if s["kind"] == "fragmented" else {"random": 1600 * 1024}
            datas.append(self.content_of(s, default))
        need = sum((len(d) + cs - 1) // cs for d in datas) * per_file
        if self.want_mft():
            need += 600 * per_file
        need += 64
        token = os.urandom(8)
        magic = b"NBFILL\x01\x02" + token
        t0 = time.time()
        with mounted(self.vol, self.mnt):
            st = os.statvfs(self.mnt)
            free = st.f_bavail * st.f_frsize // cs
            # 2 fill clusters per hole, a quarter cluster of MFT record each, index blocks.
            leave = need * 2 + need // 2 + need // 8 + 256
            if free < leave + 16:
                raise BuildError(
                    f"partition {self.index}: {free} free clusters, the fragmentation specials "
                    f"need about {leave}: make size_mib larger"
                )
            ballast = (free - leave) * cs
            with open(os.path.join(self.mnt, "nb_ballast"), "wb") as f:
                block = bytes(MIB)
                left = ballast
                while left > 0:
                    f.write(block[: min(left, MIB)])
                    left -= MIB
            os.mkdir(os.path.join(self.mnt, "nb_fill"))
            n = 0
            try:
                while True:
                    with open(os.path.join(self.mnt, "nb_fill", f"{n:06d}"), "wb") as f:
                        f.write((magic + struct.pack("<Q", n)).ljust(fill_size, b"\x5a"))
                    n += 1
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.mnt, "nb_fill", f"{n:06d}"))
        log(f"filled {n} files in {time.time() - t0:.2f}s")
        # Where each fill file went: look for its marker in the volume file.
        where = {}
        with open(self.vol, "rb") as f:
            base = 0
            while True:
                buf = f.read(16 * MIB)
                if not buf:
                    break
                i = buf.find(magic)
                while i >= 0:
                    if (base + i) % cs == 0:
                        where[struct.unpack_from("<Q", buf, i + len(magic))[0]] = (base + i) // cs
                    i = buf.find(magic, i + 1)
                base += len(buf)
        if len(where) < n * 9 // 10:
            raise BuildError(f"found {len(where)} of {n} fill files in the volume")
        holes = 0
        with mounted(self.vol, self.mnt):
            # Every other fill file in the order of their clusters: no two holes touch.
            for k, (i, lcn) in enumerate(sorted(where.items(), key=lambda kv: kv[1])):
                if k % 2 == 0:
                    os.unlink(os.path.join(self.mnt, "nb_fill", f"{i:06d}"))
                    holes += 1
            for s, data in zip(frags, datas):
                try:
                    write_file(self.host(s["path"]), data)
                except OSError as e:
                    raise BuildError(f"{s['kind']} {s['path']}: {e}: make size_mib larger")
                self.add_file(s["path"], data, s["kind"])
            free_records_hint = holes
        log(f"{holes} holes, fragmented files written")
        if self.want_mft():
            self.fragment_mft(free_records_hint)
        with mounted(self.vol, self.mnt):
            shutil.rmtree(os.path.join(self.mnt, "nb_fill"))
            os.unlink(os.path.join(self.mnt, "nb_ballast"))
            if os.path.isdir(os.path.join(self.mnt, "nb_mft")):
                shutil.rmtree(os.path.join(self.mnt, "nb_mft"))
        log(f"fragmentation phase {time.time() - t0:.2f}s")

    def fragment_mft(self, reused):
        """Creates empty files (MFT records, no clusters) while the only free space is
        one-cluster holes: every 16-record extension of $MFT lands in separate holes, until
        record 0 cannot hold the runlist and ntfs-3g gives $MFT an $ATTRIBUTE_LIST."""
        created = 0
        batch = reused + 1024
        for attempt in range(40):
            with mounted(self.vol, self.mnt):
                d = os.path.join(self.mnt, "nb_mft")
                os.makedirs(d, exist_ok=True)
                try:
                    for _ in range(batch):
                        open(os.path.join(d, f"{created:06d}"), "wb").close()
                        created += 1
                except OSError as e:
                    raise BuildError(
                        f"mft_fragmented: out of room after {created} records ({e}) and $MFT "
                        f"still has no $ATTRIBUTE_LIST: make size_mib larger"
                    )
            mft = ntfsinfo(self.vol, inode=0)
            if mft.find("$ATTRIBUTE_LIST"):
                log(f"$MFT has an attribute list after {created} records")
                return
            batch = 512
        raise BuildError(f"mft_fragmented: {created} records made and $MFT has no $ATTRIBUTE_LIST")

    # ---- phase 3: the last mount: reparse points and hiberfil.sys

    def phase3(self):
        todo = [s for s in self.specials if s["kind"] in ("junction", "symlink", "wof", "hiberfil")]
        if not todo:
            return
        with mounted(self.vol, self.mnt):
            for s in todo:
                host = self.host(s["path"])
                if s["kind"] == "junction":
                    buf = junction_buffer(s["target"])
                elif s["kind"] == "symlink":
                    buf = symlink_buffer(s["target"])
                elif s["kind"] == "wof":
                    buf = wof_buffer(WOF_ALGORITHMS[s["_wof"][0]][0])
                else:
                    write_file(host, s["_data"])
                    continue
                os.setxattr(host, "system.ntfs_reparse_data", buf)
                s["_reparse"] = buf
                if s["kind"] in ("junction", "symlink"):
                    entry = {
                        "path": s["path"],
                        "kind": s["kind"],
                        "size": 0,
                        "sha256": None,
                        "target": s["target"],
                        "reparse_tag": "0x%08x" % u32(buf, 0),
                        "directory": s["kind"] == "junction" or bool(s.get("directory")),
                    }
                    self.files.append(entry)

    # ---- phase 4: raw patches after the last unmount

    def phase4(self):
        raw = None
        for s in self.specials:
            if s["kind"] == "valid_data_length" and s.get("method", "patch") == "patch":
                raw = raw or RawNtfs(self.vol)
                info = ntfsinfo(self.vol, path=s["path"])
                records = [info.number] + sorted({a.record for a in info.data()} - {info.number})
                raw.set_initialized_size(records, s["_vdl"])
        if self.part.get("logfile_unclean"):
            raw = raw or RawNtfs(self.vol)
            raw.write_unclean_logfile()
        if self.part.get("dirty"):
            raw = raw or RawNtfs(self.vol)
            raw.set_volume_dirty()

    # ---- verification with ntfsinfo, ntfscat, ntfsls; the manifest's records

    def verify(self):
        tree = ntfsls_tree(self.vol)
        by_path = {}
        for e in self.files:
            path = e["path"]
            if path not in tree:
                raise BuildError(f"{path} is not listed by ntfsls")
            e["mft_record"] = tree[path][0]
            by_path[path] = e
            if e["sha256"] is None:
                continue
            if e["kind"] == "wof":
                continue  # checked with its special, from the compressed stream
            got = ntfscat(self.vol, path)
            if sha256(got) != e["sha256"] or len(got) != e["size"]:
                raise BuildError(f"{path}: ntfscat reads {len(got)} bytes sha256 {sha256(got)}, want {e['size']} bytes sha256 {e['sha256']}")
        for s in self.specials:
            self.special_reports.append(self.verify_special(s, tree, by_path))
        if self.part.get("dirty"):
            flags = re.search(r"Volume Flags: (0x[0-9a-f]+)", run(["ntfsinfo", "-f", "-m", self.vol]))
            if not flags or not int(flags.group(1), 16) & 1:
                raise BuildError("dirty: ntfsinfo -m shows no VOLUME_IS_DIRTY")
        if self.part.get("logfile_unclean"):
            self.verify_logfile_unclean()

    def verify_logfile_unclean(self):
        page = ntfscat(self.vol, "$LogFile")[:4096]
        if page[0:4] != b"RSTR":
            raise BuildError("logfile_unclean: $LogFile has no restart page")
        # ntfs-3g's own $LogFile check, on a copy (a read-write mount resets the log):
        # it must call the volume unclean.
        copy = self.vol + ".logcheck"
        run(["cp", "--sparse=always", self.vol, copy])
        try:
            os.makedirs(self.mnt, exist_ok=True)
            p = run(["ntfs-3g", "-o", "remove_hiberfile", copy, self.mnt], check=False)
            if p.returncode == 0:
                umount(self.mnt)
            err = p.stderr.decode("utf-8", "replace")
            if "unclean" not in err.lower():
                raise BuildError(f"logfile_unclean: ntfs-3g does not call the $LogFile unclean: {err!r}")
        finally:
            os.unlink(copy)

    def verify_special(self, s, tree, by_path):
        kind, path = s["kind"], s.get("path")
        rep = {"kind": kind}
        if path is not None:
            rep["path"] = path
        if kind == "mft_fragmented":
            mft = ntfsinfo(self.vol, inode=0)
            data = mft.data()
            runs = [r for a in data for r in a.runs]
            rep.update(
                attribute_list=bool(mft.find("$ATTRIBUTE_LIST")),
                data_runs=len(runs),
                data_extent_records=[a.record for a in data],
            )
            if not rep["attribute_list"] or len(data) < 2:
                raise BuildError(f"mft_fragmented: $MFT has {len(runs)} runs and no $ATTRIBUTE_LIST")
            return rep
        if kind == "big_folder":
            names = s["_names"]
            listed = {p.rsplit("/", 1)[-1] for p in tree if p.startswith(path + "/") and "/" not in p[len(path) + 1 :]}
            missing = [n for n in names if n not in listed]
            if missing:
                raise BuildError(f"big_folder {path}: ntfsls lists {len(listed)} entries, {len(missing)} missing, e.g. {missing[:3]}")
            info = ntfsinfo(self.vol, path=path)
            if not info.find("$INDEX_ALLOCATION"):
                raise BuildError(f"big_folder {path}: no $INDEX_ALLOCATION")
            rep.update(count=len(names), mft_record=info.number, names=names)
            return rep
        info = ntfsinfo(self.vol, path=path)
        rep["mft_record"] = info.number
        data = info.data()
        if kind == "compressed":
            self.check_compressed(path, info)
        elif kind == "compressed_dir":
            attrs = info.si_attributes() or 0
            if not attrs & FILE_ATTRIBUTE_COMPRESSED:
                raise BuildError(f"compressed_dir {path}: directory has no FILE_ATTRIBUTE_COMPRESSED")
            members = [e for e in self.files if e.get("compressed_dir") == path]
            for e in members:
                self.check_compressed(e["path"], ntfsinfo(self.vol, path=e["path"]))
            rep["files"] = [e["path"] for e in members]
        elif kind == "sparse":
            if not data or not data[0].get("Attribute flags") & ATTR_FLAG_SPARSE:
                raise BuildError(f"sparse {path}: $DATA has no sparse flag")
            holes = sum(1 for a in data for r in a.runs if r[1] is None)
            if holes == 0:
                raise BuildError(f"sparse {path}: no sparse runs")
            rep["sparse_runs"] = holes
        elif kind in ("fragmented", "attribute_list"):
            runs = [r for a in data for r in a.runs if r[1] is not None]
            rep["data_runs"] = len(runs)
            if kind == "fragmented":
                want = int(s.get("min_runs", 50))
                if len(runs) < want:
                    raise BuildError(f"fragmented {path}: {len(runs)} runs, want at least {want}")
            else:
                if not info.find("$ATTRIBUTE_LIST"):
                    raise BuildError(f"attribute_list {path}: no $ATTRIBUTE_LIST ({len(runs)} runs)")
                records = [a.record for a in data]
                rep["data_extent_records"] = records
                rep["first_extent_in_base"] = records[0] == info.number
                if len(set(records) - {info.number}) == 0:
                    raise BuildError(f"attribute_list {path}: $DATA has no extent in an extension record")
                if s.get("first_extent_in_base") and not rep["first_extent_in_base"]:
                    raise BuildError(f"attribute_list {path}: first $DATA extent is not in the base record")
        elif kind in ("junction", "symlink", "wof"):
            rp = info.find("$REPARSE_POINT")
            if not rp:
                raise BuildError(f"{kind} {path}: no $REPARSE_POINT")
            tag = rp[0].get("Reparse tag")
            want = u32(s["_reparse"], 0)
            if tag != want:
                raise BuildError(f"{kind} {path}: reparse tag {tag:#x}, want {want:#x}")
            got = ntfscat(self.vol, path, attr_type=0xC0)
            if got != s["_reparse"]:
                raise BuildError(f"{kind} {path}: reparse data read back differs")
            rep["reparse_tag"] = "0x%08x" % tag
            rep["reparse_data"] = got.hex()
            if kind == "wof":
                algo, blob_size, stored = s["_wof"]
                e = by_path[path]
                attrs = info.si_attributes() or 0
                want = FILE_ATTRIBUTE_SPARSE_FILE | FILE_ATTRIBUTE_REPARSE_POINT
                if attrs & want != want:
                    raise BuildError(f"wof {path}: file attributes {attrs:#x} lack SPARSE_FILE|REPARSE_POINT")
                if not data or data[0].get("Data size") != e["size"] or not data[0].get("Attribute flags") & ATTR_FLAG_SPARSE:
                    raise BuildError(f"wof {path}: unnamed $DATA is not sparse of {e['size']} bytes")
                if any(r[1] is not None for a in data for r in a.runs):
                    raise BuildError(f"wof {path}: unnamed $DATA has allocated clusters")
                blob = ntfscat(self.vol, path, attr_name="WofCompressedData")
                if len(blob) != blob_size:
                    raise BuildError(f"wof {path}: WofCompressedData is {len(blob)} bytes, wrote {blob_size}")
                back = wof_decompress(blob, e["size"], algo)
                if sha256(back) != e["sha256"]:
                    raise BuildError(f"wof {path}: WofCompressedData does not decompress to the content")
                rep.update(
                    algorithm=algo,
                    chunk_size=WOF_ALGORITHMS[algo][1],
                    wof_stream_size=blob_size,
                    chunks_stored_uncompressed=stored,
                    file_attributes="0x%08x" % attrs,
                )
            else:
                rep["target"] = s["target"]
        elif kind == "dos_name":
            names = info.file_names()
            if ("DOS", s["dos_name"]) not in names:
                raise BuildError(f"dos_name {path}: names are {names}, no DOS name {s['dos_name']}")
            rep["file_names"] = [{"namespace": ns, "name": n} for ns, n in names]
        elif kind == "unicode":
            leaf = path.rsplit("/", 1)[-1]
            names = [n for _, n in info.file_names()]
            if leaf not in names:
                raise BuildError(f"unicode {path}: stored names are {names}")
            rep["utf16_name"] = leaf.encode("utf-16-le").hex()
        elif kind == "valid_data_length":
            init, size = data[0].get("Initialized size"), data[0].get("Data size")
            if data[0].resident or init != s["_vdl"] or size <= init:
                raise BuildError(f"valid_data_length {path}: initialized size {init}, data size {size}, want {s['_vdl']} < size")
            sparse = bool(data[0].get("Attribute flags") & ATTR_FLAG_SPARSE)
            rep.update(initialized_size=init, data_size=size, method=s.get("method", "patch"), sparse=sparse)
        elif kind == "hard_link":
            target = norm_path(s["target"])
            if tree[path][0] != tree[target][0]:
                raise BuildError(f"hard_link {path}: record {tree[path][0]}, target {target} has {tree[target][0]}")
            links = parse_int(info.header.get("Number of Hard Links", "0"))
            if links < 2:
                raise BuildError(f"hard_link {path}: {links} hard links")
            rep.update(target=target, hard_links=links)
        elif kind == "hiberfil":
            head = ntfscat(self.vol, path)[:4]
            if head != s["_data"][:4]:
                raise BuildError(f"hiberfil {path}: starts with {head!r}")
            rep["magic"] = head.decode("ascii")
        return rep

    def check_compressed(self, path, info):
        data = info.data()
        if not data or data[0].resident:
            raise BuildError(f"compressed {path}: $DATA is resident; NTFS compresses only non-resident data (make it larger)")
        if not data[0].get("Attribute flags") & ATTR_FLAG_COMPRESSED:
            raise BuildError(f"compressed {path}: $DATA attribute flags {data[0].get('Attribute flags'):#x}, not compressed")


# --------------------------------------------------------------------------------------
# Volumes and disks


def mkntfs(vol, part, size, sector_size, hidden):
    with open(vol, "wb") as f:
        f.truncate(size)
    cs = int(part.get("cluster_size", 4096))
    args = ["mkntfs", "-F", "-Q", "-q", "-s", sector_size, "-c", cs, "-p", hidden, "-H", 255, "-S", 63]
    if part.get("label"):
        args += ["-L", part["label"]]
    run(args + [vol])
    # mkntfs seeds its serial with the time: volumes made in the same second would share it.
    serial = hex_int(part["serial"]) if part.get("serial") else int.from_bytes(os.urandom(8), "little")
    run(["ntfslabel", f"--new-serial={serial:016x}", vol])


def build_partition_volume(part, index, vol, size, sector_size, hidden, workdir, source_base):
    """Makes the volume file of one partition; returns its manifest entry."""
    fs = part.get("fs", "ntfs")
    entry = {"fs": fs}
    if fs == "none":
        with open(vol, "wb") as f:
            f.truncate(size)
        return entry
    if fs == "bitlocker-like":
        with open(vol, "wb") as f:
            f.truncate(size)
            boot = bytearray(512)
            boot[0:3] = b"\xeb\x58\x90"
            boot[3:11] = b"-FVE-FS-"
            boot[510:512] = b"\x55\xaa"
            f.write(boot)
        return entry
    if fs == "fat":
        need_tool("mkfs.fat", "dosfstools")
        with open(vol, "wb") as f:
            f.truncate(size)
        args = ["mkfs.fat", "-S", sector_size, "-h", hidden]
        if part.get("label"):
            args += ["-n", part["label"][:11]]
        run(args + [vol])
        files = []
        if part.get("source"):
            need_tool("mcopy", "mtools")
            src = part["source"] if os.path.isabs(part["source"]) else os.path.join(source_base, part["source"])
            for name in sorted(os.listdir(src)):
                run(["mcopy", "-s", "-i", vol, os.path.join(src, name), "::/"])
            for root, dirs, names in os.walk(src):
                for name in sorted(names):
                    rel = os.path.relpath(os.path.join(root, name), src).replace(os.sep, "/")
                    with open(os.path.join(root, name), "rb") as f:
                        want = f.read()
                    got = run(["mtype", "-i", vol, "::/" + rel], binary=True)
                    if got != want:
                        raise BuildError(f"fat: {rel} reads back differently through mtype")
                    files.append({"path": rel, "kind": "file", "size": len(want), "sha256": sha256(want)})
        entry["label"] = part.get("label", "")
        entry["files"] = files
        return entry
    if fs != "ntfs":
        raise SpecError(f"partition {index}: fs {fs!r}: want ntfs, fat, none or bitlocker-like")
    mkntfs(vol, part, size, sector_size, hidden)
    mnt = os.path.join(workdir, f"mnt{index}")
    os.makedirs(mnt, exist_ok=True)
    v = Volume(part, index, vol, mnt, source_base)
    t0 = time.time()
    with mounted(vol, mnt):
        v.phase1()
    v.phase2()
    v.phase3()
    v.phase4()
    dig_holes(vol)
    t1 = time.time()
    v.verify()
    # ntfs-3g's own consistency check: $MFT against $MFTMirr, the boot sector's backup.
    if "successfully" not in run(["ntfsfix", "-n", vol]):
        raise BuildError("ntfsfix -n does not call the volume consistent")
    with open(vol, "rb") as f:
        bs = f.read(512)
    serial = u64(bs, 0x48)
    entry.update(
        label=part.get("label", ""),
        cluster_size=v.cs,
        sector_size=u16(bs, 0x0B),
        hidden_sectors=u32(bs, 0x1C),
        ntfs_serial="%016X" % serial,
        volume_serial="%04X-%04X" % (serial >> 16 & 0xFFFF, serial & 0xFFFF),
        dirty=bool(part.get("dirty")),
        logfile_unclean=bool(part.get("logfile_unclean")),
        files=v.files,
        specials=v.special_reports,
        build_seconds=round(t1 - t0, 3),
        verify_seconds=round(time.time() - t1, 3),
    )
    return entry


def dig_holes(path):
    """Makes the zero-filled parts of an image file sparse again (the fragmentation phase
    writes megabytes of zeros that ntfs-3g then frees)."""
    if shutil.which("fallocate"):
        run(["fallocate", "--dig-holes", path], check=False)


@contextlib.contextmanager
def block_device(disk, sector_size):
    """The disk file itself, or for 4096-byte sectors a loop device with that logical
    sector size (sfdisk 2.38 cannot be told the sector size of a file)."""
    if sector_size == 512:
        yield disk
        return
    need_tool("losetup", "mount")
    p = run(["losetup", "--find", "--show", "--sector-size", sector_size, disk], check=False)
    if p.returncode != 0:
        raise EnvError(f"gpt4k needs a loop device with 4096-byte sectors: losetup: {p.stderr.decode('utf-8', 'replace').strip()}")
    dev = p.stdout.decode().strip()
    try:
        yield dev
    finally:
        run(["losetup", "-d", dev], check=False)


def sfdisk_supports_sector_size():
    return "--sector-size" in run(["sfdisk", "--help"])


def hex_int(v):
    """A number given as hex text ("1234abcd", "0x1234abcd") or as a JSON integer."""
    return v if isinstance(v, int) else int(str(v), 16)


def mbr_type_of(p):
    t = p.get("mbr_type")
    if t is None:
        return {"fat": "c"}.get(p.get("fs"), "7")
    return "%x" % hex_int(t)


def partition_disk(spec, disk, parts, sector_size):
    layout = spec["layout"]
    mib = MIB // sector_size
    lines = []
    if layout.startswith("gpt"):
        lines.append("label: gpt")
        if spec.get("disk_guid"):
            lines.append(f"label-id: {uuid.UUID(spec['disk_guid'])}")
        guids = spec.get("partition_guids", [])
        lines.append("")
        for i, p in enumerate(parts):
            line = f"size={p['size_mib'] * mib}, type={p.get('gpt_type', GPT_BASIC_DATA)}, name=\"{p.get('gpt_name', 'Basic data partition')}\""
            if i < len(guids) and guids[i]:
                line += f", uuid={uuid.UUID(guids[i])}"
            lines.append(line)
    else:
        lines.append("label: dos")
        if spec.get("disk_signature") is not None:
            lines.append(f"label-id: {hex_int(spec['disk_signature']):#010x}")
        lines.append("")
        primaries = int(spec.get("primaries", 1)) if layout == "mbr-extended" else len(parts)
        if layout == "mbr" and len(parts) > 4:
            raise SpecError("mbr: at most 4 primary partitions; use mbr-extended")
        # Explicit starts: sfdisk makes a partition logical when it starts inside the
        # extended one, one MiB (the EBR and alignment) after the previous one.
        cursor = mib
        for p in parts[:primaries]:
            lines.append(f"start={cursor}, size={p['size_mib'] * mib}, type={mbr_type_of(p)}")
            cursor += p["size_mib"] * mib
        if layout == "mbr-extended":
            logical = parts[primaries:]
            if not logical or primaries > 3:
                raise SpecError("mbr-extended: want 1-3 primaries and at least one logical partition")
            lines.append(f"start={cursor}, size={(sum(p['size_mib'] + 1 for p in logical) + 1) * mib}, type=f")
            for p in logical:
                cursor += mib
                lines.append(f"start={cursor}, size={p['size_mib'] * mib}, type={mbr_type_of(p)}")
                cursor += p["size_mib"] * mib
    script = "\n".join(lines) + "\n"
    log(script)
    with block_device(disk, sector_size) as dev:
        args = ["sfdisk", "-q", "--no-reread", "--no-tell-kernel"]
        if sector_size != 512 and dev == disk:
            args += ["--sector-size", sector_size]
        run(args + [dev], stdin=script.encode())
        table = json.loads(run(["sfdisk", "--json", dev]))["partitiontable"]
    if table.get("sectorsize", 512) != sector_size:
        raise BuildError(f"sfdisk made {table.get('sectorsize')}-byte sectors, want {sector_size}")
    return table


TOP_KEYS = {"layout", "partitions", "disk_guid", "partition_guids", "disk_signature", "primaries", "comment"}
PARTITION_KEYS = {
    "size_mib", "fs", "label", "source", "special", "cluster_size", "sector_size", "dirty",
    "logfile_unclean", "serial", "hidden_sectors", "gpt_type", "gpt_name", "mbr_type", "comment",
}
SPECIAL_KEYS = {
    "path", "kind", "content", "files", "count", "min_runs", "first_extent_in_base", "target",
    "directory", "dos_name", "valid_length", "method", "algorithm", "magic", "size", "comment",
}


def check_keys(what, obj, allowed):
    """A misspelt key would build an image without what it asks: refuse it."""
    if not isinstance(obj, dict):
        raise SpecError(f"{what}: want an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise SpecError(f"{what}: unknown keys {unknown}; known: {sorted(allowed)}")


def build(spec_path, out, manifest_path):
    with open(spec_path, "rb") as f:
        try:
            spec = json.load(f)
        except ValueError as e:
            raise SpecError(f"{spec_path}: {e}")
    source_base = os.path.dirname(os.path.abspath(spec_path))
    layout = spec.get("layout")
    if layout not in ("volume", "gpt", "gpt4k", "mbr", "mbr-extended"):
        raise SpecError(f"layout {layout!r}: want volume, gpt, gpt4k, mbr or mbr-extended")
    parts = spec.get("partitions") or []
    if not parts:
        raise SpecError("no partitions")
    check_keys("spec", spec, TOP_KEYS)
    for i, p in enumerate(parts):
        check_keys(f"partition {i}", p, PARTITION_KEYS)
        for s in p.get("special", []):
            check_keys(f"partition {i} special {s.get('path', s.get('kind'))}", s, SPECIAL_KEYS)
    for i, p in enumerate(parts):
        if not isinstance(p.get("size_mib"), int) or p["size_mib"] < 2:
            raise SpecError(f"partition {i}: size_mib must be an integer >= 2")
    need_tool("mkntfs", "ntfs-3g")
    need_tool("ntfs-3g", "ntfs-3g")
    need_tool("ntfsinfo", "ntfs-3g")
    need_tool("ntfscat", "ntfs-3g")
    need_tool("ntfsls", "ntfs-3g")
    need_tool("ntfsfix", "ntfs-3g")
    if any(p.get("fs", "ntfs") == "ntfs" for p in parts):
        check_fuse()
    if any(s.get("kind") == "wof" for p in parts for s in p.get("special", [])):
        libwim()
    t0 = time.time()
    sector_size = 4096 if layout == "gpt4k" else 512
    outdir = os.path.dirname(os.path.abspath(out))
    workdir = tempfile.mkdtemp(prefix=".build-", dir=outdir)
    manifest = {"layout": layout, "sector_size": sector_size, "partitions": []}
    try:
        if layout == "volume":
            if len(parts) != 1:
                raise SpecError("layout volume: exactly one partition")
            p = parts[0]
            tmp = os.path.join(workdir, "volume.img")
            ss = int(p.get("sector_size", 512))
            manifest["sector_size"] = ss
            entry = build_partition_volume(p, 0, tmp, p["size_mib"] * MIB, ss, int(p.get("hidden_sectors", 0)), workdir, source_base)
            entry.update(index=0, number=None, offset=0, size=p["size_mib"] * MIB)
            manifest["partitions"].append(entry)
            manifest["disk_size"] = p["size_mib"] * MIB
            os.replace(tmp, out)
        else:
            need_tool("sfdisk", "fdisk")
            extra = len(parts) + 3 if layout == "mbr-extended" else 2
            disk_size = (sum(p["size_mib"] for p in parts) + extra) * MIB
            disk = os.path.join(workdir, "disk.img")
            with open(disk, "wb") as f:
                f.truncate(disk_size)
            table = partition_disk(spec, disk, parts, sector_size)
            manifest["disk_size"] = disk_size
            if table["label"] == "gpt":
                manifest["disk_guid"] = table["id"]
            else:
                manifest["disk_signature"] = table["id"]
            ptab = [t for t in table["partitions"] if t["type"].lower() not in ("f", "5")]
            ext = [t for t in table["partitions"] if t["type"].lower() in ("f", "5")]
            if ext:
                manifest["extended"] = {
                    "number": int(re.search(r"(\d+)$", ext[0]["node"]).group(1)),
                    "offset": ext[0]["start"] * sector_size,
                    "size": ext[0]["size"] * sector_size,
                }
            if len(ptab) != len(parts):
                raise BuildError(f"sfdisk made {len(ptab)} partitions, want {len(parts)}")
            for i, (p, t) in enumerate(zip(parts, ptab)):
                offset, size = t["start"] * sector_size, t["size"] * sector_size
                if size != p["size_mib"] * MIB:
                    raise BuildError(f"partition {i}: sfdisk made {size} bytes")
                vol = os.path.join(workdir, f"part{i}.img")
                entry = build_partition_volume(p, i, vol, size, sector_size, t["start"], workdir, source_base)
                number = int(re.search(r"(\d+)$", t["node"]).group(1))
                entry.update(index=i, number=number, offset=offset, size=size, start_sector=t["start"], sectors=t["size"])
                if table["label"] == "gpt":
                    entry["gpt_type"] = t["type"]
                    entry["gpt_guid"] = t["uuid"]
                    entry["gpt_name"] = t.get("name", "")
                    entry["mounted_devices"] = (b"DMIO:ID:" + uuid.UUID(t["uuid"]).bytes_le).hex()
                else:
                    entry["mbr_type"] = "0x%02x" % int(t["type"], 16)
                    entry["logical"] = number > 4
                    entry["mbr_disk_signature"] = table["id"]
                    entry["mounted_devices"] = struct.pack("<IQ", int(table["id"], 16), offset).hex()
                run(["dd", f"if={vol}", f"of={disk}", "bs=64K", f"seek={offset}", "oflag=seek_bytes", "conv=notrunc,sparse", "status=none"])
                os.unlink(vol)
                manifest["partitions"].append(entry)
            # The copy is what was checked: the volumes read back from the disk image.
            for entry in manifest["partitions"]:
                if entry["fs"] == "ntfs":
                    with open(disk, "rb") as f:
                        f.seek(entry["offset"] + 3)
                        if f.read(8) != b"NTFS    ":
                            raise BuildError(f"partition {entry['index']}: no NTFS boot sector at {entry['offset']}")
            os.replace(disk, out)
        manifest["build_seconds"] = round(time.time() - t0, 3)
        tmp = manifest_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, manifest_path)
    finally:
        for name in os.listdir(workdir):
            if name.startswith("mnt"):
                umount(os.path.join(workdir, name))
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv):
    if len(argv) != 4:
        print("usage: build.py SPEC.json OUT.img MANIFEST.json", file=sys.stderr)
        return 2
    try:
        build(argv[1], argv[2], argv[3])
    except EnvError as e:
        print(f"cannot build NTFS test images here: {e}", file=sys.stderr)
        return 3
    except SpecError as e:
        print(f"bad spec: {e}", file=sys.stderr)
        return 2
    except BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
