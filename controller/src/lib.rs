//! CompuShare rig firmware.
//!
//! The rig core ([`rig`]) owns the devices and gives each one a role, hashing or paid
//! transport, whichever pays more:
//! - [`device`]: the devices (CUDA GPUs, CPU devices) behind one trait for both kinds of work;
//!   [`worker`]: one thread per device doing what its role asks;
//! - [`scheduler`]: the roles, by revenue ([`revenue`]), with hysteresis;
//! - [`mining`]: one Stratum session for the rig ([`stratum`]: client with failover, miner);
//! - [`transport`]: the session with the management node;
//! - [`vault`]: sealed results in slots allocated at start;
//! - [`watchdog`]: stalled and overheating devices;
//! - [`config`] (rig.conf), [`settings`]; [`status`] and [`command`]: the seam with the
//!   operator surfaces ([`console`], [`api`], [`metrics`], started together by [`ops`]),
//!   which read the rig's status snapshots and send it commands.
#![deny(unsafe_code)]

pub mod api;
pub mod command;
pub mod config;
pub mod console;
pub mod device;
pub mod log;
pub mod metrics;
pub mod mining;
pub mod ops;
pub mod revenue;
pub mod rig;
pub mod scheduler;
pub mod settings;
pub use compushare_protocol::{debug, info, warn};
pub mod status;
pub mod stratum;
pub mod sync;
pub mod transport;
pub mod vault;
pub mod watchdog;
pub mod worker;
