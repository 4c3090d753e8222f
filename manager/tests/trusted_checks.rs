//! Duplicates on trusted rigs and arbitration, end to end on loopback (scripted rigs over real
//! Noise/TCP running the CPU engine). Sample checks are off here (`samples: 0`) and every
//! result is duplicated, so the duplicates alone must catch the cheaters.
//!
//! Phase one: three honest rigs become trusted. Phase two: one of them turns liar (it has the
//! lowest key, so it is the first trusted rig asked to check others), an honest newcomer and a
//! 100% fabricator join. Duplicates (on idle trusted rigs, or the manager's engine) catch the
//! fabricator and the liar; disagreements are decided by a third run; the honest rigs are not
//! demoted, nothing is paid twice, the ledger verifies and the result equals a local run.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Behaviour, ScriptedRig, JOB};
use compushare_kernels::transport::simulate;
use compushare_manager::client::Client;
use compushare_manager::ledger::Account;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, Running, ServerConfig};
use compushare_protocol::msg::{AckStatus, JobState};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode};

/// Photons of the jobs that earn the honest rigs their trust.
const PHOTONS: u64 = 12_000;
/// Photons of the job with the cheaters: enough assignments that late joiners get work.
const PHOTONS_2: u64 = 48_000;

async fn manager(client: [u8; 32]) -> Running {
    let store = common::store_granting(&client, 1 << 40);
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tick: Duration::from_millis(100),
        engine_threads: 2,
        market: MarketConfig {
            // Small assignments: many rounds, so rigs that join late still get work.
            target: Duration::from_millis(50),
            deadline_floor: Duration::from_secs(60),
            samples: 0,
            duplicate_ppm: 1_000_000,
            check_allowance_permille: 4000,
            trust_threshold: 500,
            ..MarketConfig::default()
        },
        ..ServerConfig::default()
    };
    start(cfg, Identity::generate().unwrap(), store)
        .await
        .unwrap()
}

fn local_digest(seed: u64, photons: u64) -> [u8; 32] {
    let mut job = common::job_for(JOB.as_bytes(), seed);
    job.photons = photons;
    simulate(&job, 0..photons, 2, None).unwrap().digest()
}

async fn run_job(c: &mut Client, seed: u64, photons: u64) -> (JobId, [u8; 32]) {
    let (job, _, _) = c
        .submit(
            JOB.as_bytes(),
            photons,
            Some(seed),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap();
    let t0 = Instant::now();
    loop {
        let s = c.status(job).await.unwrap();
        if s.state == JobState::Done {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(150), "job stuck: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (job, c.fetch(job).await.unwrap().digest())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_rigs_duplicate_and_arbitrate() {
    let me = Identity::generate().unwrap();
    let m = manager(me.public()).await;
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, me, &key).await.unwrap();

    // Phase one: three honest rigs earn trust.
    let mut ids: Vec<Identity> = (0..3).map(|_| Identity::generate().unwrap()).collect();
    ids.sort_by_key(|i| i.public());
    let mut trusted = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let name = if i == 0 {
            "liar".to_owned()
        } else {
            format!("honest{i}")
        };
        trusted.push(ScriptedRig::start_as(m.addr, key, &name, Behaviour::honest(), id).await);
    }
    let mut seed = 1;
    loop {
        let (_, digest) = run_job(&mut c, seed, PHOTONS).await;
        assert_eq!(digest, local_digest(seed, PHOTONS));
        let market = m.shared.market();
        if trusted.iter().all(|r| {
            market
                .rig_record(&r.report().key)
                .is_some_and(|p| p.trusted)
        }) {
            break;
        }
        for r in &trusted {
            let p = market.rig_record(&r.report().key);
            eprintln!(
                "after job {seed}: {:?}",
                p.map(|p| (p.label, p.trusted, p.streak, p.verified, p.errors))
            );
        }
        drop(market);
        seed += 1;
        assert!(seed < 8, "honest rigs did not become trusted");
    }

    // Phase two: the lowest-keyed trusted rig lies from now on (fabricating differently from
    // the fabricator, so the two never agree by accident); a newcomer and a fabricator join.
    let liar = &trusted[0];
    liar.lie.store(true, Ordering::SeqCst);
    let newcomer = ScriptedRig::start(m.addr, key, "newcomer", Behaviour::honest()).await;
    let fabricator = ScriptedRig::start(
        m.addr,
        key,
        "fabricator",
        Behaviour {
            fabricate_every: Some(1),
            // Claims to be fast, so it is offered work first.
            histories_per_s: 40_000,
            ..Behaviour::honest()
        },
    )
    .await;
    seed += 1;
    let (job, digest) = run_job(&mut c, seed, PHOTONS_2).await;
    assert_eq!(
        digest,
        local_digest(seed, PHOTONS_2),
        "bad work reached the result"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let market = m.shared.market();
    let stats = market.stats.clone();
    assert!(stats.check_runs >= 1, "no duplicate ran on a trusted rig");
    // Check runs go to idle devices only, so whether the liar checks others, and whether a
    // third trusted rig or the manager's engine decides, depends on who is busy:
    // tests/escalation.rs pins each path with a set order.
    let rec = market.rig_record(&liar.report().key).unwrap();
    assert!(rec.errors >= 1 && !rec.trusted, "the liar was not demoted");
    let f = fabricator.report();
    let rec = market.rig_record(&f.key).unwrap();
    assert!(
        !f.assigned.is_empty(),
        "the fabricator got no work to cheat on"
    );
    assert!(rec.errors >= 1, "the fabricator was not caught");
    assert!(f.acks.iter().any(|(_, s)| *s == AckStatus::Failed));
    assert!(!rec.trusted);
    assert_eq!(rec.paid, rec.forfeited, "the fabricator kept pay");
    for r in trusted.iter().skip(1).chain(std::iter::once(&newcomer)) {
        let rep = r.report();
        let rec = market.rig_record(&rep.key).unwrap();
        assert_eq!(rec.errors, 0, "an honest rig was demoted");
        assert!(rep.acks.iter().all(|(_, s)| *s != AckStatus::Failed));
    }
    // Nothing paid twice (each rig's notices name distinct assignments; the ledger's paid
    // index refuses a second payment), the ledger verifies and the escrow is settled.
    for r in trusted.iter().chain([&newcomer, &fabricator]) {
        let rep = r.report();
        let mut paid: Vec<_> = rep.payments.iter().map(|p| p.0).collect();
        let n = paid.len();
        paid.sort();
        paid.dedup();
        assert_eq!(paid.len(), n, "an assignment was paid twice");
    }
    let store = market.store().clone();
    drop(market);
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
