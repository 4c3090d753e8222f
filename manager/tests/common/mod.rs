//! Test doubles and helpers for the manager's network tests.
//!
//! `ScriptedRig` is a named test double of a rig, written directly on the protocol (the rig
//! engineer's transport client lands separately): it connects over real Noise/TCP, bids,
//! fetches the geometry, runs assignments on the real CPU engine, commits a Merkle root over
//! the per-history records, uploads the sealed tally and answers sample requests. Its
//! `fabricate_every` turns it into a cheater that fakes every n-th history (n = 1, 10, 100 for
//! 100%, 10%, 1%): the record and the tally of those photons are altered, as a rig that skips
//! work and makes up plausible numbers would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_client::Client;
use compushare_controller::rig::{Rig, Stop};
use compushare_controller::settings::RigError;
use compushare_controller::transport::RatingHandle;
use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::{simulate, simulate_with_records};
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, Running, ServerConfig};
use compushare_manager::Store;
use compushare_protocol::chunk::{content_address, Chunker};
use compushare_protocol::merkle;
use compushare_protocol::msg::{
    AckStatus, Assign, Bid, CostStats, HistoryProof, JobState, JobStatus, ManagerToRig,
    ResultCommit, RigHello, RigToManager, SampleProof, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{seal, Identity};
use compushare_protocol::types::{
    Amount, AssignmentId, DeviceInfo, DeviceKind, Digest, JobId, Mode, PublicKey,
};
use compushare_testkit::{Fabricate, FabricatingDevice};
use tokio::sync::mpsc;

/// A small job: 10x10x10 voxels, two media, a detector.
pub const JOB: &str = r#"{
  "Session": { "ID": "e2e", "Photons": 1000, "RNGSeed": 11 },
  "Forward": { "T0": 0, "T1": 2e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [10, 10, 10], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.02, "mus": 1.5, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [10, 10, 10] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [5, 5, 0], "Dir": [0, 0, 1] },
              "Detector": [ { "Pos": [5, 5, 0], "R": 3 } ] }
}"#;

/// The job as the rig runs it: the input with the assignment's seed.
pub fn job_for(input: &[u8], seed: u64) -> Job {
    let mut job = parse_job_bytes(input, &ParseOptions::default()).expect("job parses");
    job.seed = seed;
    job
}

/// What a rig computed for one assignment.
pub struct Computed {
    pub commit: ResultCommit,
    pub sealed: Vec<u8>,
    pub leaves: Vec<Digest>,
    pub records: Vec<[u8; 64]>,
}

/// Runs an assignment on the CPU engine; with `fabricate_every = Some(n)` every photon whose
/// index is a multiple of n is faked.
pub fn compute(
    input: &[u8],
    a: &Assign,
    manager: &PublicKey,
    fabricate_every: Option<u64>,
) -> Computed {
    let job = job_for(input, a.seed);
    let range = a.photons.start..a.photons.start + a.photons.count;
    let (mut tally, recs) = simulate_with_records(&job, range, 2, None).expect("simulate");
    let mut records: Vec<[u8; 64]> = recs.iter().map(|r| r.to_bytes()).collect();
    if let Some(n) = fabricate_every {
        for r in &mut records {
            let photon = u64::from_le_bytes(r[0..8].try_into().unwrap());
            if photon % n == 0 {
                // Made-up deposit for a history that was never run.
                r[32] ^= 0x5a;
                tally.escaped[5] = tally.escaped[5].wrapping_add(1 << 20);
            }
        }
    }
    let leaves: Vec<Digest> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    let root = merkle::root_of(&leaves);
    let sealed = seal::seal(manager, &tally.canonical_bytes()).expect("seal");
    let commit = ResultCommit {
        assignment: a.assignment,
        histories: a.photons.count,
        tally: tally.digest(),
        merkle_root: root,
        sealed: content_address(&sealed),
        sealed_len: sealed.len() as u32,
        stats: CostStats {
            elapsed_ms: 1,
            voxel_steps: 0,
            scatters: 0,
        },
    };
    Computed {
        commit,
        sealed,
        leaves,
        records,
    }
}

