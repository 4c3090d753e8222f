//! Job intake: what a submitted job becomes before the market takes it (validation against
//! this node's limits, parsing, calibration of its machine-independent cost) and the parsed
//! job the market and its heavy tasks share ([`JobSpec`]).
//!
//! Cost of a history: the `costing` module's calibration batch on the manager's own engine,
//! the mean of (1 + scattering events) per photon, in thousandths. It depends only on the
//! job's physics, never on the machine, so every rig is paid the same for the same work.

use std::sync::Arc;

use compushare_kernels::transport::input::bundle::JobBundle;
use compushare_kernels::transport::input::{bound, parse_bundle, InputError, ParseOptions};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally_ops::tally_cells;
use compushare_kernels::transport::TransportError;
use compushare_protocol::chunk::content_address;
use compushare_protocol::types::Digest;

/// A job as the workers see it: the parsed input (seed applied) and its bytes.
#[derive(Debug)]
pub struct JobSpec {
    pub job: Job,
    pub input: Arc<Vec<u8>>,
    pub content: Digest,
    pub cells: usize,
}

/// What this node accepts of a job and how it prices it (from its stored settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Most memory one job may take, bytes (`Config::max_job_bytes`).
    pub max_job_bytes: u64,
    /// Photons of the calibration batch (`Config::calibration_photons`).
    pub calibration_photons: u64,
    /// Wall-clock bound of the calibration batch (`Config::calibration_max_ms`).
    pub calibration_time: std::time::Duration,
}

impl JobLimits {
    /// The limits a node's settings give.
    pub fn of(config: &crate::Config) -> JobLimits {
        JobLimits {
            max_job_bytes: config.max_job_bytes,
            calibration_photons: config.calibration_photons,
            calibration_time: std::time::Duration::from_millis(config.calibration_max_ms),
        }
    }
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits::of(&crate::Config::default())
    }
}

/// Why a submitted job was refused before pricing. Every message speaks of the client's own
/// job (JSON fields, its sizes, this node's limits), never of a file on the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The input does not parse (the message names the field).
    #[error("{0}")]
    Input(#[from] InputError),
    /// The job's upper bound of memory, from its JSON alone, is over this node's limit.
    #[error(
        "`Domain.Dim` {dim:?} with {gates} time gate(s) needs up to {needed} bytes, over this \
         node's limit of {limit} bytes per job"
    )]
    OverLimit {
        /// Grid size asked for.
        dim: [u64; 3],
        /// Time gates asked for.
        gates: u64,
        /// The bound.
        needed: u128,
        /// `max_job_bytes`.
        limit: u64,
    },
    /// The engine refuses the job (too large, inconsistent).
    #[error("{0}")]
    Engine(#[from] TransportError),
    /// The job's tally size overflows.
    #[error("the job's tally is too large")]
    TooLarge,
    /// The calibration batch failed.
    #[error("{0}")]
    Costing(#[from] crate::costing::CostingError),
}

/// A validated, priced job.
#[derive(Debug)]
pub struct PreparedJob {
    pub spec: JobSpec,
    /// Machine-independent cost of one history, thousandths of a cost unit.
    pub cost_milli: u64,
}

/// Prepares a job bundle as a client sent it (photons and seed overridden as the submission
/// says): an upper bound of its memory from the JSON alone is checked against the node's
/// limit before any grid is built, then it is parsed (its volume only from the bundle) and
/// its cost calibrated within the node's calibration bounds.
pub fn prepare_job(
    bundle: Vec<u8>,
    photons: u64,
    seed: Option<u64>,
    limits: &JobLimits,
) -> Result<PreparedJob, PrepareError> {
    let opts = ParseOptions {
        photons: Some(photons),
        max_job_bytes: limits.max_job_bytes,
    };
    let json = JobBundle::decode(&bundle).map_err(InputError::from)?.json;
    let b = bound(json, &opts)?;
    if b.memory_bytes > u128::from(limits.max_job_bytes) {
        return Err(PrepareError::OverLimit {
            dim: b.dim,
            gates: b.gates,
            needed: b.memory_bytes,
            limit: limits.max_job_bytes,
        });
    }
    let mut job = parse_bundle(&bundle, &opts)?;
    if let Some(s) = seed {
        job.seed = s;
    }
    let cells = tally_cells(&job)
        .and_then(|c| usize::try_from(c).ok())
        .ok_or(PrepareError::TooLarge)?;
    // The costing module's deterministic batch (fixed seed, bounded time): the price does not
    // depend on the client's seed or on this machine.
    let cal = crate::costing::calibrate(&job, limits.calibration_photons, limits.calibration_time)?;
    let cost_milli = cal.cost_per_history_milli.max(1);
    let content = content_address(&bundle);
    Ok(PreparedJob {
        spec: JobSpec {
            job,
            input: Arc::new(bundle),
            content,
            cells,
        },
        cost_milli,
    })
}
