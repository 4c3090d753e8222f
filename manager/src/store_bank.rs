//! The market's money seam ([`crate::escrow::Bank`]) on the persistent, hash-chained ledger:
//! every call is one durable write transaction, so a payment the market made survives a
//! `kill -9` and a repeated payment is refused after a restart too.

use std::sync::Arc;

use compushare_protocol::types::{Amount, AssignmentId, JobId, PublicKey};

use crate::escrow::{Bank, BankError};
use crate::ledger::{Account, LedgerError};
use crate::store::{Store, StoreError};

/// A [`Bank`] backed by the manager's [`Store`].
#[derive(Debug, Clone)]
pub struct StoreBank {
    store: Arc<Store>,
}

impl StoreBank {
    /// Banks on `store`.
    pub fn new(store: Arc<Store>) -> StoreBank {
        StoreBank { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Operator grant to a client; returns the new balance.
    pub fn grant(&self, who: &PublicKey, amount: u64) -> Result<i128, LedgerError> {
        self.store.write(|tx| tx.grant(who, Amount(amount)))
    }

    /// A worker's pay not yet spendable.
    pub fn held(&self, who: &PublicKey) -> Result<u64, StoreError> {
        let b = self.store.read()?.balance(&Account::WorkerPending(*who))?;
        Ok(u64::try_from(b).unwrap_or(0))
    }

    /// Forfeits all of a worker's pending pay back to the escrows it came from (the worker
    /// was caught cheating). Returns the total.
    pub fn forfeit(&self, who: &PublicKey) -> Result<u64, LedgerError> {
        self.store.write(|tx| tx.forfeit_pending(who)).map(|a| a.0)
    }

    /// Makes all of a worker's pending pay spendable (it now qualifies). Returns the total.
    pub fn release(&self, who: &PublicKey) -> Result<u64, LedgerError> {
        self.store.write(|tx| tx.release_pending(who)).map(|a| a.0)
    }

    /// Money in a job's escrow.
    pub fn escrowed(&self, job: JobId) -> Result<u64, StoreError> {
        let b = self.store.read()?.balance(&Account::Escrow(job))?;
        Ok(u64::try_from(b).unwrap_or(0))
    }
}

fn bank_error(e: LedgerError) -> BankError {
    match e {
        LedgerError::InsufficientBalance {
            account: Account::Escrow(job),
            balance,
            needed,
        } => BankError::EscrowShort {
            job: job.0,
            held: u64::try_from(balance).unwrap_or(0),
            amount: needed,
        },
        LedgerError::InsufficientBalance {
            balance, needed, ..
        } => BankError::InsufficientFunds {
            balance: u64::try_from(balance).unwrap_or(0),
            needed,
        },
        LedgerError::AlreadyPaid { assignment, .. } => BankError::AlreadyPaid(assignment),
        other => BankError::Store(other.to_string()),
    }
}

impl Bank for StoreBank {
    fn escrow(&mut self, client: &PublicKey, job: JobId, amount: u64) -> Result<(), BankError> {
        if amount == 0 {
            return Ok(());
        }
        self.store
            .write(|tx| tx.escrow(job, client, Amount(amount)).map(|_| ()))
            .map_err(bank_error)
    }

    fn pay(
        &mut self,
        job: JobId,
        assignment: AssignmentId,
        worker: &PublicKey,
        amount: u64,
        spendable: bool,
    ) -> Result<(), BankError> {
        self.store
            .write(|tx| {
                tx.pay_worker(job, assignment, worker, Amount(amount), spendable)
                    .map(|_| ())
            })
            .map_err(bank_error)
    }

    fn close(&mut self, job: JobId, client: &PublicKey, fee: u64) -> Result<u64, BankError> {
        self.store
            .write(|tx| tx.close_escrow(job, client, Amount(fee)))
            .map(|(_, refund)| refund.0)
            .map_err(bank_error)
    }

    /// Spendable credit of a key: its client balance plus its spendable worker pay. An
    /// unreadable database is an error (it used to read as 0, which looks like a real
    /// balance); a negative sum (never in a ledger that verifies) reads as 0.
    fn balance(&self, who: &PublicKey) -> Result<u64, BankError> {
        let read = || -> Result<i128, StoreError> {
            let r = self.store.read()?;
            Ok(r.balance(&Account::Client(*who))? + r.balance(&Account::WorkerSpendable(*who))?)
        };
        let b = read().map_err(|e| bank_error(e.into()))?;
        Ok(u64::try_from(b.max(0)).unwrap_or(u64::MAX))
    }
}
