//! CompuShare management node.
//!
//! Network side and market logic:
//! - [`server`]: listener, handshake, routing by first message, blocking work;
//! - [`session`]: a rig's and a client's session loops;
//! - [`market`]: jobs, rigs, bids, assignments and the rules that move them;
//! - [`scheduler`]: device ordering and assignment sizing;
//! - [`verify`]: sample checks (Merkle proofs, re-simulation) and duplicate rules;
//! - [`results`]: sealed result reassembly, opening and checks;
//! - [`escrow`]: the money seam (escrow, pay, fee, refund);
//! - [`client`]: job preparation (validation, cost calibration) and the client library.

#![deny(unsafe_code)]

pub mod client;
pub mod escrow;
pub mod market;
pub mod results;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod verify;
