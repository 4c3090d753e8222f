//! The market's durable state: every change the market must not lose is one redb write
//! transaction here, so a `kill -9` at any moment leaves the state before it or after it.
//!
//! - a job is accepted and its escrow taken in one transaction;
//! - assignment numbers come from the store's durable counter, reserved in blocks (one durable
//!   write per block: numbers never repeat across restarts); records of issued and abandoned
//!   assignments are batched by the market's [`crate::journal`] and written with the next
//!   transaction ([`Persist::records`] alone at a tick): a lost one was unverified work, which
//!   a restart reassigns anyway;
//! - a verified result is recorded, its tally held, its rig's trust record updated and its
//!   rig paid (pending or spendable) in one transaction;
//! - a caught rig's demotion, its discarded results and its forfeited pending pay are one
//!   transaction;
//! - a finished job's merged result, fee and refund are one transaction.
//!
//! [`Persist::load`] gives back what a restarted market needs: running jobs with their inputs,
//! verified results and the primary assignments still out (their rigs may deliver after the
//! restart); unverified check runs are marked abandoned (their results are checked again).
//! Queued records are written at every tick with an fsync, so an assignment out for more
//! than a tick survives a crash. Heartbeats and bids never write.

use std::ops::Range;
use std::sync::Arc;

use compushare_protocol::types::{Amount, AssignmentId, Digest, JobId, Mode, PublicKey};
use redb::ReadableTable;
use sha2::{Digest as _, Sha256};

use crate::ledger::LedgerError;
use crate::records::{AssignmentRecord, AssignmentState, JobRecord, JobState};
use crate::store::{tables, Store, StoreError, WriteTx};
use crate::trust::TrustError;
use crate::trust::{ErrorKind, Rater, RigRecord};

/// Assignment numbers reserved per durable write.
const ID_BLOCK: u64 = 1024;

/// Why one of the market's transactions was refused or failed: its own rules (a job's price,
/// a closed job, an unverified result), or the layer below that refused (money, ratings, the
/// database).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The job's price exceeds the client's maximum.
    #[error("job costs up to {needed} micro-credits with fee; client's maximum is {max}")]
    PriceAboveMax {
        /// The escrow it needs: max cost, fee and check allowance.
        needed: u64,
        /// The client's maximum.
        max: u64,
    },
    /// The job has ended; its escrow is settled.
    #[error("job {0} is closed")]
    JobClosed(u64),
    /// An assignment must be verified before it is paid.
    #[error("assignment {assignment} is {state:?}, not verified")]
    NotVerified {
        /// The assignment.
        assignment: u64,
        /// Its state.
        state: AssignmentState,
    },
    /// A count or size does not fit.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A rating was refused or failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PersistError {
    /// The variant's name, the innermost layer's (`persist.`, `ledger.`, `trust.`,
    /// `store.`), for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            PersistError::PriceAboveMax { .. } => "persist.price_above_max",
            PersistError::JobClosed(_) => "persist.job_closed",
            PersistError::NotVerified { .. } => "persist.not_verified",
            PersistError::Overflow(_) => "persist.overflow",
            PersistError::Ledger(e) => e.kind(),
            PersistError::Trust(e) => e.kind(),
            PersistError::Store(e) => e.kind(),
        }
    }
}

/// Result of the market's transactions.
pub type Result<T, E = PersistError> = std::result::Result<T, E>;

/// The terms of a job the market accepted (prices already worked out by the market).
#[derive(Debug, Clone, Copy)]
pub struct JobTerms {
    pub client: PublicKey,
    pub photons: u64,
    pub seed: u64,
    pub mode: Mode,
    pub max_price: Amount,
    pub cost_per_history_milli: u64,
    pub price_per_unit: Amount,
    /// Moved from the client's balance into the job's escrow.
    pub escrow: Amount,
    /// The fee rate the escrow was sized with, basis points.
    pub fee_bp: u64,
    /// The check allowance the escrow was sized with, per mille of the maximum cost.
    pub check_allowance_permille: u64,
}

