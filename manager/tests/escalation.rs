//! Check runs on trusted rigs, end to end on loopback. Escalation (scripted rigs over real Noise/TCP on the CPU engine):
//! an honest newcomer's result is duplicated on a trusted rig that lies, the disagreement goes
//! to a third run on another trusted rig that lies differently, and that arbiter agrees with
//! neither side. The manager's engine then decides: both liars are demoted and unpaid for
//! their check runs, the honest rig is never demoted, nothing is paid twice, the ledger
//! verifies and the result equals a local run.
//!
//! The order is made deterministic, not left to races: the two rigs that will lie earn trust
//! alone and leave; the newcomer takes the whole job and holds its result back until the two
//! are back (same keys, so their trust follows them) with bids on the job but no primary work.
//!
//! Check runs go only to idle devices: the controller's rig rejects an Assign for a busy
//! device, so with the only trusted rig busy the manager's engine runs the duplicate at once.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    checks_market, done_digest, earn_trust, eventually, local_digest, submit, Behaviour, Report,
    ScriptedRig, TempDir,
};
use compushare_client::Client;
use compushare_manager::ledger::Account;
use compushare_manager::market::{MarketConfig, RigPublic};
use compushare_protocol::msg::AckStatus;
use compushare_protocol::secure::Identity;

/// Photons of the jobs that earn the two rigs their trust.
const PHOTONS: u64 = 6_000;
/// Photons of the job whose one result is escalated.
const PHOTONS_2: u64 = 3_000;
/// Photons of the job a busy trusted rig shares with a newcomer: more than one assignment.
const PHOTONS_3: u64 = 24_000;

/// How long a job may take.
const JOB_LIMIT: Duration = Duration::from_secs(120);

/// What one scenario left: the stats' change, and each rig's report and public record (the
/// two checking rigs in key order: the lower key ran the duplicate, the other arbitrated).
struct Outcome {
    delta: [u64; 5],
    checkers: Vec<(Report, RigPublic, i128)>,
}

