//! The rig's session with its management node: connect, Hello, Heartbeat, bid, fetch
//! geometry, run assignments, commit, upload, prove, record pay; reconnect when it drops.
//!
//! One task owns all rig state ([`Rig`]). Per session, a reader task turns frames into
//! messages on a channel (a frame read is not cancel-safe, so it never sits in a `select!`);
//! the session loop selects over those messages, the heartbeat tick and events from blocking
//! work (geometry parsing, calibration, simulation, proofs). Events survive a dropped
//! session in their channel, so a result finished while disconnected is committed on the
//! next session.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::Engine;
use compushare_protocol::chunk::{Chunk, Chunker};
use compushare_protocol::limits::{MAX_PAYLOAD, PROOFS_PER_MESSAGE};
use compushare_protocol::msg::{
    AckStatus, Assign, Bid, Heartbeat, HistoryProof, ManagerToRig, Offer, RejectReason,
    ResultCommit, RigHello, RigToManager, SampleProof, Welcome, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{ChannelError, Identity};
use compushare_protocol::types::{
    AssignmentId, DeviceInfo, DeviceKind, DeviceStatus, Digest, JobId, PublicKey, Role,
};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::assignment::RunError;
use super::geometry::Fetch;
use super::proofs::{self, Commitments};
use super::rating::{self, RatingHandle};
use super::settings::{RigError, RigOptions, RigSettings};
use super::state::{Payment, Payments};
use super::work::{
    calibrate_job, calibrate_reference, run_assignment, total_memory_bytes, Finished,
};
use crate::{debug, info, warn};

/// Firmware string announced in Hello.
pub const FIRMWARE: &str = concat!("compushare-rig/", env!("CARGO_PKG_VERSION"));

/// One CPU worker device.
#[derive(Debug, Clone)]
struct Device {
    index: u8,
    cores: usize,
    role: Role,
    /// The assignment it runs (or waits geometry for).
    busy: Option<AssignmentId>,
    /// Cube60 histories/s measured at startup.
    reference_rate: u64,
    /// Its share of the machine's memory, bytes.
    memory: u64,
}

/// An assignment accepted and not yet finished.
struct Running {
    assign: Assign,
    cancel: Arc<AtomicBool>,
    started: bool,
}

/// A finished result, kept to resend its commit and answer sample requests.
struct Held {
    commit: ResultCommit,
    /// Sealed tally, kept until the result is verified (re-sent after a reconnect).
    sealed: Vec<u8>,
    commitments: Commitments,
    job: Arc<Job>,
    threads: usize,
}

/// What blocking work reports back.
enum Event {
    Parsed {
        content: Digest,
        result: Result<Arc<Job>, String>,
    },
    Calibrated {
        content: Digest,
        per_core: u64,
    },
    Finished {
        assignment: AssignmentId,
        result: Result<Box<Finished>, RunError>,
    },
    Proofs {
        assignment: AssignmentId,
        result: Result<Vec<HistoryProof>, String>,
    },
}

/// Outbound half of a session, and what it was told.
type Writer = compushare_protocol::secure::SecureWriter<
    embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedWriteHalf>,
>;

/// A transport rig: its devices, state and the events of its blocking work.
pub struct Rig {
    settings: RigSettings,
    identity: Identity,
    devices: Vec<Device>,
    payments: Payments,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    running: HashMap<AssignmentId, Running>,
    held: HashMap<AssignmentId, Held>,
    held_order: VecDeque<AssignmentId>,
    jobs: VecDeque<(Digest, Result<Arc<Job>, String>)>,
    per_core: HashMap<Digest, u64>,
    fetches: HashMap<Digest, Fetch>,
    /// Geometries complete and being parsed: not fetched again meanwhile.
    parsing: HashSet<Digest>,
    /// Offers waiting for geometry or calibration.
    offers: HashMap<JobId, Offer>,
    started: Instant,
    /// Ratings of clients: queued by [`RatingHandle`]s, then waiting for the manager.
    rate_tx: mpsc::UnboundedSender<rating::Request>,
    rate_rx: mpsc::UnboundedReceiver<rating::Request>,
    rated: rating::Pending,
}

/// Parsed geometries kept.
const JOB_CACHE: usize = 4;
/// Geometries fetched at once.
const MAX_FETCHES: usize = 4;
/// Messages buffered from the reader task.
const INBOUND: usize = 64;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Rig {
    /// Prepares a rig: opens STATE_DIR's payment record, splits the cores into CPU devices
    /// and measures each on the reference benchmark (blocking; call before the runtime is
    /// busy, or from `spawn_blocking`).
    pub fn new(settings: RigSettings, identity: Identity) -> Result<Self, RigError> {
        if settings.cpu_devices == 0 {
            return Err(RigError::Settings(
                "CPU_DEVICES is 0: this rig has no transport device (GPU devices come later)"
                    .into(),
            ));
        }
        if settings.name.len() > compushare_protocol::limits::NAME_LEN {
            return Err(RigError::Settings("RIG_NAME longer than 48 bytes".into()));
        }
        let payments = Payments::open(&settings.state_dir)?;
        let cores = settings
            .options
            .cores
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
            .max(1);
        let n = settings.cpu_devices as usize;
        let rate = calibrate_reference(
            cores.div_ceil(n).max(1),
            settings.options.calibration_photons,
        )?;
        let memory = total_memory_bytes();
        let devices = (0..n)
            .map(|i| {
                // Split the cores as evenly as possible; every device gets at least one.
                let c = (cores / n + usize::from(i < cores % n)).max(1);
                Device {
                    index: i as u8,
                    cores: c,
                    role: settings.roles.of(i),
                    busy: None,
                    reference_rate: rate.per_core.saturating_mul(c as u64),
                    memory: memory / n as u64,
                }
            })
            .collect();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (rate_tx, rate_rx) = mpsc::unbounded_channel();
        Ok(Rig {
            settings,
            identity,
            devices,
            payments,
            events_tx,
            events_rx,
            running: HashMap::new(),
            held: HashMap::new(),
            held_order: VecDeque::new(),
            jobs: VecDeque::new(),
            per_core: HashMap::new(),
            fetches: HashMap::new(),
            parsing: HashSet::new(),
            offers: HashMap::new(),
            started: Instant::now(),
            rate_tx,
            rate_rx,
            rated: rating::Pending::default(),
        })
    }

    /// The rig's identity key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public()
    }

    /// A handle that rates the clients whose jobs this rig worked on (usable while `run`
    /// runs, from any task).
    pub fn rating_handle(&self) -> RatingHandle {
        RatingHandle::new(self.rate_tx.clone())
    }

    /// Runs sessions forever, reconnecting with capped, jittered backoff; returns only on a
    /// fatal error (wrong manager key, refused identity, unusable STATE_DIR).
    pub async fn run(mut self) -> Result<(), RigError> {
        let mut attempt: u32 = 0;
        loop {
            let mut welcomed = false;
            match self.session(&mut welcomed).await {
                Ok(()) => info!("manager closed the session"),
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => warn!("{e}"),
            }
            if welcomed {
                attempt = 0;
            }
            let delay = backoff(&self.settings.options, attempt);
            attempt = attempt.saturating_add(1);
            info!("reconnecting in {} ms", delay.as_millis());
            // Work finished meanwhile stays queued in `events_rx` for the next session.
            tokio::time::sleep(delay).await;
        }
    }

    async fn session(&mut self, welcomed: &mut bool) -> Result<(), RigError> {
        let addr = self.settings.manager.clone();
        let channel = connect_tcp(
            addr.as_str(),
            &self.identity,
            &self.settings.manager_key,
            HANDSHAKE_TIMEOUT,
        )
        .await
        .map_err(|e| match e {
            ChannelError::WrongPeerKey { expected, got } => RigError::ManagerKeyMismatch {
                addr: addr.clone(),
                expected,
                got,
            },
            source => RigError::Channel {
                addr: addr.clone(),
                source,
            },
        })?;
        let chan_err = |source| RigError::Channel {
            addr: addr.clone(),
            source,
        };
        let (mut reader, mut writer) = channel.split();
        writer
            .send(&RigToManager::Hello(self.hello()?))
            .await
            .map_err(chan_err)?;
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.recv::<ManagerToRig>())
            .await
            .map_err(|_| RigError::Protocol("no Welcome within the handshake time".into()))?
            .map_err(chan_err)?;
        let welcome: Welcome = match *first {
            ManagerToRig::Welcome(w) => w,
            ManagerToRig::Refused(r) => {
                return Err(RigError::Refused {
                    code: r.code,
                    reason: r.reason.as_str().to_owned(),
                })
            }
            other => {
                return Err(RigError::Protocol(format!(
                    "expected Welcome, got {}",
                    variant(&other)
                )))
            }
        };
        *welcomed = true;
        info!(
            "welcomed by {addr} as {:?} ({:?}), heartbeat every {} s",
            welcome.label.as_str(),
            welcome.trust,
            welcome.heartbeat_s
        );
        let (in_tx, mut in_rx) = mpsc::channel(INBOUND);
        let reader_task = tokio::spawn(async move {
            loop {
                // Boxed by the channel: a message is up to ~60 KiB, so only a pointer sits
                // in each inbound slot.
                let m = reader.recv::<ManagerToRig>().await;
                let stop = matches!(&m, Err(e) if !matches!(e, ChannelError::Codec(_)));
                if in_tx.send(m).await.is_err() || stop {
                    break;
                }
            }
        });
        let result = self.session_loop(&mut writer, &mut in_rx, &welcome).await;
        reader_task.abort();
        // Geometry fetches and offers belong to the session that carried them.
        self.fetches.clear();
        self.offers.clear();
        self.rated.session_ended();
        result.map_err(|e| match e {
            Ended::Channel(source) => chan_err(source),
            Ended::Rig(e) => e,
            Ended::Closed => chan_err(ChannelError::Closed),
        })
    }

    async fn session_loop(
        &mut self,
        w: &mut Writer,
        in_rx: &mut mpsc::Receiver<Result<Box<ManagerToRig>, ChannelError>>,
        welcome: &Welcome,
    ) -> Result<(), Ended> {
        // Results not yet verified are committed again on a new session, received ones too:
        // a manager that restarted may have lost an upload it had acknowledged (it answers a
        // result it still holds with where that stands, and drops the repeated upload).
        let pending: Vec<AssignmentId> = self.held_order.iter().copied().collect();
        for a in pending {
            self.send_result(w, a).await?;
        }
        // Assignments still waiting for geometry need it asked for again.
        let waiting: Vec<Assign> = self
            .running
            .values()
            .filter(|r| !r.started)
            .map(|r| r.assign)
            .collect();
        for a in waiting {
            self.need_geometry(w, a.geometry, a.geometry_len).await?;
        }
        let period = Duration::from_secs(u64::from(welcome.heartbeat_s.max(1)));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                m = in_rx.recv() => match m {
                    None => return Err(Ended::Closed),
                    Some(Ok(msg)) => self.on_message(w, msg).await?,
                    Some(Err(ChannelError::Codec(e))) => warn!("undecodable message from manager: {e}"),
                    Some(Err(e)) => return Err(Ended::Channel(e)),
                },
                _ = tick.tick() => {
                    let hb = self.heartbeat();
                    w.send(&RigToManager::Heartbeat(hb)).await?;
                }
                r = self.rate_rx.recv() => {
                    // Never `None`: the rig holds a sender itself.
                    if let Some(r) = r {
                        w.send(&RigToManager::RateClient { assignment: r.assignment, stars: r.stars }).await?;
                        self.rated.sent(r);
                    }
                }
                ev = self.events_rx.recv() => {
                    if let Some(ev) = ev {
                        self.on_event(w, ev).await?;
                    }
                }
            }
        }
    }

    fn hello(&self) -> Result<RigHello, RigError> {
        let mut devices = heapless::Vec::new();
        for d in &self.devices {
            let info = DeviceInfo {
                index: d.index,
                kind: DeviceKind::Cpu,
                name: name(&format!("cpu{}", d.index)),
                compute_units: d.cores as u32,
                cores: d.cores as u32,
                memory: d.memory,
                hash_rate: 0,
                histories_per_s: d.reference_rate,
            };
            devices
                .push(info)
                .map_err(|_| RigError::Settings("more than 32 devices".into()))?;
        }
        Ok(RigHello {
            version: PROTOCOL_VERSION,
            firmware: {
                let mut fw = heapless::String::new();
                let _ = fw.push_str(FIRMWARE);
                fw
            },
            name: name(&self.settings.name),
            payout: self.settings.payout,
            devices,
        })
    }

    fn heartbeat(&self) -> Heartbeat {
        let mut devices = heapless::Vec::new();
        for d in &self.devices {
            let busy = d.busy.is_some();
            let role = match d.role {
                Role::Auto | Role::Transport => Role::Transport,
                r => r,
            };
            let _ = devices.push(DeviceStatus {
                index: d.index,
                role,
                hash_rate: 0,
                histories_per_s: if busy { d.reference_rate } else { 0 },
                temperature_dc: None,
                power_w: None,
            });
        }
        Heartbeat {
            uptime_s: self.started.elapsed().as_secs(),
            devices,
            vault_used: self.held.len().min(u16::MAX as usize) as u16,
            vault_slots: self.settings.options.max_held.min(u16::MAX as usize) as u16,
        }
    }

    fn job(&self, content: &Digest) -> Option<&Result<Arc<Job>, String>> {
        self.jobs.iter().find(|(c, _)| c == content).map(|(_, j)| j)
    }

    fn eligible(&self, d: &Device) -> bool {
        matches!(d.role, Role::Auto | Role::Transport)
    }

    async fn on_message(&mut self, w: &mut Writer, msg: Box<ManagerToRig>) -> Result<(), Ended> {
        match *msg {
            ManagerToRig::Offer(o) => self.on_offer(w, o).await?,
            ManagerToRig::Assign(a) => self.on_assign(w, a).await?,
            ManagerToRig::GeometryChunk(c) => self.on_geometry_chunk(&c),
            ManagerToRig::SampleRequest {
                assignment,
                photons,
            } => self.on_sample_request(assignment, &photons),
            ManagerToRig::Ack { assignment, status } => {
                debug!("ack {} {:?}", assignment.0, status);
                match status {
                    // The sealed bytes stay until the result is verified: a manager that
                    // restarts may need the upload again (see `session_loop`).
                    AckStatus::Received => {}
                    AckStatus::Verified | AckStatus::Failed | AckStatus::Unknown => {
                        if status == AckStatus::Failed {
                            warn!("assignment {} failed verification", assignment.0);
                        }
                        self.drop_held(assignment);
                    }
                }
            }
            ManagerToRig::PaymentNotice {
                assignment,
                amount,
                spendable,
            } => {
                let p = Payment {
                    unix_s: unix_now(),
                    assignment,
                    amount,
                    spendable,
                };
                let fresh = self.payments.record(p).map_err(|e| Ended::Rig(e.into()))?;
                if fresh {
                    info!(
                        "paid {} for assignment {} ({}); total {}",
                        amount.0,
                        assignment.0,
                        if spendable { "spendable" } else { "held" },
                        self.payments.total()
                    );
                }
                self.drop_held(assignment);
            }
            ManagerToRig::Cancel { assignment } => {
                info!("assignment {} cancelled", assignment.0);
                self.cancel(assignment);
                self.drop_held(assignment);
            }
            ManagerToRig::RoleCommand { device, role } => {
                let targets: Vec<u8> = self
                    .devices
                    .iter()
                    .filter(|d| device.is_none_or(|i| i == d.index))
                    .map(|d| d.index)
                    .collect();
                for i in targets {
                    let mut stop = None;
                    if let Some(d) = self.devices.get_mut(i as usize) {
                        d.role = role;
                        if !matches!(role, Role::Auto | Role::Transport) {
                            stop = d.busy;
                        }
                    }
                    if let Some(a) = stop {
                        self.cancel(a);
                    }
                    info!("device {i} role set to {role:?}");
                }
            }
            ManagerToRig::PriceAnnounce { price_per_unit, .. } => {
                debug!("price announced: {}", price_per_unit.0);
            }
            ManagerToRig::ConsoleCommand { request, .. } => {
                // The operator console arrives with a later issue; say so instead of hanging.
                let mut text = heapless::String::new();
                let _ = text.push_str("console not available on this firmware");
                w.send(&RigToManager::ConsoleReply(
                    compushare_protocol::msg::ConsoleReply {
                        request,
                        ok: false,
                        text,
                    },
                ))
                .await?;
            }
            ManagerToRig::Rated {
                assignment,
                outcome,
            } => {
                info!("rating for assignment {}: {outcome:?}", assignment.0);
                self.rated.answered(assignment, outcome);
            }
            ManagerToRig::Welcome(_) | ManagerToRig::Refused(_) => {
                return Err(Ended::Rig(RigError::Protocol(
                    "Welcome/Refused in the middle of a session".into(),
                )));
            }
        }
        Ok(())
    }

    fn idle_devices(&self) -> Vec<Device> {
        self.devices
            .iter()
            .filter(|d| d.busy.is_none() && self.eligible(d))
            .cloned()
            .collect()
    }

    async fn on_offer(&mut self, w: &mut Writer, o: Offer) -> Result<(), Ended> {
        if o.price_per_unit < self.settings.options.min_price || self.idle_devices().is_empty() {
            debug!("offer for job {} declined", o.job.0);
            return Ok(());
        }
        if self.per_core.contains_key(&o.geometry) {
            return self.bid(w, &o).await;
        }
        if self.offers.len() >= 64 {
            return Ok(());
        }
        self.offers.insert(o.job, o);
        match self.job(&o.geometry) {
            Some(Ok(job)) => {
                let job = job.clone();
                self.spawn_calibration(o.geometry, job);
                Ok(())
            }
            Some(Err(_)) => {
                self.offers.remove(&o.job);
                Ok(())
            }
            None => self.need_geometry(w, o.geometry, o.geometry_len).await,
        }
    }

    async fn bid(&mut self, w: &mut Writer, o: &Offer) -> Result<(), Ended> {
        let per_core = self.per_core.get(&o.geometry).copied().unwrap_or(0);
        for d in self.idle_devices() {
            let bid = Bid {
                job: o.job,
                device: d.index,
                cores: d.cores as u32,
                histories_per_s: per_core.saturating_mul(d.cores as u64).max(1),
                min_price: self.settings.options.min_price,
            };
            debug!("bid job {} device {}", o.job.0, d.index);
            w.send(&RigToManager::Bid(bid)).await?;
        }
        Ok(())
    }

    async fn on_assign(&mut self, w: &mut Writer, a: Assign) -> Result<(), Ended> {
        let reject = match self.devices.get(a.device as usize) {
            None => Some(RejectReason::NoSuchDevice),
            Some(d) if d.role == Role::Off => Some(RejectReason::NoSuchDevice),
            Some(d) if !self.eligible(d) || d.busy.is_some() => Some(RejectReason::Busy),
            Some(_)
                if self.running.contains_key(&a.assignment)
                    || self.held.contains_key(&a.assignment) =>
            {
                Some(RejectReason::Busy)
            }
            Some(_)
                if a.photons.count == 0
                    || a.photons.start.checked_add(a.photons.count).is_none()
                    || a.photons.count > 1 << 40 =>
            {
                Some(RejectReason::Unsupported)
            }
            Some(_) if a.geometry_len > self.settings.options.max_geometry_bytes => {
                Some(RejectReason::OutOfMemory)
            }
            Some(_) => None,
        };
        if let Some(reason) = reject {
            info!("assignment {} rejected: {reason:?}", a.assignment.0);
            return Ok(w
                .send(&RigToManager::AssignmentRejected {
                    assignment: a.assignment,
                    reason,
                })
                .await?);
        }
        if matches!(self.job(&a.geometry), Some(Err(_))) {
            return Ok(w
                .send(&RigToManager::AssignmentRejected {
                    assignment: a.assignment,
                    reason: RejectReason::Unsupported,
                })
                .await?);
        }
        if let Some(d) = self.devices.get_mut(a.device as usize) {
            d.busy = Some(a.assignment);
        }
        self.running.insert(
            a.assignment,
            Running {
                assign: a,
                cancel: Arc::new(AtomicBool::new(false)),
                started: false,
            },
        );
        w.send(&RigToManager::AssignmentAccepted {
            assignment: a.assignment,
        })
        .await?;
        info!(
            "assignment {}: job {} photons [{}, +{}) on device {}",
            a.assignment.0, a.job.0, a.photons.start, a.photons.count, a.device
        );
        match self.job(&a.geometry) {
            Some(Ok(job)) => {
                let job = job.clone();
                self.start(a.assignment, job);
                Ok(())
            }
            _ => self.need_geometry(w, a.geometry, a.geometry_len).await,
        }
    }

    async fn need_geometry(
        &mut self,
        w: &mut Writer,
        content: Digest,
        len: u32,
    ) -> Result<(), Ended> {
        if self.fetches.contains_key(&content)
            || self.parsing.contains(&content)
            || self.job(&content).is_some()
        {
            return Ok(());
        }
        if len > self.settings.options.max_geometry_bytes
            || len > MAX_PAYLOAD
            || self.fetches.len() >= MAX_FETCHES
        {
            warn!("geometry of {len} bytes not fetched (limit or too many fetches)");
            return Ok(());
        }
        self.fetches.insert(content, Fetch::new(content, len));
        debug!("fetching geometry of {len} bytes");
        Ok(w.send(&RigToManager::GeometryRequest { content }).await?)
    }

    fn on_geometry_chunk(&mut self, c: &Chunk) {
        let Some(f) = self.fetches.get_mut(&c.content) else {
            debug!("geometry chunk for nothing asked");
            return;
        };
        match f.accept(c) {
            Err(e) => {
                warn!("geometry chunk ignored: {e}");
                return;
            }
            Ok(false) => return,
            Ok(true) => {}
        }
        let Some(f) = self.fetches.remove(&c.content) else {
            return;
        };
        let content = c.content;
        self.parsing.insert(content);
        let tx = self.events_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = f.into_job();
            let _ = tx.send(Event::Parsed { content, result });
        });
    }

    fn spawn_calibration(&self, content: Digest, job: Arc<Job>) {
        let tx = self.events_tx.clone();
        let photons = self.settings.options.calibration_photons.max(1);
        let threads = self.devices.first().map(|d| d.cores).unwrap_or(1);
        tokio::task::spawn_blocking(move || {
            let per_core = calibrate_job(&job, photons, threads);
            let _ = tx.send(Event::Calibrated { content, per_core });
        });
    }

    fn start(&mut self, id: AssignmentId, job: Arc<Job>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        r.started = true;
        let a = r.assign;
        let cancel = r.cancel.clone();
        let threads = self
            .devices
            .get(a.device as usize)
            .map(|d| d.cores)
            .unwrap_or(1);
        let opts = self.settings.options.clone();
        let manager_key = self.settings.manager_key;
        let tx = self.events_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = run_assignment(&a, &job, threads, &opts, &manager_key, &cancel);
            let _ = tx.send(Event::Finished {
                assignment: a.assignment,
                result,
            });
        });
    }

    fn cancel(&mut self, id: AssignmentId) {
        if let Some(r) = self.running.remove(&id) {
            r.cancel.store(true, Ordering::Relaxed);
            self.free_device(id);
        }
    }

    fn free_device(&mut self, id: AssignmentId) {
        for d in &mut self.devices {
            if d.busy == Some(id) {
                d.busy = None;
            }
        }
    }

    fn drop_held(&mut self, id: AssignmentId) {
        self.held.remove(&id);
        self.held_order.retain(|a| *a != id);
    }

    fn on_sample_request(&mut self, id: AssignmentId, photons: &[u64]) {
        let Some(h) = self.held.get(&id) else {
            warn!(
                "sample request for assignment {} that the rig does not hold",
                id.0
            );
            return;
        };
        let c = h.commitments.clone();
        let job = h.job.clone();
        let threads = h.threads;
        let fabricate = self.settings.options.fabricate;
        let photons = photons.to_vec();
        let tx = self.events_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = Engine::new(&job).map_err(|e| e.to_string()).and_then(|e| {
                proofs::prove(&e, &c, &photons, threads, fabricate).map_err(|e| e.to_string())
            });
            let _ = tx.send(Event::Proofs {
                assignment: id,
                result,
            });
        });
    }

    async fn on_event(&mut self, w: &mut Writer, ev: Event) -> Result<(), Ended> {
        match ev {
            Event::Parsed { content, result } => {
                self.parsing.remove(&content);
                if let Err(e) = &result {
                    warn!("geometry refused: {e}");
                }
                if self.jobs.len() >= JOB_CACHE {
                    self.jobs.pop_front();
                }
                self.jobs.push_back((content, result.clone()));
                let waiting: Vec<AssignmentId> = self
                    .running
                    .iter()
                    .filter(|(_, r)| !r.started && r.assign.geometry == content)
                    .map(|(id, _)| *id)
                    .collect();
                for id in waiting {
                    match &result {
                        Ok(job) => self.start(id, job.clone()),
                        Err(_) => {
                            self.cancel(id);
                            w.send(&RigToManager::AssignmentRejected {
                                assignment: id,
                                reason: RejectReason::Unsupported,
                            })
                            .await?;
                        }
                    }
                }
                let offered = self.offers.values().any(|o| o.geometry == content);
                match result {
                    Ok(job) if offered => self.spawn_calibration(content, job),
                    _ => self.offers.retain(|_, o| o.geometry != content),
                }
            }
            Event::Calibrated { content, per_core } => {
                self.per_core.insert(content, per_core);
                let offers: Vec<Offer> = self
                    .offers
                    .values()
                    .filter(|o| o.geometry == content)
                    .copied()
                    .collect();
                self.offers.retain(|_, o| o.geometry != content);
                for o in offers {
                    self.bid(w, &o).await?;
                }
            }
            Event::Finished { assignment, result } => {
                if self.running.remove(&assignment).is_none() {
                    // Cancelled meanwhile: the result is not wanted.
                    return Ok(());
                }
                self.free_device(assignment);
                match result {
                    Ok(f) => {
                        info!(
                            "assignment {} done: {} histories in {} ms",
                            assignment.0, f.commit.histories, f.commit.stats.elapsed_ms
                        );
                        while self.held.len() >= self.settings.options.max_held.max(1) {
                            match self.held_order.pop_front() {
                                Some(old) => {
                                    self.held.remove(&old);
                                }
                                None => break,
                            }
                        }
                        let f = *f;
                        self.held.insert(
                            assignment,
                            Held {
                                commit: f.commit,
                                sealed: f.sealed,
                                commitments: f.commitments,
                                job: f.job,
                                threads: f.threads,
                            },
                        );
                        self.held_order.push_back(assignment);
                        self.send_result(w, assignment).await?;
                    }
                    Err(e) => {
                        warn!("assignment {} failed: {e}", assignment.0);
                        w.send(&RigToManager::AssignmentRejected {
                            assignment,
                            reason: RejectReason::Unsupported,
                        })
                        .await?;
                    }
                }
            }
            Event::Proofs { assignment, result } => match result {
                Ok(proofs) => {
                    for part in proofs.chunks(PROOFS_PER_MESSAGE) {
                        let mut v = heapless::Vec::new();
                        for p in part {
                            let _ = v.push(p.clone());
                        }
                        w.send(&RigToManager::SampleProof(SampleProof {
                            assignment,
                            proofs: v,
                        }))
                        .await?;
                    }
                }
                Err(e) => warn!("proofs for assignment {} failed: {e}", assignment.0),
            },
        }
        Ok(())
    }

    async fn send_result(&mut self, w: &mut Writer, id: AssignmentId) -> Result<(), Ended> {
        let Some(h) = self.held.get(&id) else {
            return Ok(());
        };
        w.send(&RigToManager::ResultCommit(h.commit)).await?;
        let chunker = Chunker::new(&h.sealed)
            .map_err(|e| Ended::Rig(RigError::Protocol(format!("sealed result: {e:?}"))))?;
        for chunk in chunker {
            w.send(&RigToManager::ResultChunk(chunk)).await?;
        }
        Ok(())
    }
}

