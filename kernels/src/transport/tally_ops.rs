//! Tally construction, merging and the canonical digest.
//!
//! Canonical encoding (what [`Tally::digest`] hashes with SHA-256; all integers little-endian):
//! the 16 ASCII bytes `compushare-tally`, format version u32 = 1, `photons` u64, `launched`
//! u64, `deposit.len()` u64 then every deposit cell u64 in index order, the six `escaped` u64 in
//! `FACE_NAMES` order, `specular`, `alive_at_t1`, `roulette_gained`, `roulette_killed` (u64
//! each), `detected.len()` u64, then each detected photon in ascending `photon` order:
//! `photon` u64, `detector` u16, `scatters` u32, `path_mm.len()` u32, each path as f32 bits
//! u32, `exit_pos` and `exit_dir` as f32 bits (3 + 3 u32), `weight` u64.

use sha2::{Digest, Sha256};

use super::error::TransportError;
use super::job::Job;
use super::tally::Tally;

/// Bytes of the deposit array of `job` (voxels x gates x 8), or `None` on overflow.
pub fn tally_cells(job: &Job) -> Option<u64> {
    job.dim
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::from(d)))?
        .checked_mul(u64::from(job.time.gates.max(1)))
}

/// Memory a run of `job` needs besides the job itself: the tally cells (8 bytes each) and the
/// distance map (1 byte per voxel); saturates at `u64::MAX`. Independent of thread count.
pub fn tally_bytes(job: &Job) -> u64 {
    let voxels = job
        .dim
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::from(d)));
    match (tally_cells(job).and_then(|c| c.checked_mul(8)), voxels) {
        (Some(c), Some(v)) => c.saturating_add(v),
        _ => u64::MAX,
    }
}

impl Tally {
    /// An empty tally for `job` (zero photons). Allocates `tally_bytes(job)`-ish memory;
    /// use [`Tally::try_new`] where the size is not already checked.
    pub fn new(job: &Job) -> Self {
        let cells = tally_cells(job).unwrap_or(0) as usize;
        Tally {
            deposit: vec![0; cells],
            ..Tally::default()
        }
    }

    /// Like [`Tally::new`], but refuses sizes that overflow or cannot be allocated.
    pub fn try_new(job: &Job) -> Result<Self, TransportError> {
        let bytes = tally_bytes(job);
        let cells = tally_cells(job)
            .and_then(|c| usize::try_from(c).ok())
            .ok_or(TransportError::TallyTooLarge {
                bytes,
                reason: "size overflows",
            })?;
        let mut deposit = Vec::new();
        deposit
            .try_reserve_exact(cells)
            .map_err(|_| TransportError::TallyTooLarge {
                bytes,
                reason: "allocation failed",
            })?;
        deposit.resize(cells, 0);
        Ok(Tally {
            deposit,
            ..Tally::default()
        })
    }

    /// Adds `other` (a disjoint photon range of the same job) into `self`.
    pub fn merge(&mut self, other: &Tally) -> Result<(), TransportError> {
        if self.deposit.len() != other.deposit.len() {
            return Err(TransportError::MergeMismatch {
                what: "deposit cell count",
            });
        }
        for (a, b) in self.deposit.iter_mut().zip(&other.deposit) {
            *a = a.wrapping_add(*b);
        }
        for (a, b) in self.escaped.iter_mut().zip(&other.escaped) {
            *a = a.wrapping_add(*b);
        }
        self.photons = self.photons.wrapping_add(other.photons);
        self.launched = self.launched.wrapping_add(other.launched);
        self.specular = self.specular.wrapping_add(other.specular);
        self.alive_at_t1 = self.alive_at_t1.wrapping_add(other.alive_at_t1);
        self.roulette_gained = self.roulette_gained.wrapping_add(other.roulette_gained);
        self.roulette_killed = self.roulette_killed.wrapping_add(other.roulette_killed);
        if !other.detected.is_empty() {
            let mut all = Vec::with_capacity(self.detected.len() + other.detected.len());
            all.append(&mut self.detected);
            all.extend(other.detected.iter().cloned());
            all.sort_by_key(|d| d.photon);
            self.detected = all;
        }
        Ok(())
    }

