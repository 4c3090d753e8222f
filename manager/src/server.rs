//! The listener: accepts TCP connections, runs the Noise handshake with a time limit, routes
//! each session by its first message (rig or client, version refusal), and ticks the market.
//!
//! One task per connection. Every peer gets the same treatment up to its first frame: the
//! version is read before anything else (`peek_version`), an unknown version is refused with
//! `UNSUPPORTED_VERSION`, and anything that is neither a rig's nor a client's `Hello` is
//! refused with `PROTOCOL`. The sessions themselves live in [`crate::session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::msg::{
    self, refusal, ClientToManager, CodecError, ManagerToRig, Refusal, RigToManager,
};
use compushare_protocol::secure::net::accept_tcp;
use compushare_protocol::secure::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

pub use crate::node::{ServerConfig, Shared};
use crate::session;
use crate::store::Store;
use crate::tasks::dispatch;

/// A running manager.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    accept: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl Running {
    /// Stops accepting and ticking (sessions already open end with their peers).
    pub fn stop(&self) {
        self.accept.abort();
        self.ticker.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds and starts the manager on the state in `store` (restored first: see
/// [`Market::open`]).
pub async fn start(
    cfg: ServerConfig,
    identity: Identity,
    store: Arc<Store>,
) -> std::io::Result<Running> {
    let listener = TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::open(cfg, identity, store)?);
    let s = shared.clone();
    let accept = tokio::spawn(async move { accept_loop(listener, s).await });
    let s = shared.clone();
    let ticker = tokio::spawn(async move {
        let mut every = tokio::time::interval(s.cfg.tick);
        let mut evicted = 0;
        loop {
            every.tick().await;
            let (tasks, now_evicted) = {
                let mut m = s.market();
                let tasks = m.tick(std::time::Instant::now());
                (tasks, m.stats.evicted)
            };
            dispatch(&Handle::current(), &s, tasks);
            if now_evicted != evicted {
                // Jobs or rigs left memory: what they took goes back to the OS (see `sys`).
                evicted = now_evicted;
                tokio::task::spawn_blocking(crate::sys::trim_heap);
            }
        }
    });
    Ok(Running {
        addr,
        shared,
        accept,
        ticker,
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                compushare_protocol::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let s = shared.clone();
        tokio::spawn(async move { connection(stream, peer, s).await });
    }
}

/// Counts a session for as long as it lives.
struct SessionSlot(Arc<Shared>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn connection(stream: TcpStream, addr: SocketAddr, shared: Arc<Shared>) {
    use std::sync::atomic::Ordering;
    let open = shared.sessions.fetch_add(1, Ordering::Relaxed);
    let _slot = SessionSlot(shared.clone());
    // The limit comes before the handshake: a handshake costs the node key agreements and a
    // task, so a flood of connections past the limit is closed before any of that.
    if open >= shared.cfg.max_sessions {
        compushare_protocol::warn!("{addr}: closed before the handshake: {open} sessions open");
        return;
    }
    let ch = match accept_tcp(stream, &shared.identity, shared.cfg.handshake_timeout).await {
        Ok(ch) => ch,
        Err(e) => {
            compushare_protocol::warn!("handshake with {addr} failed: {e}");
            return;
        }
    };
    let peer = ch.peer();
    let (mut rd, mut wr) = ch.split();
    let first = match tokio::time::timeout(shared.cfg.handshake_timeout, rd.recv_bytes()).await {
        Ok(Ok(b)) => b.to_vec(),
        Ok(Err(e)) => {
            compushare_protocol::warn!("{addr}: no first message: {e}");
            return;
        }
        Err(_) => {
            compushare_protocol::warn!("{addr}: no first message in time");
            return;
        }
    };
    match msg::peek_version(&first).and_then(msg::check_version) {
        Ok(()) => {}
        Err(e @ CodecError::UnsupportedVersion { .. }) => {
            compushare_protocol::warn!("{addr}: refused: {e}");
            refuse(&mut wr, refusal::UNSUPPORTED_VERSION, &e.to_string()).await;
            return;
        }
        Err(e) => {
            compushare_protocol::warn!("{addr}: refused: {e}");
            refuse(&mut wr, refusal::PROTOCOL, &e.to_string()).await;
            return;
        }
    }
    // Decoded into small values before any await: a decoded message enum is ~60 KiB.
    let rig_hello = match msg::decode::<RigToManager>(&first) {
        Ok(RigToManager::Hello(hello)) => Some(Box::new(hello)),
        _ => None,
    };
    let client_hello = matches!(
        msg::decode::<ClientToManager>(&first),
        Ok(ClientToManager::Hello { .. })
    );
    let admin_hello = matches!(
        msg::decode::<msg::AdminToManager>(&first),
        Ok(msg::AdminToManager::Hello { door, .. }) if door == msg::ADMIN_DOOR
    );
    drop(first);
    // Each session's future is boxed on its own, so a rig's task is not sized for the larger
    // client session (or the other way round).
    if let Some(hello) = rig_hello {
        Box::pin(session::rig(shared, peer, hello, rd, wr)).await;
    } else if client_hello {
        Box::pin(session::client(shared, peer, rd, wr)).await;
    } else if admin_hello {
        let idle = shared.cfg.idle_timeout;
        Box::pin(crate::admin::session(shared, peer, idle, rd, wr)).await;
    } else {
        compushare_protocol::warn!("{addr}: refused: first message is not a Hello");
        refuse(&mut wr, refusal::PROTOCOL, "first message must be Hello").await;
    }
}

/// Sends a refusal. Variant 0 (`Refused`) of both reply enums has one frozen layout, so a
/// refusal written as a `ManagerToRig` reads correctly on a client too. Not an `async fn`: the
/// message is boxed before the future exists, so no caller holds a message enum across the
/// send.
fn refuse<'a>(
    wr: &'a mut session::Writer,
    code: u16,
    reason: &str,
) -> impl std::future::Future<Output = ()> + 'a {
    let m = Box::new(ManagerToRig::Refused(Refusal::new(code, reason)));
    async move {
        let _ = wr.send(&*m).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::msg::RigHello;
    use compushare_protocol::secure::net::connect_tcp;

    /// A session's task holds its future for the whole session: with 10,000 rigs every KiB
    /// here is 10 MiB of manager memory. Message enums are ~60 KiB, so one held across an await
    /// shows up at once.
    #[tokio::test]
    async fn session_futures_stay_small() {
        let cfg = ServerConfig {
            listen: "127.0.0.1:0"
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..ServerConfig::default()
        };
        let me = Identity::generate().expect("identity");
        let running = start(
            cfg,
            me,
            Arc::new(Store::in_memory(&crate::Config::default()).expect("store")),
        )
        .await
        .expect("start");
        let shared = running.shared.clone();
        running.stop();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let key = shared.identity.public();
        let client = Identity::generate().expect("identity");
        let (dialled, accepted) = tokio::join!(
            connect_tcp(addr, &client, &key, Duration::from_secs(5)),
            async {
                let (s, _) = listener.accept().await.expect("accept");
                accept_tcp(s, &shared.identity, Duration::from_secs(5)).await
            }
        );
        let _keep = dialled.expect("dial");
        let (rd, wr) = accepted.expect("handshake").split();
        let hello = Box::new(RigHello {
            version: msg::PROTOCOL_VERSION,
            firmware: Default::default(),
            name: Default::default(),
            payout: [0; 32],
            devices: Default::default(),
            farm: None,
            sheet: None,
        });
        let rig = std::mem::size_of_val(&session::rig(shared.clone(), key, hello, rd, wr));
        let stream = TcpStream::connect(addr).await.expect("connect");
        let conn = std::mem::size_of_val(&connection(stream, addr, shared.clone()));
        println!("future sizes: connection {conn} B, rig session {rig} B");
        assert!(conn < 8 * 1024, "connection future {conn} B");
        assert!(rig < 8 * 1024, "rig session future {rig} B");
    }
}
