//! Mining on the rig: one pool session for the whole rig (the Stratum client with failover
//! over POOLn in number order), its work on one board with a slot per device. Whichever
//! devices hold the mining role at a moment pull units from their slot; the others leave it
//! alone, so a device's switch never disturbs the pool session or the other devices.
//!
//! Pools can be added and removed while the rig runs (console `pool add|remove`): the pool
//! session restarts on the new list, keeping each remaining pool's counters; shares found for
//! the old session are dropped as stale rather than submitted to the wrong one.
//!
//! Bounded: [`SHARE_QUEUE`] found shares wait for the pool session at most; a device that
//! finds one while it is full drops it and counts it stale.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::command::CommandError;
use crate::config::MAX_POOLS;
use crate::status::{LinkState, PoolView};
use crate::stratum::board::{FoundShare, MiningStats, PoolCounters, WorkBoard};
use crate::stratum::client::{ClientConfig, PoolConfig};
use crate::stratum::conn::PoolUrl;
use crate::stratum::job::JobEconomics;
use crate::stratum::pools::{FailoverConfig, PoolManager};
use crate::sync::lock;

/// Found shares queued for the pool session.
pub const SHARE_QUEUE: usize = 1024;

/// A pool of the rig with its `POOLn` number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedPool {
    pub number: u32,
    pub pool: PoolConfig,
}

/// What device workers use to mine: the board, the counters of the session now running,
/// and the share queue.
pub struct MiningLink {
    board: Arc<WorkBoard>,
    stats: Mutex<Arc<MiningStats>>,
    shares: mpsc::Sender<FoundShare>,
}

impl MiningLink {
    /// The work board (one slot per device).
    pub fn board(&self) -> &Arc<WorkBoard> {
        &self.board
    }

    /// Counters of the pool session now running.
    pub fn stats(&self) -> Arc<MiningStats> {
        lock(&self.stats).clone()
    }

    /// Where found shares go.
    pub fn shares(&self) -> &mpsc::Sender<FoundShare> {
        &self.shares
    }
}

/// The rig's mining engine.
pub struct RigMining {
    link: Arc<MiningLink>,
    pools: Vec<NumberedPool>,
    devices: usize,
    client: ClientConfig,
    failover: FailoverConfig,
    running: Option<(
        watch::Sender<bool>,
        tokio::task::JoinHandle<mpsc::Receiver<FoundShare>>,
    )>,
    /// The share receiver while no pool session runs.
    idle_rx: Option<mpsc::Receiver<FoundShare>>,
}

impl RigMining {
    /// Starts mining on `pools` for `devices` device slots (within a tokio runtime).
    pub fn start(
        mut pools: Vec<NumberedPool>,
        devices: usize,
        client: ClientConfig,
        failover: FailoverConfig,
    ) -> RigMining {
        pools.sort_by_key(|p| p.number);
        let (tx, rx) = mpsc::channel(SHARE_QUEUE);
        let link = Arc::new(MiningLink {
            board: WorkBoard::new(devices.max(1)),
            stats: Mutex::new(MiningStats::with_slots(pools.len(), devices)),
            shares: tx,
        });
        let mut me = RigMining {
            link,
            pools,
            devices,
            client,
            failover,
            running: None,
            idle_rx: Some(rx),
        };
        me.launch();
        me
    }

    fn launch(&mut self) {
        let Some(mut rx) = self.idle_rx.take() else {
            return;
        };
        if self.pools.is_empty() {
            self.idle_rx = Some(rx);
            return;
        }
        let (stop, stop_rx) = watch::channel(false);
        let manager = PoolManager {
            pools: self.pools.iter().map(|p| p.pool.clone()).collect(),
            client: self.client.clone(),
            failover: self.failover.clone(),
            board: self.link.board.clone(),
            stats: self.link.stats(),
        };
        let task = tokio::spawn(async move {
            manager.run(&mut rx, stop_rx).await;
            rx
        });
        self.running = Some((stop, task));
    }

