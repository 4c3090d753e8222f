//! The nonce-scanning core, written once over a `Lanes` type: a vector of N independent
//! u32 lanes, one nonce per lane. The portable path instantiates it with `u32` (N = 1); the
//! AVX-512 and AVX2 paths with their registers (N = 16, 8) in their `sys_*` modules.
//!
//! Per nonce it runs rounds 3..64 of the second header block (rounds 0..3 and the constant
//! parts of the schedule come from `Prepared`), then rounds 0..=60 of the outer hash: that is
//! enough to know H7 of the final hash, whose byte-swap is the most significant 32 bits of
//! the hash as a number. Lanes whose H7 cannot meet the target are dropped there (early
//! reject); the caller re-hashes the rare survivors in full before reporting them.

use super::compress::{IV, K};
use super::work::{Prepared, KW2, KWO, PAD2_W15, PAD2_W4, PADO_W15, PADO_W8};

/// N lanes of u32 arithmetic (all wrapping).
pub(crate) trait Lanes: Copy {
    /// Number of lanes.
    const N: u32;
    fn splat(x: u32) -> Self;
    /// Lane i holds `(base + i).swap_bytes()`: nonce base+i as message word W3.
    fn nonce_words(base: u32) -> Self;
    fn add(self, o: Self) -> Self;
    fn big_sigma0(self) -> Self;
    fn big_sigma1(self) -> Self;
    fn small_sigma0(self) -> Self;
    fn small_sigma1(self) -> Self;
    fn ch(e: Self, f: Self, g: Self) -> Self;
    fn maj(a: Self, b: Self, c: Self) -> Self;
    /// Bit i set where `lane_i.swap_bytes() <= t`.
    fn swapped_le_mask(self, t: u32) -> u32;
}

