//! Blocking work of the rig: running, committing and sealing an assignment, and measuring
//! transport speed. Called from `spawn_blocking`, never on the async runtime.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally_ops::tally_cells;
use compushare_kernels::transport::Engine;
use compushare_protocol::chunk::content_address;
use compushare_protocol::msg::{Assign, ResultCommit};
use compushare_protocol::secure::seal;
use compushare_protocol::types::PublicKey;

use super::assignment::{self, batch_log2_for, block_log2_for, Completed, RunError};
use super::proofs::Commitments;
use super::settings::{RigError, RigOptions};

/// A finished, sealed assignment.
pub struct Finished {
    pub commit: ResultCommit,
    pub sealed: Vec<u8>,
    pub commitments: Commitments,
    pub job: Arc<Job>,
    pub threads: usize,
}

/// Simulates, commits and seals one assignment (on a blocking thread).
pub fn run_assignment(
    a: &Assign,
    job: &Job,
    threads: usize,
    opts: &RigOptions,
    manager_key: &PublicKey,
    cancel: &AtomicBool,
) -> Result<Box<Finished>, RunError> {
    let mut job = job.clone();
    job.seed = a.seed;
    job.photons = a.photons.count;
    let job = Arc::new(job);
    let engine = Engine::new(&job)?;
    let block_log2 = opts
        .block_log2
        .unwrap_or_else(|| block_log2_for(a.photons.count));
    let batch_log2 = batch_log2_for(tally_cells(&job).unwrap_or(0));
    let Completed {
        tally,
        merkle_root,
        block_roots,
        block_log2,
        stats,
    } = assignment::run(
        &engine,
        a.photons.start,
        a.photons.count,
        block_log2,
        batch_log2,
        threads,
        opts.fabricate,
        cancel,
    )?;
    let sealed = seal::seal(manager_key, &tally.canonical_bytes())
        .map_err(|e| RunError::Seal(e.to_string()))?;
    let commit = ResultCommit {
        assignment: a.assignment,
        histories: a.photons.count,
        tally: tally.digest(),
        merkle_root,
        sealed: content_address(&sealed),
        sealed_len: u32::try_from(sealed.len()).unwrap_or(u32::MAX),
        stats,
    };
    drop(engine);
    Ok(Box::new(Finished {
        commit,
        sealed,
        commitments: Commitments {
            start: a.photons.start,
            count: a.photons.count,
            block_log2,
            block_roots,
        },
        job,
        threads,
    }))
}

/// Measured transport speed.
pub struct Rate {
    /// Histories per second per core.
    pub per_core: u64,
}

/// Measures cube60 histories/s per core.
pub fn calibrate_reference(threads: usize, photons: u64) -> Result<Rate, RigError> {
    use compushare_kernels::transport::builtin::builtin_job;
    let opts = ParseOptions {
        photons: Some(photons.max(1)),
        ..ParseOptions::default()
    };
    let job = builtin_job("cube60", &opts).map_err(|e| RigError::Calibration(e.to_string()))?;
    let began = Instant::now();
    Engine::new(&job)
        .and_then(|e| e.simulate(0..photons.max(1), threads, None))
        .map_err(|e| RigError::Calibration(e.to_string()))?;
    let secs = began.elapsed().as_secs_f64().max(1e-6);
    Ok(Rate {
        per_core: ((photons.max(1) as f64 / secs) / threads as f64) as u64,
    })
}

/// Histories/s per core of `job` over its first `photons` photons (0 if it cannot run).
pub fn calibrate_job(job: &Job, photons: u64, threads: usize) -> u64 {
    let photons = photons.max(1);
    let threads = threads.max(1);
    let began = Instant::now();
    let ok = Engine::new(job).and_then(|e| e.simulate(0..photons, threads, None));
    let secs = began.elapsed().as_secs_f64().max(1e-6);
    match ok {
        Ok(_) => (photons as f64 / secs / threads as f64) as u64,
        Err(_) => 0,
    }
}

/// Physical memory in bytes from /proc/meminfo (0 where it cannot be read).
pub fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb.saturating_mul(1024))
        .unwrap_or(0)
}
