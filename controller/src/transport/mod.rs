//! The rig's transport client: the paid photon-transport side of the rig firmware.
//!
//! `client` owns the session with the management node (connect, Hello, Heartbeat, bids,
//! assignments, results, proofs, pay); `settings` what it runs with and its errors;
//! `geometry` the bounded reassembly and parsing of a job's geometry; `work` the blocking
//! work (run, commit, seal, calibrate); `assignment` runs one assignment in batches with its
//! block-wise Merkle commitment; `proofs` rebuilds audit paths for sample checks; `state` is
//! what survives restarts in STATE_DIR (identity key, payment record); `rating` the star
//! ratings the rig gives its clients.

pub mod assignment;
pub mod client;
pub mod geometry;
pub mod proofs;
pub mod rating;
pub mod settings;
pub mod state;
pub mod work;

pub use assignment::Fabricate;
pub use client::Rig;
pub use rating::{RateError, RatingHandle};
pub use settings::{RigError, RigOptions, RigSettings};
