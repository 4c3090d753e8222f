//! Sample proofs: records and Merkle audit paths for histories the manager picks.
//!
//! The rig keeps only block roots. A subtree that starts on a block boundary and ends on
//! one (or at the last leaf) is the tree over those blocks' roots; any other subtree lies
//! inside one block, whose leaves are rebuilt by re-simulating that block (the engine is
//! deterministic, so the rebuilt leaves are the committed ones). Requested photons are
//! answered block by block so each block is re-simulated at most once per request.

use compushare_kernels::transport::PhotonRecord;
use compushare_protocol::merkle::{self, MerkleError};
use compushare_protocol::msg::HistoryProof;
use compushare_protocol::types::Digest;

use super::assignment::leaf_hashes;
use crate::device::{DeviceError, LoadedJob, Output};

/// What a held result needs to answer sample requests.
#[derive(Debug, Clone)]
pub struct Commitments {
    pub start: u64,
    pub count: u64,
    pub block_log2: u32,
    pub block_roots: Vec<Digest>,
}

/// Why proofs could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The tree and the proof request disagree (a photon outside the assignment).
    #[error("merkle: {0:?}")]
    Merkle(MerkleError),
    /// The device could not re-simulate a block.
    #[error("device: {0}")]
    Device(#[from] DeviceError),
}

/// One block's rebuilt leaves and records.
struct Rebuilt {
    block: u64,
    leaves: Vec<Digest>,
    records: Vec<PhotonRecord>,
}

/// Proofs for `photons` (global indices), in the order asked. Photons outside the
/// assignment are skipped (the manager counts a missing proof as a failed check).
pub fn prove(
    job: &mut dyn LoadedJob,
    c: &Commitments,
    photons: &[u64],
) -> Result<Vec<HistoryProof>, ProofError> {
    let block = 1u64 << c.block_log2;
    let mut wanted: Vec<u64> = photons
        .iter()
        .copied()
        .filter(|&p| p >= c.start && p - c.start < c.count)
        .collect();
    // Group by block so each is rebuilt once; answer in the order asked afterwards.
    wanted.sort_unstable();
    wanted.dedup();
    let mut made: Vec<(u64, HistoryProof)> = Vec::with_capacity(wanted.len());
    let upper = UpperTree::new(&c.block_roots);
    let mut cache: Option<Rebuilt> = None;
    for &photon in &wanted {
        let leaf = photon - c.start;
        let b = leaf / block;
        if cache.as_ref().is_none_or(|r| r.block != b) {
            let first = b * block;
            let n = block.min(c.count - first);
            let from = c.start + first;
            let records = job.run(from..from + n, Output::RecordsOnly)?.records;
            cache = Some(Rebuilt {
                block: b,
                leaves: leaf_hashes(&records),
                records,
            });
        }
        let Some(rebuilt) = cache.as_ref() else {
            continue;
        };
        let path = merkle::proof(leaf, c.count, |s, n| subtree(c, &upper, rebuilt, s, n))
            .map_err(ProofError::Merkle)?;
        let within = (leaf - b * block) as usize;
        let Some(rec) = rebuilt.records.get(within) else {
            continue;
        };
        let mut record = heapless::Vec::new();
        let _ = record.extend_from_slice(&rec.to_bytes());
        made.push((
            photon,
            HistoryProof {
                photon,
                record,
                path,
            },
        ));
    }
    let mut out = Vec::with_capacity(photons.len());
    for p in photons {
        if let Some(i) = made.iter().position(|(q, _)| q == p) {
            out.push(made.swap_remove(i).1);
        }
    }
    Ok(out)
}

/// Root of the subtree over leaves `[s, s + n)`.
fn subtree(c: &Commitments, upper: &UpperTree, rebuilt: &Rebuilt, s: u64, n: u64) -> Digest {
    let block = 1u64 << c.block_log2;
    let end = s + n;
    if s.is_multiple_of(block) && (end.is_multiple_of(block) || end == c.count) {
        return upper.range(s / block, end.div_ceil(block) - s / block);
    }
    if s / block == (end - 1) / block && s / block == rebuilt.block {
        let off = (rebuilt.block * block) as usize;
        let from = s as usize - off;
        return merkle::root_of(rebuilt.leaves.get(from..from + n as usize).unwrap_or(&[]));
    }
    // Only aligned subtrees and right-hand remainders are ever asked for, and those are
    // covered above; split per RFC 6962 anyway so any request stays correct.
    if n <= 1 {
        return merkle::root_of(&[]);
    }
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    merkle::node_hash(
        &subtree(c, upper, rebuilt, s, k),
        &subtree(c, upper, rebuilt, s + k, n - k),
    )
}

/// Every complete, aligned subtree over the block roots (level `k` holds the roots of
/// aligned runs of `2^k` blocks), so that a proof's upper siblings cost O(log n) hashes
/// instead of rehashing all block roots each time. Built per request: one hash per root.
struct UpperTree {
    levels: Vec<Vec<Digest>>,
}

impl UpperTree {
    fn new(block_roots: &[Digest]) -> Self {
        let mut levels = vec![block_roots.to_vec()];
        while let Some(last) = levels.last().filter(|l| l.len() >= 2) {
            let next: Vec<Digest> = last
                .chunks_exact(2)
                .map(|p| merkle::node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        UpperTree { levels }
    }

    /// Root over blocks `[first, first + n)`, per RFC 6962's split.
    fn range(&self, first: u64, n: u64) -> Digest {
        if n.is_power_of_two() && first.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            if let Some(d) = self
                .levels
                .get(level)
                .and_then(|l| l.get((first / n) as usize))
            {
                return *d;
            }
        }
        if n <= 1 {
            // Out of range: only reachable through a malformed request.
            return merkle::root_of(&[]);
        }
        let k = 1u64 << (63 - (n - 1).leading_zeros());
        merkle::node_hash(&self.range(first, k), &self.range(first + k, n - k))
    }
}
