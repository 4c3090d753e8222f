//! The validated description of one transport job.
//!
//! Everything here is already checked (see `input` for the MCX JSON parser that produces it):
//! the engine may index `labels` with any in-grid voxel and `media` with any label without
//! further checks. Positions are in grid units (voxels, MCX's internal convention with
//! OriginType 1: voxel `[i,j,k]` spans `[i,i+1) x [j,j+1) x [k,k+1)`); optical coefficients are
//! per millimetre and `unit_mm` converts a grid length to millimetres.

/// Speed of light in vacuum, mm/s (MCX's `R_C0` scaled to millimetres).
pub const C0_MM_PER_S: f64 = 299_792_458_000.0;

/// Optical properties of one medium (one row of MCX's `Media` table).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Medium {
    /// Absorption coefficient, 1/mm.
    pub mua: f32,
    /// Scattering coefficient, 1/mm.
    pub mus: f32,
    /// Henyey-Greenstein anisotropy, in [-1, 1].
    pub g: f32,
    /// Refractive index, > 0.
    pub n: f32,
}

/// What happens to a photon that reaches one face of the grid (MCX `BCFlags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceBoundary {
    /// `a`: the photon leaves (escapes) even when indices differ.
    Absorb,
    /// `r`: Fresnel reflection/refraction against the background medium (row 0).
    Fresnel,
    /// `m`: total (mirror) reflection.
    Mirror,
    /// `c`: the photon re-enters through the opposite face.
    Cyclic,
}

/// Face order used everywhere in this crate: MCX's `BCFlags` order.
pub const FACE_NAMES: [&str; 6] = ["-x", "-y", "-z", "+x", "+y", "+z"];

/// Time window: gates `[t0 + k*dt, t0 + (k+1)*dt)` for `k < gates`; photons end at `t1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeGates {
    /// Start of the first gate, seconds.
    pub t0: f64,
    /// End of the window, seconds; a photon is terminated when its time of flight reaches it.
    pub t1: f64,
    /// Gate width, seconds.
    pub dt: f64,
    /// Number of gates, `ceil((t1 - t0) / dt)` and at least 1.
    pub gates: u32,
}

/// The spatial and angular shape of the launch (MCX `SrcType` with its parameters).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A thin beam along `dir`.
    Pencil,
    /// Uniform over all directions from a point.
    Isotropic,
    /// Uniform over a cone of the given half angle (radians) around `dir`.
    Cone { half_angle: f32 },
    /// Gaussian beam profile with waist radius (grid units) perpendicular to `dir`.
    Gaussian { waist: f32 },
    /// Uniform disk of the given radius (grid units) perpendicular to `dir`.
    Disk { radius: f32 },
    /// Uniform parallelogram `pos + a*v1 + b*v2`, `a, b` in [0, 1).
    Planar { v1: [f32; 3], v2: [f32; 3] },
    /// Like `Planar`, but launch weight follows a `width x height` pattern (row-major in
    /// `width`, values in [0, 1]) laid over the parallelogram.
    Pattern {
        v1: [f32; 3],
        v2: [f32; 3],
        width: u32,
        height: u32,
        pattern: Vec<f32>,
    },
}

/// A photon source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Launch position, grid units.
    pub pos: [f32; 3],
    /// Unit launch direction.
    pub dir: [f32; 3],
    pub kind: SourceKind,
}

/// A spherical detector on (or near) the grid surface; escaping photons whose exit point lies
/// inside it are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detector {
    /// Centre, grid units.
    pub pos: [f32; 3],
    /// Radius, grid units.
    pub radius: f32,
}

/// Unbiased Russian roulette: a photon whose weight drops below `threshold` survives with
/// probability `1 / survival_factor` and has its weight multiplied by `survival_factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roulette {
    pub threshold: f32,
    pub survival_factor: f32,
}

/// A complete, validated transport job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Session ID (names output files).
    pub id: String,
    /// Grid size in voxels, x, y, z.
    pub dim: [u32; 3],
    /// Voxel edge length, mm (MCX `LengthUnit`).
    pub unit_mm: f32,
    /// Media table; row 0 is the background outside the grid.
    pub media: Vec<Medium>,
    /// One label per voxel, index `x + dim[0] * (y + dim[1] * z)` (MCX column-major order);
    /// every label is `< media.len()`.
    pub labels: Vec<u16>,
    pub time: TimeGates,
    pub source: Source,
    pub detectors: Vec<Detector>,
    /// MCX `DoMismatch`: apply Fresnel reflection/refraction where refractive indices differ.
    pub do_mismatch: bool,
    /// MCX `DoSpecular`: remove the specular reflection at entry before the first step.
    pub do_specular: bool,
    /// Per-face boundary, in `FACE_NAMES` order.
    pub faces: [FaceBoundary; 6],
    pub roulette: Option<Roulette>,
    /// Photons to launch (MCX `Photons`).
    pub photons: u64,
    /// RNG seed (MCX `RNGSeed`).
    pub seed: u64,
}

impl Job {
    /// Number of voxels.
    pub fn voxels(&self) -> usize {
        self.dim.iter().map(|&d| d as usize).product()
    }

    /// Index of voxel `(x, y, z)` in `labels` and in per-gate tally planes.
    #[inline]
    pub fn voxel_index(&self, x: u32, y: u32, z: u32) -> usize {
        x as usize + self.dim[0] as usize * (y as usize + self.dim[1] as usize * z as usize)
    }
}
