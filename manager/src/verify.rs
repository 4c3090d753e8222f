//! Verification of untrusted work: sample checks against Merkle commitments, duplicates, and
//! the rules for when each applies.
//!
//! **Sample checks.** A result commits to a Merkle root over per-history records. The manager
//! asks for `k` histories chosen at random after the commitment and re-simulates each with
//! `Engine::simulate_photon`; one wrong record, or a proof that does not lead to the committed
//! root, fails the result. A rig that fabricates a fraction `f` of its histories escapes one
//! check with probability `(1 - f)^k`; the default `k = ceil(ln 0.01 / ln 0.99) = 459` makes that
//! at most 1% for `f = 1%` ([`DEFAULT_SAMPLES`], [`samples_for`]). Short ranges are checked whole.
//!
//! **Duplicates.** The first result of every untrusted rig (after joining, and again after every
//! demotion) and about 1% of all others are also computed by a trusted runner and compared by
//! tally digest, bit for bit. The rig is not told: the assignment looks like any other.
//! Choice (documented in the crate): the trusted runner is the manager itself, which has the
//! engine and whose answer is authoritative, so a mismatch needs no third run to decide.
//!
//! **Trusted rigs** are still sample-checked, at a rate that decays with their clean record
//! ([`trusted_check_probability`]) but never below a floor.

use compushare_kernels::transport::Engine;
use compushare_protocol::merkle;
use compushare_protocol::msg::HistoryProof;
use compushare_protocol::types::{Digest, PhotonRange};

/// Samples per check: catches a 1% fabricator with 99% probability per check.
pub const DEFAULT_SAMPLES: usize = 459;

/// Samples needed so that a rig fabricating `fraction` of its histories is caught with
/// probability at least `confidence` by one check: `ceil(ln(1 - confidence) / ln(1 - fraction))`.
pub fn samples_for(fraction: f64, confidence: f64) -> usize {
    if !(fraction > 0.0 && fraction < 1.0 && confidence > 0.0 && confidence < 1.0) {
        return 1;
    }
    ((1.0 - confidence).ln() / (1.0 - fraction).ln()).ceil() as usize
}

/// Probability that a result of a trusted rig with `clean_results` verified results is checked:
/// halves as the record doubles, never below 2%.
pub fn trusted_check_probability(clean_results: u64) -> f64 {
    (4.0 / (4.0 + clean_results as f64)).max(0.02)
}

/// Why a sample check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// The rig sent a history that was not asked for (or twice).
    #[error("photon {0} was not requested")]
    NotRequested(u64),
    /// The record's length is not the engine's record length.
    #[error("photon {photon}: record of {len} bytes, expected 64")]
    RecordLength {
        /// The photon.
        photon: u64,
        /// Its record's length.
        len: usize,
    },
    /// The proof does not lead to the committed root.
    #[error("photon {photon}: Merkle proof does not match the committed root")]
    Proof {
        /// The photon.
        photon: u64,
    },
    /// The record differs from the manager's re-simulation.
    #[error("photon {photon}: record differs from the re-simulated history")]
    Record {
        /// The photon.
        photon: u64,
    },
}

/// Picks `min(k, range.count)` distinct photons of `range`, using `next` as the random source.
pub fn pick_samples(range: PhotonRange, k: usize, mut next: impl FnMut() -> u64) -> Vec<u64> {
    let n = range.count;
    let k = (k as u64).min(n);
    if k == n {
        return (range.start..range.start + n).collect();
    }
    // Floyd's algorithm: k distinct values without materialising the range.
    let mut chosen = std::collections::BTreeSet::new();
    for j in (n - k)..n {
        let t = next() % (j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().map(|i| range.start + i).collect()
}

/// Checks proofs of one `SampleProof` message against the commitment: each proof must lead
/// from the record's leaf to the committed root, and each record must equal the manager's own
/// re-simulation of that photon. (Which photons were asked for is the caller's bookkeeping.)
pub fn check_proofs(
    engine: &Engine<'_>,
    range: PhotonRange,
    root: &Digest,
    proofs: &[HistoryProof],
) -> Result<(), SampleError> {
    for p in proofs {
        if p.record.len() != 64 {
            return Err(SampleError::RecordLength {
                photon: p.photon,
                len: p.record.len(),
            });
        }
        let index = p.photon.wrapping_sub(range.start);
        let leaf = merkle::leaf_hash(&p.record);
        merkle::verify(index, range.count, &leaf, &p.path, root)
            .map_err(|_| SampleError::Proof { photon: p.photon })?;
        if engine.simulate_photon(p.photon).to_bytes()[..] != p.record[..] {
            return Err(SampleError::Record { photon: p.photon });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_k_catches_a_one_percent_fabricator_with_99_percent() {
        assert_eq!(samples_for(0.01, 0.99), DEFAULT_SAMPLES);
        assert!(0.99f64.powi(DEFAULT_SAMPLES as i32) <= 0.01);
        assert!(0.99f64.powi(DEFAULT_SAMPLES as i32 - 1) > 0.01);
        assert_eq!(samples_for(0.0, 0.99), 1);
    }

    #[test]
    fn samples_are_distinct_and_inside_the_range() {
        let mut s = 1u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 11
        };
        let r = PhotonRange {
            start: 1000,
            count: 5000,
        };
        let v = pick_samples(r, 459, &mut next);
        assert_eq!(v.len(), 459);
        let set: std::collections::BTreeSet<_> = v.iter().copied().collect();
        assert_eq!(set.len(), 459);
        assert!(v.iter().all(|&p| (1000..6000).contains(&p)));
        let small = pick_samples(PhotonRange { start: 7, count: 3 }, 459, &mut next);
        assert_eq!(small, vec![7, 8, 9]);
    }

    #[test]
    fn trusted_rate_decays_to_a_floor() {
        assert_eq!(trusted_check_probability(0), 1.0);
        assert!(trusted_check_probability(4) < 0.51);
        assert_eq!(trusted_check_probability(1_000_000), 0.02);
    }
}
