//! The double-entry, hash-chained credit ledger: accounts, entries, money operations (as
//! methods of [`WriteTx`]), settlement of worker pay, and `verify`.
//!
//! Every entry moves `amount` micro-credits from its `debit` account to its `credit` account,
//! so balances always sum to zero (the external account is the negative of everything granted).
//! Entry `n` is stored with `hash = SHA-256(prev_hash || canonical bytes of entry n)`, where the
//! canonical bytes are the entry's postcard encoding (which includes `prev_hash`); the ledger
//! head (next sequence number, last hash) is kept in the meta table. Balances are stored too,
//! for fast refusals; [`verify`] recomputes both from the entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use compushare_protocol::types::{Amount, AssignmentId, JobId, PublicKey};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::codec::{self, CodecError};
use redb::ReadableTableMetadata;

pub use crate::store::Head;
use crate::store::{tables::*, ReadTx, Result, Store, StoreError, WriteTx, META_HEAD};

/// A ledger account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Account {
    /// Outside the ledger: operator grants come from here (its balance is negative).
    External,
    /// A client's spendable balance.
    Client(PublicKey),
    /// A job's escrow: the client's money reserved for the job.
    Escrow(JobId),
    /// A worker's (rig's) earned pay that is not yet spendable.
    WorkerPending(PublicKey),
    /// A worker's spendable pay.
    WorkerSpendable(PublicKey),
    /// The manager's fees.
    Fee,
}

use compushare_protocol::hex::encode as short;

/// Why a money operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The account cannot cover the amount.
    #[error("account {account}: balance {balance} micro-credits, {needed} needed")]
    InsufficientBalance {
        /// The account debited.
        account: Account,
        /// Its balance.
        balance: i128,
        /// The amount asked.
        needed: u64,
    },
    /// The assignment was already paid (ledger entry `seq`).
    #[error("assignment {assignment} already paid (ledger entry {seq})")]
    AlreadyPaid {
        /// The assignment.
        assignment: u64,
        /// Its payment entry.
        seq: u64,
    },
    /// A ledger amount of zero (never posted: entries move something).
    #[error("zero amount for {0}")]
    ZeroAmount(&'static str),
    /// An entry of a shape the ledger never posts (a bug, surfaced as a refusal).
    #[error("{kind:?} entry: {why}")]
    BadEntry {
        /// The entry's kind.
        kind: EntryKind,
        /// What is wrong with its accounts.
        why: &'static str,
    },
    /// A ledger operation was attempted in a relaxed (not flushed) transaction.
    #[error("money cannot move in a relaxed transaction ({0})")]
    RelaxedMoney(&'static str),
    /// An amount or sequence number does not fit.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LedgerError {
    /// The variant's name (`ledger.` and its own, or the database's), for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerError::InsufficientBalance { .. } => "ledger.insufficient_balance",
            LedgerError::AlreadyPaid { .. } => "ledger.already_paid",
            LedgerError::ZeroAmount(_) => "ledger.zero_amount",
            LedgerError::BadEntry { .. } => "ledger.bad_entry",
            LedgerError::RelaxedMoney(_) => "ledger.relaxed_money",
            LedgerError::Overflow(_) => "ledger.overflow",
            LedgerError::Store(e) => e.kind(),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::External => write!(f, "external"),
            Account::Client(k) => write!(f, "client:{}", short(k)),
            Account::Escrow(j) => write!(f, "escrow:job{}", j.0),
            Account::WorkerPending(k) => write!(f, "worker-pending:{}", short(k)),
            Account::WorkerSpendable(k) => write!(f, "worker-spendable:{}", short(k)),
            Account::Fee => write!(f, "fee"),
        }
    }
}

/// Why money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Operator credit: external to client.
    Grant,
    /// Client to job escrow.
    Escrow,
    /// Job escrow to worker (pending or spendable) for one verified assignment.
    Pay,
    /// Job escrow to the manager's fee account.
    Fee,
    /// Unused job escrow back to the client.
    Refund,
    /// Worker pending pay back to the job's escrow (the worker was caught).
    Forfeit,
    /// Worker pending to spendable (the rig has enough verified histories).
    Release,
}

/// One ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time_unix_s: u64,
    pub kind: EntryKind,
    /// The account the amount leaves.
    pub debit: Account,
    /// The account the amount enters.
    pub credit: Account,
    /// Micro-credits, never 0.
    pub amount: u64,
    pub job: Option<JobId>,
    pub assignment: Option<AssignmentId>,
    /// Hash of the previous entry (zeros for the first).
    pub prev_hash: [u8; 32],
}

