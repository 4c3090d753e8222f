//! The rig's published state: one snapshot that every operator surface reads.
//!
//! The rig core (devices, scheduler, mining, transport session, vault, watchdog) owns the live
//! state and publishes a fresh [`RigStatus`] a few times a second through a
//! `tokio::sync::watch` channel ([`StatusTx`] / [`StatusRx`]). The console, the
//! cgminer-compatible API and the Prometheus metrics only read snapshots: they never lock or
//! reach into the core, so a slow dashboard cannot stall a device, and every surface shows the
//! same figures. A snapshot is plain owned data, bounded by the rig's device and pool limits.

use std::sync::Arc;

use compushare_protocol::types::{DeviceKind, PublicKey, Role};

pub use crate::device::calibrate::CalibrationCounts;

/// Sending side of the status channel (held by the rig core).
pub type StatusTx = tokio::sync::watch::Sender<Arc<RigStatus>>;
/// Receiving side of the status channel (cloned into each operator surface).
pub type StatusRx = tokio::sync::watch::Receiver<Arc<RigStatus>>;

/// A new status channel holding `initial`.
pub fn channel(initial: RigStatus) -> (StatusTx, StatusRx) {
    tokio::sync::watch::channel(Arc::new(initial))
}

/// Everything an operator can see about a rig at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct RigStatus {
    /// `RIG_NAME` (or the host name when unset).
    pub name: String,
    /// The rig's identity key.
    pub key: PublicKey,
    /// Firmware version string (as announced in Hello).
    pub firmware: String,
    /// Seconds since the controller started.
    pub uptime_s: u64,
    /// Unix time of this snapshot, seconds.
    pub at_unix_s: u64,
    /// Why the rig is in maintenance mode (a rig.conf error naming its line), if it is: then
    /// no device works and only the console and the API run.
    pub maintenance: Option<String>,
    /// The management-node session.
    pub manager: ManagerLink,
    /// Mining pools in priority order.
    pub pools: Vec<PoolView>,
    /// Devices in index order.
    pub devices: Vec<DeviceView>,
    /// The sealed result vault.
    pub vault: VaultView,
    /// Earnings, in millisatoshi (transport credits converted at the manager's announced rate).
    pub earnings: Earnings,
    /// Calibrations that failed since start, by device error (their figures stayed 0).
    pub calibration_failures: CalibrationCounts,
    /// `CONSOLE_KEYS` in force: rig.conf's, or the applied flight sheet's where rig.conf sets
    /// none. The network console admits these besides the keys it was started with, from the
    /// next handshake, and closes an open session whose key left them. Empty in maintenance
    /// mode and in snapshots built by hand.
    pub console_keys: Vec<PublicKey>,
    /// The farm's flight sheet on this rig.
    pub sheet: SheetView,
}

impl RigStatus {
    /// A snapshot with no device, pool or session yet: a rig starting, or in maintenance
    /// mode (`maintenance` says why).
    pub fn empty(name: &str, key: PublicKey, firmware: &str, maintenance: Option<String>) -> Self {
        RigStatus {
            name: name.to_owned(),
            key,
            firmware: firmware.to_owned(),
            uptime_s: 0,
            at_unix_s: crate::sync::unix_now(),
            maintenance,
            manager: ManagerLink {
                addr: None,
                key: None,
                state: LinkState::Disabled,
                credit_msat: None,
                results_delivered: 0,
            },
            pools: Vec::new(),
            devices: Vec::new(),
            vault: VaultView::default(),
            earnings: Earnings::default(),
            calibration_failures: CalibrationCounts::default(),
            console_keys: Vec::new(),
            sheet: SheetView::default(),
        }
    }
}

/// The farm's flight sheet on this rig (issue 14): which one is in force, and the newest one
/// refused since, with why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SheetView {
    /// rig.conf sets `FARM_KEY`: the rig takes its farm's flight sheet from its manager (so a
    /// sheet may yet change its settings, `CONSOLE_KEYS` included).
    pub enrolled: bool,
    /// The sheet in force (laid over rig.conf), if any.
    pub applied: Option<SheetId>,
    /// The newest sheet refused since the one in force was applied (`None` once a newer sheet
    /// applies): its version and the reason the manager was also told.
    pub refused: Option<SheetRefusal>,
    /// Sheets refused since start.
    pub refusals: u64,
}

