//! The manager's settings: defaults, validation, and their place in the database (one record
//! in the meta table, written by `manager init` and read on every start).

use compushare_protocol::types::Amount;
use serde::{Deserialize, Serialize};

/// Tunable settings of a management node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Consecutive verified histories without error after which a rig becomes trusted.
    pub promote_after: u64,
    /// Manager fee in basis points of the work paid to workers (500 = 5%).
    pub fee_bp: u32,
    /// Announced price per cost unit, micro-credits (see [`crate::costing`]).
    pub price_per_unit: Amount,
    /// Share of assignments also run on a trusted rig, parts per million (10,000 = 1%).
    pub duplicate_rate_ppm: u32,
    /// Histories sampled per check window. The default, 459, catches a rig that fabricates
    /// 1% of its histories with probability 1 - 0.99^459 > 99%.
    pub sample_k: u32,
    /// Target duration of one assignment, seconds (30 to 120).
    pub assignment_target_s: u32,
    /// Extra time allowed past an assignment's expected duration, percent of it.
    pub deadline_slack_percent: u32,
    /// Minimum time from assignment to deadline, seconds (covers geometry fetch and upload).
    pub deadline_min_s: u32,
    /// Verified histories a rig needs before its pay becomes spendable (guards against fake
    /// identities farming duplicates).
    pub spendable_after: u64,
    /// Photons of a job's calibration batch.
    pub calibration_photons: u64,
    /// Wall-clock bound on a calibration batch, milliseconds.
    pub calibration_max_ms: u64,
    /// Most memory one job may take on this node, bytes: its tally, label volume and working
    /// copies, bounded from the job's JSON before any grid is built (see
    /// [`compushare_kernels::transport::input::bound`]). Network-facing: any client with a
    /// balance can ask for this much per job, so it is far below a machine's memory.
    pub max_job_bytes: u64,
    /// What one credit is worth in millisatoshi (at least 1). Rigs are told it in `Welcome`
    /// and compare transport prices with mining revenue in that unit, so it decides when a
    /// farm's devices leave hashing for this node's work.
    pub credit_msat: u64,
}

/// Default [`Config::max_job_bytes`]: 512 MiB (a 200^3 grid with 8 time gates fits; an
/// 800^3 grid does not).
pub const DEFAULT_MAX_JOB_BYTES: u64 = 512 << 20;

/// Histories sampled per check window: the smallest k with 0.99^k <= 0.01.
pub const DEFAULT_SAMPLE_K: u32 = 459;

impl Default for Config {
    fn default() -> Self {
        Config {
            promote_after: 100_000_000,
            fee_bp: 500,
            price_per_unit: Amount(1),
            duplicate_rate_ppm: 10_000,
            sample_k: DEFAULT_SAMPLE_K,
            assignment_target_s: 60,
            // What the market ran with before these were read: three times the expected
            // time, at least two minutes (a geometry fetch and an upload on a slow link).
            deadline_slack_percent: 200,
            deadline_min_s: 120,
            spendable_after: 1_000_000,
            calibration_photons: 512,
            calibration_max_ms: 2_000,
            max_job_bytes: DEFAULT_MAX_JOB_BYTES,
            credit_msat: 1,
        }
    }
}

/// A setting outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

impl Config {
    /// Checks every field's range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.promote_after == 0 {
            return Err(bad("promote_after", "must be at least 1"));
        }
        if self.fee_bp > 10_000 {
            return Err(bad(
                "fee_bp",
                format!("{} exceeds 10000 (100%)", self.fee_bp),
            ));
        }
        if self.price_per_unit.0 == 0 {
            return Err(bad("price_per_unit", "must be at least 1 micro-credit"));
        }
        if self.duplicate_rate_ppm > 1_000_000 {
            return Err(bad(
                "duplicate_rate_ppm",
                format!("{} exceeds 1000000", self.duplicate_rate_ppm),
            ));
        }
        if self.sample_k == 0 || self.sample_k > 100_000 {
            return Err(bad(
                "sample_k",
                format!("{} not in 1..=100000", self.sample_k),
            ));
        }
        if !(30..=120).contains(&self.assignment_target_s) {
            return Err(bad(
                "assignment_target_s",
                format!("{} not in 30..=120", self.assignment_target_s),
            ));
        }
        if self.deadline_slack_percent > 10_000 {
            return Err(bad("deadline_slack_percent", "exceeds 10000"));
        }
        if self.deadline_min_s == 0 {
            return Err(bad("deadline_min_s", "must be at least 1"));
        }
        if self.calibration_photons == 0 || self.calibration_photons > 10_000_000 {
            return Err(bad("calibration_photons", "not in 1..=10000000"));
        }
        if self.calibration_max_ms == 0 {
            return Err(bad("calibration_max_ms", "must be at least 1"));
        }
        if !(1 << 20..=64 << 30).contains(&self.max_job_bytes) {
            return Err(bad("max_job_bytes", "not in 1 MiB..=64 GiB"));
        }
        if self.credit_msat == 0 {
            return Err(bad("credit_msat", "must be at least 1 millisatoshi"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        // 0.99^k <= 0.01 first holds at 459.
        let miss = |k: i32| 0.99f64.powi(k);
        assert!(miss(DEFAULT_SAMPLE_K as i32) <= 0.01);
        assert!(miss(DEFAULT_SAMPLE_K as i32 - 1) > 0.01);
    }

    #[test]
    fn bad_fields_are_named() {
        let c = Config {
            fee_bp: 10_001,
            ..Config::default()
        };
        assert_eq!(c.validate().map_err(|e| e.field), Err("fee_bp"));
        let c = Config {
            assignment_target_s: 10,
            ..Config::default()
        };
        assert_eq!(
            c.validate().map_err(|e| e.field),
            Err("assignment_target_s")
        );
    }
}
