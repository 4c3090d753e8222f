//! Messages between an operator's admin client (`compushare farm ...`, `compushare admin ...`,
//! `compushare console RIG --via`) and a running management node, port 7733.
//!
//! The same Noise channel as rigs and clients: the node learns the operator's static key from
//! the handshake and serves the session only when that key is an operator's (others get the
//! frozen `Refused`, variant 0 as everywhere). Every request after `Hello` is authorised on its
//! own against the operator's scope (the whole node, or some farms) and written to the node's
//! audit table, allowed or not. Requests are answered one at a time, in order, each with
//! exactly one reply (a page of a list says whether more follows).

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use super::{ConsoleReply, JobState, Refusal};
use crate::limits::{
    AUDIT_PER_PAGE, CONSOLE_LINE, FARMS_PER_PAGE, JOBS_PER_PAGE, MAX_DEVICES, REASON_LEN,
    RIGS_PER_PAGE,
};
use crate::sheet::{FarmKey, SheetSettings};
use crate::types::{Amount, DeviceStatus, Firmware, JobId, Name, PublicKey, Role, TrustLevel};

/// The constant in an admin `Hello` that tells it from a client's.
pub const ADMIN_DOOR: [u8; 8] = *b"CSADMIN1";

/// Everything an operator says to a manager. The first message is always `Hello`.
///
/// Variant order is part of the wire format: append, never reorder.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum AdminToManager {
    /// First message; its first field is the protocol version. `door` is [`ADMIN_DOOR`]: a
    /// client's `Hello` is otherwise the same bytes, and the node routes by the first message.
    Hello { version: u16, door: [u8; 8] },
    /// Creates a farm (node operators): answered with `FarmCreated` and its enrolment key.
    FarmCreate { name: Name },
    /// The farms this operator may see.
    Farms,
    /// A farm's sheet: answered with `Sheet`.
    SheetGet { farm: Name },
    /// Replaces a farm's sheet; the new version goes to every enrolled rig that is online.
    SheetSet { farm: Name, settings: SheetSettings },
    /// Sets (or with `None` removes) one rig's override of its farm's sheet.
    OverrideSet {
        farm: Name,
        rig: PublicKey,
        settings: Option<SheetSettings>,
    },
    /// Rigs, `RIGS_PER_PAGE` at a time, in key order after `after` (of one farm, or all the
    /// operator may see).
    Rigs {
        farm: Option<Name>,
        after: Option<PublicKey>,
    },
    /// Credits a client account (node operators).
    Grant { account: PublicKey, amount: Amount },
    /// Pins a device's role on a connected rig (`None`: every device).
    Role {
        rig: PublicKey,
        device: Option<u8>,
        role: Role,
    },
    /// One console line relayed to a connected rig through its manager session.
    Console {
        rig: PublicKey,
        line: String<CONSOLE_LINE>,
    },
    /// Allows a key to administer the node (`farm: None`) or one farm (node operators).
    OperatorAdd { key: PublicKey, farm: Option<Name> },
    /// Withdraws a key's operator rights (node operators).
    OperatorRemove { key: PublicKey },
    /// The audit table, `AUDIT_PER_PAGE` records at a time from sequence number `from`
    /// (node operators).
    Audit { from: u64 },
    /// Client jobs, `JOBS_PER_PAGE` at a time in id order after `after`, of one kind and one
    /// client if given (node operators: a farm operator sees no client jobs).
    Jobs {
        state: Option<JobFilter>,
        client: Option<PublicKey>,
        after: Option<JobId>,
    },
    /// Stops a running job: no more work is handed out, work out with rigs is cancelled (and
    /// not paid), verified work stays paid, the rest of the escrow goes back to the client
    /// (node operators). Answered with `JobCancelled` once it is durable.
    JobCancel { job: JobId },
    /// The ledger's totals, head and verification (node operators).
    Ledger,
    /// The node's market settings (node operators).
    Settings,
    /// Changes market settings (node operators); unset fields stay. Jobs already accepted
    /// keep the fee and price they were accepted with. Answered with the new `Settings`.
    SettingsSet(SettingsChange),
}

/// Everything a manager says to an operator.
///
/// Variant 0 (`Refused`) and the layout of [`Refusal`] are frozen across protocol versions.
/// Append, never reorder.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ManagerToAdmin {
    /// The session is refused (unknown version, not an operator's key); the manager closes it.
    Refused(Refusal),
    /// The operator is accepted, with what it may act on.
    Welcome { version: u16, scope: Scope },
    /// A request failed or was not allowed; the session stays open.
    Error {
        code: AdminError,
        message: String<REASON_LEN>,
    },
    /// A farm was created; `key` is its enrolment key (rig.conf's `FARM_KEY`), shown once:
    /// the node keeps only its hash.
    FarmCreated { farm: Name, key: FarmKey },
    /// The farms the operator may see.
    Farms {
        farms: Vec<FarmSummary, FARMS_PER_PAGE>,
    },
    /// A farm's sheet.
    Sheet {
        farm: Name,
        version: u64,
        settings: SheetSettings,
        /// Rigs with an override.
        overrides: u32,
    },
    /// A sheet or override was stored as `version` and sent to `pushed` online rigs.
    SheetStored {
        farm: Name,
        version: u64,
        pushed: u32,
    },
    /// A page of rigs.
    Rigs {
        rigs: Vec<RigSummary, RIGS_PER_PAGE>,
        /// More rigs follow the last one of this page.
        more: bool,
    },
    /// The account's balance after a grant, micro-credits.
    Granted { account: PublicKey, balance: i64 },
    /// A request that changes something was done; the text says what.
    Done { message: String<REASON_LEN> },
    /// A rig's answer to a relayed console line.
    ConsoleReply(ConsoleReply),
    /// A page of the audit table.
    Audit {
        records: Vec<AuditRecord, AUDIT_PER_PAGE>,
        /// Sequence number of the next record (`Audit { from: next }` continues).
        next: u64,
        more: bool,
    },
    /// A page of jobs.
    Jobs {
        jobs: Vec<JobSummary, JOBS_PER_PAGE>,
        /// More jobs follow the last one of this page.
        more: bool,
    },
    /// A job was cancelled (durably): what its escrow came to.
    JobCancelled {
        job: JobId,
        /// Paid to rigs for verified work, micro-credits.
        paid: Amount,
        /// The node's fee on that work.
        fee: Amount,
        /// Returned to the client.
        refund: Amount,
    },
    /// The ledger's summary.
    Ledger(LedgerReport),
    /// The node's market settings now.
    Settings(NodeSettings),
}

