//! SHA-NI path: the x86 SHA extensions (`sha256rnds2` does two rounds, `sha256msg1/2` the
//! message schedule) on S independent nonces interleaved instruction by instruction.
//!
//! One stream is latency bound (each `sha256rnds2` waits for the previous one); S streams
//! let a pipelined SHA unit work on several at once. On the Xeon this was measured on the
//! unit is barely pipelined: 1 stream gives ~12 MH/s per CPU-second, 2-4 streams ~13, so
//! there AVX-512 (~29) is the better path. Weaving these streams into the AVX-512 code was
//! tried and ran ~100x slower: the `sha256*` instructions exist only in legacy-SSE encoding,
//! and executing them while the upper halves of the zmm registers are in use is penalised
//! on every instruction. Per nonce: the second header
//! block from the midstate with its first two rounds precomputed, then the outer hash with
//! its constant message groups folded into constants, stopped after round 61 because H7 of
//! the final hash is already known there (early reject on it; survivors are re-hashed in
//! full by the scanner).
//!
//! State layout is the instruction's: ABEF = lanes [F, E, B, A], CDGH = lanes [H, G, D, C].
//!
//! Unsafe lives here because the intrinsics need SHA/SSE4.1. Soundness: every intrinsic runs
//! inside `scan_shani`, a `target_feature` function that `scan` calls only after run-time
//! detection said the CPU has those features.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_cvtsi128_si32, _mm_cvtsi64_si128,
    _mm_insert_epi32, _mm_set_epi32, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
};

use super::compress::{IV, K};
use super::work::{Prepared, PAD2_W15, PAD2_W4, PADO_W15, PADO_W8};

/// Nonces hashed side by side (see the module doc). Measured on the Xeon (Emerald Rapids)
/// this was written on: 1 stream ~12 MH/s per CPU-second, 2, 3 and 4 streams ~13, so the
/// SHA unit's throughput is the limit there; 2 spills the fewest registers of those.
pub(crate) const STREAMS: usize = 2;

/// Whether this CPU can run the SHA-NI path.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// Per-work constants in SHA-NI layout.
struct Consts {
    /// Second block after rounds 0, 1: ABEF and CDGH.
    abef2: __m128i,
    cdgh2: __m128i,
    /// Midstate, to add after the second block.
    mid_abef: __m128i,
    mid_cdgh: __m128i,
    /// Second-block message group 0 without the nonce: [W0, W1, W2, 0].
    m0: __m128i,
    /// K2 + W2: the low half of round 2-3's K+W, whose high half is K3 + nonce.
    kw2: u32,
}

/// Lanes [w0, w1, w2, w3].
#[inline(always)]
fn v(w: [u32; 4]) -> __m128i {
    // SAFETY: SSE2 is part of x86_64.
    unsafe { _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32) }
}

fn abef(s: &[u32; 8]) -> __m128i {
    v([s[5], s[4], s[1], s[0]])
}

fn cdgh(s: &[u32; 8]) -> __m128i {
    v([s[7], s[6], s[3], s[2]])
}

/// K[4g..4g+4] as a vector.
#[inline(always)]
fn kv(g: usize) -> __m128i {
    let k = [K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]];
    v(k)
}

/// Rounds 4g..4g+4 on every stream, given K+W for them.
macro_rules! quad {
    ($abef:ident, $cdgh:ident, $wk:expr) => {{
        let wk: [__m128i; STREAMS] = $wk;
        for j in 0..STREAMS {
            $cdgh[j] = _mm_sha256rnds2_epu32($cdgh[j], $abef[j], wk[j]);
        }
        for j in 0..STREAMS {
            $abef[j] = _mm_sha256rnds2_epu32($abef[j], $cdgh[j], _mm_shuffle_epi32::<0x0e>(wk[j]));
        }
    }};
}

/// Rounds 4g..4g+4 whose K+W is the same constant for every stream.
macro_rules! quad_const {
    ($abef:ident, $cdgh:ident, $wk:expr) => {{
        let wk: [u32; 4] = $wk;
        let lo = v(wk);
        let hi = v([wk[2], wk[3], 0, 0]);
        for j in 0..STREAMS {
            $cdgh[j] = _mm_sha256rnds2_epu32($cdgh[j], $abef[j], lo);
        }
        for j in 0..STREAMS {
            $abef[j] = _mm_sha256rnds2_epu32($abef[j], $cdgh[j], hi);
        }
    }};
}

