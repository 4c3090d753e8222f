//! AVX2 path: the `lanes` scan core on 8 u32 lanes of a ymm register (8 nonces at once),
//! for CPUs without AVX-512. AVX2 has no rotate or three-input logic, so each rotate is two
//! shifts and the XORs of a Σ are folded across the shift pairs.
//!
//! Unsafe lives here because the intrinsics need AVX2. Soundness: `V8` values are only
//! created inside `scan_avx2`, a `target_feature` function that `scan` calls only after
//! run-time detection said the CPU has AVX2; the `#[inline(always)]` lane methods are inlined
//! into it and so run with that feature too.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_andnot_si256, _mm256_castsi256_ps,
    _mm256_cmpeq_epi32, _mm256_min_epu32, _mm256_movemask_ps, _mm256_set1_epi32, _mm256_set_epi64x,
    _mm256_setr_epi32, _mm256_shuffle_epi8, _mm256_slli_epi32, _mm256_srli_epi32, _mm256_xor_si256,
};

use super::lanes::{scan_blocks, Lanes};
use super::work::Prepared;

/// Whether this CPU can run the AVX2 path.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[derive(Clone, Copy)]
struct V8(__m256i);

/// vpshufb control that reverses the bytes of each 32-bit lane.
#[inline(always)]
fn bswap_mask() -> __m256i {
    // SAFETY: only reached from `scan_avx2` (see module doc).
    unsafe {
        _mm256_set_epi64x(
            0x0c0d_0e0f_0809_0a0b,
            0x0405_0607_0001_0203,
            0x0c0d_0e0f_0809_0a0b,
            0x0405_0607_0001_0203,
        )
    }
}

/// XOR of all arguments (a rotate is a shift pair; a Σ is three of them XORed together).
macro_rules! xor3 {
    ($first:expr $(, $rest:expr)*) => {{
        let acc = $first;
        $( let acc = _mm256_xor_si256(acc, $rest); )*
        acc
    }};
}

impl Lanes for V8 {
    const N: u32 = 8;

    #[inline(always)]
    fn splat(x: u32) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe { V8(_mm256_set1_epi32(x as i32)) }
    }

    #[inline(always)]
    fn nonce_words(base: u32) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let n = _mm256_add_epi32(_mm256_set1_epi32(base as i32), lanes);
            V8(_mm256_shuffle_epi8(n, bswap_mask()))
        }
    }

    #[inline(always)]
    fn add(self, o: V8) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe { V8(_mm256_add_epi32(self.0, o.0)) }
    }

    #[inline(always)]
    fn big_sigma0(self) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            let x = self.0;
            V8(xor3!(
                _mm256_srli_epi32::<2>(x),
                _mm256_slli_epi32::<30>(x),
                _mm256_srli_epi32::<13>(x),
                _mm256_slli_epi32::<19>(x),
                _mm256_srli_epi32::<22>(x),
                _mm256_slli_epi32::<10>(x)
            ))
        }
    }

    #[inline(always)]
    fn big_sigma1(self) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            let x = self.0;
            V8(xor3!(
                _mm256_srli_epi32::<6>(x),
                _mm256_slli_epi32::<26>(x),
                _mm256_srli_epi32::<11>(x),
                _mm256_slli_epi32::<21>(x),
                _mm256_srli_epi32::<25>(x),
                _mm256_slli_epi32::<7>(x)
            ))
        }
    }

    #[inline(always)]
    fn small_sigma0(self) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            let x = self.0;
            V8(xor3!(
                _mm256_srli_epi32::<7>(x),
                _mm256_slli_epi32::<25>(x),
                _mm256_srli_epi32::<18>(x),
                _mm256_slli_epi32::<14>(x),
                _mm256_srli_epi32::<3>(x)
            ))
        }
    }

    #[inline(always)]
    fn small_sigma1(self) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            let x = self.0;
            V8(xor3!(
                _mm256_srli_epi32::<17>(x),
                _mm256_slli_epi32::<15>(x),
                _mm256_srli_epi32::<19>(x),
                _mm256_slli_epi32::<13>(x),
                _mm256_srli_epi32::<10>(x)
            ))
        }
    }

    #[inline(always)]
    fn ch(e: V8, f: V8, g: V8) -> V8 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            V8(_mm256_xor_si256(
                _mm256_and_si256(e.0, f.0),
                _mm256_andnot_si256(e.0, g.0),
            ))
        }
    }

    #[inline(always)]
    fn maj(a: V8, b: V8, c: V8) -> V8 {
        // Written as b ^ ((a ^ b) & (b ^ c)) because the next round's b ^ c is this round's
        // a ^ b: with the rounds unrolled the compiler computes it once, so Maj costs three
        // instructions instead of four.
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            V8(_mm256_xor_si256(
                b.0,
                _mm256_and_si256(_mm256_xor_si256(a.0, b.0), _mm256_xor_si256(b.0, c.0)),
            ))
        }
    }

    #[inline(always)]
    fn swapped_le_mask(self, t: u32) -> u32 {
        // SAFETY: only reached from `scan_avx2` (see module doc).
        unsafe {
            let swapped = _mm256_shuffle_epi8(self.0, bswap_mask());
            // Unsigned x <= t  <=>  min(x, t) == x.
            let le = _mm256_cmpeq_epi32(
                _mm256_min_epu32(swapped, _mm256_set1_epi32(t as i32)),
                swapped,
            );
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }
}

#[target_feature(enable = "avx2")]
fn scan_avx2(p: &Prepared, start: u32, blocks: u32, top: u32, cand: &mut dyn FnMut(u32)) {
    scan_blocks::<V8>(p, start, blocks, top, cand);
}

/// Scans `blocks` groups of 8 nonces from `start`; does nothing on a CPU without AVX2 (the
/// scanner never selects this path there).
pub(crate) fn scan(p: &Prepared, start: u32, blocks: u32, top: u32, cand: &mut dyn FnMut(u32)) {
    if available() {
        // SAFETY: the CPU has the feature `scan_avx2` is compiled for.
        unsafe { scan_avx2(p, start, blocks, top, cand) }
    }
}
