//! The rig's session with its management node: connect, Hello, heartbeats, offers and bids,
//! assignments handed to devices, results delivered from the vault, sample proofs, payments;
//! reconnect with capped, jittered backoff when it drops.
//!
//! One task owns the session's state (vault, assignments, offers, geometries, payments) and
//! keeps it across connections: a result finished while the manager is unreachable waits
//! sealed in the vault and is sent on the next session, so none is lost while the rig stays
//! up. Per connection, a reader task turns frames into messages on a channel (a frame read is
//! not cancel-safe, so it never sits in a `select!`); the loop selects over those messages,
//! worker events, orders from the rig core, blocking work coming back (geometry parses,
//! calibrations, proofs), ratings and its timers. Between connections it keeps taking worker
//! events and orders, so devices never wait on the network.
//!
//! Which devices take paid work is the rig core's decision (its scheduler), passed in as
//! stances; this session bids and accepts only for devices in the transport role, and tells
//! the core what the best open offer would pay each device.
//!
//! Bounded channels: [`INBOUND`] messages from the reader task (it waits when full, so the
//! socket applies back-pressure to the manager); [`BLOCKING`] results of blocking work (the
//! blocking threads wait when full); [`CTL_QUEUE`] orders from the core (the core never
//! waits: an order that finds it full is dropped and counted in the log: stances come again
//! at the next evaluation, and an assignment whose abandonment was dropped is given back by
//! the manager at its deadline); [`CONSOLE_QUEUE`] console lines for the core (a line that
//! finds it full is answered "busy").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use compushare_kernels::transport::tally_ops::tally_cells;
use compushare_protocol::chunk::{Chunk, Chunker};
use compushare_protocol::limits::{CONSOLE_LINE, CONSOLE_REPLY, PROOFS_PER_MESSAGE};
use compushare_protocol::msg::{
    AckStatus, Assign, Bid, ConsoleReply, Heartbeat, HistoryProof, ManagerToRig, Offer,
    RejectReason, RigHello, RigToManager, SampleProof, Welcome, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::seal::SEAL_BOX_OVERHEAD;
use compushare_protocol::secure::{ChannelError, Identity};
use compushare_protocol::types::{
    bounded, AssignmentId, DeviceInfo, DeviceStatus, Digest, PublicKey,
};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::held::{Assignments, Done, Running};
use super::jobs::{Jobs, Need, Parsed};
use super::offers::Offers;
use super::rating;
use super::state::{Payment, Payments};
use super::work::assignment_job;
use crate::command::{Command, CommandTx};
use crate::device::calibrate;
use crate::scheduler::{Revenue, Stance};
use crate::settings::RigError;
use crate::status::{LinkState, StatusRx};
use crate::stratum::board::WorkBoard;
use crate::sync::{lock, unix_now};
use crate::transport::assignment::RunError;
use crate::vault::{Vault, VaultStats};
use crate::worker::{Cells, HandError, TransportTask, WorkerEvent};
use crate::{debug, info, warn};

/// Messages buffered from the reader task.
pub const INBOUND: usize = 64;
/// Results of blocking work buffered.
pub const BLOCKING: usize = 32;
/// Orders from the rig core buffered.
pub const CTL_QUEUE: usize = 32;
/// Console lines from the manager buffered for the rig core (more are answered "busy").
pub const CONSOLE_QUEUE: usize = 8;

/// Session tunables (library options; rig.conf sets none of these).
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Lowest price per cost unit the rig bids for.
    pub min_price: compushare_protocol::types::Amount,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Fixed proof block size (log2 photons); `None` sizes blocks from the assignment.
    pub block_log2: Option<u32>,
    /// Largest geometry the rig fetches, bytes.
    pub max_geometry_bytes: u32,
    /// Finished results kept for sample requests.
    pub max_done: usize,
    /// Photons of a job's calibration.
    pub calibration_photons: u64,
    /// How long an offer stays open after this rig's last assignment of it ended.
    pub offer_linger: Duration,
    /// How long an offer stays open without any sign (no assignment).
    pub offer_ttl: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            min_price: compushare_protocol::types::Amount(1),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            block_log2: None,
            max_geometry_bytes: 64 * 1024 * 1024,
            max_done: 64,
            calibration_photons: 2048,
            offer_linger: Duration::from_secs(5),
            offer_ttl: Duration::from_secs(60),
        }
    }
}

/// Who and where the manager is.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// `host:port`.
    pub addr: String,
    /// Its pinned static key.
    pub key: PublicKey,
    /// rig.conf's `FARM_KEY`: the farm to enrol in (sent in Hello).
    pub farm: Option<compushare_protocol::sheet::FarmKey>,
}

