//! A validating Stratum v1 pool server (loopback tests and `compushare demo`): test support,
//! never part of the rig firmware.
//!
//! It hands out real-looking jobs (a coinbase with a height push, the extranonces and one
//! output; a merkle branch; nbits; ntime) and checks each submitted share on its own: it
//! rebuilds the coinbase from coinb1 + extranonce1 + extranonce2 + coinb2, folds the merkle
//! root, builds the header with the submitted ntime, nonce and rolled version, hashes it and
//! compares with the share target of the difficulty the job was sent with. Duplicates and
//! shares for discarded jobs are refused. Everything a pool can do to a miner is scriptable:
//! difficulty (fractional too), version-rolling masks, clean jobs, set_extranonce,
//! client.reconnect, show_message, get_version, raw lines, silence, rejecting, dying and
//! coming back on the same port.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tokio_rustls::rustls;

use compushare_controller::stratum::conn::PoolStream;
use compushare_controller::stratum::hex;
use compushare_controller::stratum::job::{rolled_version, share_header};
use compushare_controller::stratum::lines::{Line, LineReader};
use compushare_controller::stratum::message::{
    self, ClientMessage, Id, Message, Notify, RpcError, Submit, MAX_LINE_BYTES,
};
use compushare_controller::stratum::target::{sha256d, ShareTarget};
use compushare_controller::sync::lock;

/// Why the pool could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PoolServerError {
    /// Binding the listener failed.
    #[error("pool cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("pool setting {field}: {why}")]
    Setting {
        /// Which setting.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Pool settings.
#[derive(Clone)]
pub struct PoolSettings {
    /// Share difficulty sent to new connections.
    pub difficulty: f64,
    /// extranonce1 bytes per connection (1..=8).
    pub extranonce1_size: usize,
    /// extranonce2 bytes miners choose.
    pub extranonce2_size: usize,
    /// BIP 310 mask granted (0: version rolling refused).
    pub version_mask: u32,
    /// A new (not clean) job this often; None: only on demand.
    pub job_interval: Option<Duration>,
    /// Network target of the jobs.
    pub nbits: u32,
    /// Coinbase output value in satoshi.
    pub coinbase_value_sat: u64,
    /// Merkle branch length of the jobs (0 = coinbase only).
    pub merkle_branch_len: usize,
    /// A share for a discarded job that arrives later than this after the discard is
    /// counted as `stale_late` (a miner bug, not a race).
    pub stale_grace: Duration,
    /// TLS server configuration for stratum+ssl.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            difficulty: 1.0,
            extranonce1_size: 4,
            extranonce2_size: 4,
            version_mask: 0x1fff_e000,
            job_interval: Some(Duration::from_secs(30)),
            nbits: 0x1d00_ffff,
            coinbase_value_sat: 312_500_000,
            merkle_branch_len: 3,
            stale_grace: Duration::from_millis(1000),
            tls: None,
        }
    }
}

/// How the pool treats miners right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A normal pool.
    Normal,
    /// Accepts connections and reads, but never answers or sends jobs (a hung pool).
    Silent,
    /// Answers normally but rejects every share.
    RejectAll,
    /// Refuses every authorize.
    RefuseAuth,
}

/// Counters of the pool, per verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolServerStats {
    /// Connections accepted.
    pub connections: u64,
    /// mining.subscribe handled.
    pub subscribes: u64,
    /// Successful authorizes.
    pub authorized: u64,
    /// Connections that sent mining.extranonce.subscribe.
    pub extranonce_subscribed: u64,
    /// mining.configure requests that asked for version rolling.
    pub version_rolling_requests: u64,
    /// Valid shares.
    pub accepted: u64,
    /// Valid shares whose version differs from the job's (rolled).
    pub accepted_rolled: u64,
    /// Sum of the difficulties of valid shares.
    pub accepted_difficulty: f64,
    /// Shares whose hash misses the target.
    pub low_difficulty: u64,
    /// Shares seen before.
    pub duplicate: u64,
    /// Shares for jobs discarded by clean_jobs.
    pub stale: u64,
    /// Of those, ones arriving later than the grace period after the discard.
    pub stale_late: u64,
    /// Shares for job ids never issued.
    pub unknown_job: u64,
    /// Submits with bad fields (lengths, ntime, version bits outside the mask, unauthorized).
    pub bad_submit: u64,
    /// Lines that did not parse.
    pub malformed: u64,
    /// Answers to client.get_version.
    pub versions: Vec<String>,
}