/// How a session loop ended.
enum Ended {
    Channel(ChannelError),
    Rig(RigError),
    Closed,
}

impl From<ChannelError> for Ended {
    fn from(e: ChannelError) -> Self {
        Ended::Channel(e)
    }
}

/// Reconnect delay: `backoff_min * 2^attempt`, capped at `backoff_max`, then scaled by a
/// jitter in [0.5, 1.0) so that rigs dropped together do not reconnect together.
pub fn backoff(opts: &RigOptions, attempt: u32) -> Duration {
    let base = opts
        .backoff_min
        .saturating_mul(1u32 << attempt.min(20))
        .min(opts.backoff_max);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = Sha256::new()
        .chain_update(nanos.to_le_bytes())
        .chain_update(attempt.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let frac = f64::from(h[0]) / 512.0 + 0.5;
    base.mul_f64(frac)
}

use compushare_protocol::types::bounded as name;

fn variant(m: &ManagerToRig) -> &'static str {
    match m {
        ManagerToRig::Refused(_) => "Refused",
        ManagerToRig::Welcome(_) => "Welcome",
        ManagerToRig::PriceAnnounce { .. } => "PriceAnnounce",
        ManagerToRig::Assign(_) => "Assign",
        ManagerToRig::GeometryChunk(_) => "GeometryChunk",
        ManagerToRig::SampleRequest { .. } => "SampleRequest",
        ManagerToRig::Ack { .. } => "Ack",
        ManagerToRig::RoleCommand { .. } => "RoleCommand",
        ManagerToRig::PaymentNotice { .. } => "PaymentNotice",
        ManagerToRig::ConsoleCommand { .. } => "ConsoleCommand",
        ManagerToRig::Cancel { .. } => "Cancel",
        ManagerToRig::Offer(_) => "Offer",
        ManagerToRig::Rated { .. } => "Rated",
    }
}
