//! The rig's operator surfaces, started together: serial console, network console,
//! cgminer-compatible API and Prometheus metrics.
//!
//! [`spawn`] is the one entry point the rig core calls: it starts what rig.conf enables and
//! returns [`OpsHandles`] (bound addresses, counters, and the tasks, stopped on drop). Every
//! surface only reads [`StatusRx`] snapshots and sends [`crate::command::Command`]s; none
//! reaches into the rig core.
//!
//! Every network door runs through [`serve`]: a fixed number of connections at once (one
//! more is closed at once and counted), a time limit per connection, and a counter per way a
//! connection can fail ([`OpsStats`]), which the metrics endpoint exports.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::secure::Identity;
use compushare_protocol::types::PublicKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::command::CommandTx;
use crate::config::RigConfig;
use crate::console::serial::{self, SerialError};
use crate::status::StatusRx;

/// The network console's port when `CONSOLE_LISTEN` is not set (CONTRACT.md).
pub const DEFAULT_CONSOLE_PORT: u16 = 7734;

/// What the operator surfaces listen on; [`OpsConfig::from_rig`] reads it from rig.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsConfig {
    /// `SERIAL_CONSOLE`.
    pub serial_console: Option<PathBuf>,
    /// `CONSOLE_LISTEN`: where the network console listens (every address on port
    /// [`DEFAULT_CONSOLE_PORT`] when `None`). The console runs when `console_keys` or the
    /// status snapshot's [`crate::status::RigStatus::console_keys`] lists a key. On a farm
    /// rig (the snapshot's `sheet.enrolled`) with no key yet, it opens when a flight sheet
    /// first lists one; anywhere else, set without keys it is a configuration error.
    pub console_listen: Option<SocketAddr>,
    /// `CONSOLE_KEYS`: the operators always allowed on the network console (besides those
    /// of the snapshot's keys in force, which a flight sheet may change).
    pub console_keys: Vec<PublicKey>,
    /// `API_LISTEN` (`None`: no API, e.g. in a test).
    pub api_listen: Option<SocketAddr>,
    /// `METRICS_LISTEN` (off by default).
    pub metrics_listen: Option<SocketAddr>,
}

impl OpsConfig {
    /// The surfaces rig.conf asks for.
    pub fn from_rig(cfg: &RigConfig) -> Self {
        OpsConfig {
            serial_console: cfg.serial_console.clone(),
            console_listen: cfg.console_listen,
            console_keys: cfg.console_keys.clone(),
            api_listen: Some(cfg.api_listen),
            metrics_listen: cfg.metrics_listen,
        }
    }

    /// What a rig whose rig.conf could not be read still offers (maintenance mode): the API
    /// on its default address and a serial console on `serial` if the caller knows one.
    pub fn maintenance(serial: Option<PathBuf>) -> Self {
        OpsConfig {
            serial_console: serial,
            console_listen: None,
            console_keys: Vec::new(),
            api_listen: crate::config::DEFAULT_API_LISTEN.parse().ok(),
            metrics_listen: None,
        }
    }
}

/// Why the operator surfaces could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// A listener could not bind its address (in use, or not an address of this machine).
    #[error("{key}={addr}: cannot listen: {source}")]
    Bind {
        /// The rig.conf key that names the address.
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `CONSOLE_LISTEN` is set but `CONSOLE_KEYS` lists nobody who could log in, and no
    /// flight sheet can (the rig is in no farm).
    #[error("CONSOLE_LISTEN={0} is set but CONSOLE_KEYS is empty: no operator could log in")]
    ConsoleWithoutKeys(SocketAddr),
}

/// Counts of one network door.
#[derive(Debug, Default)]
pub struct DoorStats {
    /// Connections served.
    pub accepted: AtomicU64,
    /// Connections closed at once because the door was full.
    pub busy: AtomicU64,
    /// Connections cut at the time limit.
    pub timed_out: AtomicU64,
    /// `accept` failures (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
    /// Failures to bind a door opened after start (the network console a flight sheet
    /// opens; doors bound at start fail [`spawn`] instead).
    pub bind_errors: AtomicU64,
}

