//! A money seam over the ledger: escrow, pay per verified assignment, fee and refund as single
//! calls with their own refusals (insufficient funds, a second payment for one assignment).
//!
//! The market itself moves money inside its own store transactions ([`crate::persist`]), so
//! that a payment and the state change it pays for commit together; [`Bank`] is what tools and
//! tests use to read balances and move money outside a job's life
//! ([`crate::store_bank::StoreBank`] implements it on the ledger).

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
    /// A key's balance (spendable credit); a failed read is an error, never 0.
    fn balance(&self, who: &PublicKey) -> Result<u64, BankError>;
}
