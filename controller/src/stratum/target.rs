//! Share and network targets: difficulty -> 256-bit target, compact nbits -> target, and
//! the hash comparison. Targets are kept as big-endian bytes; a sha256d output (as
//! computed) is a little-endian number, so it is compared byte-reversed.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a target could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The difficulty is zero, negative, NaN or infinite.
    #[error("difficulty {0} is not a positive finite number")]
    BadDifficulty(f64),
    /// The compact target has its sign bit set or overflows 256 bits.
    #[error("nbits {0:08x} is not a valid compact target")]
    BadNbits(u32),
}

/// A 256-bit target, big-endian. A hash meets it when hash (as a number) <= target.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareTarget([u8; 32]);

impl std::fmt::Debug for ShareTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShareTarget({})", super::hex::encode(&self.0))
    }
}

/// The difficulty-1 target's leading 16 bits; the target is `0xffff << 208`.
const DIFF1_MANTISSA: u64 = 0xffff;
const DIFF1_SHIFT: i32 = 208;

impl ShareTarget {
    /// The target of share difficulty `d`: floor((0xffff << 208) / d), exact for every
    /// `d` an f64 can hold, saturating at 2^256 - 1 for tiny difficulties.
    pub fn from_difficulty(d: f64) -> Result<ShareTarget, TargetError> {
        if !d.is_finite() || d <= 0.0 {
            return Err(TargetError::BadDifficulty(d));
        }
        // d = m * 2^e exactly, so target = (0xffff << (208 - e)) / m in integers.
        let bits = d.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        let s = DIFF1_SHIFT - e;
        if s >= 400 {
            return Ok(ShareTarget([0xff; 32]));
        }
        // 512-bit numerator in little-endian u64 limbs.
        let mut num = [0u64; 8];
        if s >= 0 {
            let s = s as u32;
            let limb = (s / 64) as usize;
            let off = s % 64;
            let wide = u128::from(DIFF1_MANTISSA) << off;
            if let Some(l) = num.get_mut(limb) {
                *l = wide as u64;
            }
            if let Some(l) = num.get_mut(limb + 1) {
                *l = (wide >> 64) as u64;
            }
        } else if s > -16 {
            num[0] = DIFF1_MANTISSA >> (-s) as u32;
        }
        let mut q = [0u64; 8];
        let mut rem: u128 = 0;
        for i in (0..8).rev() {
            let cur = (rem << 64) | u128::from(num[i]);
            q[i] = (cur / u128::from(m)) as u64;
            rem = cur % u128::from(m);
        }
        if q[4..].iter().any(|&l| l != 0) {
            return Ok(ShareTarget([0xff; 32]));
        }
        let mut out = [0u8; 32];
        for i in 0..4 {
            out[(3 - i) * 8..(4 - i) * 8].copy_from_slice(&q[i].to_be_bytes());
        }
        Ok(ShareTarget(out))
    }

    /// The target a compact `nbits` encodes (mantissa * 256^(exponent - 3)).
    pub fn from_nbits(nbits: u32) -> Result<ShareTarget, TargetError> {
        let exp = (nbits >> 24) as usize;
        let mant = nbits & 0x007f_ffff;
        if nbits & 0x0080_0000 != 0 {
            return Err(TargetError::BadNbits(nbits));
        }
        let mb = mant.to_be_bytes(); // mb[1..4] are the three mantissa bytes
        let mut out = [0u8; 32];
        for (i, &b) in mb[1..4].iter().enumerate() {
            // byte i of the mantissa sits at big-endian position 32 - exp + i
            let pos = 32i64 - exp as i64 + i as i64;
            if b == 0 {
                continue;
            }
            if !(0..32).contains(&pos) {
                if pos < 0 {
                    return Err(TargetError::BadNbits(nbits));
                }
                continue; // below 1: truncated like Bitcoin's right shift
            }
            out[pos as usize] = b;
        }
        Ok(ShareTarget(out))
    }

    /// The big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Builds from big-endian bytes.
    pub fn from_be_bytes(b: [u8; 32]) -> ShareTarget {
        ShareTarget(b)
    }

    /// Whether a sha256d output (as computed, i.e. little-endian) is at or below the target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        hash.iter().rev().cmp(self.0.iter()) != std::cmp::Ordering::Greater
    }

    /// The difficulty this target corresponds to (diff1 / target), as a float.
    pub fn difficulty(&self) -> f64 {
        let t = be_to_f64(&self.0);
        if t == 0.0 {
            return f64::INFINITY;
        }
        (DIFF1_MANTISSA as f64) * 2f64.powi(DIFF1_SHIFT) / t
    }
}

fn be_to_f64(b: &[u8; 32]) -> f64 {
    b.iter().fold(0.0, |acc, &x| acc * 256.0 + f64::from(x))
}

/// The difficulty of a hash (as computed, little-endian): diff1 / hash.
pub fn hash_difficulty(hash: &[u8; 32]) -> f64 {
    ShareTarget(reversed(hash)).difficulty()
}

/// SHA-256 applied twice.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// A hash in display order (byte-reversed).
pub fn reversed(h: &[u8; 32]) -> [u8; 32] {
    let mut r = *h;
    r.reverse();
    r
}