/// Proofs for `photons` of a computed assignment, in messages of at most 32.
pub fn proofs(c: &Computed, start: u64, photons: &[u64]) -> Vec<SampleProof> {
    let n = c.leaves.len() as u64;
    let mut out = Vec::new();
    for group in photons.chunks(compushare_protocol::limits::PROOFS_PER_MESSAGE) {
        let mut msg = SampleProof {
            assignment: c.commit.assignment,
            proofs: heapless::Vec::new(),
        };
        for &p in group {
            let i = p - start;
            let path = merkle::proof(i, n, |s, l| {
                merkle::root_of(&c.leaves[s as usize..(s + l) as usize])
            })
            .expect("proof");
            let mut record = heapless::Vec::new();
            record.extend_from_slice(&c.records[i as usize]).unwrap();
            let _ = msg.proofs.push(HistoryProof {
                photon: p,
                record,
                path,
            });
        }
        out.push(msg);
    }
    out
}

/// A rig's hello with one CPU device.
pub fn hello(name: &str, payout: PublicKey, cores: u32, hps: u64) -> RigHello {
    let mut devices = heapless::Vec::new();
    let _ = devices.push(DeviceInfo {
        index: 0,
        kind: DeviceKind::Cpu,
        name: heapless::String::from("cpu0"),
        compute_units: cores,
        cores,
        memory: 1 << 30,
        hash_rate: 0,
        histories_per_s: hps,
    });
    RigHello {
        version: PROTOCOL_VERSION,
        firmware: heapless::String::from("test-double"),
        name: heapless::String::from(name),
        payout,
        devices,
        farm: None,
        sheet: None,
    }
}

/// How a scripted rig behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub fabricate_every: Option<u64>,
    pub cores: u32,
    pub histories_per_s: u64,
    pub min_price: u64,
    /// Accepts assignments but never returns them.
    pub stall: bool,
}

impl Behaviour {
    pub fn honest() -> Self {
        Behaviour {
            fabricate_every: None,
            cores: 2,
            histories_per_s: 4000,
            min_price: 0,
            stall: false,
        }
    }
}

/// What a scripted rig saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub key: PublicKey,
    pub payout: PublicKey,
    pub assigned: Vec<AssignmentId>,
    pub acks: Vec<(AssignmentId, AckStatus)>,
    pub payments: Vec<(AssignmentId, Amount, bool)>,
    pub cancelled: Vec<AssignmentId>,
    pub refused: bool,
    /// Jobs it sent a bid for.
    pub bids: Vec<compushare_protocol::types::JobId>,
}

/// A running scripted rig.
pub struct ScriptedRig {
    pub report: Arc<Mutex<Report>>,
    /// Set to make the rig fabricate every `lie_every`-th history (2 unless changed) from
    /// now on (a rig that turns to lying, e.g. once trusted).
    pub lie: Arc<std::sync::atomic::AtomicBool>,
    /// How a lying rig fabricates: two liars with different values never agree.
    pub lie_every: Arc<std::sync::atomic::AtomicU64>,
    /// While set, computed results are held back (not committed) until it is cleared.
    pub hold: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedRig {
    fn drop(&mut self) {
        // Held results are let go, so no blocking thread waits forever (a failed test would
        // otherwise hang on runtime shutdown).
        self.hold.store(false, std::sync::atomic::Ordering::SeqCst);
        self.task.abort();
    }
}

impl ScriptedRig {
    pub async fn start(addr: SocketAddr, manager: PublicKey, name: &str, b: Behaviour) -> Self {
        Self::start_as(addr, manager, name, b, Identity::generate().unwrap()).await
    }

