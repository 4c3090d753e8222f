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
