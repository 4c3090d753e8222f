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
//! **Prices.** Price per cost unit `p` micro-credits; price per history in nano-credits is
//! `cost_milli * p`; work of `h` histories costs `floor(h * cost_milli * p / 1000)`
//! micro-credits when paid, and a job's maximum cost rounds up.

use std::time::{Duration, Instant};

use compushare_kernels::transport::{job::Job, Engine, TransportError};
use compushare_protocol::types::Amount;

use crate::store::StoreError;

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

/// A job's price terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pricing {
    pub cost_per_history_milli: u64,
    /// Micro-credits per cost unit.
    pub price_per_unit: Amount,
}

impl Pricing {
    /// Price of one history, nano-credits.
    pub fn price_per_history_nano(&self) -> u128 {
        u128::from(self.cost_per_history_milli) * u128::from(self.price_per_unit.0)
    }

    /// What `histories` of work are paid, micro-credits (rounded down).
    pub fn cost_of(&self, histories: u64) -> Result<Amount, StoreError> {
        let v = u128::from(histories)
            .checked_mul(self.price_per_history_nano())
            .ok_or(StoreError::Overflow("cost of histories"))?
            / 1000;
        u64::try_from(v)
            .map(Amount)
            .map_err(|_| StoreError::Overflow("cost of histories"))
    }

    /// A job's maximum cost for `photons` histories, micro-credits (rounded up, so every
    /// assignment's rounded-down pay fits in it).
    pub fn max_cost(&self, photons: u64) -> Result<Amount, StoreError> {
        let v = u128::from(photons)
            .checked_mul(self.price_per_history_nano())
            .ok_or(StoreError::Overflow("max job cost"))?
            .div_ceil(1000);
        u64::try_from(v)
            .map(Amount)
            .map_err(|_| StoreError::Overflow("max job cost"))
    }
}

/// What a job would cost: its calibration and the escrow it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub calibration: Calibration,
    pub pricing: Pricing,
    /// Maximum cost of all photons, micro-credits.
    pub max_cost: Amount,
    /// Maximum fee on it.
    pub fee: Amount,
    /// `max_cost + fee`: what moves into escrow.
    pub escrow: Amount,
}

/// Calibrates `job` with the configured batch and prices `photons` of it at the configured
/// price per unit and fee.
pub fn quote(job: &Job, photons: u64, config: &crate::Config) -> Result<Quote, QuoteError> {
    let calibration = calibrate(
        job,
        config.calibration_photons,
        Duration::from_millis(config.calibration_max_ms),
    )?;
    let pricing = Pricing {
        cost_per_history_milli: calibration.cost_per_history_milli,
        price_per_unit: config.price_per_unit,
    };
    let max_cost = pricing.max_cost(photons)?;
    let fee = fee(max_cost, config.fee_bp)?;
    let escrow = max_cost
        .0
        .checked_add(fee.0)
        .map(Amount)
        .ok_or(StoreError::Overflow("escrow"))?;
    Ok(Quote {
        calibration,
        pricing,
        max_cost,
        fee,
        escrow,
    })
}

/// Why a job could not be quoted.
#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    /// Calibration failed.
    #[error(transparent)]
    Costing(#[from] CostingError),
    /// The price overflows.
    #[error(transparent)]
    Price(#[from] StoreError),
}

/// The manager's fee on `amount`: `fee_bp` basis points, rounded up.
pub fn fee(amount: Amount, fee_bp: u32) -> Result<Amount, StoreError> {
    let v = (u128::from(amount.0) * u128::from(fee_bp)).div_ceil(10_000);
    u64::try_from(v)
        .map(Amount)
        .map_err(|_| StoreError::Overflow("fee"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_kernels::transport::{builtin::builtin_job, input::ParseOptions};

    #[test]
    fn pricing_rounds_pay_down_and_max_up() {
        let p = Pricing {
            cost_per_history_milli: 1_500,
            price_per_unit: Amount(3),
        };
        assert_eq!(p.price_per_history_nano(), 4_500);
        assert_eq!(p.cost_of(1).map(|a| a.0).ok(), Some(4));
        assert_eq!(p.max_cost(1).map(|a| a.0).ok(), Some(5));
        assert_eq!(p.cost_of(1000).map(|a| a.0).ok(), Some(4_500));
        // Pieces paid separately never exceed the whole's maximum.
        let parts: u64 = [333u64, 333, 334]
            .iter()
            .map(|&h| p.cost_of(h).map(|a| a.0).unwrap_or(u64::MAX))
            .sum();
        assert!(parts <= p.max_cost(1000).map(|a| a.0).unwrap_or(0));
        assert_eq!(fee(Amount(1000), 500).map(|a| a.0).ok(), Some(50));
        assert_eq!(fee(Amount(1), 500).map(|a| a.0).ok(), Some(1));
        let huge = Pricing {
            cost_per_history_milli: u64::MAX,
            price_per_unit: Amount(u64::MAX),
        };
        assert!(huge.max_cost(u64::MAX).is_err());
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
    fn quote_matches_pricing() {
        let job = builtin_job("cube60", &ParseOptions::default()).expect("builtin cube60");
        let config = crate::Config {
            calibration_photons: 256,
            price_per_unit: Amount(2),
            ..crate::Config::default()
        };
        let q = quote(&job, 1_000_000, &config).expect("quote");
        let per = q.calibration.cost_per_history_milli;
        assert_eq!(q.pricing.price_per_history_nano(), u128::from(per) * 2);
        assert_eq!(
            u128::from(q.max_cost.0),
            (1_000_000 * u128::from(per) * 2).div_ceil(1000)
        );
        assert_eq!(q.escrow.0, q.max_cost.0 + q.fee.0);
        assert_eq!(
            u128::from(q.fee.0),
            (u128::from(q.max_cost.0) * 500).div_ceil(10_000)
        );
    }

    #[test]
    fn calibration_time_bound_stops_after_a_block() {
        let job = builtin_job("cube60", &ParseOptions::default()).expect("builtin cube60");
        let a = calibrate(&job, 1_000_000, Duration::ZERO).expect("calibrate");
        assert!(a.truncated);
        assert_eq!(a.photons, BLOCK);
    }
}
