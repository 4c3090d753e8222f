//! Clients' side of the market: job submission with its escrow, status, results, ratings
//! of rigs, and the public records they read; and the operator's hold on jobs: a cancelled
//! job leaves the market, the node's terms for new jobs change.

use std::collections::BTreeMap;
use std::sync::Arc;

use compushare_protocol::msg::{ErrorCode, JobState, JobStatus, ManagerToRig, Offer};
use compushare_protocol::types::{Amount, AssignmentId, JobId, Mode, PhotonRange, PublicKey};

use super::{log, short, Ended, JobEntry, Market, RigPublic, Stage};
use crate::costing;
use crate::intake::JobSpec;
use crate::ledger::LedgerError;
use crate::persist::{JobTerms, Persist, PersistError};
use crate::records::AssignmentState;
use crate::scheduler;
use crate::store::Store;
use crate::trust::RigRecord;

/// A job's terms decided under the market's lock ([`Market::decide_job`]), to be committed
/// off it ([`JobDecision::commit`]).
#[derive(Debug)]
pub struct JobDecision {
    terms: JobTerms,
    spec: JobSpec,
    price_per_history: u64,
    checks: u64,
}

/// A job's commit, to be applied under the market's lock ([`Market::job_committed`]).
#[derive(Debug)]
pub struct JobCommitted {
    decision: JobDecision,
    result: Result<JobId, PersistError>,
}

impl JobDecision {
    /// Stores the job and moves its escrow from the client's balance, in one transaction
    /// ([`Persist::accept_job`]). Blocking: runs off the market's lock.
    pub fn commit(self, store: &Arc<Store>) -> JobCommitted {
        let result = Persist::new(Arc::clone(store)).accept_job(&self.terms, &self.spec.input);
        JobCommitted {
            decision: self,
            result,
        }
    }
}

