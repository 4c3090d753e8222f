//! The rig's transport session against a scripted manager: a named test double of the
//! management node written directly on the protocol here (real Noise over loopback TCP), with
//! the real rig core (scheduler, device worker, vault) behind it.
//!
//! It checks what the real manager relies on: Hello/Welcome and heartbeats, Offer -> Bid
//! after a geometry fetch, Assign -> Accepted -> ResultCommit whose tally digest equals a
//! local `simulate` of the same range and whose Merkle root equals `merkle::Builder` over
//! `simulate_with_records` records, sealed result chunks that reassemble and open to the
//! canonical tally, sample proofs that `merkle::verify` accepts, payments recorded once in
//! STATE_DIR, reconnection after the manager drops the session, and a clear error for a
//! wrong MANAGER_KEY (in the status; the rig keeps running). It also checks the dishonest-rig
//! test double (testkit's fabricating device) fabricates.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use compushare_controller::config::Roles;
use compushare_controller::rig::{Rig, Stop};
use compushare_controller::settings::{RigError, RigOptions};
use compushare_controller::status::{LinkState, StatusRx};
use compushare_controller::transport::state::{parse_record, PAYMENTS_FILE};
use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::{simulate, simulate_with_records, Engine};
use compushare_protocol::chunk::{Chunker, Reassembler};
use compushare_protocol::merkle;
use compushare_protocol::msg::{
    AckStatus, Assign, ManagerToRig, Offer, ResultCommit, RigToManager,
};
use compushare_protocol::secure::net::{accept_tcp, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{seal, Identity};
use compushare_protocol::types::{Amount, AssignmentId, JobId, PhotonRange, Role};
use compushare_testkit::{Fabricate, FabricatingDevice};
use tokio::net::TcpListener;

/// A small job (12^3 voxels, two time gates, one detector) so tests stay fast on 2 cores.
const JOB: &str = r#"{
  "Session": { "ID": "small", "Photons": 1000, "RNGSeed": 7, "DoMismatch": 1 },
  "Forward": { "T0": 0.0, "T1": 5.0e-9, "Dt": 2.5e-9 },
  "Domain": {
    "Dim": [12, 12, 12], "OriginType": 1, "LengthUnit": 1,
    "Media": [
      { "mua": 0.0, "mus": 0.0, "g": 1.0, "n": 1.0 },
      { "mua": 0.01, "mus": 1.0, "g": 0.5, "n": 1.37 }
    ]
  },
  "Shapes": [ { "Name": "small" }, { "Grid": { "Tag": 1, "Size": [12, 12, 12] } } ],
  "Optode": {
    "Source": { "Type": "pencil", "Pos": [5, 5, 0], "Dir": [0, 0, 1] },
    "Detector": [ { "Pos": [5, 3, 0], "R": 2 } ]
  }
}"#;

const WAIT: Duration = Duration::from_secs(60);

fn state_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("rig-test-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(block_log2: u32, fabricate: Option<Fabricate>) -> RigOptions {
    let mut o = compushare_testkit::rig::test_options();
    o.calibration_photons = 16;
    o.session.backoff_min = Duration::from_millis(50);
    o.session.backoff_max = Duration::from_millis(200);
    o.session.block_log2 = Some(block_log2);
    if let Some(f) = fabricate {
        o.devices = Some(vec![Arc::new(FabricatingDevice::new(0, 1, f))]);
    }
    o
}

type RigTask = tokio::task::JoinHandle<Result<Stop, RigError>>;

/// Starts a real rig for the scripted manager; `role` pins its device (`Auto`: the scheduler
/// decides, from the offers it sees).
async fn start_rig(
    addr: String,
    manager_key: [u8; 32],
    dir: PathBuf,
    opts: RigOptions,
    role: Role,
) -> (RigTask, StatusRx) {
    let mut settings =
        compushare_testkit::rig::transport_rig(&addr, manager_key, "test-rig", [9u8; 32], dir);
    settings.options = opts;
    settings.roles = Roles::All(role);
    let rig =
        tokio::task::spawn_blocking(move || Rig::new(settings, Identity::generate().unwrap()))
            .await
            .unwrap()
            .unwrap();
    let status = rig.status();
    (tokio::spawn(rig.run()), status)
}

