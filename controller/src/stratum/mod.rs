//! Stratum v1 mining: wire messages, jobs and headers, the client with pool failover and the
//! miner driver. (The validating pool server used by tests is test support: the
//! `compushare-testkit` crate.)
//!
//! [`MiningEngine`] wires them together: a [`pools::PoolManager`] task on the tokio runtime
//! publishes work to a [`board::WorkBoard`], and [`miner::Miner`] threads scan it and send
//! shares back.
//!
//! Implemented: stratum+tcp and stratum+ssl (rustls, system roots or a CA file);
//! mining.configure (BIP 310 version rolling), subscribe, authorize, extranonce.subscribe,
//! set_difficulty and set_extranonce (both from the next job), set_version_mask, notify
//! (clean_jobs drops queued shares of older jobs; every new job reaches the devices at once),
//! submit (6th parameter when rolling), client.reconnect (same host only), show_message,
//! get_version, mining.ping; failover across pools with capped, jittered backoff and
//! switch-back after a delay; per-pool accepted / rejected / stale counts; measured and
//! share-estimated hash rate; job economics for profit switching.
//!
//! Deliberately not: following client.reconnect to another host (a one-line hijack of the
//! hash rate); ntime rolling (extranonce2 and version bits give enough space); Stratum v2.

pub mod board;
pub mod client;
pub mod conn;
pub mod hex;
pub mod job;
pub mod lines;
pub mod message;
pub mod miner;
pub mod pools;
pub mod target;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use board::{MiningStats, PoolCounters, WorkBoard};
use client::{ClientConfig, PoolConfig};
use miner::{Miner, MinerConfig, MinerError, NonceScanner};
use pools::{FailoverConfig, PoolManager};

/// Capacity of the found-share queue; a full queue drops the share and counts it stale.
const SHARE_QUEUE: usize = 1024;

/// A running miner: pool manager task plus worker threads.
pub struct MiningEngine {
    stats: Arc<MiningStats>,
    miner: Miner,
    stop: watch::Sender<bool>,
    manager: tokio::task::JoinHandle<()>,
    pools: Vec<PoolConfig>,
}

/// Final figures of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct MiningReport {
    /// Counters per pool, in priority order.
    pub pools: Vec<PoolCounters>,
    /// Hashes per second measured on the devices.
    pub hashes_per_s: f64,
    /// Hashes per second estimated from accepted shares.
    pub estimated_hashes_per_s: f64,
    /// Scanner reports that failed the re-check.
    pub false_positives: u64,
    /// Scans that failed: the scanner could not run (see [`MiningStats::scan_errors`]).
    pub scan_errors: u64,
    /// Pool in use at the end, else the last one used.
    pub active_pool: Option<usize>,
}

impl MiningEngine {
    /// Starts mining; must be called within a tokio runtime.
    pub fn start(
        pools: Vec<PoolConfig>,
        client: ClientConfig,
        failover: FailoverConfig,
        miner: &MinerConfig,
        scanner: Arc<dyn NonceScanner>,
    ) -> Result<MiningEngine, MinerError> {
        let board = WorkBoard::new(miner.threads.max(1));
        let stats = MiningStats::new(pools.len());
        let (share_tx, share_rx) = mpsc::channel(SHARE_QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let miner = Miner::start(miner, board.clone(), stats.clone(), scanner, share_tx)?;
        let manager = PoolManager {
            pools: pools.clone(),
            client,
            failover,
            board,
            stats: stats.clone(),
        };
        let manager = tokio::spawn(async move {
            let mut share_rx = share_rx;
            manager.run(&mut share_rx, stop_rx).await;
        });
        Ok(MiningEngine {
            stats,
            miner,
            stop,
            manager,
            pools,
        })
    }

    /// Live counters.
    pub fn stats(&self) -> &Arc<MiningStats> {
        &self.stats
    }

    /// The configured pools.
    pub fn pools(&self) -> &[PoolConfig] {
        &self.pools
    }

    /// Stops everything and returns the figures.
    pub async fn stop(self) -> MiningReport {
        let active = self.stats.active();
        // Devices first, so nothing is found after the pools stop listening for shares.
        // Joining threads blocks; keep the runtime's workers free.
        let miner = self.miner;
        let _ = tokio::task::spawn_blocking(move || miner.stop()).await;
        let _ = self.stop.send(true);
        let _ = self.manager.await;
        let stats = self.stats.clone();
        MiningReport {
            pools: (0..stats.pool_count()).map(|i| stats.pool(i)).collect(),
            hashes_per_s: stats.measured_hashrate(),
            estimated_hashes_per_s: stats.estimated_hashrate(),
            false_positives: stats.false_positives(),
            scan_errors: stats.scan_errors(),
            active_pool: active,
        }
    }
}