/// What an operator may act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Scope {
    /// Everything on the node: farms, money, operators, every rig.
    Node,
    /// One farm's sheet, rigs and consoles.
    Farm(Name),
}

/// Why an admin request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum AdminError {
    /// The operator's scope does not cover this request.
    NotAllowed,
    /// No farm of this name.
    UnknownFarm,
    /// A farm of this name exists.
    FarmExists,
    /// No rig of this key (in the operator's scope).
    UnknownRig,
    /// The rig is not connected now.
    RigOffline,
    /// The rig did not answer in time.
    Timeout,
    /// The sheet cannot be applied by any rig (the message says why).
    BadSheet,
    /// The request's values are out of range (the message names the field).
    BadRequest,
    /// A message arrived out of order.
    Protocol,
    /// The node failed internally; retry later.
    Internal,
    /// No job of this id.
    UnknownJob,
    /// The job has ended (done or cancelled): nothing to cancel.
    JobEnded,
}

/// Which jobs a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum JobFilter {
    /// Accepted and not ended (queued, running or verifying).
    Open,
    /// Every photon verified, the result ready.
    Done,
    /// Cancelled by an operator.
    Cancelled,
}

/// A job as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct JobSummary {
    pub job: JobId,
    pub client: PublicKey,
    pub state: JobState,
    pub photons_done: u64,
    pub photons_total: u64,
    /// Left in the job's escrow now, micro-credits (0 once it ended).
    pub escrow: Amount,
    /// Paid to rigs so far.
    pub spent: Amount,
    /// The job's own terms, fixed when it was accepted.
    pub price_per_history: Amount,
    pub fee_bp: u64,
    pub submitted_unix_s: u64,
}

/// The ledger in figures (micro-credits; sums saturate at `u64::MAX`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct LedgerReport {
    /// Entries in the chain; the head is entry `entries - 1`.
    pub entries: u64,
    /// Hash of the head entry (zeros for an empty ledger).
    pub head: [u8; 32],
    /// Whether `ledger verify` passes: the chain, balances and paid index agree. When it does
    /// not, `fault` names the first problem and the totals below are zero.
    pub verified: bool,
    pub fault: String<REASON_LEN>,
    /// Granted by operators, ever.
    pub granted: u64,
    /// Clients' spendable balances now.
    pub clients: u64,
    /// Held in job escrows now.
    pub escrow: u64,
    /// Workers' pay not yet spendable, and spendable.
    pub pending: u64,
    pub spendable: u64,
    /// The node's fees taken, ever.
    pub fees: u64,
    /// Paid to workers ever (before forfeits), refunded to clients, forfeited by caught rigs.
    pub paid: u64,
    pub refunded: u64,
    pub forfeited: u64,
}

/// The market settings an operator may change on a running node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct NodeSettings {
    /// The node's fee on the work paid, basis points.
    pub fee_bp: u32,
    /// What the node pays per cost unit, micro-credits.
    pub price_per_unit: Amount,
    /// What one credit is worth, millisatoshi.
    pub credit_msat: u64,
}

/// A change of [`NodeSettings`]: `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct SettingsChange {
    pub fee_bp: Option<u32>,
    pub price_per_unit: Option<Amount>,
    pub credit_msat: Option<u64>,
}

/// A farm in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct FarmSummary {
    pub name: Name,
    pub version: u64,
    /// Rigs enrolled, and of those connected now.
    pub rigs: u32,
    pub online: u32,
}

/// Where a rig stands with its flight sheet.
// No allocator in the core: the reason lives inline, bounded by its capacity.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum SheetState {
    /// Not in a farm.
    None,
    /// Sent, not answered yet.
    Pushed { version: u64 },
    /// Applied.
    Applied { version: u64 },
    /// Refused (the rig keeps its previous sheet).
    Refused {
        version: u64,
        reason: String<REASON_LEN>,
    },
}

/// A rig as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct RigSummary {
    pub key: PublicKey,
    pub name: Name,
    pub farm: Option<Name>,
    pub online: bool,
    /// Unix time of the rig's last message (or of enrolment).
    pub last_seen_unix_s: u64,
    pub firmware: Firmware,
    pub trust: TrustLevel,
    /// Paid to the rig's payout account, micro-credits.
    pub earned: Amount,
    pub sheet: SheetState,
    /// Roles, rates and temperatures from the last heartbeat.
    pub devices: Vec<DeviceStatus, MAX_DEVICES>,
}

/// One admin request as the audit table keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_unix_s: u64,
    pub operator: PublicKey,
    /// The request, summarised (`sheet-set farm-a`, `grant 1a2b.. 100`).
    pub request: String<REASON_LEN>,
    pub allowed: bool,
    /// What came of it (`ok`, or the error).
    pub outcome: String<REASON_LEN>,
}
