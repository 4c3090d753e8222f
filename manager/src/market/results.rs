//! Results coming back: commitments and sealed uploads, opening and sample checks, settling
//! a verified result (pay, trust), failures and the rigs caught by them, finishing a job
//! (exact merge, fee, refund), and the periodic tick that enforces deadlines.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_kernels::transport::tally::Tally;
use compushare_protocol::msg::{
    AckStatus, HistoryProof, JobState, ManagerToRig, Offer, ResultCommit,
};
use compushare_protocol::types::{Amount, AssignmentId, JobId, PublicKey, TrustLevel};

use super::{
    log, short, CheckError, Committed, CrossCheck, Ended, Market, Opened, Samples, Stage, Task,
};
use crate::journal::{Finish, FinishError, Settled, Write};
use crate::persist::PersistError;
use crate::persist::{Caught, Recorded, Verified};
use crate::records::{AssignmentState, Verification};
use crate::sealed::{max_sealed_len, SealedError};
use crate::trust::ErrorKind;
use crate::trust::RigRecord;
use crate::verify;
use compushare_protocol::chunk::Reassembler;

impl Market {
    /// Tells `key` its result for `id` failed and returns the range to the pool.
    fn discard_result(&mut self, key: &PublicKey, id: AssignmentId) {
        self.send(
            key,
            ManagerToRig::Ack {
                assignment: id,
                status: AckStatus::Failed,
            },
        );
        self.release(id, Ended::Discarded);
    }

    pub(super) fn commit(&mut self, key: &PublicKey, c: ResultCommit) {
        let id = c.assignment;
        let Some(a) = self.assignments.get(&id) else {
            // The rig drops it and its device is idle (a result of an assignment this node
            // forgot in a crash): it is offered work again.
            self.reoffer.insert(*key);
            return self.unknown(key, id, "result for an assignment that does not exist");
        };
        if a.rig != *key {
            return self.unknown(key, id, "result for another rig's assignment");
        }
        if !a.stage.is_assigned() {
            return self.commit_again(key, c);
        }
        if c.histories != a.range.count {
            self.stats.abuse += 1;
            log(format_args!(
                "rig {}: result of assignment {} covers {} histories, not {}",
                short(key),
                id.0,
                c.histories,
                a.range.count
            ));
            return self.discard_result(key, id);
        }
        let Some(spec) = self.jobs.get(&a.job).map(|j| j.spec.clone()) else {
            return self.unknown(key, id, "result for a finished job");
        };
        let max = max_sealed_len(spec.cells as u64, a.range.count, spec.job.media.len());
        let upload = match Reassembler::growing(c.sealed, c.sealed_len, max) {
            Ok(x) => x,
            Err(e) => {
                self.stats.abuse += 1;
                log(format_args!("rig {}: {e}", short(key)));
                return self.discard_result(key, id);
            }
        };
        let now = Instant::now();
        if let Some(a) = self.assignments.get_mut(&id) {
            // Time to return / cost: the record that sizes this rig's next assignments.
            let secs = now.duration_since(a.assigned_at).as_secs_f64();
            let elapsed_ms =
                u64::try_from(now.duration_since(a.assigned_at).as_millis()).unwrap_or(u64::MAX);
            let cost =
                a.range.count as f64 * self.jobs.get(&a.job).map_or(1, |j| j.cost_milli) as f64;
            let sample = secs / cost.max(1.0);
            if let Some(r) = self.rigs.get_mut(key) {
                let s = &mut r.public.s_per_milli;
                *s = Some(match *s {
                    Some(old) => 0.5 * old + 0.5 * sample,
                    None => sample,
                });
                if r.busy.get(&a.device) == Some(&id) {
                    r.busy.remove(&a.device);
                }
            }
            a.stage = Stage::Uploading {
                result: Committed {
                    commit: c,
                    elapsed_ms,
                },
                upload,
            };
        }
        self.uploads.insert((*key, c.sealed), id);
        self.match_rig(key);
        self.reoffer.insert(*key);
    }

