//! The counter-based random number generator of the photon kernel: Philox4x32-10.
//!
//! Photon `i` of a job with seed `s` draws from its own stream: the Philox key is the 64-bit
//! seed and the 128-bit counter is `(block, 0, i_lo, i_hi)`, where `block` counts the 4-word
//! blocks this photon has consumed. A photon's random numbers therefore depend only on
//! `(seed, i)`, never on which thread, device or work split simulated it; and any photon can
//! be re-simulated alone. Philox uses only 32x32->64 multiplies, xors and adds, which every GPU
//! does cheaply and bit-exactly.

pub(crate) const M0: u32 = 0xD251_1F53;
pub(crate) const M1: u32 = 0xCD9E_8D57;
pub(crate) const W0: u32 = 0x9E37_79B9;
pub(crate) const W1: u32 = 0xBB67_AE85;

/// One Philox4x32 block: ten rounds over `ctr` with `key`.
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    let mut round = 0;
    loop {
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        round += 1;
        if round == 10 {
            return c;
        }
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
}

/// Four consecutive Philox blocks (counters `ctr0 + k` in the first word, `k` = 0..4, rest
/// shared) in structure-of-arrays form so the compiler can run the four in SIMD lanes.
/// Returns the blocks in order; equal to four calls of [`philox4x32_10`].
#[inline(always)]
pub fn philox4x32_10_x4(ctr0: u32, c1: u32, c2: u32, c3: u32, key: [u32; 2]) -> [[u32; 4]; 4] {
    let mut a = [
        ctr0,
        ctr0.wrapping_add(1),
        ctr0.wrapping_add(2),
        ctr0.wrapping_add(3),
    ];
    let mut b = [c1; 4];
    let mut c = [c2; 4];
    let mut d = [c3; 4];
    let mut k = key;
    let mut round = 0;
    loop {
        let mut na = [0u32; 4];
        let mut nb = [0u32; 4];
        let mut nc = [0u32; 4];
        let mut nd = [0u32; 4];
        for l in 0..4 {
            let p0 = u64::from(M0) * u64::from(a[l]);
            let p1 = u64::from(M1) * u64::from(c[l]);
            na[l] = ((p1 >> 32) as u32) ^ b[l] ^ k[0];
            nb[l] = p1 as u32;
            nc[l] = ((p0 >> 32) as u32) ^ d[l] ^ k[1];
            nd[l] = p0 as u32;
        }
        a = na;
        b = nb;
        c = nc;
        d = nd;
        round += 1;
        if round == 10 {
            break;
        }
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    [
        [a[0], b[0], c[0], d[0]],
        [a[1], b[1], c[1], d[1]],
        [a[2], b[2], c[2], d[2]],
        [a[3], b[3], c[3], d[3]],
    ]
}

/// 2^-24: converts the top 24 bits of a word into an f32 fraction exactly.
const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;

/// The random stream of one photon.
#[derive(Debug, Clone)]
pub struct PhotonRng {
    key: [u32; 2],
    index: [u32; 2],
    block: u32,
    /// Eight blocks generated together (32 words), consumed in order.
    buf: [u32; 32],
    used: usize,
}

impl PhotonRng {
    /// The stream of photon `index` under `seed`.
    pub fn new(seed: u64, index: u64) -> Self {
        PhotonRng {
            key: [seed as u32, (seed >> 32) as u32],
            index: [index as u32, (index >> 32) as u32],
            block: 0,
            buf: [0; 32],
            used: 32,
        }
    }

    /// The next 32-bit word of the stream.
    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        if self.used >= 32 {
            self.refill();
        }
        let w = self.buf[self.used & 31];
        self.used += 1;
        w
    }

    /// Generates the next eight blocks into `buf` (AVX2 or SSE2 on x86-64, the scalar
    /// definition elsewhere; equal by test).
    #[inline(always)]
    fn refill(&mut self) {
        #[cfg(target_arch = "x86_64")]
        super::sys_philox::philox_x8(
            self.block,
            0,
            self.index[0],
            self.index[1],
            self.key,
            &mut self.buf,
        );
        #[cfg(not(target_arch = "x86_64"))]
        for half in 0..2u32 {
            let ctr0 = self.block.wrapping_add(4 * half);
            let blocks = philox4x32_10_x4(ctr0, 0, self.index[0], self.index[1], self.key);
            for (k, b) in blocks.iter().enumerate() {
                let at = 16 * half as usize + 4 * k;
                if let Some(dst) = self.buf.get_mut(at..at + 4) {
                    dst.copy_from_slice(b);
                }
            }
        }
        // A photon would need 2^34 draws to wrap; time gates end every photon long before.
        self.block = self.block.wrapping_add(8);
        self.used = 0;
    }

    /// Uniform in `[0, 1)` on the 2^-24 lattice (exact conversion, no rounding).
    #[inline(always)]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * TWO_POW_M24
    }

    /// Uniform in the open interval `(0, 1)`: lattice midpoints, so `log` of it is finite and
    /// nonzero.
    #[inline(always)]
    pub fn uniform_open(&mut self) -> f32 {
        ((self.next_u32() >> 8) as f32 + 0.5) * TWO_POW_M24
    }

    /// `(uniform(), uniform(), uniform_open())` drawn in that order (a scatter's draws),
    /// with one buffer check instead of three when the buffer holds all three words.
    #[inline(always)]
    pub fn uniform2_open1(&mut self) -> (f32, f32, f32) {
        if self.used > 29 {
            return (self.uniform(), self.uniform(), self.uniform_open());
        }
        let i = self.used;
        let (a, b, c) = (
            self.buf[i & 31],
            self.buf[(i + 1) & 31],
            self.buf[(i + 2) & 31],
        );
        self.used = i + 3;
        (
            (a >> 8) as f32 * TWO_POW_M24,
            (b >> 8) as f32 * TWO_POW_M24,
            ((c >> 8) as f32 + 0.5) * TWO_POW_M24,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Philox4x32-10 (Random123 `kat_vectors`).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn four_lane_blocks_equal_single_blocks() {
        let key = [0xdead_beef, 0x1234_5678];
        let x4 = philox4x32_10_x4(u32::MAX - 1, 7, 8, 9, key);
        for (k, b) in x4.iter().enumerate() {
            let ctr = (u32::MAX - 1).wrapping_add(k as u32);
            assert_eq!(*b, philox4x32_10([ctr, 7, 8, 9], key));
        }
        // The stream is the concatenation of blocks 0, 1, 2, ... of (seed, index).
        let mut r = PhotonRng::new(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        for blk in 0..17u32 {
            let b = philox4x32_10(
                [blk, 0, 0x1516_1718, 0x1112_1314],
                [0x0506_0708, 0x0102_0304],
            );
            for w in b {
                assert_eq!(r.next_u32(), w);
            }
        }
    }

    #[test]
    fn streams_differ_by_index_and_seed_and_repeat() {
        let a: Vec<u32> = (0..10)
            .map({
                let mut r = PhotonRng::new(7, 3);
                move |_| r.next_u32()
            })
            .collect();
        let b: Vec<u32> = (0..10)
            .map({
                let mut r = PhotonRng::new(7, 3);
                move |_| r.next_u32()
            })
            .collect();
        let c: Vec<u32> = (0..10)
            .map({
                let mut r = PhotonRng::new(7, 4);
                move |_| r.next_u32()
            })
            .collect();
        let d: Vec<u32> = (0..10)
            .map({
                let mut r = PhotonRng::new(8, 3);
                move |_| r.next_u32()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn uniforms_in_range_and_mean() {
        let mut r = PhotonRng::new(1, 1);
        let mut sum = 0.0f64;
        let n = 100_000;
        for _ in 0..n {
            let u = r.uniform();
            let v = r.uniform_open();
            assert!((0.0..1.0).contains(&u));
            assert!(v > 0.0 && v < 1.0);
            sum += f64::from(u);
        }
        let mean = sum / f64::from(n);
        // sd of the mean is 1/sqrt(12 n) ~ 0.0009
        assert!((mean - 0.5).abs() < 0.004, "mean {mean}");
    }

    /// The batched scatter draws equal three single draws at every buffer position,
    /// refills included.
    #[test]
    fn batched_draws_equal_single_draws() {
        let mut a = PhotonRng::new(0x1234_5678_9abc_def0, 77);
        let mut b = a.clone();
        for k in 0..200 {
            // Shift the buffer position so every offset (and every straddled refill) occurs.
            if k % 5 == 0 {
                assert_eq!(a.uniform().to_bits(), b.uniform().to_bits());
            }
            let (u, phi, uo) = a.uniform2_open1();
            assert_eq!(u.to_bits(), b.uniform().to_bits());
            assert_eq!(phi.to_bits(), b.uniform().to_bits());
            assert_eq!(uo.to_bits(), b.uniform_open().to_bits());
        }
    }
}
