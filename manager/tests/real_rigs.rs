//! End to end with the rig engineer's real transport client (`compushare_controller`): a
//! manager, three CPU rigs over real Noise/TCP and a client on loopback. The job is done,
//! verified, paid and fetched, and its digest equals a local run. Then the same with rigs that
//! fabricate 100%, 10% and 1% of their histories (testkit's dishonest device).

mod common;

use std::time::Duration;

use common::{real_rig, RealRig, JOB};
use compushare_client::Client;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::Running;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Mode, PublicKey};
use compushare_testkit::Fabricate;

const PHOTONS: u64 = 40_000;
const SEED: u64 = 99;

async fn manager(client: PublicKey) -> Running {
    let market = MarketConfig {
        spendable_after: 0,
        ..common::market(40)
    };
    common::manager_granting(&client, 1 << 40, market).await
}

/// `n` honest real rigs on `m`, named `{prefix}0`, `{prefix}1`, ...
async fn honest_rigs(m: &Running, prefix: &str, n: usize) -> Vec<RealRig> {
    let mut rigs = Vec::new();
    for i in 0..n {
        rigs.push(real_rig(m, &format!("{prefix}{i}"), None).await);
    }
    rigs
}

fn local_digest() -> [u8; 32] {
    common::local_digest(SEED, PHOTONS)
}

async fn run_job(m: &Running, client: Identity) -> [u8; 32] {
    run_input(m, client, JOB.as_bytes()).await
}

async fn run_input(m: &Running, client: Identity, input: &[u8]) -> [u8; 32] {
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, client, &key).await.unwrap();
    let (job, _, _) = common::submit_input(&mut c, input, PHOTONS, SEED, Mode::Cheapest).await;
    common::done_digest(&mut c, job, Duration::from_secs(150)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rigs_complete_a_verified_paid_job() {
    let client = Identity::generate().unwrap();
    let m = manager(client.public()).await;
    let rigs = honest_rigs(&m, "rig", 3).await;
    assert_eq!(run_job(&m, client).await, local_digest());
    let market = m.shared.market();
    let mut earners = 0;
    let mut total = 0;
    for r in &rigs {
        let rec = market.rig_record(&r.key).expect("rig joined");
        assert_eq!(rec.errors, 0);
        assert_eq!(market.bank().balance(&r.payout).unwrap(), rec.paid);
        earners += usize::from(rec.paid > 0);
        total += rec.paid;
    }
    assert!(earners >= 2, "work should spread over the rigs");
    assert!(total > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cheating_rigs_are_caught_and_unpaid() {
    let client = Identity::generate().unwrap();
    let m = manager(client.public()).await;
    let honest = honest_rigs(&m, "honest", 2).await;
    let mut cheaters = Vec::new();
    for per_million in [1_000_000u32, 100_000, 10_000] {
        let f = Fabricate {
            per_million,
            salt: u64::from(per_million),
        };
        cheaters.push(real_rig(&m, &format!("cheat{per_million}"), Some(f)).await);
    }
    assert_eq!(
        run_job(&m, client).await,
        local_digest(),
        "bad work reached the result"
    );
    let market = m.shared.market();
    for r in &honest {
        assert_eq!(
            market.rig_record(&r.key).unwrap().errors,
            0,
            "honest rig demoted"
        );
    }
    for r in &cheaters {
        let rec = market.rig_record(&r.key).unwrap();
        if rec.errors == 0 {
            // A cheater that never got work has nothing to be caught on; it was never paid.
            assert_eq!(rec.paid, 0);
            continue;
        }
        assert!(!rec.trusted);
        // Pay for results that passed their checks before the rig was caught was pending,
        // and is forfeited with the rest.
        common::assert_forfeited(&market, &r.payout, rec.paid, rec.forfeited);
    }
    assert!(market.stats.caught >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_geometry_larger_than_the_send_queue_reaches_the_rigs() {
    // 1 MiB of input (the job padded with JSON whitespace, as large as a bundle's JSON may
    // be): more 60 KiB geometry chunks than this manager's session queues have entries,
    // which once got every fetching rig's session dropped.
    let mut input = JOB.as_bytes().to_vec();
    input.resize(
        compushare_kernels::transport::input::bundle::MAX_BUNDLE_JSON,
        b' ',
    );
    let client = Identity::generate().unwrap();
    let market = MarketConfig {
        spendable_after: 0,
        session_queue: 16,
        ..common::market(40)
    };
    let m = common::manager_granting(&client.public(), 1 << 40, market).await;
    let rigs = honest_rigs(&m, "big", 2).await;
    assert_eq!(run_input(&m, client, &input).await, local_digest());
    let market = m.shared.market();
    for r in &rigs {
        assert_eq!(market.rig_record(&r.key).expect("rig joined").errors, 0);
    }
}

/// Issue 12 (bounded memory on both ends): a finished job's offer used to stay open on every
/// rig until its time-to-live (60 s), and a rig ignores offers beyond the
/// `MAX_OFFERS` it remembers; so after that many short jobs in a minute new jobs were
/// never bid for and waited forever (`bench manager-memory` stalled at job 64). The manager
/// now closes a finished job's offer on every connected rig.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rig_keeps_bidding_after_more_short_jobs_than_it_remembers_offers() {
    let client = Identity::generate().unwrap();
    let m = manager(client.public()).await;
    let _rigs = honest_rigs(&m, "busy", 1).await;
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, client, &key).await.unwrap();
    let jobs = compushare_controller::transport::offers::MAX_OFFERS + 6;
    for i in 0..jobs {
        let (job, _, _) =
            common::submit_input(&mut c, JOB.as_bytes(), 200, SEED + i as u64, Mode::Cheapest)
                .await;
        common::wait_done(&mut c, job, Duration::from_secs(30)).await;
    }
}