    async fn halt(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            if let Ok(rx) = task.await {
                self.idle_rx = Some(rx);
            }
        }
        self.link.board.withdraw();
    }

    /// Restarts the pool session on `pools`, keeping the counters of pools that stay.
    async fn replace(&mut self, mut pools: Vec<NumberedPool>) {
        self.halt().await;
        pools.sort_by_key(|p| p.number);
        let old = self.link.stats();
        let stats = MiningStats::with_slots(pools.len(), self.devices);
        for (i, p) in pools.iter().enumerate() {
            if let Some(j) = self.pools.iter().position(|q| q.number == p.number) {
                let kept = old.pool(j);
                stats.update(i, |c| {
                    *c = PoolCounters {
                        connected_at: None,
                        ..kept
                    }
                });
            }
        }
        stats.absorb_slots(&old);
        stats.add_hashes(old.hashes());
        *lock(&self.link.stats) = stats;
        self.pools = pools;
        self.launch();
    }

    /// Adds a pool (console `pool add`): at `number`, or after the highest number.
    pub async fn add_pool(
        &mut self,
        number: Option<u32>,
        url: &str,
        user: &str,
        pass: &str,
    ) -> Result<u32, CommandError> {
        let parsed = PoolUrl::parse(url).map_err(|_| CommandError::BadPoolUrl(url.to_owned()))?;
        let number = match number {
            Some(n) if n == 0 || n > MAX_POOLS => return Err(CommandError::PoolNumberTaken(n)),
            Some(n) if self.pools.iter().any(|p| p.number == n) => {
                return Err(CommandError::PoolNumberTaken(n))
            }
            Some(n) => n,
            None => {
                let next = self.pools.iter().map(|p| p.number).max().unwrap_or(0) + 1;
                if next > MAX_POOLS {
                    return Err(CommandError::PoolNumberTaken(next));
                }
                next
            }
        };
        let mut pools = self.pools.clone();
        pools.push(NumberedPool {
            number,
            pool: PoolConfig {
                url: parsed,
                user: user.to_owned(),
                pass: pass.to_owned(),
            },
        });
        self.replace(pools).await;
        Ok(number)
    }

    /// Removes pool `number` (console `pool remove`); the last pool stays.
    pub async fn remove_pool(&mut self, number: u32) -> Result<(), CommandError> {
        if !self.pools.iter().any(|p| p.number == number) {
            return Err(CommandError::NoSuchPool(number));
        }
        if self.pools.len() == 1 {
            return Err(CommandError::LastPool);
        }
        let pools = self
            .pools
            .iter()
            .filter(|p| p.number != number)
            .cloned()
            .collect();
        self.replace(pools).await;
        Ok(())
    }

    /// The pools in number order.
    pub fn pools(&self) -> &[NumberedPool] {
        &self.pools
    }

    /// What device workers use.
    pub fn link(&self) -> &Arc<MiningLink> {
        &self.link
    }

    /// Economics of the job being mined, when there is one.
    pub fn economics(&self) -> Option<JobEconomics> {
        self.link.board.current()?;
        self.link.stats().economics()
    }

    /// The pools for the status snapshot.
    pub fn views(&self) -> Vec<PoolView> {
        let stats = self.link.stats();
        let active = stats.active();
        let work = self.link.board.current();
        let now = Instant::now();
        self.pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = stats.pool(i);
                let is_active = active == Some(i);
                let state = match (&c.connected_at, &c.last_error) {
                    (Some(t), _) => LinkState::Connected {
                        for_s: now.duration_since(*t).as_secs(),
                    },
                    (None, Some(e)) => LinkState::Down {
                        error: e.clone(),
                        retry_in_s: 0,
                    },
                    (None, None) if is_active => LinkState::Connecting,
                    (None, None) => LinkState::Disabled,
                };
                let w = work.as_ref().filter(|w| w.pool == i);
                PoolView {
                    number: p.number,
                    url: p.pool.url.to_string(),
                    user: p.pool.user.clone(),
                    active: is_active,
                    state,
                    accepted: c.accepted,
                    rejected: c.rejected,
                    stale: c.stale,
                    difficulty: w.map_or(0.0, |w| w.difficulty),
                    network_difficulty: w
                        .and_then(|w| w.economics().ok())
                        .map(|e| e.network_difficulty),
                    last_share_s: c.last_accepted.map(|t| now.duration_since(t).as_secs()),
                }
            })
            .collect()
    }

    /// Stops the pool session.
    pub async fn stop(mut self) {
        self.halt().await;
    }
}