/// An entry as stored, with its chained hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub entry: Entry,
    pub hash: [u8; 32],
}

/// Pay credited to a worker's pending account for one assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPay {
    pub job: JobId,
    pub amount: Amount,
}

/// `SHA-256(prev_hash || canonical(entry))`.
pub fn entry_hash(entry: &Entry) -> std::result::Result<[u8; 32], CodecError> {
    let bytes = codec::encode("ledger entry", entry)?;
    let mut h = Sha256::new();
    h.update(entry.prev_hash);
    h.update(&bytes);
    Ok(h.finalize().into())
}

/// Checks that an entry's accounts and references fit its kind; returns why not.
pub fn check_shape(e: &Entry) -> std::result::Result<(), &'static str> {
    use Account::*;
    if e.amount == 0 {
        return Err("zero amount");
    }
    let ok = match (e.kind, e.debit, e.credit) {
        (EntryKind::Grant, External, Client(_)) => true,
        (EntryKind::Escrow, Client(_), Escrow(j)) => e.job == Some(j),
        (EntryKind::Pay, Escrow(j), WorkerPending(_) | WorkerSpendable(_)) => {
            e.job == Some(j) && e.assignment.is_some()
        }
        (EntryKind::Fee, Escrow(j), Fee) => e.job == Some(j),
        (EntryKind::Refund, Escrow(j), Client(_)) => e.job == Some(j),
        (EntryKind::Forfeit, WorkerPending(_), Escrow(j)) => {
            e.job == Some(j) && e.assignment.is_some()
        }
        (EntryKind::Release, WorkerPending(a), WorkerSpendable(b)) => a == b,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("accounts or references do not fit the entry kind")
    }
}

/// What a settlement produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementRef {
    /// Credited on the internal ledger by entry `seq`.
    Internal { seq: u64 },
    /// Settled by an external backend (e.g. a transaction id).
    External(String),
}

/// What a settlement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementReason {
    /// [`EntryKind::Pay`] (straight from escrow) or [`EntryKind::Release`] (from pending).
    pub kind: EntryKind,
    pub job: Option<JobId>,
    pub assignment: Option<AssignmentId>,
}

/// Makes a worker's pay spendable. Runs inside the write transaction that pays or releases,
/// so what it records commits together with the rest. The node settles with
/// [`InternalCredit`]; an external backend implements this and takes its place in
/// [`WriteTx::pay_worker`] and [`WriteTx::release_pending`] (none is wired yet: the store no
/// longer carries an unused backend of its own).
pub trait Settlement: Send + Sync {
    /// Settles `amount` owed to `worker`, currently held in `from` (the job's escrow or the
    /// worker's pending account).
    fn settle(
        &self,
        tx: &mut WriteTx,
        worker: &PublicKey,
        from: Account,
        amount: Amount,
        reason: SettlementReason,
    ) -> Result<SettlementRef, LedgerError>;
}

/// The default settlement: spendable credit on the internal ledger.
#[derive(Debug, Clone, Copy, Default)]
pub struct InternalCredit;

impl Settlement for InternalCredit {
    fn settle(
        &self,
        tx: &mut WriteTx,
        worker: &PublicKey,
        from: Account,
        amount: Amount,
        reason: SettlementReason,
    ) -> Result<SettlementRef, LedgerError> {
        let seq = tx.post(
            reason.kind,
            from,
            Account::WorkerSpendable(*worker),
            amount,
            reason.job,
            reason.assignment,
        )?;
        Ok(SettlementRef::Internal { seq })
    }
}

/// The outcome of paying an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub amount: Amount,
    /// Whether the pay went straight to spendable (the rig had enough verified histories).
    pub spendable: bool,
    /// The ledger entry of the payment.
    pub seq: u64,
    /// Settlement reference when spendable.
    pub settlement: Option<SettlementRef>,
}

fn pending_key(rig: &PublicKey, a: AssignmentId) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(rig);
    k[32..].copy_from_slice(&a.0.to_be_bytes());
    k
}

fn account_key(account: &Account) -> Result<Vec<u8>> {
    codec::encode("account", account).map_err(|source| StoreError::Corrupt {
        table: "balances",
        key: account.to_string(),
        source,
    })
}

