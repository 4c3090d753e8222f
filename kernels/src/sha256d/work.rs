//! One unit of hashing work (`ScanWork`: header + target) and everything about it that no
//! nonce changes, computed once per scan (`Prepared`): the midstate, the first three rounds
//! of the second block, the constant parts of both message schedules.
//!
//! Nonce byte order: the header holds the nonce little-endian at bytes 76..80, while SHA-256
//! reads that same 4 bytes as the big-endian message word W3. So W3 = nonce.swap_bytes().

use super::compress::{
    big_sigma0, big_sigma1, block_words, ch, maj, midstate, small_sigma0, small_sigma1, IV, K,
};
use super::target::Target;

/// A block header to scan and the target a nonce must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanWork {
    header: [u8; 80],
    target: Target,
}

impl ScanWork {
    /// `header` is the full 80-byte header; its nonce bytes (76..80) are ignored.
    pub fn new(header: [u8; 80], target: Target) -> ScanWork {
        ScanWork { header, target }
    }

    /// The header as given (nonce bytes untouched).
    pub fn header(&self) -> &[u8; 80] {
        &self.header
    }

    /// The target a hash must meet.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The header with `nonce` written into bytes 76..80 (little-endian, as on the wire).
    pub fn header_with_nonce(&self, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }
}

/// Per-work constants for the fast paths. Names follow FIPS 180-4: `w*` message words,
/// state after r rounds of the second header block is `s{r}`.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// State after the first 64 header bytes.
    pub mid: [u32; 8],
    /// Second-block message words 0..3 (merkle root tail, time, bits).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // read by sys_shani
    pub w: [u32; 3],
    /// Second-block state after rounds 0, 1 (where SHA-NI, two rounds at a time, starts).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // read by sys_shani
    pub s2: [u32; 8],
    /// Second-block state after rounds 0..=2 (a..h).
    pub s3: [u32; 8],
    /// Round 3: T1 = `r3_t1` + W3; then new a = `r3_a` + W3 and new e = `r3_e` + W3.
    pub r3_a: u32,
    pub r3_e: u32,
    /// Constant second-block schedule words W16, W17.
    pub w16: u32,
    pub w17: u32,
    /// W18 = `c18` + σ0(W3); W19 = `c19` + W3.
    pub c18: u32,
    pub c19: u32,
    /// Outer hash round 0: new a = `o_a1` + W0, new e = `o_e1` + W0.
    pub o_a1: u32,
    pub o_e1: u32,
}

/// Second-block message words 4..16 are padding: 0x80000000, zeros, then the length 640.
pub(crate) const PAD2_W4: u32 = 0x8000_0000;
pub(crate) const PAD2_W15: u32 = 640;
/// Outer-hash message words 8..16: 0x80000000, zeros, then the length 256.
pub(crate) const PADO_W8: u32 = 0x8000_0000;
pub(crate) const PADO_W15: u32 = 256;

/// K[t] + W[t] for second-block rounds 4..16, where W is all padding.
pub(crate) const KW2: [u32; 12] = {
    let mut out = [0u32; 12];
    let mut i = 0;
    while i < 12 {
        let t = i + 4;
        let w = if t == 4 {
            PAD2_W4
        } else if t == 15 {
            PAD2_W15
        } else {
            0
        };
        out[i] = K[t].wrapping_add(w);
        i += 1;
    }
    out
};

/// K[t] + W[t] for outer-hash rounds 8..16, where W is all padding.
pub(crate) const KWO: [u32; 8] = {
    let mut out = [0u32; 8];
    let mut i = 0;
    while i < 8 {
        let t = i + 8;
        let w = if t == 8 {
            PADO_W8
        } else if t == 15 {
            PADO_W15
        } else {
            0
        };
        out[i] = K[t].wrapping_add(w);
        i += 1;
    }
    out
};

/// Scalar round, used only for precomputation.
fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(big_sigma1(e))
        .wrapping_add(ch(e, f, g))
        .wrapping_add(kw);
    let t2 = big_sigma0(a).wrapping_add(maj(a, b, c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

impl Prepared {
    pub fn new(work: &ScanWork) -> Prepared {
        let header = work.header();
        let mid = midstate(header);
        let mut second = [0u8; 64];
        second[..16].copy_from_slice(&header[64..80]);
        let words = block_words(&second);
        let w = [words[0], words[1], words[2]];
        let mut s2 = mid;
        round(&mut s2, K[0].wrapping_add(w[0]));
        round(&mut s2, K[1].wrapping_add(w[1]));
        let mut s3 = s2;
        round(&mut s3, K[2].wrapping_add(w[2]));
        let [a, b, c, d, e, f, g, h] = s3;
        let r3_t1 = h
            .wrapping_add(big_sigma1(e))
            .wrapping_add(ch(e, f, g))
            .wrapping_add(K[3]);
        let r3_t2 = big_sigma0(a).wrapping_add(maj(a, b, c));
        let w16 = small_sigma0(w[1]).wrapping_add(w[0]);
        let w17 = small_sigma1(PAD2_W15)
            .wrapping_add(small_sigma0(w[2]))
            .wrapping_add(w[1]);
        let c18 = small_sigma1(w16).wrapping_add(w[2]);
        let c19 = small_sigma1(w17).wrapping_add(small_sigma0(PAD2_W4));
        let [oa, ob, oc, od, oe, of, og, oh] = IV;
        let o_t1 = oh
            .wrapping_add(big_sigma1(oe))
            .wrapping_add(ch(oe, of, og))
            .wrapping_add(K[0]);
        let o_t2 = big_sigma0(oa).wrapping_add(maj(oa, ob, oc));
        Prepared {
            mid,
            w,
            s2,
            s3,
            r3_a: r3_t1.wrapping_add(r3_t2),
            r3_e: d.wrapping_add(r3_t1),
            w16,
            w17,
            c18,
            c19,
            o_a1: o_t1.wrapping_add(o_t2),
            o_e1: od.wrapping_add(o_t1),
        }
    }
}
