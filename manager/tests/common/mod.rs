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
use std::sync::{Arc, Mutex};

use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::simulate_with_records;
use compushare_protocol::chunk::{content_address, Chunker};
use compushare_protocol::merkle;
use compushare_protocol::msg::{
    AckStatus, Assign, Bid, CostStats, HistoryProof, ManagerToRig, ResultCommit, RigHello,
    RigToManager, SampleProof, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{seal, Identity};
use compushare_protocol::types::{Amount, AssignmentId, DeviceInfo, DeviceKind, Digest, PublicKey};
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
        match rd.recv::<ManagerToRig>().await.unwrap() {
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
                match msg {
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
