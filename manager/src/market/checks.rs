//! Check runs: duplicates, arbitration and escalation, the rules that decide whether a
//! result agrees with an independent re-run of its range.
//!
//! - A duplicate re-runs a result's range on an idle device of a connected trusted rig (never
//!   the checked rig, never one already on that range) while the job's escrowed check
//!   allowance lasts, and on the manager's own engine (the root of trust) otherwise. Every untrusted rig's first
//!   result is duplicated, then `duplicate_ppm` of results; a check run is never itself
//!   duplicated. The rig cannot tell a check run from work: it is an ordinary `Assign`.
//! - Results are compared by tally digest, bit for bit. Agreement: the result proceeds, the
//!   check run is paid from the allowance, and the checked rig has passed a duplicate.
//! - Disagreement between a result and a duplicate from a trusted rig: a third run (another
//!   trusted rig, neither of the two, or the manager's engine) decides. The side that
//!   differs from it is demoted and forfeits its pending pay; a check run that agrees is paid.
//! - Escalation: an arbitration run that agrees with neither side decides nothing; the
//!   manager's engine then decides among all three, and every run that differs from it loses.
//! - A check run lost without a verdict (late, rejected, its rig caught) is started again on
//!   the next trusted rig or the manager's engine, so a result is never left unchecked.
//!
//! [`super`] keeps the orchestration (assignments, uploads, sampling, settlement); this
//! module only adds these rules to [`Market`].

use std::sync::Arc;

use compushare_protocol::msg::JobState;
use compushare_protocol::types::{AssignmentId, Digest, PhotonRange, PublicKey};

use super::{log, short, CheckRun, CrossCheck, Market, Stage, Task};
use crate::costing;
use crate::intake::JobSpec;
use crate::journal::Write;
use crate::persist::PersistError;
use crate::persist::{Recorded, Verified};
use crate::records::{AssignmentState, Verification};
use crate::scheduler::Candidate;
use crate::trust::ErrorKind;
use crate::trust::RigRecord;

impl Market {
    /// A check run ended without a verdict (late, rejected, its rig caught): the result it
    /// checked is checked again, by another trusted rig or the manager's engine.
    pub(super) fn check_lost(&mut self, run: CheckRun) {
        let Some(x) = self.assignments.get(&run.of) else {
            return;
        };
        if !x.stage.is_checking_or_held() {
            return;
        }
        let (range, job) = (x.range, x.job);
        let disputed = x.stage.opened().is_some_and(|o| o.cross.disputed.is_some());
        // A job being finished was merged without this check: nothing left to decide.
        let Some(spec) = self
            .jobs
            .get(&job)
            .filter(|j| !j.finishing)
            .map(|j| j.spec.clone())
        else {
            return;
        };
        if run.arbiter || disputed {
            let w = self.start_arbitration(run.of, spec, range);
            self.later.extend(w);
        } else {
            let w = self.start_duplicate(run.of, spec, range);
            self.later.extend(w);
        }
    }

    /// Has `id`'s range run again to compare digests: on a trusted rig (not the one being
    /// checked, not one already on that range) while the job's check allowance lasts,
    /// otherwise on the manager's own engine, the root of trust, so a job never waits for a
    /// trusted rig to appear. Returns the engine work, if that is where it runs.
    pub(super) fn start_duplicate(
        &mut self,
        id: AssignmentId,
        spec: Arc<JobSpec>,
        range: PhotonRange,
    ) -> Option<Task> {
        if let Some(a) = self.assignments.get_mut(&id) {
            if let Some(o) = a.stage.opened_mut() {
                o.cross.duplicate = Some(false);
            }
            if let Some(r) = self.rigs.get_mut(&a.rig) {
                if !r.public.trusted && !r.dup_passed {
                    r.dup_in_flight = Some(id);
                }
            }
        }
        self.run_check(id, spec, range, false)
    }

    /// A duplicate disagreed with `id`'s result: a third run decides, on another trusted rig
    /// (neither of the two) or on the manager's engine.
    fn start_arbitration(
        &mut self,
        id: AssignmentId,
        spec: Arc<JobSpec>,
        range: PhotonRange,
    ) -> Option<Task> {
        self.run_check(id, spec, range, true)
    }

