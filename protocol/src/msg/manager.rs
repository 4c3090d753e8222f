//! Messages a management node sends to a rig.

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use super::{RatingOutcome, Refusal};
use crate::chunk::Chunk;
use crate::limits::{CONSOLE_LINE, SAMPLES_PER_REQUEST};
use crate::sheet::FlightSheet;
use crate::types::{Amount, AssignmentId, Digest, JobId, Name, PhotonRange, Role, TrustLevel};

/// Everything a manager says to a rig.
///
/// Variant 0 (`Refused`) and the layout of [`Refusal`] are frozen across protocol versions, so
/// that a rig of any version can read why it was turned away. Append, never reorder.
// No allocator in the core: chunk data and names live inline, bounded by their capacities.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum ManagerToRig {
    /// The session is refused (unknown version, unknown or banned rig); the manager closes it.
    Refused(Refusal),
    /// The rig is accepted.
    Welcome(Welcome),
    /// The price per cost unit the manager pays now.
    PriceAnnounce {
        price_per_unit: Amount,
        valid_for_s: u32,
    },
    /// Work for one device.
    Assign(Assign),
    /// A piece of a job's geometry, named by `Assign::geometry`.
    GeometryChunk(Chunk),
    /// Histories whose records and proofs the rig must return.
    SampleRequest {
        assignment: AssignmentId,
        photons: Vec<u64, SAMPLES_PER_REQUEST>,
    },
    /// Receipt for something the rig sent about an assignment.
    Ack {
        assignment: AssignmentId,
        status: AckStatus,
    },
    /// Operator or scheduler order for a device (`None`: every device).
    RoleCommand { device: Option<u8>, role: Role },
    /// Money credited to the rig's payout account.
    PaymentNotice {
        assignment: AssignmentId,
        amount: Amount,
        spendable: bool,
    },
    /// An operator console command.
    ConsoleCommand {
        request: u32,
        line: String<CONSOLE_LINE>,
    },
    /// Stop an assignment (reassigned elsewhere or job cancelled); its result is not wanted.
    Cancel { assignment: AssignmentId },
    /// A job open for bids: rigs answer with one `Bid` per device that wants part of it.
    Offer(Offer),
    /// What became of a `RigToManager::RateClient`.
    Rated {
        assignment: AssignmentId,
        outcome: RatingOutcome,
    },
    /// The rig's flight sheet (on Welcome when it belongs to a farm, and on every change):
    /// answered with `SheetApplied` or `SheetRefused`.
    Sheet(FlightSheet),
    /// What one credit is worth now, millisatoshi: the node's operator changed it (rigs that
    /// connect later learn it in `Welcome`). A rig that predates this variant cannot decode it
    /// and logs it; it learns the value at its next session.
    CreditValue { credit_msat: u64 },
}

/// A job open for bids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Offer {
    pub job: JobId,
    /// Machine-independent cost of one history, in thousandths of a cost unit.
    pub cost_per_history_milli: u64,
    /// What the manager pays per cost unit.
    pub price_per_unit: Amount,
    /// The job's geometry (MCX JSON), fetched with `GeometryRequest`.
    pub geometry: Digest,
    pub geometry_len: u32,
    /// Histories not yet assigned.
    pub photons_left: u64,
}

impl Offer {
    /// What one history earns, micro-credits: `ceil(cost_per_history_milli * price_per_unit /
    /// 1000)`, at least 1 (the manager's costing rule).
    pub fn price_per_history(&self) -> u64 {
        self.cost_per_history_milli
            .saturating_mul(self.price_per_unit.0)
            .div_ceil(1000)
            .max(1)
    }
}

/// The manager's acceptance of a rig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Welcome {
    /// The version the session will speak.
    pub version: u16,
    pub trust: TrustLevel,
    /// How the manager names this rig.
    pub label: Name,
    /// Seconds between heartbeats the manager expects.
    pub heartbeat_s: u16,
    /// What one credit is worth, millisatoshi (an operator setting of the node, default 1):
    /// the rig converts transport prices with it to compare them with mining revenue.
    pub credit_msat: u64,
}

/// Work for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Assign {
    pub assignment: AssignmentId,
    pub job: JobId,
    pub device: u8,
    /// Content address and length of the job's geometry (fetch with `GeometryRequest`).
    pub geometry: Digest,
    pub geometry_len: u32,
    pub seed: u64,
    pub photons: PhotonRange,
    /// Unix time by which the result must be committed.
    pub deadline_unix_s: u64,
    /// What the rig is paid once the result verifies.
    pub payout: Amount,
}

/// What became of something a rig sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum AckStatus {
    /// Received and stored; verification pending.
    Received,
    /// Verified; payment follows.
    Verified,
    /// Failed verification.
    Failed,
    /// Refers to an assignment the rig does not hold, or a duplicate.
    Unknown,
}
