//! Cheaters among honest rigs: 1 of 5 real rigs (the rig core, in process) runs testkit's
//! dishonest device, fabricating all, 10% or 1% of its histories. In each case: the cheater
//! is caught (an error on its record, its trust reset), the honest rigs are never blamed,
//! the final result is bit-identical to a local run, the cheater earns nothing for the
//! results it fabricated (its pay for the job, after forfeits, is zero), and the books check
//! out (`system::check_books`: ledger verify, pay once, every photon once).

use std::time::Duration;

use compushare_protocol::types::TrustLevel;
use compushare_system_tests::system::{
    check_books, in_rig, local_digest, market, Node, RigSpec, TempDir,
};
use compushare_testkit::Fabricate;

const PHOTONS: u64 = 400_000;
const LONG: Duration = Duration::from_secs(240);

async fn one_cheater_of_five(per_million: u32, seed: u64) {
    let dir = TempDir::new(&format!("cheat{per_million}"));
    // Short assignments: several rounds, so the cheater is given work more than once.
    let node = Node::start(
        &dir.0,
        market(Duration::from_millis(100), Duration::from_secs(30)),
    )
    .await;
    let addr = node.running.addr.to_string();
    // The cheater joins first, so it is in the first round of work.
    let spec = RigSpec {
        fabricate: Some(Fabricate {
            per_million,
            salt: seed,
        }),
        ..RigSpec::default()
    };
    let cheater = in_rig(&addr, node.key(), "cheater", spec).await;
    let mut honest = Vec::new();
    for i in 0..4 {
        honest.push(in_rig(&addr, node.key(), &format!("honest{i}"), RigSpec::default()).await);
    }
    // Jobs until the cheater has been given work in one (at most four): which rigs get the
    // first round is the market's choice, not the test's.
    let mut job = None;
    for round in 0..4u64 {
        let s = seed + 1000 * round;
        let (j, price) = node.submit(PHOTONS, s).await;
        let digest = node.done_digest(j, LONG).await;
        assert_eq!(
            digest,
            local_digest(s, PHOTONS),
            "bad work reached the result"
        );
        let books = check_books(node.store(), j, PHOTONS, price);
        println!("{per_million} per million, job {}: {books:?}", j.0);
        let read = node.store().read().unwrap();
        let worked = read
            .job_assignments(j)
            .unwrap()
            .iter()
            .any(|a| a.rig == cheater.key);
        if worked {
            job = Some((j, books));
            break;
        }
    }
    let (job, books) = job.expect("the cheater was given work in one of four jobs");
    let read = node.store().read().unwrap();
    let rec = read
        .rig(&cheater.key)
        .unwrap()
        .expect("the cheater's record");
    assert!(rec.errors >= 1, "the cheater was not caught: {rec:?}");
    assert_eq!(rec.trust, TrustLevel::Untrusted);
    assert!(books.failed >= 1, "{books:?}");
    assert_eq!(
        books.paid_to(&cheater.payout),
        0,
        "the cheater kept pay for fabricated work"
    );
    let cheats_verified = read
        .job_assignments(job)
        .unwrap()
        .iter()
        .filter(|a| {
            a.rig == cheater.key && a.state == compushare_manager::AssignmentState::Verified
        })
        .count();
    assert_eq!(cheats_verified, 0, "a fabricated result was counted");
    for r in &honest {
        if let Some(h) = read.rig(&r.key).unwrap() {
            assert_eq!(h.errors, 0, "{} blamed", r.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_five_fabricating_everything_is_caught_and_unpaid() {
    one_cheater_of_five(1_000_000, 61).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_five_fabricating_ten_percent_is_caught_and_unpaid() {
    one_cheater_of_five(100_000, 62).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_five_fabricating_one_percent_is_caught_and_unpaid() {
    one_cheater_of_five(10_000, 63).await;
}