    /// A commitment for an assignment past `Assigned`: a rig re-sends every result it holds
    /// unverified when it reconnects (the manager may have restarted and lost the upload).
    /// The same commitment from the same rig is answered with where the result stands, and
    /// the upload that follows it is dropped; anything else is a replay.
    fn commit_again(&mut self, key: &PublicKey, c: ResultCommit) {
        let id = c.assignment;
        let Some(a) = self.assignments.get(&id) else {
            return;
        };
        if matches!(a.stage, Stage::Late | Stage::Discarded) {
            // The rig drops it and its device is idle: it is offered work again.
            self.reoffer.insert(*key);
            return self.unknown(key, id, "result for an assignment that ended");
        }
        let same = match a.stage.commit() {
            Some(prev) => prev == c,
            // Restored verified: only its tally digest was kept.
            None => a.stage.digest() == Some(c.tally) && c.histories == a.range.count,
        };
        if !same {
            let why = format!(
                "replayed result ({}, {})",
                a.stage.name(),
                if a.stage.commit().is_some() {
                    "another commitment"
                } else {
                    "another tally"
                }
            );
            return self.unknown(key, id, &why);
        }
        let payout = a.payout;
        // Where the result stands: received (with the sample proofs still owed), or paid.
        let (received, owed, spendable): (bool, bool, bool) = match &a.stage {
            Stage::Uploading { .. } | Stage::Opening { .. } | Stage::Recording { .. } => {
                (true, false, false)
            }
            Stage::Checking { samples, .. } => (true, !samples.outstanding.is_empty(), false),
            Stage::Held { spendable, .. } | Stage::Paid { spendable, .. } => {
                (false, false, *spendable)
            }
            Stage::Settled { .. } => (false, false, false),
            Stage::Assigned { .. } | Stage::Late | Stage::Discarded => return,
        };
        self.resent.insert((*key, c.sealed));
        if !received {
            return self.notify_paid(key, id, payout, spendable);
        }
        self.send(
            key,
            ManagerToRig::Ack {
                assignment: id,
                status: AckStatus::Received,
            },
        );
        // Sample requests sent on the lost session are asked again, on this one, with a
        // fresh deadline (see `tick`).
        if owed {
            self.ask_samples(key, id, Ask::Again);
        }
    }

    /// Sends `key` the requests for every proof `id` still owes, on its session now, due
    /// `deadline_min` from now (the deadline [`Market::tick`] holds the rig to), but for
    /// [`Ask::Again`] past [`super::MAX_REASKS`]: the requests go out, the earlier deadline
    /// (and session) stands.
    fn ask_samples(&mut self, key: &PublicKey, id: AssignmentId, ask: Ask) {
        let session = self.session_of(key);
        let deadline = Instant::now() + self.cfg.deadline_min;
        let Some(a) = self.assignments.get_mut(&id) else {
            return;
        };
        let Stage::Checking { samples, .. } = &mut a.stage else {
            return;
        };
        match ask {
            Ask::Again if samples.reasked >= super::MAX_REASKS => {}
            Ask::First | Ask::Again => {
                samples.reasked += u8::from(ask == Ask::Again);
                a.deadline = deadline;
                samples.asked_on = session;
                samples.reminded = false;
            }
            Ask::Reminder => {
                a.deadline = deadline;
                samples.reminded = true;
            }
        }
        let photons: Vec<u64> = samples.outstanding.iter().copied().collect();
        for group in photons.chunks(compushare_protocol::limits::SAMPLES_PER_REQUEST) {
            let mut v = heapless::Vec::new();
            for p in group {
                let _ = v.push(*p);
            }
            self.send(
                key,
                ManagerToRig::SampleRequest {
                    assignment: id,
                    photons: v,
                },
            );
        }
    }

    pub(super) fn chunk(
        &mut self,
        key: &PublicKey,
        chunk: &compushare_protocol::chunk::Chunk,
    ) -> Vec<Task> {
        let Some(&id) = self.uploads.get(&(*key, chunk.content)) else {
            if self.resent.contains(&(*key, chunk.content)) {
                // The upload of a result already received: dropped, without blame.
                if chunk.offset as usize + chunk.data.len() >= chunk.total_len as usize {
                    self.resent.remove(&(*key, chunk.content));
                }
                return Vec::new();
            }
            self.stats.abuse += 1;
            log(format_args!(
                "rig {}: result chunk for no committed result; rejected",
                short(key)
            ));
            return Vec::new();
        };
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let accepted = match &mut a.stage {
            Stage::Uploading { upload, .. } => upload.accept(chunk),
            _ => return Vec::new(),
        };
        match accepted {
            Ok(false) => Vec::new(),
            Ok(true) => {
                self.uploads.remove(&(*key, chunk.content));
                let mut sealed = None;
                a.stage.advance(|s| match s {
                    Stage::Uploading { result, upload } => {
                        sealed = Some((result.commit, upload.into_payload()));
                        Stage::Opening { result }
                    }
                    other => other,
                });
                let Some((commit, sealed)) = sealed else {
                    return Vec::new();
                };
                let job = a.job;
                match self.jobs.get(&job) {
                    Some(j) => vec![Task::Open {
                        assignment: id,
                        spec: j.spec.clone(),
                        sealed,
                        commit,
                    }],
                    None => Vec::new(),
                }
            }
            Err(e) => {
                self.uploads.remove(&(*key, chunk.content));
                log(format_args!("rig {}: assignment {}: {e}", short(key), id.0));
                self.fail(id, &e.to_string(), ErrorKind::BadResult);
                Vec::new()
            }
        }
    }

