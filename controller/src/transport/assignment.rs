//! Running one assignment on the CPU engine, in batches, with its commitments.
//!
//! Leaf `i` of an assignment is photon `start + i`. The assignment runs in batches of
//! `2^batch_log2` photons (one engine run each: only one batch's records exist at a time, and
//! each batch's tally is merged exactly into the running tally). Leaf hashes stream into
//! aligned blocks of `2^block_log2` leaves, whose subtree roots are kept. Because blocks are
//! aligned powers of two, the RFC 6962 tree over all leaves equals the tree over the block
//! roots, so the root costs nothing extra, and a proof inside a block needs only that
//! block's photons re-simulated (see `proofs`). Batches are sized for the engine (tally
//! allocation and merge per run), blocks for proofs (few photons to re-simulate per sample,
//! a bounded number of roots kept).
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

/// Smallest batch of one engine run: each run ends with threads idling on the last photons
/// and starts with thread spawns, so runs should be long; cancellation is checked between
/// runs, so they should not be too long either.
pub const MIN_BATCH_LOG2: u32 = 14;
/// Largest batch: bounds the records held at once (2^16 x 64 bytes = 4 MiB).
pub const MAX_BATCH_LOG2: u32 = 16;
/// Smallest proof block: a sample re-simulates at least this many photons (2^4).
pub const MIN_BLOCK_LOG2: u32 = 4;
/// Block roots kept per assignment at most (2^16 x 32 bytes = 2 MiB).
pub const MAX_BLOCK_ROOTS_LOG2: u32 = 16;
/// Largest block (an assignment is at most 2^40 photons).
pub const MAX_BLOCK_LOG2: u32 = 40;

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

/// Batch size for a job. Each batch costs one engine run, which allocates, zeroes and then
/// merges a whole tally (`tally_cells` counters), so batches must hold enough photons to
/// hide that: `cells / 16` photons keeps it small for photons of a microsecond or more.
pub fn batch_log2_for(tally_cells: u64) -> u32 {
    ceil_log2(tally_cells / 16).clamp(MIN_BATCH_LOG2, MAX_BATCH_LOG2)
}

/// Proof block size for an assignment of `count` photons: as small as possible (a sample
/// re-simulates one block) while keeping at most 2^16 block roots.
pub fn block_log2_for(count: u64) -> u32 {
    ceil_log2(count)
        .saturating_sub(MAX_BLOCK_ROOTS_LOG2)
        .clamp(MIN_BLOCK_LOG2, MAX_BLOCK_LOG2)
}

fn ceil_log2(n: u64) -> u32 {
    64 - n.max(1).saturating_sub(1).leading_zeros()
}

/// Records of photons `photons`, each re-simulated alone (no tally), on `threads` threads:
/// what a proof needs to rebuild a block's leaves, at a cost independent of the tally size.
pub fn records_only(
    engine: &Engine<'_>,
    photons: std::ops::Range<u64>,
    threads: usize,
    fabricate: Option<Fabricate>,
) -> Vec<PhotonRecord> {
    let fab = fabricate.filter(|f| f.per_million > 0);
    let one = |i: u64| match fab {
        Some(f) if f.fabricates(i) => Fabricate::record(i),
        _ => engine.simulate_photon(i),
    };
    let n = photons.end.saturating_sub(photons.start);
    let threads = (threads.max(1) as u64).min(n.max(1));
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let from = photons.start + t * per;
                let to = (from + per).min(photons.end);
                s.spawn(move || (from..to).map(one).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::with_capacity(n as usize);
        for p in parts {
            // A panicking worker would be an engine bug; its records are simply missing and
            // the proof then fails to match rather than taking the rig down.
            if let Ok(v) = p.join() {
                all.extend(v);
            }
        }
        all
    })
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

/// Runs photons `[start, start + count)` in batches of `2^batch_log2`, keeping the roots of
/// blocks of `2^block_log2` leaves, and checking `cancel` between batches.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &Engine<'_>,
    start: u64,
    count: u64,
    block_log2: u32,
    batch_log2: u32,
    threads: usize,
    fabricate: Option<Fabricate>,
    cancel: &AtomicBool,
) -> Result<Completed, RunError> {
    if count == 0 || start.checked_add(count).is_none() {
        return Err(RunError::BadRange { start, count });
    }
    let began = Instant::now();
    let block_log2 = block_log2.min(MAX_BLOCK_LOG2);
    let block = 1u64 << block_log2;
    let batch = 1u64 << batch_log2.min(MAX_BATCH_LOG2);
    let mut tally: Option<Tally> = None;
    let mut block_roots = Vec::new();
    let mut current = merkle::Builder::new();
    let mut scatters = 0u64;
    let mut offset = 0u64;
    while offset < count {
        if cancel.load(Ordering::Relaxed) {
            return Err(RunError::Cancelled);
        }
        let n = batch.min(count - offset);
        let from = start + offset;
        let (t, records) = simulate_leaves(engine, from..from + n, threads, fabricate)?;
        for r in &records {
            scatters += u64::from(r.scatters);
            current.push(merkle::leaf_hash(&r.to_bytes()));
            if current.len() == block {
                block_roots.push(current.root());
                current = merkle::Builder::new();
            }
        }
        match tally.as_mut() {
            Some(acc) => acc.merge(&t)?,
            None => tally = Some(t),
        }
        offset += n;
    }
    if !current.is_empty() {
        block_roots.push(current.root());
    }
    let tally = tally.ok_or(RunError::BadRange { start, count })?;
    Ok(Completed {
        merkle_root: merkle::root_of(&block_roots),
        tally,
        block_roots,
        block_log2,
        stats: CostStats {
            elapsed_ms: began.elapsed().as_millis() as u64,
            // The engine does not count voxel steps per photon; scatters are the cost proxy.
            voxel_steps: 0,
            scatters,
        },
    })
}
