//! The rig core: owns the devices and gives each one a role, and wires the parts together.
//!
//! [`Rig::new`] (blocking) finds the devices, measures them, allocates the vault and opens
//! STATE_DIR's payment record; [`Rig::run`] starts the pool session (mining), one worker
//! thread per device, the manager session (transport) when MANAGER is set, and then loops:
//! - every `evaluate_every`, the scheduler turns each device's figures (measured rates x the
//!   pool's job economics; the best offer the session sees) into roles, logged per switch;
//! - every second, the watchdog reads each device's progress and temperature and restarts,
//!   disables, pauses or resumes it;
//! - every `status_every`, a fresh [`RigStatus`] goes out on the watch channel the operator
//!   surfaces read;
//! - operator [`Command`]s (console, API, the manager's RoleCommand) are executed as they come.
//!
//! A bad rig.conf never reaches here: [`maintenance`] keeps the status and command channels
//! answering with the error instead, with no device working.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_hardware::Telemetry;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{DeviceInfo, PublicKey, Role};
use tokio::sync::mpsc;

use crate::command::{self, Command, CommandError, CommandRx, CommandTx, Request};
use crate::config::Roles;
use crate::device::calibrate::{self, CalibrationFailures};
use crate::device::{self, DeviceRef, DiscoverOptions};
use crate::mining::RigMining;
use crate::revenue::{mining_msat_per_s, RateMeter};
use crate::scheduler::{DeviceFigures, Revenue, Scheduler, SchedulerConfig, Stance};
use crate::settings::{RigError, RigSettings};
use crate::sheet;
use crate::status::{
    self, DeviceView, Earnings, Health, LinkState, ManagerLink, RigStatus, SheetId, SheetRefusal,
    SheetView, StatusRx, StatusTx, VaultView,
};
use crate::stratum::job::JobEconomics;
use crate::sync::{lock, unix_now};
use crate::transport::rating::{self, RatingHandle};
use crate::transport::session::{
    ConsoleLine, Session, SessionCtl, SessionParts, SessionView, SharedView, SheetRx,
    CONSOLE_QUEUE, CTL_QUEUE,
};
use crate::transport::state::Payments;
use crate::vault::{Vault, VaultStats};
use crate::watchdog::{Action, DeviceWatch, Observation};
use crate::worker::{self, Activity, Cells, WorkerEnv, EVENT_QUEUE};
use crate::{info, warn};
use compushare_protocol::sheet::FlightSheet;

/// Firmware string announced in Hello.
pub const FIRMWARE: &str = concat!("compushare-rig/", env!("CARGO_PKG_VERSION"));

/// Window of the measured rates.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// How a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// An operator asked for a reboot (the image's PID 1 starts the rig again).
    Reboot,
}

/// What a device measured at start.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    hashes_per_s: u64,
    histories_per_s: u64,
}

/// A rig ready to run.
pub struct Rig {
    settings: RigSettings,
    identity: Arc<Identity>,
    payout: PublicKey,
    devices: Vec<DeviceRef>,
    measured: Vec<Measured>,
    vault: Vault,
    payments: Payments,
    status_tx: StatusTx,
    status_rx: StatusRx,
    cmd_tx: CommandTx,
    cmd_rx: CommandRx,
    ratings: RatingHandle,
    rating_rx: mpsc::Receiver<rating::Request>,
    /// The flight sheet kept in STATE_DIR and applied at start (farm rigs).
    sheet: Option<Arc<FlightSheet>>,
    /// The kept sheet, if it could not be applied at start.
    refused: Option<SheetRefusal>,
    /// Failed calibrations (start-up and the session's), per device error.
    calibration: Arc<CalibrationFailures>,
    epoch: Instant,
}