    /// [`ScriptedRig::start`] with a given identity (tests that need rigs in key order).
    pub async fn start_as(
        addr: SocketAddr,
        manager: PublicKey,
        name: &str,
        b: Behaviour,
        me: Identity,
    ) -> Self {
        let lie = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lying = lie.clone();
        let lie_every = Arc::new(std::sync::atomic::AtomicU64::new(2));
        let lying_every = lie_every.clone();
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let holding = hold.clone();
        let payout = Identity::generate().unwrap().public();
        let report = Arc::new(Mutex::new(Report {
            key: me.public(),
            payout,
            ..Report::default()
        }));
        let ch = connect_tcp(addr, &me, &manager, HANDSHAKE_TIMEOUT)
            .await
            .expect("rig connects");
        let (mut rd, mut wr) = ch.split();
        wr.send(&RigToManager::Hello(hello(
            name,
            payout,
            b.cores,
            b.histories_per_s,
        )))
        .await
        .unwrap();
        match *rd.recv::<ManagerToRig>().await.unwrap() {
            ManagerToRig::Welcome(_) => {}
            other => panic!("expected Welcome, got {other:?}"),
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<RigToManager>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if wr.send(&m).await.is_err() {
                    break;
                }
            }
        });
        let r = report.clone();
        let task = tokio::spawn(async move {
            let mut geometry: HashMap<Digest, Vec<u8>> = HashMap::new();
            let mut partial: HashMap<Digest, Vec<u8>> = HashMap::new();
            let mut waiting: Vec<Assign> = Vec::new();
            let done: Arc<Mutex<HashMap<AssignmentId, (u64, Computed)>>> = Arc::default();
            loop {
                let msg = match rd.recv::<ManagerToRig>().await {
                    Ok(m) => m,
                    Err(_) => break,
                };
                let run = |a: Assign, input: Vec<u8>| {
                    let tx = tx.clone();
                    let done = done.clone();
                    let _ = tx.send(RigToManager::AssignmentAccepted {
                        assignment: a.assignment,
                    });
                    if b.stall {
                        return;
                    }
                    let fabricate = if lying.load(std::sync::atomic::Ordering::SeqCst) {
                        Some(lying_every.load(std::sync::atomic::Ordering::SeqCst))
                    } else {
                        b.fabricate_every
                    };
                    let holding = holding.clone();
                    tokio::task::spawn_blocking(move || {
                        let c = compute(&input, &a, &manager, fabricate);
                        while holding.load(std::sync::atomic::Ordering::SeqCst) {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                        let (commit, sealed) = (c.commit, c.sealed.clone());
                        // Kept before committing: sample requests may follow at once.
                        done.lock()
                            .unwrap()
                            .insert(a.assignment, (a.photons.start, c));
                        let _ = tx.send(RigToManager::ResultCommit(commit));
                        for chunk in Chunker::new(&sealed).unwrap() {
                            let _ = tx.send(RigToManager::ResultChunk(chunk));
                        }
                    });
                };
                match *msg {
                    ManagerToRig::Offer(o) => {
                        r.lock().unwrap().bids.push(o.job);
                        let _ = tx.send(RigToManager::Bid(Bid {
                            job: o.job,
                            device: 0,
                            cores: b.cores,
                            histories_per_s: b.histories_per_s,
                            min_price: Amount(b.min_price),
                        }));
                    }
                    ManagerToRig::Assign(a) => {
                        r.lock().unwrap().assigned.push(a.assignment);
                        if let Some(g) = geometry.get(&a.geometry) {
                            run(a, g.clone());
                        } else {
                            if !waiting.iter().any(|w| w.geometry == a.geometry) {
                                let _ = tx.send(RigToManager::GeometryRequest {
                                    content: a.geometry,
                                });
                            }
                            waiting.push(a);
                        }
                    }
                    ManagerToRig::GeometryChunk(c) => {
                        let buf = partial
                            .entry(c.content)
                            .or_insert_with(|| vec![0; c.total_len as usize]);
                        let off = c.offset as usize;
                        buf[off..off + c.data.len()].copy_from_slice(&c.data);
                        if off + c.data.len() == c.total_len as usize
                            && content_address(buf) == c.content
                        {
                            let g = partial.remove(&c.content).unwrap();
                            geometry.insert(c.content, g.clone());
                            let ready: Vec<Assign> = waiting
                                .iter()
                                .filter(|w| w.geometry == c.content)
                                .copied()
                                .collect();
                            waiting.retain(|w| w.geometry != c.content);
                            for a in ready {
                                run(a, g.clone());
                            }
                        }
                    }
                    ManagerToRig::SampleRequest {
                        assignment,
                        photons,
                    } => {
                        let done = done.clone();
                        let tx = tx.clone();
                        let photons = photons.to_vec();
                        tokio::task::spawn_blocking(move || {
                            let guard = done.lock().unwrap();
                            if let Some((start, c)) = guard.get(&assignment) {
                                for m in proofs(c, *start, &photons) {
                                    let _ = tx.send(RigToManager::SampleProof(m));
                                }
                            }
                        });
                    }
                    ManagerToRig::Ack { assignment, status } => {
                        r.lock().unwrap().acks.push((assignment, status));
                    }
                    ManagerToRig::PaymentNotice {
                        assignment,
                        amount,
                        spendable,
                    } => {
                        r.lock()
                            .unwrap()
                            .payments
                            .push((assignment, amount, spendable));
                    }
                    ManagerToRig::Cancel { assignment } => {
                        r.lock().unwrap().cancelled.push(assignment);
                    }
                    ManagerToRig::Refused(_) => {
                        r.lock().unwrap().refused = true;
                        break;
                    }
                    _ => {}
                }
            }
        });
        ScriptedRig {
            report,
            task,
            lie,
            lie_every,
            hold,
        }
    }

