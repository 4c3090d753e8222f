//! A job prepared for the photon loop: constants folded into grid units, the source basis,
//! the distance map, and a re-check of every invariant the loop's indexing relies on.
//!
//! Building a `Model` is the only place the engine looks at `Job` fields; all conversions from
//! f64 happen here once, so the photon loop is pure f32 and the same on every device.

use super::error::TransportError;
use super::grid;
use super::job::{FaceBoundary, Job, SourceKind, C0_MM_PER_S};
use super::math;

/// One medium's constants in grid units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Med {
    /// Absorption per grid unit (`mua * unit_mm`).
    pub mua_g: f32,
    /// Scattering per grid unit.
    pub mus_g: f32,
    /// `1 / mus_g` (infinite when `mus` is 0; only used when it is not).
    pub inv_mus_g: f32,
    pub g: f32,
    pub n: f32,
    /// Optical path (mm, times `n`) per grid unit travelled: `n * unit_mm`.
    pub nl: f32,
    /// `1 / nl`.
    pub inv_nl: f32,
    /// `1 / mua_g` (infinite when `mua` is 0; only used when it is not).
    pub inv_mua_g: f32,
    /// Henyey-Greenstein constants: `1 - g^2`, `1 - g`, `2 g`, `1 + g^2`, `1 / (2 g)`.
    pub hg: [f32; 5],
}

/// The source, with its perpendicular basis precomputed.
#[derive(Debug, Clone)]
pub(crate) struct Src {
    pub pos: [f32; 3],
    pub dir: [f32; 3],
    /// Unit vectors with `dir`, `e1`, `e2` orthonormal.
    pub e1: [f32; 3],
    pub e2: [f32; 3],
    pub kind: SourceKind,
    /// `cos` of the cone half angle (cone sources).
    pub cos_half: f32,
}

/// A job ready for the photon loop.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    pub(crate) job: &'a Job,
    pub(crate) dim: [i32; 3],
    pub(crate) dimf: [f32; 3],
    pub(crate) voxels: usize,
    pub(crate) labels: &'a [u16],
    pub(crate) dist: Vec<u8>,
    pub(crate) media: Vec<Med>,
    pub(crate) n0: f32,
    pub(crate) l0: f32,
    pub(crate) l1: f32,
    pub(crate) inv_ldt: f32,
    pub(crate) gates: u32,
    pub(crate) src: Src,
    pub(crate) faces: [FaceBoundary; 6],
    pub(crate) unit: f32,
}

fn bad(field: &'static str, reason: impl Into<String>) -> TransportError {
    TransportError::InvalidJob {
        field,
        reason: reason.into(),
    }
}

