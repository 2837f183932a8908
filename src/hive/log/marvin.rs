//! Marvin32, the keyed hash of new-format log entries (Hash-1 and Hash-2), as .NET's
//! `System.Marvin` computes it.

/// Marvin32 of `data` with `seed`, folded to 32 bits (low half XOR high half), as .NET's
/// `Marvin.ComputeHash32` returns it.
pub fn marvin32(data: &[u8], seed: u64) -> u32 {
    let state = marvin32_64(data, seed);
    (state as u32) ^ ((state >> 32) as u32)
}

/// The full 64-bit Marvin32 state, high half (p1) above low half (p0): the form log entries
/// store (little-endian) in their Hash-1 and Hash-2 fields, and the form of the published
/// .NET test vectors.
pub fn marvin32_64(data: &[u8], seed: u64) -> u64 {
    fn block(p0: &mut u32, p1: &mut u32) {
        *p1 ^= *p0;
        *p0 = p0.rotate_left(20).wrapping_add(*p1);
        *p1 = p1.rotate_left(9) ^ *p0;
        *p0 = p0.rotate_left(27).wrapping_add(*p1);
        *p1 = p1.rotate_left(19);
    }
    let mut p0 = seed as u32;
    let mut p1 = (seed >> 32) as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        p0 = p0.wrapping_add(u32::from_le_bytes([word[0], word[1], word[2], word[3]]));
        block(&mut p0, &mut p1);
    }
    // The 0-3 remaining bytes, little-endian, under a 0x80 end marker.
    let tail = words
        .remainder()
        .iter()
        .rev()
        .fold(0x80u32, |acc, &byte| (acc << 8) | u32::from(byte));
    p0 = p0.wrapping_add(tail);
    block(&mut p0, &mut p1);
    block(&mut p0, &mut p1);
    (u64::from(p1) << 32) | u64::from(p0)
}