    pub fn report(&self) -> Report {
        self.report.lock().unwrap().clone()
    }
}

/// A manager store in memory with `amount` granted to `client`.
pub fn store_granting(client: &PublicKey, amount: u64) -> Arc<compushare_manager::Store> {
    let store =
        compushare_manager::Store::in_memory(&compushare_manager::Config::default()).unwrap();
    store.write(|tx| tx.grant(client, Amount(amount))).unwrap();
    Arc::new(store)
}

/// A caught rig has no pending pay left (all forfeited), and keeps as spendable exactly what
/// it was paid less what it forfeited: pay for results that passed their own checks and had
/// already become spendable (the rig had passed a duplicate and had enough verified
/// histories), which stay in the job's result.
pub fn assert_forfeited(
    market: &compushare_manager::market::Market,
    payout: &PublicKey,
    paid: u64,
    forfeited: u64,
) {
    use compushare_manager::ledger::Account;
    let read = market.store().read().unwrap();
    assert_eq!(
        read.balance(&Account::WorkerPending(*payout)).unwrap(),
        0,
        "a caught rig kept pending pay"
    );
    assert_eq!(
        read.balance(&Account::WorkerSpendable(*payout)).unwrap(),
        i128::from(paid - forfeited),
        "a caught rig's pay does not add up"
    );
}

/// A manager in process on a loopback port, ticking every 100 ms, on `store` with `market`
/// and `engine_threads` threads for its own check runs.
pub async fn serve_on(store: Arc<Store>, engine_threads: usize, market: MarketConfig) -> Running {
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tick: Duration::from_millis(100),
        engine_threads,
        market,
        ..ServerConfig::default()
    };
    start(cfg, Identity::generate().unwrap(), store)
        .await
        .unwrap()
}

/// [`serve_on`] an in-memory store that granted `grant` to `client`, with two engine threads.
pub async fn manager_granting(client: &PublicKey, grant: u64, market: MarketConfig) -> Running {
    serve_on(store_granting(client, grant), 2, market).await
}

/// A market for jobs end to end: assignments sized to take `target_ms`, and deadlines of at
/// least a minute (a loaded test machine is slow).
pub fn market(target_ms: u64) -> MarketConfig {
    MarketConfig {
        target: Duration::from_millis(target_ms),
        deadline_min: Duration::from_secs(60),
        ..MarketConfig::default()
    }
}

/// The market of the trusted-check tests: small assignments (many rounds, so rigs that join
/// late still get work), no sample checks and every result duplicated, so the duplicates
/// alone must catch cheaters; trust after 500 verified histories.
pub fn checks_market() -> MarketConfig {
    MarketConfig {
        samples: 0,
        duplicate_ppm: 1_000_000,
        check_allowance_permille: 4000,
        trust_threshold: 500,
        ..market(50)
    }
}

/// Submits `photons` histories of `input` with `seed` in `mode`, at any price: the job, its
/// price per history and its escrow.
pub async fn submit_input(
    c: &mut Client,
    input: &[u8],
    photons: u64,
    seed: u64,
    mode: Mode,
) -> (JobId, Amount, Amount) {
    c.submit(input, photons, Some(seed), mode, Amount(u64::MAX))
        .await
        .unwrap()
}

/// Submits `photons` histories of [`JOB`] with `seed`, cheapest, at any price.
pub async fn submit(c: &mut Client, seed: u64, photons: u64) -> JobId {
    submit_input(c, JOB.as_bytes(), photons, seed, Mode::Cheapest)
        .await
        .0
}

