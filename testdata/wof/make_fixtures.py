#!/usr/bin/env python3
"""Writes the WOF (CompactOS) decoder fixtures under testdata/wof/.

The oracle is wimlib's own library (Debian package libwim15, libwim.so.15), called
through ctypes: its compressors make the compressed chunks, and its decompressors
check every fixture before it is written:

- compressed chunks: made by wimlib_compress (XPRESS at 4096/8192/16384-byte
  chunks, LZX at 32768) and decompressed again by wimlib_decompress;
- stored chunks: where wimlib_compress returns 0 (the data did not shrink) the
  chunk is stored as is, as WOF does; recorded as "stored";
- crafted chunks: hand-built LZX streams for what the compressor never emits
  (uncompressed blocks with their R0-R2 header and padding byte, an aligned-offset
  block, run-length coded code lengths); wimlib_decompress must give the
  intended bytes;
- invalid chunks: hostile streams (over-subscribed or incomplete codes, a match
  before the chunk's start or past its end, bad block types, ...), which
  wimlib_decompress must reject too;
- streams: whole WofCompressedData streams (chunk table + chunks) of multi-chunk
  files.

Everything is deterministic (seeded); run it again and the files are the same:

    python3 testdata/wof/make_fixtures.py

The Rust tests (src/evidence/image/ntfs/wof/) read manifest.tsv and the files; they
need neither Python nor libwim.
"""

import ctypes
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

XPRESS = 1  # WIMLIB_COMPRESSION_TYPE_XPRESS
LZX = 2  # WIMLIB_COMPRESSION_TYPE_LZX

# name, ctype, chunk size
ALGORITHMS = [
    ("xpress4k", XPRESS, 4096),
    ("xpress8k", XPRESS, 8192),
    ("xpress16k", XPRESS, 16384),
    ("lzx", LZX, 32768),
]
ALGORITHM_CODE = {"xpress4k": 0, "lzx": 1, "xpress8k": 2, "xpress16k": 3}
CHUNK_SIZE = {name: size for name, _, size in ALGORITHMS}
CTYPE = {name: ctype for name, ctype, _ in ALGORITHMS}

BASE_LEN = 32768

lib = ctypes.CDLL("libwim.so.15")
lib.wimlib_create_compressor.argtypes = [
    ctypes.c_int,
    ctypes.c_size_t,
    ctypes.c_uint,
    ctypes.POINTER(ctypes.c_void_p),
]
lib.wimlib_create_compressor.restype = ctypes.c_int
lib.wimlib_compress.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
]
lib.wimlib_compress.restype = ctypes.c_size_t
lib.wimlib_free_compressor.argtypes = [ctypes.c_void_p]
lib.wimlib_create_decompressor.argtypes = [
    ctypes.c_int,
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_void_p),
]
lib.wimlib_create_decompressor.restype = ctypes.c_int
lib.wimlib_decompress.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
]
lib.wimlib_decompress.restype = ctypes.c_int
lib.wimlib_free_decompressor.argtypes = [ctypes.c_void_p]


def wim_compress(alg, data, level=0):
    """Returns the compressed bytes, or None when wimlib says they would not shrink."""
    comp = ctypes.c_void_p()
    rc = lib.wimlib_create_compressor(CTYPE[alg], CHUNK_SIZE[alg], level, ctypes.byref(comp))
    assert rc == 0, ("wimlib_create_compressor", alg, rc)
    try:
        src = ctypes.create_string_buffer(bytes(data), len(data))
        avail = len(data) - 1
        dst = ctypes.create_string_buffer(max(avail, 1))
        n = lib.wimlib_compress(src, len(data), dst, avail, comp)
        return None if n == 0 else dst.raw[:n]
    finally:
        lib.wimlib_free_compressor(comp)


def wim_decompress(alg, data, out_len):
    """Returns the decompressed bytes, or None when wimlib rejects the data."""
    dec = ctypes.c_void_p()
    rc = lib.wimlib_create_decompressor(CTYPE[alg], CHUNK_SIZE[alg], ctypes.byref(dec))
    assert rc == 0, ("wimlib_create_decompressor", alg, rc)
    try:
        src = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
        dst = ctypes.create_string_buffer(max(out_len, 1))
        rc = lib.wimlib_decompress(src, len(data), dst, out_len, dec)
        return None if rc != 0 else dst.raw[:out_len]
    finally:
        lib.wimlib_free_decompressor(dec)


