//! The engine's error type: everything `simulate`, `Tally::merge` and friends can refuse.

use thiserror::Error;

/// Why a transport run or a tally operation could not proceed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The job breaks an invariant the engine relies on (the parser should have caught it).
    #[error("invalid job: field `{field}`: {reason}")]
    InvalidJob {
        /// The `Job` field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `threads` was 0.
    #[error("thread count must be at least 1")]
    ZeroThreads,
    /// The tally (voxels x gates x 8 bytes) does not fit in memory or in `usize`.
    #[error("tally of {bytes} bytes cannot be allocated ({reason})")]
    TallyTooLarge {
        /// Bytes the tally would need (saturated at `u64::MAX`).
        bytes: u64,
        /// Overflow or allocation failure.
        reason: &'static str,
    },
    /// Two tallies being merged were not produced for the same grid and gate count.
    #[error("tallies do not match: {what}")]
    MergeMismatch {
        /// Which dimension differs.
        what: &'static str,
    },
    /// A worker thread died (a bug: the photon loop has no panicking path by design).
    #[error("a transport worker thread failed")]
    WorkerFailed,
}