impl Lanes for u32 {
    const N: u32 = 1;
    #[inline(always)]
    fn splat(x: u32) -> u32 {
        x
    }
    #[inline(always)]
    fn nonce_words(base: u32) -> u32 {
        base.swap_bytes()
    }
    #[inline(always)]
    fn add(self, o: u32) -> u32 {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn big_sigma0(self) -> u32 {
        super::compress::big_sigma0(self)
    }
    #[inline(always)]
    fn big_sigma1(self) -> u32 {
        super::compress::big_sigma1(self)
    }
    #[inline(always)]
    fn small_sigma0(self) -> u32 {
        super::compress::small_sigma0(self)
    }
    #[inline(always)]
    fn small_sigma1(self) -> u32 {
        super::compress::small_sigma1(self)
    }
    #[inline(always)]
    fn ch(e: u32, f: u32, g: u32) -> u32 {
        super::compress::ch(e, f, g)
    }
    #[inline(always)]
    fn maj(a: u32, b: u32, c: u32) -> u32 {
        super::compress::maj(a, b, c)
    }
    #[inline(always)]
    fn swapped_le_mask(self, t: u32) -> u32 {
        u32::from(self.swap_bytes() <= t)
    }
}

/// One round; `kw` is K[t] + W[t]. State is [a, b, c, d, e, f, g, h].
#[inline(always)]
fn rnd<V: Lanes>(s: [V; 8], kw: V) -> [V; 8] {
    let [a, b, c, d, e, f, g, h] = s;
    let t1 = h.add(e.big_sigma1()).add(V::ch(e, f, g)).add(kw);
    let t2 = a.big_sigma0().add(V::maj(a, b, c));
    [t1.add(t2), a, b, c, d.add(t1), e, f, g]
}

/// A round whose new `a` is never used (outer rounds 57..=60: only e after round 60 is
/// needed, and it reads a only from round 56 and before): T2 and the new a are skipped, the
/// old a stands in for it.
#[inline(always)]
fn rnd_e_only<V: Lanes>(s: [V; 8], kw: V) -> [V; 8] {
    let [a, b, c, d, e, f, g, h] = s;
    let t1 = h.add(e.big_sigma1()).add(V::ch(e, f, g)).add(kw);
    [a, a, b, c, d.add(t1), e, f, g]
}

/// Next schedule word in a 16-word window holding W[t-16..t] at index (i mod 16).
macro_rules! sched {
    ($w:ident, $t:expr) => {
        $w[$t % 16] = $w[($t - 2) % 16]
            .small_sigma1()
            .add($w[($t - 7) % 16])
            .add($w[($t - 15) % 16].small_sigma0())
            .add($w[$t % 16])
    };
}

/// Rounds `$t..` with the schedule computed on the fly (t >= 32 only; W16..W31 are given).
macro_rules! rounds_sched {
    ($s:ident, $w:ident, $($t:literal)*) => {
        $(
            sched!($w, $t);
            $s = rnd($s, $w[$t % 16].add(V::splat(K[$t])));
        )*
    };
}

/// Like `rounds_sched` for the outer hash's last rounds, which only need e (`rnd_e_only`).
macro_rules! rounds_sched_e_only {
    ($s:ident, $w:ident, $($t:literal)*) => {
        $(
            sched!($w, $t);
            $s = rnd_e_only($s, $w[$t % 16].add(V::splat(K[$t])));
        )*
    };
}

/// Rounds `$t..` whose W is already in the window.
macro_rules! rounds_window {
    ($s:ident, $w:ident, $($t:literal)*) => {
        $( $s = rnd($s, $w[$t % 16].add(V::splat(K[$t]))); )*
    };
}

/// H7 of sha256d(header with nonce) for each lane, given W3 (the byte-swapped nonces).
#[inline(always)]
pub(crate) fn hash_h7<V: Lanes>(p: &Prepared, w3: V) -> V {
    let sp = V::splat;
    // Second header block, rounds 3..64.
    let s3 = p.s3;
    let mut s: [V; 8] = [
        sp(p.r3_a).add(w3),
        sp(s3[0]),
        sp(s3[1]),
        sp(s3[2]),
        sp(p.r3_e).add(w3),
        sp(s3[4]),
        sp(s3[5]),
        sp(s3[6]),
    ];
    for kw in KW2 {
        s = rnd(s, sp(kw));
    }
    // W16..W31 with the padding words folded in (W4 = 0x80000000, W5..W14 = 0, W15 = 640).
    let w16 = sp(p.w16);
    let w17 = sp(p.w17);
    let w18 = sp(p.c18).add(w3.small_sigma0());
    let w19 = sp(p.c19).add(w3);
    let w20 = w18.small_sigma1().add(sp(PAD2_W4));
    let w21 = w19.small_sigma1();
    let w22 = w20.small_sigma1().add(sp(PAD2_W15));
    let w23 = w21.small_sigma1().add(w16);
    let w24 = w22.small_sigma1().add(w17);
    let w25 = w23.small_sigma1().add(w18);
    let w26 = w24.small_sigma1().add(w19);
    let w27 = w25.small_sigma1().add(w20);
    let w28 = w26.small_sigma1().add(w21);
    let w29 = w27.small_sigma1().add(w22);
    let w30 = w28
        .small_sigma1()
        .add(w23)
        .add(sp(super::compress::small_sigma0(PAD2_W15)));
    let w31 = w29.small_sigma1().add(w24).add(sp(
        super::compress::small_sigma0(p.w16).wrapping_add(PAD2_W15)
    ));
    let mut w = [
        w16, w17, w18, w19, w20, w21, w22, w23, w24, w25, w26, w27, w28, w29, w30, w31,
    ];
    rounds_window!(s, w, 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    rounds_sched!(s, w, 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47);
    rounds_sched!(s, w, 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    let mid = p.mid;
    let h: [V; 8] = [
        s[0].add(sp(mid[0])),
        s[1].add(sp(mid[1])),
        s[2].add(sp(mid[2])),
        s[3].add(sp(mid[3])),
        s[4].add(sp(mid[4])),
        s[5].add(sp(mid[5])),
        s[6].add(sp(mid[6])),
        s[7].add(sp(mid[7])),
    ];

    // Outer hash of the 32-byte first hash: W0..W7 = h, W8 = 0x80000000, W15 = 256.
    let mut s: [V; 8] = [
        sp(p.o_a1).add(h[0]),
        sp(IV[0]),
        sp(IV[1]),
        sp(IV[2]),
        sp(p.o_e1).add(h[0]),
        sp(IV[4]),
        sp(IV[5]),
        sp(IV[6]),
    ];
    for t in 1..8 {
        s = rnd(s, h[t].add(sp(K[t])));
    }
    for kw in KWO {
        s = rnd(s, sp(kw));
    }
    let w16 = h[1].small_sigma0().add(h[0]);
    let w17 = h[2]
        .small_sigma0()
        .add(h[1])
        .add(sp(super::compress::small_sigma1(PADO_W15)));
    let w18 = w16.small_sigma1().add(h[3].small_sigma0()).add(h[2]);
    let w19 = w17.small_sigma1().add(h[4].small_sigma0()).add(h[3]);
    let w20 = w18.small_sigma1().add(h[5].small_sigma0()).add(h[4]);
    let w21 = w19.small_sigma1().add(h[6].small_sigma0()).add(h[5]);
    let w22 = w20
        .small_sigma1()
        .add(h[7].small_sigma0())
        .add(h[6])
        .add(sp(PADO_W15));
    let w23 = w21
        .small_sigma1()
        .add(w16)
        .add(h[7])
        .add(sp(super::compress::small_sigma0(PADO_W8)));
    let w24 = w22.small_sigma1().add(w17).add(sp(PADO_W8));
    let w25 = w23.small_sigma1().add(w18);
    let w26 = w24.small_sigma1().add(w19);
    let w27 = w25.small_sigma1().add(w20);
    let w28 = w26.small_sigma1().add(w21);
    let w29 = w27.small_sigma1().add(w22);
    let w30 = w28
        .small_sigma1()
        .add(w23)
        .add(sp(super::compress::small_sigma0(PADO_W15)));
    let w31 = w29
        .small_sigma1()
        .add(w24)
        .add(w16.small_sigma0())
        .add(sp(PADO_W15));
    let mut w = [
        w16, w17, w18, w19, w20, w21, w22, w23, w24, w25, w26, w27, w28, w29, w30, w31,
    ];
    rounds_window!(s, w, 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    rounds_sched!(s, w, 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47);
    rounds_sched!(s, w, 48 49 50 51 52 53 54 55 56);
    rounds_sched_e_only!(s, w, 57 58 59 60);
    // After round 60, e is what h will be after round 63: H7 = IV7 + e.
    s[4].add(sp(IV[7]))
}

/// Hashes `blocks` groups of N consecutive nonces from `start` and calls `candidate` for each
/// nonce that survives the early reject on H7 against `target_top`.
#[inline(always)]
pub(crate) fn scan_blocks<V: Lanes>(
    p: &Prepared,
    start: u32,
    blocks: u32,
    target_top: u32,
    candidate: &mut dyn FnMut(u32),
) {
    let mut base = start;
    for _ in 0..blocks {
        let h7 = hash_h7::<V>(p, V::nonce_words(base));
        let mut mask = h7.swapped_le_mask(target_top);
        while mask != 0 {
            let lane = mask.trailing_zeros();
            candidate(base.wrapping_add(lane));
            mask &= mask - 1;
        }
        base = base.wrapping_add(V::N);
    }
}

/// The portable path: one nonce at a time.
pub(crate) fn scan_portable(
    p: &Prepared,
    start: u32,
    count: u32,
    target_top: u32,
    candidate: &mut dyn FnMut(u32),
) {
    scan_blocks::<u32>(p, start, count, target_top, candidate);
}