/// A result that passed its checks, as the market hands it over.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The assignment, state `Verified`.
    pub record: AssignmentRecord,
    /// Where the pay goes.
    pub payout_to: PublicKey,
    /// The tally's canonical bytes (held until the job is merged).
    pub tally: Vec<u8>,
    /// Issue-to-commit time, for the rig's (time to return) / (cost) record.
    pub elapsed_ms: u64,
    /// Milli cost units of the range.
    pub cost_milli: u64,
    /// Histories that count toward trust (checked or covered by a passed window).
    pub trust_histories: u64,
    /// Consecutive verified histories that promote (u64::MAX: not yet eligible).
    pub promote_after: u64,
    /// Verified histories after which pay is spendable.
    pub spendable_after: u64,
    /// Whether the result is part of the job's result (false: a duplicate or arbitration run,
    /// paid from the check allowance, its tally not kept).
    pub primary: bool,
}

/// What recording a verified result did.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The rig's record after it.
    pub rig: RigRecord,
    /// Whether this rig was promoted by it.
    pub promoted: bool,
    /// Whether the pay went to spendable (and any earlier pending pay with it).
    pub spendable: bool,
}

/// A caught rig: its demotion and the work thrown away with it.
#[derive(Debug, Clone)]
pub struct Caught {
    pub rig: PublicKey,
    /// Whose pending pay is forfeited.
    pub payout_to: PublicKey,
    pub kind: ErrorKind,
    pub assignment: AssignmentId,
    /// Assignments ended with it (state set by the caller: `Failed` or `Abandoned`).
    pub ended: Vec<AssignmentRecord>,
    /// Of those, the ones that had been verified: their held results are dropped and their
    /// photons no longer count toward their jobs.
    pub unverified: Vec<(JobId, AssignmentId, u64)>,
}

/// A job as restored after a restart.
#[derive(Debug, Clone)]
pub struct RestoredJob {
    pub record: JobRecord,
    pub input: Vec<u8>,
    /// Verified results: record, tally bytes, and whether the pay is spendable.
    pub verified: Vec<(AssignmentRecord, Vec<u8>, bool)>,
    /// Primary assignments issued and not yet verified: their rigs may still deliver (a rig
    /// re-sends a finished result's commitment on its next session), so they resume as
    /// issued, until their deadline.
    pub live: Vec<AssignmentRecord>,
}

/// The market's side of the store. Each write takes `records`: batched assignment records
/// (issued, abandoned) written first, in the same transaction.
#[derive(Debug)]
pub struct Persist {
    store: Arc<Store>,
    /// Assignment numbers reserved durably and not handed out yet: the block in use.
    ids: Range<u64>,
    /// The next block, once its reservation committed (reserved ahead, off the market's
    /// lock, when the block in use is half gone: see [`Persist::wants_ids`]).
    spare: Option<Range<u64>>,
    /// A reservation is on its way through the journal.
    reserving: bool,
}

fn write_queued(tx: &mut WriteTx, queued: &[AssignmentRecord]) -> Result<(), StoreError> {
    for rec in queued {
        tx.put_assignment(rec)?;
    }
    Ok(())
}

