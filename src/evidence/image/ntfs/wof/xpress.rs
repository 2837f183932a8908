//! XPRESS Huffman ("LZ77+Huffman", [MS-XCA] 2.2) as WOF and WIM use it: one chunk of at
//! most 16 KiB (so a single Huffman block, no 64 KiB re-tabling), decoded to a known
//! size.
//!
//! A chunk starts with 256 bytes holding the 512 codeword lengths, four bits each (the
//! low nibble is the even symbol). Symbols 0-255 are literals; symbol `256 + (l << 4) +
//! m` is a match with offset `(1 << l) | l more bits` and length `m + 3`, where `m = 15`
//! takes one more byte from the byte stream (`m += byte`) and a byte of 255 takes a
//! 16-bit length (`length = u16 + 3`) instead. Those bytes sit between the 16-bit units
//! of the bitstream, at the position the reader has reached after buffering 16 bits
//! past the symbol, which [`BitReader`] reproduces. The end-of-data symbol that
//! compressors append (256 with nothing after it) is never read: decoding stops when
//! the output is full.

use super::{lz_copy, BitReader, Failure, Huffman};

const NUM_SYMBOLS: usize = 512;
const TABLE_BITS: u32 = 11;
const MAX_CODEWORD_LEN: u32 = 15;
/// zlib's `enough 512 11 15`.
const TABLE_SIZE: usize = 2566;
const MIN_MATCH: usize = 3;

