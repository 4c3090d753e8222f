//! CompuShare management node.
//!
//! Persistent state (one redb database under the data directory) and the rules that act on it:
//! - [`store`]: the database, its tables and the read/write transactions everything goes through;
//! - [`ledger`]: the double-entry, hash-chained ledger, money operations and settlement;
//! - [`store_bank`]: the market's [`escrow::Bank`] backed by the ledger;
//! - [`trust`]: per-rig trust records, promotion/demotion and star ratings;
//! - [`records`]: jobs, assignments and results as stored;
//! - [`costing`]: calibration of a job's machine-independent cost and its price;
//! - [`config`]: the manager's settings, stored in the database;
//! - [`codec`]: how stored values are encoded and decoded (typed errors on corrupt bytes);
//! - [`store::migrate`]: upgrades of older database formats, run when a store is opened.
//!
//! Money moves only inside a [`store::WriteTx`], together with the state change it pays for,
//! so a crash at any moment commits all of it or none.
//!
//! Network side and market logic:
//! - [`server`]: listener, handshake, routing by first message, the market's tick;
//! - [`node`]: what every session shares (the market's lock, identity, store, settings);
//! - [`tasks`]: the market's heavy tasks (open, check, duplicate) run off its lock, bounded;
//! - [`session`]: a rig's and a client's session loops;
//! - `sys`: the one call into the C library (returning freed heap memory to the OS);
//! - [`outbox`]: a rig session's bounded outgoing queue (encoded messages, geometry by reference);
//! - [`market`]: jobs, rigs, bids, assignments and the rules that move them;
//! - [`journal`]: the market's durable writes, committed off its lock in the order decided;
//! - [`scheduler`]: device ordering and assignment sizing;
//! - [`verify`]: sample checks (Merkle proofs, re-simulation) and duplicate rules;
//! - [`sealed`]: a rig's sealed result: its size bound, opening and checks;
//! - [`escrow`]: the money seam (escrow, pay, fee, refund);
//! - [`persist`]: the market's transactions on the store, and what a restart restores;
//! - [`intake`]: what a submitted job becomes (validation, parsing, cost calibration);
//! - [`fleet`]: farms, flight sheets, enrolment and the operator actions that reach rigs;
//! - [`admin`]: operators' sessions on a running node (authorised per request, audited).
//!
//! The client library is its own crate, `compushare-client` (no database, no market).

#![deny(unsafe_code)]

// Persistent state.
pub mod codec;
pub mod config;
pub mod costing;
pub mod ledger;
pub mod records;
pub mod store;
pub mod store_bank;
pub mod trust;

// Network side.
pub mod admin;
pub mod escrow;
pub mod fleet;
pub mod intake;
pub mod journal;
pub mod market;
pub mod node;
pub mod outbox;
pub mod persist;
pub mod public_record;
pub mod ratings;
pub mod scheduler;
pub mod sealed;
pub mod server;
pub mod session;
pub mod sys;
pub mod tasks;
pub mod verify;

pub use config::Config;
pub use ledger::{Account, Entry, EntryKind, InternalCredit, Settlement, SettlementRef};
pub use records::{AssignmentRecord, AssignmentState, JobRecord, JobState};
pub use store::{ReadTx, Store, StoreError, WriteTx};
pub use trust::RigRecord;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "manager.redb";
/// File name of the manager's identity key inside the data directory.
pub const KEY_FILE: &str = "manager.key";
