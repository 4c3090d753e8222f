//! The market: jobs, rigs, bids and assignments in memory, and every rule that moves them.
//!
//! The network side ([`crate::server`]) turns frames into calls here and runs the heavy work
//! this returns ([`Work`]: opening results, re-simulating samples, duplicate runs) on blocking
//! threads, then reports back. Nothing here blocks or awaits, so one mutex around the market
//! is held only for bookkeeping. Messages to rigs go through each session's bounded queue
//! (`try_send`); a rig whose queue is full is too slow to serve and its session is dropped.
//!
//! Life of an assignment: `Assigned` -> (commit, upload) `Opening` -> `Checking` (samples and
//! possibly a duplicate) -> `Held` (verified, pay pending) -> `Paid` when its job completes.
//! A late one is `Late` and its range returns to the pool; a failed or discarded one is
//! `Discarded`. Pay is held until the job completes, so a rig caught cheating forfeits all pay
//! still pending and its held results are recomputed elsewhere.

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
use tokio::sync::mpsc;

use crate::escrow::{Bank, BankError};
use crate::journal::{JobMeta, Journal, StoredResult};
use crate::results::{max_sealed_len, Assembly};
use crate::scheduler::{self, Candidate};
use crate::verify;

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
    /// Share of results (after a rig's first) also run by the trusted runner, per mille.
    pub duplicate_permille: u64,
    /// Consecutive verified histories that make a rig trusted.
    pub trust_threshold: u64,
    /// Verified histories before a rig's earnings become spendable.
    pub spendable_after: u64,
    /// Seconds between heartbeats rigs are told to keep.
    pub heartbeat_s: u16,
    /// What the manager pays per cost unit.
    pub price_per_unit: Amount,
    /// Manager's fee on the work paid, per mille.
    pub fee_permille: u64,
    /// Largest job input accepted, bytes.
    pub max_input: u32,
    /// Queue depth of each session's outgoing messages.
    pub session_queue: usize,
    /// First job and assignment number. A manager on a persistent ledger starts above every
    /// number used before a restart (the ledger refuses a second payment per assignment id).
    pub first_id: u64,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            target: Duration::from_secs(60),
            deadline_factor: 3,
            deadline_floor: Duration::from_secs(120),
            samples: verify::DEFAULT_SAMPLES,
            duplicate_permille: 10,
            trust_threshold: 100_000_000,
            spendable_after: 1_000_000,
            heartbeat_s: 10,
            price_per_unit: Amount(1),
            fee_permille: 50,
            max_input: 64 << 20,
            session_queue: 256,
            first_id: 1,
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
    pub tx: mpsc::Sender<Box<ManagerToRig>>,
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
    pub paid: u64,
    pub forfeited: u64,
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
}

#[derive(Debug)]
struct JobEntry {
    client: PublicKey,
    spec: Arc<JobSpec>,
    photons: u64,
    mode: Mode,
    cost_milli: u64,
    price_per_history: u64,
    fee_permille: u64,
    pending: Vec<PhotonRange>,
    /// Verified ranges by start photon.
    held: BTreeMap<u64, AssignmentId>,
    state: JobState,
    spent: u64,
    result: Option<Arc<Vec<u8>>>,
    rigs: Vec<PublicKey>,
}