/// The flight sheet kept in STATE_DIR, laid over `settings` (a farm rig starts with its last
/// applied sheet, so it mines with the last known pools while its manager is down). A kept
/// sheet that cannot be read or no longer fits rig.conf is logged and left out: the manager
/// sends the farm's sheet again on Welcome. A kept sheet that no longer fits comes back as
/// `Err` (the status shows it refused).
fn kept_sheet(settings: &mut RigSettings) -> Result<Option<Arc<FlightSheet>>, SheetRefusal> {
    if settings.manager.as_ref().and_then(|m| m.farm).is_none() {
        return Ok(None);
    }
    let fs = match sheet::load(&settings.state_dir) {
        Ok(Some(fs)) => fs,
        Ok(None) => return Ok(None),
        Err(e) => {
            warn!("{e}; starting without a flight sheet");
            return Ok(None);
        }
    };
    let r = sheet::overlay(&settings.conf, &fs).and_then(|(eff, _)| {
        let mut next = settings.clone();
        next.take_sheet_keys(&eff).map(|()| next)
    });
    match r {
        Ok(next) => {
            info!(
                "flight sheet {} v{} kept in STATE_DIR applied",
                fs.farm.as_str(),
                fs.version
            );
            *settings = next;
            Ok(Some(Arc::new(fs)))
        }
        Err(e) => {
            warn!("kept flight sheet not applied: {e}");
            Err(SheetRefusal {
                farm: fs.farm.as_str().to_owned(),
                version: fs.version,
                reason: e.to_string(),
            })
        }
    }
}

/// What the status shows of the sheet.
fn sheet_view(
    settings: &RigSettings,
    applied: Option<&FlightSheet>,
    refused: Option<&SheetRefusal>,
    refusals: u64,
) -> SheetView {
    SheetView {
        enrolled: settings.manager.as_ref().is_some_and(|m| m.farm.is_some()),
        applied: applied.map(|s| SheetId {
            farm: s.farm.as_str().to_owned(),
            version: s.version,
        }),
        refused: refused.cloned(),
        refusals,
    }
}

