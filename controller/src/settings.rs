//! What a rig runs with: settings from rig.conf (validated once, at start), library-only
//! options (tests, benchmarks, the demo), and the errors that stop the rig or end a session.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::msg::refusal;
use compushare_protocol::secure::ChannelError;
use compushare_protocol::types::PublicKey;

use crate::command::CommandTx;
use crate::config::{ConfigError, Problem, RigConfig, Roles};
use crate::device::DeviceRef;
use crate::mining::NumberedPool;
use crate::scheduler::SchedulerConfig;
use crate::status::RigStatus;
use crate::stratum::client::{ClientConfig, PoolConfig};
use crate::stratum::conn::PoolUrl;
use crate::stratum::pools::FailoverConfig;
use crate::transport::session::{ManagerSettings, SessionOptions};
use crate::transport::state::StateError;
use crate::vault::{VaultError, DEFAULT_SLOTS, DEFAULT_SLOT_BYTES};
use crate::watchdog::WatchdogConfig;

/// Answers one console line (the operator console's shell, given to the rig by whoever
/// starts it): `(ok, reply text)`.
pub type ConsoleHook = Arc<
    dyn Fn(
            String,
            Arc<RigStatus>,
            CommandTx,
        ) -> Pin<Box<dyn std::future::Future<Output = (bool, String)> + Send>>
        + Send
        + Sync,
>;

/// Tunables rig.conf does not set.
#[derive(Clone)]
pub struct RigOptions {
    /// Devices to use instead of discovering them (test doubles, benchmarks).
    pub devices: Option<Vec<DeviceRef>>,
    /// Cores shared by the CPU devices (default: the machine's).
    pub cores: Option<usize>,
    /// Leave GPUs out of discovery.
    pub no_gpus: bool,
    /// Photons of the start-up transport measurement per device.
    pub calibration_photons: u64,
    /// The transport session's tunables.
    pub session: SessionOptions,
    /// The scheduler's (its margin is SWITCH_MARGIN's).
    pub scheduler: SchedulerConfig,
    /// How often the scheduler evaluates.
    pub evaluate_every: Duration,
    /// How often the status snapshot is published.
    pub status_every: Duration,
    /// Pool sessions.
    pub client: ClientConfig,
    pub failover: FailoverConfig,
    /// Answers console lines the manager relays (`None`: "console not available").
    pub console: Option<ConsoleHook>,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            devices: None,
            cores: None,
            no_gpus: false,
            calibration_photons: 2048,
            session: SessionOptions::default(),
            scheduler: SchedulerConfig::default(),
            evaluate_every: Duration::from_secs(2),
            status_every: Duration::from_millis(250),
            client: ClientConfig::default(),
            failover: FailoverConfig::default(),
            console: None,
        }
    }
}

/// Everything a rig runs with.
#[derive(Clone)]
pub struct RigSettings {
    /// RIG_NAME (default: the host name).
    pub name: String,
    /// MANAGER and MANAGER_KEY (`None`: mining only).
    pub manager: Option<ManagerSettings>,
    /// PAYOUT as a worker account key (`None`: the rig's identity key).
    pub payout: Option<PublicKey>,
    /// POOLn in number order.
    pub pools: Vec<NumberedPool>,
    pub cpu_devices: u32,
    pub roles: Roles,
    pub state_dir: PathBuf,
    pub vault_slots: u32,
    pub vault_slot_bytes: u64,
    pub switch_margin: f64,
    pub pool_fee: f64,
    pub watchdog: WatchdogConfig,
    pub options: RigOptions,
}

impl RigSettings {
    /// A rig that runs transport for `manager` only (no pools), everything else default.
    pub fn transport(
        manager: ManagerSettings,
        name: &str,
        payout: Option<PublicKey>,
        state_dir: PathBuf,
        options: RigOptions,
    ) -> RigSettings {
        RigSettings {
            name: name.to_owned(),
            manager: Some(manager),
            payout,
            pools: Vec::new(),
            cpu_devices: 1,
            roles: Roles::All(compushare_protocol::types::Role::Auto),
            state_dir,
            vault_slots: DEFAULT_SLOTS,
            vault_slot_bytes: DEFAULT_SLOT_BYTES,
            switch_margin: crate::config::DEFAULT_SWITCH_MARGIN,
            pool_fee: 0.0,
            watchdog: WatchdogConfig::default(),
            options,
        }
    }