# ---------------------------------------------------------------------------
# Inputs


def make_text(rng):
    words = (
        "the of and to in is was for on that with as by at from this file windows "
        "registry update pending rename operation boot system volume image driver "
        "service component servicing stack manifest catalog package assembly version "
        "compression overlay filter reparse point stream chunk table offset length"
    ).split()
    out = bytearray()
    line = 0
    while len(out) < BASE_LEN:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        out += sentence.capitalize().encode() + b". "
        line += 1
        if line % 5 == 0:
            out += b"\r\n"
    return bytes(out[:BASE_LEN])


def make_pe_like(rng):
    """x86-looking code: many CALL rel32 (E8) instructions, so that LZX's E8
    translation matters, plus some typical opcodes, padding and strings."""
    out = bytearray(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00")
    out += b"\x00" * 48
    out += b"This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 8
    targets = [rng.randrange(0, 0x6000) for _ in range(40)]
    while len(out) < BASE_LEN:
        r = rng.random()
        if r < 0.35:
            # call to one of a few absolute targets: rel32 = target - (pos + 5)
            target = rng.choice(targets)
            rel = (target - (len(out) + 5)) & 0xFFFFFFFF
            out += b"\xe8" + struct.pack("<I", rel)
        elif r < 0.5:
            out += b"\x48\x8b\x4c\x24" + bytes([rng.choice([0x20, 0x28, 0x30, 0x38])])
        elif r < 0.6:
            out += b"\x55\x48\x89\xe5"
        elif r < 0.7:
            out += b"\xc3\xcc\xcc\xcc"
        elif r < 0.8:
            out += bytes([0xE8]) + bytes(rng.randrange(256) for _ in range(2))
        elif r < 0.9:
            out += b"\x00" * rng.randint(1, 16)
        else:
            out += rng.choice([b"kernel32.dll\x00", b"GetProcAddress\x00", b"ntdll.dll\x00"])
    return bytes(out[:BASE_LEN])


def make_records(rng):
    """8-byte records drawn from a small pool: matches at offsets that are multiples
    of 8, which is what LZX aligned-offset blocks are for."""
    pool = [rng.randbytes(8) for _ in range(300)]
    out = bytearray()
    while len(out) < BASE_LEN:
        out += rng.choice(pool)
    return bytes(out[:BASE_LEN])


def make_bases():
    rng = random.Random(20240917)
    return {
        "text": make_text(rng),
        "random": rng.randbytes(BASE_LEN),
        "pe": make_pe_like(rng),
        "records": make_records(rng),
        # not written: the tests make it themselves
        "zeros": bytes(BASE_LEN),
    }


# ---------------------------------------------------------------------------
# A small LZX writer for the crafted streams (WIM flavour: 32 KiB window, no
# header, 16-bit little-endian coding units with bits taken from the high end).

LZX_SLOT_BASE = [-2, -1, 0, 1, 2, 4, 6, 10, 14, 22, 30, 46, 62, 94, 126, 190, 254, 382, 510, 766,
                 1022, 1534, 2046, 3070, 4094, 6142, 8190, 12286, 16382, 24574]
LZX_EXTRA_BITS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11,
                  11, 12, 12, 13, 13]
