//! WOF (Windows Overlay Filter) compressed files, as `compact /exe` and CompactOS leave
//! them: the reparse point that names the algorithm, the chunk table of the
//! `WofCompressedData` stream, and the XPRESS (LZ77+Huffman) and LZX chunk decoders.
//!
//! A WOF-compressed file has a reparse point with tag `0x80000017` whose data is
//! `WOF_EXTERNAL_INFO {version = 1, provider}` then, for the file provider (2),
//! `FILE_PROVIDER_EXTERNAL_INFO_V1 {version = 1, algorithm}`. Its unnamed `$DATA` is
//! sparse and only gives the uncompressed size; the data is in the named stream
//! `WofCompressedData`: a table of the end offsets of chunks `0..n-1` (4-byte entries
//! when the uncompressed size is below 4 GiB, else 8-byte ones, relative to the end of
//! the table), then the chunks. Each chunk decompresses to the algorithm's chunk size
//! (the last one to the rest); a chunk stored with exactly its uncompressed size is
//! stored as is. See docs/wof.md.
//!
//! Everything here takes hostile input: no panic, no unbounded loop, and no allocation
//! sized by the input beyond what the caller already holds (the chunk table is checked
//! against the stream's size before anything is allocated for it).

mod lzx;
mod xpress;

use std::fmt;

/// Reparse tag of WOF-backed files (`IO_REPARSE_TAG_WOF`).
pub const IO_REPARSE_TAG_WOF: u32 = 0x8000_0017;

/// Name of the named `$DATA` stream holding the compressed data.
pub const WOF_STREAM_NAME: &str = "WofCompressedData";

/// More chunks than this and the chunk table is refused (2^26 chunks: 256 GiB at 4 KiB
/// chunks, 2 TiB at 32 KiB).
pub const MAX_CHUNKS: u64 = 1 << 26;

/// The largest chunk of any algorithm (LZX's 32 KiB).
pub const MAX_CHUNK_SIZE: usize = 32768;

/// The compression algorithm of a file-provider WOF file
/// (`FILE_PROVIDER_EXTERNAL_INFO_V1.Algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WofAlgorithm {
    /// XPRESS Huffman, 4 KiB chunks (code 0).
    Xpress4k,
    /// LZX, 32 KiB chunks (code 1).
    Lzx,
    /// XPRESS Huffman, 8 KiB chunks (code 2).
    Xpress8k,
    /// XPRESS Huffman, 16 KiB chunks (code 3).
    Xpress16k,
}

impl WofAlgorithm {
    /// The algorithm of a `FILE_PROVIDER_COMPRESSION_*` code.
    pub fn from_code(code: u32) -> Option<WofAlgorithm> {
        match code {
            0 => Some(WofAlgorithm::Xpress4k),
            1 => Some(WofAlgorithm::Lzx),
            2 => Some(WofAlgorithm::Xpress8k),
            3 => Some(WofAlgorithm::Xpress16k),
            _ => None,
        }
    }

    /// The `FILE_PROVIDER_COMPRESSION_*` code.
    pub fn code(self) -> u32 {
        match self {
            WofAlgorithm::Xpress4k => 0,
            WofAlgorithm::Lzx => 1,
            WofAlgorithm::Xpress8k => 2,
            WofAlgorithm::Xpress16k => 3,
        }
    }

    /// Uncompressed size of every chunk but the last.
    pub fn chunk_size(self) -> usize {
        match self {
            WofAlgorithm::Xpress4k => 4096,
            WofAlgorithm::Lzx => 32768,
            WofAlgorithm::Xpress8k => 8192,
            WofAlgorithm::Xpress16k => 16384,
        }
    }

    /// The name `compact.exe` uses, upper case.
    pub fn name(self) -> &'static str {
        match self {
            WofAlgorithm::Xpress4k => "XPRESS4K",
            WofAlgorithm::Lzx => "LZX",
            WofAlgorithm::Xpress8k => "XPRESS8K",
            WofAlgorithm::Xpress16k => "XPRESS16K",
        }
    }
}

