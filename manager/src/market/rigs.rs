//! Rigs' side of the market: sessions coming and going, their messages, bids, and matching
//! pending photons to idle devices (assignment sizing and issue, release and reassignment).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_protocol::msg::{
    AckStatus, Assign, Bid, JobState, ManagerToRig, Offer, RigHello, RigToManager, Welcome,
};
use compushare_protocol::types::{
    Amount, AssignmentId, Digest, JobId, PhotonRange, PublicKey, TrustLevel,
};

use super::{
    log, name, short, unix_now, Abuse, Assignment, CheckRun, Ended, JobEntry, Market, Rig, RigLink,
    Stage, Task,
};
use crate::costing;
use crate::journal::Write;
use crate::records::AssignmentState;
use crate::scheduler::{self, Candidate};

impl Market {
    /// A rig said Hello on a new session.
    pub fn rig_hello(&mut self, key: PublicKey, hello: &RigHello, link: RigLink) -> Welcome {
        let label = if hello.name.is_empty() {
            format!("rig-{}", short(&key))
        } else {
            hello.name.as_str().to_owned()
        };
        let first = !self.rigs.contains_key(&key);
        let stored = if !first {
            None
        } else {
            // A rig's trust follows its key across sessions and restarts.
            match self.persist.rig(&key) {
                Ok(r) => r,
                Err(e) => {
                    self.count_error(e.kind());
                    log(format_args!("store: rig {}: {e}", short(&key)));
                    None
                }
            }
        };
        let rig = self
            .rigs
            .entry(key)
            .or_insert_with(|| Rig::new(hello.payout));
        if let Some(rec) = &stored {
            rig.public.absorb(rec);
            rig.dup_passed = rec.dup_passed;
        }
        if first {
            // Assignments restored after a restart are still out with this rig: their devices
            // are busy until the results come or the deadlines pass.
            for (id, a) in &self.assignments {
                if a.rig == key && a.stage.is_assigned() {
                    rig.busy.insert(a.device, *id);
                }
            }
        }
        rig.public.label = label.clone();
        rig.payout = hello.payout;
        rig.devices = hello.devices.iter().cloned().collect();
        rig.link = Some(link);
        rig.bids.clear();
        let trust = if rig.public.trusted {
            TrustLevel::Trusted
        } else {
            TrustLevel::Untrusted
        };
        log(format_args!(
            "rig {} ({label}) joined with {} device(s)",
            short(&key),
            hello.devices.len()
        ));
        let offers: Vec<Offer> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.state == JobState::Running || j.state == JobState::Queued)
            .map(|(id, j)| self.offer(*id, j))
            .collect();
        for o in offers {
            self.send(&key, ManagerToRig::Offer(o));
        }
        Welcome {
            version: compushare_protocol::msg::PROTOCOL_VERSION,
            trust,
            label: name(&label),
            heartbeat_s: self.cfg.heartbeat_s,
            credit_msat: self.cfg.credit_msat,
        }
    }

    /// A rig's session ended. Its running assignments stay until their deadline (the rig may
    /// reconnect and deliver); half-uploaded results are dropped and must be sent again.
    pub fn rig_gone(&mut self, key: &PublicKey, session: u64) {
        let Some(rig) = self.rigs.get_mut(key) else {
            return;
        };
        if rig.link.as_ref().is_some_and(|l| l.session == session) {
            rig.link = None;
            rig.bids.clear();
        }
        for a in self.assignments.values_mut() {
            if a.rig == *key && matches!(a.stage, Stage::Uploading { .. }) {
                // The rig sends its commitment again on its next session.
                a.stage = Stage::Assigned { restored: false };
            }
        }
        self.uploads.retain(|(k, _), _| k != key);
        self.resent.retain(|(k, _)| k != key);
    }

    /// Offers `key` the open jobs that one of its idle devices has no standing bid on. A
    /// rig bids only for devices idle when an offer arrives, so a device freed later (its
    /// result committed, its assignment unknown here after a restart) would otherwise never
    /// bid on jobs offered while it was busy, and the job would wait with the rig connected.
    pub(super) fn offer_idle(&mut self, key: &PublicKey) {
        self.reoffer.remove(key);
        let Some(rig) = self.rigs.get(key) else {
            return;
        };
        if rig.link.is_none() {
            return;
        }
        let idle: Vec<u8> = rig
            .devices
            .iter()
            .map(|d| d.index)
            .filter(|d| !rig.busy.contains_key(d))
            .collect();
        let offers: Vec<Offer> = self
            .jobs
            .iter()
            .filter(|(id, j)| {
                !j.pending.is_empty()
                    && matches!(j.state, JobState::Queued | JobState::Running)
                    && !rig.excluded.contains(*id)
                    && idle.iter().any(|d| !rig.bids.contains_key(&(**id, *d)))
            })
            .map(|(id, j)| self.offer(*id, j))
            .collect();
        for o in offers {
            self.send(key, ManagerToRig::Offer(o));
        }
    }

    pub(super) fn offer(&self, id: JobId, j: &JobEntry) -> Offer {
        Offer {
            job: id,
            cost_per_history_milli: j.cost_milli,
            price_per_unit: j.price_per_unit,
            geometry: j.spec.content,
            geometry_len: j.spec.input.len() as u32,
            photons_left: scheduler::pending_total(&j.pending),
        }
    }

    /// One message from a rig. `Err` ends the session.
    pub fn rig_message(
        &mut self,
        key: &PublicKey,
        msg: Box<RigToManager>,
    ) -> Result<Vec<Task>, Abuse> {
        match *msg {
            RigToManager::Hello(_) => Err(self.abuse(key, Abuse::SecondHello)),
            RigToManager::Heartbeat(_) => {
                self.stats.heartbeats += 1;
                Ok(Vec::new())
            }
            RigToManager::Bid(bid) => {
                self.bid(key, bid)?;
                Ok(Vec::new())
            }
            RigToManager::AssignmentAccepted { assignment } => {
                if !self.holds(key, assignment) {
                    self.unknown(key, assignment, "accepted an assignment it does not hold");
                }
                Ok(Vec::new())
            }
            RigToManager::AssignmentRejected { assignment, reason } => {
                if self.holds(key, assignment) {
                    log(format_args!(
                        "rig {} rejected assignment {}: {reason:?}",
                        short(key),
                        assignment.0
                    ));
                    // A device that turns work down (switched to mining, vault full, pinned
                    // off) withdraws its bids: it bids again when it wants work, instead of
                    // being handed the same range again at once.
                    let device = self.assignments.get(&assignment).map(|a| a.device);
                    if let (Some(rig), Some(device)) = (self.rigs.get_mut(key), device) {
                        rig.bids.retain(|(_, d), _| *d != device);
                    }
                    self.release(assignment, Ended::Discarded);
                } else {
                    self.unknown(key, assignment, "rejected an assignment it does not hold");
                }
                Ok(Vec::new())
            }
            RigToManager::ResultCommit(c) => {
                self.commit(key, c);
                Ok(Vec::new())
            }
            RigToManager::ResultChunk(chunk) => Ok(self.chunk(key, &chunk)),
            RigToManager::SampleProof(p) => Ok(self.proofs(key, p.assignment, p.proofs.to_vec())),
            // A rating of a client is answered by the session (see `session::rate_client`).
            RigToManager::PaymentClaim(_)
            | RigToManager::ConsoleReply(_)
            | RigToManager::RateClient { .. }
            // Sheet results are the fleet's (see `fleet::Fleet::rig_message`).
            | RigToManager::SheetApplied { .. }
            | RigToManager::SheetRefused { .. } => Ok(Vec::new()),
            RigToManager::GeometryRequest { content } => {
                self.geometry(key, content);
                Ok(Vec::new())
            }
        }
    }

    pub(super) fn abuse(&mut self, key: &PublicKey, what: Abuse) -> Abuse {
        self.stats.abuse += 1;
        log(format_args!("rig {}: protocol abuse: {what}", short(key)));
        what
    }

    /// Counts and answers a message about an assignment the rig does not hold (or a replay).
    pub(super) fn unknown(&mut self, key: &PublicKey, assignment: AssignmentId, what: &str) {
        self.stats.abuse += 1;
        log(format_args!(
            "rig {}: {what} (assignment {}); rejected",
            short(key),
            assignment.0
        ));
        self.send(
            key,
            ManagerToRig::Ack {
                assignment,
                status: AckStatus::Unknown,
            },
        );
    }

    pub(super) fn holds(&self, key: &PublicKey, a: AssignmentId) -> bool {
        self.assignments
            .get(&a)
            .is_some_and(|x| x.rig == *key && x.stage.is_assigned())
    }

    pub(super) fn bid(&mut self, key: &PublicKey, bid: Bid) -> Result<(), Abuse> {
        let Some(rig) = self.rigs.get(key) else {
            return Err(self.abuse(key, Abuse::BidBeforeHello));
        };
        if !rig.devices.iter().any(|d| d.index == bid.device) {
            return Err(self.abuse(key, Abuse::UnknownDevice));
        }
        if !self.jobs.contains_key(&bid.job) {
            return Ok(()); // A finished job: a harmless race.
        }
        // A rig bids only for idle devices, and re-sends its finished results before
        // anything else on a new session: a bid for a device held by an assignment restored
        // after a restart means its `Assign` was lost in the crash. It goes back to the pool
        // now, not at its deadline, and the rig is not blamed.
        let lost = rig.busy.get(&bid.device).copied().filter(|id| {
            self.assignments
                .get(id)
                .is_some_and(|a| matches!(a.stage, Stage::Assigned { restored: true }))
        });
        if let Some(id) = lost {
            log(format_args!(
                "rig {} does not run restored assignment {}; reassigned",
                short(key),
                id.0
            ));
            self.release(id, Ended::Discarded);
        }
        if let Some(rig) = self.rigs.get_mut(key) {
            rig.bids.insert((bid.job, bid.device), bid);
        }
        // After every match either the job has no pending photons or no idle eligible bidder
        // is left, so a new bid only needs to be matched itself: O(1), not a scan of all rigs.
        self.match_bid(key, bid);
        Ok(())
    }

    pub(super) fn match_bid(&mut self, key: &PublicKey, bid: Bid) {
        let Some(j) = self.jobs.get(&bid.job) else {
            return;
        };
        if j.pending.is_empty() || !matches!(j.state, JobState::Queued | JobState::Running) {
            return;
        }
        let (cost_milli, price) = (j.cost_milli, j.price_per_unit);
        let Some(rig) = self.rigs.get(key) else {
            return;
        };
        if rig.link.is_none()
            || rig.excluded.contains(&bid.job)
            || rig.busy.contains_key(&bid.device)
            || bid.min_price > price
        {
            return;
        }
        let c = rig.candidate(0, bid.device, &bid, cost_milli);
        self.assign(bid.job, *key, c);
    }

    pub(super) fn geometry(&mut self, key: &PublicKey, content: Digest) {
        let input = self
            .jobs
            .values()
            .find(|j| j.spec.content == content)
            .map(|j| Arc::clone(&j.spec.input));
        let Some(input) = input else {
            self.stats.abuse += 1;
            log(format_args!(
                "rig {}: asked for unknown geometry",
                short(key)
            ));
            return;
        };
        // The session's writer cuts it into chunks as the socket takes them.
        self.push(key, |out| out.push_geometry(input, content));
    }

    /// Assigns pending photons of `job` to idle bidders, best first for the job's mode.
    pub fn match_job(&mut self, job: JobId) {
        let Some(j) = self.jobs.get(&job) else { return };
        if j.pending.is_empty() || !matches!(j.state, JobState::Queued | JobState::Running) {
            return;
        }
        let (mode, cost_milli, price) = (j.mode, j.cost_milli, j.price_per_unit);
        let mut keys: Vec<PublicKey> = Vec::new();
        let mut cands: Vec<Candidate> = Vec::new();
        let mut sorted: Vec<(&PublicKey, &Rig)> = self.rigs.iter().collect();
        sorted.sort_by_key(|(k, _)| **k);
        for (k, rig) in sorted {
            if rig.link.is_none() || rig.excluded.contains(&job) {
                continue;
            }
            for ((bj, dev), bid) in rig.bids.range((job, 0)..=(job, u8::MAX)) {
                if *bj != job || rig.busy.contains_key(dev) {
                    continue;
                }
                if bid.min_price > price {
                    continue;
                }
                keys.push(*k);
                cands.push(rig.candidate(keys.len() - 1, *dev, bid, cost_milli));
            }
        }
        scheduler::order(&mut cands, mode);
        for c in cands {
            let Some(key) = keys.get(c.rig).copied() else {
                continue;
            };
            if !self.assign(job, key, c) {
                break;
            }
        }
    }

    pub(super) fn assign(&mut self, job: JobId, key: PublicKey, c: Candidate) -> bool {
        let Some(j) = self.jobs.get_mut(&job) else {
            return false;
        };
        let available = j.pending.first().map_or(0, |r| r.count);
        if available == 0 {
            return false;
        }
        let count = scheduler::size(c.histories_per_s, self.cfg.target, c.cores, available);
        let Some(range) = scheduler::take(&mut j.pending, count) else {
            return false;
        };
        j.state = JobState::Running;
        if self.issue(job, key, &c, range, None) {
            return true;
        }
        if let Some(j) = self.jobs.get_mut(&job) {
            scheduler::give_back(&mut j.pending, range);
        }
        false
    }

    /// Gives `range` of `job` to a device of a rig: a primary assignment (`check` None, the
    /// range taken from the pending list by the caller) or a check run.
    pub(super) fn issue(
        &mut self,
        job: JobId,
        key: PublicKey,
        c: &Candidate,
        range: PhotonRange,
        check: Option<CheckRun>,
    ) -> bool {
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        let payout = costing::pay(range.count, j.price_per_history);
        let expected = Duration::from_secs_f64(
            (range.count as f64 / c.histories_per_s.max(1e-9)).min(86_400.0),
        );
        let allowance = scheduler::allowance(
            expected,
            self.cfg.deadline_slack_percent,
            self.cfg.deadline_min,
        );
        let (content, input_len, seed) =
            (j.spec.content, j.spec.input.len() as u32, j.spec.job.seed);
        if self.persist.wants_ids() {
            self.journal.push(Write::ReserveIds);
        }
        let Some(id) = self.persist.next_assignment_id() else {
            // The next block's reservation has not committed yet: nothing is issued now,
            // the range stays pending and the bid is matched again at the next chance.
            self.stats.ids_exhausted += 1;
            return false;
        };
        let now = Instant::now();
        let issued_unix_s = unix_now();
        // A check run looks like any assignment: the rig cannot tell it from work.
        let msg = Assign {
            assignment: id,
            job,
            device: c.device,
            geometry: content,
            geometry_len: input_len,
            seed,
            photons: range,
            deadline_unix_s: issued_unix_s + allowance.as_secs(),
            payout: Amount(payout),
        };
        let payout_to = self.rigs.get(&key).map_or(key, |r| r.payout);
        let a = Assignment::issued(
            job,
            key,
            payout_to,
            c.device,
            range,
            payout,
            check,
            (now + allowance, issued_unix_s, msg.deadline_unix_s),
            false,
        );
        self.assignments.insert(id, a);
        if let Some(rig) = self.rigs.get_mut(&key) {
            // Check runs go to idle devices only, like primary work.
            rig.busy.insert(c.device, id);
        }
        self.note(id, AssignmentState::Issued, false);
        self.stats.assignments += 1;
        self.send(&key, ManagerToRig::Assign(msg));
        true
    }

    /// Ends an assignment that will not deliver: frees the device, returns the range, and
    /// records it abandoned (a late rig's record counts it).
    pub(super) fn release(&mut self, id: AssignmentId, how: Ended) {
        self.note(id, AssignmentState::Abandoned, how == Ended::Late);
        self.release_quiet(id, how);
    }

    /// [`Market::release`] without the record (the caller commits it with more).
    pub(super) fn release_quiet(&mut self, id: AssignmentId, how: Ended) {
        let Some(a) = self.assignments.get_mut(&id) else {
            return;
        };
        // A check run that passed its own checks is not lost: it was (or is being) paid.
        let settled = matches!(a.stage, Stage::Settled { .. } | Stage::Recording { .. });
        a.stage = match how {
            Ended::Late => Stage::Late,
            Ended::Discarded => Stage::Discarded,
        };
        let (job, rig, device, range, check, payout) =
            (a.job, a.rig, a.device, a.range, a.check, a.payout);
        if let Some(r) = self.rigs.get_mut(&rig) {
            if r.busy.get(&device) == Some(&id) {
                r.busy.remove(&device);
            }
            if r.dup_in_flight == Some(id) {
                r.dup_in_flight = None;
            }
        }
        match check {
            // A check run's range belongs to the result it checks, never to the pool.
            Some(run) => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.check_budget = j.check_budget.saturating_add(payout);
                }
                if !settled {
                    self.check_lost(run);
                }
            }
            None => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    scheduler::give_back(&mut j.pending, range);
                }
                // The range is open again. Rigs that joined (or went idle) while the job had
                // nothing left were never offered it and hold no bid `match_job` could serve:
                // offer it to every connected rig (offer_idle skips devices that are busy or
                // already bid), or the job waits forever with idle rigs connected.
                let connected: Vec<PublicKey> = self
                    .rigs
                    .iter()
                    .filter(|(k, r)| r.link.is_some() && **k != rig)
                    .map(|(k, _)| *k)
                    .collect();
                self.reoffer.extend(connected);
            }
        }
        self.match_job(job);
        self.match_rig(&rig);
        self.reoffer.insert(rig);
    }

    pub(super) fn match_rig(&mut self, key: &PublicKey) {
        let jobs: Vec<JobId> = self
            .rigs
            .get(key)
            .map(|r| r.bids.keys().map(|(j, _)| *j).collect())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for j in jobs {
            if seen.insert(j) {
                self.match_job(j);
            }
        }
    }
}
