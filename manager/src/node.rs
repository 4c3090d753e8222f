//! What every session of a running node shares ([`Shared`]) and the network side's settings
//! ([`ServerConfig`]).
//!
//! Locks: the market's and the ratings' are never held together, and never across an await.
//! What runs under the market's lock is bookkeeping (see [`crate::market`]); heavy work leaves
//! it as [`crate::market::Task`]s run by [`crate::tasks`].

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use compushare_protocol::secure::Identity;

use crate::market::{Market, MarketConfig};
use crate::ratings::ClientRatings;
use crate::store::Store;

/// Settings of the network side.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (default 0.0.0.0:7733).
    pub listen: SocketAddr,
    /// Longest a Noise handshake (TCP accept included) may take.
    pub handshake_timeout: Duration,
    /// A session with no message for this long is closed.
    pub idle_timeout: Duration,
    /// How often deadlines are checked.
    pub tick: Duration,
    /// Threads the manager's own engine uses for one duplicate run.
    pub engine_threads: usize,
    /// Heavy tasks (opening results, sample checks, duplicate runs, merges) run at once on
    /// blocking threads; the rest wait their turn (see [`crate::tasks`]).
    pub max_tasks: usize,
    /// Connections served at once; more are closed before their handshake.
    pub max_sessions: usize,
    pub market: MarketConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7733)),
            handshake_timeout: compushare_protocol::secure::net::HANDSHAKE_TIMEOUT,
            idle_timeout: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            engine_threads: cores,
            max_tasks: cores.max(2),
            max_sessions: 20_000,
            market: MarketConfig::default(),
        }
    }
}

/// Blocking threads a node keeps beyond [`ServerConfig::max_tasks`]: one for a client's job
/// preparation or result sealing (`session`), one for the heap trim after evictions (`server`).
pub const SPARE_BLOCKING_THREADS: usize = 2;

impl ServerConfig {
    /// Threads of the node's blocking pool: the heavy tasks' [`ServerConfig::max_tasks`] plus
    /// [`SPARE_BLOCKING_THREADS`]. When all are busy, more blocking work waits its turn in the
    /// runtime's queue (first come, first served); what can wait is bounded elsewhere: heavy
    /// tasks take their permit before they ask for a thread, a client session waits for its
    /// one job preparation or sealing, the ticker asks for at most one trim per tick.
    ///
    /// Why a bound (tokio's default is 512): a thread made for a burst keeps its stack's
    /// touched pages and its own malloc arena, which glibc never gives back, and bursts make
    /// new threads whenever none is idle. `compushare bench manager-memory --jobs 1000 --rigs
    /// 10000` ended with 18 threads where it began with 10 (BENCHMARKS.md).
    pub fn blocking_threads(&self) -> usize {
        self.max_tasks.max(1) + SPARE_BLOCKING_THREADS
    }

    /// A multi-threaded runtime builder for a node with this config, its blocking pool bounded
    /// at [`ServerConfig::blocking_threads`]. The caller adds what is its own (stack size,
    /// drivers: `enable_all`).
    pub fn runtime_builder(&self) -> tokio::runtime::Builder {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.max_blocking_threads(self.blocking_threads());
        b
    }
}

/// What every session shares.
pub struct Shared {
    pub market: Mutex<Market>,
    pub identity: Identity,
    pub cfg: ServerConfig,
    /// The database the market persists to (read here for public records).
    pub store: Arc<Store>,
    /// Rigs' ratings of clients (clients' ratings of rigs are in the rigs' trust records).
    pub ratings: Mutex<ClientRatings>,
    /// Connections open now (see `server`: the limit is applied before the handshake).
    pub sessions: AtomicUsize,
    /// Heavy tasks allowed to run at once ([`ServerConfig::max_tasks`] permits).
    pub tasks: Arc<tokio::sync::Semaphore>,
    /// The market's durable writes, drained off its lock ([`crate::tasks`]).
    pub journal: Arc<crate::journal::Journal>,
    /// Farms, sheets and the connected rigs' fleet state.
    pub fleet: Arc<crate::fleet::Fleet>,
}

impl Shared {
    /// What a node on `store` shares, its market opened (restored) on it.
    pub fn open(
        cfg: ServerConfig,
        identity: Identity,
        store: Arc<Store>,
    ) -> std::io::Result<Shared> {
        let ratings = ClientRatings::open(store.clone()).map_err(std::io::Error::other)?;
        let market =
            Market::open(cfg.market.clone(), store.clone()).map_err(std::io::Error::other)?;
        let tasks = Arc::new(tokio::sync::Semaphore::new(cfg.max_tasks.max(1)));
        let journal = Arc::clone(market.journal());
        Ok(Shared {
            journal,
            market: Mutex::new(market),
            identity,
            cfg,
            fleet: Arc::new(crate::fleet::Fleet::new(store.clone())),
            store,
            ratings: Mutex::new(ratings),
            sessions: AtomicUsize::new(0),
            tasks,
        })
    }

    /// The market, locked. A panic while holding the lock cannot leave it poisoned for good:
    /// the market's invariants are kept per call, so the inner value is still used.
    pub fn market(&self) -> MutexGuard<'_, Market> {
        self.market.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ratings registry, locked (never held together with the market's lock).
    pub fn ratings(&self) -> MutexGuard<'_, ClientRatings> {
        self.ratings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// The node's runtime never runs more blocking work at once than
    /// [`ServerConfig::blocking_threads`], however much is asked for: the rest waits its turn
    /// (and every piece still runs).
    #[test]
    fn the_blocking_pool_is_bounded() {
        let cfg = ServerConfig {
            max_tasks: 2,
            ..ServerConfig::default()
        };
        let limit = cfg.blocking_threads();
        assert_eq!(limit, 2 + SPARE_BLOCKING_THREADS);
        let rt = cfg
            .runtime_builder()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let asked = 6 * limit;
        let done = rt.block_on(async {
            let mut all = Vec::new();
            for _ in 0..asked {
                let (running, most, threads) = (running.clone(), most.clone(), threads.clone());
                all.push(tokio::task::spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    if let Ok(mut t) = threads.lock() {
                        t.insert(std::thread::current().id());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }));
            }
            let mut done = 0;
            for t in all {
                done += usize::from(t.await.is_ok());
            }
            done
        });
        let threads = threads.lock().map(|t| t.len()).unwrap_or(usize::MAX);
        let most = most.load(Ordering::SeqCst);
        println!("{asked} blocking jobs: at most {most} at once on {threads} threads");
        assert_eq!(done, asked);
        assert!(
            most <= limit,
            "{most} blocking jobs ran at once (limit {limit})"
        );
        assert!(
            threads <= limit,
            "{threads} blocking threads (limit {limit})"
        );
    }
}