fn norm(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(v: [f32; 3]) -> [f32; 3] {
    let l = norm(v);
    [v[0] / l, v[1] / l, v[2] / l]
}

impl<'a> Model<'a> {
    /// Checks the invariants the photon loop indexes with and precomputes its constants.
    pub fn new(job: &'a Job) -> Result<Self, TransportError> {
        if job.dim.iter().any(|&d| d == 0 || d > (1 << 30)) {
            return Err(bad(
                "dim",
                format!("{:?}: every size must be in 1..=2^30", job.dim),
            ));
        }
        let voxels = job
            .dim
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
            .ok_or_else(|| bad("dim", "voxel count overflows"))?;
        if job.labels.len() != voxels {
            return Err(bad(
                "labels",
                format!("{} labels for {voxels} voxels", job.labels.len()),
            ));
        }
        if job.media.is_empty() {
            return Err(bad("media", "empty media table"));
        }
        if let Some(l) = job.labels.iter().find(|&&l| l as usize >= job.media.len()) {
            return Err(bad("labels", format!("label {l} outside the media table")));
        }
        if !(job.unit_mm.is_finite() && job.unit_mm > 0.0) {
            return Err(bad(
                "unit_mm",
                format!("{} is not a positive length", job.unit_mm),
            ));
        }
        let t = job.time;
        if !(t.t0.is_finite() && t.t1.is_finite() && t.dt.is_finite() && t.dt > 0.0 && t.t1 > t.t0)
            || t.gates == 0
        {
            return Err(bad(
                "time",
                format!("{t:?}: need t1 > t0, dt > 0, gates >= 1"),
            ));
        }
        let mut media = Vec::with_capacity(job.media.len());
        for (i, m) in job.media.iter().enumerate() {
            let ok = [m.mua, m.mus, m.g, m.n].iter().all(|x| x.is_finite())
                && m.mua >= 0.0
                && m.mus >= 0.0
                && (-1.0..=1.0).contains(&m.g)
                && m.n > 0.0;
            if !ok {
                return Err(bad("media", format!("row {i}: {m:?} out of range")));
            }
            let nl = m.n * job.unit_mm;
            media.push(Med {
                mua_g: m.mua * job.unit_mm,
                mus_g: m.mus * job.unit_mm,
                inv_mus_g: 1.0 / (m.mus * job.unit_mm),
                g: m.g,
                n: m.n,
                nl,
                inv_nl: 1.0 / nl,
                inv_mua_g: 1.0 / (m.mua * job.unit_mm),
                hg: [
                    1.0 - m.g * m.g,
                    1.0 - m.g,
                    2.0 * m.g,
                    1.0 + m.g * m.g,
                    0.5 / m.g,
                ],
            });
        }
        let s = &job.source;
        if s.pos.iter().chain(s.dir.iter()).any(|x| !x.is_finite()) || norm(s.dir) == 0.0 {
            return Err(bad(
                "source",
                "position and direction must be finite, direction nonzero",
            ));
        }
        let dir = unit(s.dir);
        let helper = if dir[2].abs() < 0.9 {
            [0.0, 0.0, 1.0]
        } else {
            [1.0, 0.0, 0.0]
        };
        let e1 = unit(cross(dir, helper));
        let e2 = cross(dir, e1);
        let mut cos_half = 1.0;
        match &s.kind {
            SourceKind::Cone { half_angle } => {
                if !(half_angle.is_finite() && (0.0..=std::f32::consts::PI).contains(half_angle)) {
                    return Err(bad("source", "cone half angle must be in [0, pi]"));
                }
                cos_half = math::cos(*half_angle);
            }
            SourceKind::Gaussian { waist: r } | SourceKind::Disk { radius: r } => {
                if !(r.is_finite() && *r >= 0.0) {
                    return Err(bad("source", "radius must be finite and >= 0"));
                }
            }
            SourceKind::Planar { v1, v2 } => {
                if v1.iter().chain(v2.iter()).any(|x| !x.is_finite()) {
                    return Err(bad("source", "planar vectors must be finite"));
                }
            }
            SourceKind::Pattern {
                v1,
                v2,
                width,
                height,
                pattern,
            } => {
                if v1.iter().chain(v2.iter()).any(|x| !x.is_finite()) {
                    return Err(bad("source", "pattern vectors must be finite"));
                }
                let cells = (*width as usize).checked_mul(*height as usize);
                if *width == 0 || *height == 0 || cells != Some(pattern.len()) {
                    return Err(bad("source", "pattern size does not match width x height"));
                }
                if pattern
                    .iter()
                    .any(|p| !(p.is_finite() && (0.0..=1.0).contains(p)))
                {
                    return Err(bad("source", "pattern values must be in [0, 1]"));
                }
            }
            SourceKind::Pencil | SourceKind::Isotropic => {}
        }
        if job.detectors.len() > usize::from(u16::MAX) {
            return Err(bad("detectors", "more than 65535 detectors"));
        }
        if job.detectors.iter().any(|d| {
            d.pos.iter().any(|x| !x.is_finite()) || !(d.radius.is_finite() && d.radius >= 0.0)
        }) {
            return Err(bad(
                "detectors",
                "positions and radii must be finite, radii >= 0",
            ));
        }
        if let Some(r) = job.roulette {
            let ok = r.threshold.is_finite()
                && r.threshold >= 0.0
                && r.survival_factor.is_finite()
                && r.survival_factor >= 1.0
                && r.threshold * r.survival_factor <= 1.0e6;
            if !ok {
                return Err(bad(
                    "roulette",
                    "need threshold >= 0, survival factor >= 1, their product <= 1e6",
                ));
            }
        }
        let dist = grid::distance_map(&job.labels, job.dim);
        Ok(Model {
            job,
            dim: [job.dim[0] as i32, job.dim[1] as i32, job.dim[2] as i32],
            dimf: [job.dim[0] as f32, job.dim[1] as f32, job.dim[2] as f32],
            voxels,
            labels: &job.labels,
            dist,
            n0: media[0].n,
            media,
            l0: (t.t0 * C0_MM_PER_S) as f32,
            l1: (t.t1 * C0_MM_PER_S) as f32,
            inv_ldt: (1.0 / (t.dt * C0_MM_PER_S)) as f32,
            gates: t.gates,
            src: Src {
                pos: s.pos,
                dir,
                e1,
                e2,
                kind: s.kind.clone(),
                cos_half,
            },
            faces: job.faces,
            unit: job.unit_mm,
        })
    }

    /// The job this model was built from.
    pub fn job(&self) -> &Job {
        self.job
    }

    #[inline(always)]
    pub(crate) fn index(&self, v: [i32; 3]) -> usize {
        v[0] as usize
            + self.dim[0] as usize * (v[1] as usize + self.dim[1] as usize * v[2] as usize)
    }

    #[inline(always)]
    pub(crate) fn label(&self, v: [i32; 3]) -> usize {
        self.labels.get(self.index(v)).copied().unwrap_or(0) as usize
    }

    /// Time gate of an optical path length (mm): clamped into `[0, gates)`; energy deposited
    /// before `t0` is attributed to gate 0.
    #[inline(always)]
    pub(crate) fn gate(&self, lopt: f32) -> u32 {
        if self.gates == 1 {
            return 0;
        }
        let g = (lopt - self.l0) * self.inv_ldt;
        if g <= 0.0 {
            0
        } else {
            (g as u32).min(self.gates - 1)
        }
    }
}