/// Counters of every operator surface, one per way things go wrong (exported as metrics).
#[derive(Debug, Default)]
pub struct OpsStats {
    pub console: DoorStats,
    pub api: DoorStats,
    pub metrics: DoorStats,
    /// Console lines answered with success / with an error (every door).
    pub console_ok: AtomicU64,
    pub console_err: AtomicU64,
    /// Network console sessions welcomed.
    pub console_sessions: AtomicU64,
    /// Network console sessions refused: key not in CONSOLE_KEYS.
    pub console_refused_key: AtomicU64,
    /// Refused: protocol version not accepted.
    pub console_refused_version: AtomicU64,
    /// Refused or ended: protocol broken (not Hello first, undecodable message).
    pub console_protocol_errors: AtomicU64,
    /// Handshakes that failed or timed out.
    pub console_handshake_errors: AtomicU64,
    /// Sessions ended by a frame that failed authentication (replayed, altered, reordered).
    pub console_auth_errors: AtomicU64,
    /// Sessions ended after the idle limit.
    pub console_idle: AtomicU64,
    /// Sessions closed because their key left the keys in force (a new flight sheet).
    pub console_key_removed: AtomicU64,
    /// Serial port: open or configure failures, I/O errors, hang-ups.
    pub serial_open_errors: AtomicU64,
    pub serial_io_errors: AtomicU64,
    pub serial_hangups: AtomicU64,
    /// API requests answered, by outcome.
    pub api_requests: AtomicU64,
    /// API requests that were not a request (bad JSON, too long, not UTF-8, empty).
    pub api_bad_requests: AtomicU64,
    /// API commands refused as privileged.
    pub api_denied: AtomicU64,
    /// API commands cgminer has that this API does not.
    pub api_unknown: AtomicU64,
    /// Metrics scrapes served, and requests refused (not GET /metrics, malformed).
    pub metrics_scrapes: AtomicU64,
    pub metrics_bad_requests: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl OpsStats {
    pub(crate) fn count_console_line(&self, ok: bool) {
        bump(if ok {
            &self.console_ok
        } else {
            &self.console_err
        });
    }

    pub(crate) fn count_serial(&self, e: &SerialError) {
        bump(match e {
            SerialError::Open { .. } | SerialError::Configure { .. } => &self.serial_open_errors,
            SerialError::HungUp { .. } => &self.serial_hangups,
            _ => &self.serial_io_errors,
        });
    }
}

/// The running surfaces. Dropping it stops them.
#[derive(Debug)]
pub struct OpsHandles {
    /// Where the network console listens, if it listens from the start.
    pub console_addr: Option<SocketAddr>,
    /// Where the network console listens now: `console_addr`, or for a farm rig whose
    /// operator keys come from its flight sheet, the address bound once a sheet lists one.
    pub console_bound: tokio::sync::watch::Receiver<Option<SocketAddr>>,
    /// Where the cgminer-compatible API listens, if it runs.
    pub api_addr: Option<SocketAddr>,
    /// Where the metrics endpoint listens, if it runs.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether the serial console runs (its port may still be opening: it retries).
    pub serial: bool,
    pub stats: Arc<OpsStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl OpsHandles {
    /// Stops every surface (open connections are cut).
    pub fn shutdown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for OpsHandles {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the operator surfaces rig.conf enables: the entry point for the rig core.
///
/// Needs a tokio runtime. Fails, starting nothing, when a listener cannot bind or the
/// console is configured so that nobody could use it; a serial port that cannot be opened
/// is not fatal (logged, counted and retried: a USB adapter may appear later).
pub async fn spawn(
    cfg: &RigConfig,
    status: StatusRx,
    commands: CommandTx,
    identity: Arc<Identity>,
) -> Result<OpsHandles, OpsError> {
    spawn_with(&OpsConfig::from_rig(cfg), status, commands, identity).await
}

/// [`spawn`] from an explicit [`OpsConfig`] (maintenance mode, tests).
pub async fn spawn_with(
    cfg: &OpsConfig,
    status: StatusRx,
    commands: CommandTx,
    identity: Arc<Identity>,
) -> Result<OpsHandles, OpsError> {
    // The console's `log` reads the ring of recent lines: from now on, lines go there too.
    crate::log::install_ring();
    let stats = Arc::new(OpsStats::default());
    let bind = |key: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| OpsError::Bind { key, addr, source })
    };
    // Validate and bind everything before starting anything: a bad address fails the call.
    let console_listen = cfg
        .console_listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONSOLE_PORT)));
    let (anyone, enrolled) = {
        let s = status.borrow();
        (
            crate::console::net::anyone(&cfg.console_keys, &s),
            s.sheet.enrolled,
        )
    };
    // Bound now when someone may log in; on a farm rig, once its flight sheet lists someone.
    let (console, later) = match (anyone, enrolled, cfg.console_listen) {
        (true, _, _) => (Some(bind("CONSOLE_LISTEN", console_listen).await?), false),
        (false, true, _) => (None, true),
        (false, false, Some(addr)) => return Err(OpsError::ConsoleWithoutKeys(addr)),
        (false, false, None) => (None, false),
    };
    let api = match cfg.api_listen {
        Some(a) => Some(bind("API_LISTEN", a).await?),
        None => None,
    };
    let metrics = match cfg.metrics_listen {
        Some(a) => Some(bind("METRICS_LISTEN", a).await?),
        None => None,
    };
    let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (bound_tx, console_bound) = tokio::sync::watch::channel(addr(&console));
    let mut handles = OpsHandles {
        console_addr: addr(&console),
        console_bound,
        api_addr: addr(&api),
        metrics_addr: addr(&metrics),
        serial: cfg.serial_console.is_some(),
        stats: stats.clone(),
        tasks: Vec::new(),
    };
    let keys: Arc<[PublicKey]> = cfg.console_keys.clone().into();
    if later {
        handles
            .tasks
            .push(tokio::spawn(crate::console::net::serve_when_allowed(
                console_listen,
                keys.clone(),
                identity.clone(),
                status.clone(),
                commands.clone(),
                stats.clone(),
                bound_tx,
            )));
        crate::info!(
            "network console on {console_listen} once the farm's flight sheet lists an operator key"
        );
    } else if let Some(l) = console {
        handles.tasks.push(tokio::spawn(crate::console::net::serve(
            l,
            keys,
            identity,
            status.clone(),
            commands.clone(),
            stats.clone(),
        )));
        crate::info!(
            "network console on {} for {} operator key(s)",
            console_listen,
            cfg.console_keys
                .len()
                .max(status.borrow().console_keys.len())
        );
    }
    if let Some(l) = api {
        let door = crate::api::DOOR;
        let task = spawn_door(
            l,
            door,
            status.clone(),
            stats.clone(),
            crate::api::connection,
        );
        handles.tasks.push(task);
    }
    if let Some(l) = metrics {
        let door = crate::metrics::DOOR;
        let task = spawn_door(
            l,
            door,
            status.clone(),
            stats.clone(),
            crate::metrics::connection,
        );
        handles.tasks.push(task);
    }
    if let Some(path) = &cfg.serial_console {
        let first = match serial::Port::open(path) {
            Ok(p) => Some(p),
            Err(e) => {
                stats.count_serial(&e);
                crate::warn!("serial console: {e}; retrying");
                None
            }
        };
        handles.tasks.push(tokio::spawn(serial::run(
            path.clone(),
            first,
            status,
            commands,
            stats,
        )));
    }
    Ok(handles)
}