impl Rig {
    /// Prepares a rig: finds and measures its devices, allocates the vault, opens STATE_DIR
    /// (blocking; call before the runtime is busy, or from `spawn_blocking`).
    pub fn new(mut settings: RigSettings, identity: Identity) -> Result<Rig, RigError> {
        let (sheet, refused) = match kept_sheet(&mut settings) {
            Ok(s) => (s, None),
            Err(r) => (None, Some(r)),
        };
        if settings.name.len() > compushare_protocol::limits::NAME_LEN {
            return Err(RigError::Settings("RIG_NAME longer than 48 bytes".into()));
        }
        let devices = match &settings.options.devices {
            Some(d) => d.clone(),
            None => {
                let (d, notes) = device::discover(&DiscoverOptions {
                    cpu_devices: settings.cpu_devices,
                    cores: settings.options.cores,
                    no_gpus: settings.options.no_gpus,
                });
                for n in notes {
                    info!("{n}");
                }
                d
            }
        };
        if devices.len() > compushare_protocol::limits::MAX_DEVICES {
            return Err(RigError::Settings("more than 32 devices".into()));
        }
        if devices.is_empty() {
            warn!("no device: CPU_DEVICES is 0 and no GPU was found; the rig only reports");
        }
        let photons = settings.options.calibration_photons;
        let calibration = Arc::new(CalibrationFailures::default());
        let measured = devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let hashes_per_s = calibrate::hash_rate(d.as_ref()).unwrap_or_else(|e| {
                    calibration.count(&e);
                    warn!("device {i}: hash rate not measured: {e}");
                    0
                });
                let histories_per_s = calibrate::reference_histories_per_s(d.as_ref(), photons)
                    .unwrap_or_else(|e| {
                        calibration.count(&e);
                        warn!("device {i}: transport rate not measured: {e}");
                        0
                    });
                info!(
                    "device {i}: {} ({:.2} MH/s, {histories_per_s} histories/s on {})",
                    d.describe().name,
                    hashes_per_s as f64 / 1e6,
                    calibrate::REFERENCE_JOB
                );
                Measured {
                    hashes_per_s,
                    histories_per_s,
                }
            })
            .collect();
        let vault = Vault::new(settings.vault_slots, settings.vault_slot_bytes)?;
        let payments = Payments::open(&settings.state_dir)?;
        let payout = match settings.payout {
            Some(p) => p,
            None => {
                info!(
                    "PAYOUT is not a worker account key: transport earnings go to the rig's own key {}",
                    compushare_protocol::hex::encode(&identity.public())
                );
                identity.public()
            }
        };
        let key = identity.public();
        let first = RigStatus {
            calibration_failures: calibration.counts(),
            console_keys: settings.console_keys.clone(),
            sheet: sheet_view(
                &settings,
                sheet.as_deref(),
                refused.as_ref(),
                u64::from(refused.is_some()),
            ),
            ..empty_status(&settings.name, key, None)
        };
        let (status_tx, status_rx) = status::channel(first);
        let (cmd_tx, cmd_rx) = command::channel();
        let (ratings, rating_rx) = rating::channel();
        Ok(Rig {
            settings,
            identity: Arc::new(identity),
            payout,
            devices,
            measured,
            vault,
            payments,
            status_tx,
            status_rx,
            cmd_tx,
            cmd_rx,
            ratings,
            rating_rx,
            sheet,
            refused,
            calibration,
            epoch: Instant::now(),
        })
    }

    /// The rig's identity key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public()
    }

    /// The rig's identity (the network console answers with it).
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// The status snapshots (for the operator surfaces).
    pub fn status(&self) -> StatusRx {
        self.status_rx.clone()
    }

    /// Where operator commands go.
    pub fn commands(&self) -> CommandTx {
        self.cmd_tx.clone()
    }

    /// A handle that rates the clients whose jobs this rig worked on.
    pub fn rating_handle(&self) -> RatingHandle {
        self.ratings.clone()
    }

    /// The devices this rig drives.
    pub fn devices(&self) -> &[DeviceRef] {
        &self.devices
    }

    /// Runs until a reboot order. A manager session that cannot go on (wrong MANAGER_KEY,
    /// identity refused, STATE_DIR unwritable) ends transport only, with the error in the
    /// status; `Err` only when the device workers cannot start.
    pub async fn run(self) -> Result<Stop, RigError> {
        let key = self.identity.public();
        let (settings, devices, epoch) = (self.settings, self.devices, self.epoch);
        let n = devices.len();
        let mining = RigMining::start(
            settings.pools.clone(),
            n,
            settings.options.client.clone(),
            settings.options.failover.clone(),
        );
        if settings.pools.is_empty() {
            info!("no POOLn in rig.conf: devices hash nothing");
        }
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE.max(n));
        let env = WorkerEnv {
            mining: mining.link().clone(),
            events: events_tx,
        };
        let pins: Vec<Role> = (0..n).map(|i| settings.roles.of(i)).collect();
        let scheduler = Scheduler::with_pins(
            SchedulerConfig {
                margin: settings.switch_margin,
                ..settings.options.scheduler.clone()
            },
            &pins,
            epoch.elapsed(),
        );
        let stances: Vec<Stance> = (0..n).map(|i| scheduler.stance(i)).collect();
        let cells = worker::start(&devices, &env, epoch).map_err(RigError::Workers)?;
        for (c, s) in cells.iter().zip(&stances) {
            c.set_stance(*s, |_| {});
        }
        let view: SharedView = Arc::new(Mutex::new(SessionView {
            link: LinkState::Disabled,
            credit_msat: None,
            results_delivered: 0,
            transport: vec![Revenue::Unavailable("no MANAGER in rig.conf"); n],
            vault: self.vault.stats(),
            paid_micro: self.payments.total(),
        }));
        let (console_tx, console_rx) = mpsc::channel(CONSOLE_QUEUE);
        let changed = Arc::new(tokio::sync::Notify::new());
        let (ctl_tx, ctl_rx) = mpsc::channel(CTL_QUEUE);
        let (sheet_tx, sheet_rx) = tokio::sync::watch::channel(None);
        let session = match &settings.manager {
            Some(m) => {
                let hello_devices = hello_devices(&devices, &self.measured);
                let parts = SessionParts {
                    manager: m.clone(),
                    name: settings.name.clone(),
                    payout: self.payout,
                    identity: self.identity,
                    hello_devices,
                    cells: cells.clone(),
                    board: mining.link().board().clone(),
                    vault: self.vault,
                    payments: self.payments,
                    options: settings.options.session.clone(),
                    events: events_rx,
                    ctl: ctl_rx,
                    console: console_tx,
                    sheets: sheet_tx,
                    sheet_version: self.sheet.as_ref().map(|s| s.version),
                    calibration: self.calibration.clone(),
                    commands: self.cmd_tx.clone(),
                    status: self.status_rx.clone(),
                    ratings: self.rating_rx,
                    view: view.clone(),
                    stances,
                    changed: changed.clone(),
                    epoch,
                };
                Some(tokio::spawn(Session::new(parts).run()))
            }
            // No manager: the vault, payments and session queues are dropped unused.
            None => None,
        };
        let mut core = Core {
            pins,
            scheduler,
            watches: vec![DeviceWatch::new(settings.watchdog); n],
            hash_meters: vec![RateMeter::new(RATE_WINDOW); n],
            history_meters: vec![RateMeter::new(RATE_WINDOW); n],
            known_hash_rate: self
                .measured
                .iter()
                .map(|m| m.hashes_per_s as f64)
                .collect(),
            telemetry: vec![Telemetry::default(); n],
            figures: vec![
                DeviceFigures {
                    pin: Role::Auto,
                    unusable: None,
                    mining: Revenue::Unavailable("not evaluated yet"),
                    transport: Revenue::Unavailable("not evaluated yet"),
                };
                n
            ],
            last_economics: None,
            dropped_orders: AtomicU64::new(0),
            sheet: self.sheet,
            refusals: u64::from(self.refused.is_some()),
            refused: self.refused,
            calibration: self.calibration,
            settings,
            key,
            cells,
            env,
            mining,
            view,
            ctl: ctl_tx,
            status_tx: self.status_tx,
            cmd_tx: self.cmd_tx,
            epoch,
        };
        let result = core
            .run(self.cmd_rx, console_rx, sheet_rx, session, changed)
            .await;
        for c in core.cells.iter() {
            c.stop();
        }
        core.mining.stop().await;
        result
    }
}