    /// Settings from a parsed rig.conf. Every key has a default but MANAGER_KEY (needed with
    /// MANAGER; the parser checks that): STATE_DIR defaults beside rig.conf, PAYOUT to the
    /// rig's identity key, RIG_NAME to the host name.
    pub fn from_config(cfg: &RigConfig, options: RigOptions) -> Result<Self, ConfigError> {
        let manager = match (&cfg.manager, cfg.manager_key) {
            (Some(addr), Some(key)) => Some(ManagerSettings {
                addr: addr.clone(),
                key,
            }),
            (Some(_), None) => return Err(cfg.missing("MANAGER_KEY")),
            _ => None,
        };
        let mut pools = Vec::with_capacity(cfg.pools.len());
        for p in &cfg.pools {
            let url = PoolUrl::parse(&p.url).map_err(|_| ConfigError::Line {
                path: cfg.path.clone(),
                line: 0,
                key: format!("POOL{}", p.number),
                problem: Problem::Invalid {
                    expected: "a pool URL such as stratum+tcp://host:port",
                },
                value: Some(p.url.clone()),
            })?;
            pools.push(NumberedPool {
                number: p.number,
                pool: PoolConfig {
                    url,
                    user: p.user.clone(),
                    pass: p.pass.clone(),
                },
            });
        }
        let name = cfg.rig_name.clone().unwrap_or_else(host_name);
        let scheduler = SchedulerConfig {
            margin: cfg.switch_margin,
            lead_evaluations: cfg.switch_evaluations,
            min_dwell: Duration::from_secs(u64::from(cfg.switch_dwell_s)),
        };
        Ok(RigSettings {
            name,
            manager,
            payout: cfg.payout_account(),
            pools,
            cpu_devices: cfg.cpu_devices,
            roles: cfg.roles.clone(),
            state_dir: cfg.state_dir_or_default(),
            vault_slots: cfg.vault_slots.unwrap_or(DEFAULT_SLOTS),
            vault_slot_bytes: cfg.vault_slot_bytes.unwrap_or(DEFAULT_SLOT_BYTES),
            switch_margin: cfg.switch_margin,
            pool_fee: cfg.pool_fee,
            watchdog: WatchdogConfig {
                sick: Duration::from_secs(u64::from(cfg.watchdog_sick_s)),
                dead: Duration::from_secs(u64::from(cfg.watchdog_dead_s)),
                temp_limit_dc: i16::try_from(cfg.temp_limit_c * 10).unwrap_or(i16::MAX),
                temp_resume_dc: i16::try_from(cfg.temp_resume_c * 10).unwrap_or(i16::MAX),
            },
            options: RigOptions {
                scheduler,
                ..options
            },
        })
    }
}

/// The machine's host name, or "rig".
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().chars().take(48).collect::<String>())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rig".to_owned())
}

/// Why the rig stopped (fatal) or a session ended (retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RigError {
    /// The node at MANAGER proved another key than MANAGER_KEY: the wrong node, or the wrong
    /// key in rig.conf. Not retried.
    #[error("manager key mismatch: MANAGER_KEY is {}, but the node at {addr} proved {}; check MANAGER and MANAGER_KEY in rig.conf", compushare_protocol::hex::encode(.expected), compushare_protocol::hex::encode(.got))]
    ManagerKeyMismatch {
        addr: String,
        expected: PublicKey,
        got: PublicKey,
    },
    /// The manager refused the session.
    #[error("manager refused the rig (code {code}): {reason}")]
    Refused { code: u16, reason: String },
    /// The secure channel failed (network, handshake, decryption).
    #[error("session with {addr}: {source}")]
    Channel { addr: String, source: ChannelError },
    /// The manager broke the protocol (for example, no Welcome after Hello).
    #[error("protocol: {0}")]
    Protocol(String),
    /// STATE_DIR could not be used.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// A setting is unusable (name too long, too many devices, ...).
    #[error("settings: {0}")]
    Settings(String),
    /// The vault could not be allocated.
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    /// A device worker thread could not be started.
    #[error("device workers: {0}")]
    Workers(std::io::Error),
}

impl RigError {
    /// Whether retrying cannot help.
    pub fn is_fatal(&self) -> bool {
        match self {
            RigError::ManagerKeyMismatch { .. }
            | RigError::State(_)
            | RigError::Settings(_)
            | RigError::Vault(_)
            | RigError::Workers(_) => true,
            RigError::Refused { code, .. } => {
                *code == refusal::NOT_ALLOWED || *code == refusal::UNSUPPORTED_VERSION
            }
            RigError::Channel { .. } | RigError::Protocol(_) => false,
        }
    }
}
