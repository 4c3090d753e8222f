//! The rig's transport client: the paid photon-transport side of the rig firmware.
//!
//! `client` owns the session with the management node (connect, Hello, Heartbeat, bids,
//! geometry, assignments, results, proofs, pay); `assignment` runs one assignment in
//! aligned blocks with its Merkle commitment; `proofs` rebuilds audit paths for sample
//! checks; `state` is what survives restarts in STATE_DIR (identity key, payment record).

pub mod assignment;
pub mod client;
pub mod proofs;
pub mod state;

pub use assignment::Fabricate;
pub use client::{Rig, RigError, RigOptions, RigSettings};