/// One valid share as recorded (for tests that look closer).
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedShare {
    /// Job.
    pub job_id: String,
    /// extranonce1 of the connection when the job was sent.
    pub extranonce1: Vec<u8>,
    /// Submitted fields.
    pub submit: Submit,
    /// Difficulty it was checked against.
    pub difficulty: f64,
    /// Version in the header.
    pub version: u32,
}

/// Most accepted shares kept in the log.
const SHARE_LOG: usize = 100_000;

/// What makes a share unique: job, extranonce1, extranonce2, ntime, nonce, version.
type ShareKey = (String, Vec<u8>, Vec<u8>, u32, u32, u32);

/// Live jobs kept; an older one counts as discarded (shares for it are stale).
const LIVE_JOBS: usize = 32;
/// How long a discarded job is remembered (stale rather than unknown, duplicate checks).
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Per-connection job records kept before pruning those the pool forgot.
const SENT_JOBS: usize = 4 * LIVE_JOBS;

struct JobRecord {
    seq: u64,
    notify: Arc<Notify>,
    discarded_at: Option<Instant>,
}

struct State {
    jobs: HashMap<String, JobRecord>,
    current: Option<Arc<Notify>>,
    seen: HashSet<ShareKey>,
    stats: PoolServerStats,
    shares: Vec<AcceptedShare>,
    behaviour: Behaviour,
    difficulty: f64,
    extranonce2_size: usize,
    version_mask: u32,
}

#[derive(Debug, Clone)]
enum Command {
    Job(Arc<Notify>),
    Difficulty(f64),
    Extranonce,
    VersionMask(u32),
    Reconnect { port: Option<u16>, wait_s: u64 },
    Show(String),
    GetVersion,
    Raw(String),
}

struct Inner {
    settings: PoolSettings,
    state: Mutex<State>,
    commands: broadcast::Sender<Command>,
    next_job: AtomicU64,
    next_en1: AtomicU32,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// A running pool.
pub struct StratumPool {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

fn now_unix() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl StratumPool {
    /// Starts a pool listening on `addr` (use `127.0.0.1:0` for any free loopback port).
    pub async fn start(addr: &str, settings: PoolSettings) -> Result<StratumPool, PoolServerError> {
        if !(1..=8).contains(&settings.extranonce1_size) {
            return Err(PoolServerError::Setting {
                field: "extranonce1_size",
                why: "must be 1..=8".into(),
            });
        }
        if settings.extranonce2_size > message::MAX_EXTRANONCE2 {
            return Err(PoolServerError::Setting {
                field: "extranonce2_size",
                why: format!("at most {}", message::MAX_EXTRANONCE2),
            });
        }
        if ShareTarget::from_difficulty(settings.difficulty).is_err() {
            return Err(PoolServerError::Setting {
                field: "difficulty",
                why: "must be positive and finite".into(),
            });
        }
        let (commands, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                jobs: HashMap::new(),
                current: None,
                seen: HashSet::new(),
                stats: PoolServerStats::default(),
                shares: Vec::new(),
                behaviour: Behaviour::Normal,
                difficulty: settings.difficulty,
                extranonce2_size: settings.extranonce2_size,
                version_mask: settings.version_mask,
            }),
            settings,
            commands,
            next_job: AtomicU64::new(1),
            next_en1: AtomicU32::new(1),
            tasks: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| PoolServerError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| PoolServerError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let pool = StratumPool { inner, addr };
        pool.new_job(true);
        pool.spawn_listener(listener);
        Ok(pool)
    }