/// Hello's device list.
fn hello_devices(devices: &[DeviceRef], measured: &[Measured]) -> Vec<DeviceInfo> {
    devices
        .iter()
        .zip(measured)
        .enumerate()
        .map(|(i, (d, m))| {
            let desc = d.describe();
            DeviceInfo {
                index: i as u8,
                kind: desc.kind,
                name: compushare_protocol::types::bounded(&desc.name),
                compute_units: desc.compute_units,
                cores: desc.cores,
                memory: desc.memory,
                hash_rate: m.hashes_per_s,
                histories_per_s: m.histories_per_s,
            }
        })
        .collect()
}

/// A snapshot with no device (start-up, maintenance).
fn empty_status(name: &str, key: PublicKey, maintenance: Option<String>) -> RigStatus {
    RigStatus::empty(name, key, FIRMWARE, maintenance)
}

/// The running core's state.
struct Core {
    settings: RigSettings,
    key: PublicKey,
    cells: Cells,
    env: WorkerEnv,
    mining: RigMining,
    view: SharedView,
    ctl: mpsc::Sender<SessionCtl>,
    status_tx: StatusTx,
    cmd_tx: CommandTx,
    epoch: Instant,
    pins: Vec<Role>,
    scheduler: Scheduler,
    watches: Vec<DeviceWatch>,
    hash_meters: Vec<RateMeter>,
    history_meters: Vec<RateMeter>,
    /// Last hash rate seen while hashing (start-up measurement before that).
    known_hash_rate: Vec<f64>,
    telemetry: Vec<Telemetry>,
    figures: Vec<DeviceFigures>,
    last_economics: Option<JobEconomics>,
    /// Orders to the session dropped because its queue was full.
    dropped_orders: AtomicU64,
    /// The flight sheet applied now.
    sheet: Option<Arc<FlightSheet>>,
    /// The newest sheet refused since `sheet` was applied, and the refusals since start.
    refused: Option<SheetRefusal>,
    refusals: u64,
    /// Failed calibrations, per device error.
    calibration: Arc<CalibrationFailures>,
}

