//! Payload masking (RFC 6455 §5.3) and the source of client masking keys.

use std::fmt;
use std::sync::Arc;

use rand::RngCore;

/// XORs `buf` with the 4-byte `key`, starting at key phase `phase` (the number of payload bytes
/// of this frame that came before `buf`), so a payload can be masked in any number of pieces.
///
/// Works a machine word at a time, in blocks the compiler vectorises. On x86-64, buffers of
/// 128 bytes or more use explicit AVX-512 (aligned 64-byte vectors) or the same word loop
/// compiled for AVX2, whichever the CPU has (detected at run time). The scalar
/// [`apply_mask_scalar`] is the reference they are tested against.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotate_key(key, phase);
    // One `cfg` over the whole dispatch: the feature-detection macro exists only on x86.
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= 128 {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                mask_avx512(buf, key)
            };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                mask_avx2(buf, key)
            };
            return;
        }
    }
    mask_blocks::<32>(buf, key);
}

/// XORs 64 bytes at a time with AVX-512 (explicit loads and stores: the compiler's own
/// AVX-512 vectorisation of [`mask_blocks`] is no faster than the AVX2 loop; this one is,
/// as large decodes in `wsbench decode` show).
///
/// The bytes before the first 64-byte boundary are masked word-wise, so every vector load and
/// store is aligned: a payload starts right after its 2- to 14-byte header, and unaligned
/// 64-byte accesses each straddle two cache lines.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
fn mask_avx512(buf: &mut [u8], key: [u8; 4]) {
    use std::arch::x86_64::{
        __m512i, _mm512_load_si512, _mm512_set1_epi32, _mm512_store_si512, _mm512_xor_si512,
    };
    let head = buf.as_ptr().align_offset(64).min(buf.len());
    let (prefix, rest) = buf.split_at_mut(head);
    mask_blocks::<32>(prefix, key);
    let key = rotate_key(key, head);
    let k = _mm512_set1_epi32(i32::from_ne_bytes(key));
    let mut blocks = rest.chunks_exact_mut(64);
    for block in &mut blocks {
        let p = block.as_mut_ptr().cast::<__m512i>();
        // SAFETY: `block` is 64 valid, writable bytes starting on a 64-byte boundary.
        unsafe { _mm512_store_si512(p, _mm512_xor_si512(_mm512_load_si512(p), k)) };
    }
    // Whole 64-byte blocks keep the key phase.
    mask_blocks::<32>(blocks.into_remainder(), key);
}

/// The word loop compiled for AVX2, started at a 32-byte boundary like [`mask_avx512`]
/// (aligned stores: large decodes are faster than with unaligned ones).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
    let head = buf.as_ptr().align_offset(32).min(buf.len());
    let (prefix, rest) = buf.split_at_mut(head);
    mask_blocks::<32>(prefix, key);
    mask_blocks::<64>(rest, rotate_key(key, head));
}

/// The masking loop: `N`-byte blocks of 64-bit XORs (vectorised), then words, then bytes.
#[inline(always)]
fn mask_blocks<const N: usize>(buf: &mut [u8], key: [u8; 4]) {
    let k32 = u32::from_ne_bytes(key);
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    let mut blocks = buf.chunks_exact_mut(N);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            let w = u64::from_ne_bytes(word.try_into().expect("8-byte chunk")) ^ k64;
            word.copy_from_slice(&w.to_ne_bytes());
        }
    }
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for word in &mut words {
        let w = u64::from_ne_bytes(word.try_into().expect("8-byte chunk")) ^ k64;
        word.copy_from_slice(&w.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Byte-at-a-time reference implementation of [`apply_mask`].
#[doc(hidden)]
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(phase + i) & 3];
    }
}

/// Copies `src` to the end of `dst`, masked with `key` from phase 0, in one pass over the
/// freshly reserved destination.
#[inline]
pub(crate) fn extend_masked(dst: &mut bytes::BytesMut, src: &[u8], key: [u8; 4]) {
    let start = dst.len();
    dst.extend_from_slice(src);
    apply_mask(&mut dst[start..], key, 0);
}

/// The key as seen from byte `phase` of the payload: `key[(i + phase) % 4]` at index `i`
/// (one rotate of the little-endian word).
#[inline]
fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    let bits = 8 * (phase & 3) as u32;
    u32::from_le_bytes(key).rotate_right(bits).to_le_bytes()
}

