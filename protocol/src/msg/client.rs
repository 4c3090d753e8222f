//! Messages between a client (who buys simulations) and a management node.

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use super::{PublicRecord, Refusal};
use crate::chunk::Chunk;
use crate::limits::{MAX_DEVICES, REASON_LEN};
use crate::types::{Amount, Digest, JobId, Mode, PublicKey};

/// Everything a client says to a manager. The first message of a session is always `Hello`.
// No allocator in the core: chunk data and names live inline, bounded by their capacities.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum ClientToManager {
    /// First message; its first field is the protocol version.
    Hello { version: u16 },
    /// A new job; its input (MCX JSON) follows as `JobData` chunks named `input`.
    SubmitJob(SubmitJob),
    /// A piece of a job's input.
    JobData(Chunk),
    /// Asks for a job's state.
    JobStatus { job: JobId },
    /// Asks for a finished job's result, sealed for this client.
    FetchResult { job: JobId },
    /// A star rating (1-5) of a rig that worked on one of this client's jobs.
    Rate {
        job: JobId,
        rig: PublicKey,
        stars: u8,
    },
    /// Asks for a key's public record (`compushare status --rig`): answered with `Record`
    /// or `UnknownRig`.
    RigRecord { rig: PublicKey },
}

/// A job submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct SubmitJob {
    pub input: Digest,
    pub input_len: u32,
    pub photons: u64,
    /// Overrides the input's seed when present.
    pub seed: Option<u64>,
    pub mode: Mode,
    /// The most the client will pay for the whole job.
    pub max_price: Amount,
}

/// Everything a manager says to a client.
///
/// Variant 0 (`Refused`) and the layout of [`Refusal`] are frozen across protocol versions.
// No allocator in the core: chunk data and names live inline, bounded by their capacities.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum ManagerToClient {
    /// The session is refused; the manager closes it.
    Refused(Refusal),
    /// The client is accepted.
    Welcome { version: u16 },
    /// The job was priced and its maximum cost is held in escrow.
    JobAccepted {
        job: JobId,
        price_per_history: Amount,
        escrowed: Amount,
    },
    /// A job's state.
    JobStatus(JobStatus),
    /// The result is ready: `len` sealed bytes named `content` follow as `ResultChunk`s.
    ResultReady {
        job: JobId,
        content: Digest,
        len: u32,
    },
    /// A piece of a sealed result.
    ResultChunk(Chunk),
    /// A request failed; the session stays open.
    Error {
        code: ErrorCode,
        message: String<REASON_LEN>,
    },
    /// A key's public record.
    Record(PublicRecord),
    /// The manager knows no rig by this key and holds no rating of it.
    UnknownRig { rig: PublicKey },
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct JobStatus {
    pub job: JobId,
    pub state: JobState,
    pub photons_done: u64,
    pub photons_total: u64,
    /// Spent from escrow so far.
    pub spent: Amount,
    /// Rigs that returned verified work (for ratings).
    pub rigs: Vec<PublicKey, MAX_DEVICES>,
}

/// A job's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum JobState {
    Queued,
    Running,
    Verifying,
    Done,
    Failed,
    /// Stopped by the node's operator: verified work was paid, the rest of the escrow
    /// refunded; no result.
    Cancelled,
}

/// Why a client request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ErrorCode {
    /// The job input is malformed (the message names the field).
    BadJob,
    /// The account cannot cover the job's maximum cost.
    InsufficientFunds,
    /// The price exceeds the client's maximum.
    TooExpensive,
    /// No such job, or not this client's.
    UnknownJob,
    /// The result is not ready yet.
    NotReady,
    /// A message arrived out of order.
    Protocol,
    /// The manager failed internally; retry later.
    Internal,
}
