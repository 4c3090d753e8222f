//! Helpers shared by the manager's state tests.
#![allow(dead_code)]

use std::path::PathBuf;

use compushare_manager::records::AssignmentState;
use compushare_manager::store::{NewAssignment, NewJob};
use compushare_manager::{Config, Store, StoreError};
use compushare_protocol::types::{Amount, AssignmentId, JobId, Mode, PhotonRange};

/// A fresh directory under the target dir (no tempfile crate: keeps the build lean).
pub fn temp_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!(
        "compushare-manager-test-{}-{}-{}",
        name,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("create temp dir");
    base
}

/// A store with `config`.
pub fn store_with(name: &str, config: &Config) -> (Store, PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("manager.redb");
    let (store, created) = Store::init(&path, config).expect("init store");
    assert!(created);
    (store, path)
}

pub const CLIENT: [u8; 32] = [0xC1; 32];
pub const RIG_A: [u8; 32] = [0xA1; 32];
pub const RIG_B: [u8; 32] = [0xB2; 32];

/// A job of `photons` histories at 2 cost units per history (price 1 µc/unit: 2 µc/history).
pub fn new_job(photons: u64, max_price: u64) -> NewJob {
    NewJob {
        client: CLIENT,
        photons,
        seed: 42,
        mode: Mode::Cheapest,
        max_price: Amount(max_price),
        cost_per_history_milli: 2_000,
    }
}

/// Creates an assignment and marks it verified.
pub fn verified_assignment(
    store: &Store,
    job: JobId,
    rig: [u8; 32],
    start: u64,
    count: u64,
) -> Result<AssignmentId, StoreError> {
    store.write(|tx| {
        let mut a = tx.create_assignment(&NewAssignment {
            job,
            rig,
            device: 0,
            photons: PhotonRange { start, count },
            deadline_unix_s: tx.now() + 60,
            duplicate_of: None,
        })?;
        a.state = AssignmentState::Verified;
        tx.put_assignment(&a)?;
        Ok(a.id)
    })
}
