//! The 256-bit share/block target and how a hash is compared with it.
//!
//! Byte order, once for the whole module: a hash is the 32 bytes `sha256d` computes, and
//! Bitcoin reads them as a **little-endian** 256-bit integer (the block explorer's "display
//! order" is those bytes reversed). A hash meets a target when that integer is `<=` the
//! target. `Target` holds the integer itself as eight u32 limbs, least significant first, and
//! converts to and from big-endian bytes (the way targets are written in hex, e.g. table V8).

use thiserror::Error;

/// Why a target could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Difficulty must be a finite number greater than zero.
    #[error("share difficulty {0} is not a finite number > 0")]
    InvalidDifficulty(f64),
    /// The compact `nbits` encoding had its sign bit set (a negative target).
    #[error("compact target nbits {0:#010x} is negative")]
    NegativeCompact(u32),
    /// The compact `nbits` encoding names a number of 2^256 or more.
    #[error("compact target nbits {0:#010x} does not fit in 256 bits")]
    CompactOverflow(u32),
}

/// A 256-bit target; a hash (read as a little-endian integer) meets it when `<=` it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Limbs of the integer, least significant first (limb 7 holds bits 224..256).
    limbs: [u32; 8],
}

/// Mantissa of the difficulty-1 target 0x00000000FFFF0000...: 0xFFFF << 208.
const DIFF1_MANTISSA: u64 = 0xFFFF;
const DIFF1_SHIFT: i32 = 208;

impl Target {
    /// The largest target: every hash meets it.
    pub const MAX: Target = Target {
        limbs: [u32::MAX; 8],
    };

    /// The difficulty-1 target, 0x00000000FFFF0000...0000.
    pub const DIFF1: Target = Target {
        limbs: [0, 0, 0, 0, 0, 0, 0xFFFF_0000, 0],
    };

    /// From the big-endian bytes of the integer (the usual hex form of a target).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Target {
        let mut limbs = [0u32; 8];
        for (i, chunk) in bytes.chunks_exact(4).enumerate() {
            limbs[7 - i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Target { limbs }
    }

    /// The big-endian bytes of the integer.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.limbs[7 - i].to_be_bytes());
        }
        out
    }

    /// Share target for a pool difficulty: `floor(DIFF1 / difficulty)`, exact for any f64
    /// (fractional difficulties included). A difficulty so small that the quotient exceeds
    /// 2^256 - 1 gives [`Target::MAX`].
    pub fn from_difficulty(difficulty: f64) -> Result<Target, TargetError> {
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return Err(TargetError::InvalidDifficulty(difficulty));
        }
        // difficulty = m * 2^e exactly, with m a 53-bit integer.
        let bits = difficulty.to_bits();
        let exp_field = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if exp_field == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp_field - 1075)
        };
        // target = floor(0xFFFF * 2^(208 - e) / m). Work in 16 u64 limbs (1024 bits), enough
        // for every f64 exponent to shift the numerator without loss.
        let shift = DIFF1_SHIFT - e;
        let mut num = [0u64; 16];
        if shift >= 0 {
            let shift = shift as u32;
            if shift > 1024 - 17 {
                return Ok(Target::MAX);
            }
            let limb = (shift / 64) as usize;
            let bit = shift % 64;
            let wide = (DIFF1_MANTISSA as u128) << bit;
            if let Some(l) = num.get_mut(limb) {
                *l = wide as u64;
            }
            if let Some(l) = num.get_mut(limb + 1) {
                *l = (wide >> 64) as u64;
            }
        } else {
            // Dividing by 2^-shift after dividing by m gives the same floor.
            let down = (-shift) as u32;
            if down >= 64 {
                return Ok(Target { limbs: [0; 8] });
            }
            num[0] = DIFF1_MANTISSA >> down;
        }
        // Long division of the 1024-bit numerator by the 53-bit m.
        let mut rem: u128 = 0;
        for limb in num.iter_mut().rev() {
            let cur = (rem << 64) | (*limb as u128);
            *limb = (cur / m as u128) as u64;
            rem = cur % m as u128;
        }
        if num[4..].iter().any(|&l| l != 0) {
            return Ok(Target::MAX);
        }
        let mut limbs = [0u32; 8];
        for (i, l) in num[..4].iter().enumerate() {
            limbs[2 * i] = *l as u32;
            limbs[2 * i + 1] = (*l >> 32) as u32;
        }
        Ok(Target { limbs })
    }

    /// Block target from the header's compact `nbits` field (mantissa * 256^(exponent - 3)).
    pub fn from_compact(nbits: u32) -> Result<Target, TargetError> {
        let exponent = nbits >> 24;
        let mantissa = nbits & 0x007f_ffff;
        if nbits & 0x0080_0000 != 0 && mantissa != 0 {
            return Err(TargetError::NegativeCompact(nbits));
        }
        let mut bytes = [0u8; 32];
        // The mantissa's three bytes land at big-endian positions 32-exponent ..
        let m = mantissa.to_be_bytes();
        for (k, &byte) in m[1..].iter().enumerate() {
            let pos = 32i64 - exponent as i64 + k as i64;
            if byte == 0 {
                continue;
            }
            match usize::try_from(pos).ok().and_then(|p| bytes.get_mut(p)) {
                Some(slot) => *slot = byte,
                // A non-zero byte below the integer's last byte is shifted out, as Bitcoin does.
                None if pos >= 32 => {}
                None => return Err(TargetError::CompactOverflow(nbits)),
            }
        }
        Ok(Target::from_be_bytes(bytes))
    }

    /// The most significant 32 bits of the target (bits 224..256).
    pub fn top_word(&self) -> u32 {
        self.limbs[7]
    }

    /// Whether `hash` (bytes as `sha256d` computed them) meets this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        // Compare most significant limb first; hash limb i is little-endian bytes 4i..4i+4.
        for i in (0..8).rev() {
            let h = u32::from_le_bytes([
                hash[4 * i],
                hash[4 * i + 1],
                hash[4 * i + 2],
                hash[4 * i + 3],
            ]);
            let t = self.limbs[i];
            if h != t {
                return h < t;
            }
        }
        true
    }
}

/// Big-endian hex, 64 digits (the form of table V8 and of most pool logs).
impl core::fmt::Display for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.to_be_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_genesis() {
        let t = Target::from_compact(0x1d00ffff).unwrap();
        assert_eq!(t, Target::DIFF1);
        assert_eq!(
            t.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn compare_is_little_endian() {
        let t = Target::from_be_bytes({
            let mut b = [0u8; 32];
            b[4] = 1; // 2^216
            b
        });
        let mut h = [0u8; 32];
        h[27] = 1; // 2^216 exactly
        assert!(t.is_met_by(&h));
        h[0] = 1; // 2^216 + 1
        assert!(!t.is_met_by(&h));
        h = [0xff; 32];
        h[27] = 0;
        h[28..].fill(0); // just under 2^216
        assert!(t.is_met_by(&h));
    }
}