/// Message groups 4..16 and their rounds, with the schedule in a 4-group ring `$m`.
macro_rules! scheduled {
    ($abef:ident, $cdgh:ident, $m:ident, $($g:literal)*) => {$(
        let kg = kv($g);
        let mut wk = [kg; STREAMS];
        for j in 0..STREAMS {
            let m = &mut $m[j];
            let t = _mm_add_epi32(
                _mm_sha256msg1_epu32(m[$g % 4], m[($g + 1) % 4]),
                _mm_alignr_epi8::<4>(m[($g + 3) % 4], m[($g + 2) % 4]),
            );
            m[$g % 4] = _mm_sha256msg2_epu32(t, m[($g + 3) % 4]);
            wk[j] = _mm_add_epi32(m[$g % 4], kg);
        }
        quad!($abef, $cdgh, wk);
    )*};
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn scan_shani(p: &Prepared, start: u32, steps: u32, top: u32, cand: &mut dyn FnMut(u32)) {
    let s2 = p.s2;
    let c = Consts {
        abef2: abef(&s2),
        cdgh2: cdgh(&s2),
        mid_abef: abef(&p.mid),
        mid_cdgh: cdgh(&p.mid),
        m0: v([p.w[0], p.w[1], p.w[2], 0]),
        kw2: K[2].wrapping_add(p.w[2]),
    };
    let iv_abef = abef(&IV);
    let iv_cdgh = cdgh(&IV);
    let pad2_m1 = v([PAD2_W4, 0, 0, 0]);
    let pad2_m2 = v([0, 0, 0, 0]);
    let pad2_m3 = v([0, 0, 0, PAD2_W15]);
    let pado_m2 = v([PADO_W8, 0, 0, 0]);
    let pado_m3 = v([0, 0, 0, PADO_W15]);

    let mut base = start;
    for _ in 0..steps {
        // Second block: rounds 2, 3 carry the nonce (W3); after them the old ABEF is CDGH.
        let mut abef_s = [c.abef2; STREAMS];
        let mut cdgh_s = [c.abef2; STREAMS];
        let mut msg = [[c.m0, pad2_m1, pad2_m2, pad2_m3]; STREAMS];
        for j in 0..STREAMS {
            let w3 = base.wrapping_add(j as u32).swap_bytes();
            let kw23 = (u64::from(w3.wrapping_add(K[3])) << 32) | u64::from(c.kw2);
            abef_s[j] = _mm_sha256rnds2_epu32(c.cdgh2, c.abef2, _mm_cvtsi64_si128(kw23 as i64));
            cdgh_s[j] = c.abef2;
            msg[j][0] = _mm_insert_epi32::<3>(c.m0, w3 as i32);
        }
        quad_const!(
            abef_s,
            cdgh_s,
            [K[4].wrapping_add(PAD2_W4), K[5], K[6], K[7]]
        );
        quad_const!(abef_s, cdgh_s, [K[8], K[9], K[10], K[11]]);
        quad_const!(
            abef_s,
            cdgh_s,
            [K[12], K[13], K[14], K[15].wrapping_add(PAD2_W15)]
        );
        scheduled!(abef_s, cdgh_s, msg, 4 5 6 7 8 9 10 11 12 13 14 15);

        // First hash = state + midstate, then as the outer hash's message words 0..8.
        let mut abef_o = [iv_abef; STREAMS];
        let mut cdgh_o = [iv_cdgh; STREAMS];
        let mut omsg = [[iv_abef, iv_abef, pado_m2, pado_m3]; STREAMS];
        for j in 0..STREAMS {
            let a = _mm_add_epi32(abef_s[j], c.mid_abef);
            let b = _mm_add_epi32(cdgh_s[j], c.mid_cdgh);
            let tmp = _mm_shuffle_epi32::<0x1b>(a); // [A, B, E, F]
            let b = _mm_shuffle_epi32::<0xb1>(b); // [G, H, C, D]
            omsg[j][0] = _mm_blend_epi16::<0xf0>(tmp, b); // [A, B, C, D]
            omsg[j][1] = _mm_alignr_epi8::<8>(b, tmp); // [E, F, G, H]
        }
        let k0 = kv(0);
        let k1 = kv(1);
        let mut wk = [k0; STREAMS];
        for j in 0..STREAMS {
            wk[j] = _mm_add_epi32(omsg[j][0], k0);
        }
        quad!(abef_o, cdgh_o, wk);
        for j in 0..STREAMS {
            wk[j] = _mm_add_epi32(omsg[j][1], k1);
        }
        quad!(abef_o, cdgh_o, wk);
        quad_const!(
            abef_o,
            cdgh_o,
            [K[8].wrapping_add(PADO_W8), K[9], K[10], K[11]]
        );
        quad_const!(
            abef_o,
            cdgh_o,
            [K[12], K[13], K[14], K[15].wrapping_add(PADO_W15)]
        );
        scheduled!(abef_o, cdgh_o, omsg, 4 5 6 7 8 9 10 11 12 13 14);
        // Group 15: only rounds 60, 61; then lane 0 (F) of ABEF is e after round 61, which
        // rounds 62, 63 would shift into H.
        let k15 = kv(15);
        for j in 0..STREAMS {
            let m = &mut omsg[j];
            let t = _mm_add_epi32(
                _mm_sha256msg1_epu32(m[3], m[0]),
                _mm_alignr_epi8::<4>(m[2], m[1]),
            );
            let m15 = _mm_sha256msg2_epu32(t, m[2]);
            let abef62 = _mm_sha256rnds2_epu32(cdgh_o[j], abef_o[j], _mm_add_epi32(m15, k15));
            let h7 = (_mm_cvtsi128_si32(abef62) as u32).wrapping_add(IV[7]);
            if h7.swap_bytes() <= top {
                cand(base.wrapping_add(j as u32));
            }
        }
        base = base.wrapping_add(STREAMS as u32);
    }
}

/// Scans `steps` groups of `STREAMS` nonces from `start`; does nothing on a CPU without the
/// SHA extensions (the scanner never selects this path there).
pub(crate) fn scan(p: &Prepared, start: u32, steps: u32, top: u32, cand: &mut dyn FnMut(u32)) {
    if available() {
        // SAFETY: the CPU has the features `scan_shani` is compiled for.
        unsafe { scan_shani(p, start, steps, top, cand) }
    }
}
