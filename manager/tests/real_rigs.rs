//! End to end with the rig engineer's real transport client (`compushare_controller`): a
//! manager, three CPU rigs over real Noise/TCP and a client on loopback. The job is done,
//! verified, paid and fetched, and its digest equals a local run. Then the same with rigs that
//! fabricate 100%, 10% and 1% of their histories (the controller's `Fabricate` test hook).

mod common;

use std::time::{Duration, Instant};

use common::JOB;
use compushare_controller::config::Roles;
use compushare_controller::transport::{Fabricate, Rig, RigOptions, RigSettings};
use compushare_kernels::transport::simulate;
use compushare_manager::client::Client;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, Running, ServerConfig};
use compushare_protocol::msg::JobState;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode, PublicKey, Role};

const PHOTONS: u64 = 40_000;
const SEED: u64 = 99;

async fn manager(client: PublicKey) -> Running {
    let store = common::store_granting(&client, 1 << 40);
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tick: Duration::from_millis(100),
        engine_threads: 2,
        market: MarketConfig {
            target: Duration::from_millis(40),
            deadline_floor: Duration::from_secs(60),
            spendable_after: 0,
            ..MarketConfig::default()
        },
        ..ServerConfig::default()
    };
    start(cfg, Identity::generate().unwrap(), store)
        .await
        .unwrap()
}

struct RealRig {
    key: PublicKey,
    payout: PublicKey,
    task: tokio::task::JoinHandle<Result<(), compushare_controller::transport::RigError>>,
    _dir: TempDir,
}

impl Drop for RealRig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn real_rig(m: &Running, name: &str, fabricate: Option<Fabricate>) -> RealRig {
    let dir = std::env::temp_dir().join(format!(
        "cs-mserver-{}-{name}-{}",
        std::process::id(),
        rand_tag()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let payout = Identity::generate().unwrap().public();
    let settings = RigSettings {
        manager: m.addr.to_string(),
        manager_key: m.shared.identity.public(),
        name: name.into(),
        payout,
        cpu_devices: 1,
        roles: Roles::All(Role::Auto),
        state_dir: dir.clone(),
        options: RigOptions {
            cores: Some(1),
            calibration_photons: 256,
            min_price: Amount(0),
            fabricate,
            ..RigOptions::default()
        },
    };
    let id = Identity::generate().unwrap();
    let key = id.public();
    let rig = tokio::task::spawn_blocking(move || Rig::new(settings, id))
        .await
        .unwrap()
        .unwrap();
    RealRig {
        key,
        payout,
        task: tokio::spawn(rig.run()),
        _dir: TempDir(dir),
    }
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn local_digest() -> [u8; 32] {
    let mut job = common::job_for(JOB.as_bytes(), SEED);
    job.photons = PHOTONS;
    simulate(&job, 0..PHOTONS, 2, None).unwrap().digest()
}

async fn run_job(m: &Running, client: Identity) -> [u8; 32] {
    run_input(m, client, JOB.as_bytes()).await
}

async fn run_input(m: &Running, client: Identity, input: &[u8]) -> [u8; 32] {
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, client, &key).await.unwrap();
    let (job, _, _) = c
        .submit(input, PHOTONS, Some(SEED), Mode::Cheapest, Amount(u64::MAX))
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
    c.fetch(job).await.unwrap().digest()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rigs_complete_a_verified_paid_job() {
    let client = Identity::generate().unwrap();
    let m = manager(client.public()).await;
    let mut rigs = Vec::new();
    for i in 0..3 {
        rigs.push(real_rig(&m, &format!("rig{i}"), None).await);
    }
    assert_eq!(run_job(&m, client).await, local_digest());
    let market = m.shared.market();
    let mut earners = 0;
    let mut total = 0;
    for r in &rigs {
        let rec = market.rig_record(&r.key).expect("rig joined");
        assert_eq!(rec.errors, 0);
        assert_eq!(market.bank().balance(&r.payout), rec.paid);
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
    let mut honest = Vec::new();
    for i in 0..2 {
        honest.push(real_rig(&m, &format!("honest{i}"), None).await);
    }
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
    // 16 MiB of input (the job padded with JSON whitespace): more 60 KiB geometry chunks than
    // a session queue has entries, which once got every fetching rig's session dropped.
    let mut input = JOB.as_bytes().to_vec();
    input.resize(16 << 20, b' ');
    let client = Identity::generate().unwrap();
    let m = manager(client.public()).await;
    let mut rigs = Vec::new();
    for i in 0..2 {
        rigs.push(real_rig(&m, &format!("big{i}"), None).await);
    }
    assert_eq!(run_input(&m, client, &input).await, local_digest());
    let market = m.shared.market();
    for r in &rigs {
        assert_eq!(market.rig_record(&r.key).expect("rig joined").errors, 0);
    }
}
