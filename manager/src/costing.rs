//! "Iterating the geometry": a job's machine-independent cost per photon history, measured by
//! a calibration batch on the manager's own engine, and the prices derived from it.
//!
//! **Cost unit.** One cost unit is one photon launch plus one scattering event; a history's cost
//! is `1 + scatters` units (each scattering event is one propagation step with its boundary
//! tests, the dominant work per history; the per-photon record the engine exposes does not
//! count voxel crossings, so they are not part of the unit). The cost per history is the mean
//! over the calibration batch, in milli-units (`1000 * (1 + mean scatters)`, rounded up).
//!
//! The batch is deterministic: photons `0..n` with the fixed seed [`CALIBRATION_SEED`] (the
//! job's own seed is not used, so the price does not depend on it), run in blocks of
//! [`BLOCK`] photons on one thread; if a block ends past the time bound the batch stops there
//! (at least one block always runs) and the cost is the mean over the blocks run.
//!
//! **Prices** (the only implementation of them; the market and the store both call these).
//! Price per cost unit `p` micro-credits; a history's price is `ceil(cost_milli * p / 1000)`
//! micro-credits, at least 1, fixed when the job is accepted; work of `h` histories is paid
//! `h` times that, so the pieces of a job never add up to more than its maximum cost
//! (`photons` times that). The manager's fee is `fee_bp` basis points of the work paid, rounded
//! down.
//! Check runs (duplicates, arbitration) are paid from a check allowance of
//! `check_allowance_permille` of the maximum cost. The escrow a job takes is maximum cost +
//! fee on it + check allowance; what is left of it when the job ends is refunded.

use std::time::{Duration, Instant};

use compushare_kernels::transport::{job::Job, Engine, TransportError};
use compushare_protocol::types::Amount;

/// Seed of every calibration batch.
pub const CALIBRATION_SEED: u64 = 0x0C05_75A2_E5EE_D001;
/// Photons per calibration block (the time bound is checked between blocks).
pub const BLOCK: u64 = 256;

/// Why a calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CostingError {
    /// The engine refused the job.
    #[error("calibration: {0}")]
    Engine(#[from] TransportError),
    /// No photon ran.
    #[error("calibration ran no photons")]
    Empty,
}

/// Result of a calibration batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    /// Photons actually run.
    pub photons: u64,
    /// Mean cost per history, milli cost units (at least 1000).
    pub cost_per_history_milli: u64,
    /// Whether the time bound cut the batch short.
    pub truncated: bool,
    /// Wall time of the batch (informational).
    pub elapsed: Duration,
}

/// Runs the calibration batch: up to `photons` histories, stopping after the block that
/// crosses `max_time`.
pub fn calibrate(job: &Job, photons: u64, max_time: Duration) -> Result<Calibration, CostingError> {
    let mut cal = job.clone();
    cal.seed = CALIBRATION_SEED;
    let engine = Engine::new(&cal)?;
    let start = Instant::now();
    let mut done = 0u64;
    let mut units: u128 = 0;
    let mut truncated = false;
    while done < photons.max(1) {
        let n = BLOCK.min(photons.max(1) - done);
        for i in done..done + n {
            let r = engine.simulate_photon(i);
            units += 1 + u128::from(r.scatters);
        }
        done += n;
        if start.elapsed() > max_time && done < photons {
            truncated = true;
            break;
        }
    }
    if done == 0 {
        return Err(CostingError::Empty);
    }
    let milli = (units * 1000).div_ceil(u128::from(done));
    Ok(Calibration {
        photons: done,
        cost_per_history_milli: u64::try_from(milli).unwrap_or(u64::MAX),
        truncated,
        elapsed: start.elapsed(),
    })
}

/// A history's price, micro-credits: `ceil(cost_milli * price_per_unit / 1000)`, at least 1.
pub fn price_per_history(cost_per_history_milli: u64, price_per_unit: Amount) -> u64 {
    cost_per_history_milli
        .saturating_mul(price_per_unit.0)
        .div_ceil(1000)
        .max(1)
}

/// What `histories` of work at `price_per_history` are paid (saturating: an absurd job is
/// refused by its escrow, never paid a wrapped amount).
pub fn pay(histories: u64, price_per_history: u64) -> u64 {
    histories.saturating_mul(price_per_history)
}

