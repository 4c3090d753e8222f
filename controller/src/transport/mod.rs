//! The rig's transport session: the paid photon-transport side of the firmware.
//!
//! `session` owns the session with the management node (connect, Hello, heartbeats, bids,
//! assignments handed to devices, results from the vault, proofs, pay) and its state across
//! reconnections; `offers` the open offers, their speeds and the bids that stand; `jobs` the
//! bounded fetch, parse and cache of job geometries (`geometry` reassembles one); `held` the
//! assignments running and finished; `work` runs one assignment on a device and seals it
//! (`assignment` its batches and block-wise Merkle commitment); `proofs` rebuilds audit paths
//! for sample checks; `state` what survives restarts in STATE_DIR (identity key, payment
//! record); `rating` the star ratings the rig gives its clients.

pub mod assignment;
pub mod geometry;
pub mod held;
pub mod jobs;
pub mod offers;
pub mod proofs;
pub mod rating;
pub mod session;
pub mod state;
pub mod work;

pub use rating::{RateError, RatingHandle};