/// Where a client gets its masking keys and handshake nonces.
///
/// The default, [`KeySource::os_seeded`], draws from the thread-local ChaCha-based CSPRNG of
/// the `rand` crate, seeded from the operating system and reseeded by `rand` as it goes (no
/// system call per frame).
/// Tests can pin exact bytes with [`KeySource::fixed`] or any closure via
/// [`KeySource::from_fn`].
#[derive(Clone)]
pub struct KeySource(Inner);

/// A shared function filling a buffer with key bytes.
type FillFn = dyn Fn(&mut [u8]) + Send + Sync;

#[derive(Clone)]
enum Inner {
    Os,
    Func(Arc<FillFn>),
}

impl KeySource {
    /// Cryptographically secure keys from a thread-local CSPRNG seeded by the OS.
    pub fn os_seeded() -> Self {
        KeySource(Inner::Os)
    }

    /// The same masking key for every frame (nonces repeat the key's bytes). For tests only:
    /// predictable masking keys defeat the purpose of masking.
    pub fn fixed(key: [u8; 4]) -> Self {
        Self::from_fn(move |buf| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = key[i & 3];
            }
        })
    }

    /// Keys and nonces produced by `fill`, which must fill the whole slice. It is shared by every
    /// connection configured with this source (use atomics for a counter).
    pub fn from_fn(fill: impl Fn(&mut [u8]) + Send + Sync + 'static) -> Self {
        KeySource(Inner::Func(Arc::new(fill)))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) {
        match &self.0 {
            Inner::Os => rand::rng().fill_bytes(buf),
            Inner::Func(f) => f(buf),
        }
    }

    /// A fresh 4-byte masking key.
    pub fn mask_key(&self) -> [u8; 4] {
        let mut key = [0u8; 4];
        self.fill(&mut key);
        key
    }
}

impl Default for KeySource {
    fn default() -> Self {
        Self::os_seeded()
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Inner::Os => f.write_str("KeySource::OsSeeded"),
            Inner::Func(_) => f.write_str("KeySource::Custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `mask`, which starts at key phase `phase`, against the scalar reference: on a
    /// slice at every start address modulo 64 (the vector paths align to 64-byte boundaries)
    /// and on a fresh copy, for lengths around the block sizes and either side of the 128-byte
    /// threshold of the vector paths.
    fn check_against_scalar(name: &str, phase: usize, mask: impl Fn(&mut [u8], [u8; 4])) {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..1200u32).map(|i| (i * 31 + 7) as u8).collect();
        let lens = [
            0, 1, 3, 4, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 130, 191, 192, 193, 255, 256,
            257, 500, 1000,
        ];
        for offset in 0..=64 {
            for len in lens.into_iter().chain([900 - offset]) {
                let mut slow = data[offset..offset + len].to_vec();
                apply_mask_scalar(&mut slow, key, phase);
                let mut fresh = data[offset..offset + len].to_vec();
                mask(&mut fresh, key);
                assert_eq!(fresh, slow, "{name}: fresh copy, len {len}, phase {phase}");
                let mut backing = data.clone();
                mask(&mut backing[offset..offset + len], key);
                assert_eq!(
                    &backing[offset..offset + len],
                    &slow[..],
                    "{name}: offset {offset}, len {len}, phase {phase}"
                );
            }
        }
    }

    #[test]
    fn differential_against_scalar_on_unaligned_data() {
        for phase in 0..5 {
            check_against_scalar("apply_mask", phase, |buf, key| apply_mask(buf, key, phase));
        }
    }

    /// The dispatch picks one loop per machine; each loop is tested here on its own, so the
    /// word loop (the only one on other architectures) and the AVX2 loop (the one on x86-64
    /// CPUs without AVX-512) are covered on this machine too.
    #[test]
    fn every_masking_loop_matches_the_scalar_reference() {
        check_against_scalar("word loop", 0, mask_blocks::<32>);
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                #[allow(unsafe_code)]
                check_against_scalar("avx2", 0, |buf, key| unsafe { mask_avx2(buf, key) });
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                #[allow(unsafe_code)]
                check_against_scalar("avx512", 0, |buf, key| unsafe { mask_avx512(buf, key) });
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..200u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole);
        }
    }

    #[test]
    fn fixed_source_is_deterministic() {
        let s = KeySource::fixed([9, 8, 7, 6]);
        assert_eq!(s.mask_key(), [9, 8, 7, 6]);
        let mut nonce = [0u8; 6];
        s.fill(&mut nonce);
        assert_eq!(nonce, [9, 8, 7, 6, 9, 8]);
        let os = KeySource::default();
        assert_ne!([os.mask_key(), os.mask_key(), os.mask_key()], [[0u8; 4]; 3]);
    }
}