impl Market {
    /// Accepts a priced job: escrows its maximum cost plus fee and opens it for bids, in one
    /// call ([`Market::decide_job`], [`JobDecision::commit`], [`Market::job_committed`]). For a
    /// caller that holds the market alone (tests, tools): a node's sessions run the three
    /// steps themselves, the commit off the market's lock.
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &mut self,
        client: PublicKey,
        spec: JobSpec,
        photons: u64,
        mode: Mode,
        max_price: Amount,
        cost_milli: u64,
    ) -> Result<(JobId, Amount, Amount), (ErrorCode, String)> {
        let d = self.decide_job(client, spec, photons, mode, max_price, cost_milli);
        let committed = d.commit(self.persist.store());
        self.job_committed(committed)
    }

    /// Decides a job's terms from the market's settings as of now (a settings change after
    /// this applies to the next job only). Writes nothing: [`JobDecision::commit`] does, off
    /// the market's lock.
    pub fn decide_job(
        &self,
        client: PublicKey,
        spec: JobSpec,
        photons: u64,
        mode: Mode,
        max_price: Amount,
        cost_milli: u64,
    ) -> JobDecision {
        let price_per_history = costing::price_per_history(cost_milli, self.cfg.price_per_unit);
        let e = costing::escrow(
            photons,
            price_per_history,
            self.cfg.fee_bp,
            self.cfg.check_allowance_permille,
        );
        let terms = JobTerms {
            client,
            photons,
            seed: spec.job.seed,
            mode,
            max_price,
            cost_per_history_milli: cost_milli,
            price_per_unit: self.cfg.price_per_unit,
            escrow: Amount(e.total),
            fee_bp: self.cfg.fee_bp,
            check_allowance_permille: self.cfg.check_allowance_permille,
        };
        JobDecision {
            terms,
            spec,
            price_per_history,
            checks: e.checks,
        }
    }

    /// Applies a job's commit ([`JobDecision::commit`]): an accepted job enters the market
    /// and is offered to every connected rig; a refusal maps to the client's error. A job
    /// cancelled by the operator between its commit and this call stays out.
    pub fn job_committed(
        &mut self,
        committed: JobCommitted,
    ) -> Result<(JobId, Amount, Amount), (ErrorCode, String)> {
        let JobCommitted { decision, result } = committed;
        let JobDecision {
            terms,
            spec,
            price_per_history,
            checks,
        } = decision;
        let (photons, escrow) = (terms.photons, terms.escrow.0);
        let id = match result {
            Ok(id) => id,
            Err(e @ PersistError::Ledger(LedgerError::InsufficientBalance { .. })) => {
                return Err((ErrorCode::InsufficientFunds, e.to_string()));
            }
            Err(PersistError::PriceAboveMax { needed, max }) => {
                return Err((
                    ErrorCode::TooExpensive,
                    format!(
                        "{photons} photons at {price_per_history} per history plus fee and check allowance cost {needed}, above the maximum {max}"
                    ),
                ));
            }
            Err(e) => {
                self.count_error(e.kind());
                log(format_args!("store: job not accepted: {e}"));
                return Err((
                    ErrorCode::Internal,
                    "the manager could not record the job".into(),
                ));
            }
        };
        // The commit is durable: the client is told its job was accepted either way.
        let accepted = Ok((id, Amount(price_per_history), Amount(escrow)));
        // The operator may have cancelled it since (a store read; readers never wait).
        match self.persist.job(id) {
            Ok(Some(r)) if r.state == crate::records::JobState::Running => {}
            Ok(_) => {
                log(format_args!("job {} closed before it was opened", id.0));
                return accepted;
            }
            Err(e) => {
                // Opened anyway: a job that is not running is refused its pay by the store.
                self.count_error(e.kind());
                log(format_args!("store: job {}: {e}", id.0));
            }
        }
        let entry = JobEntry {
            client: terms.client,
            spec: Arc::new(spec),
            photons,
            mode: terms.mode,
            cost_milli: terms.cost_per_history_milli,
            price_per_history,
            price_per_unit: terms.price_per_unit,
            fee_bp: terms.fee_bp,
            pending: vec![PhotonRange {
                start: 0,
                count: photons,
            }],
            held: BTreeMap::new(),
            state: JobState::Queued,
            spent: 0,
            rigs: Vec::new(),
            finishing: false,
            check_budget: checks,
        };
        let offer = self.offer(id, &entry);
        self.jobs.insert(id, entry);
        log(format_args!(
            "job {} accepted: {photons} photons, {price_per_history} per history, escrow {escrow}",
            id.0
        ));
        for k in self.linked() {
            self.send(&k, ManagerToRig::Offer(offer));
        }
        accepted
    }

    /// Refuses a job the client cannot pay for at any price: its balance must cover the
    /// cheapest `photons` can cost ([`costing::cheapest_escrow`]). Checked when the job is
    /// announced, before its upload is accepted, and again before it is parsed.
    pub fn can_afford(&self, client: &PublicKey, photons: u64) -> Result<(), (ErrorCode, String)> {
        let needed = costing::cheapest_escrow(
            photons,
            self.cfg.price_per_unit,
            self.cfg.fee_bp,
            self.cfg.check_allowance_permille,
        );
        let balance = self.persist.client_balance(client).map_err(|e| {
            log(format_args!(
                "store: balance of client {}: {e}",
                short(client)
            ));
            (
                ErrorCode::Internal,
                "the manager could not read your balance; try again".to_owned(),
            )
        })?;
        if balance < i128::from(needed) {
            return Err((
                ErrorCode::InsufficientFunds,
                format!(
                    "{photons} photons cost at least {needed} micro-credits (one cost unit per \
                     history, fee and check allowance); your balance is {balance}"
                ),
            ));
        }
        Ok(())
    }

    /// A job's status, for its client.
    pub fn status(&self, client: &PublicKey, job: JobId) -> Option<JobStatus> {
        let Some(j) = self.jobs.get(&job) else {
            return self.stored_status(client, job);
        };
        if j.client != *client {
            return None;
        }
        let done: u64 = j
            .held
            .values()
            .filter_map(|a| self.assignments.get(a))
            .map(|a| a.range.count)
            .sum();
        let mut rigs = heapless::Vec::new();
        for r in &j.rigs {
            let _ = rigs.push(*r);
        }
        let state = match j.state {
            JobState::Running if scheduler::pending_total(&j.pending) == 0 => JobState::Verifying,
            s => s,
        };
        Some(JobStatus {
            job,
            state,
            photons_done: if j.state == JobState::Done {
                j.photons
            } else {
                done
            },
            photons_total: j.photons,
            spent: Amount(j.spent),
            rigs,
        })
    }

    /// A job finished before this manager started: its status from the store.
    pub(super) fn stored_status(&self, client: &PublicKey, job: JobId) -> Option<JobStatus> {
        let rec = match self.persist.job(job) {
            Ok(r) => r?,
            Err(e) => {
                log(format_args!("store: job {}: {e}", job.0));
                return None;
            }
        };
        if rec.client != *client {
            return None;
        }
        let state = match rec.state {
            crate::records::JobState::Done => JobState::Done,
            crate::records::JobState::Cancelled => JobState::Cancelled,
            // Running jobs are all in memory; one that is not could not be restored.
            crate::records::JobState::Running => JobState::Failed,
        };
        let mut rigs = heapless::Vec::new();
        match self.persist.job_rigs(job) {
            Ok(keys) => {
                for k in keys {
                    if rigs.push(k).is_err() {
                        break;
                    }
                }
            }
            Err(e) => log(format_args!("store: rigs of job {}: {e}", job.0)),
        }
        Some(JobStatus {
            job,
            state,
            photons_done: rec.photons_verified,
            photons_total: rec.photons,
            spent: rec.paid,
            rigs,
        })
    }

    /// The merged tally's canonical bytes of a finished job, for its client.
    pub fn client_result(&self, client: &PublicKey, job: JobId) -> Result<Arc<Vec<u8>>, ErrorCode> {
        if let Some(j) = self.jobs.get(&job) {
            if j.client != *client {
                return Err(ErrorCode::UnknownJob);
            }
            // Finished jobs leave memory: one still here has no result yet.
            return Err(ErrorCode::NotReady);
        }
        // Finished before this manager started.
        self.stored_job_of(client, job)?;
        match self.persist.client_result(job) {
            Ok(Some(bytes)) => Ok(Arc::new(bytes)),
            Ok(None) => Err(ErrorCode::NotReady),
            Err(_) => Err(ErrorCode::Internal),
        }
    }

    /// Checks that `job`, no longer in memory, is stored and belongs to `client` (another
    /// client's job is reported unknown, not refused: its existence is not theirs to learn).
    fn stored_job_of(&self, client: &PublicKey, job: JobId) -> Result<(), ErrorCode> {
        let owned = self
            .persist
            .job(job)
            .map_err(|_| ErrorCode::Internal)?
            .is_some_and(|r| r.client == *client);
        if owned {
            Ok(())
        } else {
            Err(ErrorCode::UnknownJob)
        }
    }

    /// A client's star rating of a rig that worked on its job, in one call
    /// ([`Market::may_rate`], [`Persist::rate`], [`Market::rated`]). For a caller that holds
    /// the market alone: a node's sessions commit the rating off the market's lock.
    pub fn rate(
        &mut self,
        client: &PublicKey,
        job: JobId,
        rig: &PublicKey,
        stars: u8,
    ) -> Result<(), ErrorCode> {
        self.may_rate(client, job, rig, stars)?;
        let r = self.persist.rate(rig, client, stars);
        self.rated(rig, r)
    }

    /// Checks a rating (reads only): `job` is the client's, `rig` worked on it, `stars` is
    /// 1 to 5. The rating itself is committed off the lock ([`Persist::rate`]).
    pub fn may_rate(
        &self,
        client: &PublicKey,
        job: JobId,
        rig: &PublicKey,
        stars: u8,
    ) -> Result<(), ErrorCode> {
        let worked = match self.jobs.get(&job) {
            Some(j) if j.client == *client => j.rigs.contains(rig),
            Some(_) => return Err(ErrorCode::UnknownJob),
            None => {
                self.stored_job_of(client, job)?;
                self.persist
                    .worked_on(job, rig)
                    .map_err(|_| ErrorCode::Internal)?
            }
        };
        if !(1..=5).contains(&stars) || !worked {
            return Err(ErrorCode::Protocol);
        }
        Ok(())
    }

    /// Applies a committed rating: the rig's public record, if it is here, takes its new
    /// ratings; a failed commit is counted and reported to the client.
    pub fn rated(
        &mut self,
        rig: &PublicKey,
        result: Result<RigRecord, PersistError>,
    ) -> Result<(), ErrorCode> {
        match result {
            Ok(rec) => {
                if let Some(r) = self.rigs.get_mut(rig) {
                    r.public.absorb(&rec);
                }
                Ok(())
            }
            Err(e) => {
                self.count_error(e.kind());
                log(format_args!("store: rating of rig {}: {e}", short(rig)));
                Err(ErrorCode::Internal)
            }
        }
    }

    /// A rig's public record: its stored trust record and ratings, with this session's label
    /// and pay counters when it is known here.
    pub fn rig_record(&self, rig: &PublicKey) -> Option<RigPublic> {
        let stored = match self.persist.rig(rig) {
            Ok(r) => r,
            Err(e) => {
                log(format_args!("store: rig {}: {e}", short(rig)));
                None
            }
        };
        let live = self.rigs.get(rig).map(|r| r.public.clone());
        let mut public = match (&stored, live) {
            (None, None) => return None,
            (_, Some(p)) => p,
            (Some(_), None) => RigPublic {
                label: format!("rig-{}", short(rig)),
                ..RigPublic::default()
            },
        };
        if let Some(rec) = &stored {
            public.absorb(rec);
        }
        public.ratings = self.persist.ratings(rig).unwrap_or_default();
        Some(public)
    }

    /// The keys of the rigs connected now.
    fn linked(&self) -> Vec<PublicKey> {
        self.rigs
            .iter()
            .filter(|(_, r)| r.link.is_some())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Connected rigs.
    pub fn connected(&self) -> usize {
        self.rigs.values().filter(|r| r.link.is_some()).count()
    }

    /// Takes out a job whose cancellation is already durable (`crate::admin::jobs`: the job
    /// closed, verified work paid, the rest of its escrow refunded, in one transaction; the
    /// store refuses any later pay into it). Its offer is closed on every connected rig; work
    /// out with rigs (issued, uploading, being checked, check runs) is cancelled on them and
    /// recorded abandoned; its held results leave memory. Returns the assignments cancelled.
    /// Nothing here writes durably (queued records go with the next flush).
    pub fn cancelled(&mut self, job: JobId) -> usize {
        let Some(j) = self.jobs.get(&job) else {
            return 0;
        };
        let closing = Offer {
            photons_left: 0,
            ..self.offer(job, j)
        };
        let live: Vec<(AssignmentId, PublicKey)> = self
            .assignments
            .iter()
            .filter(|(_, a)| {
                a.job == job && !a.stage.is_over() && !matches!(a.stage, Stage::Held { .. })
            })
            .map(|(id, a)| (*id, a.rig))
            .collect();
        // Recorded while the job is here (the record carries its seed).
        // Not one whose payment is in the journal (`Recording`): that write lands either
        // before the cancel's transaction (the cancel saw it verified and paid) or after it
        // (the store refuses pay into a closed job, and the cancel recorded it abandoned), so
        // an abandoned record queued now would only overwrite what the store decided.
        let recording: Vec<AssignmentId> = live
            .iter()
            .filter(|(id, _)| {
                self.assignments
                    .get(id)
                    .is_some_and(|a| matches!(a.stage, Stage::Recording { .. }))
            })
            .map(|(id, _)| *id)
            .collect();
        for (id, _) in &live {
            if !recording.contains(id) {
                self.note(*id, AssignmentState::Abandoned, false);
            }
        }
        // Gone first, so nothing below hands its range or a check of it out again.
        self.jobs.remove(&job);
        for (id, rig) in &live {
            // An upload under way is dropped without blame, like a re-sent one.
            let uploading: Vec<(PublicKey, compushare_protocol::types::Digest)> = self
                .uploads
                .iter()
                .filter(|(_, v)| **v == *id)
                .map(|(k, _)| *k)
                .collect();
            for k in uploading {
                self.uploads.remove(&k);
                self.resent.insert(k);
            }
            self.send(rig, ManagerToRig::Cancel { assignment: *id });
            self.release_quiet(*id, Ended::Discarded);
        }
        self.assignments.retain(|_, a| a.job != job);
        for k in self.linked() {
            self.send(&k, ManagerToRig::Offer(closing));
        }
        for r in self.rigs.values_mut() {
            r.bids.retain(|(b, _), _| *b != job);
            r.excluded.remove(&job);
        }
        self.stats.evicted += 1;
        log(format_args!(
            "job {} cancelled: {} assignment(s) out with rigs cancelled",
            job.0,
            live.len()
        ));
        live.len()
    }

    /// Takes the node's fee, price and credit value from its stored settings (an operator
    /// changed them): jobs submitted from now on are priced and escrowed with them; a new
    /// credit value goes to every connected rig at once (`CreditValue`) and to rigs that
    /// connect later in `Welcome`. Jobs already accepted keep their own fee and price.
    pub fn set_terms(&mut self, stored: &crate::Config) {
        self.cfg.fee_bp = u64::from(stored.fee_bp);
        self.cfg.price_per_unit = stored.price_per_unit;
        if self.cfg.credit_msat != stored.credit_msat {
            self.cfg.credit_msat = stored.credit_msat;
            // Connected rigs compare transport with mining in this unit: told now.
            let m = ManagerToRig::CreditValue {
                credit_msat: stored.credit_msat,
            };
            for k in self.linked() {
                self.send(&k, m.clone());
            }
        }
    }
}
