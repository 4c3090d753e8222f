//! One session with one pool: connect (TCP or TLS), configure / subscribe / authorize /
//! extranonce.subscribe, then turn notifies into [`Work`] on the board and found shares into
//! submits, counting what the pool says. The session ends when the pool is lost (closed,
//! silent too long, refusing shares again and again), asks for a reconnect, or we stop.
//!
//! Malformed lines are counted and skipped: the connection stays, because a pool that sends
//! one bad message usually sends a good one next; a pool that only sends garbage stops
//! sending jobs and the no-job watchdog ends the session.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader, WriteHalf};
use tokio::sync::{mpsc, watch};

use super::board::{FoundShare, MiningStats, WorkBoard};
use super::conn::{connect, ConnectError, PoolStream, PoolUrl, TlsSettings};
use super::job::Work;
use super::lines::{Line, LineReader};
use super::message::{
    self, configure_result_mask, Id, Message, Notify, Response, ServerMessage, Submit,
    SubscribeResult, MAX_LINE_BYTES,
};
use super::target::ShareTarget;
use crate::{debug, info, warn};

/// A pool in the priority list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Where it is.
    pub url: PoolUrl,
    /// Worker name.
    pub user: String,
    /// Password.
    pub pass: String,
}

/// How sessions behave.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent in subscribe and to `client.get_version`.
    pub agent: String,
    /// BIP 310 mask to ask for (None: do not send mining.configure).
    pub version_rolling: Option<u32>,
    /// A pool that sends no job for this long is dead.
    pub job_timeout: Duration,
    /// This many rejected shares in a row (not stale) and the pool is dead.
    pub max_consecutive_rejects: u32,
    /// TCP connect and TLS handshake limit.
    pub connect_timeout: Duration,
    /// TLS trust.
    pub tls: TlsSettings,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            agent: format!("compushare/{}", env!("CARGO_PKG_VERSION")),
            version_rolling: Some(0x1fff_e000),
            job_timeout: Duration::from_secs(180),
            max_consecutive_rejects: 20,
            connect_timeout: Duration::from_secs(10),
            tls: TlsSettings::default(),
        }
    }
}

/// Why a session ended badly.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Reading or writing failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The pool closed the connection.
    #[error("pool closed the connection")]
    Closed,
    /// No job within the timeout.
    #[error("no job from the pool for {0:?}")]
    NoJob(Duration),
    /// mining.subscribe was refused or malformed.
    #[error("subscribe failed: {0}")]
    Subscribe(String),
    /// mining.authorize was refused.
    #[error("authorize failed: {0}")]
    Authorize(String),
    /// Too many rejects in a row.
    #[error("{0} shares rejected in a row")]
    Rejects(u32),
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The pool is lost; `had_work` says whether it delivered a job first.
    Lost {
        /// Why.
        error: SessionError,
        /// Whether any job arrived.
        had_work: bool,
    },
    /// The pool asked us to reconnect.
    Reconnect {
        /// Where.
        url: PoolUrl,
        /// After how long.
        wait: Duration,
    },
    /// A probe got a job: the pool is healthy.
    Ready,
    /// We were told to stop.
    Stopped,
}

enum Pending {
    Configure,
    Subscribe,
    Authorize,
    ExtranonceSubscribe,
    Submit { difficulty: f64, slot: usize },
}

/// What makes published work distinct: the job (clean flag aside), extranonce1 and size,
/// difficulty and version mask.
type PublishedKey = (Notify, Vec<u8>, usize, u64, Option<u32>);

/// How many recent job ids are kept as valid targets for submits.
const VALID_JOBS: usize = 16;
/// Most unanswered requests remembered (a pool that never answers must not grow memory).
const MAX_PENDING: usize = 4096;

/// Where a session delivers work; absent for a probe.
pub struct MiningLink<'a> {
    /// The devices' board.
    pub board: &'a WorkBoard,
    /// Shares from the devices.
    pub shares: &'a mut mpsc::Receiver<FoundShare>,
}

struct Session<'a> {
    pool_index: usize,
    session_id: u64,
    pool: &'a PoolConfig,
    url: &'a PoolUrl,
    cfg: &'a ClientConfig,
    stats: &'a MiningStats,
    writer: WriteHalf<Box<dyn PoolStream>>,
    next_id: i64,
    pending: HashMap<i64, Pending>,
    extranonce: Option<(Vec<u8>, usize)>,
    difficulty: f64,
    version_mask: Option<u32>,
    last_notify: Option<Arc<Notify>>,
    published: Option<PublishedKey>,
    valid_jobs: VecDeque<String>,
    had_work: bool,
    consecutive_rejects: u32,
    probe: bool,
}

