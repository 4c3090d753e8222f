//! The miner against the validating pool on 127.0.0.1: every share is recomputed by the
//! pool; the miner must send only valid shares, no duplicates and none for discarded jobs,
//! through fractional difficulty, version rolling, clean_jobs, set_extranonce, reconnect,
//! client.get_version / show_message and unknown methods.

mod common;

use std::collections::HashSet;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_shares_through_difficulty_rolling_clean_jobs_and_extranonce() {
    let pool = pool(settings()).await;
    let engine = engine(vec![pool_config(&pool, "w1")], client(), fast_failover());

    wait_for("first shares", LIMIT, || pool.stats().accepted >= 5).await;
    let s = pool.stats();
    assert_eq!(s.version_rolling_requests, 1);
    // Revenue per hash of the current job is exposed: the pool's 3.125 BTC coinbase at
    // network difficulty 1 (nbits 1d00ffff).
    let e = engine
        .stats()
        .economics()
        .expect("economics of the current job");
    assert_eq!(e.coinbase_value_sat, 312_500_000);
    assert!((e.network_difficulty - 1.0).abs() < 1e-9);
    assert!((e.sat_per_hash - 312_500_000.0 / 4_294_967_296.0).abs() < 1e-9);
    assert_eq!(s.extranonce_subscribed, 1);
    wait_for("a share with rolled version bits", LIMIT, || {
        pool.stats().accepted_rolled > 0
    })
    .await;

    // Fractional difficulty change: applies from the next job.
    pool.set_difficulty(1e-5);
    let job = pool.new_job(true);
    wait_for("shares at the new difficulty", LIMIT, || {
        pool.accepted_shares()
            .iter()
            .any(|a| job_at_or_after(&a.job_id, &job) && a.difficulty == 1e-5)
    })
    .await;
    assert!(pool
        .accepted_shares()
        .iter()
        .filter(|a| job_at_or_after(&a.job_id, &job))
        .all(|a| a.difficulty == 1e-5));

    // A burst of clean jobs: work must move on each time, no share for a discarded job late.
    for _ in 0..5 {
        pool.new_job(true);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let last = pool.new_job(true);
    wait_for("shares on the newest job", LIMIT, || {
        pool.accepted_shares()
            .iter()
            .any(|a| job_at_or_after(&a.job_id, &last))
    })
    .await;

    // New extranonce1: shares on the following job must use it.
    let old_en1: HashSet<Vec<u8>> = pool
        .accepted_shares()
        .iter()
        .map(|a| a.extranonce1.clone())
        .collect();
    assert_eq!(old_en1.len(), 1);
    pool.set_extranonce(3);
    let job = pool.new_job(true);
    wait_for("shares with the new extranonce", LIMIT, || {
        pool.accepted_shares()
            .iter()
            .any(|a| job_at_or_after(&a.job_id, &job))
    })
    .await;
    for a in pool
        .accepted_shares()
        .iter()
        .filter(|a| job_at_or_after(&a.job_id, &job))
    {
        assert!(!old_en1.contains(&a.extranonce1));
        assert_eq!(a.submit.extranonce2.len(), 3);
    }

    // A narrower version mask mid-session: applies from the next job.
    pool.set_version_mask(0x0000_6000);
    let job = pool.new_job(true);
    wait_for("rolled shares under the new mask", LIMIT, || {
        pool.accepted_shares()
            .iter()
            .any(|a| job_at_or_after(&a.job_id, &job) && a.version != 0x2000_0000)
    })
    .await;
    for a in pool
        .accepted_shares()
        .iter()
        .filter(|a| job_at_or_after(&a.job_id, &job))
    {
        assert_eq!(a.version & !0x0000_6000, 0x2000_0000, "{a:?}");
    }

    // The same job again (as some pools do): the devices must not restart its space,
    // which would hash the same headers twice and send duplicates.
    let before = pool.stats().accepted;
    for clean in [false, true, false, true] {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        pool.resend_current(clean);
    }
    wait_for("shares after the repeats", LIMIT, || {
        pool.stats().accepted >= before + 5
    })
    .await;
    // The classic way to apply a new difficulty at once: set_difficulty, then the same job
    // again. The devices keep their place in the job rather than repeat headers.
    let before = pool.stats().accepted;
    // Easier each time, so shares found just before a change stay valid after it.
    for d in [8e-6, 5e-6] {
        pool.set_difficulty(d);
        pool.resend_current(true);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    wait_for("shares after difficulty on the same job", LIMIT, || {
        pool.stats().accepted >= before + 5
    })
    .await;
    assert_eq!(pool.stats().duplicate, 0);

    // Pool-initiated requests and notifications the miner must handle or ignore.
    pool.get_version();
    pool.show_message("maintenance at noon");
    pool.send_raw(r#"{"id": 77, "method": "mining.something_new", "params": []}"#);
    pool.send_raw(r#"{"id": null, "method": "client.unknown_notice", "params": [1]}"#);
    wait_for("get_version answer", LIMIT, || {
        !pool.stats().versions.is_empty()
    })
    .await;
    assert!(pool.stats().versions[0].starts_with("compushare/"));
    let before = pool.stats().accepted;
    pool.new_job(true);
    wait_for("shares after unknown methods", LIMIT, || {
        pool.stats().accepted >= before + 3
    })
    .await;

    let report = engine.stop().await;
    let s = pool.stats();
    assert_clean("pool", &s);
    assert_eq!(s.connections, 1, "the miner never reconnected");
    // Every share the pool accepted was accepted in the miner's books too (modulo answers
    // in flight at stop).
    let ours = &report.pools[0];
    assert!(
        ours.accepted <= s.accepted && ours.accepted + 4 >= s.accepted,
        "{ours:?} vs {s:?}"
    );
    assert_eq!(ours.rejected, 0);
    assert_eq!(ours.malformed, 0);
    assert_eq!(report.false_positives, 0);
    assert!(report.hashes_per_s > 0.0);
    assert!(report.estimated_hashes_per_s > 0.0);
    // Headers are never repeated: each accepted share is unique by construction at the pool
    // (duplicates counted above), and rolled versions stay inside the mask.
    for a in pool.accepted_shares() {
        assert_eq!(a.version & !0x1fff_e000, 0x2000_0000 & !0x1fff_e000);
        assert_eq!(
            a.submit.version_bits.map(|b| b | 0x2000_0000),
            Some(a.version)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnect_is_followed() {
    let pool = pool(settings()).await;
    let engine = engine(vec![pool_config(&pool, "w1")], client(), fast_failover());
    wait_for("first shares", LIMIT, || pool.stats().accepted >= 2).await;
    pool.reconnect(None, 0);
    wait_for("a second connection", LIMIT, || {
        pool.stats().connections >= 2
    })
    .await;
    let before = pool.stats().accepted;
    wait_for("shares after reconnect", LIMIT, || {
        pool.stats().accepted >= before + 2
    })
    .await;
    // Reconnect to another port on the same host, after a wait.
    let other = common::pool(settings()).await;
    pool.reconnect(Some(other.addr().port()), 1);
    wait_for("the miner on the other port", LIMIT, || {
        other.stats().accepted >= 2
    })
    .await;
    let report = engine.stop().await;
    assert_clean("pool", &pool.stats());
    assert_clean("other port", &other.stats());
    assert_eq!(report.pools[0].rejected, 0);
    assert_eq!(pool.stats().connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_rolling_refused_by_the_pool_means_no_rolling() {
    let mut st = settings();
    st.version_mask = 0;
    let pool = pool(st).await;
    let engine = engine(vec![pool_config(&pool, "w1")], client(), fast_failover());
    wait_for("shares", LIMIT, || pool.stats().accepted >= 5).await;
    engine.stop().await;
    let s = pool.stats();
    assert_clean("pool", &s);
    assert_eq!(s.accepted_rolled, 0);
    assert!(pool
        .accepted_shares()
        .iter()
        .all(|a| a.submit.version_bits.is_none()));
}