/// Counters for logs, tests and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub abuse: u64,
    pub assignments: u64,
    pub late: u64,
    pub caught: u64,
    pub duplicates: u64,
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
    bank: Box<dyn Bank>,
    next_job: u64,
    next_assignment: u64,
    next_session: u64,
    rng: u64,
    jobs: BTreeMap<JobId, JobEntry>,
    rigs: HashMap<PublicKey, Rig>,
    assignments: HashMap<AssignmentId, Assignment>,
    /// Assignment waiting for each committed sealed result, by content address.
    uploads: HashMap<(PublicKey, Digest), AssignmentId>,
    journal: Option<Journal>,
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
    /// An empty market paying through `bank`.
    pub fn new(cfg: MarketConfig, bank: Box<dyn Bank>) -> Self {
        let mut seed = [0u8; 8];
        let _ = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut seed);
        let first = cfg.first_id.max(1);
        Market {
            cfg,
            bank,
            next_job: first,
            next_assignment: first,
            next_session: 1,
            rng: u64::from_le_bytes(seed) | 1,
            jobs: BTreeMap::new(),
            rigs: HashMap::new(),
            assignments: HashMap::new(),
            uploads: HashMap::new(),
            journal: None,
            stats: Stats::default(),
        }
    }

    /// Keeps jobs and verified results in `journal` from now on, after restoring what it
    /// holds: finished jobs keep their results, running ones resume with their verified
    /// ranges held and the rest of their photons pending. Returns the jobs restored.
    pub fn restore(&mut self, journal: Journal) -> Result<usize, crate::journal::JournalError> {
        let stored = journal.load()?;
        let now = Instant::now();
        let n = stored.len();
        for sj in stored {
            let prepared = match crate::client::prepare_job(
                sj.input.clone(),
                sj.meta.photons,
                Some(sj.meta.seed),
            ) {
                Ok(p) => p,
                Err(e) => {
                    log(format_args!(
                        "journal: job {} no longer parses: {e}",
                        sj.id.0
                    ));
                    continue;
                }
            };
            let mut pending = vec![PhotonRange {
                start: 0,
                count: sj.meta.photons,
            }];
            let mut held = BTreeMap::new();
            for r in &sj.results {
                let Ok(t) = Tally::from_canonical_bytes(&r.tally) else {
                    continue;
                };
                // Take the range out of the pending list (it is inside exactly one piece).
                let mut rest = Vec::new();
                for p in pending {
                    if r.range.start >= p.start
                        && r.range.start + r.range.count <= p.start + p.count
                    {
                        rest.push(PhotonRange {
                            start: p.start,
                            count: r.range.start - p.start,
                        });
                        rest.push(PhotonRange {
                            start: r.range.start + r.range.count,
                            count: p.start + p.count - r.range.start - r.range.count,
                        });
                    } else {
                        rest.push(p);
                    }
                }
                pending = rest.into_iter().filter(|p| p.count > 0).collect();
                held.insert(r.range.start, r.assignment);
                self.assignments.insert(
                    r.assignment,
                    Assignment {
                        job: sj.id,
                        rig: r.rig,
                        payout_to: r.payout_to,
                        device: 0,
                        range: r.range,
                        payout: r.payout,
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
                    },
                );
            }
            let state = match (&sj.done, held.is_empty()) {
                (Some(_), _) => JobState::Done,
                (None, true) => JobState::Queued,
                (None, false) => JobState::Running,
            };
            let rigs = sj
                .results
                .iter()
                .map(|r| r.rig)
                .fold(Vec::new(), |mut v, k| {
                    if !v.contains(&k) {
                        v.push(k);
                    }
                    v
                });
            let spent = if sj.done.is_some() {
                sj.results.iter().map(|r| r.payout).sum()
            } else {
                0
            };
            self.jobs.insert(
                sj.id,
                JobEntry {
                    client: sj.meta.client,
                    spec: Arc::new(prepared.spec),
                    photons: sj.meta.photons,
                    mode: sj.meta.mode,
                    cost_milli: sj.meta.cost_milli,
                    price_per_history: sj.meta.price_per_history,
                    fee_permille: sj.meta.fee_permille,
                    pending: if sj.done.is_some() {
                        Vec::new()
                    } else {
                        pending
                    },
                    held,
                    state,
                    spent,
                    result: sj.done.map(Arc::new),
                    rigs,
                },
            );
            log(format_args!(
                "journal: restored job {} ({state:?})",
                sj.id.0
            ));
        }
        self.journal = Some(journal);
        // A job whose every range was verified before the crash completes now.
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let _ = self.try_finish(Some(id));
        }
        Ok(n)
    }

    /// The configuration.
    pub fn config(&self) -> &MarketConfig {
        &self.cfg
    }

    /// The bank (for balances in tests and status).
    pub fn bank(&self) -> &dyn Bank {
        self.bank.as_ref()
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
        let Some(r) = self.rigs.get_mut(rig) else {
            return;
        };
        let Some(link) = &r.link else { return };
        if link.tx.try_send(Box::new(msg)).is_err() {
            log(format_args!(
                "rig {} cannot keep up (queue full or closed); dropping its session",
                short(rig)
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
            .map(|j| j.spec.input.clone());
        let Some(input) = input else {
            self.stats.abuse += 1;
            log(format_args!(
                "rig {}: asked for unknown geometry",
                short(key)
            ));
            return;
        };
        if let Ok(chunker) = compushare_protocol::chunk::Chunker::new(&input) {
            for c in chunker {
                self.send(key, ManagerToRig::GeometryChunk(c));
            }
        }
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
        let payout = range.count.saturating_mul(j.price_per_history);
        let expected = Duration::from_secs_f64(
            (range.count as f64 / c.histories_per_s.max(1e-9)).min(86_400.0),
        );
        let allowance =
            scheduler::allowance(expected, self.cfg.deadline_factor, self.cfg.deadline_floor);
        let id = AssignmentId(self.next_assignment);
        self.next_assignment += 1;
        let now = Instant::now();
        let msg = Assign {
            assignment: id,
            job,
            device: c.device,
            geometry: j.spec.content,
            geometry_len: j.spec.input.len() as u32,
            seed: j.spec.job.seed,
            photons: range,
            deadline_unix_s: unix_now() + allowance.as_secs(),
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
            },
        );
        if let Some(rig) = self.rigs.get_mut(&key) {
            rig.busy.insert(c.device, id);
        }
        self.stats.assignments += 1;
        self.send(&key, ManagerToRig::Assign(msg));
        true
    }

    /// Ends an assignment that will not deliver: frees the device, returns the range.
    fn release(&mut self, id: AssignmentId, state: AState) {
        let Some(a) = self.assignments.get_mut(&id) else {
            return;
        };
        a.state = state;
        a.assembly = None;
        let (job, rig, device, range) = (a.job, a.rig, a.device, a.range);
        if let Some(r) = self.rigs.get_mut(&rig) {
            if r.busy.get(&device) == Some(&id) {
                r.busy.remove(&device);
            }
            if r.dup_in_flight == Some(id) {
                r.dup_in_flight = None;
            }
        }
        if let Some(j) = self.jobs.get_mut(&job) {
            scheduler::give_back(&mut j.pending, range);
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
            let cost =
                a.range.count as f64 * self.jobs.get(&a.job).map_or(1, |j| j.cost_milli) as f64;
            let sample = secs / cost.max(1.0);
            if let Some(r) = self.rigs.get_mut(key) {
                let s = &mut r.public.s_per_milli;
                *s = Some(match *s {
                    Some(old) => 0.5 * old + 0.5 * sample,
                    None => sample,
                });
                r.busy.remove(&a.device);
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
                self.fail(id, &e.to_string());
                Vec::new()
            }
        }
    }

    /// The outcome of [`Work::Open`].
    pub fn opened(&mut self, id: AssignmentId, result: Result<Tally, String>) -> Vec<Work> {
        let tally = match result {
            Ok(t) => t,
            Err(e) => {
                self.fail(id, &e);
                return Vec::new();
            }
        };
        let k = self.cfg.samples;
        let r = self.random();
        let dup_roll = self.random() % 1000;
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        if a.state != AState::Opening {
            return Vec::new();
        }
        let (rig_key, range, job) = (a.rig, a.range, a.job);
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
        let duplicate = first_dup || dup_roll < self.cfg.duplicate_permille;
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
                work.push(self.start_duplicate(id, spec, range));
            }
        }
        work.extend(self.settle_check(id));
        work
    }

    fn start_duplicate(
        &mut self,
        id: AssignmentId,
        spec: Arc<JobSpec>,
        range: PhotonRange,
    ) -> Work {
        self.stats.duplicates += 1;
        if let Some(a) = self.assignments.get_mut(&id) {
            a.duplicate = Some(false);
            if let Some(r) = self.rigs.get_mut(&a.rig) {
                if !r.public.trusted && !r.dup_passed {
                    r.dup_in_flight = Some(id);
                }
            }
        }
        Work::Duplicate {
            assignment: id,
            spec,
            range,
        }
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
            self.fail(id, &e);
            return Vec::new();
        }
        self.settle_check(id)
    }

    /// The outcome of [`Work::Duplicate`]: the manager's own digest of the range.
    pub fn duplicated(&mut self, id: AssignmentId, digest: Result<Digest, String>) -> Vec<Work> {
        let Some(a) = self.assignments.get_mut(&id) else {
            return Vec::new();
        };
        let committed = a.commit.map(|c| c.tally);
        match digest {
            Err(e) => {
                // The manager could not run it: no verdict on the rig; drop the duplicate.
                log(format_args!("duplicate of assignment {} failed: {e}", id.0));
                a.duplicate = None;
                if let Some(r) = self.rigs.get_mut(&a.rig) {
                    if r.dup_in_flight == Some(id) {
                        r.dup_in_flight = None;
                    }
                }
            }
            Ok(d) if Some(d) == committed => {
                a.duplicate = Some(true);
                if let Some(r) = self.rigs.get_mut(&a.rig) {
                    r.dup_passed = true;
                    if r.dup_in_flight == Some(id) {
                        r.dup_in_flight = None;
                    }
                }
            }
            Ok(_) => {
                if matches!(a.state, AState::Checking | AState::Held) {
                    self.fail(id, "tally digest differs from the trusted duplicate");
                }
                return Vec::new();
            }
        }
        let state = a.state;
        match state {
            AState::Checking => self.settle_check(id),
            AState::Held => self.try_finish(self.assignments.get(&id).map(|a| a.job)),
            _ => Vec::new(),
        }
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
        a.state = AState::Held;
        let (job, rig_key, range, sampled) = (a.job, a.rig, a.range, a.sampled);
        if let (Some(journal), Some(t)) = (&self.journal, &a.tally) {
            let stored = StoredResult {
                assignment: id,
                range,
                rig: rig_key,
                payout_to: a.payout_to,
                payout: a.payout,
                tally: t.canonical_bytes(),
            };
            if let Err(e) = journal.save_result(job, &stored) {
                log(format_args!("journal: {e}"));
            }
        }
        if let Some(j) = self.jobs.get_mut(&job) {
            j.held.insert(range.start, id);
            if !j.rigs.contains(&rig_key) {
                j.rigs.push(rig_key);
            }
        }
        let threshold = self.cfg.trust_threshold;
        if let Some(r) = self.rigs.get_mut(&rig_key) {
            r.public.verified += range.count;
            if sampled || a.duplicate == Some(true) {
                r.public.streak += range.count;
            }
            if r.public.trusted {
                r.trusted_clean += 1;
            } else if r.public.streak >= threshold && r.dup_passed {
                r.public.trusted = true;
                log(format_args!(
                    "rig {} is trusted after {} verified histories",
                    short(&rig_key),
                    r.public.streak
                ));
            }
        }
        self.send(
            &rig_key,
            ManagerToRig::Ack {
                assignment: id,
                status: AckStatus::Verified,
            },
        );
        self.try_finish(Some(job))
    }

    /// A result failed verification: the rig is demoted, every unpaid result it holds in any
    /// running job is discarded and its photons recomputed elsewhere, its pending pay forfeited.
    fn fail(&mut self, id: AssignmentId, why: &str) {
        let Some(a) = self.assignments.get(&id) else {
            return;
        };
        let rig_key = a.rig;
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
        let mut forfeited = 0u64;
        let mut discard: Vec<AssignmentId> = vec![id];
        let mut cancel: Vec<AssignmentId> = Vec::new();
        for (other, x) in &self.assignments {
            if x.rig != rig_key || *other == id {
                continue;
            }
            if matches!(x.state, AState::Held | AState::Checking | AState::Opening) {
                discard.push(*other);
            } else if matches!(x.state, AState::Assigned | AState::Uploading) {
                // Work still out with a caught rig is not wanted either.
                cancel.push(*other);
            }
        }
        for c in cancel {
            self.uploads.retain(|_, v| *v != c);
            self.send(&rig_key, ManagerToRig::Cancel { assignment: c });
            discard.push(c);
        }
        for d in discard {
            let Some(x) = self.assignments.get_mut(&d) else {
                continue;
            };
            if x.state == AState::Held {
                forfeited += x.payout;
                if let Some(j) = self.jobs.get_mut(&x.job) {
                    j.held.remove(&x.range.start);
                }
                if let Some(journal) = &self.journal {
                    journal.drop_result(x.job, d, x.range);
                }
            }
            x.tally = None;
            self.release(d, AState::Discarded);
        }
        if let Some(r) = self.rigs.get_mut(&rig_key) {
            r.public.forfeited += forfeited;
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
                work.push(self.start_duplicate(*id, spec.clone(), range));
            }
        }
        if waiting {
            return work;
        }
        self.finish(job);
        work
    }

    fn finish(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let mut merged: Option<Tally> = None;
        let mut pays: Vec<(AssignmentId, PublicKey, u64, PublicKey)> = Vec::new();
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
            pays.push((*id, a.rig, a.payout, a.payout_to));
        }
        let Some(merged) = merged else { return };
        let bytes = merged.canonical_bytes();
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.save_done(job, &bytes) {
                log(format_args!("journal: {e}"));
            }
        }
        j.result = Some(Arc::new(bytes));
        j.state = JobState::Done;
        let client = j.client;
        let fee_permille = j.fee_permille;
        let mut spent = 0u64;
        for (id, rig_key, amount, payout_key) in pays {
            let spendable = self
                .rigs
                .get(&rig_key)
                .is_some_and(|r| r.public.verified >= self.cfg.spendable_after);
            let paid = match self.bank.pay(job, id, &payout_key, amount, spendable) {
                // Paid before a restart: the ledger refused the repeat; count it once.
                Err(BankError::AlreadyPaid(_)) => {
                    spent += amount;
                    continue;
                }
                other => other,
            };
            match paid {
                Ok(()) => {
                    spent += amount;
                    if let Some(a) = self.assignments.get_mut(&id) {
                        a.state = AState::Paid;
                        a.tally = None;
                    }
                    if let Some(r) = self.rigs.get_mut(&rig_key) {
                        r.public.paid += amount;
                    }
                    self.send(
                        &rig_key,
                        ManagerToRig::PaymentNotice {
                            assignment: id,
                            amount: Amount(amount),
                            spendable,
                        },
                    );
                }
                Err(e) => log(format_args!(
                    "job {}: payment of {} failed: {e}",
                    job.0, id.0
                )),
            }
        }
        let fee = spent.saturating_mul(fee_permille) / 1000;
        let refund = self.bank.close(job, &client, fee);
        if let Some(j) = self.jobs.get_mut(&job) {
            j.spent = spent;
        }
        for r in self.rigs.values_mut() {
            r.bids.retain(|(b, _), _| *b != job);
        }
        log(format_args!(
            "job {} done: {} photons verified, paid {spent}, fee {fee}, refund {:?}",
            job.0,
            self.jobs.get(&job).map_or(0, |j| j.photons),
            refund
        ));
    }

    /// Reassigns every assignment past its deadline; the late rig's record suffers.
    pub fn tick(&mut self, now: Instant) {
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
            self.fail(id, "sample proofs not returned in time");
        }
        // Old finished assignments are forgotten so memory stays bounded.
        self.assignments.retain(|_, a| {
            !(matches!(a.state, AState::Paid | AState::Late | AState::Discarded)
                && now.duration_since(a.assigned_at) > Duration::from_secs(3600))
        });
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
        let price_per_history = (cost_milli.saturating_mul(self.cfg.price_per_unit.0))
            .div_ceil(1000)
            .max(1);
        let max_cost = photons.saturating_mul(price_per_history);
        let fee = max_cost.saturating_mul(self.cfg.fee_permille) / 1000;
        let escrow = max_cost.saturating_add(fee);
        if escrow > max_price.0 {
            return Err((
                ErrorCode::TooExpensive,
                format!(
                    "{photons} photons at {price_per_history} per history plus fee cost {escrow}, above the maximum {}",
                    max_price.0
                ),
            ));
        }
        let id = JobId(self.next_job);
        self.bank
            .escrow(&client, id, escrow)
            .map_err(|e| (ErrorCode::InsufficientFunds, e.to_string()))?;
        self.next_job += 1;
        let entry = JobEntry {
            client,
            spec: Arc::new(spec),
            photons,
            mode,
            cost_milli,
            price_per_history,
            fee_permille: self.cfg.fee_permille,
            pending: vec![PhotonRange {
                start: 0,
                count: photons,
            }],
            held: BTreeMap::new(),
            state: JobState::Queued,
            spent: 0,
            result: None,
            rigs: Vec::new(),
        };
        let offer = self.offer(id, &entry);
        if let Some(journal) = &self.journal {
            let meta = JobMeta {
                client,
                photons,
                seed: entry.spec.job.seed,
                mode,
                cost_milli,
                price_per_history,
                fee_permille: entry.fee_permille,
            };
            if let Err(e) = journal.save_job(id, &meta, &entry.spec.input) {
                log(format_args!("journal: {e}"));
            }
        }
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
        let j = self.jobs.get(&job).filter(|j| j.client == *client)?;
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

    /// The merged tally's canonical bytes of a finished job, for its client.
    pub fn result(&self, client: &PublicKey, job: JobId) -> Result<Arc<Vec<u8>>, ErrorCode> {
        let j = self
            .jobs
            .get(&job)
            .filter(|j| j.client == *client)
            .ok_or(ErrorCode::UnknownJob)?;
        j.result.clone().ok_or(ErrorCode::NotReady)
    }

    /// A client's star rating of a rig that worked on its job.
    pub fn rate(
        &mut self,
        client: &PublicKey,
        job: JobId,
        rig: &PublicKey,
        stars: u8,
    ) -> Result<(), ErrorCode> {
        let j = self
            .jobs
            .get(&job)
            .filter(|j| j.client == *client)
            .ok_or(ErrorCode::UnknownJob)?;
        if !(1..=5).contains(&stars) || !j.rigs.contains(rig) {
            return Err(ErrorCode::Protocol);
        }
        if let Some(r) = self.rigs.get_mut(rig) {
            r.public.ratings.push(stars);
        }
        Ok(())
    }

    /// A rig's public record.
    pub fn rig_record(&self, rig: &PublicKey) -> Option<RigPublic> {
        self.rigs.get(rig).map(|r| r.public.clone())
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
