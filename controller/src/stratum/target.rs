//! Share and network targets: difficulty -> 256-bit target, compact nbits -> target, and
//! the hash comparison. Targets are kept as big-endian bytes; a sha256d output (as
//! computed) is a little-endian number, so it is compared byte-reversed.

use compushare_kernels::sha256d::Target;
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
    /// `d` an f64 can hold, saturating at 2^256 - 1 for tiny difficulties. The arithmetic is
    /// the hashing kernel's (`kernels::sha256d::Target`), so pool, miner and scanner can never
    /// disagree about a share.
    pub fn from_difficulty(d: f64) -> Result<ShareTarget, TargetError> {
        Target::from_difficulty(d)
            .map(|t| ShareTarget(t.to_be_bytes()))
            .map_err(|_| TargetError::BadDifficulty(d))
    }

    /// The target a compact `nbits` encodes (mantissa * 256^(exponent - 3)); negative or
    /// 2^256-and-above encodings are errors.
    pub fn from_nbits(nbits: u32) -> Result<ShareTarget, TargetError> {
        Target::from_compact(nbits)
            .map(|t| ShareTarget(t.to_be_bytes()))
            .map_err(|_| TargetError::BadNbits(nbits))
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