/// The scripted manager's side of one session.
struct Session {
    ch: TcpChannel,
}

impl Session {
    async fn accept(listener: &TcpListener, me: &Identity) -> Session {
        let (ch, h) = compushare_testkit::scripted::accept_rig(listener, me).await;
        assert_eq!(h.name.as_str(), "test-rig");
        assert_eq!(h.payout, [9u8; 32]);
        assert_eq!(h.devices.len(), 1);
        assert!(h.devices[0].cores >= 1);
        assert!(h.devices[0].histories_per_s > 0);
        assert!(h.devices[0].memory > 0);
        Session { ch }
    }

    /// Next message that is not a heartbeat.
    async fn next(&mut self) -> RigToManager {
        loop {
            let m: RigToManager = *tokio::time::timeout(WAIT, self.ch.recv())
                .await
                .expect("rig answers in time")
                .unwrap();
            if !matches!(m, RigToManager::Heartbeat(_)) {
                return m;
            }
        }
    }

    /// Answers a GeometryRequest with the job's chunks.
    async fn serve_geometry(&mut self, geometry: &[u8]) {
        let m = self.next().await;
        let RigToManager::GeometryRequest { content } = m else {
            panic!("expected GeometryRequest, got {m:?}");
        };
        let chunker = Chunker::new(geometry).unwrap();
        assert_eq!(content, chunker.content());
        for c in chunker {
            self.ch.send(&ManagerToRig::GeometryChunk(c)).await.unwrap();
        }
    }

    /// Reads a ResultCommit and its chunks; returns the commit and the sealed bytes.
    async fn result(&mut self) -> (ResultCommit, Vec<u8>) {
        let m = self.next().await;
        let RigToManager::ResultCommit(commit) = m else {
            panic!("expected ResultCommit, got {m:?}");
        };
        let mut buf = vec![0u8; commit.sealed_len as usize];
        let mut bitmap = vec![0u8; Reassembler::bitmap_len(buf.len())];
        let mut r =
            Reassembler::new(&mut buf, &mut bitmap, commit.sealed, commit.sealed_len).unwrap();
        loop {
            let m = self.next().await;
            let RigToManager::ResultChunk(c) = m else {
                panic!("expected ResultChunk, got {m:?}");
            };
            if r.accept(&c).unwrap() {
                break;
            }
        }
        let sealed = r.payload().to_vec();
        (commit, sealed)
    }

    async fn proofs(
        &mut self,
        assignment: AssignmentId,
        want: usize,
    ) -> Vec<compushare_protocol::msg::HistoryProof> {
        let mut got = Vec::new();
        while got.len() < want {
            let m = self.next().await;
            let RigToManager::SampleProof(p) = m else {
                panic!("expected SampleProof, got {m:?}");
            };
            assert_eq!(p.assignment, assignment);
            assert!(!p.proofs.is_empty());
            got.extend(p.proofs.iter().cloned());
        }
        got
    }
}

fn job_with_seed(seed: u64, photons: u64) -> Job {
    let mut job = parse_job_bytes(
        JOB.as_bytes(),
        &ParseOptions {
            photons: Some(photons),
            ..ParseOptions::default()
        },
    )
    .unwrap();
    job.seed = seed;
    job
}

fn offer() -> Offer {
    let geometry = Chunker::new(JOB.as_bytes()).unwrap().content();
    Offer {
        job: JobId(1),
        cost_per_history_milli: 1000,
        price_per_unit: Amount(10),
        geometry,
        geometry_len: JOB.len() as u32,
        photons_left: 1000,
    }
}