/// Orders from the rig core.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionCtl {
    /// The devices' roles after an evaluation.
    Stances(Vec<Stance>),
    /// The answer to a console line the manager sent.
    Console {
        request: u32,
        ok: bool,
        text: String,
    },
    /// The device's worker was replaced (watchdog) or the device disabled or pinned off: its
    /// assignment is abandoned.
    Abandon { device: usize },
    /// What became of flight sheet `version`: applied, or refused with the reason.
    Sheet {
        version: u64,
        result: Result<(), String>,
    },
    /// A new lowest price per cost unit (a flight sheet's MIN_PRICE): bids from now on.
    MinPrice(compushare_protocol::types::Amount),
    /// A new payout account (a flight sheet's PAYOUT): announced in the next Hello, so the
    /// session reconnects.
    Payout(PublicKey),
}

/// The latest flight sheet from the manager, for the rig core (only the newest matters, so a
/// watch: a sheet superseded before the core read it is never applied).
pub type SheetTx = tokio::sync::watch::Sender<Option<Arc<compushare_protocol::sheet::FlightSheet>>>;
/// The core's side of [`SheetTx`].
pub type SheetRx =
    tokio::sync::watch::Receiver<Option<Arc<compushare_protocol::sheet::FlightSheet>>>;

/// A console line from the manager for the rig core to answer.
#[derive(Debug)]
pub struct ConsoleLine {
    pub request: u32,
    pub line: String,
}

/// What the session shows the rig core (and, through it, the operator).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    pub link: LinkState,
    pub credit_msat: Option<u64>,
    pub results_delivered: u64,
    /// What the best open offer would pay each device (index = device).
    pub transport: Vec<Revenue>,
    pub vault: VaultStats,
    /// Paid since the record began, micro-credits.
    pub paid_micro: u64,
}

/// Shared view.
pub type SharedView = Arc<Mutex<SessionView>>;

/// Results of blocking work.
enum Blocking {
    Parsed {
        content: Digest,
        result: Parsed,
    },
    Calibrated {
        content: Digest,
        per_core: f64,
    },
    Proofs {
        assignment: AssignmentId,
        result: Result<Vec<HistoryProof>, String>,
    },
}

/// Outbound half of a connection.
type Writer = compushare_protocol::secure::SecureWriter<
    embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedWriteHalf>,
>;

/// Where handlers send: the connection's writer, or nowhere between connections.
struct Link<'a>(Option<&'a mut Writer>);

impl Link<'_> {
    async fn send(&mut self, m: &RigToManager) -> Result<(), ChannelError> {
        match &mut self.0 {
            Some(w) => w.send(m).await,
            None => Ok(()),
        }
    }

    fn up(&self) -> bool {
        self.0.is_some()
    }
}

/// How a connection ended.
enum Ended {
    Channel(ChannelError),
    Rig(RigError),
}

impl From<ChannelError> for Ended {
    fn from(e: ChannelError) -> Self {
        Ended::Channel(e)
    }
}

/// Everything the session is made of (built by the rig core).
pub struct SessionParts {
    pub manager: ManagerSettings,
    pub name: String,
    pub payout: PublicKey,
    pub identity: Arc<Identity>,
    pub hello_devices: Vec<DeviceInfo>,
    pub cells: Cells,
    pub board: Arc<WorkBoard>,
    pub vault: Vault,
    pub payments: Payments,
    pub options: SessionOptions,
    pub events: mpsc::Receiver<WorkerEvent>,
    pub ctl: mpsc::Receiver<SessionCtl>,
    pub console: mpsc::Sender<ConsoleLine>,
    /// Flight sheets from the manager, for the core.
    pub sheets: SheetTx,
    /// The sheet version the rig holds (announced in Hello).
    pub sheet_version: Option<u64>,
    /// Where a failed calibration of an offer's job is counted.
    pub calibration: Arc<calibrate::CalibrationFailures>,
    pub commands: CommandTx,
    pub status: StatusRx,
    pub ratings: mpsc::Receiver<rating::Request>,
    pub view: SharedView,
    /// The devices' roles at start.
    pub stances: Vec<Stance>,
    /// Woken when what transport would pay a device starts or stops (the core evaluates at
    /// once instead of at its next tick).
    pub changed: Arc<tokio::sync::Notify>,
    pub epoch: Instant,
}

/// The session task's state.
pub struct Session {
    p: SessionParts,
    jobs: Jobs,
    offers: Offers,
    assignments: Assignments,
    rated: rating::Pending,
    work_tx: mpsc::Sender<Blocking>,
    work_rx: mpsc::Receiver<Blocking>,
    stances: Vec<Stance>,
    credit_msat: u64,
    delivered: u64,
}

impl Session {
    pub fn new(p: SessionParts) -> Session {
        let (work_tx, work_rx) = mpsc::channel(BLOCKING);
        let max_done = p.options.max_done;
        let stances = p.stances.clone();
        let s = Session {
            p,
            jobs: Jobs::default(),
            offers: Offers::default(),
            assignments: Assignments::new(max_done),
            rated: rating::Pending::default(),
            work_tx,
            work_rx,
            stances,
            credit_msat: 1,
            delivered: 0,
        };
        s.publish(false);
        s
    }

    fn now(&self) -> Duration {
        self.p.epoch.elapsed()
    }

