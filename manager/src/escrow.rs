//! The money seam of the network side: escrow at submission, pay per verified assignment,
//! fee and refund at job completion.
//!
//! The market calls [`Bank`] and nothing else for money, so the persistent double-entry ledger
//! (the `ledger` module's store) plugs in behind it. [`MemoryBank`] is the in-process
//! implementation used by tests and by a manager run without persistent accounts: balances and
//! a journal in memory, with the same refusals (insufficient funds, a second payment for one
//! assignment).

use std::collections::{HashMap, HashSet};

use compushare_protocol::types::{AssignmentId, JobId, PublicKey};

/// Why a money operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The client's balance cannot cover the escrow.
    #[error("balance {balance} cannot cover {needed}")]
    InsufficientFunds {
        /// What the client has.
        balance: u64,
        /// What the job needs.
        needed: u64,
    },
    /// The job's escrow cannot cover the payment.
    #[error("escrow of job {job} holds {held}, cannot pay {amount}")]
    EscrowShort {
        /// The job.
        job: u64,
        /// What is held.
        held: u64,
        /// What was asked.
        amount: u64,
    },
    /// The assignment was already paid.
    #[error("assignment {0} was already paid")]
    AlreadyPaid(u64),
    /// The backing store failed.
    #[error("ledger failure: {0}")]
    Store(String),
}

/// Money operations the market needs.
pub trait Bank: Send {
    /// Moves `amount` from the client's balance into the job's escrow.
    fn escrow(&mut self, client: &PublicKey, job: JobId, amount: u64) -> Result<(), BankError>;
    /// Pays a worker from the job's escrow for one verified assignment; at most once each.
    fn pay(
        &mut self,
        job: JobId,
        assignment: AssignmentId,
        worker: &PublicKey,
        amount: u64,
        spendable: bool,
    ) -> Result<(), BankError>;
    /// Takes the manager's fee from the escrow and returns the rest to the client.
    fn close(&mut self, job: JobId, client: &PublicKey, fee: u64) -> Result<u64, BankError>;
    /// A key's balance (spendable credit).
    fn balance(&self, who: &PublicKey) -> u64;
}

/// One journal line of [`MemoryBank`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement {
    /// Client balance to job escrow.
    Escrow { job: u64, amount: u64 },
    /// Escrow to a worker.
    Pay {
        job: u64,
        assignment: u64,
        worker: PublicKey,
        amount: u64,
        spendable: bool,
    },
    /// Escrow to the manager's fee account.
    Fee { job: u64, amount: u64 },
    /// Escrow back to the client.
    Refund { job: u64, amount: u64 },
}

/// Accounts in memory.
#[derive(Debug, Default)]
pub struct MemoryBank {
    balances: HashMap<PublicKey, u64>,
    held: HashMap<PublicKey, u64>,
    escrow: HashMap<JobId, u64>,
    paid: HashSet<AssignmentId>,
    /// Every movement, in order.
    pub journal: Vec<Movement>,
}

impl MemoryBank {
    /// Credits `amount` to `who` (an operator grant).
    pub fn grant(&mut self, who: PublicKey, amount: u64) {
        let b = self.balances.entry(who).or_default();
        *b = b.saturating_add(amount);
    }

    /// Credit earned but not yet spendable (new rigs).
    pub fn held(&self, who: &PublicKey) -> u64 {
        self.held.get(who).copied().unwrap_or(0)
    }

    /// Money in escrow for a job.
    pub fn escrowed(&self, job: JobId) -> u64 {
        self.escrow.get(&job).copied().unwrap_or(0)
    }
}

impl Bank for MemoryBank {
    fn escrow(&mut self, client: &PublicKey, job: JobId, amount: u64) -> Result<(), BankError> {
        let balance = self.balance(client);
        if balance < amount {
            return Err(BankError::InsufficientFunds {
                balance,
                needed: amount,
            });
        }
        self.balances.insert(*client, balance - amount);
        *self.escrow.entry(job).or_default() += amount;
        self.journal.push(Movement::Escrow { job: job.0, amount });
        Ok(())
    }

    fn pay(
        &mut self,
        job: JobId,
        assignment: AssignmentId,
        worker: &PublicKey,
        amount: u64,
        spendable: bool,
    ) -> Result<(), BankError> {
        if self.paid.contains(&assignment) {
            return Err(BankError::AlreadyPaid(assignment.0));
        }
        let held = self.escrowed(job);
        if held < amount {
            return Err(BankError::EscrowShort {
                job: job.0,
                held,
                amount,
            });
        }
        self.escrow.insert(job, held - amount);
        let to = if spendable {
            &mut self.balances
        } else {
            &mut self.held
        };
        *to.entry(*worker).or_default() += amount;
        self.paid.insert(assignment);
        self.journal.push(Movement::Pay {
            job: job.0,
            assignment: assignment.0,
            worker: *worker,
            amount,
            spendable,
        });
        Ok(())
    }

    fn close(&mut self, job: JobId, client: &PublicKey, fee: u64) -> Result<u64, BankError> {
        let held = self.escrow.remove(&job).unwrap_or(0);
        let fee = fee.min(held);
        let refund = held - fee;
        self.journal.push(Movement::Fee {
            job: job.0,
            amount: fee,
        });
        *self.balances.entry(*client).or_default() += refund;
        self.journal.push(Movement::Refund {
            job: job.0,
            amount: refund,
        });
        Ok(refund)
    }

    fn balance(&self, who: &PublicKey) -> u64 {
        self.balances.get(who).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escrow_pay_close_balance_and_refuse_double_pay() {
        let (client, worker) = ([1; 32], [2; 32]);
        let mut b = MemoryBank::default();
        assert!(b.escrow(&client, JobId(1), 10).is_err());
        b.grant(client, 100);
        b.escrow(&client, JobId(1), 60).unwrap();
        b.pay(JobId(1), AssignmentId(1), &worker, 20, true).unwrap();
        assert_eq!(
            b.pay(JobId(1), AssignmentId(1), &worker, 20, true),
            Err(BankError::AlreadyPaid(1))
        );
        assert!(b.pay(JobId(1), AssignmentId(2), &worker, 50, true).is_err());
        b.pay(JobId(1), AssignmentId(3), &worker, 5, false).unwrap();
        assert_eq!(b.close(JobId(1), &client, 3).unwrap(), 32);
        assert_eq!(b.balance(&client), 72);
        assert_eq!((b.balance(&worker), b.held(&worker)), (20, 5));
    }
}