    /// The outcome of [`Task::Open`]: every [`SealedError`] is the rig's (its box, its
    /// tally, its commitment).
    pub fn opened(&mut self, id: AssignmentId, result: Result<Tally, SealedError>) -> Vec<Task> {
        let tally = match result {
            Ok(t) => t,
            Err(e) => {
                self.fail(id, &e.to_string(), ErrorKind::BadResult);
                return Vec::new();
            }
        };
        let k = self.cfg.samples;
        let r = self.random();
        let dup_roll = self.random() % 1_000_000;
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let Stage::Opening { result } = a.stage else {
            return Vec::new();
        };
        let (rig_key, range, job) = (a.rig, a.range, a.job);
        let is_check = a.check.is_some();
        // From here its deadline is the sample proofs' (see `ask_samples`).
        a.deadline = Instant::now() + self.cfg.deadline_min;
        a.stage = Stage::Checking {
            result: Opened {
                commit: Some(result.commit),
                elapsed_ms: result.elapsed_ms,
                digest: tally.digest(),
                tally: Arc::new(tally),
                sampled: false,
                cross: CrossCheck::default(),
            },
            samples: Samples {
                outstanding: Default::default(),
                in_flight: 0,
                asked_on: None,
                reasked: 0,
                reminded: false,
            },
        };
        let Some(rig) = self.rigs.get(&rig_key) else {
            return Vec::new();
        };
        let trusted = rig.public.trusted;
        let sample = !trusted
            || (r as f64 / u64::MAX as f64) < verify::trusted_check_probability(rig.trusted_clean);
        let first_dup = !trusted && !rig.dup_passed && rig.dup_in_flight.is_none();
        // A check run is not itself duplicated: the comparison checks it.
        let duplicate = !is_check && (first_dup || dup_roll < self.cfg.duplicate_ppm);
        self.send(
            &rig_key,
            ManagerToRig::Ack {
                assignment: id,
                status: AckStatus::Received,
            },
        );
        let mut work = Vec::new();
        if sample {
            let mut photons = Vec::new();
            let mut rng = || self.random();
            photons.extend(verify::pick_samples(range, k, &mut rng));
            if let Some(Stage::Checking { result, samples }) =
                self.assignments.get_mut(&id).map(|a| &mut a.stage)
            {
                result.sampled = true;
                samples.outstanding = photons.iter().copied().collect();
            }
            self.ask_samples(&rig_key, id, Ask::First);
        }
        if duplicate {
            if let Some(spec) = self.jobs.get(&job).map(|j| j.spec.clone()) {
                work.extend(self.start_duplicate(id, spec, range));
            }
        }
        work.extend(self.settle_check(id));
        work
    }

    pub(super) fn proofs(
        &mut self,
        key: &PublicKey,
        id: AssignmentId,
        proofs: Vec<HistoryProof>,
    ) -> Vec<Task> {
        // Proofs nobody waits for are dropped, not answered `Unknown` (which makes a rig drop
        // the result): a rig's proofs computed for a session that ended (the manager
        // restarted, and asks its own samples again) arrive on the next one. Dropping them
        // costs a cheater nothing it could gain: only the photons asked for are checked, and
        // all of them must be proven before the check deadline.
        let checking = self
            .assignments
            .get_mut(&id)
            .filter(|a| a.rig == *key)
            .and_then(|a| match &mut a.stage {
                Stage::Checking { result, samples } => {
                    Some((a.job, a.range, result.commit, samples))
                }
                _ => None,
            });
        let Some((job, range, commit, samples)) = checking else {
            self.stats.stale_proofs += proofs.len() as u64;
            return Vec::new();
        };
        let before = proofs.len();
        let proofs: Vec<HistoryProof> = proofs
            .into_iter()
            .filter(|p| samples.outstanding.remove(&p.photon))
            .collect();
        self.stats.stale_proofs += (before - proofs.len()) as u64;
        if proofs.is_empty() {
            return Vec::new();
        }
        let (Some(commit), Some(spec)) = (commit, self.jobs.get(&job).map(|j| j.spec.clone()))
        else {
            return Vec::new();
        };
        samples.in_flight += 1;
        vec![Task::Check {
            assignment: id,
            spec,
            range,
            root: commit.merkle_root,
            proofs,
        }]
    }