    /// Runs sessions until a fatal error (wrong manager key, refused identity, unusable
    /// STATE_DIR), reconnecting otherwise.
    pub async fn run(mut self) -> Result<(), RigError> {
        let mut attempt: u32 = 0;
        loop {
            self.set_link(LinkState::Connecting);
            let mut welcomed = false;
            let err = match self.connection(&mut welcomed).await {
                Ok(()) => "manager closed the session".to_owned(),
                Err(e) if e.is_fatal() => {
                    self.set_link(LinkState::Down {
                        error: e.to_string(),
                        retry_in_s: 0,
                    });
                    return Err(e);
                }
                Err(e) => e.to_string(),
            };
            warn!("{err}");
            self.offers.session_ended();
            self.jobs.session_ended();
            self.rated.session_ended();
            self.publish(false);
            if welcomed {
                attempt = 0;
            }
            let delay = backoff(&self.p.options, attempt);
            attempt = attempt.saturating_add(1);
            info!("reconnecting in {} ms", delay.as_millis());
            self.set_link(LinkState::Down {
                error: err,
                retry_in_s: delay.as_secs(),
            });
            self.offline(delay).await?;
        }
    }

    /// Waits `delay`, meanwhile taking worker events and orders (nothing is sent).
    async fn offline(&mut self, delay: Duration) -> Result<(), RigError> {
        let until = tokio::time::Instant::now() + delay;
        let mut link = Link(None);
        loop {
            let r = tokio::select! {
                _ = tokio::time::sleep_until(until) => return Ok(()),
                Some(ev) = self.p.events.recv() => self.on_worker(&mut link, ev).await,
                Some(c) = self.p.ctl.recv() => self.on_ctl(&mut link, c).await,
                Some(b) = self.work_rx.recv() => self.on_blocking(&mut link, b).await,
            };
            if let Err(Ended::Rig(e)) = r {
                return Err(e);
            }
        }
    }