impl WriteTx {
    fn set_balance(&mut self, account: &Account, value: i128) -> Result<()> {
        let key = account_key(account)?;
        let bytes = codec::encode("balance", &value).map_err(|source| StoreError::Corrupt {
            table: "balances",
            key: account.to_string(),
            source,
        })?;
        let mut t = self.txn.open_table(BALANCES).map_err(|e| self.db(e))?;
        t.insert(key.as_slice(), bytes.as_slice())
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Appends one entry and updates both balances. The debit account (other than
    /// [`Account::External`]) must cover the amount.
    pub(crate) fn post(
        &mut self,
        kind: EntryKind,
        debit: Account,
        credit: Account,
        amount: Amount,
        job: Option<JobId>,
        assignment: Option<AssignmentId>,
    ) -> Result<u64, LedgerError> {
        let head: Head = self.meta(META_HEAD)?.unwrap_or_else(Head::genesis);
        let mut entry = Entry {
            seq: head.next_seq,
            time_unix_s: self.now,
            kind,
            debit,
            credit,
            amount: amount.0,
            job,
            assignment,
            prev_hash: head.hash,
        };
        if self.relaxed {
            return Err(LedgerError::RelaxedMoney(kind_name(kind)));
        }
        if amount.0 == 0 {
            return Err(LedgerError::ZeroAmount(kind_name(kind)));
        }
        if let Err(why) = check_shape(&entry) {
            // Only this module builds entries; a bad shape is a bug, surfaced as a refusal.
            return Err(LedgerError::BadEntry { kind, why });
        }
        let from = self.balance(&debit)?;
        if debit != Account::External && from < i128::from(amount.0) {
            return Err(LedgerError::InsufficientBalance {
                account: debit,
                balance: from,
                needed: amount.0,
            });
        }
        let to = self.balance(&credit)?;
        self.set_balance(&debit, from - i128::from(amount.0))?;
        self.set_balance(&credit, to + i128::from(amount.0))?;
        entry.seq = head.next_seq;
        let hash = entry_hash(&entry).map_err(|source| StoreError::Corrupt {
            table: "ledger",
            key: entry.seq.to_string(),
            source,
        })?;
        self.put_u64(LEDGER, "ledger", entry.seq, &StoredEntry { entry, hash })?;
        let next_seq = head
            .next_seq
            .checked_add(1)
            .ok_or(LedgerError::Overflow("ledger seq"))?;
        self.put_meta(META_HEAD, &Head { next_seq, hash })?;
        Ok(entry.seq)
    }

    /// Posts a settlement credit to a worker's spendable account (for [`Settlement`] backends
    /// that keep the credit on the internal ledger).
    pub fn post_settlement(
        &mut self,
        worker: &PublicKey,
        from: Account,
        amount: Amount,
        reason: SettlementReason,
    ) -> Result<u64, LedgerError> {
        self.post(
            reason.kind,
            from,
            Account::WorkerSpendable(*worker),
            amount,
            reason.job,
            reason.assignment,
        )
    }

    /// Operator grant: credits a client's balance. Returns the new balance.
    pub fn grant(&mut self, client: &PublicKey, amount: Amount) -> Result<i128, LedgerError> {
        self.post(
            EntryKind::Grant,
            Account::External,
            Account::Client(*client),
            amount,
            None,
            None,
        )?;
        Ok(self.balance(&Account::Client(*client))?)
    }

    /// Moves `amount` from a client's balance into a job's escrow; refused when the balance
    /// does not cover it.
    pub fn escrow(
        &mut self,
        job: JobId,
        client: &PublicKey,
        amount: Amount,
    ) -> Result<u64, LedgerError> {
        self.post(
            EntryKind::Escrow,
            Account::Client(*client),
            Account::Escrow(job),
            amount,
            Some(job),
            None,
        )
    }

    /// Pays `amount` from `job`'s escrow to `worker` for `assignment`: to spendable through
    /// the settlement backend, or to pending (released later by [`WriteTx::release`],
    /// forfeited by [`WriteTx::forfeit_pending`]). At most once per assignment, whatever the
    /// amount: a second call is refused with [`LedgerError::AlreadyPaid`].
    pub fn pay_worker(
        &mut self,
        job: JobId,
        assignment: AssignmentId,
        worker: &PublicKey,
        amount: Amount,
        spendable: bool,
    ) -> Result<Payment, LedgerError> {
        if self.relaxed {
            return Err(LedgerError::RelaxedMoney("pay"));
        }
        if let Some(seq) = self.paid_by(assignment)? {
            return Err(LedgerError::AlreadyPaid {
                assignment: assignment.0,
                seq,
            });
        }
        let (seq, settlement) = if amount.0 == 0 {
            // Nothing to move; still indexed as paid so it is never paid later.
            (u64::MAX, None)
        } else if spendable {
            let s = InternalCredit;
            let r = s.settle(
                self,
                worker,
                Account::Escrow(job),
                amount,
                SettlementReason {
                    kind: EntryKind::Pay,
                    job: Some(job),
                    assignment: Some(assignment),
                },
            )?;
            let seq = match &r {
                SettlementRef::Internal { seq } => *seq,
                SettlementRef::External(_) => u64::MAX,
            };
            (seq, Some(r))
        } else {
            let seq = self.post(
                EntryKind::Pay,
                Account::Escrow(job),
                Account::WorkerPending(*worker),
                amount,
                Some(job),
                Some(assignment),
            )?;
            let pp = codec::encode("pending", &PendingPay { job, amount }).map_err(|source| {
                StoreError::Corrupt {
                    table: "pending",
                    key: assignment.0.to_string(),
                    source,
                }
            })?;
            let mut t = self.txn.open_table(PENDING).map_err(|e| self.db(e))?;
            t.insert(pending_key(worker, assignment).as_slice(), pp.as_slice())
                .map_err(|e| self.db(e))?;
            (seq, None)
        };
        {
            let mut t = self.txn.open_table(PAID).map_err(|e| self.db(e))?;
            t.insert(assignment.0, seq).map_err(|e| self.db(e))?;
        }
        Ok(Payment {
            amount,
            spendable,
            seq,
            settlement,
        })
    }

    /// Settles a job's escrow: `fee` (capped by what is left) to the fee account, the rest
    /// back to `client`. Returns (fee taken, refund). The only place a job's escrow is
    /// closed: the market's finished jobs ([`crate::persist::Persist::finished`]) and the
    /// [`crate::escrow::Bank`] seam both come here.
    pub fn close_escrow(
        &mut self,
        job: JobId,
        client: &PublicKey,
        fee: Amount,
    ) -> Result<(Amount, Amount), LedgerError> {
        let left = self.balance(&Account::Escrow(job))?;
        let left = u64::try_from(left.max(0)).map_err(|_| LedgerError::Overflow("escrow"))?;
        let fee = fee.0.min(left);
        if fee > 0 {
            self.take_fee(job, Amount(fee))?;
        }
        let refund = left - fee;
        if refund > 0 {
            self.post(
                EntryKind::Refund,
                Account::Escrow(job),
                Account::Client(*client),
                Amount(refund),
                Some(job),
                None,
            )?;
        }
        Ok((Amount(fee), Amount(refund)))
    }

    fn pending_of(&self, rig: &PublicKey) -> Result<Vec<(AssignmentId, PendingPay)>> {
        let lo = pending_key(rig, AssignmentId(0));
        let hi = pending_key(rig, AssignmentId(u64::MAX));
        let t = self.txn.open_table(PENDING).map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for item in t
            .range(lo.as_slice()..=hi.as_slice())
            .map_err(|e| self.db(e))?
        {
            let (k, v) = item.map_err(|e| self.db(e))?;
            let key = k.value();
            let mut id = [0u8; 8];
            if let Some(tail) = key.get(32..40) {
                id.copy_from_slice(tail);
            }
            let pp: PendingPay =
                codec::decode("pending", v.value()).map_err(|source| StoreError::Corrupt {
                    table: "pending",
                    key: format!("{:02x?}", key),
                    source,
                })?;
            out.push((AssignmentId(u64::from_be_bytes(id)), pp));
        }
        Ok(out)
    }

    fn remove_pending(&mut self, rig: &PublicKey, id: AssignmentId) -> Result<()> {
        let mut t = self.txn.open_table(PENDING).map_err(|e| self.db(e))?;
        t.remove(pending_key(rig, id).as_slice())
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// A worker's pay not yet spendable, micro-credits.
    pub fn pending_total(&self, rig: &PublicKey) -> Result<u64> {
        Ok(self
            .pending_of(rig)?
            .iter()
            .map(|(_, p)| p.amount.0)
            .fold(0u64, u64::saturating_add))
    }

    /// Forfeits all of a rig's pending pay: each assignment's pay goes back to its job's
    /// escrow (and on to the client if that job has already closed). Returns the total.
    pub fn forfeit_pending(&mut self, rig: &PublicKey) -> Result<Amount, LedgerError> {
        let mut total = 0u64;
        for (id, pp) in self.pending_of(rig)? {
            self.post(
                EntryKind::Forfeit,
                Account::WorkerPending(*rig),
                Account::Escrow(pp.job),
                pp.amount,
                Some(pp.job),
                Some(id),
            )?;
            self.remove_pending(rig, id)?;
            // Jobs paid through `pay_worker` alone (the market's bank) have no job record:
            // their escrow is settled by `close_escrow`, so the forfeit stays in escrow.
            if let Some(mut job) = self.job(pp.job)? {
                job.paid = Amount(job.paid.0.saturating_sub(pp.amount.0));
                self.put_job(&job)?;
                if job.state.is_closed() {
                    self.post(
                        EntryKind::Refund,
                        Account::Escrow(pp.job),
                        Account::Client(job.client),
                        pp.amount,
                        Some(pp.job),
                        None,
                    )?;
                }
            }
            total = total.saturating_add(pp.amount.0);
        }
        Ok(Amount(total))
    }

    /// Makes a rig's pending pay spendable if it has `spendable_after` verified histories.
    /// Returns the amount released (`None` when the rig is not yet eligible).
    pub fn release(&mut self, rig: &PublicKey) -> Result<Option<Amount>, LedgerError> {
        let verified = self.rig(rig)?.map_or(0, |r| r.histories_verified);
        if verified < self.config.spendable_after {
            return Ok(None);
        }
        self.release_pending(rig).map(Some)
    }

    /// Makes all of a rig's pending pay spendable now, for callers that keep their own record
    /// of when a rig qualifies (see [`WriteTx::release`] for the rule on stored records).
    pub fn release_pending(&mut self, rig: &PublicKey) -> Result<Amount, LedgerError> {
        let s = InternalCredit;
        let mut total = 0u64;
        for (id, pp) in self.pending_of(rig)? {
            s.settle(
                self,
                rig,
                Account::WorkerPending(*rig),
                pp.amount,
                SettlementReason {
                    kind: EntryKind::Release,
                    job: Some(pp.job),
                    assignment: Some(id),
                },
            )?;
            self.remove_pending(rig, id)?;
            total = total.saturating_add(pp.amount.0);
        }
        Ok(Amount(total))
    }

    /// Moves `amount` of a job's escrow to the manager's fee account.
    pub fn take_fee(&mut self, job: JobId, amount: Amount) -> Result<u64, LedgerError> {
        self.post(
            EntryKind::Fee,
            Account::Escrow(job),
            Account::Fee,
            amount,
            Some(job),
            None,
        )
    }
}

fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Grant => "grant",
        EntryKind::Escrow => "escrow",
        EntryKind::Pay => "pay",
        EntryKind::Fee => "fee",
        EntryKind::Refund => "refund",
        EntryKind::Forfeit => "forfeit",
        EntryKind::Release => "release",
    }
}

impl ReadTx {
    /// Up to `limit` ledger entries from sequence number `from` on, in order.
    pub fn entries(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>> {
        let t = self.txn.open_table(LEDGER).map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for item in t.range(from..).map_err(|e| self.db(e))?.take(limit) {
            let (k, v) = item.map_err(|e| self.db(e))?;
            out.push(codec::decode("ledger entry", v.value()).map_err(|source| {
                StoreError::Corrupt {
                    table: "ledger",
                    key: k.value().to_string(),
                    source,
                }
            })?);
        }
        Ok(out)
    }
}

/// The first problem [`verify`] found.
#[derive(Debug, thiserror::Error)]
pub enum LedgerFault {
    /// Entry `seq` is corrupt, out of order, breaks the hash chain, has a bad shape, overdraws
    /// an account, or pays an assignment a second time.
    #[error("ledger entry {seq}: {reason}")]
    Entry {
        /// The first bad entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A stored balance differs from the one recomputed from the entries.
    #[error("account {account}: stored balance {stored}, entries give {computed}")]
    Balance {
        /// The account.
        account: String,
        /// The stored balance (or why it could not be read).
        stored: String,
        /// The recomputed balance.
        computed: i128,
    },
    /// The stored head (next sequence number, last hash) does not match the chain.
    #[error("ledger head: {0}")]
    Head(String),
    /// The index of paid assignments disagrees with the entries.
    #[error("paid index, assignment {assignment}: {reason}")]
    PaidIndex {
        /// The assignment.
        assignment: u64,
        /// What is wrong.
        reason: String,
    },
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a healthy ledger holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSummary {
    pub entries: u64,
    pub accounts: usize,
    /// Total granted by the operator, micro-credits.
    pub granted: u128,
    pub head: [u8; 32],
    /// Where the money is and where it went, recomputed from the entries.
    pub totals: LedgerTotals,
}

/// The ledger's money by kind of account (balances now) and by kind of entry (sums ever),
/// micro-credits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Clients' spendable balances.
    pub clients: u128,
    /// Held in job escrows.
    pub escrow: u128,
    /// Workers' pay not yet spendable.
    pub pending: u128,
    /// Workers' spendable pay.
    pub spendable: u128,
    /// The node's fee account.
    pub fees: u128,
    /// `Pay` entries (to workers, before forfeits).
    pub paid: u128,
    /// `Refund` entries (escrow back to clients).
    pub refunded: u128,
    /// `Forfeit` entries (caught workers' pending pay back to escrow).
    pub forfeited: u128,
}

impl fmt::Display for LedgerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        let head = compushare_protocol::hex::encode_into(&self.head, &mut buf);
        write!(
            f,
            "ledger ok: {} entries, {} accounts, {} credits granted, head {}",
            self.entries,
            self.accounts,
            format_credits_u128(self.granted),
            head
        )
    }
}

impl Store {
    /// Recomputes the hash chain and every balance from the entries and compares them with the
    /// stored head, balances and paid index. The error names the first bad entry or account.
    pub fn verify_ledger(&self) -> std::result::Result<LedgerSummary, LedgerFault> {
        verify(&self.read()?)
    }
}

/// See [`Store::verify_ledger`].
pub fn verify(tx: &ReadTx) -> std::result::Result<LedgerSummary, LedgerFault> {
    let db = |e: redb::StorageError| {
        LedgerFault::Store(StoreError::Db {
            path: tx.path.display().to_string(),
            error: Box::new(e.into()),
        })
    };
    let dbt = |e: redb::TableError| {
        LedgerFault::Store(StoreError::Db {
            path: tx.path.display().to_string(),
            error: Box::new(e.into()),
        })
    };
    let mut balances: BTreeMap<Account, i128> = BTreeMap::new();
    let mut paid: BTreeMap<u64, u64> = BTreeMap::new();
    let mut prev = [0u8; 32];
    let mut expect_seq = 0u64;
    let mut granted: u128 = 0;
    let mut totals = LedgerTotals::default();
    let ledger = tx.txn.open_table(LEDGER).map_err(dbt)?;
    for item in ledger.iter().map_err(db)? {
        let (k, v) = item.map_err(db)?;
        let seq = k.value();
        let bad = |reason: String| LedgerFault::Entry { seq, reason };
        if seq != expect_seq {
            return Err(LedgerFault::Entry {
                seq: expect_seq,
                reason: format!("missing (next stored entry is {seq})"),
            });
        }
        let stored: StoredEntry =
            codec::decode("ledger entry", v.value()).map_err(|e| bad(e.to_string()))?;
        let e = stored.entry;
        if e.seq != seq {
            return Err(bad(format!("stored under {seq} but says seq {}", e.seq)));
        }
        if e.prev_hash != prev {
            return Err(bad("previous hash does not match the chain".into()));
        }
        let hash = entry_hash(&e).map_err(|err| bad(err.to_string()))?;
        if hash != stored.hash {
            return Err(bad("hash does not match the entry's contents".into()));
        }
        check_shape(&e).map_err(|why| bad(why.into()))?;
        let amount = i128::from(e.amount);
        let from = balances.entry(e.debit).or_insert(0);
        *from -= amount;
        if e.debit != Account::External && *from < 0 {
            return Err(bad(format!("overdraws {}", e.debit)));
        }
        *balances.entry(e.credit).or_insert(0) += amount;
        match e.kind {
            EntryKind::Grant => granted += u128::from(e.amount),
            EntryKind::Pay => totals.paid += u128::from(e.amount),
            EntryKind::Refund => totals.refunded += u128::from(e.amount),
            EntryKind::Forfeit => totals.forfeited += u128::from(e.amount),
            EntryKind::Escrow | EntryKind::Fee | EntryKind::Release => {}
        }
        if e.kind == EntryKind::Pay {
            if let Some(a) = e.assignment {
                if let Some(first) = paid.insert(a.0, seq) {
                    return Err(bad(format!(
                        "pays assignment {} again (first paid by entry {first})",
                        a.0
                    )));
                }
            }
        }
        prev = hash;
        expect_seq = seq + 1;
    }
    drop(ledger);
    // The head.
    let head: Head = tx
        .meta(META_HEAD)
        .map_err(LedgerFault::Store)?
        .ok_or_else(|| LedgerFault::Head("missing".into()))?;
    if head.next_seq != expect_seq || head.hash != prev {
        return Err(LedgerFault::Head(format!(
            "stored next seq {} does not match the chain's {expect_seq} (or its hash differs)",
            head.next_seq
        )));
    }
    // Stored balances: every account in either set must agree.
    let mut stored: BTreeMap<Account, std::result::Result<i128, String>> = BTreeMap::new();
    let mut unreadable: Vec<String> = Vec::new();
    let t = tx.txn.open_table(BALANCES).map_err(dbt)?;
    for item in t.iter().map_err(db)? {
        let (k, v) = item.map_err(db)?;
        match codec::decode::<Account>("account", k.value()) {
            Ok(acc) => {
                stored.insert(
                    acc,
                    codec::decode::<i128>("balance", v.value()).map_err(|e| e.to_string()),
                );
            }
            Err(e) => unreadable.push(format!("{:02x?}: {e}", k.value())),
        }
    }
    drop(t);
    if let Some(u) = unreadable.first() {
        return Err(LedgerFault::Balance {
            account: u.clone(),
            stored: "unreadable key".into(),
            computed: 0,
        });
    }
    let accounts: BTreeSet<Account> = balances.keys().chain(stored.keys()).copied().collect();
    let mut sum: i128 = 0;
    for acc in &accounts {
        let computed = balances.get(acc).copied().unwrap_or(0);
        sum += computed;
        match stored.get(acc) {
            Some(Ok(s)) if *s == computed => {}
            None if computed == 0 => {}
            Some(Ok(s)) => {
                return Err(LedgerFault::Balance {
                    account: acc.to_string(),
                    stored: s.to_string(),
                    computed,
                })
            }
            Some(Err(why)) => {
                return Err(LedgerFault::Balance {
                    account: acc.to_string(),
                    stored: why.clone(),
                    computed,
                })
            }
            None => {
                return Err(LedgerFault::Balance {
                    account: acc.to_string(),
                    stored: "missing".into(),
                    computed,
                })
            }
        }
    }
    if sum != 0 {
        // Cannot happen with double entry; checked because it is the ledger's invariant.
        return Err(LedgerFault::Head(format!("balances sum to {sum}, not 0")));
    }
    // The paid index must hold every Pay entry, and each index row an entry paying it (or a
    // zero payout recorded as u64::MAX).
    let t = tx.txn.open_table(PAID).map_err(dbt)?;
    let mut indexed: BTreeMap<u64, u64> = BTreeMap::new();
    for item in t.iter().map_err(db)? {
        let (k, v) = item.map_err(db)?;
        indexed.insert(k.value(), v.value());
    }
    for (a, seq) in &paid {
        match indexed.get(a) {
            Some(s) if s == seq => {}
            other => {
                return Err(LedgerFault::PaidIndex {
                    assignment: *a,
                    reason: format!("entry {seq} pays it but the index says {other:?}"),
                })
            }
        }
    }
    for (a, seq) in &indexed {
        if *seq != u64::MAX && paid.get(a) != Some(seq) {
            return Err(LedgerFault::PaidIndex {
                assignment: *a,
                reason: format!("index names entry {seq}, which does not pay it"),
            });
        }
    }
    for (acc, bal) in &balances {
        let bal = u128::try_from(*bal).unwrap_or(0);
        match acc {
            Account::Client(_) => totals.clients += bal,
            Account::Escrow(_) => totals.escrow += bal,
            Account::WorkerPending(_) => totals.pending += bal,
            Account::WorkerSpendable(_) => totals.spendable += bal,
            Account::Fee => totals.fees += bal,
            Account::External => {}
        }
    }
    Ok(LedgerSummary {
        entries: expect_seq,
        accounts: accounts.len(),
        granted,
        head: prev,
        totals,
    })
}

/// Why a credit amount does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not of the form `DIGITS[.DIGITS]`.
    #[error("`{0}` is not an amount (digits with up to 6 decimals, e.g. 12.5)")]
    Syntax(String),
    /// More than 6 decimals.
    #[error("`{0}` has more than 6 decimals (the smallest unit is 0.000001)")]
    Precision(String),
    /// Too large.
    #[error("`{0}` is too large")]
    Range(String),
    /// Zero.
    #[error("amount must be greater than 0")]
    Zero,
}