    /// The outcome of [`Task::Check`]. A rig whose proof or record is wrong is caught; a
    /// check the manager's own engine could not run gives no verdict: the rig is not blamed,
    /// the result is released (its range computed again) and the rig told it is not wanted.
    pub fn checked(
        &mut self,
        id: AssignmentId,
        n: usize,
        result: Result<(), CheckError>,
    ) -> Vec<Task> {
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let rig = a.rig;
        let Stage::Checking { samples, .. } = &mut a.stage else {
            return Vec::new();
        };
        samples.in_flight = samples.in_flight.saturating_sub(1);
        match result {
            Ok(()) => {
                self.stats.samples_checked += n as u64;
                self.settle_check(id)
            }
            Err(CheckError::Rig(e)) => {
                self.stats.samples_checked += n as u64;
                self.fail(id, &e.to_string(), ErrorKind::SampleMismatch);
                Vec::new()
            }
            Err(e @ CheckError::Engine(_)) => {
                self.stats.unchecked += 1;
                log(format_args!(
                    "assignment {}: sample check not run ({e}); released, rig not blamed",
                    id.0
                ));
                self.send(&rig, ManagerToRig::Cancel { assignment: id });
                release_unchecked(self, id);
                Vec::new()
            }
        }
    }

    /// Moves a result to `Held` once every requested sample passed and any duplicate agreed.
    pub(super) fn settle_check(&mut self, id: AssignmentId) -> Vec<Task> {
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let Stage::Checking { result, samples } = &a.stage else {
            return Vec::new();
        };
        if !samples.outstanding.is_empty()
            || samples.in_flight > 0
            || result.cross.duplicate == Some(false)
        {
            return Vec::new();
        }
        if let Some(run) = a.check {
            return self.check_settled(id, run);
        }
        let (job, rig_key, range, payout_to, _) = (a.job, a.rig, a.range, a.payout_to, a.payout);
        let sampled = result.sampled;
        let duplicated = result.cross.duplicate == Some(true);
        let elapsed_ms = result.elapsed_ms;
        let tally = result.tally.canonical_bytes();
        let Some(rig) = self.rigs.get(&rig_key) else {
            return Vec::new();
        };
        let trusted = rig.public.trusted;
        // Promotion also needs a passed duplicate: sample checks alone never make a rig
        // trusted.
        let promote_after = if rig.dup_passed || trusted {
            self.cfg.trust_threshold
        } else {
            u64::MAX
        };
        // Spendable pay needs enough verified work and a passed duplicate (or trust): pay to a
        // rig never cross-checked stays pending, so it can still be forfeited.
        let spendable_after = if rig.dup_passed || trusted {
            self.cfg.spendable_after
        } else {
            u64::MAX
        };
        let cost_milli = self.jobs.get(&job).map_or(0, |j| j.cost_milli);
        let verification = if duplicated {
            Verification::DuplicateMatched { other: id }
        } else if sampled {
            Verification::SamplePassed {
                k: u32::try_from(self.cfg.samples).unwrap_or(u32::MAX),
            }
        } else {
            Verification::Unchecked
        };
        let Some(record) = self.record(id, AssignmentState::Verified, verification) else {
            return Vec::new();
        };
        let v = Verified {
            record,
            payout_to,
            tally,
            elapsed_ms,
            cost_milli: range.count.saturating_mul(cost_milli),
            trust_histories: if sampled || duplicated || trusted {
                range.count
            } else {
                0
            },
            promote_after,
            spendable_after,
            primary: true,
        };
        // Held once its payment is durable (see `recorded`).
        self.journal.push(Write::Verified(Box::new(v)));
        if let Some(a) = self.assignments.get_mut(&id) {
            a.stage.advance(|s| match s {
                Stage::Checking { result, .. } => Stage::Recording { result },
                other => other,
            });
        }
        Vec::new()
    }