/// Polls `job` until it is done, failing after `limit`; its status when done.
pub async fn wait_done(c: &mut Client, job: JobId, limit: Duration) -> JobStatus {
    let t0 = Instant::now();
    loop {
        let s = c.status(job).await.unwrap();
        if s.state == JobState::Done {
            return s;
        }
        assert!(t0.elapsed() < limit, "job stuck: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The digest of `job`'s result, once done ([`wait_done`] within `limit`).
pub async fn done_digest(c: &mut Client, job: JobId, limit: Duration) -> [u8; 32] {
    wait_done(c, job, limit).await;
    c.fetch(job).await.unwrap().digest()
}

/// The digest of a local run of `photons` histories of [`JOB`] with `seed`: what a job's
/// result must equal.
pub fn local_digest(seed: u64, photons: u64) -> [u8; 32] {
    let mut job = job_for(JOB.as_bytes(), seed);
    job.photons = photons;
    simulate(&job, 0..photons, 2, None).unwrap().digest()
}

/// Waits until `cond` holds, polling every 20 ms; fails with `what` after 30 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs jobs of `photons` histories with seeds 1, 2, ... (each within `limit`, each result
/// equal to a local run) until all of `rigs` are trusted, in at most seven jobs; the next
/// unused seed.
pub async fn earn_trust(
    m: &Running,
    c: &mut Client,
    rigs: &[ScriptedRig],
    photons: u64,
    limit: Duration,
) -> u64 {
    let mut seed = 1;
    loop {
        let job = submit(c, seed, photons).await;
        assert_eq!(
            done_digest(c, job, limit).await,
            local_digest(seed, photons)
        );
        let market = m.shared.market();
        let records: Vec<_> = rigs
            .iter()
            .map(|r| market.rig_record(&r.report().key))
            .collect();
        if records
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.trusted))
        {
            return seed + 1;
        }
        // Where each rig stands, for when trust never comes.
        for p in records {
            eprintln!(
                "after job {seed}: {:?}",
                p.map(|p| (p.label, p.trusted, p.streak, p.verified, p.errors))
            );
        }
        seed += 1;
        assert!(seed < 8, "the rigs did not become trusted");
    }
}

/// `n` honest scripted rigs on `m`, named honest0, honest1, ...
pub async fn honest_rigs(m: &Running, n: usize) -> Vec<ScriptedRig> {
    let key = m.shared.identity.public();
    let mut rigs = Vec::new();
    for i in 0..n {
        rigs.push(
            ScriptedRig::start(m.addr, key, &format!("honest{i}"), Behaviour::honest()).await,
        );
    }
    rigs
}

/// The ledger of `store` verifies and `job`'s escrow is settled (nothing left in it).
pub fn assert_settled(store: &Store, job: JobId) {
    use compushare_manager::ledger::Account;
    store.verify_ledger().unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .balance(&Account::Escrow(job))
            .unwrap(),
        0
    );
}

/// A fresh, empty directory under the system temp dir, unique to this process and call.
pub fn fresh_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cs-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A [`fresh_dir`] removed on drop, also when a test fails.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        TempDir(fresh_dir(tag))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running rig of the rig engineer's real transport client (`compushare_controller`),
/// stopped on drop.
pub struct RealRig {
    pub key: PublicKey,
    pub payout: PublicKey,
    /// Rates clients of the rig's work.
    pub ratings: RatingHandle,
    /// Its status snapshots (what its operator surfaces show).
    pub status: compushare_controller::status::StatusRx,
    /// Its state directory (payment records and the like).
    pub dir: TempDir,
    task: tokio::task::JoinHandle<Result<Stop, RigError>>,
}

impl Drop for RealRig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`RealRig`] on `m` with one CPU device of one core, taking any price;
/// `fabricate` makes it fake histories (testkit's dishonest device).
pub async fn real_rig(m: &Running, name: &str, fabricate: Option<Fabricate>) -> RealRig {
    let dir = TempDir::new(&format!("rig-{name}"));
    let payout = Identity::generate().unwrap().public();
    let mut settings = compushare_testkit::rig::transport_rig(
        &m.addr.to_string(),
        m.shared.identity.public(),
        name,
        payout,
        dir.path().to_path_buf(),
    );
    if let Some(f) = fabricate {
        settings.options.devices = Some(vec![Arc::new(FabricatingDevice::new(0, 1, f))]);
    }
    let id = Identity::generate().unwrap();
    let key = id.public();
    // Rig::new calibrates on the CPU: off the async threads.
    let rig = tokio::task::spawn_blocking(move || Rig::new(settings, id))
        .await
        .unwrap()
        .unwrap();
    RealRig {
        key,
        payout,
        ratings: rig.rating_handle(),
        status: rig.status(),
        dir,
        task: tokio::spawn(rig.run()),
    }
}
