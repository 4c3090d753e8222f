//! Client jobs as a node operator sees and stops them: the job list (`admin jobs`) and the
//! durable half of a cancel (`admin jobs cancel`).
//!
//! The list is read from the store (every job ever accepted, in id order, a page at a time);
//! an open job's finer state (queued, running, verifying) comes from the market.
//!
//! A cancel is one store transaction, taken without the market's lock: the job is closed
//! (`Cancelled`), the node's fee on the verified work paid so far is taken, the rest of the
//! escrow goes back to the client, held results are dropped and every assignment not yet
//! verified is recorded abandoned. The store then refuses any pay into the job, so a result
//! verified after this moment is never paid, whatever the market was doing meanwhile; work
//! verified before it was paid when it was verified and stays paid. The market drops the job
//! afterwards ([`crate::market::Market::cancelled`]). A crash between the two leaves a closed
//! job the restarted market does not load.

use compushare_protocol::msg::{JobFilter, JobState as Shown, JobStatus, JobSummary};
use compushare_protocol::types::{Amount, JobId, PublicKey};

use crate::ledger::{Account, LedgerError};
use crate::records::{AssignmentState, JobRecord, JobState};
use crate::store::{tables, Store, StoreError};

/// Why a job could not be cancelled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// No job of this id on the node.
    #[error("no job {0} on this node")]
    Unknown(u64),
    /// The job has ended already (done or cancelled): its escrow is settled.
    #[error("job {job} has ended ({state:?}); nothing to cancel")]
    Ended { job: u64, state: JobState },
    /// The database failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger refused the escrow's settlement; nothing was changed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What a cancel settled, micro-credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    pub job: JobId,
    /// Paid to rigs for verified work (primary results and check runs).
    pub paid: Amount,
    /// The node's fee on the verified primary work.
    pub fee: Amount,
    /// Returned to the client.
    pub refund: Amount,
}

/// Cancels `job` durably (see the module's header). The fee is the job's own rate on the
/// primary work it paid, as when a job finishes.
pub fn cancel(store: &Store, job: JobId) -> Result<Cancelled, CancelError> {
    store.write(|tx| {
        let mut j = tx.job(job)?.ok_or(CancelError::Unknown(job.0))?;
        if j.state.is_closed() {
            return Err(CancelError::Ended {
                job: job.0,
                state: j.state,
            });
        }
        let mut primary_paid = 0u64;
        for mut a in tx.job_assignments(job)? {
            match a.state {
                AssignmentState::Verified => {
                    if a.duplicate_of.is_none() {
                        primary_paid = primary_paid.saturating_add(a.payout.0);
                    }
                    tx.remove_held(a.id)?;
                }
                AssignmentState::Failed | AssignmentState::Abandoned => {}
                _ => {
                    a.state = AssignmentState::Abandoned;
                    tx.put_assignment(&a)?;
                }
            }
        }
        let fee = crate::costing::fee(primary_paid, j.fee_bp);
        let (fee, refund) = tx.close_escrow(job, &j.client, Amount(fee))?;
        j.state = JobState::Cancelled;
        j.finished_unix_s = Some(tx.now());
        tx.put_job(&j)?;
        Ok(Cancelled {
            job,
            paid: j.paid,
            fee,
            refund,
        })
    })
}

/// Whether `rec` is one `filter` asks for.
fn wanted(rec: &JobRecord, filter: Option<JobFilter>, client: Option<&PublicKey>) -> bool {
    let state = match filter {
        None => true,
        Some(JobFilter::Open) => rec.state == JobState::Running,
        Some(JobFilter::Done) => rec.state == JobState::Done,
        Some(JobFilter::Cancelled) => rec.state == JobState::Cancelled,
    };
    state && client.is_none_or(|c| rec.client == *c)
}

/// Up to `n` jobs after `after` (in id order) that `filter` and `client` ask for, and whether
/// more follow. Reads one transaction; a filter that matches few jobs reads past the others.
pub fn page(
    store: &Store,
    filter: Option<JobFilter>,
    client: Option<PublicKey>,
    after: Option<JobId>,
    n: usize,
) -> Result<(Vec<(JobRecord, Amount)>, bool), StoreError> {
    let read = store.read()?;
    let t = read
        .redb()
        .open_table(tables::JOBS)
        .map_err(|e| read.db(e))?;
    let from = after.map_or(0, |j| j.0.saturating_add(1));
    let mut out = Vec::new();
    let mut more = false;
    for item in t.range(from..).map_err(|e| read.db(e))? {
        let (k, v) = item.map_err(|e| read.db(e))?;
        let rec: JobRecord =
            crate::codec::decode("jobs", v.value()).map_err(|source| StoreError::Corrupt {
                table: "jobs",
                key: k.value().to_string(),
                source,
            })?;
        if !wanted(&rec, filter, client.as_ref()) {
            continue;
        }
        if out.len() == n {
            more = true;
            break;
        }
        let escrow = read.balance(&Account::Escrow(rec.id))?;
        let escrow = Amount(u64::try_from(escrow.max(0)).unwrap_or(u64::MAX));
        out.push((rec, escrow));
    }
    Ok((out, more))
}

/// A stored job as the operator sees it; `live` is the market's status of an open job.
pub fn summary(rec: &JobRecord, escrow: Amount, live: Option<&JobStatus>) -> JobSummary {
    let (state, done) = match (rec.state, live) {
        (JobState::Running, Some(s)) => (s.state, s.photons_done.max(rec.photons_verified)),
        // Open in the store, not in the market: it could not be restored.
        (JobState::Running, None) => (Shown::Failed, rec.photons_verified),
        (JobState::Done, _) => (Shown::Done, rec.photons),
        (JobState::Cancelled, _) => (Shown::Cancelled, rec.photons_verified),
    };
    JobSummary {
        job: rec.id,
        client: rec.client,
        state,
        photons_done: done,
        photons_total: rec.photons,
        escrow,
        spent: rec.paid,
        price_per_history: Amount(rec.price_per_history()),
        fee_bp: rec.fee_bp,
        submitted_unix_s: rec.created_unix_s,
    }
}