    fn spawn_ticker(&self) {
        if let Some(every) = self.inner.settings.job_interval {
            let inner = self.inner.clone();
            let h = tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    make_job(&inner, false);
                }
            });
            lock(&self.inner.tasks).push(h.abort_handle());
        }
    }

    fn spawn_listener(&self, listener: TcpListener) {
        self.spawn_ticker();
        let inner = self.inner.clone();
        let h = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let inner2 = inner.clone();
                let conn = tokio::spawn(async move {
                    let stream: Box<dyn PoolStream> = match &inner2.settings.tls {
                        Some(cfg) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
                            match acceptor.accept(tcp).await {
                                Ok(s) => Box::new(s),
                                Err(_) => return,
                            }
                        }
                        None => Box::new(tcp),
                    };
                    serve(inner2, stream).await;
                });
                lock(&inner.tasks).push(conn.abort_handle());
            }
        });
        lock(&self.inner.tasks).push(h.abort_handle());
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `stratum+tcp://` (or `stratum+ssl://` with TLS) URL of this pool.
    pub fn url(&self) -> String {
        let scheme = if self.inner.settings.tls.is_some() {
            "stratum+ssl"
        } else {
            "stratum+tcp"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Issues a new job to everyone; `clean` discards all earlier jobs.
    pub fn new_job(&self, clean: bool) -> String {
        make_job(&self.inner, clean)
    }

    /// Sends the current job again, unchanged except for `clean` (some pools do).
    pub fn resend_current(&self, clean: bool) {
        let current = lock(&self.inner.state).current.clone();
        if let Some(n) = current {
            let mut again = (*n).clone();
            again.clean_jobs = clean;
            let _ = self.inner.commands.send(Command::Job(Arc::new(again)));
        }
    }

    /// Sends a new share difficulty (it applies from the next job, which is not sent here).
    pub fn set_difficulty(&self, d: f64) {
        lock(&self.inner.state).difficulty = d;
        let _ = self.inner.commands.send(Command::Difficulty(d));
    }

    /// Gives every connection that subscribed to it a new extranonce1 (and `en2_size`).
    pub fn set_extranonce(&self, en2_size: usize) {
        lock(&self.inner.state).extranonce2_size = en2_size;
        let _ = self.inner.commands.send(Command::Extranonce);
    }

    /// Sends mining.set_version_mask (applies to connections that negotiated rolling).
    pub fn set_version_mask(&self, mask: u32) {
        lock(&self.inner.state).version_mask = mask;
        let _ = self.inner.commands.send(Command::VersionMask(mask));
    }

    /// Sends client.reconnect (to `port` on the same host, or the same port) and closes.
    pub fn reconnect(&self, port: Option<u16>, wait_s: u64) {
        let _ = self
            .inner
            .commands
            .send(Command::Reconnect { port, wait_s });
    }

    /// Sends client.show_message.
    pub fn show_message(&self, text: &str) {
        let _ = self.inner.commands.send(Command::Show(text.to_owned()));
    }

    /// Asks every miner client.get_version (answers land in the stats).
    pub fn get_version(&self) {
        let _ = self.inner.commands.send(Command::GetVersion);
    }

    /// Sends a raw line (a newline is added) to every connection: for malformed input tests.
    pub fn send_raw(&self, line: &str) {
        let _ = self.inner.commands.send(Command::Raw(line.to_owned()));
    }

    /// Changes how the pool behaves.
    pub fn set_behaviour(&self, b: Behaviour) {
        lock(&self.inner.state).behaviour = b;
    }

    /// The pool dies: listener and all connections are dropped.
    pub fn kill(&self) {
        for h in lock(&self.inner.tasks).drain(..) {
            h.abort();
        }
    }

    /// The pool comes back on the same address with a fresh clean job.
    pub async fn revive(&self) -> Result<(), PoolServerError> {
        let addr = self.addr.to_string();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| PoolServerError::Bind { addr, source })?;
        self.new_job(true);
        self.spawn_listener(listener);
        Ok(())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> PoolServerStats {
        lock(&self.inner.state).stats.clone()
    }

    /// A copy of the accepted-share log.
    pub fn accepted_shares(&self) -> Vec<AcceptedShare> {
        lock(&self.inner.state).shares.clone()
    }
}

impl Drop for StratumPool {
    fn drop(&mut self) {
        self.kill();
    }
}

fn make_job(inner: &Inner, clean: bool) -> String {
    let n = inner.next_job.fetch_add(1, Ordering::Relaxed);
    let s = &inner.settings;
    let job_id = format!("{n:x}");
    let seed = |tag: &str, i: u64| sha256d(format!("{tag}/{n}/{i}").as_bytes());
    let en1 = s.extranonce1_size;
    let en2 = lock(&inner.state).extranonce2_size;
    let tag = b"/compushare test pool/";
    // Coinbase: version, one null input whose script is a BIP 34 height push, the
    // extranonces and a tag; one P2PKH output; lock time 0.
    let script_len = 4 + en1 + en2 + tag.len();
    let mut coinb1 = Vec::new();
    coinb1.extend_from_slice(&1u32.to_le_bytes());
    coinb1.push(1);
    coinb1.extend_from_slice(&[0u8; 32]);
    coinb1.extend_from_slice(&[0xff; 4]);
    coinb1.push(script_len.min(0xfc) as u8);
    coinb1.push(3);
    coinb1.extend_from_slice(&(n as u32 & 0x00ff_ffff).to_le_bytes()[..3]);
    let mut coinb2 = Vec::new();
    coinb2.extend_from_slice(tag);
    coinb2.extend_from_slice(&[0xff; 4]);
    coinb2.push(1);
    coinb2.extend_from_slice(&s.coinbase_value_sat.to_le_bytes());
    coinb2.extend_from_slice(&[0x19, 0x76, 0xa9, 0x14]);
    coinb2.extend_from_slice(&seed("payee", 0)[..20]);
    coinb2.extend_from_slice(&[0x88, 0xac]);
    coinb2.extend_from_slice(&[0; 4]);
    let notify = Arc::new(Notify {
        job_id: job_id.clone(),
        prevhash_wire: seed("prev", 0),
        coinb1,
        coinb2,
        merkle_branch: (0..s.merkle_branch_len as u64)
            .map(|i| seed("tx", i))
            .collect(),
        version: 0x2000_0000,
        nbits: s.nbits,
        ntime: now_unix(),
        clean_jobs: clean,
    });
    {
        let mut st = lock(&inner.state);
        if clean {
            let now = Instant::now();
            for j in st.jobs.values_mut() {
                j.discarded_at.get_or_insert(now);
            }
        }
        st.jobs.insert(
            job_id.clone(),
            JobRecord {
                seq: n,
                notify: notify.clone(),
                discarded_at: None,
            },
        );
        st.current = Some(notify.clone());
        // Bound memory for a pool that runs for days.
        let State { jobs, seen, .. } = &mut *st;
        let mut live: Vec<u64> = jobs
            .values()
            .filter(|j| j.discarded_at.is_none())
            .map(|j| j.seq)
            .collect();
        if live.len() > LIVE_JOBS {
            live.sort_unstable();
            let cutoff = live[live.len() - LIVE_JOBS];
            let now = Instant::now();
            for j in jobs.values_mut().filter(|j| j.seq < cutoff) {
                j.discarded_at.get_or_insert(now);
            }
        }
        jobs.retain(|_, j| j.discarded_at.is_none_or(|t| t.elapsed() < FORGET_AFTER));
        seen.retain(|k| jobs.contains_key(&k.0));
    }
    let _ = inner.commands.send(Command::Job(notify));
    job_id
}

/// The terms a job was sent under on one connection: shares are judged by them, whatever
/// changed since (set_difficulty, set_extranonce and set_version_mask apply from the next job).
#[derive(Clone)]
struct SentJob {
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    difficulty: f64,
    version_mask: Option<u32>,
}

/// Per-connection facts.
struct Conn {
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    difficulty: f64,
    version_mask: Option<u32>,
    subscribed: bool,
    extranonce_subscribed: bool,
    authorized: HashSet<String>,
    /// What each job was sent with on this connection.
    sent: HashMap<String, SentJob>,
    next_id: i64,
    get_version_ids: HashSet<i64>,
}

fn fresh_en1(inner: &Inner) -> Vec<u8> {
    let v = inner.next_en1.fetch_add(1, Ordering::Relaxed);
    let b = u64::from(v).to_be_bytes();
    b[8 - inner.settings.extranonce1_size..].to_vec()
}

async fn serve(inner: Arc<Inner>, stream: Box<dyn PoolStream>) {
    lock(&inner.state).stats.connections += 1;
    let mut commands = inner.commands.subscribe();
    let (rd, mut wr) = tokio::io::split(stream);
    let mut lines = LineReader::new(BufReader::new(rd), MAX_LINE_BYTES);
    let (difficulty, en2) = {
        let st = lock(&inner.state);
        (st.difficulty, st.extranonce2_size)
    };
    let mut c = Conn {
        extranonce1: fresh_en1(&inner),
        extranonce2_size: en2,
        difficulty,
        version_mask: None,
        subscribed: false,
        extranonce_subscribed: false,
        authorized: HashSet::new(),
        sent: HashMap::new(),
        next_id: 1,
        get_version_ids: HashSet::new(),
    };
    loop {
        let mut out = String::new();
        tokio::select! {
            line = lines.next_line() => {
                let text = match line {
                    Ok(Line::Text(t)) => t,
                    Ok(Line::TooLong(_)) | Ok(Line::NotUtf8) => {
                        lock(&inner.state).stats.malformed += 1;
                        continue;
                    }
                    Ok(Line::Eof) | Err(_) => return,
                };
                let behaviour = lock(&inner.state).behaviour;
                if behaviour == Behaviour::Silent {
                    continue;
                }
                handle_line(&inner, &mut c, &text, behaviour, &mut out);
            }
            cmd = commands.recv() => {
                let cmd = match cmd {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if lock(&inner.state).behaviour == Behaviour::Silent {
                    continue;
                }
                let close = handle_command(&inner, &mut c, cmd, &mut out);
                if !out.is_empty() && wr.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                if close {
                    let _ = wr.shutdown().await;
                    return;
                }
                continue;
            }
        }
        if !out.is_empty() && wr.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn send_job(inner: &Inner, c: &mut Conn, n: &Arc<Notify>, clean: bool, out: &mut String) {
    if c.sent.len() >= SENT_JOBS {
        let st = lock(&inner.state);
        c.sent.retain(|k, _| st.jobs.contains_key(k));
    }
    c.sent.insert(
        n.job_id.clone(),
        SentJob {
            extranonce1: c.extranonce1.clone(),
            extranonce2_size: c.extranonce2_size,
            difficulty: c.difficulty,
            version_mask: c.version_mask,
        },
    );
    let mut n2 = (**n).clone();
    n2.clean_jobs = clean;
    out.push_str(&message::notification_line("mining.notify", n2.to_params()));
}

fn handle_command(inner: &Inner, c: &mut Conn, cmd: Command, out: &mut String) -> bool {
    if !c.subscribed {
        return false;
    }
    match cmd {
        Command::Job(n) => {
            let clean = n.clean_jobs;
            send_job(inner, c, &n, clean, out);
        }
        Command::Difficulty(d) => {
            c.difficulty = d;
            out.push_str(&message::notification_line(
                "mining.set_difficulty",
                json!([d]),
            ));
        }
        Command::Extranonce => {
            if c.extranonce_subscribed {
                c.extranonce1 = fresh_en1(inner);
                c.extranonce2_size = lock(&inner.state).extranonce2_size;
                out.push_str(&message::notification_line(
                    "mining.set_extranonce",
                    json!([hex::encode(&c.extranonce1), c.extranonce2_size]),
                ));
            }
        }
        Command::VersionMask(m) => {
            if c.version_mask.is_some() {
                c.version_mask = Some(m);
                out.push_str(&message::notification_line(
                    "mining.set_version_mask",
                    json!([hex::encode_u32_be(m)]),
                ));
            }
        }
        Command::Reconnect { port, wait_s } => {
            let params = match port {
                Some(p) => json!(["", p, wait_s]),
                None => json!([]),
            };
            out.push_str(&message::notification_line("client.reconnect", params));
            return true;
        }
        Command::Show(t) => {
            out.push_str(&message::notification_line(
                "client.show_message",
                json!([t]),
            ));
        }
        Command::GetVersion => {
            let id = c.next_id;
            c.next_id += 1;
            c.get_version_ids.insert(id);
            out.push_str(&message::request_line(
                &Id::Num(id),
                "client.get_version",
                json!([]),
            ));
        }
        Command::Raw(mut l) => {
            l.push('\n');
            out.push_str(&l);
        }
    }
    false
}

fn handle_line(inner: &Inner, c: &mut Conn, text: &str, behaviour: Behaviour, out: &mut String) {
    let req = match message::parse_line(text) {
        Ok(Message::Request(r)) => r,
        Ok(Message::Response(r)) => {
            if let (Id::Num(n), Value::String(v)) = (&r.id, &r.result) {
                if c.get_version_ids.remove(n) {
                    lock(&inner.state).stats.versions.push(v.clone());
                }
            }
            return;
        }
        Err(_) => {
            lock(&inner.state).stats.malformed += 1;
            return;
        }
    };
    let msg = match ClientMessage::from_request(&req) {
        Ok(m) => m,
        Err(e) => {
            let mut st = lock(&inner.state);
            if req.method == "mining.submit" {
                st.stats.bad_submit += 1;
            } else {
                st.stats.malformed += 1;
            }
            out.push_str(&message::error_line(
                &req.id,
                RpcError::OTHER,
                &e.to_string(),
            ));
            return;
        }
    };
    match msg {
        ClientMessage::Subscribe => {
            c.subscribed = true;
            lock(&inner.state).stats.subscribes += 1;
            let sid = hex::encode(&c.extranonce1);
            out.push_str(&message::result_line(
                &req.id,
                json!([
                    [["mining.set_difficulty", sid], ["mining.notify", sid]],
                    hex::encode(&c.extranonce1),
                    c.extranonce2_size
                ]),
            ));
        }
        ClientMessage::Configure {
            extensions,
            version_mask,
        } => {
            let mut result = serde_json::Map::new();
            if extensions.iter().any(|e| e == "version-rolling") {
                let pool_mask = {
                    let mut st = lock(&inner.state);
                    st.stats.version_rolling_requests += 1;
                    st.version_mask
                };
                let granted = pool_mask & version_mask.unwrap_or(u32::MAX);
                if granted != 0 {
                    c.version_mask = Some(granted);
                    result.insert("version-rolling".into(), json!(true));
                    result.insert(
                        "version-rolling.mask".into(),
                        json!(hex::encode_u32_be(granted)),
                    );
                } else {
                    result.insert("version-rolling".into(), json!(false));
                }
            }
            out.push_str(&message::result_line(&req.id, Value::Object(result)));
        }
        ClientMessage::Authorize { worker, .. } => {
            if behaviour == Behaviour::RefuseAuth {
                out.push_str(&message::error_line(
                    &req.id,
                    RpcError::UNAUTHORIZED,
                    "unauthorized worker",
                ));
                return;
            }
            c.authorized.insert(worker);
            lock(&inner.state).stats.authorized += 1;
            out.push_str(&message::result_line(&req.id, json!(true)));
            if c.authorized.len() == 1 && c.subscribed {
                // First authorized worker: difficulty and the current job, clean.
                out.push_str(&message::notification_line(
                    "mining.set_difficulty",
                    json!([c.difficulty]),
                ));
                let current = lock(&inner.state).current.clone();
                if let Some(n) = current {
                    send_job(inner, c, &n, true, out);
                }
            }
        }
        ClientMessage::ExtranonceSubscribe => {
            c.extranonce_subscribed = true;
            lock(&inner.state).stats.extranonce_subscribed += 1;
            out.push_str(&message::result_line(&req.id, json!(true)));
        }
        ClientMessage::Submit(s) => {
            let verdict = validate(inner, c, &s, behaviour);
            match verdict {
                Ok(()) => out.push_str(&message::result_line(&req.id, json!(true))),
                Err((code, why)) => out.push_str(&message::error_line(&req.id, code, why)),
            }
        }
        ClientMessage::Unknown(_) => {
            out.push_str(&message::error_line(
                &req.id,
                RpcError::OTHER,
                "unknown method",
            ));
        }
    }
}

fn validate(
    inner: &Inner,
    c: &Conn,
    s: &Submit,
    behaviour: Behaviour,
) -> Result<(), (i64, &'static str)> {
    let mut st = lock(&inner.state);
    let grace = inner.settings.stale_grace;
    if !c.authorized.contains(&s.worker) {
        st.stats.bad_submit += 1;
        return Err((RpcError::UNAUTHORIZED, "unauthorized worker"));
    }
    let (Some(job), Some(sent)) = (st.jobs.get(&s.job_id), c.sent.get(&s.job_id)) else {
        st.stats.unknown_job += 1;
        return Err((RpcError::JOB_NOT_FOUND, "job not found"));
    };
    let SentJob {
        extranonce1: en1,
        extranonce2_size: en2_size,
        difficulty,
        version_mask,
    } = sent.clone();
    if let Some(at) = job.discarded_at {
        let late = at.elapsed() > grace;
        st.stats.stale += 1;
        if late {
            st.stats.stale_late += 1;
        }
        return Err((RpcError::JOB_NOT_FOUND, "stale: job not found"));
    }
    let n = job.notify.clone();
    if s.extranonce2.len() != en2_size {
        st.stats.bad_submit += 1;
        return Err((RpcError::OTHER, "extranonce2 has the wrong size"));
    }
    if s.ntime < n.ntime || s.ntime > n.ntime.saturating_add(7200) {
        st.stats.bad_submit += 1;
        return Err((RpcError::OTHER, "ntime out of range"));
    }
    let version = match (s.version_bits, version_mask) {
        (None, _) => n.version,
        (Some(bits), Some(mask)) if bits & !mask == 0 => rolled_version(n.version, bits, mask),
        (Some(_), _) => {
            st.stats.bad_submit += 1;
            return Err((RpcError::OTHER, "version bits outside the negotiated mask"));
        }
    };
    let key = (
        s.job_id.clone(),
        en1.clone(),
        s.extranonce2.clone(),
        s.ntime,
        s.nonce,
        version,
    );
    if st.seen.contains(&key) {
        st.stats.duplicate += 1;
        return Err((RpcError::DUPLICATE, "duplicate share"));
    }
    let header = share_header(&n, &en1, &s.extranonce2, s.ntime, version, s.nonce);
    let hash = sha256d(&header);
    let target = ShareTarget::from_difficulty(difficulty)
        .map_err(|_| (RpcError::OTHER, "bad difficulty"))?;
    if !target.is_met_by(&hash) {
        st.stats.low_difficulty += 1;
        return Err((RpcError::LOW_DIFFICULTY, "low difficulty share"));
    }
    st.seen.insert(key);
    if behaviour == Behaviour::RejectAll {
        return Err((RpcError::OTHER, "rejected by pool policy"));
    }
    st.stats.accepted += 1;
    st.stats.accepted_difficulty += difficulty;
    if version != n.version {
        st.stats.accepted_rolled += 1;
    }
    if st.shares.len() < SHARE_LOG {
        st.shares.push(AcceptedShare {
            job_id: s.job_id.clone(),
            extranonce1: en1,
            submit: s.clone(),
            difficulty,
            version,
        });
    }
    Ok(())
}
