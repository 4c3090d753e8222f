//! CompuShare management node.
//!
//! Persistent state (one redb database under the data directory) and the rules that act on it:
//! - [`store`]: the database, its tables and the read/write transactions everything goes through;
//! - [`ledger`]: the double-entry, hash-chained ledger, money operations and settlement;
//! - [`trust`]: per-rig trust records, promotion/demotion and star ratings;
//! - [`records`]: jobs, assignments and results as stored;
//! - [`costing`]: calibration of a job's machine-independent cost and its price;
//! - [`config`]: the manager's settings, stored in the database;
//! - [`codec`]: how stored values are encoded and decoded (typed errors on corrupt bytes).
//!
//! Money moves only inside a [`store::WriteTx`], together with the state change it pays for,
//! so a crash at any moment commits all of it or none.

#![deny(unsafe_code)]

pub mod codec;
pub mod config;
pub mod costing;
pub mod ledger;
pub mod records;
pub mod store;
pub mod trust;

pub use config::Config;
pub use ledger::{Account, Entry, EntryKind, InternalCredit, Settlement, SettlementRef};
pub use records::{AssignmentRecord, AssignmentState, JobRecord, JobState};
pub use store::{ReadTx, Store, StoreError, WriteTx};
pub use trust::RigRecord;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "manager.redb";
/// File name of the manager's identity key inside the data directory.
pub const KEY_FILE: &str = "manager.key";
