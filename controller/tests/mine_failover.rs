//! Several pools in priority order on 127.0.0.1: a pool that dies (failover to the next), one
//! that comes back (switch back after the configured delay), a hung pool that sends no jobs,
//! a pool that rejects every share, and one that refuses the worker.

mod common;

use std::time::Duration;

use common::*;
use compushare_testkit::pool::Behaviour;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_fails_over_then_switches_back() {
    let a = pool(settings()).await;
    let b = pool(settings()).await;
    let engine = engine(
        vec![pool_config(&a, "wa"), pool_config(&b, "wb")],
        client(),
        fast_failover(),
    );
    wait_for("shares on the first pool", LIMIT, || {
        a.stats().accepted >= 3
    })
    .await;
    assert_eq!(
        b.stats().accepted,
        0,
        "the second pool is idle while the first works"
    );
    assert_eq!(engine.stats().active(), Some(0));

    a.kill();
    wait_for("shares on the second pool", LIMIT, || {
        b.stats().accepted >= 3
    })
    .await;
    assert_eq!(engine.stats().active(), Some(1));
    let a_before = a.stats().accepted;

    a.revive().await.expect("pool comes back on its port");
    wait_for("switch back to the first pool", LIMIT, || {
        engine.stats().active() == Some(0) && a.stats().accepted >= a_before + 3
    })
    .await;
    let b_after = b.stats().accepted;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Back on the first pool the second gets nothing new (answers in flight aside).
    assert!(b.stats().accepted <= b_after + 1);

    let report = engine.stop().await;
    assert_clean("first", &a.stats());
    assert_clean("second", &b.stats());
    assert!(report.pools[0].accepted > 0 && report.pools[1].accepted > 0);
    assert!(
        report.pools[0].last_error.is_some(),
        "the death was recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_rejecting_and_refusing_pools_are_skipped() {
    let settings = || {
        let mut s = settings();
        s.job_interval = Some(Duration::from_millis(300));
        s
    };
    let hung = pool(settings()).await;
    hung.set_behaviour(Behaviour::Silent);
    let rejecting = pool(settings()).await;
    rejecting.set_behaviour(Behaviour::RejectAll);
    let refusing = pool(settings()).await;
    refusing.set_behaviour(Behaviour::RefuseAuth);
    let good = pool(settings()).await;
    let mut cfg = client();
    cfg.job_timeout = Duration::from_millis(1500);
    cfg.max_consecutive_rejects = 3;
    let mut failover = fast_failover();
    // No switching back during this test: every higher pool stays broken anyway.
    failover.switch_back_delay = Duration::from_secs(600);
    let engine = engine(
        vec![
            pool_config(&hung, "w"),
            pool_config(&rejecting, "w"),
            pool_config(&refusing, "w"),
            pool_config(&good, "w"),
        ],
        cfg,
        failover,
    );
    wait_for("shares on the good pool", LIMIT, || {
        good.stats().accepted >= 3
    })
    .await;
    let report = engine.stop().await;
    assert_eq!(hung.stats().accepted, 0);
    assert!(hung.stats().connections >= 1);
    assert_eq!(rejecting.stats().accepted, 0);
    assert!(report.pools[1].rejected >= 3, "{:?}", report.pools[1]);
    assert_eq!(refusing.stats().authorized, 0);
    assert!(report.pools[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("no job"));
    assert!(report.pools[1]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("rejected"));
    assert!(report.pools[2]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("authorize"));
    for (name, p) in [("rejecting", &rejecting), ("good", &good)] {
        let s = p.stats();
        assert_eq!(
            s.low_difficulty + s.duplicate + s.bad_submit + s.stale_late,
            0,
            "{name}: {s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_pools_down_then_one_appears() {
    // Reserve a port, free it, and point the miner at it before anything listens there.
    let a = pool(settings()).await;
    let cfg = pool_config(&a, "w");
    a.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let engine = engine(vec![cfg], client(), fast_failover());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(engine.stats().pool(0).connections, 0);
    a.revive().await.expect("revive");
    wait_for("shares once the pool is up", LIMIT, || {
        a.stats().accepted >= 2
    })
    .await;
    engine.stop().await;
    assert_clean("pool", &a.stats());
}
