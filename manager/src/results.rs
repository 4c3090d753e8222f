//! Sealed results: reassembly of chunks, opening, decoding and the exact merge.
//!
//! A rig's result arrives as the chunks of one sealed box named by its SHA-256. The assembly
//! owns a buffer of exactly the announced length (bounded by the caller before it is created),
//! accepts chunks in any order, and checks the whole against its name. Opening checks that the
//! decoded tally's digest equals the one the rig committed to before the upload, and that it
//! covers exactly the assigned photons.

use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::TallyCodecError;
use compushare_protocol::chunk::{chunk_count, content_address, Chunk};
use compushare_protocol::limits::CHUNK_DATA;
use compushare_protocol::secure::seal::{self, SealError};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::Digest;

/// Why a result could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The announced sealed length is over the limit for this job.
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A chunk names another payload, another length, or a bad offset.
    #[error("chunk does not fit the announced payload (offset {offset})")]
    BadChunk {
        /// The chunk's offset.
        offset: u32,
    },
    /// Every chunk arrived but the bytes do not hash to the committed name.
    #[error("reassembled payload does not match its announced SHA-256")]
    Digest,
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

/// One sealed payload being reassembled.
#[derive(Debug)]
pub struct Assembly {
    content: Digest,
    buf: Vec<u8>,
    received: Vec<bool>,
    missing: usize,
}

impl Assembly {
    /// Starts reassembling `len` bytes named `content`; `max` bounds what the caller accepts.
    pub fn new(content: Digest, len: u32, max: u32) -> Result<Self, ResultError> {
        if len > max {
            return Err(ResultError::TooLarge { len, max });
        }
        let chunks = chunk_count(len) as usize;
        Ok(Assembly {
            content,
            buf: vec![0; len as usize],
            received: vec![false; chunks],
            missing: chunks,
        })
    }

    /// Accepts a chunk; `Ok(true)` once the payload is complete and matches its name.
    pub fn accept(&mut self, chunk: &Chunk) -> Result<bool, ResultError> {
        let bad = ResultError::BadChunk {
            offset: chunk.offset,
        };
        if chunk.content != self.content || chunk.total_len as usize != self.buf.len() {
            return Err(bad);
        }
        let off = chunk.offset as usize;
        if !off.is_multiple_of(CHUNK_DATA) {
            return Err(bad);
        }
        let expected_end = (off + CHUNK_DATA).min(self.buf.len());
        if off + chunk.data.len() != expected_end {
            return Err(bad);
        }
        let index = off / CHUNK_DATA;
        let slot = self.received.get_mut(index).ok_or(bad.clone())?;
        let dst = self.buf.get_mut(off..expected_end).ok_or(bad)?;
        dst.copy_from_slice(&chunk.data);
        if !*slot {
            *slot = true;
            self.missing -= 1;
        }
        if self.missing > 0 {
            return Ok(false);
        }
        if content_address(&self.buf) != self.content {
            return Err(ResultError::Digest);
        }
        Ok(true)
    }

    /// The payload (complete once `accept` returned `Ok(true)`).
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
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
) -> Result<Tally, ResultError> {
    let plain = seal::open(me, sealed)?;
    let tally = Tally::from_canonical_bytes(&plain)?;
    if tally.digest() != *committed_tally {
        return Err(ResultError::TallyDigest);
    }
    if tally.photons != photons {
        return Err(ResultError::Photons {
            got: tally.photons,
            expected: photons,
        });
    }
    if tally.deposit.len() != cells {
        return Err(ResultError::Shape {
            got: tally.deposit.len(),
            expected: cells,
        });
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::chunk::Chunker;

    #[test]
    fn assembles_in_any_order_and_refuses_misfits() {
        let payload: Vec<u8> = (0..150_000u32).map(|i| (i * 7) as u8).collect();
        let chunks: Vec<Chunk> = Chunker::new(&payload).unwrap().collect();
        let name = content_address(&payload);
        let mut a = Assembly::new(name, payload.len() as u32, 1 << 20).unwrap();
        assert!(!a.accept(&chunks[2]).unwrap());
        assert!(!a.accept(&chunks[0]).unwrap());
        assert!(!a.accept(&chunks[0]).unwrap());
        let mut moved = chunks[1].clone();
        moved.offset += 1;
        assert!(a.accept(&moved).is_err());
        assert!(a.accept(&chunks[1]).unwrap());
        assert_eq!(a.into_bytes(), payload);
        assert!(matches!(
            Assembly::new(name, 10, 5),
            Err(ResultError::TooLarge { .. })
        ));
        let mut b = Assembly::new([0; 32], payload.len() as u32, 1 << 20).unwrap();
        assert!(b.accept(&chunks[0]).is_err());
    }

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
            Err(ResultError::TallyDigest)
        );
        assert!(matches!(
            open_result(&me, &sealed, &t.digest(), 6, 3),
            Err(ResultError::Photons { .. })
        ));
        assert!(matches!(
            open_result(&me, &sealed, &t.digest(), 5, 4),
            Err(ResultError::Shape { .. })
        ));
        let other = Identity::generate().unwrap();
        assert!(open_result(&other, &sealed, &t.digest(), 5, 3).is_err());
        assert!(max_sealed_len(3, 5, 2) as usize >= sealed.len());
    }
}