/// Parses credits with up to 6 decimals into micro-credits (`"12.5"` is 12,500,000).
pub fn parse_credits(s: &str) -> std::result::Result<Amount, AmountError> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(AmountError::Syntax(s.to_owned()));
    }
    if frac.len() > 6 {
        return Err(AmountError::Precision(s.to_owned()));
    }
    let range = || AmountError::Range(s.to_owned());
    let whole: u64 = int.parse().map_err(|_| range())?;
    let mut micro: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let place = 10u64.pow(5 - i as u32);
        micro += u64::from(b - b'0') * place;
    }
    let total = whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(micro))
        .ok_or_else(range)?;
    if total == 0 {
        return Err(AmountError::Zero);
    }
    Ok(Amount(total))
}

/// Formats micro-credits as credits with 6 decimals (negative for the external account).
pub fn format_credits(micro: i128) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let m = micro.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

fn format_credits_u128(micro: u128) -> String {
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// Reads of the ledger's tables, for both kinds of transaction.
macro_rules! ledger_reads {
    () => {
        /// An account's stored balance, micro-credits (0 if it never moved).
        pub fn balance(&self, account: &Account) -> Result<i128> {
            let key = codec::encode("account", account).map_err(|source| StoreError::Corrupt {
                table: "balances",
                key: account.to_string(),
                source,
            })?;
            let t = self.txn.open_table(BALANCES).map_err(|e| self.db(e))?;
            Ok(crate::store::get_decoded::<&[u8], i128, _>(
                &t,
                "balances",
                key.as_slice(),
                || account.to_string(),
                &self.path,
            )?
            .unwrap_or(0))
        }

        /// Number of ledger entries.
        pub fn ledger_len(&self) -> Result<u64> {
            let t = self.txn.open_table(LEDGER).map_err(|e| self.db(e))?;
            t.len().map_err(|e| self.db(e))
        }

        /// The ledger entry that paid an assignment, if any.
        pub fn paid_by(&self, id: AssignmentId) -> Result<Option<u64>> {
            let t = self.txn.open_table(PAID).map_err(|e| self.db(e))?;
            let got = t.get(id.0).map_err(|e| self.db(e))?.map(|g| g.value());
            Ok(got)
        }
    };
}

impl ReadTx {
    ledger_reads!();
}

impl WriteTx {
    ledger_reads!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_parse_and_format() {
        assert_eq!(parse_credits("12.5"), Ok(Amount(12_500_000)));
        assert_eq!(parse_credits("0.000001"), Ok(Amount(1)));
        assert_eq!(parse_credits("7"), Ok(Amount(7_000_000)));
        assert!(matches!(
            parse_credits("1.0000001"),
            Err(AmountError::Precision(_))
        ));
        assert!(matches!(parse_credits("-1"), Err(AmountError::Syntax(_))));
        assert!(matches!(parse_credits("1."), Err(AmountError::Syntax(_))));
        assert!(matches!(parse_credits(".5"), Err(AmountError::Syntax(_))));
        assert!(matches!(parse_credits("0"), Err(AmountError::Zero)));
        assert!(matches!(
            parse_credits("99999999999999999999"),
            Err(AmountError::Range(_))
        ));
        assert_eq!(format_credits(12_500_000), "12.500000");
        assert_eq!(format_credits(-1), "-0.000001");
    }

    #[test]
    fn shapes() {
        let e = Entry {
            seq: 0,
            time_unix_s: 0,
            kind: EntryKind::Release,
            debit: Account::WorkerPending([1; 32]),
            credit: Account::WorkerSpendable([2; 32]),
            amount: 5,
            job: None,
            assignment: None,
            prev_hash: [0; 32],
        };
        assert!(check_shape(&e).is_err(), "release to another worker");
        let ok = Entry {
            credit: Account::WorkerSpendable([1; 32]),
            ..e
        };
        assert!(check_shape(&ok).is_ok());
        assert!(check_shape(&Entry { amount: 0, ..ok }).is_err());
    }
}
