//! Random bytes (xorshift64), which no compressor can shrink: shared by the permessage-deflate
//! tests of the library, of `tests/` and of the interop member.

/// `len` pseudo-random bytes, a different run per `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}
