//! Test support for CompuShare, never firmware (nothing in the rig or the node depends on
//! it): used by tests and by `compushare demo`.
//!
//! - `pool`: a validating Stratum v1 pool server, scriptable (difficulty, jobs, faults).
//! - `fabricate`: TEST DOUBLE of a dishonest rig's device (made-up histories).
//! - `devices`: TEST DOUBLES of faulty devices (hangs, failures, scripted temperature).
//! - `rig`: settings of real rigs for tests (one small CPU device, quick reactions).
//! - `node`: a management node as a child process.
//! - `pty`: a pseudo-terminal pair for serial-console tests.
//! - `scripted`: TEST DOUBLE of the manager's side of a rig session (Hello, Welcome).

#![deny(unsafe_code)]

pub mod devices;
pub mod fabricate;
pub mod node;
pub mod pool;
pub mod pty;
pub mod rig;
pub mod scripted;

pub use fabricate::{Fabricate, FabricatingDevice};
