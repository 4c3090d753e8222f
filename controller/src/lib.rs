//! CompuShare rig firmware.
//!
//! Today this crate owns the mining engine: a Stratum v1 client with pool failover, the
//! driver that runs the SHA-256d scanner over threads, and a validating Stratum v1 pool
//! server used by tests and by `compushare demo`. `config` parses rig.conf; `transport` is
//! the paid photon-transport client that talks to the management node. The operator
//! surfaces (`console`, `api`, `metrics`, started together by `ops`) read the rig's `status`
//! snapshots and send it `command`s.
#![deny(unsafe_code)]

pub mod api;
pub mod command;
pub mod config;
pub mod console;
pub mod log;
pub mod metrics;
pub mod ops;
pub use compushare_protocol::{debug, info, warn};
pub mod status;
pub mod stratum;
pub mod transport;