/// The manager's fee on `paid`: `fee_bp` basis points (hundredths of a percent) of it, rounded
/// down.
pub fn fee(paid: u64, fee_bp: u64) -> u64 {
    let v = u128::from(paid) * u128::from(fee_bp) / 10_000;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The check allowance a market escrows with a job unless configured otherwise, per mille of
/// its maximum cost (3%: about three duplicate runs per hundred assignments).
pub const DEFAULT_CHECK_ALLOWANCE_PERMILLE: u64 = 30;

/// The check allowance escrowed with a job: `permille` of its maximum cost.
pub fn check_allowance(photons: u64, price_per_history: u64, permille: u64) -> u64 {
    let v = u128::from(pay(photons, price_per_history)) * u128::from(permille) / 1000;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// What a job moves into escrow when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escrow {
    /// Every photon paid at the job's price per history.
    pub max_cost: u64,
    /// The fee on the maximum cost.
    pub fee: u64,
    /// The check allowance.
    pub checks: u64,
    /// `max_cost + fee + checks`.
    pub total: u64,
}

/// The cheapest a job of `photons` can possibly be: every history one cost unit (a launch
/// with no scattering event, the least a history costs), with fee and check allowance. A
/// client whose balance is below this is refused before its job is even uploaded.
pub fn cheapest_escrow(
    photons: u64,
    price_per_unit: Amount,
    fee_bp: u64,
    check_allowance_permille: u64,
) -> u64 {
    escrow(
        photons,
        price_per_history(1000, price_per_unit),
        fee_bp,
        check_allowance_permille,
    )
    .total
}

/// The escrow of a job of `photons` at `price_per_history`.
pub fn escrow(
    photons: u64,
    price_per_history: u64,
    fee_bp: u64,
    check_allowance_permille: u64,
) -> Escrow {
    let max_cost = pay(photons, price_per_history);
    let fee = fee(max_cost, fee_bp);
    let checks = check_allowance(photons, price_per_history, check_allowance_permille);
    Escrow {
        max_cost,
        fee,
        checks,
        total: max_cost.saturating_add(fee).saturating_add(checks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_kernels::transport::{builtin::builtin_job, input::ParseOptions};

    #[test]
    fn pieces_never_exceed_the_escrow() {
        // 1.5 units at 3 µc/unit: 4.5 µc, rounded up to 5.
        assert_eq!(price_per_history(1_500, Amount(3)), 5);
        assert_eq!(price_per_history(0, Amount(3)), 1);
        let pph = price_per_history(1_500, Amount(3));
        let e = escrow(1000, pph, 500, 30);
        assert_eq!(
            (e.max_cost, e.fee, e.checks, e.total),
            (5_000, 250, 150, 5_400)
        );
        let parts: u64 = [333u64, 333, 334].iter().map(|&h| pay(h, pph)).sum();
        assert!(parts <= e.max_cost);
        assert!(fee(parts, 500) <= e.fee);
        assert_eq!(fee(19, 500), 0, "rounded down");
        // Basis points: 0.25 % is representable (a per-mille rate would round it away).
        assert_eq!(fee(10_000, 25), 25);
        let huge = escrow(u64::MAX, u64::MAX, 10_000, 1000);
        assert_eq!(
            huge.total,
            u64::MAX,
            "saturates, so it is refused, never wraps"
        );
    }

    /// The workspace's release profile turns overflow checks on for this crate (Cargo.toml):
    /// tests run in release, and an overflow on a money or photon path must panic here, not
    /// wrap.
    #[test]
    #[should_panic]
    fn overflow_checks_are_on_in_the_release_profile() {
        let x: u64 = std::hint::black_box(u64::MAX);
        let _ = std::hint::black_box(x + 1);
    }

    #[test]
    fn calibration_is_deterministic_and_seed_independent() {
        let job = builtin_job("cube60", &ParseOptions::default()).expect("builtin cube60");
        let a = calibrate(&job, 512, Duration::from_secs(60)).expect("calibrate");
        let mut other = job.clone();
        other.seed ^= 0xdead_beef;
        let b = calibrate(&other, 512, Duration::from_secs(60)).expect("calibrate");
        assert_eq!(a.photons, 512);
        assert!(!a.truncated);
        assert_eq!(a.cost_per_history_milli, b.cost_per_history_milli);
        // cube60 is a scattering medium: far more than one unit per history.
        assert!(a.cost_per_history_milli > 10_000, "{a:?}");
    }

    #[test]
    fn calibration_time_bound_stops_after_a_block() {
        let job = builtin_job("cube60", &ParseOptions::default()).expect("builtin cube60");
        let a = calibrate(&job, 1_000_000, Duration::ZERO).expect("calibrate");
        assert!(a.truncated);
        assert_eq!(a.photons, BLOCK);
    }
}
