//! Faults between the parts, end to end on loopback, each case ending with the same checks
//! (`system::check_books`): the job completes with the digest of a local run, the ledger
//! verifies, no assignment is paid twice, every verified assignment is paid once, and the
//! verified photon ranges cover the job exactly once (no result lost).
//!
//! - Frames between each rig and the node dropped, delayed, duplicated and corrupted by the
//!   fault-injecting proxy (seeded; `FAULT_SEED=N` repeats a run): sessions break, rigs
//!   reconnect and re-send what they hold.
//! - A rig process killed with SIGKILL while it runs an assignment: the node gives the range
//!   to another rig at the assignment's deadline and never pays the dead one for it.
//! - The Stratum pool dying under rigs that mine and run transport: transport goes on, the
//!   job completes; when the pool comes back the rigs mine again with valid shares.
//!
//! (The node killed -9 and restarted mid-job, several times, with rig processes: see
//! cli/tests/manager_crash.rs and cli/tests/rig_process.rs, which run in the same CI.)

use std::time::Duration;

use compushare_system_tests::proxy::{FaultPlan, FaultProxy, Faults};
use compushare_system_tests::system::{
    check_books, eventually, in_rig, local_digest, market, rig_process, Children, Node, RigSpec,
    TempDir,
};

const LONG: Duration = Duration::from_secs(240);
const KILL_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_dropped_delayed_duplicated_and_corrupted_lose_nothing() {
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("FAULT_SEED={seed}");
    let dir = TempDir::new("proxy");
    // Short assignments (many frames), deadlines of a few seconds: a result lost with its
    // session and never re-sent would stall the job until its deadline, not forever.
    let node = Node::start(
        &dir.0,
        market(Duration::from_millis(300), Duration::from_secs(8)),
    )
    .await;
    // Each kind of fault on its own rig's link, both directions, after the handshake.
    let kinds = [
        Faults {
            drop: 0.05,
            ..Faults::NONE
        },
        Faults {
            duplicate: 0.05,
            ..Faults::NONE
        },
        Faults {
            corrupt: 0.05,
            ..Faults::NONE
        },
        Faults {
            delay: 0.1,
            delay_for: Duration::from_millis(400),
            ..Faults::NONE
        },
    ];
    let mut proxies = Vec::new();
    let mut rigs = Vec::new();
    for (i, f) in kinds.iter().enumerate() {
        let proxy = FaultProxy::start(node.running.addr, FaultPlan::both(*f, 4, seed + i as u64))
            .await
            .unwrap();
        let addr = proxy.addr().to_string();
        proxies.push(proxy);
        rigs.push(in_rig(&addr, node.key(), &format!("faulty{i}"), RigSpec::default()).await);
    }
    // Jobs one after another until every link has seen its faults (at most six), each
    // checked in full.
    const PHOTONS: u64 = 200_000;
    for round in 0..6u64 {
        let seed = 41 + round;
        let (job, price) = node.submit(PHOTONS, seed).await;
        let digest = node.done_digest(job, LONG).await;
        assert_eq!(digest, local_digest(seed, PHOTONS), "FAULT_SEED={seed}");
        let books = check_books(node.store(), job, PHOTONS, price);
        let injected: Vec<u64> = proxies.iter().map(|p| p.counts().injected()).collect();
        println!(
            "job {}: faults injected per link {injected:?}; {books:?}",
            job.0
        );
        if injected.iter().all(|&n| n > 0) {
            break;
        }
    }
    let injected: Vec<u64> = proxies.iter().map(|p| p.counts().injected()).collect();
    assert!(
        injected.iter().all(|&n| n > 0),
        "every link saw faults: {injected:?} (FAULT_SEED={seed})"
    );
    // Honest rigs behind faulty links are never blamed: a broken frame is the network's.
    let read = node.store().read().unwrap();
    for r in &rigs {
        if let Some(rec) = read.rig(&r.key).unwrap() {
            assert_eq!(rec.errors, 0, "{} blamed for the network's faults", r.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rig_killed_mid_assignment_loses_nothing_and_is_not_paid_for_it() {
    let dir = TempDir::new("rigkill");
    // Assignments of about two seconds, deadlines of at least ten.
    let node = Node::start(
        &dir.0,
        market(Duration::from_secs(2), Duration::from_secs(10)),
    )
    .await;
    let addr = node.running.addr.to_string();
    let mut children = Children::default();
    let rig = |children: &mut Children, i: usize| {
        let d = dir.0.join(format!("rig{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let (child, key, _) = rig_process(&d, &addr, &node.key(), &format!("rig{i}"));
        children.0.push(child);
        (key, d.join("rig.log"))
    };
    // rig0 alone when the job comes: it takes the first assignment (the whole of this small
    // job, at its speed) and is killed as soon as it starts running it. Then two more rigs
    // join, while nothing is left to offer them: the node must offer them the dead rig's
    // range when it gives it back at the assignment's deadline.
    let (victim, log) = rig(&mut children, 0);
    const PHOTONS: u64 = 200_000;
    let (job, price) = node.submit(PHOTONS, 43).await;
    eventually("rig0 starts an assignment", LONG, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("assignment ") && l.contains(": job "))
    })
    .await;
    children.0[0].kill().unwrap();
    children.0[0].wait().unwrap();
    let others = [rig(&mut children, 1).1, rig(&mut children, 2).1];
    eventually("the other rigs join", LONG, || {
        others.iter().all(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .contains("welcomed by")
        })
    })
    .await;
    let digest = node.done_digest(job, KILL_LIMIT).await;
    assert_eq!(digest, local_digest(43, PHOTONS));
    let books = check_books(node.store(), job, PHOTONS, price);
    println!("rig0 killed; {books:?}");
    let read = node.store().read().unwrap();
    let dead: Vec<_> = read
        .job_assignments(job)
        .unwrap()
        .into_iter()
        .filter(|a| a.rig == victim)
        .collect();
    assert!(!dead.is_empty(), "rig0 had work");
    for a in &dead {
        // Its assignment was running when it died: abandoned, never paid.
        if a.state != compushare_manager::AssignmentState::Verified {
            assert_eq!(a.state, compushare_manager::AssignmentState::Abandoned);
            assert_eq!(read.paid_by(a.id).unwrap(), None);
        }
    }
    assert!(books.abandoned >= 1, "{books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_dying_under_mining_rigs_stops_neither_transport_nor_mining() {
    use compushare_testkit::pool::{PoolSettings, StratumPool};
    let dir = TempDir::new("pool");
    let node = Node::start(
        &dir.0,
        market(Duration::from_millis(500), Duration::from_secs(10)),
    )
    .await;
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 0.001,
            nbits: 0x1703_4219,
            job_interval: Some(Duration::from_secs(2)),
            ..PoolSettings::default()
        },
    )
    .await
    .unwrap();
    let addr = node.running.addr.to_string();
    let mut rigs = Vec::new();
    for i in 0..2 {
        let spec = RigSpec {
            pool: Some(pool.url()),
            ..RigSpec::default()
        };
        rigs.push(in_rig(&addr, node.key(), &format!("miner{i}"), spec).await);
    }
    let shares = |pool: &StratumPool, worker: &str| {
        pool.accepted_shares()
            .iter()
            .filter(|s| s.submit.worker == worker)
            .count()
    };
    for r in &rigs {
        eventually(&format!("{} mines", r.name), LONG, || {
            shares(&pool, &r.name) > 0
        })
        .await;
    }
    const PHOTONS: u64 = 150_000;
    let (job, price) = node.submit(PHOTONS, 47).await;
    // The pool dies while the job runs.
    let store = node.store().clone();
    eventually("the job starts", LONG, || {
        !store
            .read()
            .unwrap()
            .job_assignments(job)
            .unwrap()
            .is_empty()
    })
    .await;
    pool.kill();
    let digest = node.done_digest(job, LONG).await;
    assert_eq!(digest, local_digest(47, PHOTONS));
    check_books(node.store(), job, PHOTONS, price);
    // The pool comes back on its port: the rigs mine there again, every share valid.
    let before: Vec<usize> = rigs.iter().map(|r| shares(&pool, &r.name)).collect();
    pool.revive().await.unwrap();
    for (r, b) in rigs.iter().zip(before) {
        eventually(&format!("{} mines again", r.name), LONG, || {
            shares(&pool, &r.name) > b
        })
        .await;
    }
    let s = pool.stats();
    assert_eq!(s.low_difficulty + s.bad_submit + s.duplicate, 0, "{s:?}");
}
