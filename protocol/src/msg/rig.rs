//! Messages a rig sends to its management node.

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use crate::chunk::Chunk;
use crate::limits::{
    CLAIMS_PER_MESSAGE, CONSOLE_REPLY, HISTORY_RECORD, MAX_DEVICES, MERKLE_DEPTH,
    PROOFS_PER_MESSAGE, REASON_LEN,
};
use crate::sheet::FarmKey;
use crate::types::{
    Amount, AssignmentId, DeviceInfo, DeviceStatus, Digest, Firmware, JobId, Name, PublicKey,
};

/// Everything a rig says to a manager. The first message of a session is always `Hello`.
///
/// Variant order is part of the wire format: append, never reorder.
// No allocator in the core: chunk data and names live inline, bounded by their capacities.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum RigToManager {
    /// First message: who the rig is and what it has. Its first field is the protocol version,
    /// readable before the rest (see `msg::peek_version`).
    Hello(RigHello),
    /// Periodic state of every device.
    Heartbeat(Heartbeat),
    /// An offer to run part of a job on one device.
    Bid(Bid),
    /// The rig took an assignment and started it.
    AssignmentAccepted { assignment: AssignmentId },
    /// The rig cannot run an assignment.
    AssignmentRejected {
        assignment: AssignmentId,
        reason: RejectReason,
    },
    /// The rig finished an assignment; the sealed result follows as `ResultChunk`s.
    ResultCommit(ResultCommit),
    /// A piece of a sealed result, named by `ResultCommit::sealed`.
    ResultChunk(Chunk),
    /// Histories the manager asked for, with proofs against the committed Merkle root.
    SampleProof(SampleProof),
    /// Asks to be paid for verified assignments.
    PaymentClaim(PaymentClaim),
    /// Answer to an operator console command.
    ConsoleReply(ConsoleReply),
    /// Asks for a payload (job geometry) by content address.
    GeometryRequest { content: Digest },
    /// A star rating (1-5) of the client whose job `assignment` belonged to; accepted only
    /// for an assignment this rig returned work on, one rating per rig and client (a second
    /// replaces the first). Answered with `ManagerToRig::Rated`.
    RateClient { assignment: AssignmentId, stars: u8 },
    /// The rig applied flight sheet `version` (and keeps it in STATE_DIR).
    SheetApplied { version: u64 },
    /// The rig cannot apply flight sheet `version` and keeps the one it had; the reason names
    /// the setting (shown to the farm's operators).
    SheetRefused {
        version: u64,
        reason: String<REASON_LEN>,
    },
}

/// The rig's introduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct RigHello {
    /// Must stay the first field: peers read it before decoding the rest.
    pub version: u16,
    pub firmware: Firmware,
    pub name: Name,
    /// Where the rig's earnings go (worker account key).
    pub payout: PublicKey,
    pub devices: Vec<DeviceInfo, MAX_DEVICES>,
    /// rig.conf's `FARM_KEY`: enrol in (or stay with) that farm and take its flight sheet.
    pub farm: Option<FarmKey>,
    /// The flight sheet version the rig holds (from STATE_DIR), if any.
    pub sheet: Option<u64>,
}

/// Periodic rig state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Heartbeat {
    pub uptime_s: u64,
    pub devices: Vec<DeviceStatus, MAX_DEVICES>,
    /// Result vault slots in use and in all.
    pub vault_used: u16,
    pub vault_slots: u16,
}

/// An offer for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Bid {
    pub job: JobId,
    pub device: u8,
    pub cores: u32,
    /// Measured for this job's cost class, histories/s.
    pub histories_per_s: u64,
    /// The lowest price per cost unit the rig accepts.
    pub min_price: Amount,
}

/// Why a rig turns an assignment down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum RejectReason {
    /// The device is already busy.
    Busy,
    /// The device does not exist or is switched off.
    NoSuchDevice,
    /// The job needs more device memory than there is.
    OutOfMemory,
    /// The job uses a feature this firmware cannot run.
    Unsupported,
    /// The price is below the rig's minimum.
    PriceTooLow,
    /// The result vault is full.
    VaultFull,
}

/// Resource use of an assignment, in machine-independent units where possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct CostStats {
    pub elapsed_ms: u64,
    pub voxel_steps: u64,
    pub scatters: u64,
}

/// A finished assignment's commitments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ResultCommit {
    pub assignment: AssignmentId,
    pub histories: u64,
    /// Digest of the canonical integer tally.
    pub tally: Digest,
    /// Merkle root over the per-history records, in photon order.
    pub merkle_root: Digest,
    /// Content address and length of the sealed result that follows.
    pub sealed: Digest,
    pub sealed_len: u32,
    pub stats: CostStats,
}

/// One history with its Merkle proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct HistoryProof {
    pub photon: u64,
    /// The engine's canonical per-history record.
    #[serde(with = "crate::bytes")]
    pub record: Vec<u8, HISTORY_RECORD>,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Digest, MERKLE_DEPTH>,
}

/// Part of the answer to a `SampleRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct SampleProof {
    pub assignment: AssignmentId,
    pub proofs: Vec<HistoryProof, PROOFS_PER_MESSAGE>,
}

/// A claim for pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct PaymentClaim {
    pub payout: PublicKey,
    pub assignments: Vec<AssignmentId, CLAIMS_PER_MESSAGE>,
}

/// Answer to a console command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ConsoleReply {
    pub request: u32,
    pub ok: bool,
    pub text: String<CONSOLE_REPLY>,
}
