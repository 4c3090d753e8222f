//! Running one assignment on the CPU engine, in aligned blocks, with its commitments.
//!
//! An assignment of `count` photons is run as blocks of `2^block_log2` photons aligned to the
//! assignment's first photon (leaf `i` is photon `start + i`). Only one block's records exist
//! at a time; each block's tally is merged exactly into the running tally and its Merkle
//! subtree root is kept. Because blocks are aligned powers of two, the RFC 6962 tree over all
//! leaves equals the tree over the block roots, so the root costs nothing extra, and a proof
//! inside a block needs only that block re-simulated (see `proofs`).
//!
//! Heavy work: everything here runs on blocking threads, never on the async runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use compushare_kernels::transport::tally::{Tally, WEIGHT_ONE};
use compushare_kernels::transport::{Engine, Fate, PhotonRecord, TransportError};
use compushare_protocol::merkle;
use compushare_protocol::msg::CostStats;
use compushare_protocol::types::Digest;
use sha2::{Digest as _, Sha256};

/// Smallest block: small enough that a sample proof re-simulates little.
pub const MIN_BLOCK_LOG2: u32 = 12;
/// Largest block: bounds the records held at once (2^20 x 64 bytes = 64 MiB).
pub const MAX_BLOCK_LOG2: u32 = 20;

/// A test double of a dishonest rig: the given fraction of histories is made up instead of
/// simulated (plausible records and tally contributions, no physics). Library-only: rig.conf
/// cannot reach it. Used by the management node's cheater tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fabricate {
    /// Fabricated histories per million.
    pub per_million: u32,
    /// Varies which histories are fabricated.
    pub salt: u64,
}

impl Fabricate {
    /// Whether photon `index` is one this dishonest rig makes up.
    pub fn fabricates(&self, index: u64) -> bool {
        if self.per_million == 0 {
            return false;
        }
        let h = Sha256::new()
            .chain_update(self.salt.to_le_bytes())
            .chain_update(index.to_le_bytes())
            .finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        u64::from_le_bytes(b) % 1_000_000 < u64::from(self.per_million)
    }

    /// A plausible made-up record: the photon went straight through and left by -z.
    fn record(index: u64) -> PhotonRecord {
        PhotonRecord {
            index,
            fate: Fate::Escaped { face: 4 },
            launched: WEIGHT_ONE,
            specular: 0,
            deposited: 0,
            exit_weight: WEIGHT_ONE,
            roulette_gain: 0,
            scatters: 3,
            end_gate: 0,
            detector: None,
        }
    }
}

/// Why an assignment could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine refused the job or failed.
    #[error("engine: {0}")]
    Engine(#[from] TransportError),
    /// The assignment was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Sealing the result for the manager failed.
    #[error("sealing the result: {0}")]
    Seal(String),
    /// The photon range is empty or overflows.
    #[error("bad photon range: start {start}, count {count}")]
    BadRange { start: u64, count: u64 },
}

/// A finished assignment: what is committed and what is kept for proofs.
#[derive(Debug, Clone)]
pub struct Completed {
    pub tally: Tally,
    pub merkle_root: Digest,
    /// Subtree root of each block, in order.
    pub block_roots: Vec<Digest>,
    pub block_log2: u32,
    pub stats: CostStats,
}

/// Block size for a job: large enough that the per-block tally (allocated and merged each
/// block) costs little next to the photons, small enough to bound memory and proof cost.
pub fn block_log2_for(tally_cells: u64) -> u32 {
    let want = (tally_cells / 4).max(1);
    let log2 = 64 - want.saturating_sub(1).leading_zeros();
    log2.clamp(MIN_BLOCK_LOG2, MAX_BLOCK_LOG2)
}

