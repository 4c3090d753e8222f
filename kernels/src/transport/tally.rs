//! What a transport run produces, in integers.
//!
//! Photon weight is carried in fixed point: one launched photon is [`WEIGHT_ONE`] units.
//! Every quantity below is a sum of such units over photons, so tallies of disjoint photon
//! ranges merge by plain integer addition, and the result of `[0,k) + [k,N)` is bit-identical
//! to one run over `[0,N)` whatever the thread count or device.

/// Fixed-point units of one launched photon's weight.
pub const WEIGHT_ONE: u64 = 1 << 32;

/// One photon recorded by a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedPhoton {
    /// Global photon index (the RNG counter), which orders records canonically.
    pub photon: u64,
    /// Detector index in `Job::detectors`.
    pub detector: u16,
    /// Scattering events before detection.
    pub scatters: u32,
    /// Partial path length per medium (index = label, row 0 unused), mm.
    pub path_mm: Vec<f32>,
    /// Exit position, grid units.
    pub exit_pos: [f32; 3],
    /// Exit direction (unit vector).
    pub exit_dir: [f32; 3],
    /// Exit weight in fixed-point units.
    pub weight: u64,
}

/// The integer result of simulating a photon range of one job.
///
/// Exact identity (integers): `sum(deposit) + escaped + alive_at_t1 + specular +
/// roulette_killed == launched + roulette_gained`; without roulette the last two are 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    /// Number of photons launched in the range(s) merged here.
    pub photons: u64,
    /// Energy deposited per voxel per gate, weight units; index `gate * voxels + voxel`.
    pub deposit: Vec<u64>,
    /// Weight escaped through each face (`job::FACE_NAMES` order).
    pub escaped: [u64; 6],
    /// Weight removed by specular reflection at entry.
    pub specular: u64,
    /// Weight of photons still alive when the time window closed.
    pub alive_at_t1: u64,
    /// Detected photons, sorted by `photon`.
    pub detected: Vec<DetectedPhoton>,
    /// Launched weight: `photons * WEIGHT_ONE` except for pattern sources, whose photons start
    /// with their pattern weight. The denominator of every reported fraction.
    pub launched: u64,
    /// Weight added to photons that survived Russian roulette.
    pub roulette_gained: u64,
    /// Weight of photons lost at Russian roulette.
    pub roulette_killed: u64,
}
