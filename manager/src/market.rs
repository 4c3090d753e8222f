//! The market: jobs, rigs, bids and assignments in memory, and every rule that moves them.
//!
//! The network side ([`crate::server`]) turns frames into calls here and runs the heavy work
//! this returns ([`Work`]: opening results, re-simulating samples, duplicate runs) on blocking
//! threads, then reports back. Nothing here blocks or awaits, so one mutex around the market
//! is held only for bookkeeping. Messages to rigs go through each session's bounded queue
//! (`try_send`); a rig whose queue is full is too slow to serve and its session is dropped.
//!
//! Life of an assignment: `Assigned` -> (commit, upload) `Opening` -> `Checking` (samples and
//! possibly a duplicate) -> `Held` (verified and paid: pending, or spendable once the rig
//! qualifies) -> `Paid` when its job completes and its tally is merged. A late one is `Late`
//! and its range returns to the pool; a failed or discarded one is `Discarded`. A rig caught
//! cheating forfeits its pending pay and its held results whose pay was still pending are
//! recomputed elsewhere.
//!
//! The store ([`crate::persist`]) is the source of truth: every change that must survive a
//! crash (job accepted, result verified and paid, rig caught, job finished, trust records and
//! ratings) is committed there before the market acts on it; the maps here are the working
//! copy of running jobs and connected rigs, rebuilt from the store by [`Market::open`].
//!
//! The rules of check runs (duplicates, arbitration, escalation to the manager's engine)
//! live in [`checks`]; this module orchestrates them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally::Tally;
use compushare_protocol::msg::{
    AckStatus, Assign, Bid, ErrorCode, HistoryProof, JobState, JobStatus, ManagerToRig, Offer,
    ResultCommit, RigHello, RigToManager, Welcome,
};
use compushare_protocol::types::{
    Amount, AssignmentId, DeviceInfo, Digest, JobId, Mode, Name, PhotonRange, PublicKey, TrustLevel,
};

use crate::costing;
use crate::escrow::Bank;
use crate::outbox::{Outbox, PushError};
use crate::persist::{Caught, JobTerms, Persist, Verified};
use crate::records::{AssignmentRecord, AssignmentState, CommitInfo, Verification};
use crate::results::{max_sealed_len, Assembly};
use crate::scheduler::{self, Candidate};
use crate::store::{Store, StoreError};
use crate::store_bank::StoreBank;
use crate::trust::{ErrorKind, RigRecord};
use crate::verify;

mod checks;

/// Tunables of the market.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// How long an assignment should take on its device (30-120 s in production).
    pub target: Duration,
    /// Deadline = `deadline_factor` x expected duration, at least `deadline_floor`.
    pub deadline_factor: u32,
    pub deadline_floor: Duration,
    /// Histories sampled per check ([`verify::DEFAULT_SAMPLES`]).
    pub samples: usize,
    /// Share of results (after a rig's first) also run by a trusted rig, parts per million
    /// (the stored config's unit: 10,000 = 1%).
    pub duplicate_ppm: u64,
    /// Duplicate and arbitration runs on trusted rigs are paid from an allowance the client
    /// escrows with the job: this share of the job's maximum cost, per mille. While it lasts
    /// checks run on trusted rigs; beyond it they run on the manager's own engine (free);
    /// what is left is refunded with the rest of the escrow.
    pub check_allowance_permille: u64,
    /// Consecutive verified histories that make a rig trusted.
    pub trust_threshold: u64,
    /// Verified histories before a rig's earnings become spendable.
    pub spendable_after: u64,
    /// Seconds between heartbeats rigs are told to keep.
    pub heartbeat_s: u16,
    /// What the manager pays per cost unit.
    pub price_per_unit: Amount,
    /// Manager's fee on the work paid, in basis points (hundredths of a percent).
    pub fee_bp: u64,
    /// Largest job input accepted, bytes.
    pub max_input: u32,
    /// Most entries in a rig session's outgoing queue (see [`crate::outbox`]).
    pub session_queue: usize,
    /// Most bytes of encoded messages in a rig session's outgoing queue.
    pub session_queue_bytes: usize,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            target: Duration::from_secs(60),
            deadline_factor: 3,
            deadline_floor: Duration::from_secs(120),
            samples: verify::DEFAULT_SAMPLES,
            duplicate_ppm: 10_000,
            check_allowance_permille: costing::DEFAULT_CHECK_ALLOWANCE_PERMILLE,
            trust_threshold: 100_000_000,
            spendable_after: 1_000_000,
            heartbeat_s: 10,
            price_per_unit: Amount(1),
            fee_bp: 500,
            max_input: 64 << 20,
            session_queue: 256,
            // Thousands of acks, offers and sample requests: far beyond what a rig that reads
            // at all lets pile up, small beside the 20 KiB a session costs.
            session_queue_bytes: 1 << 20,
        }
    }
}

/// A job as the workers see it: the parsed input (seed applied) and its bytes.
#[derive(Debug)]
pub struct JobSpec {
    pub job: Job,
    pub input: Arc<Vec<u8>>,
    pub content: Digest,
    pub cells: usize,
}

/// Heavy work for a blocking thread; its outcome comes back through the matching `*_done`.
#[derive(Debug)]
pub enum Work {
    /// Open a reassembled sealed result and check it against its commitment.
    Open {
        assignment: AssignmentId,
        spec: Arc<JobSpec>,
        sealed: Vec<u8>,
        commit: ResultCommit,
    },
    /// Check one message's history proofs.
    Check {
        assignment: AssignmentId,
        spec: Arc<JobSpec>,
        range: PhotonRange,
        root: Digest,
        proofs: Vec<HistoryProof>,
    },
    /// Run an assignment's range on the manager's own engine (the trusted duplicate).
    Duplicate {
        assignment: AssignmentId,
        spec: Arc<JobSpec>,
        range: PhotonRange,
    },
}

