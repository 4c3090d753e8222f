//! CompuShare rig firmware.
//!
//! Today this crate owns the mining engine: a Stratum v1 client with pool failover, the
//! driver that runs the SHA-256d scanner over threads, and a validating Stratum v1 pool
//! server used by tests and by `compushare demo`. Roles, scheduler, vault and console
//! arrive later as sibling modules. `config` parses rig.conf; `transport` is the
//! paid photon-transport client that talks to the management node.
#![deny(unsafe_code)]

pub mod command;
pub mod config;
pub mod log;
pub use compushare_protocol::{debug, info, warn};
pub mod status;
pub mod stratum;
pub mod transport;
