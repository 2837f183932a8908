//! (k) WOF (CompactOS) chunks: `decompress_chunk` on arbitrary stored bytes. Byte 0: the
//! algorithm (low two bits: 0 XPRESS4K, 1 LZX, 2 XPRESS8K, 3 XPRESS16K); bytes 1-2: the
//! output length (little-endian, modulo the chunk size + 1); then the chunk's bytes.
//! Bit 2 of byte 0 instead reads the rest as a whole `WofCompressedData` stream (its
//! first 8 bytes the uncompressed size) through `ChunkTable`, decoding its first chunks;
//! and the rest is always tried as WOF reparse data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::ntfs::wof::{
    decompress_chunk, parse_wof_reparse, ChunkTable, WofAlgorithm,
};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let algorithm = WofAlgorithm::from_code(u32::from(head & 3)).expect("0-3 are all known");
    let _ = parse_wof_reparse(rest);

    if head & 4 == 0 {
        let (len, input) = match rest {
            [lo, hi, input @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), input),
            _ => (0, rest),
        };
        let len = len % (algorithm.chunk_size() + 1);
        let mut out = vec![0u8; len];
        let result = decompress_chunk(algorithm, input, &mut out);
        if input.len() == len {
            assert!(result.is_ok() && out == input, "a stored chunk is copied");
        }
        if input.len() > len {
            assert!(result.is_err(), "stored bytes larger than the output");
        }
        return;
    }

    let Some(size) = rest.get(..8) else {
        return;
    };
    let mut size_bytes = [0u8; 8];
    size_bytes.copy_from_slice(size);
    let uncompressed_size = u64::from_le_bytes(size_bytes);
    let stream = &rest[8..];
    let stream_size = stream.len() as u64;
    let Ok(table) = ChunkTable::parse(algorithm, uncompressed_size, stream_size, stream) else {
        return;
    };
    let mut prev_end = table.data_offset();
    for index in 0..table.chunk_count().min(64) {
        let (start, end) = table.chunk_range(index).expect("a chunk below the count");
        assert!(prev_end == start && start < end && end <= stream_size);
        prev_end = end;
        let mut out = vec![0u8; table.uncompressed_len(index)];
        let stored = &stream[start as usize..end as usize];
        assert!(stored.len() <= out.len());
        let _ = table.decode_chunk(index, stored, &mut out);
    }
    assert_eq!(table.chunk_range(table.chunk_count()), None);
});