    async fn connection(&mut self, welcomed: &mut bool) -> Result<(), RigError> {
        let addr = self.p.manager.addr.clone();
        let channel = connect_tcp(
            addr.as_str(),
            &self.p.identity,
            &self.p.manager.key,
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
        self.credit_msat = welcome.credit_msat.max(1);
        info!(
            "welcomed by {addr} as {:?} ({:?}), heartbeat every {} s, 1 credit = {} msat",
            welcome.label.as_str(),
            welcome.trust,
            welcome.heartbeat_s,
            self.credit_msat
        );
        let since = Instant::now();
        self.set_link(LinkState::Connected { for_s: 0 });
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
        let result = self
            .connected(&mut writer, &mut in_rx, &welcome, since)
            .await;
        reader_task.abort();
        result.map_err(|e| match e {
            Ended::Channel(source) => chan_err(source),
            Ended::Rig(e) => e,
        })
    }

    async fn connected(
        &mut self,
        w: &mut Writer,
        in_rx: &mut mpsc::Receiver<Result<Box<ManagerToRig>, ChannelError>>,
        welcome: &Welcome,
        since: Instant,
    ) -> Result<(), Ended> {
        let mut link = Link(Some(w));
        // Results the manager has not acknowledged are delivered again on a new session.
        let waiting: Vec<AssignmentId> = self.p.vault.waiting().collect();
        if !waiting.is_empty() {
            info!(
                "delivering {} result(s) held in the vault: {:?}",
                waiting.len(),
                waiting.iter().map(|a| a.0).collect::<Vec<_>>()
            );
        }
        for a in waiting {
            self.send_result(&mut link, a).await?;
        }
        // Assignments still waiting for geometry need it asked for again.
        for a in self.assignments.waiting_for(None) {
            self.need_geometry(&mut link, a.geometry, a.geometry_len)
                .await?;
        }
        let period = Duration::from_secs(u64::from(welcome.heartbeat_s.max(1)));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                m = in_rx.recv() => match m {
                    None => return Err(Ended::Channel(ChannelError::Closed)),
                    Some(Ok(msg)) => self.on_message(&mut link, msg).await?,
                    Some(Err(ChannelError::Codec(e))) => warn!("undecodable message from manager: {e}"),
                    Some(Err(e)) => return Err(Ended::Channel(e)),
                },
                _ = beat.tick() => {
                    let hb = self.heartbeat();
                    link.send(&RigToManager::Heartbeat(hb)).await?;
                }
                _ = tick.tick() => {
                    self.set_link(LinkState::Connected { for_s: since.elapsed().as_secs() });
                    let gone = self.offers.expire(self.now(), self.p.options.offer_ttl);
                    for j in gone {
                        info!("offer for job {} closed (no further work for this rig)", j.0);
                    }
                    self.redispatch(&mut link).await?;
                    self.try_bids(&mut link).await?;
                    self.publish(true);
                }
                Some(r) = self.p.ratings.recv() => {
                    link.send(&RigToManager::RateClient { assignment: r.assignment, stars: r.stars }).await?;
                    self.rated.sent(r);
                }
                Some(ev) = self.p.events.recv() => self.on_worker(&mut link, ev).await?,
                Some(c) = self.p.ctl.recv() => self.on_ctl(&mut link, c).await?,
                Some(b) = self.work_rx.recv() => self.on_blocking(&mut link, b).await?,
            }
        }
    }

    fn set_link(&self, state: LinkState) {
        lock(&self.p.view).link = state;
    }

    /// Publishes what the core needs: per-device transport revenue, vault, earnings.
    fn publish(&self, connected: bool) {
        let vault = self.p.vault.stats();
        let transport: Vec<Revenue> = self
            .p
            .cells
            .iter()
            .map(|c| {
                let desc = c.device.describe();
                if let Some(why) = desc.no_paid_transport {
                    return Revenue::Unavailable(why);
                }
                if !connected {
                    return Revenue::Unavailable("manager not connected");
                }
                if self.p.vault.free() == 0 && self.assignments.on_device(c.index as u8).is_none() {
                    return Revenue::Unavailable("vault full");
                }
                self.offers.best(c.index, desc.cores, self.credit_msat)
            })
            .collect();
        let mut v = lock(&self.p.view);
        let flipped = v.transport.len() != transport.len()
            || v.transport
                .iter()
                .zip(&transport)
                .any(|(a, b)| a.paying().is_some() != b.paying().is_some());
        if flipped {
            self.p.changed.notify_one();
        }
        v.transport = transport;
        v.vault = vault;
        v.credit_msat = connected.then_some(self.credit_msat).or(v.credit_msat);
        v.results_delivered = self.delivered;
        v.paid_micro = self.p.payments.total();
    }

    fn hello(&self) -> Result<RigHello, RigError> {
        let mut devices = heapless::Vec::new();
        for d in &self.p.hello_devices {
            devices
                .push(d.clone())
                .map_err(|_| RigError::Settings("more than 32 devices".into()))?;
        }
        Ok(RigHello {
            version: PROTOCOL_VERSION,
            firmware: bounded(crate::rig::FIRMWARE),
            name: bounded(&self.p.name),
            payout: self.p.payout,
            devices,
            farm: self.p.manager.farm,
            sheet: self.p.sheet_version,
        })
    }

    fn heartbeat(&self) -> Heartbeat {
        let status = self.p.status.borrow().clone();
        let mut devices = heapless::Vec::new();
        for d in &status.devices {
            let _ = devices.push(DeviceStatus {
                index: d.index,
                role: d.role,
                hash_rate: d.hash_rate as u64,
                histories_per_s: d.histories_per_s as u64,
                temperature_dc: d.temperature_dc,
                power_w: d.power_w,
            });
        }
        let v = self.p.vault.stats();
        Heartbeat {
            uptime_s: status.uptime_s,
            devices,
            vault_used: v.used.min(u32::from(u16::MAX)) as u16,
            vault_slots: v.slots.min(u32::from(u16::MAX)) as u16,
        }
    }

    async fn on_message(
        &mut self,
        link: &mut Link<'_>,
        msg: Box<ManagerToRig>,
    ) -> Result<(), Ended> {
        match *msg {
            ManagerToRig::Offer(o) => self.on_offer(link, o).await?,
            ManagerToRig::Assign(a) => self.on_assign(link, a).await?,
            ManagerToRig::GeometryChunk(c) => self.on_geometry_chunk(&c),
            ManagerToRig::SampleRequest {
                assignment,
                photons,
            } => self.on_sample_request(assignment, &photons),
            ManagerToRig::Ack { assignment, status } => {
                debug!("ack {} {:?}", assignment.0, status);
                match status {
                    // The sealed result stays until the manager settles it (see the vault).
                    AckStatus::Received => {
                        if self.p.vault.mark_received(assignment) {
                            self.delivered += 1;
                            info!("result of assignment {} delivered", assignment.0);
                        }
                    }
                    AckStatus::Verified | AckStatus::Failed | AckStatus::Unknown => {
                        if status == AckStatus::Failed {
                            warn!("assignment {} failed verification", assignment.0);
                        }
                        if status == AckStatus::Unknown {
                            // The manager does not hold it (any more): stop work on it.
                            info!(
                                "assignment {} unknown to the manager: dropped",
                                assignment.0
                            );
                            self.assignments.end(assignment);
                        }
                        self.assignments.settle(assignment);
                        self.release(assignment);
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
                let fresh = self
                    .p
                    .payments
                    .record(p)
                    .map_err(|e| Ended::Rig(e.into()))?;
                if fresh {
                    info!(
                        "paid {} for assignment {} ({}); total {}",
                        amount.0,
                        assignment.0,
                        if spendable { "spendable" } else { "held" },
                        self.p.payments.total()
                    );
                }
                self.assignments.settle(assignment);
                self.release(assignment);
            }
            ManagerToRig::Cancel { assignment } => {
                info!("assignment {} cancelled", assignment.0);
                if let Some(r) = self.assignments.end(assignment) {
                    self.offers
                        .ended(r.assign.job, self.now(), self.p.options.offer_linger);
                }
                self.assignments.settle(assignment);
                // A reserved slot whose device never got the buffer, or a sealed result.
                self.p.vault.release(assignment);
            }
            ManagerToRig::RoleCommand { device, role } => {
                // An order from the manager's operator: a pin, like the console's. The core
                // applies it and queues the new roles before it answers (it never waits on
                // this session), so taking them at once means the next message already sees
                // the pin.
                if let Err(e) = self.p.commands.call(Command::Role { device, role }).await {
                    warn!("manager's role command refused: {e}");
                }
                while let Ok(c) = self.p.ctl.try_recv() {
                    self.on_ctl(link, c).await?;
                }
            }
            ManagerToRig::CreditValue { credit_msat } => {
                // Transport revenue is recomputed in this unit from the next status update,
                // so roles follow a changed credit value without a new session.
                self.credit_msat = credit_msat.max(1);
                info!(
                    "manager's credit value: 1 credit = {} msat",
                    self.credit_msat
                );
            }
            ManagerToRig::PriceAnnounce { price_per_unit, .. } => {
                debug!("price announced: {}", price_per_unit.0);
                self.offers.reprice(price_per_unit);
            }
            ManagerToRig::ConsoleCommand { request, line } => {
                let l = ConsoleLine {
                    request,
                    line: line.as_str().to_owned(),
                };
                if self.p.console.try_send(l).is_err() {
                    self.console_reply(link, request, false, "busy, try again")
                        .await?;
                }
            }
            ManagerToRig::Rated {
                assignment,
                outcome,
            } => {
                info!("rating for assignment {}: {outcome:?}", assignment.0);
                self.rated.answered(assignment, outcome);
            }
            ManagerToRig::Sheet(sheet) => {
                info!(
                    "flight sheet {} v{} from the manager",
                    sheet.farm.as_str(),
                    sheet.version
                );
                self.p.sheets.send_replace(Some(Arc::new(sheet)));
            }
            ManagerToRig::Welcome(_) | ManagerToRig::Refused(_) => {
                return Err(Ended::Rig(RigError::Protocol(
                    "Welcome/Refused in the middle of a session".into(),
                )));
            }
        }
        Ok(())
    }

    /// Frees `assignment`'s vault slot (the manager settled it).
    fn release(&mut self, assignment: AssignmentId) {
        if self.p.vault.release(assignment) {
            let v = self.p.vault.stats();
            debug!(
                "vault slot of assignment {} freed; {}/{} used",
                assignment.0, v.used, v.slots
            );
        }
    }

    async fn console_reply(
        &mut self,
        link: &mut Link<'_>,
        request: u32,
        ok: bool,
        text: &str,
    ) -> Result<(), ChannelError> {
        link.send(&RigToManager::ConsoleReply(ConsoleReply {
            request,
            ok,
            text: bounded::<CONSOLE_REPLY>(text),
        }))
        .await
    }

    async fn on_ctl(&mut self, link: &mut Link<'_>, c: SessionCtl) -> Result<(), Ended> {
        match c {
            SessionCtl::Stances(s) => {
                for (i, (old, new)) in self.stances.iter().zip(&s).enumerate() {
                    if *old == Stance::Transport && *new != Stance::Transport {
                        self.offers.forget_bids(i);
                    }
                }
                self.stances = s;
                self.try_bids(link).await?;
            }
            SessionCtl::Console { request, ok, text } => {
                self.console_reply(link, request, ok, &text).await?;
            }
            SessionCtl::Sheet { version, result } => match result {
                Ok(()) => {
                    self.p.sheet_version = Some(version);
                    link.send(&RigToManager::SheetApplied { version }).await?;
                }
                Err(reason) => {
                    link.send(&RigToManager::SheetRefused {
                        version,
                        reason: bounded(&reason),
                    })
                    .await?;
                }
            },
            SessionCtl::MinPrice(p) => {
                self.p.options.min_price = p;
            }
            SessionCtl::Payout(key) => {
                if key != self.p.payout {
                    self.p.payout = key;
                    if link.up() {
                        return Err(Ended::Rig(RigError::Protocol(
                            "payout account changed by the flight sheet; reconnecting to announce it"
                                .into(),
                        )));
                    }
                }
            }
            SessionCtl::Abandon { device } => {
                let Ok(d) = u8::try_from(device) else {
                    return Ok(());
                };
                if let Some(id) = self.assignments.on_device(d) {
                    if let Some(r) = self.assignments.end(id) {
                        warn!(
                            "assignment {} cancelled: abandoned on device {device}",
                            id.0
                        );
                        self.offers
                            .ended(r.assign.job, self.now(), self.p.options.offer_linger);
                        if !r.started {
                            self.p.vault.release(id);
                        }
                        self.offers.forget_bids(device);
                        link.send(&RigToManager::AssignmentRejected {
                            assignment: id,
                            reason: RejectReason::Busy,
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Devices that may bid now: transport role, idle, able, with a free vault slot.
    fn bidders(&self) -> Vec<usize> {
        let mut free = self.p.vault.free();
        let mut out = Vec::new();
        for c in self.p.cells.iter() {
            if self.stances.get(c.index) != Some(&Stance::Transport)
                || c.paused()
                || c.device.describe().no_paid_transport.is_some()
                || self.assignments.on_device(c.index as u8).is_some()
            {
                continue;
            }
            if free == 0 {
                break;
            }
            free -= 1;
            out.push(c.index);
        }
        out
    }

    async fn try_bids(&mut self, link: &mut Link<'_>) -> Result<(), ChannelError> {
        if !link.up() {
            return Ok(());
        }
        let bidders = self.bidders();
        if bidders.is_empty() {
            return Ok(());
        }
        for o in self.offers.open() {
            if !self.offers.ready(o.job) {
                continue;
            }
            for &d in &bidders {
                let Some(cell) = self.p.cells.get(d) else {
                    continue;
                };
                let cores = cell.device.describe().cores;
                let speed = self.offers.speed(&o.geometry, d, cores).unwrap_or(1.0);
                if !self.offers.mark_bid(o.job, d) {
                    continue;
                }
                let bid = Bid {
                    job: o.job,
                    device: d as u8,
                    cores,
                    histories_per_s: (speed as u64).max(1),
                    min_price: self.p.options.min_price,
                };
                debug!("bid job {} device {d}", o.job.0);
                link.send(&RigToManager::Bid(bid)).await?;
            }
        }
        Ok(())
    }

    async fn on_offer(&mut self, link: &mut Link<'_>, o: Offer) -> Result<(), ChannelError> {
        if o.price_per_unit < self.p.options.min_price {
            debug!("offer for job {} below the minimum price", o.job.0);
            return Ok(());
        }
        if self
            .p
            .cells
            .iter()
            .all(|c| c.device.describe().no_paid_transport.is_some())
        {
            return Ok(());
        }
        if !self.offers.offered(o, self.now()) {
            return Ok(());
        }
        match self.jobs.get(&o.geometry).cloned() {
            Some(Ok(job)) if !self.fits(&job) => self.offers.refuse(o.job),
            Some(Ok(job)) => self.calibrate(o.geometry, job),
            Some(Err(_)) => self.offers.refuse(o.job),
            None => self.need_geometry(link, o.geometry, o.geometry_len).await?,
        }
        self.try_bids(link).await
    }

    fn calibrate(&mut self, content: Digest, job: Arc<compushare_kernels::transport::job::Job>) {
        if !self.offers.start_calibration(content) {
            return;
        }
        let Some(cell) = self
            .p
            .cells
            .iter()
            .find(|c| c.device.describe().no_paid_transport.is_none())
        else {
            return;
        };
        let device = cell.device.clone();
        let photons = self.p.options.calibration_photons.max(1);
        let tx = self.work_tx.clone();
        let failures = self.p.calibration.clone();
        tokio::task::spawn_blocking(move || {
            let cores = f64::from(device.describe().cores.max(1));
            let per_core = match calibrate::histories_per_s(device.as_ref(), &job, photons) {
                Ok(r) => r as f64 / cores,
                Err(e) => {
                    failures.count(&e);
                    warn!("calibration failed: {e}");
                    0.0
                }
            };
            let _ = tx.blocking_send(Blocking::Calibrated { content, per_core });
        });
    }

    async fn reject(
        &mut self,
        link: &mut Link<'_>,
        a: &Assign,
        reason: RejectReason,
    ) -> Result<(), ChannelError> {
        info!("assignment {} rejected: {reason:?}", a.assignment.0);
        // The manager withdraws this device's bids when it is turned down.
        self.offers.forget_bids(a.device as usize);
        // A job this rig cannot run at all is not bid for again (it would only come back).
        if matches!(
            reason,
            RejectReason::OutOfMemory | RejectReason::Unsupported
        ) {
            self.offers.refuse(a.job);
        }
        link.send(&RigToManager::AssignmentRejected {
            assignment: a.assignment,
            reason,
        })
        .await
    }

    async fn on_assign(&mut self, link: &mut Link<'_>, a: Assign) -> Result<(), ChannelError> {
        let cell = self.p.cells.get(a.device as usize).cloned();
        let stance = self.stances.get(a.device as usize).copied();
        let reject = match (&cell, stance) {
            (None, _) | (_, Some(Stance::Off)) => Some(RejectReason::NoSuchDevice),
            (Some(c), _) if c.device.describe().no_paid_transport.is_some() => {
                Some(RejectReason::Unsupported)
            }
            (Some(c), Some(s))
                if s != Stance::Transport
                    || c.paused()
                    || self.assignments.on_device(a.device).is_some()
                    || self.assignments.knows(a.assignment) =>
            {
                Some(RejectReason::Busy)
            }
            _ if a.photons.count == 0
                || a.photons.start.checked_add(a.photons.count).is_none()
                || a.photons.count > 1 << 40 =>
            {
                Some(RejectReason::Unsupported)
            }
            _ if a.geometry_len > self.p.options.max_geometry_bytes => {
                Some(RejectReason::OutOfMemory)
            }
            _ => match self.jobs.get(&a.geometry) {
                Some(Err(_)) => Some(RejectReason::Unsupported),
                Some(Ok(job)) if !self.fits(job) => Some(RejectReason::OutOfMemory),
                _ => None,
            },
        };
        if let Some(reason) = reject {
            return self.reject(link, &a, reason).await;
        }
        let slot = match self.p.vault.reserve(a.assignment) {
            Ok(s) => s,
            Err(_) => return self.reject(link, &a, RejectReason::VaultFull).await,
        };
        self.assignments.start(Running {
            assign: a,
            slot,
            cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            started: false,
        });
        self.offers.assigned(a.job, self.now());
        link.send(&RigToManager::AssignmentAccepted {
            assignment: a.assignment,
        })
        .await?;
        info!(
            "assignment {}: job {} photons [{}, +{}) on device {}",
            a.assignment.0, a.job.0, a.photons.start, a.photons.count, a.device
        );
        if matches!(self.jobs.get(&a.geometry), Some(Ok(_))) {
            self.dispatch(link, a.assignment).await
        } else {
            self.need_geometry(link, a.geometry, a.geometry_len).await
        }
    }

    /// Whether a result of `job` can fit a vault slot (its deposit grid alone; detected
    /// photons are checked when sealing).
    fn fits(&self, job: &compushare_kernels::transport::job::Job) -> bool {
        let cells = tally_cells(job).unwrap_or(u64::MAX);
        cells
            .saturating_mul(8)
            .saturating_add(256 + SEAL_BOX_OVERHEAD as u64)
            <= self.p.vault.slot_bytes() as u64
    }

    /// Hands a running assignment whose geometry is parsed to its device.
    async fn dispatch(
        &mut self,
        link: &mut Link<'_>,
        id: AssignmentId,
    ) -> Result<(), ChannelError> {
        let Some(r) = self.assignments.running(id) else {
            return Ok(());
        };
        let (a, slot_id, cancel) = (r.assign, r.slot, r.cancel.clone());
        let job = match self.jobs.get(&a.geometry) {
            Some(Ok(j)) => Arc::new(assignment_job(&a, j)),
            _ => return Ok(()),
        };
        let fail = |me: &mut Self| {
            me.assignments.end(id);
            me.p.vault.release(id);
        };
        let Some(cell) = self.p.cells.get(a.device as usize).cloned() else {
            fail(self);
            return self.reject(link, &a, RejectReason::NoSuchDevice).await;
        };
        let slot = match self.p.vault.lend(slot_id) {
            Ok(s) => s,
            Err(e) => {
                warn!("assignment {}: {e}", id.0);
                fail(self);
                return self.reject(link, &a, RejectReason::VaultFull).await;
            }
        };
        let task = TransportTask {
            assign: a,
            job,
            slot,
            manager_key: self.p.manager.key,
            block_log2: self.p.options.block_log2,
            cancel,
        };
        let board = self.p.board.clone();
        match cell.hand(task, |i| board.interrupt(i)) {
            Ok(()) => {
                if let Some(r) = self.assignments.running_mut(id) {
                    r.started = true;
                }
            }
            // The device still winds down work it was told to drop (a cancelled assignment
            // finishing its batch), or its worker is being replaced: the assignment waits and
            // is handed over again when the device reports back, or at the next tick.
            Err(HandError::Busy(t)) | Err(HandError::Gone(t)) => {
                debug!("assignment {} waits for device {}", id.0, a.device);
                self.p.vault.unlend(t.slot);
            }
        }
        Ok(())
    }

    /// Hands over assignments whose geometry is parsed but whose device was not free.
    async fn redispatch(&mut self, link: &mut Link<'_>) -> Result<(), ChannelError> {
        for a in self.assignments.waiting_for(None) {
            if matches!(self.jobs.get(&a.geometry), Some(Ok(_))) {
                self.dispatch(link, a.assignment).await?;
            }
        }
        Ok(())
    }

    async fn need_geometry(
        &mut self,
        link: &mut Link<'_>,
        content: Digest,
        len: u32,
    ) -> Result<(), ChannelError> {
        match self
            .jobs
            .need(content, len, self.p.options.max_geometry_bytes)
        {
            Need::Request => link.send(&RigToManager::GeometryRequest { content }).await,
            Need::Underway | Need::Refused => Ok(()),
        }
    }

    fn on_geometry_chunk(&mut self, c: &Chunk) {
        let Some(f) = self.jobs.chunk(c) else {
            return;
        };
        let content = c.content;
        let tx = self.work_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = f.into_job();
            let _ = tx.blocking_send(Blocking::Parsed { content, result });
        });
    }

    fn on_sample_request(&mut self, id: AssignmentId, photons: &[u64]) {
        let Some(d) = self.assignments.done(id) else {
            warn!(
                "sample request for assignment {} that the rig does not hold",
                id.0
            );
            return;
        };
        let Some(cell) = self.p.cells.get(d.device) else {
            return;
        };
        let device = cell.device.clone();
        let c = d.commitments.clone();
        let job = d.job.clone();
        let photons = photons.to_vec();
        let tx = self.work_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = device
                .load(&job)
                .map_err(|e| e.to_string())
                .and_then(|mut j| {
                    super::proofs::prove(j.as_mut(), &c, &photons).map_err(|e| e.to_string())
                });
            let _ = tx.blocking_send(Blocking::Proofs {
                assignment: id,
                result,
            });
        });
    }

    async fn on_blocking(&mut self, link: &mut Link<'_>, b: Blocking) -> Result<(), Ended> {
        match b {
            Blocking::Parsed { content, result } => {
                self.jobs.parsed(content, result.clone());
                for a in self.assignments.waiting_for(Some(&content)) {
                    match &result {
                        Ok(job) if self.fits(job) => self.dispatch(link, a.assignment).await?,
                        _ => {
                            self.assignments.end(a.assignment);
                            self.p.vault.release(a.assignment);
                            let reason = match &result {
                                Ok(_) => RejectReason::OutOfMemory,
                                Err(_) => RejectReason::Unsupported,
                            };
                            self.reject(link, &a, reason).await?;
                        }
                    }
                }
                let offered: Vec<Offer> = self
                    .offers
                    .open()
                    .into_iter()
                    .filter(|o| o.geometry == content)
                    .collect();
                match result {
                    Ok(job) if !offered.is_empty() && self.fits(&job) => {
                        self.calibrate(content, job)
                    }
                    _ => {
                        for o in offered {
                            self.offers.refuse(o.job);
                        }
                    }
                }
            }
            Blocking::Calibrated { content, per_core } => {
                self.offers.calibrated(content, per_core);
                self.try_bids(link).await?;
                self.publish(link.up());
            }
            Blocking::Proofs { assignment, result } => match result {
                Ok(proofs) => {
                    for part in proofs.chunks(PROOFS_PER_MESSAGE) {
                        let mut v = heapless::Vec::new();
                        for p in part {
                            let _ = v.push(p.clone());
                        }
                        link.send(&RigToManager::SampleProof(SampleProof {
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

    async fn on_worker(&mut self, link: &mut Link<'_>, ev: WorkerEvent) -> Result<(), Ended> {
        let WorkerEvent::Finished {
            device,
            assign,
            job,
            slot,
            result,
            elapsed,
        } = ev;
        let id = assign.assignment;
        if self.assignments.end(id).is_none() {
            // Cancelled or abandoned meanwhile: the result is not wanted.
            self.p.vault.give_back(slot);
            // Its device is free for an assignment that waited for it.
            return Ok(self.redispatch(link).await?);
        }
        self.offers
            .ended(assign.job, self.now(), self.p.options.offer_linger);
        match result {
            Ok(f) => {
                let secs = elapsed.as_secs_f64().max(1e-3);
                info!(
                    "assignment {} done: {} histories in {:.1} s on device {device}",
                    id.0, f.commit.histories, secs
                );
                self.offers
                    .measured(assign.geometry, device, f.commit.histories as f64 / secs);
                if let Err(e) = self.p.vault.store(slot, f.commit) {
                    warn!("assignment {}: {e}", id.0);
                    link.send(&RigToManager::AssignmentRejected {
                        assignment: id,
                        reason: RejectReason::VaultFull,
                    })
                    .await?;
                    return Ok(());
                }
                self.assignments.finish(
                    id,
                    Done {
                        commitments: f.commitments,
                        job,
                        device,
                        geometry: assign.geometry,
                    },
                );
                self.send_result(link, id).await?;
            }
            Err(RunError::Cancelled) => {
                self.p.vault.give_back(slot);
                self.redispatch(link).await?;
            }
            Err(e) => {
                warn!("assignment {} failed: {e} (device {device})", id.0);
                self.p.vault.give_back(slot);
                let reason = match e {
                    RunError::Seal(_) => RejectReason::OutOfMemory,
                    _ => RejectReason::Unsupported,
                };
                link.send(&RigToManager::AssignmentRejected {
                    assignment: id,
                    reason,
                })
                .await?;
            }
        }
        self.publish(link.up());
        Ok(())
    }

    /// Sends a sealed result from its vault slot: its commit, then its chunks (views of the
    /// slot, nothing copied).
    async fn send_result(&mut self, link: &mut Link<'_>, id: AssignmentId) -> Result<(), Ended> {
        let Some((commit, sealed)) = self.p.vault.sealed(id) else {
            return Ok(());
        };
        let commit = *commit;
        link.send(&RigToManager::ResultCommit(commit)).await?;
        let chunker = Chunker::with_content(sealed, commit.sealed)
            .map_err(|e| Ended::Rig(RigError::Protocol(format!("sealed result: {e:?}"))))?;
        for chunk in chunker {
            link.send(&RigToManager::ResultChunk(chunk)).await?;
        }
        Ok(())
    }
}

/// Reconnect delay: `backoff_min * 2^attempt`, capped at `backoff_max`, then scaled by a
/// jitter in [0.5, 1.0) so that rigs dropped together do not reconnect together.
pub fn backoff(opts: &SessionOptions, attempt: u32) -> Duration {
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

const _: () = assert!(CONSOLE_LINE <= CONSOLE_REPLY);

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
        ManagerToRig::Sheet(_) => "Sheet",
        ManagerToRig::CreditValue { .. } => "CreditValue",
    }
}