fn assign(id: u64, seed: u64, start: u64, count: u64) -> Assign {
    let o = offer();
    Assign {
        assignment: AssignmentId(id),
        job: o.job,
        device: 0,
        geometry: o.geometry,
        geometry_len: o.geometry_len,
        seed,
        photons: PhotonRange { start, count },
        deadline_unix_s: u64::MAX,
        payout: Amount(100),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_session_commit_proofs_pay_and_reconnect() {
    let manager = Identity::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = state_dir("full");
    // Blocks of 8 photons: a 37-photon assignment spans five blocks, the last partial.
    let (rig, _) = start_rig(
        addr,
        manager.public(),
        dir.clone(),
        options(3, None),
        Role::Auto,
    )
    .await;

    let mut s = Session::accept(&listener, &manager).await;
    // A heartbeat arrives within its period.
    let hb = tokio::time::timeout(WAIT, s.ch.recv::<RigToManager>())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(*hb, RigToManager::Heartbeat(ref h) if h.devices.len() == 1),
        "{hb:?}"
    );

    // Offer -> geometry fetch -> Bid.
    let o = offer();
    s.ch.send(&ManagerToRig::Offer(o)).await.unwrap();
    s.serve_geometry(JOB.as_bytes()).await;
    let m = s.next().await;
    let RigToManager::Bid(bid) = m else {
        panic!("expected Bid, got {m:?}");
    };
    assert_eq!((bid.job, bid.device), (o.job, 0));
    assert!(bid.cores >= 1 && bid.histories_per_s > 0);

    // Assign -> Accepted -> commit + chunks (geometry already held: no second fetch).
    let (seed, start, count) = (4242u64, 5u64, 37u64);
    let a = assign(11, seed, start, count);
    s.ch.send(&ManagerToRig::Assign(a)).await.unwrap();
    let m = s.next().await;
    assert_eq!(
        m,
        RigToManager::AssignmentAccepted {
            assignment: a.assignment
        }
    );
    let (commit, sealed) = s.result().await;
    let job = job_with_seed(seed, count);
    let local = simulate(&job, start..start + count, 1, None).unwrap();
    let (with_records, records) =
        simulate_with_records(&job, start..start + count, 2, None).unwrap();
    assert_eq!(local.digest(), with_records.digest());
    assert_eq!(commit.assignment, a.assignment);
    assert_eq!(commit.histories, count);
    assert_eq!(
        commit.tally,
        local.digest(),
        "tally digest equals local simulate"
    );
    let mut b = merkle::Builder::new();
    for r in &records {
        b.push(merkle::leaf_hash(&r.to_bytes()));
    }
    assert_eq!(commit.merkle_root, b.root(), "Merkle root over the records");
    let opened = seal::open(&manager, &sealed).unwrap();
    assert_eq!(
        opened,
        local.canonical_bytes(),
        "sealed result opens to the canonical tally"
    );
    s.ch.send(&ManagerToRig::Ack {
        assignment: a.assignment,
        status: AckStatus::Received,
    })
    .await
    .unwrap();

    // Sample proofs, including leaves in different blocks, the partial last block, a
    // duplicate and a photon outside the assignment (skipped).
    let asked = [
        start,
        start + 8,
        start + 13,
        start + count - 1,
        start + 20,
        start + 13,
        999,
    ];
    let mut photons = heapless::Vec::new();
    for p in asked {
        photons.push(p).unwrap();
    }
    s.ch.send(&ManagerToRig::SampleRequest {
        assignment: a.assignment,
        photons,
    })
    .await
    .unwrap();
    let proofs = s.proofs(a.assignment, 5).await;
    let engine = Engine::new(&job).unwrap();
    for p in &proofs {
        let leaf = merkle::leaf_hash(&p.record);
        merkle::verify(p.photon - start, count, &leaf, &p.path, &commit.merkle_root).unwrap();
        assert_eq!(
            p.record.as_slice(),
            engine.simulate_photon(p.photon).to_bytes().as_slice()
        );
    }
    let mut got: Vec<u64> = proofs.iter().map(|p| p.photon).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        vec![start, start + 8, start + 13, start + 20, start + count - 1]
    );

    // Verified, paid (twice: recorded once).
    s.ch.send(&ManagerToRig::Ack {
        assignment: a.assignment,
        status: AckStatus::Verified,
    })
    .await
    .unwrap();
    for _ in 0..2 {
        s.ch.send(&ManagerToRig::PaymentNotice {
            assignment: a.assignment,
            amount: Amount(100),
            spendable: false,
        })
        .await
        .unwrap();
    }
    let log = dir.join(PAYMENTS_FILE);
    for _ in 0..200 {
        if !parse_record(&std::fs::read(&log).unwrap_or_default()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a repeated notice the time to be (wrongly) written.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paid = parse_record(&std::fs::read(&log).unwrap());
    assert_eq!(paid.len(), 1, "one payment recorded");
    assert_eq!(
        (paid[0].assignment, paid[0].amount),
        (a.assignment, Amount(100))
    );

    // The manager drops the session: the rig reconnects and says Hello again.
    drop(s);
    let mut s2 = Session::accept(&listener, &manager).await;
    // And still works: the job is offered again (as a manager does on Hello), the rig bids
    // at once (geometry and speed already known), and runs a new assignment.
    s2.ch.send(&ManagerToRig::Offer(o)).await.unwrap();
    let m = s2.next().await;
    assert!(matches!(m, RigToManager::Bid(b) if b.job == o.job), "{m:?}");
    let a2 = assign(12, 1, 0, 9);
    s2.ch.send(&ManagerToRig::Assign(a2)).await.unwrap();
    assert_eq!(
        s2.next().await,
        RigToManager::AssignmentAccepted {
            assignment: a2.assignment
        }
    );
    let (c2, _) = s2.result().await;
    let j2 = job_with_seed(1, 9);
    assert_eq!(c2.tally, simulate(&j2, 0..9, 1, None).unwrap().digest());
    // An assignment for a device that does not exist is rejected.
    let mut bad = assign(13, 1, 0, 9);
    bad.device = 7;
    s2.ch.send(&ManagerToRig::Assign(bad)).await.unwrap();
    assert!(matches!(
        s2.next().await,
        RigToManager::AssignmentRejected { assignment, .. } if assignment == bad.assignment
    ));
    rig.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_manager_key_is_a_clear_error_and_the_rig_stays_up() {
    let manager = Identity::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = state_dir("wrongkey");
    let pinned = Identity::generate().unwrap().public();
    let (rig, mut status) =
        start_rig(addr, pinned, dir.clone(), options(3, None), Role::Auto).await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = accept_tcp(stream, &manager, HANDSHAKE_TIMEOUT).await;
    });
    // Transport stops (not retried: the key is wrong), the rig runs on, the status says why.
    let text = tokio::time::timeout(WAIT, async {
        loop {
            status.changed().await.unwrap();
            if let LinkState::Down {
                error,
                retry_in_s: 0,
            } = &status.borrow().manager.state
            {
                if error.contains("mismatch") {
                    return error.clone();
                }
            }
        }
    })
    .await
    .expect("the status shows the key mismatch");
    assert!(text.contains("MANAGER_KEY"), "{text}");
    assert!(
        text.contains(&compushare_protocol::hex::encode(&pinned)),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!rig.is_finished(), "the rig keeps running");
    rig.abort();
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dishonest_rig_test_double_fabricates() {
    let manager = Identity::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = state_dir("cheat");
    let fab = Fabricate {
        per_million: 500_000,
        salt: 3,
    };
    let (rig, _) = start_rig(
        addr,
        manager.public(),
        dir.clone(),
        options(2, Some(fab)),
        Role::Transport,
    )
    .await;
    let mut s = Session::accept(&listener, &manager).await;
    let (seed, start, count) = (99u64, 100u64, 20u64);
    let a = assign(21, seed, start, count);
    s.ch.send(&ManagerToRig::Assign(a)).await.unwrap();
    assert!(matches!(
        s.next().await,
        RigToManager::AssignmentAccepted { .. }
    ));
    s.serve_geometry(JOB.as_bytes()).await;
    let (commit, _) = s.result().await;
    let job = job_with_seed(seed, count);
    assert_ne!(
        commit.tally,
        simulate(&job, start..start + count, 1, None)
            .unwrap()
            .digest()
    );
    // Its proofs are consistent with its (fabricated) root, but fabricated records differ
    // from re-simulation: what the manager's sample check catches.
    let all: Vec<u64> = (start..start + count).collect();
    let mut photons = heapless::Vec::new();
    for p in &all {
        photons.push(*p).unwrap();
    }
    s.ch.send(&ManagerToRig::SampleRequest {
        assignment: a.assignment,
        photons,
    })
    .await
    .unwrap();
    let proofs = s.proofs(a.assignment, all.len()).await;
    let engine = Engine::new(&job).unwrap();
    let mut caught = 0;
    for p in &proofs {
        let leaf = merkle::leaf_hash(&p.record);
        merkle::verify(p.photon - start, count, &leaf, &p.path, &commit.merkle_root).unwrap();
        let honest = engine.simulate_photon(p.photon).to_bytes();
        assert_eq!(
            p.record.as_slice() != honest.as_slice(),
            fab.fabricates(p.photon)
        );
        caught += usize::from(p.record.as_slice() != honest.as_slice());
    }
    assert!(caught > 0);
    rig.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_frees_the_device_and_roles_gate_assignments() {
    let manager = Identity::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = state_dir("cancel");
    let (rig, _) = start_rig(
        addr,
        manager.public(),
        dir.clone(),
        options(10, None),
        Role::Transport,
    )
    .await;
    let mut s = Session::accept(&listener, &manager).await;

    // A long assignment (about a million photons), cancelled at once: no result follows.
    let long = assign(31, 5, 0, 1 << 20);
    s.ch.send(&ManagerToRig::Assign(long)).await.unwrap();
    assert!(matches!(
        s.next().await,
        RigToManager::AssignmentAccepted { .. }
    ));
    s.serve_geometry(JOB.as_bytes()).await;
    s.ch.send(&ManagerToRig::Cancel {
        assignment: long.assignment,
    })
    .await
    .unwrap();
    // The device is free again: a short assignment is accepted and is the next result.
    let short = assign(32, 5, 0, 4);
    s.ch.send(&ManagerToRig::Assign(short)).await.unwrap();
    assert_eq!(
        s.next().await,
        RigToManager::AssignmentAccepted {
            assignment: short.assignment
        }
    );
    let (c, _) = s.result().await;
    assert_eq!(c.assignment, short.assignment);

    // Switched off, the device turns work down; switched to transport, it takes it.
    s.ch.send(&ManagerToRig::RoleCommand {
        device: None,
        role: Role::Off,
    })
    .await
    .unwrap();
    let off = assign(33, 5, 0, 4);
    s.ch.send(&ManagerToRig::Assign(off)).await.unwrap();
    assert!(matches!(
        s.next().await,
        RigToManager::AssignmentRejected { assignment, .. } if assignment == off.assignment
    ));
    s.ch.send(&ManagerToRig::RoleCommand {
        device: Some(0),
        role: Role::Transport,
    })
    .await
    .unwrap();
    let on = assign(34, 5, 0, 4);
    s.ch.send(&ManagerToRig::Assign(on)).await.unwrap();
    assert_eq!(
        s.next().await,
        RigToManager::AssignmentAccepted {
            assignment: on.assignment
        }
    );
    let (c, _) = s.result().await;
    assert_eq!(c.assignment, on.assignment);
    rig.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
