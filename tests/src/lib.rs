//! System tests of CompuShare: a management node, rigs and a Stratum pool on loopback, with
//! faults injected, cheating rigs and load (the tests live in `tests/tests/`), and the test
//! support they share.
//!
//! - [`proxy`]: a fault-injecting TCP proxy for the framed wire protocol.
//! - [`system`]: a node, rigs and a client on loopback, and the checks every fault must
//!   leave true (digest, ledger, pay once, every photon once).
#![deny(unsafe_code)]

pub mod proxy;
pub mod system;
