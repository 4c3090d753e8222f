//! What a rig runs with: settings from rig.conf, library-only options, and the errors that
//! end a session or the rig.

use std::path::PathBuf;
use std::time::Duration;

use compushare_protocol::msg::refusal;
use compushare_protocol::secure::ChannelError;
use compushare_protocol::types::{Amount, PublicKey};

use super::assignment::Fabricate;
use super::state::StateError;
use crate::config::{ConfigError, RigConfig, Roles};

/// Tunables of the transport client that rig.conf does not set.
#[derive(Debug, Clone)]
pub struct RigOptions {
    /// CPU cores shared by the CPU devices (default: the machine's).
    pub cores: Option<usize>,
    /// Photons of the startup (cube60) and per-job calibrations.
    pub calibration_photons: u64,
    /// Lowest price per cost unit the rig bids for.
    pub min_price: Amount,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Fixed proof block size (log2 photons); `None` sizes blocks from the assignment.
    pub block_log2: Option<u32>,
    /// Largest geometry the rig fetches, bytes.
    pub max_geometry_bytes: u32,
    /// Finished results held for sample requests; the oldest is dropped beyond this.
    pub max_held: usize,
    /// TEST DOUBLE of a dishonest rig (see [`Fabricate`]); `None` on every real rig.
    pub fabricate: Option<Fabricate>,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            cores: None,
            calibration_photons: 2048,
            min_price: Amount(1),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            block_log2: None,
            max_geometry_bytes: 64 * 1024 * 1024,
            max_held: 64,
            fabricate: None,
        }
    }
}

/// What a rig needs to run (from rig.conf, or built directly by tests).
#[derive(Debug, Clone)]
pub struct RigSettings {
    /// `host:port` of the management node.
    pub manager: String,
    /// Its pinned static key.
    pub manager_key: PublicKey,
    pub name: String,
    pub payout: PublicKey,
    pub cpu_devices: u32,
    pub roles: Roles,
    pub state_dir: PathBuf,
    pub options: RigOptions,
}

impl RigSettings {
    /// Settings from rig.conf's MANAGER, MANAGER_KEY, RIG_NAME (default "rig"), PAYOUT,
    /// CPU_DEVICES, ROLES and STATE_DIR; an absent or unusable key is an error naming it.
    pub fn from_config(cfg: &RigConfig, options: RigOptions) -> Result<Self, ConfigError> {
        Ok(RigSettings {
            manager: cfg.manager.clone().ok_or_else(|| cfg.missing("MANAGER"))?,
            manager_key: cfg.manager_key.ok_or_else(|| cfg.missing("MANAGER_KEY"))?,
            name: cfg.rig_name.clone().unwrap_or_else(|| "rig".to_owned()),
            payout: cfg.payout_key()?,
            cpu_devices: cfg.cpu_devices,
            roles: cfg.roles.clone(),
            state_dir: cfg
                .state_dir
                .clone()
                .ok_or_else(|| cfg.missing("STATE_DIR"))?,
            options,
        })
    }
}

/// Why the rig stopped (fatal) or a session ended (retried).
#[derive(Debug, thiserror::Error)]
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
    /// A setting is unusable (name too long, no devices, ...).
    #[error("settings: {0}")]
    Settings(String),
    /// The startup calibration failed.
    #[error("calibration: {0}")]
    Calibration(String),
}

impl RigError {
    /// Whether retrying cannot help.
    pub fn is_fatal(&self) -> bool {
        match self {
            RigError::ManagerKeyMismatch { .. }
            | RigError::State(_)
            | RigError::Settings(_)
            | RigError::Calibration(_) => true,
            RigError::Refused { code, .. } => {
                *code == refusal::NOT_ALLOWED || *code == refusal::UNSUPPORTED_VERSION
            }
            RigError::Channel { .. } | RigError::Protocol(_) => false,
        }
    }
}