impl fmt::Display for WofAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a WOF file cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WofError {
    #[error("WOF reparse data is {len} bytes, shorter than the {needed} bytes of WOF_EXTERNAL_INFO and its provider's information")]
    ReparseTooShort { len: usize, needed: usize },
    #[error("WOF_EXTERNAL_INFO version {version} (only 1 is known)")]
    UnsupportedWofVersion { version: u32 },
    #[error("WOF provider 1 (WIM-backed, WIMBoot): the data is in a WIM file named by the volume's WimOverlay.dat, not in this file; not decodable offline")]
    WimBacked,
    #[error("unknown WOF provider {provider} (only 2, the file provider, holds its own data)")]
    UnknownProvider { provider: u32 },
    #[error("FILE_PROVIDER_EXTERNAL_INFO_V1 version {version} (only 1 is known)")]
    UnsupportedFileProviderVersion { version: u32 },
    #[error("unknown WOF compression algorithm {code} (known: 0 XPRESS4K, 1 LZX, 2 XPRESS8K, 3 XPRESS16K)")]
    UnknownAlgorithm { code: u32 },
    #[error(
        "uncompressed size {uncompressed_size} means {chunks} chunks, more than the {max} accepted"
    )]
    TooManyChunks {
        uncompressed_size: u64,
        chunks: u64,
        max: u64,
    },
    #[error("the chunk table needs {table_len} bytes but the WofCompressedData stream has {stream_size}")]
    TableBeyondStream { table_len: u64, stream_size: u64 },
    #[error("the chunk table needs {expected} bytes, {actual} given")]
    TableTruncated { expected: u64, actual: u64 },
    #[error("chunk {chunk} would span stream bytes {start}..{end}, outside the chunk data (which ends at {stream_size}) or before the previous chunk's end")]
    BadChunkOffset {
        chunk: u64,
        start: u64,
        end: u64,
        stream_size: u64,
    },
    #[error("chunk {chunk} is stored in {stored} bytes, not 1 to {uncompressed} (its uncompressed size)")]
    BadChunkSize {
        chunk: u64,
        stored: u64,
        uncompressed: u64,
    },
    #[error("chunk {chunk} does not exist (the file has {chunks})")]
    NoSuchChunk { chunk: u64, chunks: u64 },
    #[error("chunk {chunk}: {actual} stored bytes given, the chunk table says {expected}")]
    StoredLenMismatch {
        chunk: u64,
        expected: u64,
        actual: u64,
    },
    #[error(
        "chunk {chunk}: output buffer of {actual} bytes, the chunk decompresses to {expected}"
    )]
    OutputLenMismatch {
        chunk: u64,
        expected: u64,
        actual: u64,
    },
    #[error("a {algorithm} chunk decompresses to at most {max} bytes, {len} asked")]
    OutputTooLarge {
        algorithm: WofAlgorithm,
        len: usize,
        max: usize,
    },
    #[error(
        "a chunk stored in {stored} bytes is larger than its {uncompressed} uncompressed bytes"
    )]
    StoredLargerThanOutput { stored: usize, uncompressed: usize },
    #[error("{algorithm} chunk{} is corrupt: {reason} (at compressed byte {input_offset}, output byte {output_offset})", chunk_label(chunk))]
    CorruptChunk {
        algorithm: WofAlgorithm,
        /// `None` from [`decompress_chunk`], which does not know the index;
        /// [`ChunkTable::decode_chunk`] fills it in.
        chunk: Option<u64>,
        reason: &'static str,
        input_offset: usize,
        output_offset: usize,
    },
}

fn chunk_label(chunk: &Option<u64>) -> String {
    match chunk {
        Some(c) => format!(" {c}"),
        None => String::new(),
    }
}

