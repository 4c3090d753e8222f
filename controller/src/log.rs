//! The rig's logging: the workspace's one shim, `compushare_protocol::log` (levels,
//! `COMPUSHARE_LOG`, a tap for the console's ring of recent lines), re-exported so rig code
//! keeps `crate::log::...` and the `crate::{info, warn, debug}` macros.

pub use compushare_protocol::log::*;