impl Core {
    async fn run(
        &mut self,
        mut cmd_rx: CommandRx,
        mut console_rx: mpsc::Receiver<ConsoleLine>,
        mut sheet_rx: SheetRx,
        mut session: Option<tokio::task::JoinHandle<Result<(), RigError>>>,
        changed: Arc<tokio::sync::Notify>,
    ) -> Result<Stop, RigError> {
        let mut evaluate = tokio::time::interval(self.settings.options.evaluate_every);
        let mut second = tokio::time::interval(Duration::from_secs(1));
        let mut publish = tokio::time::interval(self.settings.options.status_every);
        let mut sheets_open = true;
        for t in [&mut evaluate, &mut second, &mut publish] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = evaluate.tick() => self.evaluate(),
                _ = changed.notified() => self.evaluate(),
                _ = second.tick() => self.watch(),
                _ = publish.tick() => self.publish(),
                Some((cmd, reply)) = cmd_rx.recv() => {
                    let r = self.execute(cmd).await;
                    let reboot = matches!(r, Ok(ref s) if s == REBOOTING);
                    let _ = reply.send(r);
                    if reboot {
                        // Let the answer reach the operator before the process goes.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        return Ok(Stop::Reboot);
                    }
                }
                Some(line) = console_rx.recv() => self.console(line),
                r = sheet_rx.changed(), if sheets_open => match r {
                    Ok(()) => {
                        let fs = sheet_rx.borrow_and_update().clone();
                        if let Some(fs) = fs {
                            self.apply_sheet(fs).await;
                        }
                    }
                    // No session (no MANAGER, or it stopped): no sheet will come.
                    Err(_) => sheets_open = false,
                },
                r = async { session.as_mut()?.await.ok() }, if session.is_some() => {
                    // A session that cannot go on (wrong MANAGER_KEY, identity refused) stops
                    // transport only: the devices keep hashing and the status shows why.
                    session = None;
                    if let Some(Err(e)) = r {
                        warn!("manager session stopped: {e}; the devices keep hashing");
                    }
                }
            }
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn session_view(&self) -> SessionView {
        lock(&self.view).clone()
    }

    /// One scheduler evaluation.
    fn evaluate(&mut self) {
        let economics = self.mining.economics();
        if economics.is_some() {
            self.last_economics = economics;
        }
        let view = self.session_view();
        let fee = self.settings.pool_fee;
        let has_pools = !self.settings.pools.is_empty();
        for (i, f) in self.figures.iter_mut().enumerate() {
            let rate = self.known_hash_rate.get(i).copied().unwrap_or(0.0);
            f.pin = self.pins.get(i).copied().unwrap_or(Role::Auto);
            f.unusable = self.watches.get(i).and_then(DeviceWatch::usable);
            f.mining = match (&economics, has_pools) {
                (_, false) => Revenue::Unavailable("no pool configured"),
                (None, true) => Revenue::Unavailable("no job from the pools"),
                (Some(e), true) => Revenue::Pays(mining_msat_per_s(rate, e, fee)),
            };
            f.transport = view
                .transport
                .get(i)
                .copied()
                .unwrap_or(Revenue::Unavailable("no manager"));
        }
        let switches = self.scheduler.evaluate(self.now(), &self.figures);
        for s in &switches {
            info!("switch {s}");
        }
        self.apply_stances();
    }