/// Simulates leaves `[first, first + n)` of an assignment starting at photon `start`,
/// honestly or (test double) partly fabricated. Returns the tally and records in order.
pub fn simulate_leaves(
    engine: &Engine<'_>,
    photons: std::ops::Range<u64>,
    threads: usize,
    fabricate: Option<Fabricate>,
) -> Result<(Tally, Vec<PhotonRecord>), TransportError> {
    let Some(fab) = fabricate.filter(|f| f.per_million > 0) else {
        return engine.simulate_with_records(photons, threads, None);
    };
    // Runs of honest photons are simulated; fabricated ones get made-up records and add
    // their made-up weight to the tally (escaped through -z).
    let mut tally: Option<Tally> = None;
    let mut records = Vec::new();
    let mut run_start = photons.start;
    let mut i = photons.start;
    let flush = |from: u64, to: u64, tally: &mut Option<Tally>, records: &mut Vec<PhotonRecord>| {
        if from >= to {
            return Ok::<(), TransportError>(());
        }
        let (t, r) = engine.simulate_with_records(from..to, threads, None)?;
        match tally {
            Some(acc) => acc.merge(&t)?,
            None => *tally = Some(t),
        }
        records.extend(r);
        Ok(())
    };
    let mut fake = Tally::default();
    while i < photons.end {
        if fab.fabricates(i) {
            flush(run_start, i, &mut tally, &mut records)?;
            let rec = Fabricate::record(i);
            fake.photons += 1;
            fake.launched += rec.launched;
            fake.escaped[4] += rec.exit_weight;
            records.push(rec);
            run_start = i + 1;
        }
        i += 1;
    }
    flush(run_start, photons.end, &mut tally, &mut records)?;
    let mut tally = match tally {
        Some(t) => t,
        // Everything fabricated: still one (empty) engine run for the tally's shape.
        None => engine.simulate(photons.start..photons.start, threads, None)?,
    };
    fake.deposit = vec![0; tally.deposit.len()];
    tally.merge(&fake)?;
    Ok((tally, records))
}

/// Leaf hashes of records, in order.
pub fn leaf_hashes(records: &[PhotonRecord]) -> Vec<Digest> {
    records
        .iter()
        .map(|r| merkle::leaf_hash(&r.to_bytes()))
        .collect()
}

/// Runs photons `[start, start + count)` in aligned blocks of `2^block_log2`, checking
/// `cancel` between blocks.
pub fn run(
    engine: &Engine<'_>,
    start: u64,
    count: u64,
    block_log2: u32,
    threads: usize,
    fabricate: Option<Fabricate>,
    cancel: &AtomicBool,
) -> Result<Completed, RunError> {
    if count == 0 || start.checked_add(count).is_none() {
        return Err(RunError::BadRange { start, count });
    }
    let began = Instant::now();
    let block = 1u64 << block_log2.min(MAX_BLOCK_LOG2);
    let mut tally: Option<Tally> = None;
    let mut block_roots = Vec::new();
    let mut scatters = 0u64;
    let mut offset = 0u64;
    while offset < count {
        if cancel.load(Ordering::Relaxed) {
            return Err(RunError::Cancelled);
        }
        let n = block.min(count - offset);
        let from = start + offset;
        let (t, records) = simulate_leaves(engine, from..from + n, threads, fabricate)?;
        scatters += records.iter().map(|r| u64::from(r.scatters)).sum::<u64>();
        block_roots.push(merkle::root_of(&leaf_hashes(&records)));
        match tally.as_mut() {
            Some(acc) => acc.merge(&t)?,
            None => tally = Some(t),
        }
        offset += n;
    }
    let tally = tally.ok_or(RunError::BadRange { start, count })?;
    Ok(Completed {
        merkle_root: merkle::root_of(&block_roots),
        tally,
        block_roots,
        block_log2: block_log2.min(MAX_BLOCK_LOG2),
        stats: CostStats {
            elapsed_ms: began.elapsed().as_millis() as u64,
            // The engine does not count voxel steps per photon; scatters are the cost proxy.
            voxel_steps: 0,
            scatters,
        },
    })
}