    /// The outcome of a [`Write::Verified`]: a primary result is held (its job may finish), a
    /// check run is paid; its rig is told only now, its pay durable. A result that moved on
    /// meanwhile (its rig caught: its pending pay was forfeited after this payment) keeps what
    /// that made of it.
    pub(super) fn recorded(
        &mut self,
        id: AssignmentId,
        result: Result<Recorded, PersistError>,
    ) -> Vec<Task> {
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let (job, rig_key, range, payout_to, payout) =
            (a.job, a.rig, a.range, a.payout_to, a.payout);
        if !matches!(a.stage, Stage::Recording { .. }) {
            if let (Ok(recorded), Some(r)) = (&result, self.rigs.get_mut(&rig_key)) {
                r.public.absorb(&recorded.rig);
            }
            return Vec::new();
        }
        let recorded = match result {
            Ok(r) => r,
            Err(e) => {
                if a.check.is_some() {
                    log(format_args!(
                        "store: check run {} not recorded: {e}; unpaid",
                        id.0
                    ));
                    a.stage = Stage::Discarded;
                } else {
                    // Not recorded, so not verified: the range is computed again.
                    log(format_args!(
                        "store: verified result of assignment {} not recorded: {e}; reassigned",
                        id.0
                    ));
                    self.release_quiet(id, Ended::Discarded);
                }
                self.count_error(e.kind());
                return Vec::new();
            }
        };
        if a.check.is_some() {
            self.check_paid(id, &recorded);
            return Vec::new();
        }
        a.stage.advance(|s| match s {
            Stage::Recording { result } => Stage::Held {
                result,
                spendable: recorded.spendable,
            },
            other => other,
        });
        let trusted = self.rigs.get(&rig_key).is_some_and(|r| r.public.trusted);
        if recorded.spendable {
            // The rig's earlier pending pay was released with this one.
            self.mark_spendable(&payout_to);
        }
        if let Some(j) = self.jobs.get_mut(&job) {
            j.held.insert(range.start, id);
            if !j.rigs.contains(&rig_key) {
                j.rigs.push(rig_key);
            }
        }
        if let Some(r) = self.rigs.get_mut(&rig_key) {
            r.public.absorb(&recorded.rig);
            if r.public.trusted && trusted {
                r.trusted_clean += 1;
            }
        }
        if recorded.promoted {
            log(format_args!(
                "rig {} is trusted after {} verified histories",
                short(&rig_key),
                recorded.rig.consecutive_verified
            ));
        }
        self.notify_paid(&rig_key, id, payout, recorded.spendable);
        self.try_finish(Some(job))
    }

    /// Tells a rig its result `id` was verified and what it was paid (pending or spendable).
    pub(super) fn notify_paid(
        &mut self,
        rig: &PublicKey,
        id: AssignmentId,
        payout: u64,
        spendable: bool,
    ) {
        self.send(
            rig,
            ManagerToRig::Ack {
                assignment: id,
                status: AckStatus::Verified,
            },
        );
        self.send(
            rig,
            ManagerToRig::PaymentNotice {
                assignment: id,
                amount: Amount(payout),
                spendable,
            },
        );
    }

