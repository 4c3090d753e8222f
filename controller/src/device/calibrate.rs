//! What a device does per second, measured on the device itself: hashes (a short scan
//! against a target no hash meets) and transport histories (a few photons of a job). The
//! figures go into Hello (the manager sizes assignments with them) and into the scheduler's
//! revenue estimates until live rates replace them.
//!
//! A measurement that fails leaves its figure at 0 (the device is then never chosen for that
//! work until live rates say otherwise); the caller logs it and counts it in
//! [`CalibrationFailures`], one counter per [`DeviceError`] variant, which the status
//! snapshot carries to the console and the metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use compushare_kernels::sha256d::{ScanWork, Target};
use compushare_kernels::transport::builtin::builtin_job;
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::job::Job;

use super::{Device, DeviceError, Output, Scan};

/// Nonces of the start-up hash measurement, log2 (a few milliseconds per core).
const HASH_PROBE_BITS: u32 = 18;

/// The reference benchmark of Hello's `histories_per_s`.
pub const REFERENCE_JOB: &str = "cube60";

/// Hashes per second of `d`.
pub fn hash_rate(d: &dyn Device) -> Result<u64, DeviceError> {
    // A target of zero: no hash meets it, so the scan runs its whole range.
    let work = ScanWork::new([0x5a; 80], Target::from_be_bytes([0; 32]));
    let never = AtomicBool::new(false);
    let n = (1u64 << HASH_PROBE_BITS) * u64::from(d.describe().cores.clamp(1, 1 << 12));
    let n = n.min(1 << 32);
    let began = Instant::now();
    let hashes = d.scan(Scan {
        work: &work,
        nonces: 0..n,
        cancel: &never,
        found: &|_| {},
    })?;
    let secs = began.elapsed().as_secs_f64().max(1e-6);
    Ok((hashes as f64 / secs) as u64)
}

/// Histories per second of `d` on `job` over its first `photons` photons. Loading the job
/// (building its model, uploading it to a GPU) is not timed: an assignment pays it once, so
/// timing it would make short calibrations of large grids understate the device.
pub fn histories_per_s(d: &dyn Device, job: &Job, photons: u64) -> Result<u64, DeviceError> {
    let photons = photons.max(1);
    let mut loaded = d.load(job)?;
    let began = Instant::now();
    loaded.run(0..photons, Output::Tally)?;
    let secs = began.elapsed().as_secs_f64().max(1e-6);
    Ok(((photons as f64 / secs) as u64).max(1))
}

/// Histories per second of `d` on the reference job.
pub fn reference_histories_per_s(d: &dyn Device, photons: u64) -> Result<u64, DeviceError> {
    let opts = ParseOptions {
        photons: Some(photons.max(1)),
        ..ParseOptions::default()
    };
    let job = builtin_job(REFERENCE_JOB, &opts)
        .map_err(|_| DeviceError::Unsupported("the reference job does not parse"))?;
    histories_per_s(d, &job, photons)
}

/// Failed calibrations since start, one counter per [`DeviceError`] variant (the start-up
/// measurements and the transport session's per-job calibrations alike). Shared by whoever
/// calibrates; read into a [`CalibrationCounts`] for the status snapshot.
#[derive(Debug, Default)]
pub struct CalibrationFailures {
    by_kind: [AtomicU64; DeviceError::KINDS.len()],
}

impl CalibrationFailures {
    /// Counts one failed calibration.
    pub fn count(&self, e: &DeviceError) {
        let kind = e.kind();
        if let Some(c) = DeviceError::KINDS
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.by_kind.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn counts(&self) -> CalibrationCounts {
        CalibrationCounts {
            by_kind: self.by_kind.each_ref().map(|c| c.load(Ordering::Relaxed)),
        }
    }
}

/// Failed calibrations by [`DeviceError`] variant, as the status snapshot shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CalibrationCounts {
    /// Indexed as [`DeviceError::KINDS`].
    pub by_kind: [u64; DeviceError::KINDS.len()],
}

impl CalibrationCounts {
    /// Every variant's name with its count (zeros included), in [`DeviceError::KINDS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DeviceError::KINDS.iter().copied().zip(self.by_kind)
    }

    /// The count for the variant named `kind` (0 for a name that is none).
    pub fn of(&self, kind: &str) -> u64 {
        self.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| n)
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }
}
