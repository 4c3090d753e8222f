//! AVX-512 path: the `lanes` scan core on 16 u32 lanes of a zmm register (16 nonces at
//! once), with native rotates (`vprord`) and three-input logic (`vpternlogd`) so each Σ, σ,
//! Ch and Maj is 2-4 instructions.
//!
//! Why this shape (measured on the Sapphire Rapids development VM, 2026-11): the kernel is
//! 2,858 vector ALU instructions per 16 nonces (1,179 rotates/shifts, which issue on port 0
//! only, and 1,679 adds and ternary-logic ops, which issue on port 0 or 5), the same
//! per-round count as a textbook round with K + W folded where W is constant. It runs at
//! about 1.76 of them per cycle, against 1.75-1.87 for a synthetic stream of independent
//! zmm adds and rotates on the same core, so it is bound by zmm issue throughput, not by
//! latency, port balance or the front end (compiling for the native CPU's scheduling
//! model changed nothing). Hence: two interleaved 16-lane streams spill and lose ~25%;
//! 256-bit AVX-512VL registers run at ~2.9 instructions per cycle (three ports) but carry
//! half the lanes and lose ~30%.
//!
//! Unsafe lives here because the intrinsics need AVX-512F/BW. Soundness: `V16` values are
//! only created inside `scan_avx512`, a `target_feature` function that `scan` calls only
//! after run-time detection said the CPU has both features; the `#[inline(always)]` lane
//! methods are inlined into it and so run with those features too.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_cmple_epu32_mask, _mm512_ror_epi32, _mm512_set1_epi32,
    _mm512_set_epi64, _mm512_setr_epi32, _mm512_shuffle_epi8, _mm512_srli_epi32,
    _mm512_ternarylogic_epi32,
};

use super::lanes::{scan_blocks, Lanes};
use super::work::Prepared;

/// Whether this CPU can run the AVX-512 path.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

#[derive(Clone, Copy)]
struct V16(__m512i);

/// vpshufb control that reverses the bytes of each 32-bit lane.
#[inline(always)]
fn bswap_mask() -> __m512i {
    // SAFETY: only reached from `scan_avx512` (see module doc).
    unsafe {
        _mm512_set_epi64(
            0x0c0d_0e0f_0809_0a0b,
            0x0405_0607_0001_0203,
            0x0c0d_0e0f_0809_0a0b,
            0x0405_0607_0001_0203,
            0x0c0d_0e0f_0809_0a0b,
            0x0405_0607_0001_0203,
            0x0c0d_0e0f_0809_0a0b,
            0x0405_0607_0001_0203,
        )
    }
}

impl Lanes for V16 {
    const N: u32 = 16;

    #[inline(always)]
    fn splat(x: u32) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe { V16(_mm512_set1_epi32(x as i32)) }
    }

    #[inline(always)]
    fn nonce_words(base: u32) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe {
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let n = _mm512_add_epi32(_mm512_set1_epi32(base as i32), lanes);
            V16(_mm512_shuffle_epi8(n, bswap_mask()))
        }
    }

    #[inline(always)]
    fn add(self, o: V16) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe { V16(_mm512_add_epi32(self.0, o.0)) }
    }

    #[inline(always)]
    fn big_sigma0(self) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe {
            let x = self.0;
            V16(_mm512_ternarylogic_epi32::<0x96>(
                _mm512_ror_epi32::<2>(x),
                _mm512_ror_epi32::<13>(x),
                _mm512_ror_epi32::<22>(x),
            ))
        }
    }

    #[inline(always)]
    fn big_sigma1(self) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe {
            let x = self.0;
            V16(_mm512_ternarylogic_epi32::<0x96>(
                _mm512_ror_epi32::<6>(x),
                _mm512_ror_epi32::<11>(x),
                _mm512_ror_epi32::<25>(x),
            ))
        }
    }

    #[inline(always)]
    fn small_sigma0(self) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe {
            let x = self.0;
            V16(_mm512_ternarylogic_epi32::<0x96>(
                _mm512_ror_epi32::<7>(x),
                _mm512_ror_epi32::<18>(x),
                _mm512_srli_epi32::<3>(x),
            ))
        }
    }

    #[inline(always)]
    fn small_sigma1(self) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe {
            let x = self.0;
            V16(_mm512_ternarylogic_epi32::<0x96>(
                _mm512_ror_epi32::<17>(x),
                _mm512_ror_epi32::<19>(x),
                _mm512_srli_epi32::<10>(x),
            ))
        }
    }

    #[inline(always)]
    fn ch(e: V16, f: V16, g: V16) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe { V16(_mm512_ternarylogic_epi32::<0xca>(e.0, f.0, g.0)) }
    }

    #[inline(always)]
    fn maj(a: V16, b: V16, c: V16) -> V16 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe { V16(_mm512_ternarylogic_epi32::<0xe8>(a.0, b.0, c.0)) }
    }

    #[inline(always)]
    fn swapped_le_mask(self, t: u32) -> u32 {
        // SAFETY: only reached from `scan_avx512` (see module doc).
        unsafe {
            let swapped = _mm512_shuffle_epi8(self.0, bswap_mask());
            u32::from(_mm512_cmple_epu32_mask(
                swapped,
                _mm512_set1_epi32(t as i32),
            ))
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn scan_avx512(p: &Prepared, start: u32, blocks: u32, top: u32, cand: &mut dyn FnMut(u32)) {
    scan_blocks::<V16>(p, start, blocks, top, cand);
}

/// Scans `blocks` groups of 16 nonces from `start`; does nothing on a CPU without AVX-512
/// (the scanner never selects this path there).
pub(crate) fn scan(p: &Prepared, start: u32, blocks: u32, top: u32, cand: &mut dyn FnMut(u32)) {
    if available() {
        // SAFETY: the CPU has the features `scan_avx512` is compiled for.
        unsafe { scan_avx512(p, start, blocks, top, cand) }
    }
}