    /// Sends the session an order without waiting; one that finds its queue full is dropped,
    /// logged and counted (stances come again at the next evaluation; an abandoned
    /// assignment is given back by the manager at its deadline). Without a session (no
    /// MANAGER) there is nobody to tell.
    fn order(&self, o: SessionCtl) {
        match self.ctl.try_send(o) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(o)) => {
                let n = self.dropped_orders.fetch_add(1, Ordering::Relaxed) + 1;
                warn!("transport session busy: order dropped ({n} so far): {o:?}");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Tells devices and the session the scheduler's roles.
    fn apply_stances(&mut self) {
        let board = self.mining.link().board().clone();
        let stances: Vec<Stance> = (0..self.cells.len())
            .map(|i| self.scheduler.stance(i))
            .collect();
        for (c, s) in self.cells.iter().zip(&stances) {
            if c.stance() != *s {
                c.set_stance(*s, |i| board.interrupt(i));
                if *s == Stance::Off && c.busy() {
                    self.order(SessionCtl::Abandon { device: c.index });
                }
            }
        }
        // Dropped when full: the next evaluation sends it again.
        self.order(SessionCtl::Stances(stances));
    }

    /// The watchdog and the rate meters, once a second.
    fn watch(&mut self) {
        let now = self.now();
        let board = self.mining.link().board().clone();
        for (i, c) in self.cells.iter().enumerate() {
            let t = c.device.telemetry();
            if let Some(x) = self.telemetry.get_mut(i) {
                *x = t;
            }
            if let Some(m) = self.hash_meters.get_mut(i) {
                m.sample(now, c.hashes());
                if c.activity() == Activity::Mining && m.rate() > 0.0 {
                    if let Some(k) = self.known_hash_rate.get_mut(i) {
                        *k = m.rate();
                    }
                }
            }
            if let Some(m) = self.history_meters.get_mut(i) {
                m.sample(now, c.histories());
            }
            let Some(w) = self.watches.get_mut(i) else {
                continue;
            };
            let obs = Observation {
                has_work: c.has_work(),
                last_progress: c.last_progress(),
                temperature_dc: t.temperature_dc,
            };
            for a in w.observe(now, obs).into_iter().flatten() {
                match a {
                    Action::Restart => {
                        warn!(
                            "device {i} made no progress for {} s: SICK, restarting its worker",
                            now.saturating_sub(c.last_progress()).as_secs()
                        );
                        self.order(SessionCtl::Abandon { device: i });
                        if let Err(e) = worker::spawn(c, &self.env) {
                            warn!("device {i}: cannot start a worker: {e}");
                        }
                    }
                    Action::Disable => {
                        warn!("device {i} made no progress for {} s: DEAD, disabled until the rig restarts", now.saturating_sub(c.last_progress()).as_secs());
                        c.set_paused(true, |d| board.interrupt(d));
                        c.stop();
                        self.order(SessionCtl::Abandon { device: i });
                    }
                    Action::Pause => {
                        warn!(
                            "device {i} at {:.1} °C: HOT, paused until it cools",
                            f64::from(t.temperature_dc.unwrap_or(0)) / 10.0
                        );
                        c.set_paused(true, |d| board.interrupt(d));
                    }
                    Action::Resume => {
                        info!(
                            "device {i} cooled to {:.1} °C: resumed",
                            f64::from(t.temperature_dc.unwrap_or(0)) / 10.0
                        );
                        c.set_paused(false, |_| {});
                    }
                }
            }
        }
    }

    fn snapshot(&self) -> RigStatus {
        let view = self.session_view();
        let stats = self.mining.link().stats();
        let now = self.now();
        let devices = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let desc = c.device.describe();
                let stance = self.scheduler.stance(i);
                let watch = self.watches.get(i);
                let health = watch.map_or(Health::Ok, DeviceWatch::health);
                let role = match (c.activity(), c.paused()) {
                    (_, true) => Role::Off,
                    (Activity::Mining, _) => Role::Mine,
                    (Activity::Transport, _) => Role::Transport,
                    (Activity::Idle, _) => stance.role(),
                };
                let (acc, rej, hw) = stats.slot_counts(i);
                let t = self.telemetry.get(i).copied().unwrap_or_default();
                let f = self.figures.get(i);
                DeviceView {
                    index: i as u8,
                    kind: desc.kind,
                    name: desc.name.clone(),
                    role,
                    pin: self.pins.get(i).copied().unwrap_or(Role::Auto),
                    health,
                    hash_rate: self.hash_meters.get(i).map_or(0.0, RateMeter::rate),
                    histories_per_s: self.history_meters.get(i).map_or(0.0, RateMeter::rate),
                    mining_msat_per_s: f.map_or(0.0, |f| f.mining.rate()),
                    transport_msat_per_s: f.map_or(0.0, |f| f.transport.rate()),
                    temperature_dc: t.temperature_dc,
                    power_w: t.power_w,
                    fan_percent: t.fan_percent,
                    hashes: c.hashes(),
                    histories: c.histories(),
                    shares_accepted: acc,
                    shares_rejected: rej,
                    hw_errors: hw + c.faults(),
                    switches: self.scheduler.switches(i),
                    assignment: c.assignment(),
                    idle_s: now.saturating_sub(c.last_progress()).as_secs(),
                }
            })
            .collect();
        let credit = view.credit_msat.unwrap_or(1) as f64;
        let mining_msat = self.last_economics.map_or(0.0, |e| {
            let d: f64 = (0..stats.pool_count())
                .map(|i| stats.pool(i).accepted_difficulty)
                .sum();
            mining_msat_per_s(d * 4_294_967_296.0, &e, self.settings.pool_fee)
        });
        let VaultStats {
            slots,
            used,
            slot_bytes,
            sealed,
            full_events,
        } = view.vault;
        RigStatus {
            name: self.settings.name.clone(),
            key: self.key,
            firmware: FIRMWARE.to_owned(),
            uptime_s: now.as_secs(),
            at_unix_s: unix_now(),
            maintenance: None,
            manager: ManagerLink {
                addr: self.settings.manager.as_ref().map(|m| m.addr.clone()),
                key: self.settings.manager.as_ref().map(|m| m.key),
                state: view.link.clone(),
                credit_msat: view.credit_msat,
                results_delivered: view.results_delivered,
            },
            pools: self.mining.views(),
            devices,
            vault: VaultView {
                slots,
                used,
                slot_bytes,
                sealed,
                full_events,
            },
            earnings: Earnings {
                mining_msat,
                transport_msat: view.paid_micro as f64 * credit / 1e6,
            },
            calibration_failures: self.calibration.counts(),
            console_keys: self.settings.console_keys.clone(),
            sheet: sheet_view(
                &self.settings,
                self.sheet.as_deref(),
                self.refused.as_ref(),
                self.refusals,
            ),
        }
    }

    fn publish(&mut self) {
        let s = self.snapshot();
        self.status_tx.send_replace(Arc::new(s));
    }

    async fn execute(&mut self, cmd: Command) -> Result<String, CommandError> {
        match cmd {
            Command::Role { device, role } => {
                let targets: Vec<usize> = match device {
                    None => (0..self.cells.len()).collect(),
                    Some(d) if usize::from(d) < self.cells.len() => vec![usize::from(d)],
                    Some(d) => return Err(CommandError::NoSuchDevice(d)),
                };
                for &i in &targets {
                    if self
                        .watches
                        .get(i)
                        .is_some_and(|w| w.health() == Health::Dead)
                        && device.is_some()
                    {
                        return Err(CommandError::DeviceDead(i as u8));
                    }
                }
                for &i in &targets {
                    if let Some(p) = self.pins.get_mut(i) {
                        *p = role;
                    }
                    info!("device {i} pinned to {}", role_name(role));
                }
                // Pins win at once, not at the next evaluation.
                self.evaluate();
                self.publish();
                Ok(match device {
                    Some(d) => format!("device {d}: role {}", role_name(role)),
                    None => format!("all devices: role {}", role_name(role)),
                })
            }
            Command::PoolAdd {
                number,
                url,
                user,
                pass,
            } => {
                let n = self.mining.add_pool(number, &url, &user, &pass).await?;
                self.settings.pools = self.mining.pools().to_vec();
                info!("pool {n} added: {url}");
                Ok(format!("pool {n} added: {url}"))
            }
            Command::PoolRemove { number } => {
                self.mining.remove_pool(number).await?;
                self.settings.pools = self.mining.pools().to_vec();
                info!("pool {number} removed");
                Ok(format!("pool {number} removed"))
            }
            Command::Reboot => {
                info!("reboot asked by an operator");
                Ok(REBOOTING.to_owned())
            }
        }
    }

    /// A flight sheet from the manager: applied live and kept in STATE_DIR, or refused with
    /// the reason (the previous sheet stays). Either way the manager is told.
    async fn apply_sheet(&mut self, fs: Arc<FlightSheet>) {
        let version = fs.version;
        if self.sheet.as_deref() == Some(&*fs) {
            self.order(SessionCtl::Sheet {
                version,
                result: Ok(()),
            });
            return;
        }
        match self.try_sheet(&fs).await {
            Ok(payout) => {
                info!("flight sheet {} v{version} applied", fs.farm.as_str());
                // A refusal of an older version is superseded by this sheet.
                if self.refused.as_ref().is_some_and(|r| r.version <= version) {
                    self.refused = None;
                }
                self.sheet = Some(fs);
                self.publish();
                self.order(SessionCtl::Sheet {
                    version,
                    result: Ok(()),
                });
                if let Some(p) = payout {
                    self.order(SessionCtl::Payout(p));
                }
            }
            Err(reason) => {
                warn!(
                    "flight sheet {} v{version} refused: {reason}; keeping {}",
                    fs.farm.as_str(),
                    self.sheet
                        .as_ref()
                        .map_or("rig.conf alone".to_owned(), |s| format!("v{}", s.version))
                );
                self.refusals = self.refusals.saturating_add(1);
                self.refused = Some(SheetRefusal {
                    farm: fs.farm.as_str().to_owned(),
                    version,
                    reason: reason.clone(),
                });
                self.order(SessionCtl::Sheet {
                    version,
                    result: Err(reason),
                });
                self.publish();
            }
        }
    }

    /// Validates, keeps and applies `fs`; nothing changes unless all of it can. `Ok(Some)`:
    /// the payout account changed (the session announces it).
    async fn try_sheet(&mut self, fs: &FlightSheet) -> Result<Option<PublicKey>, String> {
        let (eff, kept) = sheet::overlay(&self.settings.conf, fs).map_err(|e| e.to_string())?;
        let mut next = self.settings.clone();
        next.take_sheet_keys(&eff).map_err(|e| e.to_string())?;
        let n = self.cells.len();
        if let Roles::PerDevice(v) = &next.roles {
            if v.len() > n {
                return Err(format!("ROLES lists {} devices; this rig has {n}", v.len()));
            }
        }
        sheet::store(&next.state_dir, fs).map_err(|e| format!("cannot keep the sheet: {e}"))?;
        if !kept.is_empty() {
            info!(
                "rig.conf keeps its own {} over the flight sheet",
                kept.join(", ")
            );
        }
        if next.pools != self.settings.pools {
            info!(
                "pools from the flight sheet: {}",
                next.pools
                    .iter()
                    .map(|p| p.pool.url.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.mining.set_pools(next.pools.clone()).await;
        }
        if next.roles != self.settings.roles {
            self.pins = (0..n).map(|i| next.roles.of(i)).collect();
        }
        self.scheduler.set_config(SchedulerConfig {
            margin: next.switch_margin,
            ..next.options.scheduler.clone()
        });
        for w in &mut self.watches {
            w.set_config(next.watchdog);
        }
        if next.options.session.min_price != self.settings.options.session.min_price {
            self.order(SessionCtl::MinPrice(next.options.session.min_price));
        }
        let payout = (next.payout != self.settings.payout).then(|| next.payout.unwrap_or(self.key));
        self.settings = next;
        self.evaluate();
        self.publish();
        Ok(payout)
    }

    /// A console line the manager relayed: answered by the console hook on its own task.
    fn console(&self, line: ConsoleLine) {
        let ctl = self.ctl.clone();
        let status = self.status_tx.borrow().clone();
        let hook = self.settings.options.console.clone();
        let cmd = self.cmd_tx.clone();
        tokio::spawn(async move {
            let (ok, text) = match hook {
                Some(h) => h(line.line, status, cmd).await,
                None => (false, "console not available on this firmware".to_owned()),
            };
            let _ = ctl
                .send(SessionCtl::Console {
                    request: line.request,
                    ok,
                    text,
                })
                .await;
        });
    }
}

/// The answer to a reboot order.
const REBOOTING: &str = "rebooting";

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Auto => "auto",
        Role::Mine => "mine",
        Role::Transport => "transport",
        Role::Off => "off",
    }
}

