//! Blocking work of the rig's transport side: running an assignment on a device, committing
//! it and sealing its result into its vault slot. Runs on the device's worker thread, never
//! on the async runtime.

use std::sync::atomic::AtomicBool;

use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally_ops::tally_cells;
use compushare_protocol::chunk::content_address;
use compushare_protocol::msg::{Assign, ResultCommit};
use compushare_protocol::types::PublicKey;

use super::assignment::{self, batch_log2_for, block_log2_for, Completed, RunError};
use super::proofs::Commitments;
use crate::device::Device;
use crate::vault::SlotBuf;

/// A finished assignment, sealed into its slot.
pub struct Finished {
    pub commit: ResultCommit,
    pub commitments: Commitments,
}

/// The job an assignment runs: the fetched geometry with the assignment's seed and photon
/// count applied.
pub fn assignment_job(a: &Assign, job: &Job) -> Job {
    let mut job = job.clone();
    job.seed = a.seed;
    job.photons = a.photons.count;
    job
}

/// Simulates and commits one assignment on `device`, and seals its tally into `slot` for
/// `manager_key` (on the device's worker thread). `progress` hears the histories done.
#[allow(clippy::too_many_arguments)]
pub fn run_assignment(
    a: &Assign,
    job: &Job,
    device: &dyn Device,
    block_log2: Option<u32>,
    manager_key: &PublicKey,
    cancel: &AtomicBool,
    slot: &mut SlotBuf,
    progress: &mut dyn FnMut(u64),
) -> Result<Finished, RunError> {
    let mut loaded = device.load(job)?;
    let block_log2 = block_log2.unwrap_or_else(|| block_log2_for(a.photons.count));
    let batch_log2 = batch_log2_for(tally_cells(job).unwrap_or(0));
    let Completed {
        tally,
        merkle_root,
        block_roots,
        block_log2,
        stats,
    } = assignment::run(
        loaded.as_mut(),
        a.photons.start,
        a.photons.count,
        block_log2,
        batch_log2,
        cancel,
        progress,
    )?;
    drop(loaded);
    let sealed_len = slot.seal(&tally, manager_key)?;
    let commit = ResultCommit {
        assignment: a.assignment,
        histories: a.photons.count,
        tally: tally.digest(),
        merkle_root,
        sealed: content_address(slot.sealed()),
        sealed_len: u32::try_from(sealed_len).unwrap_or(u32::MAX),
        stats,
    };
    Ok(Finished {
        commit,
        commitments: Commitments {
            start: a.photons.start,
            count: a.photons.count,
            block_log2,
            block_roots,
        },
    })
}
