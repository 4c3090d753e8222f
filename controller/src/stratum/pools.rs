//! Several pools in priority order. The manager runs one mining session at a time on the
//! highest-priority pool that is not backing off; a lost pool backs off (capped exponential
//! with jitter) and the next takes over at once. While on a lower-priority pool, the
//! higher ones are probed every `switch_back_delay`; one that delivers a job again gets the
//! work back.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::board::{FoundShare, MiningStats, WorkBoard};
use super::client::{run_session, ClientConfig, MiningLink, PoolConfig, SessionEnd};
use super::conn::PoolUrl;
use crate::{info, warn};

/// Failover timing.
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// How long after leaving a higher-priority pool it is probed again, and how often.
    pub switch_back_delay: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            switch_back_delay: Duration::from_secs(300),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// A small xorshift for jitter: reconnect storms from many rigs must not line up, and this
/// needs no cryptographic quality.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Jitter(seed | 1)
    }
    /// A factor in [0.5, 1.0).
    fn factor(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 0.5
    }
}

/// The capped, jittered delay after `failures` failures in a row.
pub fn backoff(cfg: &FailoverConfig, failures: u32, jitter_factor: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let raw = cfg.backoff_min.saturating_mul(1u32 << exp);
    raw.min(cfg.backoff_max)
        .mul_f64(jitter_factor.clamp(0.0, 1.0))
}

/// Runs the pools until `stop` turns true.
pub struct PoolManager {
    /// Pools in priority order.
    pub pools: Vec<PoolConfig>,
    /// Session behaviour.
    pub client: ClientConfig,
    /// Failover timing.
    pub failover: FailoverConfig,
    /// The devices' board.
    pub board: Arc<WorkBoard>,
    /// Counters.
    pub stats: Arc<MiningStats>,
}

enum Outcome {
    Session(SessionEnd),
    SwitchBack(usize),
}

impl PoolManager {
    /// Drives sessions until stopped.
    pub async fn run(
        self,
        shares: &mut mpsc::Receiver<FoundShare>,
        mut stop: watch::Receiver<bool>,
    ) {
        let n = self.pools.len();
        let mut next_attempt = vec![Instant::now(); n];
        let mut failures = vec![0u32; n];
        let mut redirect: Vec<Option<PoolUrl>> = vec![None; n];
        let mut jitter = Jitter::new();
        let mut session_id = 0u64;
        loop {
            let stopped = *stop.borrow();
            if stopped {
                break;
            }
            let now = Instant::now();
            let Some(i) = (0..n).find(|&i| next_attempt.get(i).is_some_and(|t| *t <= now)) else {
                let Some(wake) = next_attempt.iter().min().copied() else {
                    break;
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = super::client::stopped(&mut stop) => break,
                }
                continue;
            };
            let (Some(pool), Some(url)) = (
                self.pools.get(i),
                redirect
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| self.pools.get(i).map(|p| p.url.clone())),
            ) else {
                break;
            };
            session_id += 1;
            self.stats.set_active(i);
            info!("mining on pool {i} ({url})");
            let mut probe_stop = stop.clone();
            let outcome = {
                let session = run_session(
                    i,
                    session_id,
                    pool,
                    &url,
                    &self.client,
                    &self.stats,
                    Some(MiningLink {
                        board: &self.board,
                        shares,
                    }),
                    &mut stop,
                );
                let prober = self.switch_back(i, &mut probe_stop);
                tokio::select! {
                    end = session => Outcome::Session(end),
                    j = prober => Outcome::SwitchBack(j),
                }
            };
            self.board.withdraw();
            self.stats.set_active(usize::MAX);
            self.stats.update(i, |c| c.connected_at = None);
            match outcome {
                Outcome::Session(SessionEnd::Stopped) => break,
                Outcome::Session(SessionEnd::Ready) => {}
                Outcome::Session(SessionEnd::Lost { error, had_work }) => {
                    warn!("pool {i} ({url}) lost: {error}");
                    self.stats
                        .update(i, |c| c.last_error = Some(error.to_string()));
                    if let Some(f) = failures.get_mut(i) {
                        *f = if had_work { 1 } else { f.saturating_add(1) };
                        let delay = backoff(&self.failover, *f, jitter.factor());
                        if let Some(t) = next_attempt.get_mut(i) {
                            *t = Instant::now() + delay;
                        }
                    }
                    // A redirect lasts one connection; after a failure use the configured address.
                    if let Some(r) = redirect.get_mut(i) {
                        *r = None;
                    }
                }
                Outcome::Session(SessionEnd::Reconnect { url: to, wait }) => {
                    if let Some(r) = redirect.get_mut(i) {
                        *r = Some(to);
                    }
                    // Wait here rather than through next_attempt so a lower pool does not
                    // take over during a planned reconnect. At least backoff_min: a pool
                    // that answers every connection with a reconnect must not spin us.
                    tokio::select! {
                        _ = tokio::time::sleep(wait.max(self.failover.backoff_min)) => {}
                        _ = super::client::stopped(&mut stop) => break,
                    }
                }
                Outcome::SwitchBack(j) => {
                    info!("pool {j} is back: switching from pool {i}");
                    if let Some(f) = failures.get_mut(j) {
                        *f = 0;
                    }
                    if let Some(t) = next_attempt.get_mut(j) {
                        *t = Instant::now();
                    }
                }
            }
        }
        self.board.withdraw();
    }

    /// Resolves with the index of a higher-priority pool than `active` that answers with a
    /// job, probing every `switch_back_delay`; never resolves for pool 0.
    async fn switch_back(&self, active: usize, stop: &mut watch::Receiver<bool>) -> usize {
        if active == 0 {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(self.failover.switch_back_delay).await;
            for j in 0..active {
                let Some(pool) = self.pools.get(j) else {
                    continue;
                };
                let end =
                    run_session(j, 0, pool, &pool.url, &self.client, &self.stats, None, stop).await;
                match end {
                    SessionEnd::Ready => return j,
                    SessionEnd::Stopped => return std::future::pending().await,
                    _ => {}
                }
            }
        }
    }
}
