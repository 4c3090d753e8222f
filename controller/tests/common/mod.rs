//! Helpers for loopback tests: start pools and a mining engine, wait for conditions with a
//! deadline (so a broken engine fails the test instead of hanging it).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_controller::stratum::client::{ClientConfig, PoolConfig};
use compushare_controller::stratum::conn::PoolUrl;
use compushare_controller::stratum::miner::{KernelScanner, MinerConfig};
use compushare_controller::stratum::pools::FailoverConfig;
use compushare_controller::stratum::MiningEngine;
use compushare_testkit::pool::{PoolServerStats, PoolSettings, StratumPool};

/// Share difficulty for tests: tens of thousands of hashes per share, so a slow shared
/// 2-core machine still finds several per second.
pub const TEST_DIFFICULTY: f64 = 2e-5;

pub fn settings() -> PoolSettings {
    PoolSettings {
        difficulty: TEST_DIFFICULTY,
        job_interval: Some(Duration::from_millis(700)),
        ..PoolSettings::default()
    }
}

pub async fn pool(settings: PoolSettings) -> StratumPool {
    StratumPool::start("127.0.0.1:0", settings)
        .await
        .expect("pool starts")
}

pub fn pool_config(p: &StratumPool, user: &str) -> PoolConfig {
    PoolConfig {
        url: PoolUrl::parse(&p.url()).expect("url"),
        user: user.into(),
        pass: "x".into(),
    }
}

pub fn client() -> ClientConfig {
    ClientConfig {
        job_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

pub fn fast_failover() -> FailoverConfig {
    FailoverConfig {
        switch_back_delay: Duration::from_millis(1500),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
    }
}

pub fn miner() -> MinerConfig {
    // Small nonce chunks so rolled version bits show up within seconds.
    MinerConfig {
        threads: 2,
        chunk_bits: 14,
    }
}

pub fn engine(
    pools: Vec<PoolConfig>,
    client: ClientConfig,
    failover: FailoverConfig,
) -> MiningEngine {
    MiningEngine::start(
        pools,
        client,
        failover,
        &miner(),
        Arc::new(KernelScanner::cpu()),
    )
    .expect("engine starts")
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pool saw nothing a correct miner would send.
pub fn assert_clean(name: &str, s: &PoolServerStats) {
    assert_eq!(s.low_difficulty, 0, "{name}: invalid shares: {s:?}");
    assert_eq!(s.duplicate, 0, "{name}: duplicate shares: {s:?}");
    assert_eq!(s.bad_submit, 0, "{name}: malformed submits: {s:?}");
    assert_eq!(s.unknown_job, 0, "{name}: shares for unknown jobs: {s:?}");
    assert_eq!(
        s.stale_late, 0,
        "{name}: shares for long-discarded jobs: {s:?}"
    );
    assert_eq!(
        s.malformed, 0,
        "{name}: malformed lines from the miner: {s:?}"
    );
}

pub const LIMIT: Duration = Duration::from_secs(30);

/// Whether pool job id `id` was issued at or after `since` (the pool numbers jobs in hex).
pub fn job_at_or_after(id: &str, since: &str) -> bool {
    match (u64::from_str_radix(id, 16), u64::from_str_radix(since, 16)) {
        (Ok(a), Ok(b)) => a >= b,
        _ => false,
    }
}
