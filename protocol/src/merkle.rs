//! Merkle trees over per-history records (RFC 6962 shape), for sample checks.
//!
//! A rig commits to the records of every photon history of an assignment with one root; the
//! manager later asks for a few random histories and checks each record against the root with
//! a proof of at most [`MERKLE_DEPTH`] hashes. Leaves and inner nodes are hashed with different
//! prefixes (0x00, 0x01) so that a node can never pass for a leaf. The tree over `n` leaves
//! splits at the largest power of two below `n`, which makes every aligned power-of-two block of
//! leaves a complete subtree: a rig may keep only the upper levels and rebuild a block's subtree
//! (by re-simulating its histories) when a proof inside it is asked for. [`proof`] takes the
//! subtree hashes from a callback for exactly that reason.

use heapless::Vec;
use sha2::{Digest as _, Sha256};

use crate::limits::MERKLE_DEPTH;
use crate::types::Digest;

/// Hash of one leaf (a history record).
pub fn leaf_hash(record: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(record);
    h.finalize().into()
}

/// Hash of an inner node.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n` (n >= 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Builds a root from leaf hashes given in order, in O(log n) memory.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    /// Complete subtrees, sizes strictly decreasing powers of two: (hash, log2 size).
    stack: Vec<(Digest, u8), 64>,
    leaves: u64,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next leaf hash.
    pub fn push(&mut self, leaf: Digest) {
        let mut entry = (leaf, 0u8);
        while let Some(&(top, level)) = self.stack.last() {
            if level != entry.1 {
                break;
            }
            self.stack.pop();
            entry = (node_hash(&top, &entry.0), level + 1);
        }
        // At most one entry per bit of a u64 leaf count: 64 always suffices.
        let _ = self.stack.push(entry);
        self.leaves += 1;
    }

    /// Leaves pushed so far.
    pub fn len(&self) -> u64 {
        self.leaves
    }

    /// True when no leaf was pushed.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// The root over the leaves pushed so far (the hash of nothing for an empty tree).
    pub fn root(&self) -> Digest {
        let mut it = self.stack.iter().rev();
        let Some(&(mut acc, _)) = it.next() else {
            return Sha256::digest([]).into();
        };
        for (h, _) in it {
            acc = node_hash(h, &acc);
        }
        acc
    }
}

/// Why a proof could not be made or does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerkleError {
    /// The leaf index is not below the leaf count.
    OutOfRange { index: u64, leaves: u64 },
    /// The proof has the wrong length for this index and leaf count.
    BadLength,
    /// The proof leads to another root.
    Mismatch,
}

/// The audit path of leaf `index` in a tree of `leaves` leaves, deepest sibling first.
/// `subtree(start, len)` must return the root of the complete subtree over leaves
/// `[start, start + len)`; it is only asked for aligned power-of-two blocks and for the
/// right-hand remainders the RFC 6962 split produces.
pub fn proof(
    index: u64,
    leaves: u64,
    mut subtree: impl FnMut(u64, u64) -> Digest,
) -> Result<Vec<Digest, MERKLE_DEPTH>, MerkleError> {
    if index >= leaves {
        return Err(MerkleError::OutOfRange { index, leaves });
    }
    // Walk down from the root, collecting siblings top-down, then reverse.
    let mut path: Vec<Digest, MERKLE_DEPTH> = Vec::new();
    let (mut start, mut n, mut m) = (0u64, leaves, index);
    while n > 1 {
        let k = split(n);
        let sibling = if m < k {
            let s = subtree(start + k, n - k);
            n = k;
            s
        } else {
            let s = subtree(start, k);
            start += k;
            m -= k;
            n -= k;
            s
        };
        path.push(sibling).map_err(|_| MerkleError::BadLength)?;
    }
    path.reverse();
    Ok(path)
}

/// Root of the subtree over `leaf_hashes` (all leaves of a small tree or of one block).
pub fn root_of(leaf_hashes: &[Digest]) -> Digest {
    let mut b = Builder::new();
    for h in leaf_hashes {
        b.push(*h);
    }
    b.root()
}

/// Checks that `leaf` is leaf `index` of a `leaves`-leaf tree with root `root`.
pub fn verify(
    index: u64,
    leaves: u64,
    leaf: &Digest,
    path: &[Digest],
    root: &Digest,
) -> Result<(), MerkleError> {
    if index >= leaves {
        return Err(MerkleError::OutOfRange { index, leaves });
    }
    // RFC 9162, 2.1.3.2.
    let (mut f, mut s) = (index, leaves - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return Err(MerkleError::BadLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::BadLength);
    }
    if r != *root {
        return Err(MerkleError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec as StdVec;

    /// The definition, written as plainly as possible.
    fn mth(leaves: &[Digest]) -> Digest {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> StdVec<Digest> {
        (0..n as u32).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn builder_matches_the_definition() {
        for n in 0..140 {
            let l = leaves(n);
            assert_eq!(root_of(&l), mth(&l), "n = {n}");
        }
    }

    #[test]
    fn every_proof_verifies_and_a_wrong_one_does_not() {
        for n in 1..70u64 {
            let l = leaves(n as usize);
            let root = mth(&l);
            for i in 0..n {
                let path = proof(i, n, |s, len| mth(&l[s as usize..(s + len) as usize])).unwrap();
                assert_eq!(
                    verify(i, n, &l[i as usize], &path, &root),
                    Ok(()),
                    "n {n} i {i}"
                );
                let other = leaf_hash(b"forged");
                assert_eq!(
                    verify(i, n, &other, &path, &root),
                    Err(MerkleError::Mismatch)
                );
                if n > 1 {
                    assert!(verify(i, n, &l[i as usize], &path[1..], &root).is_err());
                    let j = (i + 1) % n;
                    assert!(verify(j, n, &l[i as usize], &path, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn proofs_ask_only_for_aligned_blocks_or_right_remainders() {
        let n = 1000u64;
        let l = leaves(n as usize);
        for i in [0, 511, 512, 999] {
            proof(i, n, |s, len| {
                assert!(
                    len.is_power_of_two() && s % len == 0 || s + len == n,
                    "block {s}+{len}"
                );
                mth(&l[s as usize..(s + len) as usize])
            })
            .unwrap();
        }
    }

    #[test]
    fn huge_trees_fit_the_path_bound() {
        let p = proof((1 << 40) - 1, 1 << 40, |_, _| [0; 32]).unwrap();
        assert_eq!(p.len(), 40);
        assert_eq!(
            proof(5, 5, |_, _| [0; 32]),
            Err(MerkleError::OutOfRange {
                index: 5,
                leaves: 5
            })
        );
    }
}
