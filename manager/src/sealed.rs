//! A rig's sealed result: its size bound, opening it and checking it against the commitment.
//!
//! A rig's result arrives as the chunks of one sealed box named by its SHA-256, reassembled by
//! the workspace's one reassembler (`compushare_protocol::chunk::Reassembler::growing`, bounded
//! by [`max_sealed_len`], memory growing only with the bytes that arrived). Opening checks that
//! the decoded tally's digest equals the one the rig committed to before the upload, that it
//! covers exactly the assigned photons and that it has the job's shape.

use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::TallyCodecError;
use compushare_protocol::secure::seal::{self, SealError};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::Digest;

/// Why a rig's reassembled result was not accepted (each is the rig's fault: its box, its
/// tally, its commitment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealedError {
    /// The box does not open with the manager's key.
    #[error("sealed result does not open: {0}")]
    Seal(#[from] SealError),
    /// The plaintext is not a canonical tally.
    #[error("result is not a valid tally: {0}")]
    Codec(#[from] TallyCodecError),
    /// The tally's digest differs from the committed one.
    #[error("tally digest differs from the committed digest")]
    TallyDigest,
    /// The tally covers another number of photons than assigned.
    #[error("tally holds {got} photons, the assignment has {expected}")]
    Photons {
        /// Photons in the tally.
        got: u64,
        /// Photons assigned.
        expected: u64,
    },
    /// The tally's shape does not match the job (cell count).
    #[error("tally has {got} cells, the job has {expected}")]
    Shape {
        /// Cells in the tally.
        got: usize,
        /// Cells of the job.
        expected: usize,
    },
}

/// Largest sealed result accepted for a job whose tally has `cells` deposit cells and whose
/// assignment has `photons` photons: the canonical size with every photon detected on a long
/// path list is far above any honest result, yet bounded.
pub fn max_sealed_len(cells: u64, photons: u64, media: usize) -> u32 {
    let fixed = 16 + 4 + 8 * 4 + 8 * 6 + 8 * 4 + 8;
    let per_detected = 8 + 2 + 4 + 4 + 4 * media as u64 + 24 + 8;
    let total = cells
        .saturating_mul(8)
        .saturating_add(fixed)
        .saturating_add(photons.saturating_mul(per_detected))
        .saturating_add(seal::SEAL_BOX_OVERHEAD as u64);
    total.min(u64::from(compushare_protocol::limits::MAX_PAYLOAD)) as u32
}

/// Opens a rig's sealed result and checks it against its commitment.
pub fn open_result(
    me: &Identity,
    sealed: &[u8],
    committed_tally: &Digest,
    photons: u64,
    cells: usize,
) -> Result<Tally, SealedError> {
    let plain = seal::open(me, sealed)?;
    let tally = Tally::from_canonical_bytes(&plain)?;
    if tally.digest() != *committed_tally {
        return Err(SealedError::TallyDigest);
    }
    if tally.photons != photons {
        return Err(SealedError::Photons {
            got: tally.photons,
            expected: photons,
        });
    }
    if tally.deposit.len() != cells {
        return Err(SealedError::Shape {
            got: tally.deposit.len(),
            expected: cells,
        });
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_what_matches_the_commitment() {
        let me = Identity::generate().unwrap();
        let t = Tally {
            photons: 5,
            deposit: vec![1, 2, 3],
            ..Tally::default()
        };
        let sealed = seal::seal(&me.public(), &t.canonical_bytes()).unwrap();
        assert_eq!(open_result(&me, &sealed, &t.digest(), 5, 3).unwrap(), t);
        assert_eq!(
            open_result(&me, &sealed, &[0; 32], 5, 3),
            Err(SealedError::TallyDigest)
        );
        assert!(matches!(
            open_result(&me, &sealed, &t.digest(), 6, 3),
            Err(SealedError::Photons { .. })
        ));
        assert!(matches!(
            open_result(&me, &sealed, &t.digest(), 5, 4),
            Err(SealedError::Shape { .. })
        ));
        let other = Identity::generate().unwrap();
        assert!(open_result(&other, &sealed, &t.digest(), 5, 3).is_err());
        assert!(max_sealed_len(3, 5, 2) as usize >= sealed.len());
    }
}
