//! Helpers shared by the manager's state tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use compushare_manager::costing;
use compushare_manager::persist::{JobTerms, Persist, PersistError, Recorded, Verified};
use compushare_manager::records::{AssignmentRecord, AssignmentState, JobRecord, Verification};
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
pub fn store_with(name: &str, config: &Config) -> (Arc<Store>, PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("manager.redb");
    let (store, created) = Store::init(&path, config).expect("init store");
    assert!(created);
    (Arc::new(store), path)
}

pub const CLIENT: [u8; 32] = [0xC1; 32];
pub const RIG_A: [u8; 32] = [0xA1; 32];
pub const RIG_B: [u8; 32] = [0xB2; 32];

/// 2 cost units per history at 1 µc per unit: 2 µc per history.
pub const COST_MILLI: u64 = 2_000;
/// The manager's fee in these tests, in basis points (5%).
pub const FEE_BP: u64 = 500;

/// Accepts a job of `photons` histories at [`COST_MILLI`] through the market's own path
/// (`Persist::accept_job`, escrow by `costing::escrow`, no check allowance).
pub fn create_job(
    store: &Arc<Store>,
    photons: u64,
    max_price: u64,
    input: &[u8],
) -> Result<JobRecord, PersistError> {
    let pph = costing::price_per_history(COST_MILLI, Amount(1));
    let escrow = costing::escrow(photons, pph, FEE_BP, 0);
    let terms = JobTerms {
        client: CLIENT,
        photons,
        seed: 42,
        mode: Mode::Cheapest,
        max_price: Amount(max_price),
        cost_per_history_milli: COST_MILLI,
        price_per_unit: Amount(1),
        escrow: Amount(escrow.total),
        fee_bp: FEE_BP,
        check_allowance_permille: 0,
    };
    let id = Persist::new(Arc::clone(store)).accept_job(&terms, input)?;
    Ok(store.read()?.job(id)?.ok_or(StoreError::UnknownJob(id.0))?)
}

/// An assignment of `job` on `rig`, recorded in `state` (not paid).
pub fn assignment(
    store: &Arc<Store>,
    job: JobId,
    rig: [u8; 32],
    start: u64,
    count: u64,
    state: AssignmentState,
) -> Result<AssignmentRecord, PersistError> {
    let job_rec = store
        .read()?
        .job(job)?
        .ok_or(StoreError::UnknownJob(job.0))?;
    store.write(|tx| {
        let id = AssignmentId(tx.reserve_assignment_ids(1)?.start);
        let rec = AssignmentRecord {
            id,
            job,
            rig,
            payout_to: rig,
            device: 0,
            photons: PhotonRange { start, count },
            seed: job_rec.seed,
            issued_unix_s: tx.now(),
            deadline_unix_s: tx.now() + 60,
            payout: Amount(costing::pay(count, job_rec.price_per_history())),
            state,
            commit: None,
            verification: Verification::Pending,
            duplicate_of: None,
            paid: false,
        };
        tx.put_assignment(&rec)?;
        Ok(rec)
    })
}

/// A verified assignment (not yet paid).
pub fn verified_assignment(
    store: &Arc<Store>,
    job: JobId,
    rig: [u8; 32],
    start: u64,
    count: u64,
) -> Result<AssignmentRecord, PersistError> {
    assignment(store, job, rig, start, count, AssignmentState::Verified)
}

/// Records `a` verified and pays its rig the way the market does (`Persist::verified`: trust
/// record, held tally, payment, in one transaction); spendable once the rig has the store's
/// `spendable_after` verified histories.
pub fn pay(store: &Arc<Store>, a: &AssignmentRecord) -> Result<Recorded, PersistError> {
    let spendable_after = store.config()?.spendable_after;
    Persist::new(Arc::clone(store)).verified(
        &[],
        &Verified {
            record: a.clone(),
            payout_to: a.rig,
            tally: vec![1, 2, 3],
            elapsed_ms: 1_000,
            cost_milli: a.photons.count.saturating_mul(COST_MILLI),
            trust_histories: a.photons.count,
            promote_after: u64::MAX,
            spendable_after,
            primary: true,
        },
    )
}

/// Finishes a job the way the market does (`Persist::finished`): fee [`FEE_BP`] of
/// what was paid, the rest of the escrow refunded. Returns (fee, refund).
pub fn finish(store: &Arc<Store>, job: JobId) -> Result<(u64, u64), PersistError> {
    let read = store.read()?;
    let rec = read.job(job)?.ok_or(StoreError::UnknownJob(job.0))?;
    let held: Vec<AssignmentId> = read
        .assignments()?
        .into_iter()
        .filter(|a| a.job == job && a.state == AssignmentState::Verified)
        .map(|a| a.id)
        .collect();
    drop(read);
    let fee = costing::fee(rec.paid.0, FEE_BP);
    Persist::new(Arc::clone(store)).finished(&[], job, b"merged", [9; 32], fee, &held)
}