/// A rig session's outgoing queue.
#[derive(Debug, Clone)]
pub struct RigLink {
    pub session: u64,
    pub outbox: Outbox,
}

/// The public record of a rig.
#[derive(Debug, Clone, Default)]
pub struct RigPublic {
    pub label: String,
    pub trusted: bool,
    /// Consecutive verified histories since joining or the last demotion.
    pub streak: u64,
    /// Verified histories ever.
    pub verified: u64,
    pub errors: u64,
    pub late: u64,
    pub demotions: u64,
    /// Recorded seconds per thousandth cost unit (time to return / cost).
    pub s_per_milli: Option<f64>,
    pub ratings: Vec<u8>,
    /// Paid for verified work, ever (the ledger holds each payment).
    pub paid: u64,
    /// Pending pay forfeited when caught, ever.
    pub forfeited: u64,
}

impl RigPublic {
    /// Takes the trust fields of a stored record.
    fn absorb(&mut self, rec: &RigRecord) {
        self.trusted = rec.trust == TrustLevel::Trusted;
        self.streak = rec.consecutive_verified;
        self.verified = rec.histories_verified;
        self.errors = rec.errors;
        self.late = rec.late;
        self.demotions = rec.demotions;
        self.paid = rec.paid;
        self.forfeited = rec.forfeited;
        if self.s_per_milli.is_none() && rec.returns.recent > 0 {
            // `recent` is microseconds per cost unit; this is seconds per milli cost unit.
            self.s_per_milli = Some(rec.returns.recent as f64 * 1e-9);
        }
    }
}

#[derive(Debug)]
struct Rig {
    public: RigPublic,
    payout: PublicKey,
    devices: Vec<DeviceInfo>,
    link: Option<RigLink>,
    /// Standing bids, per job and device.
    bids: BTreeMap<(JobId, u8), Bid>,
    /// Devices running an assignment.
    busy: HashMap<u8, AssignmentId>,
    /// Whether a duplicate of this rig's work has passed since it joined or was demoted.
    dup_passed: bool,
    dup_in_flight: Option<AssignmentId>,
    /// Clean results while trusted (drives the decaying check rate).
    trusted_clean: u64,
    /// Jobs this rig was caught cheating on: it gets no more of their work.
    excluded: HashSet<JobId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AState {
    Assigned,
    Uploading,
    Opening,
    Checking,
    Held,
    /// A check run that passed its own checks; paid once its comparison is decided.
    Settled,
    Paid,
    Late,
    Discarded,
}

#[derive(Debug)]
struct Assignment {
    job: JobId,
    rig: PublicKey,
    /// Where the rig's pay goes (kept with the result, so it survives a restart).
    payout_to: PublicKey,
    device: u8,
    range: PhotonRange,
    payout: u64,
    state: AState,
    assigned_at: Instant,
    deadline: Instant,
    commit: Option<ResultCommit>,
    assembly: Option<Assembly>,
    tally: Option<Arc<Tally>>,
    outstanding: BTreeSet<u64>,
    checks_in_flight: usize,
    /// When the sample proofs must be in.
    check_deadline: Option<Instant>,
    sampled: bool,
    /// A duplicate was started; `Some(true)` once it matched.
    duplicate: Option<bool>,
    issued_unix_s: u64,
    deadline_unix_s: u64,
    /// Issue to commit, for the rig's time-to-return record.
    elapsed_ms: u64,
    /// Verified pay went to spendable (kept if the rig is caught later); otherwise pending.
    spendable: bool,
    /// `Tally::digest()` of the result once opened (or restored).
    digest: Option<Digest>,
    /// Set when this assignment re-runs another's range to check it.
    check: Option<CheckRun>,
    /// A duplicate run that disagreed with this result: (its assignment, its digest), until
    /// an arbitration decides.
    disputed: Option<(AssignmentId, Digest)>,
    /// An arbitration run that agreed with neither, until the manager's engine decides.
    suspect: Option<(AssignmentId, Digest)>,
}

/// What a check run checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CheckRun {
    /// The assignment whose result it re-computes.
    of: AssignmentId,
    /// A third run deciding between the result and a duplicate that disagreed.
    arbiter: bool,
}

#[derive(Debug)]
struct JobEntry {
    client: PublicKey,
    spec: Arc<JobSpec>,
    photons: u64,
    mode: Mode,
    cost_milli: u64,
    price_per_history: u64,
    fee_bp: u64,
    pending: Vec<PhotonRange>,
    /// Verified ranges by start photon.
    held: BTreeMap<u64, AssignmentId>,
    state: JobState,
    spent: u64,
    result: Option<Arc<Vec<u8>>>,
    rigs: Vec<PublicKey>,
    /// What is left of the escrowed check allowance (see
    /// [`MarketConfig::check_allowance_permille`]), less runs in flight.
    check_budget: u64,
}

/// Counters for logs, tests and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub abuse: u64,
    pub assignments: u64,
    pub late: u64,
    pub caught: u64,
    /// Duplicate or arbitration runs on the manager's own engine.
    pub duplicates: u64,
    /// Duplicate runs dispatched to trusted rigs.
    pub check_runs: u64,
    /// Arbitration runs dispatched to trusted rigs.
    pub arbitrations_on_rigs: u64,
    /// Disagreements decided (by a third rig or the manager's engine).
    pub arbitrations: u64,
    /// Arbitration runs that agreed with neither side (the manager's engine then decided).
    pub escalations: u64,
    pub samples_checked: u64,
    pub heartbeats: u64,
}

/// A protocol violation serious enough to end the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Abuse(pub String);