/// One network door: its name in logs, its limits and its counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Door {
    pub name: &'static str,
    /// Connections served at once.
    pub connections: usize,
    /// Longest one connection may last.
    pub time: Duration,
    pub counts: fn(&OpsStats) -> &DoorStats,
}

/// Serves a door whose connections need only the status snapshots and the counters.
fn spawn_door<C, F>(
    listener: TcpListener,
    door: Door,
    status: StatusRx,
    stats: Arc<OpsStats>,
    connection: C,
) -> JoinHandle<()>
where
    C: Fn(TcpStream, StatusRx, Arc<OpsStats>) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let st = stats.clone();
    tokio::spawn(serve(listener, door, stats, move |stream, _| {
        connection(stream, status.clone(), st.clone())
    }))
}

/// Accepts connections on `listener` for ever, at most `door.connections` at once, each
/// cut after `door.time`; `handler` serves one connection.
pub(crate) async fn serve<H, F>(listener: TcpListener, door: Door, stats: Arc<OpsStats>, handler: H)
where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (name, counts, limits) = (door.name, door.counts, door);
    let slots = Arc::new(Semaphore::new(limits.connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                bump(&counts(&stats).accept_errors);
                crate::warn!("{name}: accept failed: {e}");
                // Out of descriptors or similar: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            bump(&counts(&stats).busy);
            crate::debug!(
                "{name}: {peer} refused, {} connections open",
                limits.connections
            );
            drop(stream);
            continue;
        };
        bump(&counts(&stats).accepted);
        let _ = stream.set_nodelay(true);
        let work = handler(stream, peer);
        let stats = stats.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if tokio::time::timeout(limits.time, work).await.is_err() {
                bump(&counts(&stats).timed_out);
                crate::debug!(
                    "{name}: {peer} cut at the {} s limit",
                    limits.time.as_secs()
                );
            }
        });
    }
}