pub(super) fn decompress(input: &[u8], output: &mut [u8]) -> Result<(), Failure> {
    let fail = |reason, input_offset, output_offset| Failure {
        reason,
        input_offset,
        output_offset,
    };
    let Some(table_bytes) = input.get(..NUM_SYMBOLS / 2) else {
        return Err(fail(
            "shorter than the 256-byte table of code lengths",
            input.len(),
            0,
        ));
    };
    let mut lens = [0u8; NUM_SYMBOLS];
    for (i, &b) in table_bytes.iter().enumerate() {
        lens[2 * i] = b & 0xf;
        lens[2 * i + 1] = b >> 4;
    }
    let mut code: Huffman<TABLE_SIZE> = Huffman::new(TABLE_BITS, MAX_CODEWORD_LEN);
    code.build(&lens).map_err(|e| fail(e.reason(), 0, 0))?;

    let base = NUM_SYMBOLS / 2;
    let mut br = BitReader::new(&input[base..]);
    let mut pos = 0usize;
    let end = output.len();
    while pos < end {
        let Some(sym) = code.decode(&mut br) else {
            return Err(fail("a symbol of an empty code", base + br.position(), pos));
        };
        if sym < 256 {
            output[pos] = sym as u8;
            pos += 1;
            continue;
        }
        let mut len = usize::from(sym & 0xf);
        let log2_offset = u32::from((sym >> 4) & 0xf);
        br.ensure(16);
        let offset = ((1u32 << log2_offset) | br.peek(log2_offset)) as usize;
        br.consume(log2_offset);
        if len == 0xf {
            let Some(b) = br.read_byte() else {
                return Err(fail("match length byte past the end", input.len(), pos));
            };
            len += usize::from(b);
            if len == 0xf + 0xff {
                let Some(v) = br.read_u16() else {
                    return Err(fail("match length past the end", input.len(), pos));
                };
                len = usize::from(v);
            }
        }
        len += MIN_MATCH;
        if offset > pos {
            return Err(fail(
                "match offset before the chunk's start",
                base + br.position(),
                pos,
            ));
        }
        if len > end - pos {
            return Err(fail(
                "match past the chunk's end",
                base + br.position(),
                pos,
            ));
        }
        lz_copy(output, pos, offset, len);
        pos += len;
    }
    if br.overrun() {
        return Err(fail("truncated (bits read past the end)", input.len(), pos));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixtures, Kind};
    use super::super::{decompress_chunk, WofAlgorithm, WofError};

    #[test]
    fn wof_xpress_fixtures_decode_to_their_inputs() {
        let mut seen = 0;
        for f in fixtures() {
            if f.algorithm == WofAlgorithm::Lzx || !matches!(f.kind, Kind::Compressed) {
                continue;
            }
            let mut out = vec![0u8; f.expected.len()];
            decompress_chunk(f.algorithm, &f.compressed, &mut out)
                .unwrap_or_else(|e| panic!("{} {}: {e}", f.algorithm, f.name));
            assert!(
                out == f.expected,
                "{} {} decodes differently",
                f.algorithm,
                f.name
            );
            seen += 1;
        }
        assert!(seen >= 18, "only {seen} XPRESS fixtures");
    }

    #[test]
    fn wof_xpress_invalid_fixtures_are_errors() {
        let mut seen = 0;
        for f in fixtures() {
            if f.algorithm == WofAlgorithm::Lzx || !matches!(f.kind, Kind::Invalid) {
                continue;
            }
            let mut out = vec![0u8; f.expected_len];
            let err = decompress_chunk(f.algorithm, &f.compressed, &mut out).expect_err(&f.name);
            assert!(
                matches!(err, WofError::CorruptChunk { .. }),
                "{}: {err}",
                f.name
            );
            seen += 1;
        }
        assert_eq!(seen, 4);
    }

    fn decode(input: &[u8], len: usize) -> Result<Vec<u8>, WofError> {
        let mut out = vec![0u8; len];
        decompress_chunk(WofAlgorithm::Xpress4k, input, &mut out).map(|()| out)
    }

    fn reason(r: Result<Vec<u8>, WofError>) -> &'static str {
        match r {
            Err(WofError::CorruptChunk { reason, .. }) => reason,
            other => panic!("not a corrupt chunk: {other:?}"),
        }
    }

    #[test]
    fn wof_xpress_bad_codes() {
        // 512 lengths of 1: over-subscribed.
        let mut input = vec![0x11u8; 256];
        input.extend_from_slice(&[0; 8]);
        assert!(reason(decode(&input, 1000)).contains("over-subscribe"));
        // One length of 1: incomplete.
        let mut input = vec![0u8; 256];
        input[0] = 1;
        input.extend_from_slice(&[0; 8]);
        assert!(reason(decode(&input, 1000)).contains("incomplete"));
        // All zero: an empty code, from which nothing can be decoded.
        let input = vec![0u8; 300];
        assert!(reason(decode(&input, 1000)).contains("empty code"));
        // Shorter than the table.
        assert!(reason(decode(&[0x99; 100], 200)).contains("256-byte"));
    }

    #[test]
    fn wof_xpress_long_lengths_use_the_byte_stream() {
        // All 512 lengths 9: symbol s is s in 9 bits.
        let mut bits = BitWriter::default();
        bits.put(u32::from(b'a'), 9);
        // A match at offset 1 (log2 0) with length nibble 15: a length byte follows.
        bits.put(256 + 15, 9);
        // Another: its byte is 255, so a 16-bit length follows.
        bits.put(256 + 15, 9);
        // 27 bits in two units. After the first match symbol (18 bits consumed) the
        // decoder buffers 16 more bits, so a third unit is loaded before it reads the
        // length byte (an encoder reserves it); the second match needs no other.
        bits.put(0, 16);
        let mut input = vec![0x99u8; 256];
        input.extend_from_slice(&bits.finish());
        input.push(100); // length 15 + 100 + 3 = 118
        input.push(255);
        input.extend_from_slice(&300u16.to_le_bytes()); // length 300 + 3
        let out = decode(&input, 1 + 118 + 303).expect("decodes");
        assert!(out.iter().all(|&b| b == b'a'));
    }

    #[test]
    fn wof_xpress_truncated_and_garbage_are_errors() {
        for f in fixtures() {
            if f.algorithm == WofAlgorithm::Lzx || !matches!(f.kind, Kind::Compressed) {
                continue;
            }
            for cut in [f.compressed.len() / 2, 300, 256, 10] {
                if cut >= f.compressed.len() {
                    continue;
                }
                let mut out = vec![0u8; f.expected.len()];
                assert!(
                    decompress_chunk(f.algorithm, &f.compressed[..cut], &mut out).is_err(),
                    "{} {} cut to {cut}",
                    f.algorithm,
                    f.name
                );
            }
        }
        // Pseudo-random garbage: an error (or, rarely, some bytes), never a panic.
        let mut state = 0x1234_5678u32;
        for round in 0..200 {
            let len = 256 + (round * 37) % 3000;
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8
                })
                .collect();
            let _ = decode(&garbage, 4096);
        }
    }

    /// Writes bits high-first into 16-bit little-endian units.
    #[derive(Default)]
    struct BitWriter {
        acc: u32,
        n: u32,
        out: Vec<u8>,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, count: u32) {
            for i in (0..count).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.n += 1;
                if self.n == 16 {
                    self.out.extend_from_slice(&(self.acc as u16).to_le_bytes());
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }

        fn finish(&mut self) -> Vec<u8> {
            if self.n > 0 {
                self.put(0, 16 - self.n);
            }
            std::mem::take(&mut self.out)
        }
    }
}