/// The whole market.
pub struct Market {
    cfg: MarketConfig,
    persist: Persist,
    bank: StoreBank,
    next_session: u64,
    rng: u64,
    jobs: BTreeMap<JobId, JobEntry>,
    rigs: HashMap<PublicKey, Rig>,
    assignments: HashMap<AssignmentId, Assignment>,
    /// Assignment waiting for each committed sealed result, by content address.
    uploads: HashMap<(PublicKey, Digest), AssignmentId>,
    /// Work started outside a call that returns work (a check run lost with its rig's
    /// deadline); handed out by [`Market::tick`].
    later: Vec<Work>,
    pub stats: Stats,
}

fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("manager: {line}");
}

fn short(key: &PublicKey) -> String {
    compushare_protocol::hex::encode(&key[..4])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn name(s: &str) -> Name {
    let mut n = Name::new();
    for c in s.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

impl Market {
    /// The market whose state lives in `store`: running jobs resume with their verified
    /// results held and the rest of their photons pending (unverified assignments from
    /// before a restart are reassigned); jobs whose every photon was verified finish now.
    pub fn open(cfg: MarketConfig, store: Arc<Store>) -> Result<Self, StoreError> {
        let mut seed = [0u8; 8];
        let _ = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut seed);
        let persist = Persist::new(Arc::clone(&store));
        let restored = persist.load()?;
        let mut m = Market {
            cfg,
            persist,
            bank: StoreBank::new(store),
            next_session: 1,
            rng: u64::from_le_bytes(seed) | 1,
            jobs: BTreeMap::new(),
            rigs: HashMap::new(),
            assignments: HashMap::new(),
            uploads: HashMap::new(),
            later: Vec::new(),
            stats: Stats::default(),
        };
        for rj in restored {
            m.resume(rj);
        }
        // A job whose every range was verified before the crash completes now.
        let ids: Vec<JobId> = m.jobs.keys().copied().collect();
        for id in ids {
            let _ = m.try_finish(Some(id));
        }
        Ok(m)
    }

    fn resume(&mut self, rj: crate::persist::RestoredJob) {
        let job = rj.record;
        let prepared = match crate::client::prepare_job(rj.input, job.photons, Some(job.seed)) {
            Ok(p) => p,
            Err(e) => {
                log(format_args!("job {} no longer parses: {e}", job.id.0));
                return;
            }
        };
        let now = Instant::now();
        let mut pending = vec![PhotonRange {
            start: 0,
            count: job.photons,
        }];
        let mut held = BTreeMap::new();
        let mut rigs = Vec::new();
        let mut spent = 0u64;
        for (a, tally, spendable) in rj.verified {
            let t = match Tally::from_canonical_bytes(&tally) {
                Ok(t) => t,
                Err(e) => {
                    log(format_args!(
                        "job {}: held result of assignment {} does not decode ({e}); recomputed",
                        job.id.0, a.id.0
                    ));
                    continue;
                }
            };
            let digest = t.digest();
            if !scheduler::carve(&mut pending, a.photons) {
                log(format_args!(
                    "job {}: assignment {} overlaps another verified range; ignored",
                    job.id.0, a.id.0
                ));
                continue;
            }
            held.insert(a.photons.start, a.id);
            if !rigs.contains(&a.rig) {
                rigs.push(a.rig);
            }
            spent = spent.saturating_add(a.payout.0);
            self.assignments.insert(
                a.id,
                Assignment {
                    job: job.id,
                    rig: a.rig,
                    payout_to: a.payout_to,
                    device: a.device,
                    range: a.photons,
                    payout: a.payout.0,
                    state: AState::Held,
                    assigned_at: now,
                    deadline: now,
                    commit: None,
                    assembly: None,
                    tally: Some(Arc::new(t)),
                    outstanding: BTreeSet::new(),
                    checks_in_flight: 0,
                    check_deadline: None,
                    sampled: true,
                    duplicate: None,
                    issued_unix_s: a.issued_unix_s,
                    deadline_unix_s: a.deadline_unix_s,
                    elapsed_ms: 0,
                    spendable,
                    digest: Some(digest),
                    check: None,
                    disputed: None,
                    suspect: None,
                },
            );
        }
        let price_per_history = job.price_per_history();
        // What the escrowed allowance still covers: what was paid beyond the held results
        // went to check runs (forfeits returned to escrow are not counted back: safe side).
        // The job's own terms, not today's config: its escrow was sized with them.
        let allowance =
            costing::check_allowance(job.photons, price_per_history, job.check_allowance_permille);
        let check_budget = allowance.saturating_sub(job.paid.0.saturating_sub(spent));
        let state = if held.is_empty() {
            JobState::Queued
        } else {
            JobState::Running
        };
        log(format_args!(
            "restored job {} ({state:?}, {} of {} photons verified)",
            job.id.0,
            job.photons - scheduler::pending_total(&pending),
            job.photons
        ));
        self.jobs.insert(
            job.id,
            JobEntry {
                client: job.client,
                spec: Arc::new(prepared.spec),
                photons: job.photons,
                mode: job.mode,
                cost_milli: job.cost_per_history_milli,
                price_per_history,
                fee_bp: job.fee_bp,
                pending,
                held,
                state,
                spent,
                result: None,
                rigs,
                check_budget,
            },
        );
    }

    /// The assignment's record as stored, in `state`.
    fn record(
        &self,
        id: AssignmentId,
        state: AssignmentState,
        verification: Verification,
    ) -> Option<AssignmentRecord> {
        let a = self.assignments.get(&id)?;
        let seed = self.jobs.get(&a.job).map_or(0, |j| j.spec.job.seed);
        Some(AssignmentRecord {
            id,
            job: a.job,
            rig: a.rig,
            payout_to: a.payout_to,
            device: a.device,
            photons: a.range,
            seed,
            issued_unix_s: a.issued_unix_s,
            deadline_unix_s: a.deadline_unix_s,
            payout: Amount(a.payout),
            state,
            commit: a.commit.map(|c| CommitInfo {
                histories: c.histories,
                tally: c.tally,
                merkle_root: c.merkle_root,
                sealed: c.sealed,
                sealed_len: c.sealed_len,
                committed_unix_s: a.issued_unix_s + a.elapsed_ms / 1000,
            }),
            verification,
            duplicate_of: a.check.map(|c| c.of),
            paid: false,
        })
    }

    /// Records an assignment's state that moves no money: queued for the next batch (see
    /// [`Persist::queue`]), or at once for a late one (its rig's record counts it).
    fn note(&mut self, id: AssignmentId, state: AssignmentState, late: bool) {
        let Some(rec) = self.record(id, state, Verification::Pending) else {
            return;
        };
        let r = if late {
            self.persist.late(&rec)
        } else {
            self.persist.queue(rec)
        };
        if let Err(e) = r {
            log(format_args!("store: assignment {}: {e}", id.0));
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MarketConfig {
        &self.cfg
    }

    /// The bank (for balances in tests and status).
    pub fn bank(&self) -> &dyn Bank {
        &self.bank
    }

    /// The store holding the market's state.
    pub fn store(&self) -> &Arc<Store> {
        self.persist.store()
    }

    /// A new session number.
    pub fn new_session(&mut self) -> u64 {
        self.next_session += 1;
        self.next_session
    }

    fn random(&mut self) -> u64 {
        // splitmix64: fast, good enough for sample positions seeded from the OS.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn send(&mut self, rig: &PublicKey, msg: ManagerToRig) {
        self.push(rig, |out| out.push(&msg));
    }

    /// Queues on `rig`'s session; a rig whose queue refuses is dropped (its session ends when
    /// its writer sees the queue closed, and it may reconnect).
    fn push(&mut self, rig: &PublicKey, f: impl FnOnce(&Outbox) -> Result<(), PushError>) {
        let Some(r) = self.rigs.get_mut(rig) else {
            return;
        };
        let Some(link) = &r.link else { return };
        if let Err(e) = f(&link.outbox) {
            log(format_args!(
                "rig {}: {e} ({} bytes queued); dropping its session",
                short(rig),
                link.outbox.queued_bytes()
            ));
            r.link = None;
        }
    }

    // ---------------------------------------------------------------- rigs

    /// A rig said Hello on a new session.
    pub fn rig_hello(&mut self, key: PublicKey, hello: &RigHello, link: RigLink) -> Welcome {
        let label = if hello.name.is_empty() {
            format!("rig-{}", short(&key))
        } else {
            hello.name.as_str().to_owned()
        };
        let stored = if self.rigs.contains_key(&key) {
            None
        } else {
            // A rig's trust follows its key across sessions and restarts.
            self.persist.rig(&key).unwrap_or_else(|e| {
                log(format_args!("store: rig {}: {e}", short(&key)));
                None
            })
        };
        let rig = self.rigs.entry(key).or_insert_with(|| Rig {
            public: RigPublic::default(),
            payout: hello.payout,
            devices: Vec::new(),
            link: None,
            bids: BTreeMap::new(),
            busy: HashMap::new(),
            dup_passed: false,
            dup_in_flight: None,
            trusted_clean: 0,
            excluded: HashSet::new(),
        });
        if let Some(rec) = &stored {
            rig.public.absorb(rec);
            rig.dup_passed = rec.dup_passed;
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
            if a.rig == *key && a.state == AState::Uploading {
                a.state = AState::Assigned;
                a.assembly = None;
                a.commit = None;
            }
        }
        self.uploads.retain(|(k, _), _| k != key);
    }

    fn offer(&self, id: JobId, j: &JobEntry) -> Offer {
        Offer {
            job: id,
            cost_per_history_milli: j.cost_milli,
            price_per_unit: self.cfg.price_per_unit,
            geometry: j.spec.content,
            geometry_len: j.spec.input.len() as u32,
            photons_left: scheduler::pending_total(&j.pending),
        }
    }

    /// One message from a rig. `Err` ends the session.
    pub fn rig_message(&mut self, key: &PublicKey, msg: RigToManager) -> Result<Vec<Work>, Abuse> {
        match msg {
            RigToManager::Hello(_) => Err(self.abuse(key, "second Hello in a session")),
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
                    self.release(assignment, AState::Discarded);
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
            | RigToManager::RateClient { .. } => Ok(Vec::new()),
            RigToManager::GeometryRequest { content } => {
                self.geometry(key, content);
                Ok(Vec::new())
            }
        }
    }

    fn abuse(&mut self, key: &PublicKey, what: &str) -> Abuse {
        self.stats.abuse += 1;
        log(format_args!("rig {}: protocol abuse: {what}", short(key)));
        Abuse(what.to_owned())
    }

    /// Counts and answers a message about an assignment the rig does not hold (or a replay).
    fn unknown(&mut self, key: &PublicKey, assignment: AssignmentId, what: &str) {
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

    fn holds(&self, key: &PublicKey, a: AssignmentId) -> bool {
        self.assignments
            .get(&a)
            .is_some_and(|x| x.rig == *key && x.state == AState::Assigned)
    }

    fn bid(&mut self, key: &PublicKey, bid: Bid) -> Result<(), Abuse> {
        let Some(rig) = self.rigs.get(key) else {
            return Err(self.abuse(key, "bid before Hello"));
        };
        if !rig.devices.iter().any(|d| d.index == bid.device) {
            return Err(self.abuse(key, "bid for a device the rig did not announce"));
        }
        if !self.jobs.contains_key(&bid.job) {
            return Ok(()); // A finished job: a harmless race.
        }
        if let Some(rig) = self.rigs.get_mut(key) {
            rig.bids.insert((bid.job, bid.device), bid);
        }
        // After every match either the job has no pending photons or no idle eligible bidder
        // is left, so a new bid only needs to be matched itself: O(1), not a scan of all rigs.
        self.match_bid(key, bid);
        Ok(())
    }

    fn match_bid(&mut self, key: &PublicKey, bid: Bid) {
        let Some(j) = self.jobs.get(&bid.job) else {
            return;
        };
        if j.pending.is_empty() || !matches!(j.state, JobState::Queued | JobState::Running) {
            return;
        }
        let cost_milli = j.cost_milli;
        let Some(rig) = self.rigs.get(key) else {
            return;
        };
        if rig.link.is_none()
            || rig.excluded.contains(&bid.job)
            || rig.busy.contains_key(&bid.device)
            || bid.min_price > self.cfg.price_per_unit
        {
            return;
        }
        let c = Candidate {
            rig: 0,
            device: bid.device,
            cores: bid.cores.max(1),
            histories_per_s: scheduler::expected_rate(
                rig.public.s_per_milli,
                bid.histories_per_s,
                cost_milli,
            ),
            min_price: bid.min_price,
        };
        self.assign(bid.job, *key, c);
    }

    fn geometry(&mut self, key: &PublicKey, content: Digest) {
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
        self.push(key, |out| out.push_geometry(input));
    }

    /// Assigns pending photons of `job` to idle bidders, best first for the job's mode.
    pub fn match_job(&mut self, job: JobId) {
        let Some(j) = self.jobs.get(&job) else { return };
        if j.pending.is_empty() || !matches!(j.state, JobState::Queued | JobState::Running) {
            return;
        }
        let (mode, cost_milli) = (j.mode, j.cost_milli);
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
                if bid.min_price > self.cfg.price_per_unit {
                    continue;
                }
                keys.push(*k);
                cands.push(Candidate {
                    rig: keys.len() - 1,
                    device: *dev,
                    cores: bid.cores.max(1),
                    histories_per_s: scheduler::expected_rate(
                        rig.public.s_per_milli,
                        bid.histories_per_s,
                        cost_milli,
                    ),
                    min_price: bid.min_price,
                });
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

    fn assign(&mut self, job: JobId, key: PublicKey, c: Candidate) -> bool {
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
    fn issue(
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
        let allowance =
            scheduler::allowance(expected, self.cfg.deadline_factor, self.cfg.deadline_floor);
        let (content, input_len, seed) =
            (j.spec.content, j.spec.input.len() as u32, j.spec.job.seed);
        let id = match self.persist.next_assignment_id() {
            Ok(id) => id,
            Err(e) => {
                log(format_args!("store: no assignment number: {e}"));
                return false;
            }
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
        self.assignments.insert(
            id,
            Assignment {
                job,
                rig: key,
                payout_to,
                device: c.device,
                range,
                payout,
                state: AState::Assigned,
                assigned_at: now,
                deadline: now + allowance,
                commit: None,
                assembly: None,
                tally: None,
                outstanding: BTreeSet::new(),
                checks_in_flight: 0,
                check_deadline: None,
                sampled: false,
                duplicate: None,
                issued_unix_s,
                deadline_unix_s: msg.deadline_unix_s,
                elapsed_ms: 0,
                spendable: false,
                digest: None,
                check,
                disputed: None,
                suspect: None,
            },
        );
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
    fn release(&mut self, id: AssignmentId, state: AState) {
        self.note(id, AssignmentState::Abandoned, state == AState::Late);
        self.release_quiet(id, state);
    }

    /// [`Market::release`] without the record (the caller commits it with more).
    fn release_quiet(&mut self, id: AssignmentId, state: AState) {
        let Some(a) = self.assignments.get_mut(&id) else {
            return;
        };
        let before = a.state;
        a.state = state;
        a.assembly = None;
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
                if before != AState::Settled {
                    self.check_lost(run);
                }
            }
            None => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    scheduler::give_back(&mut j.pending, range);
                }
            }
        }
        self.match_job(job);
        self.match_rig(&rig);
    }

    fn match_rig(&mut self, key: &PublicKey) {
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

    fn commit(&mut self, key: &PublicKey, c: ResultCommit) {
        let id = c.assignment;
        let Some(a) = self.assignments.get(&id) else {
            return self.unknown(key, id, "result for an assignment that does not exist");
        };
        if a.rig != *key {
            return self.unknown(key, id, "result for another rig's assignment");
        }
        if a.state != AState::Assigned {
            return self.unknown(key, id, "replayed result");
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
            self.send(
                key,
                ManagerToRig::Ack {
                    assignment: id,
                    status: AckStatus::Failed,
                },
            );
            return self.release(id, AState::Discarded);
        }
        let Some(spec) = self.jobs.get(&a.job).map(|j| j.spec.clone()) else {
            return self.unknown(key, id, "result for a finished job");
        };
        let max = max_sealed_len(spec.cells as u64, a.range.count, spec.job.media.len());
        let assembly = match Assembly::new(c.sealed, c.sealed_len, max) {
            Ok(x) => x,
            Err(e) => {
                self.stats.abuse += 1;
                log(format_args!("rig {}: {e}", short(key)));
                self.send(
                    key,
                    ManagerToRig::Ack {
                        assignment: id,
                        status: AckStatus::Failed,
                    },
                );
                return self.release(id, AState::Discarded);
            }
        };
        let now = Instant::now();
        if let Some(a) = self.assignments.get_mut(&id) {
            // Time to return / cost: the record that sizes this rig's next assignments.
            let secs = now.duration_since(a.assigned_at).as_secs_f64();
            a.elapsed_ms =
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
            a.state = AState::Uploading;
            a.commit = Some(c);
            a.assembly = Some(assembly);
        }
        self.uploads.insert((*key, c.sealed), id);
        self.match_rig(key);
    }

    fn chunk(&mut self, key: &PublicKey, chunk: &compushare_protocol::chunk::Chunk) -> Vec<Work> {
        let Some(&id) = self.uploads.get(&(*key, chunk.content)) else {
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
        let Some(asm) = a.assembly.as_mut() else {
            return Vec::new();
        };
        match asm.accept(chunk) {
            Ok(false) => Vec::new(),
            Ok(true) => {
                self.uploads.remove(&(*key, chunk.content));
                let (Some(asm), Some(commit)) = (a.assembly.take(), a.commit) else {
                    return Vec::new();
                };
                a.state = AState::Opening;
                let job = a.job;
                match self.jobs.get(&job) {
                    Some(j) => vec![Work::Open {
                        assignment: id,
                        spec: j.spec.clone(),
                        sealed: asm.into_bytes(),
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

    /// The outcome of [`Work::Open`].
    pub fn opened(&mut self, id: AssignmentId, result: Result<Tally, String>) -> Vec<Work> {
        let tally = match result {
            Ok(t) => t,
            Err(e) => {
                self.fail(id, &e, ErrorKind::BadResult);
                return Vec::new();
            }
        };
        let k = self.cfg.samples;
        let r = self.random();
        let dup_roll = self.random() % 1_000_000;
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        if a.state != AState::Opening {
            return Vec::new();
        }
        let (rig_key, range, job) = (a.rig, a.range, a.job);
        let is_check = a.check.is_some();
        a.digest = Some(tally.digest());
        a.tally = Some(Arc::new(tally));
        a.state = AState::Checking;
        a.check_deadline = Some(Instant::now() + self.cfg.deadline_floor);
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
            if let Some(a) = self.assignments.get_mut(&id) {
                a.sampled = true;
                a.outstanding = photons.iter().copied().collect();
            }
            for group in photons.chunks(compushare_protocol::limits::SAMPLES_PER_REQUEST) {
                let mut v = heapless::Vec::new();
                for p in group {
                    let _ = v.push(*p);
                }
                self.send(
                    &rig_key,
                    ManagerToRig::SampleRequest {
                        assignment: id,
                        photons: v,
                    },
                );
            }
        }
        if duplicate {
            if let Some(spec) = self.jobs.get(&job).map(|j| j.spec.clone()) {
                work.extend(self.start_duplicate(id, spec, range));
            }
        }
        work.extend(self.settle_check(id));
        work
    }

    fn proofs(
        &mut self,
        key: &PublicKey,
        id: AssignmentId,
        proofs: Vec<HistoryProof>,
    ) -> Vec<Work> {
        let Some(a) = self.assignments.get_mut(&id) else {
            self.unknown(key, id, "sample proofs for an unknown assignment");
            return Vec::new();
        };
        if a.rig != *key || a.state != AState::Checking {
            self.unknown(key, id, "sample proofs nobody asked for");
            return Vec::new();
        }
        for p in &proofs {
            if !a.outstanding.remove(&p.photon) {
                let photon = p.photon;
                self.fail(
                    id,
                    &format!("sent photon {photon}, which was not requested"),
                    ErrorKind::BadProof,
                );
                return Vec::new();
            }
        }
        let (Some(commit), Some(spec)) = (a.commit, self.jobs.get(&a.job).map(|j| j.spec.clone()))
        else {
            return Vec::new();
        };
        a.checks_in_flight += 1;
        vec![Work::Check {
            assignment: id,
            spec,
            range: a.range,
            root: commit.merkle_root,
            proofs,
        }]
    }

    /// The outcome of [`Work::Check`].
    pub fn checked(&mut self, id: AssignmentId, n: usize, result: Result<(), String>) -> Vec<Work> {
        self.stats.samples_checked += n as u64;
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        a.checks_in_flight = a.checks_in_flight.saturating_sub(1);
        if a.state != AState::Checking {
            return Vec::new();
        }
        if let Err(e) = result {
            self.fail(id, &e, ErrorKind::SampleMismatch);
            return Vec::new();
        }
        self.settle_check(id)
    }

    /// Moves a result to `Held` once every requested sample passed and any duplicate agreed.
    fn settle_check(&mut self, id: AssignmentId) -> Vec<Work> {
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        if a.state != AState::Checking
            || !a.outstanding.is_empty()
            || a.checks_in_flight > 0
            || a.duplicate == Some(false)
        {
            return Vec::new();
        }
        if let Some(run) = a.check {
            return self.check_settled(id, run);
        }
        let (job, rig_key, range, sampled, payout_to, payout) =
            (a.job, a.rig, a.range, a.sampled, a.payout_to, a.payout);
        let duplicated = a.duplicate == Some(true);
        let elapsed_ms = a.elapsed_ms;
        let tally = a.tally.as_ref().map(|t| t.canonical_bytes());
        let Some(tally) = tally else {
            return Vec::new();
        };
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
        let recorded = match self.persist.verified(&v) {
            Ok(r) => r,
            Err(e) => {
                // Not recorded, so not verified: the range is computed again.
                log(format_args!(
                    "store: verified result of assignment {} not recorded: {e}; reassigned",
                    id.0
                ));
                self.release_quiet(id, AState::Discarded);
                return Vec::new();
            }
        };
        if let Some(a) = self.assignments.get_mut(&id) {
            a.state = AState::Held;
            a.spendable = recorded.spendable;
        }
        if recorded.spendable {
            // The rig's earlier pending pay was released with this one.
            for x in self.assignments.values_mut() {
                if x.payout_to == payout_to && x.state == AState::Held {
                    x.spendable = true;
                }
            }
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
    fn notify_paid(&mut self, rig: &PublicKey, id: AssignmentId, payout: u64, spendable: bool) {
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
    fn fail(&mut self, id: AssignmentId, why: &str, kind: ErrorKind) {
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
            if x.rig != rig_key || *other == id {
                continue;
            }
            match x.state {
                AState::Held if !x.spendable => discard.push(*other),
                AState::Checking | AState::Opening => discard.push(*other),
                // Work still out with a caught rig is not wanted either.
                AState::Assigned | AState::Uploading => cancel.push(*other),
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
                if x.state == AState::Held {
                    caught.unverified.push((x.job, *d, x.range.count));
                }
            }
        }
        match self.persist.caught(&caught) {
            Ok((rec, forfeited)) => {
                if let Some(r) = self.rigs.get_mut(&rig_key) {
                    r.public.absorb(&rec);
                }
                if forfeited > 0 {
                    log(format_args!(
                        "rig {}: {forfeited} of pending pay forfeited",
                        short(&rig_key)
                    ));
                }
            }
            Err(e) => log(format_args!(
                "store: demotion of rig {} not recorded: {e}",
                short(&rig_key)
            )),
        }
        for d in discard {
            let Some(x) = self.assignments.get_mut(&d) else {
                continue;
            };
            if x.state == AState::Held {
                if let Some(j) = self.jobs.get_mut(&x.job) {
                    j.held.remove(&x.range.start);
                }
            }
            x.tally = None;
            self.release_quiet(d, AState::Discarded);
        }
        self.match_job(job);
    }

    /// Completes `job` once all its photons are held and every contributing untrusted rig has
    /// passed a duplicate (otherwise one of its held results is duplicated now).
    fn try_finish(&mut self, job: Option<JobId>) -> Vec<Work> {
        let Some(job) = job else { return Vec::new() };
        let Some(j) = self.jobs.get(&job) else {
            return Vec::new();
        };
        if !j.pending.is_empty() || j.state != JobState::Running {
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
        for id in &held_ids {
            let Some(a) = self.assignments.get(id) else {
                continue;
            };
            let Some(r) = self.rigs.get(&a.rig) else {
                continue;
            };
            if r.public.trusted || r.dup_passed {
                continue;
            }
            waiting = true;
            if r.dup_in_flight.is_none() && asked.insert(a.rig) {
                let range = a.range;
                work.extend(self.start_duplicate(*id, spec.clone(), range));
            }
        }
        if waiting {
            return work;
        }
        self.finish(job);
        work
    }

    /// Merges a job's held results and settles it: result, fee and refund in one
    /// transaction (every result was paid when it was verified).
    fn finish(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let mut merged: Option<Tally> = None;
        let mut spent = 0u64;
        let mut held: Vec<AssignmentId> = Vec::new();
        for id in j.held.values() {
            let Some(a) = self.assignments.get(id) else {
                continue;
            };
            let Some(t) = &a.tally else { continue };
            match &mut merged {
                None => merged = Some((**t).clone()),
                Some(m) => {
                    if let Err(e) = m.merge(t) {
                        log(format_args!("job {}: merge failed: {e}", job.0));
                        j.state = JobState::Failed;
                        return;
                    }
                }
            }
            spent = spent.saturating_add(a.payout);
            held.push(*id);
        }
        let Some(merged) = merged else { return };
        let bytes = merged.canonical_bytes();
        let fee = costing::fee(spent, j.fee_bp);
        let (fee, refund) = match self
            .persist
            .finished(job, &bytes, merged.digest(), fee, &held)
        {
            Ok(x) => x,
            Err(e) => {
                // Not settled: the job stays as it is and is finished again after a
                // restart.
                log(format_args!("store: job {} not finished: {e}", job.0));
                return;
            }
        };
        j.result = Some(Arc::new(bytes));
        j.state = JobState::Done;
        j.spent = spent;
        for id in &held {
            if let Some(a) = self.assignments.get_mut(id) {
                a.state = AState::Paid;
                a.tally = None;
            }
        }
        for r in self.rigs.values_mut() {
            r.bids.retain(|(b, _), _| *b != job);
        }
        log(format_args!(
            "job {} done: {} photons verified, paid {spent}, fee {fee}, refund {refund}",
            job.0,
            self.jobs.get(&job).map_or(0, |j| j.photons),
        ));
    }

    /// Reassigns every assignment past its deadline; the late rig's record suffers. Returns
    /// work started meanwhile (checks of results whose check run was lost).
    pub fn tick(&mut self, now: Instant) -> Vec<Work> {
        let late: Vec<AssignmentId> = self
            .assignments
            .iter()
            .filter(|(_, a)| {
                matches!(a.state, AState::Assigned | AState::Uploading) && a.deadline <= now
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
            self.release(id, AState::Late);
        }
        // A rig that does not answer its sample requests fails the check.
        let silent: Vec<AssignmentId> = self
            .assignments
            .iter()
            .filter(|(_, a)| {
                a.state == AState::Checking
                    && !a.outstanding.is_empty()
                    && a.check_deadline.is_some_and(|d| d <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            self.fail(
                id,
                "sample proofs not returned in time",
                ErrorKind::BadProof,
            );
        }
        // Old finished assignments are forgotten so memory stays bounded.
        self.assignments.retain(|_, a| {
            !(matches!(a.state, AState::Paid | AState::Late | AState::Discarded)
                && now.duration_since(a.assigned_at) > Duration::from_secs(3600))
        });
        if let Err(e) = self.persist.flush() {
            log(format_args!("store: assignment records: {e}"));
        }
        std::mem::take(&mut self.later)
    }

    // ---------------------------------------------------------------- clients

    /// Accepts a priced job: escrows its maximum cost plus fee and opens it for bids.
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
        let price_per_history = costing::price_per_history(cost_milli, self.cfg.price_per_unit);
        let e = costing::escrow(
            photons,
            price_per_history,
            self.cfg.fee_bp,
            self.cfg.check_allowance_permille,
        );
        let (checks, escrow) = (e.checks, e.total);
        let terms = JobTerms {
            client,
            photons,
            seed: spec.job.seed,
            mode,
            max_price,
            cost_per_history_milli: cost_milli,
            price_per_unit: self.cfg.price_per_unit,
            escrow: Amount(escrow),
            fee_bp: self.cfg.fee_bp,
            check_allowance_permille: self.cfg.check_allowance_permille,
        };
        let id = self
            .persist
            .accept_job(&terms, &spec.input)
            .map_err(|e| match e {
                StoreError::InsufficientBalance { .. } => {
                    (ErrorCode::InsufficientFunds, e.to_string())
                }
                StoreError::PriceAboveMax { needed, max } => (
                    ErrorCode::TooExpensive,
                    format!(
                        "{photons} photons at {price_per_history} per history plus fee and check allowance cost {needed}, above the maximum {max}"
                    ),
                ),
                e => {
                    log(format_args!("store: job not accepted: {e}"));
                    (
                        ErrorCode::Internal,
                        "the manager could not record the job".into(),
                    )
                }
            })?;
        let entry = JobEntry {
            client,
            spec: Arc::new(spec),
            photons,
            mode,
            cost_milli,
            price_per_history,
            fee_bp: self.cfg.fee_bp,
            pending: vec![PhotonRange {
                start: 0,
                count: photons,
            }],
            held: BTreeMap::new(),
            state: JobState::Queued,
            spent: 0,
            result: None,
            rigs: Vec::new(),
            check_budget: checks,
        };
        let offer = self.offer(id, &entry);
        self.jobs.insert(id, entry);
        log(format_args!(
            "job {} accepted: {photons} photons, {price_per_history} per history, escrow {escrow}",
            id.0
        ));
        let keys: Vec<PublicKey> = self
            .rigs
            .iter()
            .filter(|(_, r)| r.link.is_some())
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.send(&k, ManagerToRig::Offer(offer));
        }
        Ok((id, Amount(price_per_history), Amount(escrow)))
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
    fn stored_status(&self, client: &PublicKey, job: JobId) -> Option<JobStatus> {
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
            crate::records::JobState::Cancelled => JobState::Failed,
            // Running jobs are all in memory; one that is not could not be restored.
            crate::records::JobState::Running => JobState::Failed,
        };
        Some(JobStatus {
            job,
            state,
            photons_done: rec.photons_verified,
            photons_total: rec.photons,
            spent: rec.paid,
            rigs: heapless::Vec::new(),
        })
    }

    /// The merged tally's canonical bytes of a finished job, for its client.
    pub fn result(&self, client: &PublicKey, job: JobId) -> Result<Arc<Vec<u8>>, ErrorCode> {
        if let Some(j) = self.jobs.get(&job) {
            if j.client != *client {
                return Err(ErrorCode::UnknownJob);
            }
            return j.result.clone().ok_or(ErrorCode::NotReady);
        }
        // Finished before this manager started.
        let owned = self
            .persist
            .job(job)
            .map_err(|_| ErrorCode::Internal)?
            .is_some_and(|r| r.client == *client);
        if !owned {
            return Err(ErrorCode::UnknownJob);
        }
        match self.persist.client_result(job) {
            Ok(Some(bytes)) => Ok(Arc::new(bytes)),
            Ok(None) => Err(ErrorCode::NotReady),
            Err(_) => Err(ErrorCode::Internal),
        }
    }

    /// A client's star rating of a rig that worked on its job.
    pub fn rate(
        &mut self,
        client: &PublicKey,
        job: JobId,
        rig: &PublicKey,
        stars: u8,
    ) -> Result<(), ErrorCode> {
        let worked = match self.jobs.get(&job) {
            Some(j) if j.client == *client => j.rigs.contains(rig),
            Some(_) => return Err(ErrorCode::UnknownJob),
            None => {
                let owned = self
                    .persist
                    .job(job)
                    .map_err(|_| ErrorCode::Internal)?
                    .is_some_and(|r| r.client == *client);
                if !owned {
                    return Err(ErrorCode::UnknownJob);
                }
                self.persist
                    .worked_on(job, rig)
                    .map_err(|_| ErrorCode::Internal)?
            }
        };
        if !(1..=5).contains(&stars) || !worked {
            return Err(ErrorCode::Protocol);
        }
        match self.persist.rate(rig, client, stars) {
            Ok(rec) => {
                if let Some(r) = self.rigs.get_mut(rig) {
                    r.public.absorb(&rec);
                }
                Ok(())
            }
            Err(e) => {
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

    /// Connected rigs.
    pub fn connected(&self) -> usize {
        self.rigs.values().filter(|r| r.link.is_some()).count()
    }
}

impl Market {
    /// The client whose job `assignment` belonged to, if `rig` returned work on it (its result
    /// arrived: being verified, verified or paid). Lets a rig rate only clients it worked for.
    pub fn client_of_returned_work(
        &self,
        rig: &PublicKey,
        assignment: AssignmentId,
    ) -> Option<PublicKey> {
        let a = self
            .assignments
            .get(&assignment)
            .filter(|a| a.rig == *rig)?;
        let returned = matches!(
            a.state,
            AState::Opening | AState::Checking | AState::Held | AState::Paid
        );
        returned.then_some(())?;
        self.jobs.get(&a.job).map(|j| j.client)
    }
}