/// The scenario: two rigs earn trust, leave; an honest newcomer takes a whole job and holds
/// its result until the two are back, rig `i` fabricating every `lie[i]`-th history (`None`:
/// honest). Checks what holds whatever the checkers do: the result equals a local run, the
/// newcomer is paid once and never demoted, one duplicate and one arbitration ran on the
/// trusted rigs, the ledger verifies and the escrow is settled. `delta` is the change of
/// (check runs, arbitrations on rigs, escalations, caught, arbitrations decided).
async fn scenario(lie: [Option<u64>; 2], tag: &str) -> Outcome {
    let me = Identity::generate().unwrap();
    let m = common::manager_granting(&me.public(), 1 << 40, checks_market()).await;
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, me, &key).await.unwrap();
    let dir = TempDir::new(tag);
    let key_file = |i: usize| dir.path().join(format!("liar{i}.key"));
    // In key order: the first idle trusted rig in key order runs the duplicate.
    let mut ids: Vec<Identity> = (0..2).map(|_| Identity::generate().unwrap()).collect();
    ids.sort_by_key(|i| i.public());
    for (i, id) in ids.iter().enumerate() {
        id.save_new(&key_file(i)).unwrap();
    }
    let id = |p: &Path| Identity::load(p).unwrap();

    // Phase one: the two future liars, honest for now, earn trust.
    let seed = {
        let mut rigs = Vec::new();
        for i in 0..2 {
            let name = format!("liar{i}");
            rigs.push(
                ScriptedRig::start_as(m.addr, key, &name, Behaviour::honest(), id(&key_file(i)))
                    .await,
            );
        }
        earn_trust(&m, &mut c, &rigs, PHOTONS, JOB_LIMIT).await
    };
    eventually("timed out: the two rigs left", || {
        m.shared.market().connected() == 0
    })
    .await;
    let before = m.shared.market().stats.clone();

    // Phase two: an honest newcomer, fast enough to take the whole job, holds its result.
    let newcomer = ScriptedRig::start(
        m.addr,
        key,
        "newcomer",
        Behaviour {
            histories_per_s: 1 << 30,
            ..Behaviour::honest()
        },
    )
    .await;
    newcomer.hold.store(true, Ordering::SeqCst);
    let job = submit(&mut c, seed, PHOTONS_2).await;
    eventually("newcomer got no work", || {
        !newcomer.report().assigned.is_empty()
    })
    .await;
    // The two come back with the same keys (still trusted), each lying as `lie` says.
    let mut liars = Vec::new();
    for (i, lies) in lie.iter().enumerate() {
        let r = ScriptedRig::start_as(
            m.addr,
            key,
            &format!("liar{i}"),
            Behaviour::honest(),
            id(&key_file(i)),
        )
        .await;
        if let Some(every) = *lies {
            r.lie_every.store(every, Ordering::SeqCst);
            r.lie.store(true, Ordering::SeqCst);
        }
        liars.push(r);
    }
    eventually("timed out: the liars are back", || {
        m.shared.market().connected() == 3
    })
    .await;
    // Their bids on the job follow the offer at once; once sent, give them a moment to land
    // (a check run needs a trusted rig with a bid on the job).
    eventually("the liars did not bid", || {
        liars.iter().all(|l| l.report().bids.contains(&job))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    newcomer.hold.store(false, Ordering::SeqCst);
    let digest = done_digest(&mut c, job, JOB_LIMIT).await;
    assert_eq!(
        digest,
        local_digest(seed, PHOTONS_2),
        "bad work reached the result"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let market = m.shared.market();
    let stats = market.stats.clone();
    assert_eq!(
        newcomer.report().assigned.len(),
        1,
        "the newcomer should hold the whole job"
    );
    assert_eq!(
        stats.check_runs - before.check_runs,
        1,
        "one duplicate on a trusted rig: {stats:?}"
    );
    assert_eq!(
        stats.arbitrations_on_rigs - before.arbitrations_on_rigs,
        1,
        "one arbitration on a trusted rig"
    );
    let delta = [
        stats.check_runs - before.check_runs,
        stats.arbitrations_on_rigs - before.arbitrations_on_rigs,
        stats.escalations - before.escalations,
        stats.caught - before.caught,
        stats.arbitrations - before.arbitrations,
    ];
    // Each checking rig: its report, its public record and its pending pay.
    let checkers: Vec<(Report, RigPublic, i128)> = liars
        .iter()
        .map(|l| {
            let rep = l.report();
            let rec = market.rig_record(&rep.key).unwrap();
            let pending = market
                .store()
                .read()
                .unwrap()
                .balance(&Account::WorkerPending(rep.payout))
                .unwrap();
            (rep, rec, pending)
        })
        .collect();
    for (rep, _, _) in &checkers {
        assert_eq!(rep.assigned.len(), 1, "each checking rig ran one check run");
    }
    let n = newcomer.report();
    let rec = market.rig_record(&n.key).unwrap();
    assert_eq!(rec.errors, 0, "the honest rig was demoted");
    assert!(n.acks.iter().all(|(_, s)| *s != AckStatus::Failed));
    assert_eq!(n.payments.len(), 1, "the honest result is paid once");
    let store = market.store().clone();
    drop(market);
    common::assert_settled(&store, job);
    Outcome { delta, checkers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arbiter_that_agrees_with_neither_is_overruled_by_the_engine() {
    let o = scenario([Some(2), Some(3)], "escalation").await;
    // One duplicate, one arbitration, one escalation, both liars caught by the engine.
    assert_eq!(
        o.delta,
        [1, 1, 1, 2, 1],
        "(check runs, on rigs, escalations, caught, decided)"
    );
    for (rep, rec, pending) in &o.checkers {
        assert_eq!(*pending, 0, "a caught rig kept pending pay");
        assert!(!rec.trusted, "a liar stayed trusted");
        assert_eq!(
            (rec.errors, rec.demotions),
            (1, 1),
            "a liar was not demoted once"
        );
        assert!(rep.acks.iter().any(|(_, s)| *s == AckStatus::Failed));
        assert!(
            rep.payments.is_empty(),
            "a liar was paid for a wrong check run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arbiter_that_agrees_with_one_side_decides() {
    let o = scenario([Some(2), None], "arbitration").await;
    // The lying duplicate disagrees; the honest arbiter agrees with the result and decides.
    assert_eq!(
        o.delta,
        [1, 1, 0, 1, 1],
        "(check runs, on rigs, escalations, caught, decided)"
    );
    let (liar, liar_rec, pending) = &o.checkers[0];
    assert_eq!(*pending, 0, "a caught rig kept pending pay");
    assert!(!liar_rec.trusted);
    assert_eq!((liar_rec.errors, liar_rec.demotions), (1, 1));
    assert!(
        liar.payments.is_empty(),
        "the liar was paid for its wrong check run"
    );
    let (arbiter, arbiter_rec, _) = &o.checkers[1];
    assert!(
        arbiter_rec.trusted && arbiter_rec.errors == 0,
        "the honest arbiter suffered"
    );
    assert_eq!(
        arbiter.payments.len(),
        1,
        "the arbiter is paid once for its run"
    );
    assert!(arbiter.acks.iter().all(|(_, s)| *s != AckStatus::Failed));
}

/// A check run never goes to a busy device (the real rig rejects an Assign for a busy
/// device): with the only trusted rig busy, a newcomer's first result is duplicated on the
/// manager's engine at once, and the job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_go_only_to_idle_devices() {
    let me = Identity::generate().unwrap();
    let market = MarketConfig {
        // Only every untrusted rig's first result is duplicated.
        duplicate_ppm: 0,
        ..checks_market()
    };
    let m = common::manager_granting(&me.public(), 1 << 40, market).await;
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, me, &key).await.unwrap();

    // A rig earns trust alone.
    let trusted = ScriptedRig::start(m.addr, key, "trusted", Behaviour::honest()).await;
    let seed = earn_trust(
        &m,
        &mut c,
        std::slice::from_ref(&trusted),
        PHOTONS,
        JOB_LIMIT,
    )
    .await;

    // It takes work and holds its result: its only device stays busy.
    trusted.hold.store(true, Ordering::SeqCst);
    let earlier = trusted.report().assigned.len();
    let job = submit(&mut c, seed, PHOTONS_3).await;
    eventually("no work for the trusted rig", || {
        trusted.report().assigned.len() != earlier
    })
    .await;
    let before = m.shared.market().stats.clone();
    let assigned = trusted.report().assigned.len();
    // A newcomer's first result is duplicated: on the engine, since the trusted rig is busy.
    let newcomer = ScriptedRig::start(m.addr, key, "newcomer", Behaviour::honest()).await;
    eventually(
        "the newcomer's result waits on the busy trusted rig",
        || !newcomer.report().payments.is_empty(),
    )
    .await;
    let stats = m.shared.market().stats.clone();
    assert_eq!(
        stats.check_runs, before.check_runs,
        "a check run went to a busy device"
    );
    assert!(stats.duplicates > before.duplicates, "no duplicate ran");
    assert_eq!(trusted.report().assigned.len(), assigned);
    trusted.hold.store(false, Ordering::SeqCst);
    assert_eq!(
        done_digest(&mut c, job, JOB_LIMIT).await,
        local_digest(seed, PHOTONS_3)
    );
    let market = m.shared.market();
    for r in [&trusted, &newcomer] {
        assert_eq!(market.rig_record(&r.report().key).unwrap().errors, 0);
    }
    let store = market.store().clone();
    drop(market);
    store.verify_ledger().unwrap();
}
