//! Running one assignment on a device, in batches, with its commitments.
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
//! Heavy work: everything here runs on the device's worker thread, never on the async runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::{PhotonRecord, TransportError};
use compushare_protocol::merkle;
use compushare_protocol::msg::CostStats;
use compushare_protocol::types::Digest;

use crate::device::{DeviceError, LoadedJob, Output};

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

/// Why an assignment could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The engine refused the job or failed.
    #[error("engine: {0}")]
    Engine(#[from] TransportError),
    /// The device failed.
    #[error("device: {0}")]
    Device(#[from] DeviceError),
    /// The assignment was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Sealing the result into its vault slot failed.
    #[error("sealing the result: {0}")]
    Seal(#[from] crate::vault::VaultError),
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

/// Leaf hashes of records, in order.
pub fn leaf_hashes(records: &[PhotonRecord]) -> Vec<Digest> {
    records
        .iter()
        .map(|r| merkle::leaf_hash(&r.to_bytes()))
        .collect()
}

/// Runs photons `[start, start + count)` of `job` in batches of `2^batch_log2`, keeping the
/// roots of blocks of `2^block_log2` leaves, checking `cancel` between batches and calling
/// `progress` with the histories done after each.
pub fn run(
    job: &mut dyn LoadedJob,
    start: u64,
    count: u64,
    block_log2: u32,
    batch_log2: u32,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
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
        let out = job.run(from..from + n, Output::TallyAndRecords)?;
        let t = out.tally.ok_or(RunError::Device(DeviceError::Unsupported(
            "a tally from this device",
        )))?;
        if out.records.len() as u64 != n {
            return Err(RunError::Device(DeviceError::Unsupported(
                "one record per history from this device",
            )));
        }
        for r in &out.records {
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
        progress(n);
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