/// Runs a rig whose rig.conf is refused: publishes a snapshot that carries `error` (no
/// device works) and answers every command with it, except `reboot` (the operator fixes the
/// file, then reboots). Returns only on reboot.
pub async fn maintenance(
    name: String,
    key: PublicKey,
    error: String,
    status_tx: StatusTx,
    mut cmd_rx: CommandRx,
) -> Stop {
    warn!("maintenance mode: {error}");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut s = empty_status(&name, key, Some(error.clone()));
                s.uptime_s = started.elapsed().as_secs();
                status_tx.send_replace(Arc::new(s));
            }
            Some(req) = cmd_rx.recv() => {
                let (cmd, reply): Request = req;
                if cmd == Command::Reboot {
                    let _ = reply.send(Ok(REBOOTING.to_owned()));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Stop::Reboot;
                }
                let _ = reply.send(Err(CommandError::Maintenance(error.clone())));
            }
        }
    }
}

/// The status and command channels of a rig in maintenance mode, with its first snapshot.
pub fn maintenance_channels(
    name: &str,
    key: PublicKey,
    error: &str,
) -> (StatusTx, StatusRx, CommandTx, CommandRx) {
    let (status_tx, status_rx) = status::channel(empty_status(name, key, Some(error.to_owned())));
    let (cmd_tx, cmd_rx) = command::channel();
    (status_tx, status_rx, cmd_tx, cmd_rx)
}