    /// A result failed verification: the rig is demoted, its results whose pay is still
    /// pending are discarded (their photons recomputed elsewhere) and that pay forfeited, and
    /// work still out with it is cancelled. Results it was already paid spendable for passed
    /// their own checks and stay.
    pub(super) fn fail(&mut self, id: AssignmentId, why: &str, kind: ErrorKind) {
        // Results of a job being finished are merged already (the settlement commits before
        // this rig's demotion): they stay, as they would once the job left memory.
        let finishing: HashSet<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.finishing)
            .map(|(k, _)| *k)
            .collect();
        let Some(a) = self.assignments.get(&id) else {
            return;
        };
        let rig_key = a.rig;
        let payout_to = a.payout_to;
        let job = a.job;
        self.stats.caught += 1;
        log(format_args!(
            "rig {}: assignment {} failed verification: {why}; rig demoted",
            short(&rig_key),
            id.0
        ));
        self.send(
            &rig_key,
            ManagerToRig::Ack {
                assignment: id,
                status: AckStatus::Failed,
            },
        );
        // Demote and exclude first, so the discarded photons never go back to this rig.
        if let Some(r) = self.rigs.get_mut(&rig_key) {
            r.public.errors += 1;
            r.public.demotions += u64::from(r.public.trusted);
            r.public.trusted = false;
            r.public.streak = 0;
            r.dup_passed = false;
            r.dup_in_flight = None;
            r.trusted_clean = 0;
            r.excluded.insert(job);
            r.bids.retain(|(j, _), _| *j != job);
        }
        let mut discard: Vec<AssignmentId> = vec![id];
        let mut cancel: Vec<AssignmentId> = Vec::new();
        for (other, x) in &self.assignments {
            if x.rig != rig_key || *other == id || finishing.contains(&x.job) {
                continue;
            }
            match x.stage {
                Stage::Held {
                    spendable: false, ..
                } => discard.push(*other),
                // Its payment commits before this demotion, pending: forfeited with it.
                Stage::Recording { .. } if x.check.is_none() => discard.push(*other),
                Stage::Checking { .. } | Stage::Opening { .. } => discard.push(*other),
                // Work still out with a caught rig is not wanted either.
                Stage::Assigned { .. } | Stage::Uploading { .. } => cancel.push(*other),
                _ => {}
            }
        }
        for c in &cancel {
            self.uploads.retain(|_, v| v != c);
            self.send(&rig_key, ManagerToRig::Cancel { assignment: *c });
        }
        discard.extend(cancel);
        let mut caught = Caught {
            rig: rig_key,
            payout_to,
            kind,
            assignment: id,
            ended: Vec::new(),
            unverified: Vec::new(),
        };
        for d in &discard {
            let state = if *d == id {
                AssignmentState::Failed
            } else {
                AssignmentState::Abandoned
            };
            let verification = if *d == id {
                Verification::Failed
            } else {
                Verification::Pending
            };
            if let Some(rec) = self.record(*d, state, verification) {
                caught.ended.push(rec);
            }
            if let Some(x) = self.assignments.get(d) {
                if matches!(x.stage, Stage::Held { .. } | Stage::Recording { .. }) {
                    caught.unverified.push((x.job, *d, x.range.count));
                }
            }
        }
        self.journal.push(Write::Caught(Box::new(caught)));
        for d in discard {
            let Some(x) = self.assignments.get_mut(&d) else {
                continue;
            };
            if matches!(x.stage, Stage::Held { .. }) {
                if let Some(j) = self.jobs.get_mut(&x.job) {
                    j.held.remove(&x.range.start);
                }
            }
            // Its tally goes with its stage.
            self.release_quiet(d, Ended::Discarded);
        }
        self.match_job(job);
    }

    /// The outcome of a [`Write::Caught`]: the rig's record as the store has it now.
    pub(super) fn caught_recorded(
        &mut self,
        rig: &PublicKey,
        result: Result<(RigRecord, u64), PersistError>,
    ) {
        match result {
            Ok((rec, forfeited)) => {
                if let Some(r) = self.rigs.get_mut(rig) {
                    r.public.absorb(&rec);
                }
                if forfeited > 0 {
                    log(format_args!(
                        "rig {}: {forfeited} of pending pay forfeited",
                        short(rig)
                    ));
                }
            }
            Err(e) => {
                self.count_error(e.kind());
                log(format_args!(
                    "store: demotion of rig {} not recorded: {e}",
                    short(rig)
                ));
            }
        }
    }

    /// Completes `job` once all its photons are held and every contributing untrusted rig has
    /// passed a duplicate (otherwise one of its held results is duplicated now).
    pub(super) fn try_finish(&mut self, job: Option<JobId>) -> Vec<Task> {
        let Some(job) = job else { return Vec::new() };
        let Some(j) = self.jobs.get(&job) else {
            return Vec::new();
        };
        if !j.pending.is_empty() || j.state != JobState::Running || j.finishing {
            return Vec::new();
        }
        let held: u64 = j
            .held
            .values()
            .filter_map(|a| self.assignments.get(a))
            .map(|a| a.range.count)
            .sum();
        if held != j.photons {
            return Vec::new();
        }
        // Every untrusted contributor must have passed a duplicate.
        let mut work = Vec::new();
        let mut waiting = false;
        let held_ids: Vec<AssignmentId> = j.held.values().copied().collect();
        let spec = j.spec.clone();
        let mut asked: HashSet<PublicKey> = HashSet::new();
        // A rig whose result here matched its duplicate passed one (its passing may still be
        // on its way to the store, which is read below for rigs not connected).
        let passed: HashSet<PublicKey> = held_ids
            .iter()
            .filter_map(|id| self.assignments.get(id))
            .filter(|a| a.stage.opened().and_then(|o| o.cross.duplicate) == Some(true))
            .map(|a| a.rig)
            .collect();
        for id in &held_ids {
            let Some(a) = self.assignments.get(id) else {
                continue;
            };
            let (rig_key, range) = (a.rig, a.range);
            let own = a.stage.opened().and_then(|o| o.cross.duplicate);
            let (covered, in_flight) = match self.rigs.get(&rig_key) {
                Some(r) => (r.public.trusted || r.dup_passed, r.dup_in_flight.is_some()),
                // Not connected since this node started (a restart): its stored standing
                // decides; unreadable counts as not covered (a duplicate costs little).
                None => match self.persist.rig(&rig_key) {
                    Ok(Some(rec)) => (rec.trust == TrustLevel::Trusted || rec.dup_passed, false),
                    Ok(None) => (false, false),
                    Err(e) => {
                        self.count_error(e.kind());
                        log(format_args!("store: rig {}: {e}", short(&rig_key)));
                        (false, false)
                    }
                },
            };
            // This result's own duplicate (or another of its rig's here) matched.
            if covered || passed.contains(&rig_key) {
                continue;
            }
            waiting = true;
            if !in_flight && own.is_none() && asked.insert(rig_key) {
                work.extend(self.start_duplicate(*id, spec.clone(), range));
            }
        }
        if waiting {
            return work;
        }
        self.finish(job);
        work
    }

    /// Has a job's held results merged and the job settled: result, fee and refund in one
    /// transaction (every result was paid when it was verified), off the lock; the job waits
    /// `finishing` until [`Market::finished`].
    pub(super) fn finish(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let mut tallies = Vec::new();
        let mut spent = 0u64;
        let mut held: Vec<AssignmentId> = Vec::new();
        for id in j.held.values() {
            let Some(a) = self.assignments.get(id) else {
                continue;
            };
            let Some(t) = a.stage.opened().map(|o| &o.tally) else {
                continue;
            };
            tallies.push(Arc::clone(t));
            spent = spent.saturating_add(a.payout);
            held.push(*id);
        }
        j.finishing = true;
        self.journal.push(Write::Finish(Finish {
            job,
            tallies,
            held,
            spent,
            fee_bp: j.fee_bp,
        }));
    }

    /// The outcome of a [`Write::Finish`]: a settled job leaves memory (its status, result
    /// and ratings are read from the store from now on) and its offer is closed on every
    /// connected rig; one whose tallies do not merge fails; one the store refused stays
    /// running and is finished again (at its next event, or after a restart).
    pub(super) fn finished(&mut self, job: JobId, result: Result<Settled, FinishError>) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.finishing = false;
        let Settled {
            fee, refund, spent, ..
        } = match result {
            Ok(s) => s,
            Err(FinishError::Merge(e)) => {
                log(format_args!("job {}: merge failed: {e}", job.0));
                j.state = JobState::Failed;
                self.count_error("finish.merge");
                return;
            }
            Err(e) => {
                self.count_error(e.kind());
                log(format_args!("store: job {} not finished: {e}", job.0));
                return;
            }
        };
        let photons = j.photons;
        // Rigs hold an offer until it closes or its time-to-live passes, and a rig remembers
        // a bounded number (`MAX_OFFERS` in the controller, more are ignored): a finished
        // job's offer is closed on every connected rig (nothing left), or a run of short jobs
        // fills their tables and later jobs are never bid for.
        let closing = self.jobs.get(&job).map(|j| Offer {
            photons_left: 0,
            ..self.offer(job, j)
        });
        // Its assignments leave memory too, but for check runs still out (they settle
        // against the store, which refuses to pay into a closed job).
        self.jobs.remove(&job);
        if let Some(o) = closing {
            let linked: Vec<PublicKey> = self
                .rigs
                .iter()
                .filter(|(_, r)| r.link.is_some())
                .map(|(k, _)| *k)
                .collect();
            for k in linked {
                self.send(&k, ManagerToRig::Offer(o));
            }
        }
        self.stats.evicted += 1;
        self.assignments.retain(|_, a| {
            a.job != job
                || matches!(
                    a.stage,
                    Stage::Assigned { .. }
                        | Stage::Uploading { .. }
                        | Stage::Opening { .. }
                        | Stage::Checking { .. }
                        | Stage::Recording { .. }
                        | Stage::Settled { .. }
                )
        });
        for r in self.rigs.values_mut() {
            r.bids.retain(|(b, _), _| *b != job);
            r.excluded.remove(&job);
        }
        log(format_args!(
            "job {} done: {photons} photons verified, paid {spent}, fee {fee}, refund {refund}",
            job.0,
        ));
    }

    /// Reassigns every assignment past its deadline; the late rig's record suffers. Returns
    /// work started meanwhile (checks of results whose check run was lost).
    pub fn tick(&mut self, now: Instant) -> Vec<Task> {
        let late: Vec<AssignmentId> = self
            .assignments
            .iter()
            .filter(|(_, a)| {
                matches!(a.stage, Stage::Assigned { .. } | Stage::Uploading { .. })
                    && a.deadline <= now
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(a) = self.assignments.get(&id) else {
                continue;
            };
            let rig = a.rig;
            self.stats.late += 1;
            log(format_args!(
                "assignment {} on rig {} missed its deadline; reassigned",
                id.0,
                short(&rig)
            ));
            if let Some(r) = self.rigs.get_mut(&rig) {
                r.public.late += 1;
                // A late rig's speed record is halved so its next ranges are smaller.
                r.public.s_per_milli = r.public.s_per_milli.map(|s| s * 2.0);
            }
            self.uploads.retain(|_, v| *v != id);
            self.send(&rig, ManagerToRig::Cancel { assignment: id });
            self.release(id, Ended::Late);
        }
        // Sample proofs still owed at their deadline. A rig silent on the session its
        // requests went out on, still open, is reminded once (the requests sent again there,
        // due afresh): a frame lost on the way, either way, is found only when the next one
        // fails to authenticate, and a session can look open until then; the reminder is that
        // next frame. Silent past the reminder's deadline, it fails the check: it had the
        // requests and could answer.
        // One whose session ended since (dropped by the network, or its queue) may never have
        // had them, or its proofs were lost with it: a network fault, not fraud. It is asked
        // again, due afresh, when it re-sends its commitment on its next session (see
        // `commit_again`; up to `MAX_REASKS` times); not back by the deadline, it loses the
        // result like a late assignment (unpaid, its range computed again, a late mark on its
        // record). That is no escape for a cheater: dropping its session when asked costs it
        // the result, and it is never paid for work it cannot prove.
        let due: Vec<(AssignmentId, PublicKey, bool, bool)> = self
            .assignments
            .iter()
            .filter_map(|(id, a)| match &a.stage {
                Stage::Checking { samples, .. }
                    if !samples.outstanding.is_empty() && a.deadline <= now =>
                {
                    let open =
                        samples.asked_on.is_some() && samples.asked_on == self.session_of(&a.rig);
                    Some((*id, a.rig, open, samples.reminded))
                }
                _ => None,
            })
            .collect();
        for (id, rig, open, reminded) in due {
            if open && !reminded {
                self.stats.proof_reminders += 1;
                self.ask_samples(&rig, id, Ask::Reminder);
                continue;
            }
            if open {
                self.fail(
                    id,
                    "sample proofs not returned in time",
                    ErrorKind::BadProof,
                );
                continue;
            }
            self.stats.late += 1;
            log(format_args!(
                "assignment {}: rig {} gone while owing sample proofs and not back in time; \
                 result dropped unpaid, not blamed",
                id.0,
                short(&rig)
            ));
            if let Some(r) = self.rigs.get_mut(&rig) {
                r.public.late += 1;
            }
            // A rig on a new session that did not re-send the result drops it.
            self.send(&rig, ManagerToRig::Cancel { assignment: id });
            self.release(id, Ended::Late);
        }
        // Old finished assignments are forgotten so memory stays bounded.
        self.assignments.retain(|_, a| {
            !(a.stage.is_over() && now.duration_since(a.assigned_at) > Duration::from_secs(3600))
        });
        // Issued assignments' records are written at every tick (see `crate::journal`).
        self.journal.flush();
        // Rigs gone and holding nothing leave memory: their standing is in the store and is
        // read back when they return. A rig still named by live work, or excluded from a
        // running job it was caught on, stays.
        let live: HashSet<PublicKey> = self
            .assignments
            .values()
            .filter(|a| !a.stage.is_over())
            .map(|a| a.rig)
            .collect();
        let before = self.rigs.len();
        self.rigs
            .retain(|k, r| r.link.is_some() || !r.excluded.is_empty() || live.contains(k));
        self.stats.evicted += (before - self.rigs.len()) as u64;
        // Tables give back what a burst (of rigs, of assignments) made them grow to.
        shrink(&mut self.rigs);
        shrink(&mut self.assignments);
        let reoffer: Vec<PublicKey> = self.reoffer.drain().collect();
        for key in reoffer {
            self.offer_idle(&key);
        }
        std::mem::take(&mut self.later)
    }
}

/// Why sample requests are sent (see [`Market::ask_samples`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// First asked, when the result is opened.
    First,
    /// Asked again on a later session: the rig re-sent its commitment.
    Again,
    /// Asked once more on the same session, its first deadline there passed.
    Reminder,
}

/// Releases a result that could not be checked: its range back to the pool, its held tally
/// dropped, recorded abandoned (no verdict on its rig).
fn release_unchecked(m: &mut Market, id: AssignmentId) {
    m.release(id, Ended::Discarded);
}

/// Gives a map's spare capacity back once it is mostly empty (a `HashMap` never shrinks by
/// itself: after a burst of 10,000 rigs it would keep room for them for good).
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut std::collections::HashMap<K, V>) {
    if map.capacity() > 64 && map.capacity() > 4 * map.len() {
        map.shrink_to_fit();
    }
}