LZX_MAIN_SYMS = 256 + 8 * 30
LZX_LEN_SYMS = 249


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def bits(self, value, count):
        for i in range(count - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 16:
                self.out += struct.pack("<H", self.acc)
                self.acc = 0
                self.n = 0

    def flush(self):
        if self.n:
            self.bits(0, 16 - self.n)

    def align_for_uncompressed_block(self):
        # The decoder reads at least one more bit before it aligns, so a stream
        # that is already aligned skips a whole 16-bit unit.
        if self.n:
            self.flush()
        else:
            self.bits(0, 16)

    def raw(self, data):
        assert self.n == 0
        self.out += data

    def finish(self):
        self.flush()
        return bytes(self.out)


def canonical_codes(lens):
    codes = {}
    code = 0
    for length in range(1, max(lens) + 1):
        for sym, l in enumerate(lens):
            if l == length:
                codes[sym] = (code, length)
                code += 1
        code <<= 1
    space = sum(2.0 ** -l for l in lens if l)
    assert abs(space - 1.0) < 1e-12 or space == 0, ("code not complete", space)
    return codes


def put(w, codes, sym):
    code, length = codes[sym]
    w.bits(code, length)


# Precode lengths: symbols 0..11 get 4 bits, 12..19 get 5 bits (complete).
PRECODE_LENS = [4] * 12 + [5] * 8


def write_lens(w, lens, prev):
    """Writes code lengths with a precode, delta-coded against prev; returns the new
    lengths (they become the next block's prev).  Uses presymbols 17 and 18 for runs
    of zeros and 19 for runs of four or five equal lengths."""
    pre = canonical_codes(PRECODE_LENS)
    for l in PRECODE_LENS:
        w.bits(l, 4)
    i = 0
    n = len(lens)
    while i < n:
        run = 1
        while i + run < n and lens[i + run] == lens[i]:
            run += 1
        if lens[i] == 0 and run >= 20:
            take = min(run, 51)
            put(w, pre, 18)
            w.bits(take - 20, 5)
            i += take
        elif lens[i] == 0 and run >= 4:
            take = min(run, 19)
            put(w, pre, 17)
            w.bits(take - 4, 4)
            i += take
        elif lens[i] != 0 and run >= 4 and all(prev[i + k] == prev[i] for k in range(min(run, 5))):
            # presymbol 19: the delta is taken against the first position's old length
            take = min(run, 5)
            put(w, pre, 19)
            w.bits(take - 4, 1)
            put(w, pre, (prev[i] - lens[i]) % 17)
            i += take
        else:
            put(w, pre, (prev[i] - lens[i]) % 17)
            i += 1
    return list(lens)


class LzxChunk:
    """Writes the blocks of one chunk; keeps the delta-coding state of the lengths."""

    def __init__(self):
        self.w = BitWriter()
        self.main_prev = [0] * LZX_MAIN_SYMS
        self.len_prev = [0] * LZX_LEN_SYMS

    def block_header(self, block_type, size):
        self.w.bits(block_type, 3)
        if size == 32768:
            self.w.bits(1, 1)
        else:
            self.w.bits(0, 1)
            self.w.bits(size, 16)

    def compressed_block(self, block_type, items, main_lens, len_lens, aligned_lens=None):
        size = sum(1 if it[0] == "lit" else it[1] for it in items)
        self.block_header(block_type, size)
        if block_type == 2:
            for l in aligned_lens:
                self.w.bits(l, 3)
        write_lens(self.w, main_lens[:256], self.main_prev[:256])
        write_lens(self.w, main_lens[256:], self.main_prev[256:])
        write_lens(self.w, len_lens, self.len_prev)
        self.main_prev = list(main_lens)
        self.len_prev = list(len_lens)
        main = canonical_codes(main_lens)
        lencode = canonical_codes(len_lens) if any(len_lens) else {}
        aligned = canonical_codes(aligned_lens) if block_type == 2 else {}
        for it in items:
            if it[0] == "lit":
                put(self.w, main, it[1])
                continue
            # ("match", length, slot, extra)
            _, length, slot, extra = it
            header = min(length - 2, 7)
            put(self.w, main, 256 + slot * 8 + header)
            if header == 7:
                put(self.w, lencode, length - 9)
            if slot >= 3:
                nbits = LZX_EXTRA_BITS[slot]
                if block_type == 2 and slot >= 8:
                    self.w.bits(extra >> 3, nbits - 3)
                    put(self.w, aligned, extra & 7)
                else:
                    self.w.bits(extra, nbits)

    def uncompressed_block(self, r, data):
        self.block_header(3, len(data))
        self.w.align_for_uncompressed_block()
        self.w.raw(struct.pack("<III", *r))
        self.w.raw(data)
        if len(data) % 2:
            self.w.raw(b"\x00")

    def finish(self):
        return self.w.finish()


def literal_main_lens(match_syms):
    """All 256 literals at 9 bits (half the code space), and eight match symbols at
    4 bits (the other half)."""
    assert len(match_syms) == 8
    lens = [9] * 256 + [0] * (LZX_MAIN_SYMS - 256)
    for s in match_syms:
        lens[s] = 4
    return lens


class Model:
    """Applies LZX items to an output buffer, with the R0-R2 queue, to know what a
    crafted stream must decode to (before E8 post-processing)."""

    def __init__(self):
        self.out = bytearray()
        self.r = [1, 1, 1]

    def apply(self, items):
        for it in items:
            if it[0] == "lit":
                self.out.append(it[1])
                continue
            _, length, slot, extra = it
            if slot < 3:
                offset = self.r[slot]
                self.r[slot] = self.r[0]
                self.r[0] = offset
            else:
                offset = LZX_SLOT_BASE[slot] + extra
                self.r = [offset, self.r[0], self.r[1]]
            assert 0 < offset <= len(self.out)
            for _ in range(length):
                self.out.append(self.out[-offset])

    def raw(self, r, data):
        self.r = list(r)
        self.out += data


def lits(data):
    return [("lit", b) for b in data]


def crafted_lzx():
    """Returns [(name, compressed, intended_output)]."""
    cases = []

    # 1. An odd-sized uncompressed block (R0-R2 from its header, then a padding
    #    byte), followed by a verbatim block whose matches use R0, R1 and R2.
    c = LzxChunk()
    m = Model()
    r = (3, 5, 7)
    data = b"abcdefg"
    c.uncompressed_block(r, data)
    m.raw(r, data)
    items = [("match", 5, 0, 0), ("match", 4, 1, 0), ("match", 3, 2, 0)] + lits(b"xyz") + [
        ("match", 6, 0, 0)
    ] * 40
    syms = [256 + 0 * 8 + 3, 256 + 1 * 8 + 2, 256 + 2 * 8 + 1, 256 + 0 * 8 + 4,
            256 + 3 * 8 + 0, 256 + 4 * 8 + 0, 256 + 5 * 8 + 0, 256 + 6 * 8 + 0]
    c.compressed_block(1, items, literal_main_lens(syms), [0] * LZX_LEN_SYMS)
    m.apply(items)
    cases.append(("lzx-uncompressed-odd-then-repeats", c.finish(), bytes(m.out)))

    # 2. A verbatim block that ends exactly on a 16-bit boundary, so the
    #    uncompressed block after it skips a whole unit; its data holds E8 bytes
    #    (E8 translation applies to uncompressed blocks as well); then a verbatim
    #    block repeating R0-R2 again.
    for nlit in range(1, 40):
        c = LzxChunk()
        m = Model()
        first = lits(bytes((0x41 + i % 26) for i in range(nlit)))
        syms = [256 + s * 8 + h for s, h in [(3, 0), (3, 1), (4, 0), (4, 1), (5, 0), (5, 1), (6, 0), (6, 1)]]
        c.compressed_block(1, first, literal_main_lens(syms), [0] * LZX_LEN_SYMS)
        m.apply(first)
        if (c.w.n + 20) % 16 == 0:
            break
    else:
        raise AssertionError("no literal count aligns the uncompressed block header")
    r = (2, 9, 4)
    data = b"\xe8\x10\x00\x00\x00call\xe8\x00\x02\x00\x00 uncompressed block data, even length!"
    assert len(data) % 2 == 0
    c.uncompressed_block(r, data)
    m.raw(r, data)
    items = [("match", 4, 1, 0), ("match", 3, 2, 0), ("match", 5, 0, 0)] + lits(b"end") + [
        ("match", 5, 0, 0)
    ] * 80
    syms = [256 + 1 * 8 + 2, 256 + 2 * 8 + 1, 256 + 0 * 8 + 3, 256 + 0 * 8 + 0,
            256 + 3 * 8 + 0, 256 + 4 * 8 + 0, 256 + 5 * 8 + 0, 256 + 6 * 8 + 0]
    c.compressed_block(1, items, literal_main_lens(syms), [0] * LZX_LEN_SYMS)
    m.apply(items)
    cases.append(("lzx-uncompressed-aligned-e8", c.finish(), bytes(m.out)))

    # 3. An aligned-offset block: explicit offsets in slots 8, 10 and 16 (aligned
    #    symbol for the low 3 bits), slot 4 (verbatim extra bit), a length symbol
    #    for a long match, and code lengths that exercise presymbols 17, 18, 19.
    c = LzxChunk()
    m = Model()
    rng = random.Random(7)
    text = bytes(rng.choice(b"abcdefghijklmnop") for _ in range(400))
    items = lits(text) + [
        ("match", 3, 8, 5),  # offset 14 + 5
        ("match", 4, 10, 13),  # offset 30 + 13
        ("match", 2, 16, 100),  # offset 254 + 100
        ("match", 3, 4, 1),  # offset 2 + 1
        ("match", 9, 0, 0),  # repeat R0, length symbol 0
        ("match", 20, 0, 0),  # repeat R0, length symbol 11
        ("match", 2, 3, 0),  # offset 1
    ] + lits(b"tail") + [("match", 20, 0, 0)] * 30
    syms = [256 + 8 * 8 + 1, 256 + 10 * 8 + 2, 256 + 16 * 8 + 0, 256 + 4 * 8 + 1,
            256 + 0 * 8 + 7, 256 + 3 * 8 + 0, 256 + 20 * 8 + 0, 256 + 21 * 8 + 0]
    len_lens = [0] * LZX_LEN_SYMS
    len_lens[0] = 1
    len_lens[11] = 1
    aligned_lens = [3] * 8
    c.compressed_block(2, items, literal_main_lens(syms), len_lens, aligned_lens)
    m.apply(items)
    # A second verbatim block: the lengths are delta-coded against the first's.
    items2 = lits(b"second block") + [("match", 9, 0, 0)]
    syms2 = [256 + 0 * 8 + 7, 256 + 3 * 8 + 0, 256 + 4 * 8 + 0, 256 + 5 * 8 + 0,
             256 + 6 * 8 + 0, 256 + 7 * 8 + 0, 256 + 8 * 8 + 0, 256 + 9 * 8 + 0]
    c.compressed_block(1, items2, literal_main_lens(syms2), len_lens)
    m.apply(items2)
    cases.append(("lzx-aligned-block", c.finish(), bytes(m.out)))
    return cases


def invalid_cases():
    """Returns [(name, algorithm, compressed, output_len)]: wimlib must reject each."""
    cases = []
    # XPRESS: every one of the 512 symbols 1 bit long: over-subscribed.
    cases.append(("xpress-oversubscribed", "xpress4k", bytes([0x11]) * 256 + b"\x00" * 16, 1024))
    # XPRESS: a single 1-bit symbol: incomplete (and not empty).
    cases.append(("xpress-incomplete", "xpress4k", b"\x01" + b"\x00" * 255 + b"\x00" * 16, 1024))
    # XPRESS: all 512 symbols 9 bits (complete); the first symbol is a match
    # (offset 1, length 3) before any output.
    w = BitWriter()
    w.bits(256, 9)
    cases.append(("xpress-offset-before-start", "xpress4k", bytes([0x99]) * 256 + w.finish() + b"\x00" * 4, 1024))
    # XPRESS: a literal, then a match of length 997 + 3 in a 1024-byte chunk (a
    # 16-bit length, after the unit the decoder buffers past the symbol).
    w = BitWriter()
    w.bits(ord("a"), 9)
    w.bits(256 + 15, 9)
    w.bits(0, 16)
    long_len = w.finish() + b"\xff" + struct.pack("<H", 1021)
    cases.append(("xpress-match-past-end", "xpress4k", bytes([0x99]) * 256 + long_len + b"\x00" * 4, 1024))

    # LZX: a verbatim block whose first symbol is a match at R0 = 1 (before the
    # chunk's start).
    c = LzxChunk()
    syms = [256 + 1] + [256 + s * 8 for s in range(1, 8)]
    lens = literal_main_lens(syms)
    c.block_header(1, 1000)
    write_lens(c.w, lens[:256], [0] * 256)
    write_lens(c.w, lens[256:], [0] * (LZX_MAIN_SYMS - 256))
    write_lens(c.w, [0] * LZX_LEN_SYMS, [0] * LZX_LEN_SYMS)
    put(c.w, canonical_codes(lens), 256 + 0 * 8 + 1)
    cases.append(("lzx-offset-before-start", "lzx", c.finish() + b"\x00" * 8, 1000))
    # LZX: the same, but the match is an explicit offset 30 after 10 literals.
    c = LzxChunk()
    syms = [256 + s * 8 for s in range(3, 11)]
    lens = literal_main_lens(syms)
    c.block_header(1, 1000)
    write_lens(c.w, lens[:256], [0] * 256)
    write_lens(c.w, lens[256:], [0] * (LZX_MAIN_SYMS - 256))
    write_lens(c.w, [0] * LZX_LEN_SYMS, [0] * LZX_LEN_SYMS)
    codes = canonical_codes(lens)
    for b in b"0123456789":
        put(c.w, codes, b)
    put(c.w, codes, 256 + 10 * 8)
    c.w.bits(0, 4)
    cases.append(("lzx-explicit-offset-before-start", "lzx", c.finish() + b"\x00" * 8, 1000))
    # LZX: a precode whose 20 lengths are all 1: over-subscribed.
    w = BitWriter()
    w.bits(1, 3)
    w.bits(0, 1)
    w.bits(1000, 16)
    for _ in range(20):
        w.bits(1, 4)
    cases.append(("lzx-oversubscribed-precode", "lzx", w.finish() + b"\x00" * 64, 1000))
    # LZX: a main code that is over-subscribed (all 256 literals 7 bits).
    c = LzxChunk()
    c.block_header(1, 1000)
    write_lens(c.w, [7] * 256, [0] * 256)
    write_lens(c.w, [0] * (LZX_MAIN_SYMS - 256), [0] * (LZX_MAIN_SYMS - 256))
    write_lens(c.w, [0] * LZX_LEN_SYMS, [0] * LZX_LEN_SYMS)
    cases.append(("lzx-oversubscribed-main", "lzx", c.finish() + b"\x00" * 64, 1000))
    # LZX: block types 0 and 7 do not exist.
    for t in (0, 7):
        w = BitWriter()
        w.bits(t, 3)
        w.bits(1, 1)
        cases.append((f"lzx-block-type-{t}", "lzx", w.finish() + b"\x00" * 64, 32768))
    # LZX: a block larger than the chunk.
    w = BitWriter()
    w.bits(3, 3)
    w.bits(0, 1)
    w.bits(2000, 16)
    w.align_for_uncompressed_block()
    w.raw(struct.pack("<III", 1, 1, 1) + b"x" * 20)
    cases.append(("lzx-block-past-end", "lzx", w.finish(), 1000))
    # LZX: an uncompressed block with R1 = 0.
    w = BitWriter()
    w.bits(3, 3)
    w.bits(0, 1)
    w.bits(100, 16)
    w.align_for_uncompressed_block()
    w.raw(struct.pack("<III", 1, 0, 1) + b"x" * 10)
    cases.append(("lzx-uncompressed-zero-offset", "lzx", w.finish(), 100))
    # LZX: an uncompressed block whose data is cut short.
    w = BitWriter()
    w.bits(3, 3)
    w.bits(0, 1)
    w.bits(50, 16)
    w.align_for_uncompressed_block()
    w.raw(struct.pack("<III", 1, 1, 1) + b"x" * 20)
    cases.append(("lzx-uncompressed-truncated", "lzx", w.finish(), 50))
    return cases


# ---------------------------------------------------------------------------
# Whole streams


def make_stream(alg, data):
    """A WofCompressedData stream: chunk table (ends of chunks 0..n-2, relative to
    the table's end) followed by the chunks, each compressed or stored."""
    size = CHUNK_SIZE[alg]
    chunks = []
    for start in range(0, len(data), size):
        raw = data[start:start + size]
        comp = wim_compress(alg, raw)
        stored = comp if comp is not None else raw
        if comp is not None:
            assert wim_decompress(alg, comp, len(raw)) == raw
        chunks.append(stored)
    entry = "<I" if len(data) <= 0xFFFFFFFF else "<Q"
    table = bytearray()
    end = 0
    for ch in chunks[:-1]:
        end += len(ch)
        table += struct.pack(entry, end)
    return bytes(table) + b"".join(chunks), len(chunks)


# ---------------------------------------------------------------------------


def write(rel, data):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    bases = make_bases()
    for name, data in bases.items():
        if name != "zeros":
            write(f"input/{name}.bin", data)

    rows = []
    for alg, _, chunk in ALGORITHMS:
        for base in ["text", "random", "pe", "records", "zeros"]:
            lengths = [chunk]
            if base in ("text", "pe"):
                lengths.append(1000)  # a short last chunk
            if base == "text":
                lengths.append(12)  # tiny: stored
            for length in lengths:
                data = bases[base][:length]
                levels = [0]
                if alg == "lzx" and base in ("records", "pe"):
                    levels.append(100)
                for level in levels:
                    comp = wim_compress(alg, data, level)
                    tag = f"{base}-{length}" + (f"-l{level}" if level else "")
                    if comp is None:
                        rows.append((alg, tag, base, length, "stored", "-"))
                        continue
                    back = wim_decompress(alg, comp, length)
                    assert back == data, ("round trip failed", alg, tag)
                    rel = f"{alg}/{tag}.cmp"
                    write(rel, comp)
                    rows.append((alg, tag, base, length, "compressed", rel))

    for name, comp, intended in crafted_lzx():
        assert len(comp) < len(intended), ("a WOF chunk is smaller than its output", name)
        back = wim_decompress("lzx", comp, len(intended))
        assert back is not None, ("wimlib rejects crafted", name)
        if b"\xe8" not in intended:
            assert back == intended, ("crafted decodes differently", name)
        write(f"crafted/{name}.cmp", comp)
        write(f"crafted/{name}.out", back)
        rows.append(("lzx", name, "-", len(back), "crafted", f"crafted/{name}.cmp"))

    for name, alg, comp, out_len in invalid_cases():
        assert len(comp) < out_len, ("a WOF chunk is smaller than its output", name)
        assert wim_decompress(alg, comp, out_len) is None, ("wimlib accepts invalid", name)
        write(f"invalid/{name}.cmp", comp)
        rows.append((alg, name, "-", out_len, "invalid", f"invalid/{name}.cmp"))

    # multi-chunk streams, each with compressed and stored chunks: XPRESS4K, 5 chunks
    # (the last 3616 bytes); XPRESS16K, 3 chunks; LZX, 2 chunks (the last 7232 bytes)
    streams = [
        ("xpress4k", [("pe", 0, 12000), ("random", 0, 8000)]),
        ("xpress16k", [("text", 0, 16384), ("random", 0, 16384), ("pe", 0, 7232)]),
        ("lzx", [("pe", 0, 32768), ("random", 0, 7232)]),
    ]
    for alg, parts in streams:
        data = b"".join(bases[b][start:start + n] for b, start, n in parts)
        desc = "+".join(f"{b}:{start}:{n}" for b, start, n in parts)
        stream, nchunks = make_stream(alg, data)
        rel = f"stream/{alg}-{len(data)}.wof"
        write(rel, stream)
        rows.append((alg, f"stream-{len(data)}", desc, len(data), "stream", rel))

    with open(os.path.join(HERE, "manifest.tsv"), "w") as f:
        f.write("# algorithm\tname\tinput\tuncompressed_len\tkind\tfile\n")
        f.write("# generated by make_fixtures.py: input is a file under input/ (first uncompressed_len\n")
        f.write("# bytes; zeros = all zero), slices NAME:START:LEN joined with + (streams), or -\n")
        f.write("# (crafted: the expected output is the .out beside the .cmp; invalid: must be an error)\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")

    total = 0
    for dirpath, _, files in os.walk(HERE):
        for fn in files:
            total += os.path.getsize(os.path.join(dirpath, fn))
    print(f"{len(rows)} fixtures, {total} bytes under testdata/wof", file=sys.stderr)


if __name__ == "__main__":
    main()
