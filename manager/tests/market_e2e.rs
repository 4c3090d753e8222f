//! End to end on loopback: a manager, scripted rigs over real Noise/TCP running the CPU engine,
//! and a client. Honest rigs only, then honest rigs next to cheaters.

mod common;

use std::time::Duration;

use common::{submit_input, Behaviour, ScriptedRig, JOB};
use compushare_client::Client;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::Running;
use compushare_protocol::msg::AckStatus;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{JobId, Mode};

const PHOTONS: u64 = 12_000;
const SEED: u64 = 4242;

async fn manager(client: [u8; 32]) -> Running {
    let market = MarketConfig {
        spendable_after: 5_000,
        ..common::market(300)
    };
    common::manager_granting(&client, 1_000_000_000, market).await
}

async fn wait_done(c: &mut Client, job: JobId) {
    let s = common::wait_done(c, job, Duration::from_secs(150)).await;
    assert_eq!(s.photons_done, PHOTONS);
}

fn local_digest() -> [u8; 32] {
    common::local_digest(SEED, PHOTONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_honest_rigs_job_done_verified_paid_fetched() {
    let me = Identity::generate().unwrap();
    let me_key = me.public();
    let m = manager(me_key).await;
    let key = m.shared.identity.public();
    let rigs = common::honest_rigs(&m, 3).await;
    let mut c = Client::connect(m.addr, me, &key).await.unwrap();
    let (job, price, escrowed) =
        submit_input(&mut c, JOB.as_bytes(), PHOTONS, SEED, Mode::Cheapest).await;
    assert!(price.0 > 0 && escrowed.0 >= price.0 * PHOTONS);
    wait_done(&mut c, job).await;
    let tally = c.fetch(job).await.unwrap();
    assert_eq!(tally.photons, PHOTONS);
    assert_eq!(
        tally.digest(),
        local_digest(),
        "merged result differs from a local run"
    );

    // Paid exactly once per verified assignment, and the money adds up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut paid_total = 0u64;
    let mut photons_paid = 0u64;
    for r in &rigs {
        let rep = r.report();
        let mut ids: Vec<_> = rep.payments.iter().map(|p| p.0).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            rep.payments.len(),
            "an assignment was paid twice"
        );
        for (a, amount, _) in &rep.payments {
            assert!(rep.acks.contains(&(*a, AckStatus::Verified)));
            paid_total += amount.0;
            photons_paid += amount.0 / price.0;
        }
        assert!(rep.acks.iter().all(|(_, s)| *s != AckStatus::Failed));
        let rec = m.shared.market().rig_record(&rep.key).unwrap();
        assert_eq!(rec.errors, 0);
        assert_eq!(rec.paid, rep.payments.iter().map(|p| p.1 .0).sum::<u64>());
    }
    assert_eq!(photons_paid, PHOTONS);
    let status = c.status(job).await.unwrap();
    assert_eq!(status.spent.0, paid_total);
    // Refund: the client got back everything but the work and the fee.
    let fee = paid_total * m.shared.cfg.market.fee_bp / 10_000;
    let balance = m.shared.market().bank().balance(&me_key).unwrap();
    assert_eq!(balance, 1_000_000_000 - paid_total - fee);
    // A client can rate a rig that worked on its job, and only that.
    let worker = status.rigs[0];
    c.rate(job, worker, 5).await.unwrap();
    assert!(c.rate(job, [9; 32], 5).await.is_err());
    assert_eq!(
        m.shared.market().rig_record(&worker).unwrap().ratings,
        vec![5]
    );
    // Another client cannot see or fetch this job.
    let mut other = Client::connect(m.addr, Identity::generate().unwrap(), &key)
        .await
        .unwrap();
    assert!(other.fetch(job).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheaters_are_caught_demoted_excluded_and_unpaid() {
    let me = Identity::generate().unwrap();
    let me_key = me.public();
    let m = manager(me_key).await;
    let key = m.shared.identity.public();
    let honest = common::honest_rigs(&m, 2).await;
    let mut cheaters = Vec::new();
    for every in [1u64, 10, 100] {
        let b = Behaviour {
            fabricate_every: Some(every),
            // Faster and cheaper than the honest rigs, so they get work first.
            histories_per_s: 8000,
            ..Behaviour::honest()
        };
        cheaters.push(ScriptedRig::start(m.addr, key, &format!("cheat{every}"), b).await);
    }
    let mut c = Client::connect(m.addr, me, &key).await.unwrap();
    let (job, _, _) = submit_input(&mut c, JOB.as_bytes(), PHOTONS, SEED, Mode::Fastest).await;
    wait_done(&mut c, job).await;
    let tally = c.fetch(job).await.unwrap();
    assert_eq!(
        tally.digest(),
        local_digest(),
        "bad work reached the result"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let market = m.shared.market();
    for r in &cheaters {
        let rep = r.report();
        assert!(
            !rep.assigned.is_empty(),
            "a cheater got no work to cheat on"
        );
        assert!(rep.acks.iter().any(|(_, s)| *s == AckStatus::Failed));
        let rec = market.rig_record(&rep.key).unwrap();
        assert!(rec.errors >= 1 && !rec.trusted);
        // Results that passed their checks were paid to pending, and forfeited when caught.
        let noticed: u64 = rep.payments.iter().map(|p| p.1 .0).sum();
        assert_eq!(rec.paid, noticed);
        common::assert_forfeited(&market, &rep.payout, rec.paid, rec.forfeited);
    }
    for r in &honest {
        let rep = r.report();
        let rec = market.rig_record(&rep.key).unwrap();
        assert_eq!(rec.errors, 0, "an honest rig was demoted");
        assert!(rep.acks.iter().all(|(_, s)| *s != AckStatus::Failed));
    }
    assert!(market.stats.caught >= 3);
}