    /// Total deposited weight over all voxels and gates.
    pub fn deposited(&self) -> u64 {
        self.deposit.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// Total escaped weight over all faces.
    pub fn escaped_total(&self) -> u64 {
        self.escaped.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// MCX's absorbed fraction: `1 - (escaped + specular) / launched` (alive at t1 and
    /// deposited both count as absorbed). 0 for an empty tally.
    pub fn absorbed_fraction(&self) -> f64 {
        if self.launched == 0 {
            return 0.0;
        }
        1.0 - (self.escaped_total() as f64 + self.specular as f64) / self.launched as f64
    }

    /// Writes the canonical encoding (module doc) into `h`. Allocates nothing when the
    /// detected photons are already in ascending order (every tally the engines build is):
    /// a rig encodes its results into preallocated vault slots through this.
    fn encode(&self, h: &mut impl FnMut(&[u8])) {
        h(b"compushare-tally");
        h(&1u32.to_le_bytes());
        h(&self.photons.to_le_bytes());
        h(&self.launched.to_le_bytes());
        h(&(self.deposit.len() as u64).to_le_bytes());
        // Batch the cells so hashing a large grid is not dominated by call overhead.
        let mut buf = [0u8; 8 * 512];
        for chunk in self.deposit.chunks(512) {
            for (c, out) in chunk.iter().zip(buf.chunks_exact_mut(8)) {
                out.copy_from_slice(&c.to_le_bytes());
            }
            h(&buf[..chunk.len() * 8]);
        }
        for e in self.escaped {
            h(&e.to_le_bytes());
        }
        for v in [
            self.specular,
            self.alive_at_t1,
            self.roulette_gained,
            self.roulette_killed,
        ] {
            h(&v.to_le_bytes());
        }
        h(&(self.detected.len() as u64).to_le_bytes());
        let one = |d: &super::tally::DetectedPhoton, h: &mut dyn FnMut(&[u8])| {
            h(&d.photon.to_le_bytes());
            h(&d.detector.to_le_bytes());
            h(&d.scatters.to_le_bytes());
            h(&(d.path_mm.len() as u32).to_le_bytes());
            for x in &d.path_mm {
                h(&x.to_bits().to_le_bytes());
            }
            for x in d.exit_pos.iter().chain(d.exit_dir.iter()) {
                h(&x.to_bits().to_le_bytes());
            }
            h(&d.weight.to_le_bytes());
        };
        if self.detected.is_sorted_by_key(|d| d.photon) {
            for d in &self.detected {
                one(d, h);
            }
        } else {
            let mut order: Vec<&super::tally::DetectedPhoton> = self.detected.iter().collect();
            order.sort_by_key(|d| d.photon);
            for d in order {
                one(d, h);
            }
        }
    }

    /// The canonical encoding as bytes (module doc).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.canonical_len());
        self.encode(&mut |b| out.extend_from_slice(b));
        out
    }

    /// Length of the canonical encoding, bytes (computed, nothing allocated).
    pub fn canonical_len(&self) -> usize {
        let detected: usize = self
            .detected
            .iter()
            .map(|d| 8 + 2 + 4 + 4 + 4 * d.path_mm.len() + 6 * 4 + 8)
            .sum();
        16 + 4 + 8 + 8 + 8 + 8 * self.deposit.len() + 6 * 8 + 4 * 8 + 8 + detected
    }

    /// Writes the canonical encoding into `out` and returns its length, or `None` (with
    /// `out` untouched past what fit) when `out` is shorter than [`Tally::canonical_len`].
    /// Allocates nothing for a tally whose detected photons are in order (module doc).
    pub fn write_canonical(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.canonical_len();
        let dst = out.get_mut(..len)?;
        let mut at = 0usize;
        self.encode(&mut |b| {
            if let Some(d) = dst.get_mut(at..at + b.len()) {
                d.copy_from_slice(b);
            }
            at += b.len();
        });
        (at == len).then_some(len)
    }

    /// SHA-256 of the canonical encoding.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        self.encode(&mut |b| hasher.update(b));
        hasher.finalize().into()
    }
}
