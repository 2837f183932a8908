//! LZNT1, the compression of NTFS compressed files (MS-XCA 2.5).
//!
//! Written here rather than taken from the `lznt1` crate: that crate lets a match reach back
//! into earlier chunks and a chunk grow past 4,096 bytes, so a hostile compression unit of 64
//! KiB could expand to over 100 MB. Windows' decoder (RtlDecompressBuffer) keeps every chunk to
//! 4,096 bytes with matches inside it, and so does this one.

/// Bytes of output per chunk.
const CHUNK: usize = 4096;

/// Why a compression unit cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Lznt1Error {
    #[error("LZNT1 chunk at byte {offset} is cut short (needs {needed} bytes, {available} left)")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("LZNT1 chunk at byte {offset}: a match reaches {distance} bytes back, before the chunk's start ({written} bytes written)")]
    BadOffset {
        offset: usize,
        distance: usize,
        written: usize,
    },
}

/// Decodes the LZNT1 stream `input` into `output`, filling at most `output.len()` bytes, and
/// returns how many were written (a unit may end early: the rest is zeros).
pub fn decompress(input: &[u8], output: &mut [u8]) -> Result<usize, Lznt1Error> {
    let mut at = 0;
    let mut written = 0;
    while at + 2 <= input.len() && written < output.len() {
        let header = u16::from_le_bytes([input[at], input[at + 1]]);
        if header == 0 {
            break;
        }
        let size = usize::from(header & 0x0fff) + 1;
        let body = input
            .get(at + 2..at + 2 + size)
            .ok_or(Lznt1Error::Truncated {
                offset: at,
                needed: size,
                available: input.len() - at - 2,
            })?;
        let room = (output.len() - written).min(CHUNK);
        let out = &mut output[written..written + room];
        let n = if header & 0x8000 == 0 {
            let n = body.len().min(room);
            out[..n].copy_from_slice(&body[..n]);
            n
        } else {
            chunk(body, out).map_err(|e| match e {
                Lznt1Error::BadOffset {
                    distance, written, ..
                } => Lznt1Error::BadOffset {
                    offset: at,
                    distance,
                    written,
                },
                other => other,
            })?
        };
        written += n;
        at += 2 + size;
    }
    Ok(written)
}

/// One compressed chunk: groups of a flag byte and eight literals or back references.
fn chunk(input: &[u8], out: &mut [u8]) -> Result<usize, Lznt1Error> {
    let mut at = 0;
    let mut written = 0;
    while at < input.len() && written < out.len() {
        let flags = input[at];
        at += 1;
        for bit in 0..8 {
            if at >= input.len() || written >= out.len() {
                break;
            }
            if flags >> bit & 1 == 0 {
                out[written] = input[at];
                written += 1;
                at += 1;
                continue;
            }
            let Some(pair) = input.get(at..at + 2) else {
                return Err(Lznt1Error::Truncated {
                    offset: at,
                    needed: 2,
                    available: input.len() - at,
                });
            };
            let tuple = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
            at += 2;
            // The split between offset and length bits moves as the chunk fills: 12 length
            // bits while fewer than 16 bytes are written, one fewer at each doubling.
            let mut split = 12;
            let mut threshold = 16;
            while written > threshold {
                split -= 1;
                threshold <<= 1;
            }
            let length = (tuple & ((1 << split) - 1)) + 3;
            let distance = (tuple >> split) + 1;
            if distance > written {
                return Err(Lznt1Error::BadOffset {
                    offset: 0,
                    distance,
                    written,
                });
            }
            let length = length.min(out.len() - written);
            for i in 0..length {
                out[written + i] = out[written + i - distance];
            }
            written += length;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_a_match() {
        // "abcabcabc": three literals, then a match of 6 at distance 3.
        let tuple: u16 = ((3 - 1) << 12) | (6 - 3);
        let mut body = vec![0b0000_1000, b'a', b'b', b'c'];
        body.extend_from_slice(&tuple.to_le_bytes());
        let header = 0xb000u16 | (body.len() as u16 - 1);
        let mut input = header.to_le_bytes().to_vec();
        input.extend_from_slice(&body);
        let mut out = [0u8; 16];
        assert_eq!(decompress(&input, &mut out), Ok(9));
        assert_eq!(&out[..9], b"abcabcabc");
    }

    #[test]
    fn a_match_before_the_chunk_is_refused() {
        let tuple: u16 = (5 - 1) << 12;
        let mut body = vec![0b0000_0010, b'a'];
        body.extend_from_slice(&tuple.to_le_bytes());
        let header = 0xb000u16 | (body.len() as u16 - 1);
        let mut input = header.to_le_bytes().to_vec();
        input.extend_from_slice(&body);
        let mut out = [0u8; 16];
        assert!(matches!(
            decompress(&input, &mut out),
            Err(Lznt1Error::BadOffset { distance: 5, .. })
        ));
    }

    #[test]
    fn output_is_bounded_by_the_buffer() {
        // A chunk of matches that would expand far beyond 4 KiB stops at the buffer.
        let mut body = vec![0b0000_0000, b'x', 0, 0, 0, 0, 0, 0, 0];
        let group: Vec<u8> = std::iter::once(0xff)
            .chain(std::iter::repeat_n([0xff, 0x0f], 8).flatten())
            .collect();
        body.extend(group.repeat(200));
        let body = &body[..body.len().min(4096)];
        let header = 0xb000u16 | (body.len() as u16 - 1);
        let mut input = header.to_le_bytes().to_vec();
        input.extend_from_slice(body);
        let mut out = vec![0u8; 8192];
        let n = decompress(&input, &mut out).unwrap();
        assert!(n <= 4096, "{n}");
    }
}
