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
use std::time::Duration;

use common::{done_digest, earn_trust, local_digest, submit, Behaviour, ScriptedRig};
use compushare_client::Client;
use compushare_protocol::msg::AckStatus;
use compushare_protocol::secure::Identity;

/// Photons of the jobs that earn the honest rigs their trust.
const PHOTONS: u64 = 12_000;
/// Photons of the job with the cheaters: enough assignments that late joiners get work.
const PHOTONS_2: u64 = 48_000;

/// How long a job may take.
const JOB_LIMIT: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_rigs_duplicate_and_arbitrate() {
    let me = Identity::generate().unwrap();
    let m = common::manager_granting(&me.public(), 1 << 40, common::checks_market()).await;
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
    let seed = earn_trust(&m, &mut c, &trusted, PHOTONS, JOB_LIMIT).await;

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
    let job = submit(&mut c, seed, PHOTONS_2).await;
    assert_eq!(
        done_digest(&mut c, job, JOB_LIMIT).await,
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
    common::assert_settled(&store, job);
}
