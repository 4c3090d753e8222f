//! Philox4x32-10 on four blocks at once in SSE2 registers (x86-64 baseline: every x86-64 CPU
//! has SSE2, so no run-time detection is needed). The scalar `rng::philox4x32_10_x4` stays the
//! definition and the path on other architectures; a test checks the two agree.
//!
//! Why: the compiler does not vectorise the four blocks' 32x32->64 products itself, and the
//! RNG was about a sixth of the photon loop's instructions.
//!
//! Unsafe lives here because intrinsics are `target_feature(enable = "sse2")` functions and
//! the stores take raw pointers. Soundness: SSE2 is part of the x86-64 baseline (this module
//! is compiled only for x86-64, where `target_feature = "sse2"` always holds), and each store
//! writes 16 bytes into a 4-word slice.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_mul_epu32, _mm_or_si128, _mm_set1_epi32, _mm_set1_epi64x,
    _mm_set_epi32, _mm_slli_epi64, _mm_srli_epi64, _mm_storeu_si128, _mm_unpackhi_epi32,
    _mm_unpackhi_epi64, _mm_unpacklo_epi32, _mm_unpacklo_epi64, _mm_xor_si128,
};

use super::rng::{M0, M1, W0, W1};

/// `(hi, lo)` 32-bit halves of the four lane products `x * m` (`m` broadcast).
#[inline]
#[target_feature(enable = "sse2")]
fn mul_hi_lo(x: __m128i, m: __m128i) -> (__m128i, __m128i) {
    // Even lanes (0, 2) multiply in place; odd lanes (1, 3) after shifting them down.
    let even = _mm_mul_epu32(x, m);
    let odd = _mm_mul_epu32(_mm_srli_epi64::<32>(x), m);
    let low_mask = _mm_set1_epi64x(0xffff_ffff);
    let hi = _mm_or_si128(
        _mm_srli_epi64::<32>(even),
        _mm_and_si128(odd, _mm_slli_epi64::<32>(low_mask)),
    );
    let lo = _mm_or_si128(_mm_and_si128(even, low_mask), _mm_slli_epi64::<32>(odd));
    (hi, lo)
}

/// Blocks with counters `(ctr0 + k, c1, c2, c3)`, `k` = 0..4, under `key`, written in stream
/// order (block 0's four words first) into `out`. Equal to `rng::philox4x32_10_x4`.
#[inline(always)]
pub(crate) fn philox_x4(ctr0: u32, c1: u32, c2: u32, c3: u32, key: [u32; 2], out: &mut [u32; 16]) {
    // SAFETY: SSE2 is in every x86-64 CPU and in this target's baseline features.
    unsafe { philox_x4_sse2(ctr0, c1, c2, c3, key, out) }
}

#[inline]
#[target_feature(enable = "sse2")]
fn philox_x4_sse2(ctr0: u32, c1: u32, c2: u32, c3: u32, key: [u32; 2], out: &mut [u32; 16]) {
    let m0 = _mm_set1_epi32(M0 as i32);
    let m1 = _mm_set1_epi32(M1 as i32);
    let mut a = _mm_set_epi32(
        ctr0.wrapping_add(3) as i32,
        ctr0.wrapping_add(2) as i32,
        ctr0.wrapping_add(1) as i32,
        ctr0 as i32,
    );
    let mut b = _mm_set1_epi32(c1 as i32);
    let mut c = _mm_set1_epi32(c2 as i32);
    let mut d = _mm_set1_epi32(c3 as i32);
    let mut k = key;
    for round in 0..10 {
        let (hi0, lo0) = mul_hi_lo(a, m0);
        let (hi1, lo1) = mul_hi_lo(c, m1);
        let k0 = _mm_set1_epi32(k[0] as i32);
        let k1 = _mm_set1_epi32(k[1] as i32);
        a = _mm_xor_si128(_mm_xor_si128(hi1, b), k0);
        b = lo1;
        c = _mm_xor_si128(_mm_xor_si128(hi0, d), k1);
        d = lo0;
        if round < 9 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
    }
    // 4x4 transpose: lane k of (a, b, c, d) is block k.
    let ab_lo = _mm_unpacklo_epi32(a, b);
    let ab_hi = _mm_unpackhi_epi32(a, b);
    let cd_lo = _mm_unpacklo_epi32(c, d);
    let cd_hi = _mm_unpackhi_epi32(c, d);
    let rows = [
        _mm_unpacklo_epi64(ab_lo, cd_lo),
        _mm_unpackhi_epi64(ab_lo, cd_lo),
        _mm_unpacklo_epi64(ab_hi, cd_hi),
        _mm_unpackhi_epi64(ab_hi, cd_hi),
    ];
    for (chunk, row) in out.chunks_exact_mut(4).zip(rows) {
        // SAFETY: `chunk` is 4 u32 = 16 writable bytes; `_mm_storeu_si128` has no alignment
        // requirement; SSE2 is part of the x86-64 baseline.
        unsafe { _mm_storeu_si128(chunk.as_mut_ptr().cast::<__m128i>(), row) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::rng::philox4x32_10_x4;

    #[test]
    fn sse2_blocks_equal_scalar_definition() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        for i in 0..2000 {
            let ctr0 = if i < 4 { u32::MAX - i } else { next() };
            let (c1, c2, c3, key) = (next(), next(), next(), [next(), next()]);
            let mut out = [0u32; 16];
            philox_x4(ctr0, c1, c2, c3, key, &mut out);
            let want = philox4x32_10_x4(ctr0, c1, c2, c3, key);
            for (k, blk) in want.iter().enumerate() {
                assert_eq!(out[4 * k..4 * k + 4], blk[..], "case {i} block {k}");
            }
        }
    }
}
