//! Jobs, assignments and results as the manager stores them.
//!
//! These are plain data; the rules that change them live with the transactions in
//! [`crate::store`] (and, where money moves, [`crate::ledger`]).

use compushare_protocol::types::{
    Amount, AssignmentId, Digest, JobId, Mode, PhotonRange, PublicKey,
};
use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Accepted and escrowed; photons are being assigned and verified.
    Running,
    /// Every photon verified and merged; escrow settled.
    Done,
    /// Ended before completion (operator or client); escrow settled.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended and its escrow has been settled (fee taken, rest refunded).
    pub fn is_closed(self) -> bool {
        !matches!(self, JobState::Running)
    }
}

/// A client's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    /// The client's identity; pays, and receives the result sealed to this key.
    pub client: PublicKey,
    /// SHA-256 of the MCX JSON input (its key in the inputs table).
    pub input: Digest,
    pub input_len: u32,
    /// Photons to simulate (overrides the input's `Photons`).
    pub photons: u64,
    /// RNG seed of the whole job (overrides the input's `RNGSeed`).
    pub seed: u64,
    pub mode: Mode,
    /// The most the client agreed to pay for the whole job, fee included.
    pub max_price: Amount,
    /// Calibrated machine-independent cost per history, milli cost units.
    pub cost_per_history_milli: u64,
    /// Announced price per cost unit when the job was accepted, micro-credits.
    pub price_per_unit: Amount,
    /// Moved from the client's balance into escrow at acceptance (max cost + max fee).
    pub escrowed: Amount,
    /// Paid to workers so far.
    pub paid: Amount,
    /// Photons whose results are verified (sum of verified assignment ranges).
    pub photons_verified: u64,
    pub state: JobState,
    pub created_unix_s: u64,
    pub finished_unix_s: Option<u64>,
    /// Digest of the merged tally once done.
    pub result: Option<Digest>,
    /// The manager's fee on the work paid, basis points, as announced when the job was
    /// accepted (a later change of the manager's config does not reach accepted jobs).
    pub fee_bp: u64,
    /// Share of the maximum cost escrowed for duplicate and arbitration runs, per mille, as
    /// when the job was accepted.
    pub check_allowance_permille: u64,
}

impl JobRecord {
    /// The job's price per history, fixed when it was accepted.
    pub fn price_per_history(&self) -> u64 {
        crate::costing::price_per_history(self.cost_per_history_milli, self.price_per_unit)
    }

    /// Photons not yet verified.
    pub fn photons_left(&self) -> u64 {
        self.photons.saturating_sub(self.photons_verified)
    }
}

/// Where an assignment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignmentState {
    /// Sent to the rig; not yet accepted.
    Issued,
    /// The rig accepted and is running it.
    Accepted,
    /// The rig committed its result digests; the sealed result may still be uploading.
    Committed,
    /// The sealed result is held; verification in progress.
    Received,
    /// Verified; counts toward the job and the rig's record.
    Verified,
    /// Failed verification; its work is excluded.
    Failed,
    /// The rig rejected it, missed the deadline, or it was discarded: its range is reassigned.
    Abandoned,
}

/// How an assignment's result was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verification {
    /// Not checked yet.
    Pending,
    /// Sample check of `k` histories passed.
    SamplePassed { k: u32 },
    /// Matched a duplicate run bit for bit.
    DuplicateMatched { other: AssignmentId },
    /// Decided by a third run on another trusted rig.
    Arbitrated { winner: bool },
    /// Failed: a sample did not re-simulate, a proof did not verify, or a duplicate differed.
    Failed,
    /// Trusted rig, not checked in this window (covered by the decaying check rate).
    Unchecked,
}

/// What a rig committed for an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub histories: u64,
    /// `Tally::digest()` of the assignment's tally.
    pub tally: Digest,
    /// Merkle root over the per-history records.
    pub merkle_root: Digest,
    /// SHA-256 of the sealed tally payload.
    pub sealed: Digest,
    pub sealed_len: u32,
    pub committed_unix_s: u64,
}

/// A photon range of a job given to one device of one rig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    pub id: AssignmentId,
    pub job: JobId,
    pub rig: PublicKey,
    /// Where the rig's pay for it goes (the payout key it announced when it was issued).
    pub payout_to: PublicKey,
    pub device: u8,
    pub photons: PhotonRange,
    pub seed: u64,
    pub issued_unix_s: u64,
    pub deadline_unix_s: u64,
    /// What the rig is paid once verified.
    pub payout: Amount,
    pub state: AssignmentState,
    pub commit: Option<CommitInfo>,
    pub verification: Verification,
    /// Set when this assignment re-runs another's range as a duplicate or arbitration.
    pub duplicate_of: Option<AssignmentId>,
    /// Whether the payout was posted to the ledger (the ledger's own index is authoritative).
    pub paid: bool,
}