impl Session<'_> {
    async fn send(&mut self, line: &str) -> Result<(), SessionError> {
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.flush().await?;
        Ok(())
    }

    async fn request(
        &mut self,
        method: &str,
        params: Value,
        kind: Pending,
    ) -> Result<(), SessionError> {
        let id = self.next_id;
        self.next_id += 1;
        if self.pending.len() < MAX_PENDING {
            self.pending.insert(id, kind);
        }
        let line = message::request_line(&Id::Num(id), method, params);
        self.send(&line).await
    }

    fn publish(&mut self, board: Option<&WorkBoard>) {
        let (Some(n), Some((en1, en2))) = (self.last_notify.clone(), self.extranonce.clone())
        else {
            return;
        };
        let target = match ShareTarget::from_difficulty(self.difficulty) {
            Ok(t) => t,
            Err(e) => {
                warn!("{}: {e}", self.url);
                return;
            }
        };
        // A pool that repeats a job unchanged must not make the devices start its
        // extranonce2 space over: that would hash the same headers twice (duplicates).
        let mut same_job = (*n).clone();
        same_job.clean_jobs = false;
        let key = (
            same_job,
            en1.clone(),
            en2,
            self.difficulty.to_bits(),
            self.version_mask.filter(|m| *m != 0),
        );
        if self.published.as_ref() == Some(&key) {
            return;
        }
        self.published = Some(key);
        let work = Work {
            pool: self.pool_index,
            session: self.session_id,
            notify: n,
            extranonce1: en1,
            extranonce2_size: en2,
            difficulty: self.difficulty,
            target,
            version_mask: self.version_mask.filter(|m| *m != 0),
            received: Instant::now(),
        };
        if let Some(b) = board {
            self.stats.set_economics(work.economics().ok());
            b.publish(Arc::new(work));
        }
    }

    /// Handles one response; Err ends the session.
    fn on_response(&mut self, r: Response, board: Option<&WorkBoard>) -> Result<(), SessionError> {
        let pending = match &r.id {
            Id::Num(n) => self.pending.remove(n),
            Id::Str(s) => s.parse::<i64>().ok().and_then(|n| self.pending.remove(&n)),
            Id::Null => None,
        };
        let Some(kind) = pending else {
            if let Some(e) = &r.error {
                warn!(
                    "{}: pool error without a request: [{}] {}",
                    self.url, e.code, e.message
                );
            } else {
                debug!("{}: response to unknown id {:?}", self.url, r.id);
            }
            return Ok(());
        };
        match kind {
            Pending::Configure => {
                self.version_mask = match (&r.error, configure_result_mask(&r.result)) {
                    (None, Ok(Some(m))) => {
                        let m = m & self.cfg.version_rolling.unwrap_or(0);
                        info!("{}: version rolling mask {m:08x}", self.url);
                        Some(m)
                    }
                    _ => None,
                };
            }
            Pending::Subscribe => {
                if let Some(e) = r.error {
                    return Err(SessionError::Subscribe(format!(
                        "[{}] {}",
                        e.code, e.message
                    )));
                }
                let s = SubscribeResult::from_result(&r.result)
                    .map_err(|e| SessionError::Subscribe(e.to_string()))?;
                self.extranonce = Some((s.extranonce1, s.extranonce2_size));
                self.publish(board);
            }
            Pending::Authorize => {
                if r.error.is_some() || r.result != Value::Bool(true) {
                    let why = r
                        .error
                        .map(|e| format!("[{}] {}", e.code, e.message))
                        .unwrap_or_else(|| format!("result {}", r.result));
                    return Err(SessionError::Authorize(why));
                }
            }
            Pending::ExtranonceSubscribe => {}
            Pending::Submit { difficulty, slot } => {
                let accepted = r.error.is_none() && r.result == Value::Bool(true);
                let stale = r.error.as_ref().is_some_and(|e| e.is_stale());
                if !stale {
                    self.stats.slot_verdict(slot, accepted);
                }
                self.stats.update(self.pool_index, |c| {
                    if accepted {
                        c.accepted += 1;
                        c.accepted_difficulty += difficulty;
                        c.last_accepted = Some(Instant::now());
                    } else if stale {
                        c.stale += 1;
                    } else {
                        c.rejected += 1;
                    }
                });
                if accepted || stale {
                    self.consecutive_rejects = 0;
                } else {
                    self.consecutive_rejects += 1;
                    let why = r.error.map(|e| e.message).unwrap_or_default();
                    warn!("{}: share rejected: {why}", self.url);
                    if self.consecutive_rejects >= self.cfg.max_consecutive_rejects {
                        return Err(SessionError::Rejects(self.consecutive_rejects));
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_share(&mut self, s: FoundShare) -> Result<(), SessionError> {
        let current = s.pool == self.pool_index && s.session == self.session_id;
        if !current || !self.valid_jobs.contains(&s.job_id) {
            // The job was discarded (clean_jobs, new session): never submit it.
            debug!(
                "{}: dropping share for discarded job {} (session {} vs {})",
                self.url, s.job_id, s.session, self.session_id
            );
            self.stats.update(s.pool, |c| c.stale += 1);
            return Ok(());
        }
        let submit = Submit {
            worker: self.pool.user.clone(),
            job_id: s.job_id,
            extranonce2: s.extranonce2,
            ntime: s.ntime,
            nonce: s.nonce,
            version_bits: s.version_bits,
        };
        self.request(
            "mining.submit",
            submit.to_params(),
            Pending::Submit {
                difficulty: s.difficulty,
                slot: s.slot,
            },
        )
        .await
    }
}

/// What a session's request handler decided.
enum Step {
    Continue,
    End(SessionEnd),
}

async fn recv_share(link: &mut Option<MiningLink<'_>>) -> Option<FoundShare> {
    match link {
        Some(l) => l.shares.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs one session with pool `pool_index` at `url` until it ends. With `link`, work goes to
/// the board and shares are submitted; without, this is a probe that ends [`SessionEnd::Ready`]
/// at the first job.
#[allow(clippy::too_many_arguments)]
pub async fn run_session(
    pool_index: usize,
    session_id: u64,
    pool: &PoolConfig,
    url: &PoolUrl,
    cfg: &ClientConfig,
    stats: &MiningStats,
    mut link: Option<MiningLink<'_>>,
    stop: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let probe = link.is_none();
    let stream = tokio::select! {
        s = connect(url, &cfg.tls, cfg.connect_timeout) => s,
        _ = stopped(stop) => return SessionEnd::Stopped,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            return SessionEnd::Lost {
                error: e.into(),
                had_work: false,
            }
        }
    };
    if !probe {
        stats.update(pool_index, |c| {
            c.connections += 1;
            c.connected_at = Some(Instant::now());
        });
    }
    let (rd, writer) = tokio::io::split(stream);
    let mut lines = LineReader::new(BufReader::new(rd), MAX_LINE_BYTES);
    let mut s = Session {
        pool_index,
        session_id,
        pool,
        url,
        cfg,
        stats,
        writer,
        next_id: 1,
        pending: HashMap::new(),
        extranonce: None,
        difficulty: 1.0,
        version_mask: None,
        last_notify: None,
        published: None,
        valid_jobs: VecDeque::new(),
        had_work: false,
        consecutive_rejects: 0,
        probe,
    };
    let lost = |error: SessionError, had_work: bool| SessionEnd::Lost { error, had_work };
    let start: Result<(), SessionError> = async {
        if let Some(mask) = cfg.version_rolling {
            s.request(
                "mining.configure",
                message::configure_params(mask),
                Pending::Configure,
            )
            .await?;
        }
        s.request("mining.subscribe", json!([cfg.agent]), Pending::Subscribe)
            .await?;
        s.request(
            "mining.authorize",
            json!([pool.user, pool.pass]),
            Pending::Authorize,
        )
        .await?;
        s.request(
            "mining.extranonce.subscribe",
            json!([]),
            Pending::ExtranonceSubscribe,
        )
        .await
    }
    .await;
    if let Err(e) = start {
        return lost(e, false);
    }
    let mut deadline = tokio::time::Instant::now() + cfg.job_timeout;
    loop {
        let board = link.as_ref().map(|l| l.board);
        tokio::select! {
            biased;
            _ = stopped(stop) => return SessionEnd::Stopped,
            line = lines.next_line() => {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => return lost(e.into(), s.had_work),
                };
                let text = match line {
                    Line::Text(t) => t,
                    Line::Eof => return lost(SessionError::Closed, s.had_work),
                    Line::TooLong(n) => {
                        warn!("{url}: skipped a {n}-byte line (limit {MAX_LINE_BYTES})");
                        stats.update(pool_index, |c| c.malformed += 1);
                        continue;
                    }
                    Line::NotUtf8 => {
                        warn!("{url}: skipped a line that is not UTF-8");
                        stats.update(pool_index, |c| c.malformed += 1);
                        continue;
                    }
                };
                let msg = match message::parse_line(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        warn!("{url}: bad message: {e}");
                        stats.update(pool_index, |c| c.malformed += 1);
                        continue;
                    }
                };
                match msg {
                    Message::Response(r) => {
                        if let Err(e) = s.on_response(r, board) {
                            return lost(e, s.had_work);
                        }
                    }
                    Message::Request(req) => {
                        match on_request(&mut s, req, board, &mut deadline).await {
                            Ok(Step::Continue) => {}
                            Ok(Step::End(end)) => return end,
                            Err(e) => return lost(e, s.had_work),
                        }
                    }
                }
            }
            share = recv_share(&mut link) => {
                if let Some(share) = share {
                    if let Err(e) = s.on_share(share).await {
                        return lost(e, s.had_work);
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return lost(SessionError::NoJob(cfg.job_timeout), s.had_work);
            }
        }
    }
}

async fn on_request(
    s: &mut Session<'_>,
    req: message::Request,
    board: Option<&WorkBoard>,
    deadline: &mut tokio::time::Instant,
) -> Result<Step, SessionError> {
    let url = s.url;
    let msg = match ServerMessage::from_request(&req) {
        Ok(m) => m,
        Err(e) => {
            warn!("{url}: bad {}: {e}", req.method);
            s.stats.update(s.pool_index, |c| c.malformed += 1);
            return Ok(Step::Continue);
        }
    };
    match msg {
        ServerMessage::Notify(n) => {
            *deadline = tokio::time::Instant::now() + s.cfg.job_timeout;
            if n.clean_jobs {
                s.valid_jobs.clear();
            }
            s.valid_jobs.retain(|j| *j != n.job_id);
            if s.valid_jobs.len() >= VALID_JOBS {
                s.valid_jobs.pop_front();
            }
            s.valid_jobs.push_back(n.job_id.clone());
            s.last_notify = Some(Arc::new(n));
            s.stats.update(s.pool_index, |c| c.jobs += 1);
            if s.extranonce.is_some() {
                s.had_work = true;
                if s.probe {
                    return Ok(Step::End(SessionEnd::Ready));
                }
                s.publish(board);
            }
        }
        ServerMessage::SetDifficulty(d) => {
            // Applies from the next job: the current one keeps the difficulty it came with.
            info!("{url}: difficulty {d}");
            s.difficulty = d;
        }
        ServerMessage::SetExtranonce {
            extranonce1,
            extranonce2_size,
        } => {
            info!(
                "{url}: new extranonce1 {}",
                super::hex::encode(&extranonce1)
            );
            s.extranonce = Some((extranonce1, extranonce2_size));
        }
        ServerMessage::SetVersionMask(m) => {
            // Only meaningful after mining.configure granted rolling; applies from the next job.
            if s.version_mask.is_some() {
                s.version_mask = s.cfg.version_rolling.map(|ours| ours & m);
            } else {
                debug!("{url}: set_version_mask without negotiated rolling ignored");
            }
        }
        ServerMessage::Reconnect(r) => {
            if let Some(h) = &r.host {
                if !h.eq_ignore_ascii_case(&url.host) {
                    // Following a redirect to another host would let anyone who can inject
                    // one line steal the hash rate; stay with the configured host.
                    warn!("{url}: client.reconnect to other host {h} refused; reconnecting here");
                }
            }
            let to = r
                .port
                .map(|p| url.with_port(p))
                .unwrap_or_else(|| url.clone());
            info!("{url}: pool asked to reconnect to {to} in {} s", r.wait_s);
            return Ok(Step::End(SessionEnd::Reconnect {
                url: to,
                wait: Duration::from_secs(r.wait_s),
            }));
        }
        ServerMessage::ShowMessage(m) => info!("{url}: pool says: {m}"),
        ServerMessage::GetVersion => {
            let line = message::result_line(&req.id, json!(s.cfg.agent));
            s.send(&line).await?;
        }
        ServerMessage::Ping => {
            let line = message::result_line(&req.id, json!("pong"));
            s.send(&line).await?;
        }
        ServerMessage::Unknown(m) => {
            debug!("{url}: ignoring unknown method {m}");
            if req.id != Id::Null {
                let line = message::error_line(&req.id, 20, "method not supported");
                s.send(&line).await?;
            }
        }
    }
    Ok(Step::Continue)
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