    /// A check run of `id`'s range on a free trusted rig if there is one, or else the
    /// manager's engine (the work returned).
    fn run_check(
        &mut self,
        id: AssignmentId,
        spec: Arc<JobSpec>,
        range: PhotonRange,
        arbiter: bool,
    ) -> Option<Task> {
        if self.dispatch_check(id, arbiter) {
            if arbiter {
                self.stats.arbitrations_on_rigs += 1;
            } else {
                self.stats.check_runs += 1;
            }
            return None;
        }
        self.stats.duplicates += 1;
        Some(Task::Duplicate {
            assignment: id,
            spec,
            range,
        })
    }

    /// Issues a check run of `of`'s range to an idle device of a connected trusted rig with a
    /// standing bid on the job, excluding every rig already on that range; paid from the
    /// job's check allowance. Returns whether one was issued.
    fn dispatch_check(&mut self, of: AssignmentId, arbiter: bool) -> bool {
        let Some(x) = self.assignments.get(&of) else {
            return false;
        };
        let (job, range) = (x.job, x.range);
        let mut exclude: Vec<PublicKey> = vec![x.rig];
        if let Some((d, _)) = x.stage.opened().and_then(|o| o.cross.disputed) {
            if let Some(dup) = self.assignments.get(&d) {
                exclude.push(dup.rig);
            }
        }
        // Any rig given a check run of this result is on the range too (one that lost its
        // run is not asked again: the next trusted rig, or the manager's engine, is).
        for a in self.assignments.values() {
            if a.check.is_some_and(|c| c.of == of) {
                exclude.push(a.rig);
            }
        }
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        let payout = costing::pay(range.count, j.price_per_history);
        if j.check_budget < payout
            || j.finishing
            || !matches!(j.state, JobState::Running | JobState::Queued)
        {
            return false;
        }
        let (cost_milli, price) = (j.cost_milli, j.price_per_unit);
        // Only an idle device: the real rig (controller transport) rejects an Assign for a
        // busy device, which would cost a round trip and exclude that rig from checking this
        // result. No idle trusted device: the manager's engine runs it, never waiting.
        let mut best: Option<(PublicKey, Candidate)> = None;
        let mut keys: Vec<&PublicKey> = self.rigs.keys().collect();
        keys.sort();
        'rigs: for k in keys {
            let Some(rig) = self.rigs.get(k) else {
                continue;
            };
            if !rig.public.trusted
                || rig.link.is_none()
                || rig.excluded.contains(&job)
                || exclude.contains(k)
            {
                continue;
            }
            for ((bj, dev), bid) in rig.bids.range((job, 0)..=(job, u8::MAX)) {
                if *bj != job || bid.min_price > price || rig.busy.contains_key(dev) {
                    continue;
                }
                best = Some((*k, rig.candidate(0, *dev, bid, cost_milli)));
                break 'rigs;
            }
        }
        let Some((key, c)) = best else {
            return false;
        };
        if !self.issue(job, key, &c, range, Some(CheckRun { of, arbiter })) {
            return false;
        }
        if let Some(j) = self.jobs.get_mut(&job) {
            j.check_budget -= payout;
        }
        log(format_args!(
            "assignment {}: {} run on trusted rig {}",
            of.0,
            if arbiter { "arbitration" } else { "duplicate" },
            short(&key)
        ));
        true
    }

    /// The outcome of [`Task::Duplicate`]: the manager's own digest of the range. It decides
    /// a pending disagreement, or checks the result directly.
    pub fn duplicated(
        &mut self,
        id: AssignmentId,
        digest: Result<Digest, compushare_kernels::transport::TransportError>,
    ) -> Vec<Task> {
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let d = match digest {
            Ok(d) => d,
            Err(e) => {
                // The manager could not run it: no verdict on the rig; drop the duplicate.
                log(format_args!("duplicate of assignment {} failed: {e}", id.0));
                if let Some(o) = a.stage.opened_mut() {
                    o.cross = CrossCheck::default();
                }
                if let Some(r) = self.rigs.get_mut(&a.rig) {
                    if r.dup_in_flight == Some(id) {
                        r.dup_in_flight = None;
                    }
                }
                return self.proceed(id);
            }
        };
        if a.stage.opened().is_some_and(|o| o.cross.disputed.is_some()) {
            return self.decide(id, d, None);
        }
        if Some(d) == a.stage.digest() {
            self.duplicate_matched(id);
            return self.proceed(id);
        }
        if a.stage.is_checking_or_held() {
            self.fail(
                id,
                "tally digest differs from the trusted duplicate",
                ErrorKind::DuplicateMismatch,
            );
        }
        Vec::new()
    }

    /// Continues a result after its duplicate's outcome: finish its checks, or its job.
    pub(super) fn proceed(&mut self, id: AssignmentId) -> Vec<Task> {
        let Some(a) = self.assignments.get(&id) else {
            return Vec::new();
        };
        match a.stage {
            Stage::Checking { .. } => self.settle_check(id),
            Stage::Held { .. } => self.try_finish(Some(a.job)),
            _ => Vec::new(),
        }
    }

    /// A duplicate agreed with `id`'s result: its rig has passed a duplicate (and pay it
    /// earned while waiting for one may become spendable).
    pub(super) fn duplicate_matched(&mut self, id: AssignmentId) {
        let Some(a) = self.assignments.get_mut(&id) else {
            return;
        };
        if let Some(o) = a.stage.opened_mut() {
            o.cross.duplicate = Some(true);
        }
        let (rig_key, payout_to) = (a.rig, a.payout_to);
        let held = matches!(a.stage, Stage::Held { .. });
        let Some(r) = self.rigs.get_mut(&rig_key) else {
            // A rig not connected since a restart: its standing is in the store.
            self.journal.push(Write::DuplicatePassed {
                rig: rig_key,
                payout_to,
                release: false,
            });
            return;
        };
        let first = !r.dup_passed;
        r.dup_passed = true;
        if r.dup_in_flight == Some(id) {
            r.dup_in_flight = None;
        }
        // Pay of results verified before the rig's first duplicate passed waited in pending;
        // it qualifies now.
        let release = held && r.public.verified >= self.cfg.spendable_after;
        if !first && !release {
            return;
        }
        self.journal.push(Write::DuplicatePassed {
            rig: rig_key,
            payout_to,
            release,
        });
    }

    /// The outcome of a [`Write::DuplicatePassed`]: the rig's record, and its held results
    /// spendable if its pending pay was released.
    pub(super) fn duplicate_recorded(
        &mut self,
        rig: &PublicKey,
        payout_to: &PublicKey,
        release: bool,
        result: Result<RigRecord, PersistError>,
    ) {
        match result {
            Ok(rec) => {
                if let Some(r) = self.rigs.get_mut(rig) {
                    r.public.absorb(&rec);
                }
                if release {
                    self.mark_spendable(payout_to);
                }
            }
            Err(e) => {
                self.count_error(e.kind());
                log(format_args!(
                    "store: passed duplicate of rig {}: {e}",
                    short(rig)
                ));
            }
        }
    }

    /// A check run passed its own checks: compare it with the result it checks.
    pub(super) fn check_settled(&mut self, id: AssignmentId, run: CheckRun) -> Vec<Task> {
        let Some(c) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        c.stage.advance(|s| match s {
            Stage::Checking { result, .. } => Stage::Settled { result },
            other => other,
        });
        let theirs = c.stage.digest();
        let Some(x) = self.assignments.get(&run.of) else {
            self.pay_check(id, run.of);
            return Vec::new();
        };
        if !x.stage.is_checking_or_held() || theirs.is_none() {
            // The result was dropped meanwhile; the runs were done in good faith.
            let others = x
                .stage
                .opened()
                .map_or([None, None], |o| [o.cross.disputed, o.cross.suspect]);
            self.pay_check(id, run.of);
            for (d, _) in others.into_iter().flatten() {
                self.pay_check(d, run.of);
            }
            return Vec::new();
        }
        let (range, job) = (x.range, x.job);
        let Some(theirs) = theirs else {
            return Vec::new();
        };
        if run.arbiter {
            return self.decide(run.of, theirs, Some(id));
        }
        if x.stage.digest() == Some(theirs) {
            self.pay_check(id, run.of);
            self.duplicate_matched(run.of);
            return self.proceed(run.of);
        }
        log(format_args!(
            "assignment {}: duplicate {} on a trusted rig disagrees; arbitration",
            run.of.0, id.0
        ));
        if let Some(o) = self
            .assignments
            .get_mut(&run.of)
            .and_then(|x| x.stage.opened_mut())
        {
            o.cross.disputed = Some((id, theirs));
        }
        let Some(spec) = self.jobs.get(&job).map(|j| j.spec.clone()) else {
            return Vec::new();
        };
        self.start_arbitration(run.of, spec, range)
            .into_iter()
            .collect()
    }

    /// Decides a disagreement between `id`'s result and its duplicate by the digest of a
    /// third run (`arbiter`: its check run on a trusted rig; `None`: the manager's engine): a
    /// result that differs from it loses (its rig is demoted, its pending pay forfeited); a
    /// check run that agrees with it is paid. An arbiter that agrees with neither decides
    /// nothing: the manager's engine, the root of trust, then decides among all three.
    fn decide(
        &mut self,
        id: AssignmentId,
        reference: Digest,
        arbiter: Option<AssignmentId>,
    ) -> Vec<Task> {
        let Some(x) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let (range, job) = (x.range, x.job);
        let Some(o) = x.stage.opened_mut() else {
            return Vec::new();
        };
        let Some((dup, dup_digest)) = o.cross.disputed else {
            return Vec::new();
        };
        let ours = Some(o.digest);
        if let Some(a) = arbiter {
            if ours != Some(reference) && dup_digest != reference {
                log(format_args!(
                    "assignment {}: arbitration run {} agrees with neither; the manager decides",
                    id.0, a.0
                ));
                o.cross.suspect = Some((a, reference));
                self.stats.escalations += 1;
                self.stats.duplicates += 1;
                return match self.jobs.get(&job) {
                    Some(j) => vec![Task::Duplicate {
                        assignment: id,
                        spec: j.spec.clone(),
                        range,
                    }],
                    None => Vec::new(),
                };
            }
        }
        o.cross.disputed = None;
        let suspect = o.cross.suspect.take();
        self.stats.arbitrations += 1;
        let mut work = Vec::new();
        for (run, digest) in [Some((dup, dup_digest)), suspect].into_iter().flatten() {
            if digest == reference {
                self.pay_check(run, id);
            } else {
                self.fail(
                    run,
                    "check run differs from the arbitration",
                    ErrorKind::DuplicateMismatch,
                );
            }
        }
        if let Some(a) = arbiter {
            self.pay_check(a, id);
        }
        if ours == Some(reference) {
            self.duplicate_matched(id);
            work.extend(self.proceed(id));
        } else {
            self.fail(
                id,
                "tally digest differs from the arbitration run",
                ErrorKind::DuplicateMismatch,
            );
        }
        work
    }

    /// Pays a check run that was not found wrong, from the job's check allowance.
    fn pay_check(&mut self, id: AssignmentId, of: AssignmentId) {
        let Some(c) = self.assignments.get(&id) else {
            return;
        };
        if !matches!(c.stage, Stage::Settled { .. }) {
            return;
        }
        let (rig_key, payout_to, _, range, job, elapsed_ms) = (
            c.rig,
            c.payout_to,
            c.payout,
            c.range,
            c.job,
            c.stage.elapsed_ms(),
        );
        let Some(rig) = self.rigs.get(&rig_key) else {
            return;
        };
        let spendable_after = if rig.public.trusted || rig.dup_passed {
            self.cfg.spendable_after
        } else {
            u64::MAX
        };
        let cost_milli = self.jobs.get(&job).map_or(0, |j| j.cost_milli);
        let Some(record) = self.record(
            id,
            AssignmentState::Verified,
            Verification::DuplicateMatched { other: of },
        ) else {
            return;
        };
        let v = Verified {
            record,
            payout_to,
            tally: Vec::new(),
            elapsed_ms,
            cost_milli: range.count.saturating_mul(cost_milli),
            trust_histories: range.count,
            promote_after: self.cfg.trust_threshold,
            spendable_after,
            primary: false,
        };
        // Paid once that is durable (see `check_paid`).
        self.journal.push(Write::Verified(Box::new(v)));
        if let Some(c) = self.assignments.get_mut(&id) {
            c.stage.advance(|s| match s {
                Stage::Settled { result } => Stage::Recording { result },
                other => other,
            });
        }
    }

    /// A check run's payment is durable: it keeps only what a re-sent commitment is answered
    /// with, and its rig is told.
    pub(super) fn check_paid(&mut self, id: AssignmentId, recorded: &Recorded) {
        let Some(c) = self.assignments.get_mut(&id) else {
            return;
        };
        let (rig_key, payout) = (c.rig, c.payout);
        c.stage = Stage::Paid {
            commit: c.stage.commit(),
            spendable: recorded.spendable,
        };
        if let Some(r) = self.rigs.get_mut(&rig_key) {
            r.public.absorb(&recorded.rig);
            r.trusted_clean += 1;
        }
        self.notify_paid(&rig_key, id, payout, recorded.spendable);
    }
}