impl Persist {
    /// The market's state in `store`.
    pub fn new(store: Arc<Store>) -> Persist {
        Persist {
            store,
            ids: 0..0,
            spare: None,
            reserving: false,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stores a job's input and record and moves its escrow from the client's balance, in one
    /// transaction. Refused (nothing written) when the escrow is above the client's maximum
    /// price or the balance does not cover it.
    pub fn accept_job(&self, terms: &JobTerms, input: &[u8]) -> Result<JobId> {
        if terms.escrow.0 > terms.max_price.0 {
            return Err(PersistError::PriceAboveMax {
                needed: terms.escrow.0,
                max: terms.max_price.0,
            });
        }
        let digest: Digest = Sha256::digest(input).into();
        let input_len =
            u32::try_from(input.len()).map_err(|_| PersistError::Overflow("input_len"))?;
        self.store.write(|tx| {
            let id = tx.allocate_job_id()?;
            {
                let mut t = tx.txn.open_table(tables::INPUTS).map_err(|e| tx.db(e))?;
                t.insert(digest.as_slice(), input).map_err(|e| tx.db(e))?;
            }
            let job = JobRecord {
                id,
                client: terms.client,
                input: digest,
                input_len,
                photons: terms.photons,
                seed: terms.seed,
                mode: terms.mode,
                max_price: terms.max_price,
                cost_per_history_milli: terms.cost_per_history_milli,
                price_per_unit: terms.price_per_unit,
                escrowed: terms.escrow,
                paid: Amount(0),
                photons_verified: 0,
                state: JobState::Running,
                created_unix_s: tx.now(),
                finished_unix_s: None,
                result: None,
                fee_bp: terms.fee_bp,
                check_allowance_permille: terms.check_allowance_permille,
            };
            tx.put_job(&job)?;
            if terms.escrow.0 > 0 {
                tx.escrow(id, &terms.client, terms.escrow)?;
            }
            Ok(id)
        })
    }

    /// Reserves the next block of assignment numbers durably (one transaction): by the
    /// market when it opens, and by the journal, off the market's lock, ahead of need.
    pub fn reserve_ids(&self) -> Result<Range<u64>, StoreError> {
        self.store.write(|tx| tx.reserve_assignment_ids(ID_BLOCK))
    }

    /// The next assignment number (strictly above every number handed out before, restarts
    /// included: each was reserved durably before it is handed out). Never writes: `None`
    /// when the reserved numbers ran out before the next block's reservation committed (more
    /// than half a block issued within one commit of the journal); the caller issues nothing
    /// now and the bid is matched again later.
    pub fn next_assignment_id(&mut self) -> Option<AssignmentId> {
        if self.ids.is_empty() {
            self.ids = self.spare.take()?;
        }
        let id = self.ids.start;
        self.ids.start += 1;
        Some(AssignmentId(id))
    }

    /// Whether the next block should be reserved now: none is reserved or on its way and
    /// half of the block in use is gone. Marks the reservation as on its way.
    pub fn wants_ids(&mut self) -> bool {
        let wanted = self.spare.is_none()
            && !self.reserving
            && self.ids.end.saturating_sub(self.ids.start) <= ID_BLOCK / 2;
        if wanted {
            self.reserving = true;
        }
        wanted
    }

    /// A reservation's outcome ([`Persist::reserve_ids`]): its block becomes the spare one
    /// (the one in use when that ran out). A failed one is asked again at the next number.
    pub fn ids_reserved(
        &mut self,
        block: Result<Range<u64>, StoreError>,
    ) -> Result<(), StoreError> {
        self.reserving = false;
        let block = block?;
        if self.ids.is_empty() {
            self.ids = block;
        } else {
            self.spare = Some(block);
        }
        Ok(())
    }

    /// Writes assignment records that carry no money (issued, abandoned) in one durable
    /// transaction (the market batches them and writes them every tick: an assignment out for
    /// longer survives a crash, so its result is taken after a restart).
    pub fn records(&self, records: &[AssignmentRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.store.write(|tx| Ok(write_queued(tx, records)?))
    }

    /// Records an assignment that missed its deadline; its rig's record counts it.
    pub fn late(&self, records: &[AssignmentRecord], rec: &AssignmentRecord) -> Result<()> {
        self.store.write_relaxed(|tx| {
            write_queued(tx, records)?;
            tx.put_assignment(rec)?;
            tx.trust_late(&rec.rig, rec.id)?;
            Ok(())
        })
    }

    /// Records a verified result, holds its tally, updates its rig's trust record and pays it
    /// from the job's escrow, in one transaction. The ledger refuses a second payment for an
    /// assignment, so this cannot pay twice.
    pub fn verified(&self, records: &[AssignmentRecord], v: &Verified) -> Result<Recorded> {
        if v.record.state != AssignmentState::Verified {
            return Err(PersistError::NotVerified {
                assignment: v.record.id.0,
                state: v.record.state,
            });
        }
        self.store.write(|tx| {
            write_queued(tx, records)?;
            let a = &v.record;
            let mut job = tx.job_required(a.job)?;
            if job.state.is_closed() {
                return Err(PersistError::JobClosed(a.job.0));
            }
            let mut rec = tx.rig_or_join(&a.rig)?;
            rec.record_return(v.elapsed_ms, v.cost_milli);
            rec.paid = rec.paid.saturating_add(a.payout.0);
            let promoted = rec.record_verified(v.trust_histories, tx.now(), v.promote_after);
            if v.trust_histories < a.photons.count {
                // Work not covered by a check still counts as done, not toward trust.
                rec.histories_verified = rec
                    .histories_verified
                    .saturating_add(a.photons.count - v.trust_histories);
            }
            tx.put_rig(&rec)?;
            let spendable = rec.histories_verified >= v.spendable_after;
            let mut stored = a.clone();
            stored.paid = true;
            tx.put_assignment(&stored)?;
            if v.primary {
                tx.put_held(a.id, &v.tally)?;
            }
            tx.pay_worker(a.job, a.id, &v.payout_to, a.payout, spendable)?;
            job.paid = Amount(
                job.paid
                    .0
                    .checked_add(a.payout.0)
                    .ok_or(PersistError::Overflow("job paid"))?,
            );
            if v.primary {
                job.photons_verified = job
                    .photons_verified
                    .checked_add(a.photons.count)
                    .ok_or(PersistError::Overflow("photons verified"))?;
            }
            tx.put_job(&job)?;
            if spendable {
                // Pay earned before the rig qualified becomes spendable with it.
                tx.release_pending(&v.payout_to)?;
            }
            Ok(Recorded {
                rig: rec,
                promoted,
                spendable,
            })
        })
    }

    /// Demotes a caught rig, ends its discarded assignments, drops their held results and
    /// forfeits its pending pay back to the escrows it came from, in one transaction. Returns
    /// the rig's record and the amount forfeited.
    pub fn caught(&self, records: &[AssignmentRecord], c: &Caught) -> Result<(RigRecord, u64)> {
        self.store.write(|tx| {
            write_queued(tx, records)?;
            let rec = tx.trust_error(&c.rig, c.kind, Some(c.assignment))?;
            for a in &c.ended {
                tx.put_assignment(a)?;
            }
            for (job, id, count) in &c.unverified {
                // Only a result whose tally was held counts toward its job (one decided
                // verified just before its rig was caught may have failed to commit).
                if tx.remove_held(*id)? {
                    let mut j = tx.job_required(*job)?;
                    j.photons_verified = j.photons_verified.saturating_sub(*count);
                    tx.put_job(&j)?;
                }
            }
            let forfeited = tx.forfeit_pending(&c.payout_to)?;
            let mut rec = rec;
            rec.forfeited = rec.forfeited.saturating_add(forfeited.0);
            tx.put_rig(&rec)?;
            Ok((rec, forfeited.0))
        })
    }

    /// Finishes a job: stores its merged result, takes `fee` (capped by what is left in
    /// escrow), refunds the rest and drops the held results, in one transaction. Returns
    /// (fee taken, refund).
    pub fn finished(
        &self,
        records: &[AssignmentRecord],
        job: JobId,
        merged: &[u8],
        digest: Digest,
        fee: u64,
        held: &[AssignmentId],
    ) -> Result<(u64, u64)> {
        self.store.write(|tx| {
            write_queued(tx, records)?;
            let mut j = tx.job_required(job)?;
            if j.state.is_closed() {
                return Err(PersistError::JobClosed(job.0));
            }
            tx.put_client_result(job, merged)?;
            let (fee, refund) = tx.close_escrow(job, &j.client, Amount(fee))?;
            for id in held {
                tx.remove_held(*id)?;
            }
            j.state = JobState::Done;
            j.finished_unix_s = Some(tx.now());
            j.result = Some(digest);
            tx.put_job(&j)?;
            Ok((fee.0, refund.0))
        })
    }

    /// A duplicate agreed with `rig`'s result: records that it passed one (it stays passed
    /// across restarts until the rig is caught) and, with `release`, makes the pending pay of
    /// `payout_to` spendable, in one transaction. Returns the rig's record.
    pub fn duplicate_passed(
        &self,
        records: &[AssignmentRecord],
        rig: &PublicKey,
        payout_to: &PublicKey,
        release: bool,
    ) -> Result<RigRecord> {
        self.store.write(|tx| {
            write_queued(tx, records)?;
            let mut rec = tx.rig_or_join(rig)?;
            if !rec.dup_passed {
                rec.dup_passed = true;
                tx.put_rig(&rec)?;
            }
            if release {
                tx.release_pending(payout_to)?;
            }
            Ok(rec)
        })
    }

    /// A client's star rating of a rig (one per client and rig; rating again replaces it).
    pub fn rate(&self, rig: &PublicKey, client: &PublicKey, stars: u8) -> Result<RigRecord> {
        self.store
            .write(|tx| Ok(tx.rate(rig, client, Rater::Client, stars)?))
    }

    /// A client's balance, micro-credits.
    pub fn client_balance(&self, key: &PublicKey) -> Result<i128, StoreError> {
        self.store
            .read()?
            .balance(&crate::ledger::Account::Client(*key))
    }

    /// A rig's stored record.
    pub fn rig(&self, key: &PublicKey) -> Result<Option<RigRecord>, StoreError> {
        self.store.read()?.rig(key)
    }

    /// Every star rating of a rig, in rater key order.
    pub fn ratings(&self, key: &PublicKey) -> Result<Vec<u8>, StoreError> {
        let read = self.store.read()?;
        let t = read
            .redb()
            .open_table(tables::RATINGS)
            .map_err(|e| read.db(e))?;
        let mut lo = [0u8; 64];
        lo[..32].copy_from_slice(key);
        let mut hi = [0xffu8; 64];
        hi[..32].copy_from_slice(key);
        let mut out = Vec::new();
        for item in t
            .range(lo.as_slice()..=hi.as_slice())
            .map_err(|e| read.db(e))?
        {
            let (_, v) = item.map_err(|e| read.db(e))?;
            out.push(v.value() & 0x0f);
        }
        Ok(out)
    }

    /// A job's record.
    pub fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.store.read()?.job(id)
    }

    /// An assignment's record.
    pub fn assignment(&self, id: AssignmentId) -> Result<Option<AssignmentRecord>, StoreError> {
        self.store.read()?.assignment(id)
    }

    /// A finished job's merged result.
    pub fn client_result(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.read()?.client_result(id)
    }

    /// The rigs with verified results in `job`, in the order they first appear.
    pub fn job_rigs(&self, job: JobId) -> Result<Vec<PublicKey>, StoreError> {
        let mut out: Vec<PublicKey> = Vec::new();
        for a in self.store.read()?.job_assignments(job)? {
            if a.state == AssignmentState::Verified
                && a.duplicate_of.is_none()
                && !out.contains(&a.rig)
            {
                out.push(a.rig);
            }
        }
        Ok(out)
    }

    /// Whether `rig` has a verified result in `job` (may rate it).
    pub fn worked_on(&self, job: JobId, rig: &PublicKey) -> Result<bool, StoreError> {
        Ok(self
            .store
            .read()?
            .job_assignments(job)?
            .iter()
            .any(|a| a.rig == *rig && a.state == AssignmentState::Verified))
    }

    /// What a restarted market resumes: every running job with its input, verified results
    /// and primary assignments still out. Unverified check runs are marked abandoned
    /// (durably) so the record matches what the market does with them.
    pub fn load(&self) -> Result<Vec<RestoredJob>, StoreError> {
        self.store.write(|tx| {
            let jobs: Vec<JobRecord> = tx
                .jobs()?
                .into_iter()
                .filter(|j| !j.state.is_closed())
                .collect();
            let mut out = Vec::with_capacity(jobs.len());
            let pending = pending_ids(tx)?;
            for record in jobs {
                let input = tx.input(&record.input)?.ok_or(StoreError::Corrupt {
                    table: "inputs",
                    key: format!("job {}", record.id.0),
                    source: crate::codec::CodecError::Corrupt {
                        what: "inputs",
                        reason: "the job's input is missing".into(),
                    },
                })?;
                let mut verified = Vec::new();
                let mut live = Vec::new();
                // Only this running job's assignments: finished jobs cost nothing here.
                for a in tx.job_assignments(record.id)?.iter() {
                    match a.state {
                        AssignmentState::Verified => {
                            let Some(tally) = tx.held(a.id)? else {
                                // Merged or dropped: its pay is settled; nothing to resume.
                                continue;
                            };
                            verified.push((a.clone(), tally, !pending.contains(&a.id.0)));
                        }
                        AssignmentState::Failed | AssignmentState::Abandoned => {}
                        _ if a.duplicate_of.is_none() => live.push(a.clone()),
                        _ => {
                            let mut gone = a.clone();
                            gone.state = AssignmentState::Abandoned;
                            tx.put_assignment(&gone)?;
                        }
                    }
                }
                out.push(RestoredJob {
                    record,
                    input,
                    verified,
                    live,
                });
            }
            Ok(out)
        })
    }
}

/// Assignments whose pay sits in a worker's pending account (not yet spendable).
fn pending_ids(tx: &WriteTx) -> Result<std::collections::HashSet<u64>, StoreError> {
    let t = tx
        .redb()
        .open_table(tables::PENDING)
        .map_err(|e| tx.db(e))?;
    let mut out = std::collections::HashSet::new();
    for item in t.iter().map_err(|e| tx.db(e))? {
        let (k, _) = item.map_err(|e| tx.db(e))?;
        let mut id = [0u8; 8];
        if let Some(tail) = k.value().get(32..40) {
            id.copy_from_slice(tail);
            out.insert(u64::from_be_bytes(id));
        }
    }
    Ok(out)
}
