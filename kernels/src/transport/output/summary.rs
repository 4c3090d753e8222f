//! The run summary (`compushare sim --json`), computed from a tally.
//!
//! All energies are fractions of the launched energy (`Tally::launched`: `WEIGHT_ONE *
//! photons`, less for pattern sources).
//! `absorbed_fraction` is MCX's printed definition, `1 - escaped - specular`, so weight still
//! alive at `T1` counts as absorbed; `deposited` is what the voxels actually received.

use serde_json::{json, Map, Value};

use crate::transport::job::FACE_NAMES;
use crate::transport::tally::Tally;

/// Energy balance and counts of one tally.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Photons launched.
    pub photons: u64,
    /// `1 - escaped_total - specular`.
    pub absorbed_fraction: f64,
    /// Energy deposited in voxels.
    pub deposited: f64,
    /// Weight of photons ended by the time window.
    pub alive_at_t1: f64,
    /// Weight removed by specular reflection at entry.
    pub specular: f64,
    /// Weight escaped per face, in `FACE_NAMES` order.
    pub escaped: [f64; 6],
    /// Photons recorded by detectors.
    pub detected: u64,
}

/// How a run went: what the summary's JSON reports besides energies.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// RNG seed used.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// Device name (`cpu`, `cuda:0`).
    pub device: String,
    /// Wall time of the simulation, milliseconds.
    pub elapsed_ms: f64,
    /// `Tally::digest` of the result.
    pub digest: [u8; 32],
}

impl Summary {
    /// Computes the summary; a tally with nothing launched gives all-zero fractions.
    pub fn new(tally: &Tally) -> Self {
        let launched = tally.launched as f64;
        let frac = |units: u128| {
            if launched > 0.0 {
                units as f64 / launched
            } else {
                0.0
            }
        };
        let deposited_units: u128 = tally.deposit.iter().map(|&d| u128::from(d)).sum();
        let escaped = tally.escaped.map(|e| frac(u128::from(e)));
        let escaped_units: u128 = tally.escaped.iter().map(|&e| u128::from(e)).sum();
        let specular = frac(u128::from(tally.specular));
        let absorbed_fraction = if launched > 0.0 {
            1.0 - frac(escaped_units) - specular
        } else {
            0.0
        };
        Summary {
            photons: tally.photons,
            absorbed_fraction,
            deposited: frac(deposited_units),
            alive_at_t1: frac(u128::from(tally.alive_at_t1)),
            specular,
            escaped,
            detected: tally.detected.len() as u64,
        }
    }

    /// Total escaped fraction over all faces.
    pub fn escaped_total(&self) -> f64 {
        self.escaped.iter().sum()
    }

    /// The CONTRACT's `--json` object.
    pub fn to_json(&self, run: &RunInfo) -> Value {
        let mut escaped = Map::new();
        for (name, e) in FACE_NAMES.iter().zip(self.escaped) {
            escaped.insert((*name).to_owned(), json!(e));
        }
        let per_ms = if run.elapsed_ms > 0.0 {
            self.photons as f64 / run.elapsed_ms
        } else {
            0.0
        };
        let digest: String = run.digest.iter().map(|b| format!("{b:02x}")).collect();
        json!({
            "photons": self.photons,
            "seed": run.seed,
            "threads": run.threads,
            "device": run.device,
            "absorbed_fraction": self.absorbed_fraction,
            "deposited": self.deposited,
            "alive_at_t1": self.alive_at_t1,
            "specular": self.specular,
            "escaped": Value::Object(escaped),
            "detected": self.detected,
            "elapsed_ms": run.elapsed_ms,
            "photons_per_ms": per_ms,
            "digest": digest,
        })
    }
}
