//! Philox4x32-10 on eight blocks at once: in AVX2 registers when the CPU has AVX2 (detected
//! at run time), else as two groups of four in SSE2 registers (x86-64 baseline: every x86-64
//! CPU has SSE2). The scalar `rng::philox4x32_10_x4` stays the definition and the path on
//! other architectures; tests check both vector forms against it.
//!
//! Why: the compiler does not vectorise the blocks' 32x32->64 products itself, and the RNG
//! was about a sixth of the photon loop's instructions (AVX2 halves it again).
//!
//! Unsafe lives here because intrinsics are `target_feature` functions and the stores take
//! raw pointers. Soundness: SSE2 is part of the x86-64 baseline (this module is compiled only
//! for x86-64, where `target_feature = "sse2"` always holds); the AVX2 function is called only
//! after `is_x86_feature_detected!("avx2")`; each store writes 16 (32) bytes into a 4-word
//! (8-word) slice.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_mul_epu32, _mm_or_si128, _mm_set1_epi32, _mm_set1_epi64x,
    _mm_set_epi32, _mm_slli_epi64, _mm_srli_epi64, _mm_storeu_si128, _mm_unpackhi_epi32,
    _mm_unpackhi_epi64, _mm_unpacklo_epi32, _mm_unpacklo_epi64, _mm_xor_si128,
};
use core::arch::x86_64::{
    __m256i, _mm256_blend_epi32, _mm256_mul_epu32, _mm256_permute2x128_si256, _mm256_set1_epi32,
    _mm256_set_epi32, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256,
    _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
    _mm256_xor_si256,
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

/// Blocks with counters `(ctr0 + k, c1, c2, c3)`, `k` = 0..8, under `key`, written in stream
/// order into `out`. Equal to two `rng::philox4x32_10_x4` groups (`ctr0`, `ctr0 + 4`).
#[inline(always)]
pub(crate) fn philox_x8(ctr0: u32, c1: u32, c2: u32, c3: u32, key: [u32; 2], out: &mut [u32; 32]) {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just above.
        unsafe { philox_x8_avx2(ctr0, c1, c2, c3, key, out) };
        return;
    }
    let (lo, hi) = out.split_at_mut(16);
    if let (Ok(lo), Ok(hi)) = (
        <&mut [u32; 16]>::try_from(lo),
        <&mut [u32; 16]>::try_from(hi),
    ) {
        philox_x4(ctr0, c1, c2, c3, key, lo);
        philox_x4(ctr0.wrapping_add(4), c1, c2, c3, key, hi);
    }
}

/// `(hi, lo)` 32-bit halves of the eight lane products `x * m` (`m` broadcast).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_hi_lo_256(x: __m256i, m: __m256i) -> (__m256i, __m256i) {
    let even = _mm256_mul_epu32(x, m);
    let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(x), m);
    // Odd 32-bit lanes (mask bits 1, 3, 5, 7) come from the odd products.
    let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
    let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
    (hi, lo)
}

#[inline]
#[target_feature(enable = "avx2")]
fn philox_x8_avx2(ctr0: u32, c1: u32, c2: u32, c3: u32, key: [u32; 2], out: &mut [u32; 32]) {
    let m0 = _mm256_set1_epi32(M0 as i32);
    let m1 = _mm256_set1_epi32(M1 as i32);
    let ctr = |k: u32| ctr0.wrapping_add(k) as i32;
    let mut a = _mm256_set_epi32(
        ctr(7),
        ctr(6),
        ctr(5),
        ctr(4),
        ctr(3),
        ctr(2),
        ctr(1),
        ctr(0),
    );
    let mut b = _mm256_set1_epi32(c1 as i32);
    let mut c = _mm256_set1_epi32(c2 as i32);
    let mut d = _mm256_set1_epi32(c3 as i32);
    let mut k = key;
    for round in 0..10 {
        let (hi0, lo0) = mul_hi_lo_256(a, m0);
        let (hi1, lo1) = mul_hi_lo_256(c, m1);
        let k0 = _mm256_set1_epi32(k[0] as i32);
        let k1 = _mm256_set1_epi32(k[1] as i32);
        a = _mm256_xor_si256(_mm256_xor_si256(hi1, b), k0);
        b = lo1;
        c = _mm256_xor_si256(_mm256_xor_si256(hi0, d), k1);
        d = lo0;
        if round < 9 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
    }
    // 4x4 transposes within each 128-bit half: row r holds block r (low half) and block
    // r + 4 (high half); then the halves are regrouped into stream order.
    let ab_lo = _mm256_unpacklo_epi32(a, b);
    let ab_hi = _mm256_unpackhi_epi32(a, b);
    let cd_lo = _mm256_unpacklo_epi32(c, d);
    let cd_hi = _mm256_unpackhi_epi32(c, d);
    let r0 = _mm256_unpacklo_epi64(ab_lo, cd_lo);
    let r1 = _mm256_unpackhi_epi64(ab_lo, cd_lo);
    let r2 = _mm256_unpacklo_epi64(ab_hi, cd_hi);
    let r3 = _mm256_unpackhi_epi64(ab_hi, cd_hi);
    let rows = [
        _mm256_permute2x128_si256::<0x20>(r0, r1),
        _mm256_permute2x128_si256::<0x20>(r2, r3),
        _mm256_permute2x128_si256::<0x31>(r0, r1),
        _mm256_permute2x128_si256::<0x31>(r2, r3),
    ];
    for (chunk, row) in out.chunks_exact_mut(8).zip(rows) {
        // SAFETY: `chunk` is 8 u32 = 32 writable bytes; `_mm256_storeu_si256` has no
        // alignment requirement; AVX2 is enabled on this function (callers detect it).
        unsafe { _mm256_storeu_si256(chunk.as_mut_ptr().cast::<__m256i>(), row) };
    }
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
            // Eight blocks: AVX2 where present, else two SSE2 groups.
            let mut out8 = [0u32; 32];
            philox_x8(ctr0, c1, c2, c3, key, &mut out8);
            let hi = philox4x32_10_x4(ctr0.wrapping_add(4), c1, c2, c3, key);
            for (k, blk) in want.iter().chain(hi.iter()).enumerate() {
                assert_eq!(out8[4 * k..4 * k + 4], blk[..], "case {i} x8 block {k}");
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut sse = [0u32; 32];
                let (lo, hi) = sse.split_at_mut(16);
                philox_x4(ctr0, c1, c2, c3, key, lo.try_into().unwrap());
                philox_x4(
                    ctr0.wrapping_add(4),
                    c1,
                    c2,
                    c3,
                    key,
                    hi.try_into().unwrap(),
                );
                assert_eq!(out8, sse, "case {i}: AVX2 equals SSE2");
            }
        }
    }
}