/// One version of a farm's sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetId {
    /// The farm's name, as its manager calls it.
    pub farm: String,
    pub version: u64,
}

/// A sheet the rig could not apply (it kept the previous one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRefusal {
    pub farm: String,
    pub version: u64,
    /// Why, naming the key (as the manager's operator sees it).
    pub reason: String,
}

/// State of the session with the management node.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerLink {
    /// `host:port` from rig.conf (`None`: no manager configured, mining only).
    pub addr: Option<String>,
    /// Its pinned key.
    pub key: Option<PublicKey>,
    pub state: LinkState,
    /// What one credit is worth, millisatoshi (from the manager's Welcome; `None` before it).
    pub credit_msat: Option<u64>,
    /// Results delivered to the manager since start.
    pub results_delivered: u64,
}

/// Where a network session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Not configured.
    Disabled,
    /// Connecting or handshaking.
    Connecting,
    /// Up since this many seconds.
    Connected { for_s: u64 },
    /// Down; the last error and the seconds until the next attempt.
    Down { error: String, retry_in_s: u64 },
}

/// One mining pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolView {
    /// The `n` of `POOLn` (or the number a console `pool add` gave it).
    pub number: u32,
    pub url: String,
    pub user: String,
    /// Whether work now comes from this pool.
    pub active: bool,
    pub state: LinkState,
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    /// Share difficulty in force.
    pub difficulty: f64,
    /// Network difficulty of the current job (from nbits), when a job is held.
    pub network_difficulty: Option<f64>,
    /// Seconds since the last accepted share.
    pub last_share_s: Option<u64>,
}

/// Why a device is not working normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Progressing.
    Ok,
    /// No progress for the watchdog's sick threshold: being restarted.
    Sick,
    /// No progress for the dead threshold: disabled until the rig restarts.
    Dead,
    /// Over its temperature limit: paused until it cools.
    Hot,
}

/// One device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub index: u8,
    pub kind: DeviceKind,
    pub name: String,
    /// What the device does now (`Mine`, `Transport` or `Off`; never `Auto`).
    pub role: Role,
    /// The operator's pin (ROLES or the console); `Auto` lets the scheduler choose.
    pub pin: Role,
    pub health: Health,
    /// Hash rate over the last few seconds, hashes/s (0 when not mining).
    pub hash_rate: f64,
    /// Transport rate over the last few seconds, histories/s (0 when not transporting).
    pub histories_per_s: f64,
    /// Revenue the scheduler last computed for each role, millisatoshi per second.
    pub mining_msat_per_s: f64,
    pub transport_msat_per_s: f64,
    /// Tenths of a degree Celsius, when the device reports it.
    pub temperature_dc: Option<i16>,
    /// Watts, when the device reports it.
    pub power_w: Option<u16>,
    /// Fan speed in percent, when the device reports it.
    pub fan_percent: Option<u8>,
    /// Totals since start.
    pub hashes: u64,
    pub histories: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    /// Hardware errors (results the device computed wrong, e.g. a share the CPU recheck
    /// rejected).
    pub hw_errors: u64,
    /// Role switches since start.
    pub switches: u64,
    /// The assignment it runs, if any.
    pub assignment: Option<u64>,
    /// Seconds since the device last made progress.
    pub idle_s: u64,
}

/// The sealed result vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VaultView {
    pub slots: u32,
    pub used: u32,
    pub slot_bytes: u64,
    /// Results sealed since start.
    pub sealed: u64,
    /// Seals refused because the vault was full (transport paused meanwhile).
    pub full_events: u64,
}

/// Earnings since start, millisatoshi.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Earnings {
    /// Estimated from accepted shares (difficulty x revenue per unit of difficulty).
    pub mining_msat: f64,
    /// Paid by the manager for verified transport work.
    pub transport_msat: f64,
}