fn le32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn le64(data: &[u8], at: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Parses the reparse data of a tag-`0x80000017` reparse point: the bytes after the
/// 8-byte reparse header, that is from `WOF_EXTERNAL_INFO` on. Only the file provider
/// (2) with a known algorithm is decodable; the WIM provider (1) is refused with
/// [`WofError::WimBacked`]. Bytes after the 16 read here (a `Flags` field) are ignored.
pub fn parse_wof_reparse(data: &[u8]) -> Result<WofAlgorithm, WofError> {
    let too_short = |needed| WofError::ReparseTooShort {
        len: data.len(),
        needed,
    };
    let version = le32(data, 0).ok_or(too_short(16))?;
    let provider = le32(data, 4).ok_or(too_short(16))?;
    if version != 1 {
        return Err(WofError::UnsupportedWofVersion { version });
    }
    match provider {
        2 => {}
        1 => return Err(WofError::WimBacked),
        provider => return Err(WofError::UnknownProvider { provider }),
    }
    let fp_version = le32(data, 8).ok_or(too_short(16))?;
    let code = le32(data, 12).ok_or(too_short(16))?;
    if fp_version != 1 {
        return Err(WofError::UnsupportedFileProviderVersion {
            version: fp_version,
        });
    }
    WofAlgorithm::from_code(code).ok_or(WofError::UnknownAlgorithm { code })
}

/// Decompresses one chunk. `input` is the chunk's stored bytes; `output` is filled with
/// exactly `output.len()` bytes, the chunk's uncompressed size (at most the algorithm's
/// chunk size). A chunk stored with its uncompressed size (`input.len() ==
/// output.len()`) is copied.
pub fn decompress_chunk(
    algorithm: WofAlgorithm,
    input: &[u8],
    output: &mut [u8],
) -> Result<(), WofError> {
    let max = algorithm.chunk_size();
    if output.len() > max {
        return Err(WofError::OutputTooLarge {
            algorithm,
            len: output.len(),
            max,
        });
    }
    if input.len() == output.len() {
        output.copy_from_slice(input);
        return Ok(());
    }
    if input.len() > output.len() {
        return Err(WofError::StoredLargerThanOutput {
            stored: input.len(),
            uncompressed: output.len(),
        });
    }
    let result = match algorithm {
        WofAlgorithm::Lzx => lzx::decompress(input, output),
        _ => xpress::decompress(input, output),
    };
    result.map_err(|f| WofError::CorruptChunk {
        algorithm,
        chunk: None,
        reason: f.reason,
        input_offset: f.input_offset,
        output_offset: f.output_offset,
    })
}

/// The chunk table at the start of a `WofCompressedData` stream, checked: every chunk
/// lies inside the stream, after the previous one, and is stored in 1 to its
/// uncompressed size bytes.
#[derive(Clone, Debug)]
pub struct ChunkTable {
    algorithm: WofAlgorithm,
    uncompressed_size: u64,
    stream_size: u64,
    chunk_count: u64,
    /// Bytes of the table (`(chunk_count - 1) * entry_size`); chunk 0 starts here.
    data_offset: u64,
    entry_size: u8,
    /// The table as stored (a copy of exactly `data_offset` bytes).
    entries: Vec<u8>,
}

impl ChunkTable {
    fn count(algorithm: WofAlgorithm, uncompressed_size: u64) -> u64 {
        let cs = algorithm.chunk_size() as u64;
        uncompressed_size / cs + u64::from(uncompressed_size % cs != 0)
    }

    fn entry_size(uncompressed_size: u64) -> u8 {
        if uncompressed_size <= u64::from(u32::MAX) {
            4
        } else {
            8
        }
    }

    /// Bytes of chunk table at the start of the stream, for a file of
    /// `uncompressed_size` bytes. Bounded: a file over [`MAX_CHUNKS`] chunks is counted
    /// as [`MAX_CHUNKS`] (and refused by [`ChunkTable::parse`]), so this is at most
    /// 512 MiB; callers that allocate should rather use
    /// [`ChunkTable::table_len_checked`], which also weighs the stream's size.
    pub fn table_len(algorithm: WofAlgorithm, uncompressed_size: u64) -> u64 {
        let n = Self::count(algorithm, uncompressed_size).min(MAX_CHUNKS);
        n.saturating_sub(1) * u64::from(Self::entry_size(uncompressed_size))
    }

    /// [`ChunkTable::table_len`], refused when the file has too many chunks or the
    /// table would not fit in the stream: what to read before calling
    /// [`ChunkTable::parse`], never more than `stream_size`.
    pub fn table_len_checked(
        algorithm: WofAlgorithm,
        uncompressed_size: u64,
        stream_size: u64,
    ) -> Result<u64, WofError> {
        let chunks = Self::count(algorithm, uncompressed_size);
        if chunks > MAX_CHUNKS {
            return Err(WofError::TooManyChunks {
                uncompressed_size,
                chunks,
                max: MAX_CHUNKS,
            });
        }
        let table_len = Self::table_len(algorithm, uncompressed_size);
        if table_len > stream_size {
            return Err(WofError::TableBeyondStream {
                table_len,
                stream_size,
            });
        }
        Ok(table_len)
    }

    /// Checks the chunk table of a file of `uncompressed_size` bytes (the unnamed
    /// `$DATA`'s size) whose `WofCompressedData` stream has `stream_size` bytes;
    /// `table_bytes` holds at least the stream's first
    /// [`ChunkTable::table_len_checked`] bytes (more is ignored).
    pub fn parse(
        algorithm: WofAlgorithm,
        uncompressed_size: u64,
        stream_size: u64,
        table_bytes: &[u8],
    ) -> Result<ChunkTable, WofError> {
        let table_len = Self::table_len_checked(algorithm, uncompressed_size, stream_size)?;
        let chunk_count = Self::count(algorithm, uncompressed_size);
        let given = table_bytes.len() as u64;
        let table = usize::try_from(table_len)
            .ok()
            .and_then(|len| table_bytes.get(..len))
            .ok_or(WofError::TableTruncated {
                expected: table_len,
                actual: given,
            })?;
        let mut parsed = ChunkTable {
            algorithm,
            uncompressed_size,
            stream_size,
            chunk_count,
            data_offset: table_len,
            entry_size: Self::entry_size(uncompressed_size),
            entries: Vec::new(),
        };
        // Check every chunk against the borrowed bytes before copying them.
        let data_len = stream_size - table_len;
        let mut prev = 0u64;
        for chunk in 0..chunk_count {
            let end = if chunk + 1 < chunk_count {
                parsed.entry_in(table, chunk)
            } else {
                data_len
            };
            if end < prev || end > data_len {
                return Err(WofError::BadChunkOffset {
                    chunk,
                    start: table_len + prev,
                    end: table_len.saturating_add(end),
                    stream_size,
                });
            }
            let stored = end - prev;
            let uncompressed = parsed.uncompressed_len(chunk) as u64;
            if stored == 0 || stored > uncompressed {
                return Err(WofError::BadChunkSize {
                    chunk,
                    stored,
                    uncompressed,
                });
            }
            prev = end;
        }
        parsed.entries = table.to_vec();
        Ok(parsed)
    }

    /// Entry `i` (the end of chunk `i`, relative to the table's end) of `table`.
    fn entry_in(&self, table: &[u8], i: u64) -> u64 {
        let Ok(i) = usize::try_from(i) else {
            return u64::MAX;
        };
        let value = if self.entry_size == 4 {
            i.checked_mul(4)
                .and_then(|at| le32(table, at))
                .map(u64::from)
        } else {
            i.checked_mul(8).and_then(|at| le64(table, at))
        };
        value.unwrap_or(u64::MAX)
    }

    /// The algorithm the table was parsed for.
    pub fn algorithm(&self) -> WofAlgorithm {
        self.algorithm
    }

    /// The file's uncompressed size.
    pub fn uncompressed_size(&self) -> u64 {
        self.uncompressed_size
    }

    /// Stream offset of chunk 0 (the table's length).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Number of chunks (0 for an empty file).
    pub fn chunk_count(&self) -> u64 {
        self.chunk_count
    }

    /// `(start, end)` of chunk `index` as offsets in the `WofCompressedData` stream,
    /// or `None` past the last chunk.
    pub fn chunk_range(&self, index: u64) -> Option<(u64, u64)> {
        if index >= self.chunk_count {
            return None;
        }
        let start = if index == 0 {
            0
        } else {
            self.entry_in(&self.entries, index - 1)
        };
        let end = if index + 1 == self.chunk_count {
            self.stream_size
        } else {
            self.data_offset + self.entry_in(&self.entries, index)
        };
        Some((self.data_offset + start, end))
    }

    /// Uncompressed size of chunk `index`: the chunk size, less for the last chunk, 0
    /// past it.
    pub fn uncompressed_len(&self, index: u64) -> usize {
        let cs = self.algorithm.chunk_size();
        if index >= self.chunk_count {
            0
        } else if index + 1 == self.chunk_count {
            (self.uncompressed_size - index * cs as u64) as usize
        } else {
            cs
        }
    }

    /// Offset in the uncompressed file of chunk `index`'s first byte.
    pub fn uncompressed_offset(&self, index: u64) -> u64 {
        index.saturating_mul(self.algorithm.chunk_size() as u64)
    }

    /// [`decompress_chunk`] for chunk `index`, checking that `stored` and `output` have
    /// the sizes the table gives, and naming the chunk in the error.
    pub fn decode_chunk(
        &self,
        index: u64,
        stored: &[u8],
        output: &mut [u8],
    ) -> Result<(), WofError> {
        let (start, end) = self.chunk_range(index).ok_or(WofError::NoSuchChunk {
            chunk: index,
            chunks: self.chunk_count,
        })?;
        if stored.len() as u64 != end - start {
            return Err(WofError::StoredLenMismatch {
                chunk: index,
                expected: end - start,
                actual: stored.len() as u64,
            });
        }
        let expected = self.uncompressed_len(index);
        if output.len() != expected {
            return Err(WofError::OutputLenMismatch {
                chunk: index,
                expected: expected as u64,
                actual: output.len() as u64,
            });
        }
        decompress_chunk(self.algorithm, stored, output).map_err(|e| match e {
            WofError::CorruptChunk {
                algorithm,
                reason,
                input_offset,
                output_offset,
                ..
            } => WofError::CorruptChunk {
                algorithm,
                chunk: Some(index),
                reason,
                input_offset,
                output_offset,
            },
            other => other,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Shared by the two decoders.

/// Where and why a chunk failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    reason: &'static str,
    input_offset: usize,
    output_offset: usize,
}

/// The bitstream of XPRESS and LZX: 16-bit little-endian units, bits taken from the
/// high end of each, with whole bytes (XPRESS's long lengths, LZX's uncompressed
/// blocks) read from the byte position between units. Units are loaded only as the
/// bits are asked for, exactly as the reference decoders do, since that fixes where
/// the interleaved bytes are.
///
/// Past the end of the input, zero units are loaded (a Huffman decode looks ahead
/// more bits than the last codeword may have); they are counted, and a decoder that
/// has *consumed* any of them has read a truncated chunk ([`BitReader::overrun`]).
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The low `avail` bits are buffered; the next bit is bit `avail - 1`.
    buf: u64,
    avail: u32,
    /// Zero bits loaded past the end (the lowest of the buffered ones).
    phantom: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            avail: 0,
            phantom: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        let word = match self.data.get(self.pos..self.pos + 2) {
            Some(b) => {
                self.pos += 2;
                u16::from_le_bytes([b[0], b[1]])
            }
            None => {
                self.phantom = self.phantom.saturating_add(16);
                0
            }
        };
        self.buf = (self.buf << 16) | u64::from(word);
        self.avail += 16;
    }

    /// Buffers at least `n` (at most 32) bits.
    #[inline]
    fn ensure(&mut self, n: u32) {
        while self.avail < n {
            self.refill();
        }
    }

    /// The next `n` buffered bits (`n <= avail`, `n <= 32`).
    #[inline]
    fn peek(&self, n: u32) -> u32 {
        debug_assert!(n <= self.avail && n <= 32);
        ((self.buf >> (self.avail - n)) & ((1u64 << n) - 1)) as u32
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.avail);
        self.avail -= n.min(self.avail);
    }

    #[inline]
    fn read_bits(&mut self, n: u32) -> u32 {
        self.ensure(n);
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Whether bits past the end of the input were consumed.
    fn overrun(&self) -> bool {
        self.phantom > self.avail
    }

    /// Drops the buffered bits: the byte position is then at a unit boundary.
    fn align(&mut self) {
        self.avail = 0;
        self.buf = 0;
        self.phantom = 0;
    }

    fn read_byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn read_bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    fn read_u16(&mut self) -> Option<u16> {
        let b = self.read_bytes(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    fn read_u32(&mut self) -> Option<u32> {
        let b = self.read_bytes(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Byte position, for error reports.
    fn position(&self) -> usize {
        self.pos
    }
}

/// Why a set of code lengths is not a usable prefix code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeError {
    OverSubscribed,
    Incomplete,
    TooLong,
    /// Cannot happen for a complete code within the table's capacity; checked anyway.
    TableFull,
}

impl CodeError {
    fn reason(self) -> &'static str {
        match self {
            CodeError::OverSubscribed => "Huffman code lengths over-subscribe the code space",
            CodeError::Incomplete => "Huffman code lengths leave the code space incomplete",
            CodeError::TooLong => "Huffman code length over the maximum",
            CodeError::TableFull => "Huffman decode table overflow",
        }
    }
}

const ENTRY_SUBTABLE: u32 = 1 << 31;
const ENTRY_INVALID: u32 = 1 << 30;
const MAX_SYMBOLS: usize = 512;

/// A table-driven decoder of a canonical Huffman code: a root table indexed by the
/// next `root_bits` bits, with subtables for the longer codewords. Each entry holds the
/// symbol and the codeword's length (within its table), or a subtable's start and
/// index width. `N` is the capacity: the root table plus the most subtable space a
/// complete code of this shape can need (zlib's `enough` bound).
struct Huffman<const N: usize> {
    table: [u32; N],
    root_bits: u32,
    max_len: u32,
}

impl<const N: usize> Huffman<N> {
    fn new(root_bits: u32, max_len: u32) -> Huffman<N> {
        debug_assert!(root_bits <= max_len && (1usize << root_bits) <= N && max_len <= 16);
        Huffman {
            table: [ENTRY_INVALID; N],
            root_bits,
            max_len,
        }
    }

    /// Builds the table for the code lengths `lens` (0 = symbol unused). A complete
    /// code is required, except that an empty one (every length 0) is accepted and
    /// then any decode with it fails: LZX blocks may carry an empty length or aligned
    /// code that they never use.
    fn build(&mut self, lens: &[u8]) -> Result<(), CodeError> {
        let root = self.root_bits;
        let max = self.max_len;
        if lens.len() > MAX_SYMBOLS {
            return Err(CodeError::TableFull);
        }
        let mut count = [0u16; 17];
        for &l in lens {
            if u32::from(l) > max {
                return Err(CodeError::TooLong);
            }
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut left: i32 = 1;
        for &c in &count[1..=max as usize] {
            left = (left << 1) - i32::from(c);
            if left < 0 {
                return Err(CodeError::OverSubscribed);
            }
        }
        if left != 0 {
            if left == 1 << max {
                self.table[..1 << root].fill(ENTRY_INVALID);
                return Ok(());
            }
            return Err(CodeError::Incomplete);
        }

        // Symbols by (length, value): the order of the canonical codewords.
        let mut next = [0u16; 18];
        for len in 1..=max as usize {
            next[len + 1] = next[len] + count[len];
        }
        let mut sorted = [0u16; MAX_SYMBOLS];
        for (sym, &l) in lens.iter().enumerate() {
            if l != 0 {
                let slot = &mut next[l as usize];
                sorted[*slot as usize] = sym as u16;
                *slot += 1;
            }
        }

        let mut remaining = count;
        let mut code: u32 = 0;
        let mut idx = 0usize;
        let mut next_free: usize = 1 << root;
        let mut sub_prefix = u32::MAX;
        let mut sub_start = 0usize;
        let mut sub_bits = 0u32;
        for len in 1..=max {
            for _ in 0..count[len as usize] {
                let sym = u32::from(sorted[idx]);
                idx += 1;
                if len <= root {
                    let first = (code << (root - len)) as usize;
                    let n = 1usize << (root - len);
                    self.table
                        .get_mut(first..first + n)
                        .ok_or(CodeError::TableFull)?
                        .fill(sym | (len << 16));
                } else {
                    let extra = len - root;
                    let prefix = code >> extra;
                    if prefix != sub_prefix {
                        // A new subtable: wide enough for every codeword left that
                        // shares this prefix (the codewords come in order).
                        sub_prefix = prefix;
                        let mut bits = extra;
                        let mut space: i32 = 1 << bits;
                        loop {
                            space -= i32::from(remaining[(root + bits) as usize]);
                            if space <= 0 || root + bits >= max {
                                break;
                            }
                            bits += 1;
                            space <<= 1;
                        }
                        sub_bits = bits;
                        sub_start = next_free;
                        next_free += 1 << bits;
                        if next_free > N {
                            return Err(CodeError::TableFull);
                        }
                        *self
                            .table
                            .get_mut(prefix as usize)
                            .ok_or(CodeError::TableFull)? =
                            ENTRY_SUBTABLE | (sub_bits << 16) | sub_start as u32;
                    }
                    let low = (code & ((1 << extra) - 1)) as usize;
                    let shift = sub_bits - extra;
                    let first = sub_start + (low << shift);
                    let n = 1usize << shift;
                    self.table
                        .get_mut(first..first + n)
                        .ok_or(CodeError::TableFull)?
                        .fill(sym | (extra << 16));
                }
                remaining[len as usize] -= 1;
                code += 1;
            }
            code <<= 1;
        }
        Ok(())
    }

    /// Decodes one symbol; `None` when the code is empty.
    #[inline]
    fn decode(&self, br: &mut BitReader<'_>) -> Option<u16> {
        br.ensure(self.max_len);
        let mut entry = *self.table.get(br.peek(self.root_bits) as usize)?;
        if entry & ENTRY_SUBTABLE != 0 {
            br.consume(self.root_bits);
            let bits = (entry >> 16) & 0x1f;
            let start = (entry & 0xffff) as usize;
            entry = *self.table.get(start + br.peek(bits) as usize)?;
        }
        if entry & (ENTRY_INVALID | ENTRY_SUBTABLE) != 0 {
            return None;
        }
        br.consume((entry >> 16) & 0x1f);
        Some((entry & 0xffff) as u16)
    }
}

/// Copies an LZ77 match of `len` bytes from `offset` back; the caller has checked
/// `1 <= offset <= pos` and `pos + len <= out.len()`.
#[inline]
fn lz_copy(out: &mut [u8], pos: usize, offset: usize, len: usize) {
    let src = pos - offset;
    if offset >= len {
        out.copy_within(src..src + len, pos);
    } else if offset == 1 {
        let b = out[src];
        out[pos..pos + len].fill(b);
    } else {
        for i in pos..pos + len {
            out[i] = out[i - offset];
        }
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures: testdata/wof/, made by make_fixtures.py with wimlib (libwim15) as the
    //! oracle; see its docstring and manifest.tsv.
    use super::*;
    use std::path::PathBuf;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Kind {
        Compressed,
        Stored,
        Crafted,
        Invalid,
        Stream,
    }

    pub(super) struct Fixture {
        pub(super) algorithm: WofAlgorithm,
        pub(super) name: String,
        pub(super) kind: Kind,
        /// The stored bytes (a chunk, or a whole stream for `Stream`); the input
        /// itself for `Stored`.
        pub(super) compressed: Vec<u8>,
        /// What it decodes to (empty for `Invalid`).
        pub(super) expected: Vec<u8>,
        pub(super) expected_len: usize,
    }

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/wof")
    }

    fn read(rel: &str) -> Vec<u8> {
        let path = dir().join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn input(spec: &str, len: usize) -> Vec<u8> {
        if spec == "zeros" {
            return vec![0; len];
        }
        if !spec.contains(':') {
            return read(&format!("input/{spec}.bin"))[..len].to_vec();
        }
        let mut out = Vec::new();
        for part in spec.split('+') {
            let mut f = part.split(':');
            let (name, start, n) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let (start, n): (usize, usize) = (start.parse().unwrap(), n.parse().unwrap());
            out.extend_from_slice(&read(&format!("input/{name}.bin"))[start..start + n]);
        }
        assert_eq!(out.len(), len);
        out
    }

    pub(super) fn fixtures() -> Vec<Fixture> {
        let manifest = std::fs::read_to_string(dir().join("manifest.tsv")).unwrap();
        let mut out = Vec::new();
        for line in manifest
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 6, "{line}");
            let algorithm = match f[0] {
                "xpress4k" => WofAlgorithm::Xpress4k,
                "xpress8k" => WofAlgorithm::Xpress8k,
                "xpress16k" => WofAlgorithm::Xpress16k,
                "lzx" => WofAlgorithm::Lzx,
                other => panic!("algorithm {other}"),
            };
            let len: usize = f[3].parse().unwrap();
            let kind = match f[4] {
                "compressed" => Kind::Compressed,
                "stored" => Kind::Stored,
                "crafted" => Kind::Crafted,
                "invalid" => Kind::Invalid,
                "stream" => Kind::Stream,
                other => panic!("kind {other}"),
            };
            let (compressed, expected) = match kind {
                Kind::Stored => (input(f[2], len), input(f[2], len)),
                Kind::Compressed | Kind::Stream => (read(f[5]), input(f[2], len)),
                Kind::Crafted => (read(f[5]), read(&f[5].replace(".cmp", ".out"))),
                Kind::Invalid => (read(f[5]), Vec::new()),
            };
            out.push(Fixture {
                algorithm,
                name: f[1].to_string(),
                kind,
                compressed,
                expected,
                expected_len: len,
            });
        }
        assert!(out.len() >= 50, "{} fixtures", out.len());
        out
    }

    fn reparse(version: u32, provider: u32, fp_version: u32, code: u32) -> Vec<u8> {
        [version, provider, fp_version, code]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    #[test]
    fn wof_reparse_data() {
        for (code, alg) in [
            (0, WofAlgorithm::Xpress4k),
            (1, WofAlgorithm::Lzx),
            (2, WofAlgorithm::Xpress8k),
            (3, WofAlgorithm::Xpress16k),
        ] {
            assert_eq!(parse_wof_reparse(&reparse(1, 2, 1, code)), Ok(alg));
            assert_eq!(WofAlgorithm::from_code(code), Some(alg));
            assert_eq!(alg.code(), code);
        }
        assert_eq!(WofAlgorithm::Lzx.name(), "LZX");
        assert_eq!(WofAlgorithm::Xpress16k.chunk_size(), 16384);
        // with a trailing Flags field
        let mut long = reparse(1, 2, 1, 1);
        long.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse_wof_reparse(&long), Ok(WofAlgorithm::Lzx));
        assert_eq!(
            parse_wof_reparse(&reparse(1, 2, 1, 4)),
            Err(WofError::UnknownAlgorithm { code: 4 })
        );
        assert_eq!(
            parse_wof_reparse(&reparse(1, 1, 2, 0)),
            Err(WofError::WimBacked)
        );
        assert!(WofError::WimBacked
            .to_string()
            .contains("not decodable offline"));
        assert_eq!(
            parse_wof_reparse(&reparse(1, 3, 1, 0)),
            Err(WofError::UnknownProvider { provider: 3 })
        );
        assert_eq!(
            parse_wof_reparse(&reparse(2, 2, 1, 0)),
            Err(WofError::UnsupportedWofVersion { version: 2 })
        );
        assert_eq!(
            parse_wof_reparse(&reparse(1, 2, 7, 0)),
            Err(WofError::UnsupportedFileProviderVersion { version: 7 })
        );
        assert_eq!(
            parse_wof_reparse(&reparse(1, 2, 1, 0)[..12]),
            Err(WofError::ReparseTooShort {
                len: 12,
                needed: 16
            })
        );
        assert!(parse_wof_reparse(&[]).is_err());
    }

    #[test]
    fn wof_stored_chunks_are_copied() {
        let mut seen = 0;
        for f in fixtures().into_iter().filter(|f| f.kind == Kind::Stored) {
            let mut out = vec![0xAA; f.expected_len];
            decompress_chunk(f.algorithm, &f.compressed, &mut out).unwrap();
            assert!(out == f.expected, "{}", f.name);
            seen += 1;
        }
        // random data at each chunk size, and a tiny chunk, per algorithm
        assert_eq!(seen, 8);
    }

    #[test]
    fn wof_chunk_size_checks() {
        let mut out = vec![0u8; 4097];
        assert_eq!(
            decompress_chunk(WofAlgorithm::Xpress4k, &[0; 10], &mut out),
            Err(WofError::OutputTooLarge {
                algorithm: WofAlgorithm::Xpress4k,
                len: 4097,
                max: 4096
            })
        );
        let mut out = vec![0u8; 10];
        assert_eq!(
            decompress_chunk(WofAlgorithm::Lzx, &[0; 11], &mut out),
            Err(WofError::StoredLargerThanOutput {
                stored: 11,
                uncompressed: 10
            })
        );
        let mut out = vec![0u8; 10];
        assert!(decompress_chunk(WofAlgorithm::Lzx, &[], &mut out).is_err());
        assert!(decompress_chunk(WofAlgorithm::Xpress8k, &[], &mut out).is_err());
        assert_eq!(decompress_chunk(WofAlgorithm::Lzx, &[], &mut []), Ok(()));
    }

    /// Decodes a whole stream through the chunk table, as a reader of the volume would.
    fn decode_stream(alg: WofAlgorithm, size: u64, stream: &[u8]) -> Result<Vec<u8>, WofError> {
        let len = ChunkTable::table_len_checked(alg, size, stream.len() as u64)?;
        let table = ChunkTable::parse(alg, size, stream.len() as u64, &stream[..len as usize])?;
        let mut out = vec![0u8; size as usize];
        for i in 0..table.chunk_count() {
            let (start, end) = table.chunk_range(i).unwrap();
            let at = table.uncompressed_offset(i) as usize;
            let n = table.uncompressed_len(i);
            table.decode_chunk(
                i,
                &stream[start as usize..end as usize],
                &mut out[at..at + n],
            )?;
        }
        Ok(out)
    }

    #[test]
    fn wof_streams_decode_through_the_chunk_table() {
        let mut seen = 0;
        for f in fixtures().into_iter().filter(|f| f.kind == Kind::Stream) {
            let size = f.expected_len as u64;
            let out = decode_stream(f.algorithm, size, &f.compressed)
                .unwrap_or_else(|e| panic!("{} {}: {e}", f.algorithm, f.name));
            assert!(out == f.expected, "{} {}", f.algorithm, f.name);
            let table =
                ChunkTable::parse(f.algorithm, size, f.compressed.len() as u64, &f.compressed)
                    .unwrap();
            let cs = f.algorithm.chunk_size() as u64;
            assert_eq!(table.chunk_count(), size.div_ceil(cs));
            assert_eq!(table.data_offset(), (table.chunk_count() - 1) * 4);
            assert_eq!(table.chunk_range(0).unwrap().0, table.data_offset());
            assert_eq!(
                table.chunk_range(table.chunk_count() - 1).unwrap().1,
                f.compressed.len() as u64
            );
            assert_eq!(table.chunk_range(table.chunk_count()), None);
            assert_eq!(table.uncompressed_len(table.chunk_count()), 0);
            // some chunks stored, some compressed
            let stored = (0..table.chunk_count())
                .filter(|&i| {
                    let (s, e) = table.chunk_range(i).unwrap();
                    (e - s) as usize == table.uncompressed_len(i)
                })
                .count() as u64;
            assert!(stored > 0 && stored < table.chunk_count(), "{}", f.name);

            // A damaged chunk is named.
            let mut bad = f.compressed.clone();
            let (s, e) = table.chunk_range(0).unwrap();
            for b in &mut bad[s as usize..e as usize] {
                *b = 0xFF;
            }
            match decode_stream(f.algorithm, size, &bad) {
                Err(WofError::CorruptChunk { chunk: Some(0), .. }) => {}
                other => panic!("{}: {other:?}", f.name),
            }
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn wof_chunk_table_hostile() {
        let alg = WofAlgorithm::Xpress4k;
        // An uncompressed size of 2^40 with a 100-byte stream: too many chunks.
        assert!(matches!(
            ChunkTable::table_len_checked(alg, 1 << 40, 100),
            Err(WofError::TooManyChunks { .. })
        ));
        assert!(matches!(
            ChunkTable::parse(alg, u64::MAX, 100, &[]),
            Err(WofError::TooManyChunks { .. })
        ));
        assert!(ChunkTable::table_len(alg, u64::MAX) <= MAX_CHUNKS * 8);
        // 1 GiB in 4 KiB chunks needs a 1 MiB table: not in a 4 KiB stream.
        assert_eq!(
            ChunkTable::table_len_checked(alg, 1 << 30, 4096),
            Err(WofError::TableBeyondStream {
                table_len: ((1 << 18) - 1) * 4,
                stream_size: 4096
            })
        );
        // Over 4 GiB: 8-byte entries.
        assert_eq!(
            ChunkTable::table_len(WofAlgorithm::Lzx, (1 << 32) + 1),
            ((1 << 17) + 1 - 1) * 8
        );
        assert_eq!(
            ChunkTable::table_len(WofAlgorithm::Lzx, 1 << 32),
            ((1 << 17) - 1) * 8
        );
        assert_eq!(
            ChunkTable::table_len(WofAlgorithm::Lzx, (1 << 32) - 1),
            ((1 << 17) - 1) * 4
        );
        // Table bytes missing.
        assert_eq!(
            ChunkTable::parse(alg, 3 * 4096, 100, &[0; 4]).unwrap_err(),
            WofError::TableTruncated {
                expected: 8,
                actual: 4
            }
        );
        let table =
            |entries: &[u32]| -> Vec<u8> { entries.iter().flat_map(|e| e.to_le_bytes()).collect() };
        // Three chunks; data of 300 bytes after an 8-byte table.
        let ok = ChunkTable::parse(alg, 3 * 4096 - 1, 308, &table(&[100, 200])).unwrap();
        assert_eq!(ok.chunk_range(0), Some((8, 108)));
        assert_eq!(ok.chunk_range(1), Some((108, 208)));
        assert_eq!(ok.chunk_range(2), Some((208, 308)));
        assert_eq!(ok.uncompressed_len(2), 4095);
        // Going backwards.
        assert!(matches!(
            ChunkTable::parse(alg, 3 * 4096, 308, &table(&[200, 100])),
            Err(WofError::BadChunkOffset { chunk: 1, .. })
        ));
        // Past the stream.
        assert!(matches!(
            ChunkTable::parse(alg, 3 * 4096, 308, &table(&[100, 400])),
            Err(WofError::BadChunkOffset { chunk: 1, .. })
        ));
        // An empty chunk.
        assert_eq!(
            ChunkTable::parse(alg, 3 * 4096, 308, &table(&[100, 100])).unwrap_err(),
            WofError::BadChunkSize {
                chunk: 1,
                stored: 0,
                uncompressed: 4096
            }
        );
        // A chunk stored larger than it decompresses (the last one here).
        assert_eq!(
            ChunkTable::parse(alg, 2 * 4096 + 10, 308, &table(&[100, 200])).unwrap_err(),
            WofError::BadChunkSize {
                chunk: 2,
                stored: 100,
                uncompressed: 10
            }
        );
        // An empty file has no chunks.
        let empty = ChunkTable::parse(alg, 0, 0, &[]).unwrap();
        assert_eq!(empty.chunk_count(), 0);
        assert_eq!(empty.chunk_range(0), None);
        // decode_chunk checks its buffers.
        let mut out = vec![0u8; 4096];
        assert!(matches!(
            ok.decode_chunk(0, &[0; 99], &mut out),
            Err(WofError::StoredLenMismatch { chunk: 0, .. })
        ));
        assert!(matches!(
            ok.decode_chunk(0, &[0; 100], &mut out[..10]),
            Err(WofError::OutputLenMismatch { chunk: 0, .. })
        ));
        assert!(matches!(
            ok.decode_chunk(3, &[], &mut out),
            Err(WofError::NoSuchChunk {
                chunk: 3,
                chunks: 3
            })
        ));
    }

    #[test]
    fn wof_huffman_codes() {
        let mut h: Huffman<2566> = Huffman::new(11, 15);
        // Complete: lengths 1, 2, 3, 3.
        assert_eq!(h.build(&[1, 2, 3, 3]), Ok(()));
        // Over-subscribed: 1, 1, 1.
        assert_eq!(h.build(&[1, 1, 1]), Err(CodeError::OverSubscribed));
        // Incomplete: 1, 2.
        assert_eq!(h.build(&[1, 2]), Err(CodeError::Incomplete));
        // A single symbol is incomplete too.
        assert_eq!(h.build(&[0, 1]), Err(CodeError::Incomplete));
        // Longer than allowed.
        assert_eq!(h.build(&[1, 16]), Err(CodeError::TooLong));
        // Codewords over the root table's width (subtables): 2^15 codewords of 15
        // bits are more symbols than the alphabet, so use a skewed code: lengths
        // 1, 2, ..., 14, 15, 15.
        let lens: Vec<u8> = (1..=15).chain([15]).collect();
        assert_eq!(h.build(&lens), Ok(()));
        // Decode every symbol from its canonical codeword.
        let mut bits: Vec<bool> = Vec::new();
        for (sym, &l) in lens.iter().enumerate() {
            // symbol i < 15 has codeword 1...10 (i ones then a zero); the last all ones
            let code: Vec<bool> = if sym < 14 {
                (0..l).map(|k| k < l - 1).collect()
            } else if sym == 14 {
                (0..15).map(|k| k < 14).collect()
            } else {
                vec![true; 15]
            };
            bits.extend(code);
        }
        let mut bytes = Vec::new();
        for unit in bits.chunks(16) {
            let mut v = 0u16;
            for (k, &b) in unit.iter().enumerate() {
                v |= u16::from(b) << (15 - k);
            }
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let mut br = BitReader::new(&bytes);
        for sym in 0..lens.len() {
            assert_eq!(h.decode(&mut br), Some(sym as u16));
        }
        assert!(!br.overrun());
        // An empty code builds, and decodes nothing.
        assert_eq!(h.build(&[0; 10]), Ok(()));
        assert_eq!(h.decode(&mut BitReader::new(&[0xFF; 4])), None);
    }

    #[test]
    fn wof_bit_reader_counts_bits_past_the_end() {
        let mut br = BitReader::new(&[0x34, 0x12, 0xFF]);
        assert_eq!(br.read_bits(16), 0x1234);
        assert!(!br.overrun());
        br.ensure(16); // looks ahead past the end: allowed
        assert!(!br.overrun());
        br.consume(1);
        assert!(br.overrun());
        // the odd last byte is still there for a byte read
        assert_eq!(br.read_byte(), Some(0xFF));
        assert_eq!(br.read_byte(), None);
    }
}
