//! One photon's life, from launch to its fate, and its integer record.
//!
//! # The walk (the definition every backend reproduces bit for bit)
//! All arithmetic is plain IEEE f32 in the order written (no fused multiply-add anywhere: the
//! CUDA port compiles with `--fmad=false`); transcendental functions are `math`'s. Positions
//! are grid units; the photon always knows its voxel as integers, so float rounding never
//! decides which medium it is in.
//!
//! RNG draws, in this order, from the photon's Philox stream (`rng`): the launch draws of its
//! source kind (`launch`), then the first scattering depth; after every segment, one draw for
//! the deposit point if the segment lost fixed-point weight; then for the event, one draw for
//! a Fresnel decision unless total internal reflection (`R >= 1`), one for roulette when it
//! applies, and for a scatter the Henyey-Greenstein cosine, the azimuth (in turns) and the
//! next depth.
//!
//! 1. **Launch** (`launch`, `enter`): position, direction and weight `w0` from the source. A photon starting outside the grid moves along its direction
//!    to the grid (no time passes); one in a label-0 voxel then moves voxel by voxel to the
//!    first voxel with a nonzero label. A photon that never reaches a nonzero label leaves with
//!    fate `NeverEntered`: its weight counts as escaped through the face it last left by, or,
//!    if it missed the grid, the face its largest direction component points at. A photon that
//!    entered from the background (outside, on a face pointing inward, or through label 0) has
//!    its weight reduced by the Fresnel reflectance at the entry face when `do_specular` and
//!    the indices differ (the removed part is `specular`); its direction is not refracted
//!    (as MCX).
//! 2. **Segments.** A photon carries a dimensionless scattering depth `s` (drawn `-ln u`). In
//!    medium `m` it moves straight until the first of: depth exhausted (scatter), the time
//!    window ends (`t1`), or a medium change / grid face. Movement uses the distance map
//!    (`grid`): in a voxel whose map value is `D >= 2` it jumps `min(remaining, D - 1.01)`
//!    and recomputes its voxel by truncation, unless the grid box surface (distance computed
//!    once per segment from its start) is nearer, in which case it lands exactly on that face;
//!    otherwise (`D <= 1`) it steps to the next voxel face.
//! 3. **Absorption** along a segment of length `L` is continuous: `w <- w * exp(-mua L)`. The
//!    lost weight, in fixed point `q(w_before) - q(w_after)` with `q(w) = trunc(w * 2^32)`, is
//!    deposited in one voxel: the one containing the point at distance `s*` drawn from the
//!    segment's absorption density (`s* = -ln(1 - u (1 - e^{-mua L})) / mua`, computed with
//!    `math::neg_ln_1m`), and in the time
//!    gate of that point. This is an unbiased estimate of MCX's per-voxel continuous deposit
//!    (the expected deposit of every voxel and gate is the same), and it is what makes a
//!    segment cost the same whatever the voxel size. If rounding puts `s*` in a voxel of
//!    another label, the segment's last voxel is used. Energy totals are exact integers.
//! 4. **Events.** Scatter: roulette (if set, when `w < threshold`), then Henyey-Greenstein
//!    direction (MCX's rotation formulas), new depth. Medium change with `do_mismatch` and
//!    different `n`: Fresnel reflect-or-refract by one uniform draw (total internal reflection
//!    when `sin t >= 1`). A label-0 voxel inside the grid is background: the photon escapes
//!    into it (with Fresnel against row 0 when `do_mismatch`), counted on the face of the
//!    crossing. Grid faces follow `Job::faces`; `Fresnel` faces reflect only when
//!    `do_mismatch`. Time: optical path `n L` accumulates in mm; at `t1` the photon stops and
//!    its weight is `alive_at_t1`. A photon whose fixed-point weight reaches 0 stops
//!    (`WeightExhausted`); one that makes more than `MAX_SEGMENTS` moves stops (`StepLimit`,
//!    counted as alive at t1).
//! 5. **Detectors.** When a photon escapes (grid face or internal label 0), the first detector
//!    sphere containing its exit point records it (`DetectedPhoton`: path per medium in mm,
//!    scatters, exit position and direction, exit weight).
//!
//! The walk is a `Walker` advanced one segment (step 2-4) at a time, so that the lane engine
//! (`lanes`) can interleave photons; `run_photon` is the plain loop over it and the reference.

use super::job::{FaceBoundary, SourceKind};
use super::math;
use super::model::{Med, Model};
use super::rng::PhotonRng;
use super::tally::DetectedPhoton;

/// Fixed-point weight: `trunc(w * 2^32)`, exact scaling then truncation, same on every device.
/// Weights are in `[0, 2^31)` (roulette gains are bounded in `Model::new`); the signed
/// conversion is one instruction on x86-64 where the unsigned one is a branchy sequence.
#[inline(always)]
pub fn q(w: f32) -> u64 {
    ((w * 4_294_967_296.0) as i64).max(0) as u64
}

/// Where deposits go: the shared atomic tally in range runs, nowhere for re-simulation.
pub(crate) trait DepositSink {
    fn add(&mut self, cell: usize, amount: u64);
}

/// Discards deposits (single-photon re-simulation only needs the record).
pub(crate) struct NoSink;

impl DepositSink for NoSink {
    #[inline(always)]
    fn add(&mut self, _cell: usize, _amount: u64) {}
}

/// How a photon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Left the grid (or into a label-0 voxel) through face `face` (`job::FACE_NAMES` order).
    Escaped { face: u8 },
    /// Still alive when the time window closed.
    AliveAtT1,
    /// Lost at Russian roulette.
    RouletteKilled,
    /// Fixed-point weight reached 0.
    WeightExhausted,
    /// Never reached a nonzero label; weight counted as escaped through `face`.
    NeverEntered { face: u8 },
    /// Stopped after [`MAX_SEGMENTS`] straight moves (a guard against jobs whose photons can
    /// never end, e.g. mirror faces, no absorption and a huge time window); its weight is
    /// counted with `alive_at_t1`.
    StepLimit,
}

/// Most straight moves one photon may make before it is stopped (`Fate::StepLimit`).
pub const MAX_SEGMENTS: u32 = 1 << 24;

impl Fate {
    /// The fate of a (code, face) pair of the canonical encoding; `None` for an unknown code
    /// or a face where the fate has none.
    fn from_code(code: u8, face: u8) -> Option<Fate> {
        Some(match (code, face) {
            (0, f) if f < 6 => Fate::Escaped { face: f },
            (1, 0) => Fate::AliveAtT1,
            (2, 0) => Fate::RouletteKilled,
            (3, 0) => Fate::WeightExhausted,
            (4, f) if f < 6 => Fate::NeverEntered { face: f },
            (5, 0) => Fate::StepLimit,
            _ => return None,
        })
    }

    fn code(self) -> (u8, u8) {
        match self {
            Fate::Escaped { face } => (0, face),
            Fate::AliveAtT1 => (1, 0),
            Fate::RouletteKilled => (2, 0),
            Fate::WeightExhausted => (3, 0),
            Fate::NeverEntered { face } => (4, face),
            Fate::StepLimit => (5, 0),
        }
    }
}

/// One photon's integer outcome: what spot checks compare and hash.
///
/// Per photon, `launched + roulette_gain == specular + deposited + exit_weight` exactly, where
/// `exit_weight` is the escaped, alive-at-t1 or roulette-killed weight per `fate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhotonRecord {
    /// Global photon index.
    pub index: u64,
    pub fate: Fate,
    /// Launched weight `q(w0)` (`WEIGHT_ONE` except for pattern sources).
    pub launched: u64,
    /// Removed by specular reflection at entry.
    pub specular: u64,
    /// Deposited in voxels (sum over all gates).
    pub deposited: u64,
    /// Weight at the end (escaped, alive at t1, or lost to roulette).
    pub exit_weight: u64,
    /// Weight added by surviving roulette.
    pub roulette_gain: u64,
    /// Scattering events.
    pub scatters: u32,
    /// Time gate at the end (clamped into the window).
    pub end_gate: u32,
    /// Detector that recorded the photon, if any.
    pub detector: Option<u16>,
}

impl PhotonRecord {
    /// Canonical encoding, 64 bytes, integers little-endian: index u64; fate code u8 (0
    /// escaped, 1 alive at t1, 2 roulette killed, 3 weight exhausted, 4 never entered, 5 step
    /// limit); face
    /// u8 (0 unless escaped/never entered); detector flag u8 (0/1); reserved u8 (0); detector
    /// u16 (0 when none); reserved u16 (0); launched, specular, deposited, exit_weight,
    /// roulette_gain (u64 each); scatters u32; end_gate u32.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        let (code, face) = self.fate.code();
        b[0..8].copy_from_slice(&self.index.to_le_bytes());
        b[8] = code;
        b[9] = face;
        b[10] = u8::from(self.detector.is_some());
        b[12..14].copy_from_slice(&self.detector.unwrap_or(0).to_le_bytes());
        let mut o = 16;
        for v in [
            self.launched,
            self.specular,
            self.deposited,
            self.exit_weight,
            self.roulette_gain,
        ] {
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            o += 8;
        }
        b[56..60].copy_from_slice(&self.scatters.to_le_bytes());
        b[60..64].copy_from_slice(&self.end_gate.to_le_bytes());
        b
    }

    /// The record of a canonical encoding ([`PhotonRecord::to_bytes`]); `None` when `b` is not
    /// one (unknown fate, face or flag, nonzero reserved bytes, a detector without its flag, or
    /// weights that break per-photon conservation). A GPU returns its records this way.
    pub fn from_bytes(b: &[u8; 64]) -> Option<PhotonRecord> {
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let u32_at = |o: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[o..o + 4]);
            u32::from_le_bytes(w)
        };
        let fate = Fate::from_code(b[8], b[9])?;
        let detector_id = u16::from_le_bytes([b[12], b[13]]);
        let detector = match b[10] {
            0 if detector_id == 0 => None,
            1 => Some(detector_id),
            _ => return None,
        };
        if b[11] != 0 || b[14] != 0 || b[15] != 0 {
            return None;
        }
        let r = PhotonRecord {
            index: u64_at(0),
            fate,
            launched: u64_at(16),
            specular: u64_at(24),
            deposited: u64_at(32),
            exit_weight: u64_at(40),
            roulette_gain: u64_at(48),
            scatters: u32_at(56),
            end_gate: u32_at(60),
            detector,
        };
        let income = r.launched.checked_add(r.roulette_gain)?;
        let spent = r
            .specular
            .checked_add(r.deposited)?
            .checked_add(r.exit_weight)?;
        (income == spent).then_some(r)
    }
}

/// What a photon leaves behind besides its record: a detector hit.
pub(crate) struct Extras<'s> {
    /// Per-medium path length scratch (grid units), reused across photons.
    pub path: &'s mut Vec<f32>,
    pub detected: Option<DetectedPhoton>,
}

#[inline(always)]
fn face_index(axis: usize, positive: bool) -> u8 {
    axis as u8 + if positive { 3 } else { 0 }
}

/// Fresnel reflectance (unpolarised) for incidence cosine `ci` from index `n1` into `n2`, and
/// the transmitted cosine; `(1, 0)` under total internal reflection.
#[inline(always)]
pub(crate) fn fresnel(n1: f32, n2: f32, ci: f32) -> (f32, f32) {
    let eta = n1 / n2;
    let st2 = eta * eta * (1.0 - ci * ci);
    if st2 >= 1.0 {
        return (1.0, 0.0);
    }
    let ct = (1.0 - st2).sqrt();
    let rs = (n1 * ci - n2 * ct) / (n1 * ci + n2 * ct);
    let rp = (n1 * ct - n2 * ci) / (n1 * ct + n2 * ci);
    (0.5 * (rs * rs + rp * rp), ct)
}

/// Refracted direction across a face normal to `axis`.
#[inline(always)]
fn refract(d: [f32; 3], axis: usize, eta: f32, ct: f32) -> [f32; 3] {
    let mut o = [d[0] * eta, d[1] * eta, d[2] * eta];
    o[axis] = if d[axis] > 0.0 { ct } else { -ct };
    o
}

/// Samples launch position, direction and weight.
fn launch(m: &Model, rng: &mut PhotonRng) -> ([f32; 3], [f32; 3], f32) {
    let s = &m.src;
    let (p, d) = (s.pos, s.dir);
    let along = |p: [f32; 3], r: f32, phi: f32| {
        let (sn, cs) = math::sincos_turns(phi);
        let a = r * cs;
        let b = r * sn;
        [
            p[0] + a * s.e1[0] + b * s.e2[0],
            p[1] + a * s.e1[1] + b * s.e2[1],
            p[2] + a * s.e1[2] + b * s.e2[2],
        ]
    };
    match &s.kind {
        SourceKind::Pencil => (p, d, 1.0),
        SourceKind::Isotropic => {
            let ct = 2.0 * rng.uniform() - 1.0;
            let st = (1.0 - ct * ct).max(0.0).sqrt();
            let (sn, cs) = math::sincos_turns(rng.uniform());
            (p, [st * cs, st * sn, ct], 1.0)
        }
        SourceKind::Cone { .. } => {
            let ct = 1.0 - rng.uniform() * (1.0 - s.cos_half);
            let st = (1.0 - ct * ct).max(0.0).sqrt();
            let (sn, cs) = math::sincos_turns(rng.uniform());
            let a = st * cs;
            let b = st * sn;
            let nd = [
                ct * d[0] + a * s.e1[0] + b * s.e2[0],
                ct * d[1] + a * s.e1[1] + b * s.e2[1],
                ct * d[2] + a * s.e1[2] + b * s.e2[2],
            ];
            (p, nd, 1.0)
        }
        SourceKind::Gaussian { waist } => {
            // MCX: waist is the 1/e^2 intensity radius, r = w sqrt(-ln(u) / 2).
            let r = waist * (-0.5 * math::ln(rng.uniform_open())).sqrt();
            let phi = rng.uniform();
            (along(p, r, phi), d, 1.0)
        }
        SourceKind::Disk { radius } => {
            let r = radius * rng.uniform().sqrt();
            let phi = rng.uniform();
            (along(p, r, phi), d, 1.0)
        }
        SourceKind::Planar { v1, v2 } => {
            let a = rng.uniform();
            let b = rng.uniform();
            let np = [
                p[0] + a * v1[0] + b * v2[0],
                p[1] + a * v1[1] + b * v2[1],
                p[2] + a * v1[2] + b * v2[2],
            ];
            (np, d, 1.0)
        }
        SourceKind::Pattern {
            v1,
            v2,
            width,
            height,
            pattern,
        } => {
            let a = rng.uniform();
            let b = rng.uniform();
            let np = [
                p[0] + a * v1[0] + b * v2[0],
                p[1] + a * v1[1] + b * v2[1],
                p[2] + a * v1[2] + b * v2[2],
            ];
            let ix = ((a * *width as f32) as usize).min(*width as usize - 1);
            let iy = ((b * *height as f32) as usize).min(*height as usize - 1);
            let w0 = pattern
                .get(ix + *width as usize * iy)
                .copied()
                .unwrap_or(0.0);
            (np, d, w0)
        }
    }
}

/// Result of moving a launched photon into the grid.
enum Entry {
    /// In voxel `v` at `p`; `entered` holds the entry axis when it came from the background.
    In {
        p: [f32; 3],
        v: [i32; 3],
        entered: Option<usize>,
    },
    Never {
        face: u8,
    },
}

fn dominant_face(d: [f32; 3]) -> u8 {
    let mut axis = 0;
    for a in 1..3 {
        if d[a].abs() > d[axis].abs() {
            axis = a;
        }
    }
    face_index(axis, d[axis] > 0.0)
}

/// Moves a launched photon to its first nonzero-label voxel (see the module doc, step 1).
fn enter(m: &Model, mut p: [f32; 3], d: [f32; 3]) -> Entry {
    let inside = (0..3).all(|a| p[a] >= 0.0 && p[a] < m.dimf[a]);
    let mut entered = None;
    let mut v = [0i32; 3];
    if inside {
        for a in 0..3 {
            v[a] = (p[a] as i32).min(m.dim[a] - 1);
            if p[a] == 0.0 && d[a] > 0.0 && entered.is_none() {
                entered = Some(a);
            }
        }
    } else {
        // Slab intersection with the box [0, dim].
        let mut tnear = f32::NEG_INFINITY;
        let mut tfar = f32::INFINITY;
        let mut axis = 0;
        for a in 0..3 {
            if d[a] == 0.0 {
                if p[a] < 0.0 || p[a] > m.dimf[a] {
                    return Entry::Never {
                        face: dominant_face(d),
                    };
                }
                continue;
            }
            let (t_in, t_out) = if d[a] > 0.0 {
                ((0.0 - p[a]) / d[a], (m.dimf[a] - p[a]) / d[a])
            } else {
                ((m.dimf[a] - p[a]) / d[a], (0.0 - p[a]) / d[a])
            };
            if t_in > tnear {
                tnear = t_in;
                axis = a;
            }
            tfar = tfar.min(t_out);
        }
        if tnear > tfar || tfar <= 0.0 || tnear < 0.0 {
            return Entry::Never {
                face: dominant_face(d),
            };
        }
        for a in 0..3 {
            p[a] = (p[a] + d[a] * tnear).clamp(0.0, m.dimf[a]);
        }
        p[axis] = if d[axis] > 0.0 { 0.0 } else { m.dimf[axis] };
        for a in 0..3 {
            v[a] = (p[a] as i32).min(m.dim[a] - 1);
        }
        entered = Some(axis);
    }
    // Skip label-0 voxels voxel by voxel; at most the sum of the dimensions of steps.
    let max_steps = m.dim.iter().map(|&x| x as u64).sum::<u64>() + 3;
    let mut steps = 0;
    while m.label(v) == 0 {
        let inv_d = [1.0 / d[0], 1.0 / d[1], 1.0 / d[2]];
        let (t, axis) = face_distance(p, d, inv_d, v);
        if !t.is_finite() || steps > max_steps {
            return Entry::Never {
                face: dominant_face(d),
            };
        }
        steps += 1;
        for a in 0..3 {
            p[a] += d[a] * t;
        }
        let pos = d[axis] > 0.0;
        p[axis] = (v[axis] + i32::from(pos)) as f32;
        v[axis] += if pos { 1 } else { -1 };
        if v[axis] < 0 || v[axis] >= m.dim[axis] {
            return Entry::Never {
                face: face_index(axis, pos),
            };
        }
        entered = Some(axis);
    }
    Entry::In { p, v, entered }
}

/// Distance along `d` from `p` to the exit face of voxel `v`, and that face's axis.
#[inline(always)]
fn face_distance(p: [f32; 3], d: [f32; 3], inv_d: [f32; 3], v: [i32; 3]) -> (f32, usize) {
    let mut best = f32::INFINITY;
    let mut axis = 0;
    for a in 0..3 {
        let t = if d[a] > 0.0 {
            ((v[a] + 1) as f32 - p[a]) * inv_d[a]
        } else if d[a] < 0.0 {
            (v[a] as f32 - p[a]) * inv_d[a]
        } else {
            f32::INFINITY
        };
        let t = t.max(0.0);
        if t < best {
            best = t;
            axis = a;
        }
    }
    (best, axis)
}

/// Distance along `d` from `p` (inside the grid box) to the box surface, and the face's axis.
#[inline(always)]
pub(crate) fn box_exit(p: [f32; 3], d: [f32; 3], inv_d: [f32; 3], dimf: [f32; 3]) -> (f32, usize) {
    let mut best = f32::INFINITY;
    let mut axis = 0;
    for a in 0..3 {
        let t = if d[a] > 0.0 {
            (dimf[a] - p[a]) * inv_d[a]
        } else if d[a] < 0.0 {
            -p[a] * inv_d[a]
        } else {
            f32::INFINITY
        };
        let t = t.max(0.0);
        if t < best {
            best = t;
            axis = a;
        }
    }
    (best, axis)
}

/// Henyey-Greenstein scattering of direction `d` (MCX's sampling and rotation).
#[inline(always)]
fn scatter(d: [f32; 3], med: &Med, rng: &mut PhotonRng) -> [f32; 3] {
    let u = rng.uniform();
    let [a, b, c, e, inv2g] = med.hg;
    let ct = if med.g.abs() > 1e-6 {
        let tmp = a / (b + c * u);
        ((e - tmp * tmp) * inv2g).clamp(-1.0, 1.0)
    } else {
        2.0 * u - 1.0
    };
    let st = (1.0 - ct * ct).max(0.0).sqrt();
    let (sp, cp) = math::sincos_turns(rng.uniform());
    if d[2].abs() > 0.99999 {
        return [st * cp, st * sp, if d[2] > 0.0 { ct } else { -ct }];
    }
    let tmp = (1.0 - d[2] * d[2]).sqrt();
    let k = st / tmp;
    [
        k * (d[0] * d[2] * cp - d[1] * sp) + d[0] * ct,
        k * (d[1] * d[2] * cp + d[0] * sp) + d[1] * ct,
        -st * cp * tmp + d[2] * ct,
    ]
}

/// What ended a straight move.
enum Stop {
    /// Travelled the whole allowed distance.
    Limit,
    /// Reached grid face `axis` (positive side if `pos`) from voxel `v`.
    Face { axis: usize, pos: bool },
    /// About to enter voxel `nv` with label `nl` across `axis`.
    Interface {
        axis: usize,
        pos: bool,
        nv: [i32; 3],
        nl: usize,
    },
}

/// A photon in flight: everything the walk carries from one segment to the next, so that a
/// photon can be advanced one segment at a time (the lane engine interleaves photons this way).
pub(crate) struct Walker {
    pub(crate) rec: PhotonRecord,
    pub(crate) rng: PhotonRng,
    pub(crate) p: [f32; 3],
    pub(crate) v: [i32; 3],
    pub(crate) d: [f32; 3],
    pub(crate) w: f32,
    pub(crate) qw: u64,
    /// Optical path so far, mm.
    pub(crate) lopt: f32,
    /// Remaining dimensionless scattering depth.
    pub(crate) s_rem: f32,
    /// Label of the current voxel.
    pub(crate) cur: usize,
    pub(crate) segments: u32,
}

/// A photon after launch: walking, or already ended.
// The walker (with its 32-word RNG buffer) is moved once per photon straight into its lane;
// boxing it would cost an allocation per photon for no gain.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Started {
    Walk(Walker),
    Done(PhotonRecord),
}

/// Launches photon `index` and moves it into the grid (steps 1 of the module doc).
#[inline(always)]
pub(crate) fn start(m: &Model, index: u64, extras: &mut Extras) -> Started {
    let job = m.job;
    let mut rng = PhotonRng::new(job.seed, index);
    let (p_launch, d_launch, w0) = launch(m, &mut rng);
    let launched = q(w0);
    let mut rec = PhotonRecord {
        index,
        fate: Fate::WeightExhausted,
        launched,
        specular: 0,
        deposited: 0,
        exit_weight: 0,
        roulette_gain: 0,
        scatters: 0,
        end_gate: 0,
        detector: None,
    };
    extras.detected = None;
    if !job.detectors.is_empty() {
        extras.path.clear();
        extras.path.resize(m.media.len(), 0.0);
    }
    if launched == 0 {
        return Started::Done(rec);
    }
    let d = d_launch;
    let (p, v, entered) = match enter(m, p_launch, d) {
        Entry::In { p, v, entered } => (p, v, entered),
        Entry::Never { face } => {
            rec.fate = Fate::NeverEntered { face };
            rec.exit_weight = launched;
            return Started::Done(rec);
        }
    };
    let cur = m.label(v);
    let mut w = w0;
    if let (Some(axis), true) = (entered, job.do_specular) {
        let n_in = m.media.get(cur).map_or(m.n0, |x| x.n);
        if n_in != m.n0 {
            let (r, _) = fresnel(m.n0, n_in, d[axis].abs());
            w *= 1.0 - r;
            rec.specular = launched - q(w).min(launched);
        }
    }
    let qw = q(w);
    let s_rem = -math::ln(rng.uniform_open());
    Started::Walk(Walker {
        rec,
        rng,
        p,
        v,
        d,
        w,
        qw,
        lopt: 0.0,
        s_rem,
        cur,
        segments: 0,
    })
}

/// Simulates photon `index` of the model's job.
pub(crate) fn run_photon<S: DepositSink>(
    m: &Model,
    index: u64,
    sink: &mut S,
    extras: &mut Extras,
) -> PhotonRecord {
    match start(m, index, extras) {
        Started::Done(rec) => rec,
        Started::Walk(mut wk) => {
            while !wk.segment(m, sink, extras) {}
            wk.finish(m)
        }
    }
}

impl Walker {
    /// The record of an ended photon.
    #[inline(always)]
    pub(crate) fn finish(mut self, m: &Model) -> PhotonRecord {
        self.rec.end_gate = m.gate(self.lopt);
        self.rec
    }

    /// One straight move and the event that ends it (steps 2-5 of the module doc); true when
    /// the photon has ended (its fate and exit weight are set).
    #[inline(always)]
    pub(crate) fn segment<S: DepositSink>(
        &mut self,
        m: &Model,
        sink: &mut S,
        extras: &mut Extras,
    ) -> bool {
        let job = m.job;
        let track = !job.detectors.is_empty();
        let voxels = m.voxels;
        let rec = &mut self.rec;
        let rng = &mut self.rng;
        let (mut p, mut v, mut d) = (self.p, self.v, self.d);
        let (mut w, mut qw, mut lopt, mut s_rem) = (self.w, self.qw, self.lopt, self.s_rem);
        let (mut cur, mut segments) = (self.cur, self.segments);
        let ended = 'seg: {
            segments += 1;
            if segments > MAX_SEGMENTS {
                rec.fate = Fate::StepLimit;
                rec.exit_weight = qw;
                break 'seg true;
            }
            let Some(med) = m.media.get(cur) else {
                // Unreachable: `Model::new` checked every label against the media table.
                rec.fate = Fate::WeightExhausted;
                rec.exit_weight = q(w);
                break 'seg true;
            };
            let s_dist = if med.mus_g > 0.0 {
                s_rem * med.inv_mus_g
            } else {
                f32::INFINITY
            };
            let t_dist = (m.l1 - lopt) * med.inv_nl;
            if t_dist <= 0.0 {
                rec.fate = Fate::AliveAtT1;
                rec.exit_weight = q(w);
                break 'seg true;
            }
            let scatter_first = s_dist <= t_dist;
            let limit = if scatter_first { s_dist } else { t_dist };
            let p0 = p;
            let mut traveled = 0.0f32;
            // True while the segment is one distance-map jump: then every point of it has `cur`'s
            // label by construction and the deposit voxel needs no label check.
            let mut one_jump = true;
            // The box surface is at least `near` away along any unit direction; when the segment is
            // shorter (with a margin for rounding) the exact exit distance is not needed.
            let mut near = f32::INFINITY;
            for (pa, da) in p.iter().zip(m.dimf) {
                near = near.min(*pa).min(da - pa);
            }
            // 1/d per axis, computed only when a face distance is needed (most segments in large
            // homogeneous regions never need one).
            let mut inv_d = [0.0f32; 3];
            let mut have_inv = false;
            let (t_box, box_axis) = if limit * 1.001 + 0.001 < near {
                (f32::INFINITY, 0)
            } else {
                inv_d = [1.0 / d[0], 1.0 / d[1], 1.0 / d[2]];
                have_inv = true;
                box_exit(p, d, inv_d, m.dimf)
            };
            let stop = loop {
                let rem = limit - traveled;
                let dm = m.dist.get(m.index(v)).copied().unwrap_or(1);
                if dm > 1 {
                    let safe = f32::from(dm) - 1.01;
                    let to_box = t_box - traveled;
                    if to_box <= rem && to_box <= safe {
                        // The grid face comes first: land exactly on it.
                        let pos = d[box_axis] > 0.0;
                        for a in 0..3 {
                            p[a] = (p[a] + d[a] * to_box).clamp(0.0, m.dimf[a]);
                        }
                        p[box_axis] = if pos { m.dimf[box_axis] } else { 0.0 };
                        for a in 0..3 {
                            v[a] = (p[a] as i32).min(m.dim[a] - 1);
                        }
                        traveled = t_box.max(traveled);
                        break Stop::Face {
                            axis: box_axis,
                            pos,
                        };
                    }
                    let step = if rem <= safe { rem } else { safe };
                    for a in 0..3 {
                        p[a] += d[a] * step;
                        v[a] = (p[a] as i32).min(m.dim[a] - 1);
                    }
                    if rem <= safe {
                        traveled = limit;
                        break Stop::Limit;
                    }
                    traveled += safe;
                    one_jump = false;
                    continue;
                }
                one_jump = false;
                if !have_inv {
                    inv_d = [1.0 / d[0], 1.0 / d[1], 1.0 / d[2]];
                    have_inv = true;
                }
                let (t, axis) = face_distance(p, d, inv_d, v);
                if rem <= t {
                    for a in 0..3 {
                        p[a] += d[a] * rem;
                    }
                    traveled = limit;
                    break Stop::Limit;
                }
                for a in 0..3 {
                    p[a] += d[a] * t;
                }
                traveled += t;
                let pos = d[axis] > 0.0;
                p[axis] = (v[axis] + i32::from(pos)) as f32;
                let mut nv = v;
                nv[axis] += if pos { 1 } else { -1 };
                if nv[axis] < 0 || nv[axis] >= m.dim[axis] {
                    break Stop::Face { axis, pos };
                }
                let nl = m.label(nv);
                if nl != cur {
                    break Stop::Interface { axis, pos, nv, nl };
                }
                v = nv;
            };
            // Absorption and deposit over the segment p0 -> p.
            if med.mua_g > 0.0 && traveled > 0.0 {
                let att = math::exp(-med.mua_g * traveled);
                let w_new = w * att;
                let qw_new = q(w_new);
                let loss = qw.saturating_sub(qw_new);
                if loss > 0 {
                    let x = rng.uniform();
                    let sstar =
                        (math::neg_ln_1m(x * (1.0 - att)) * med.inv_mua_g).clamp(0.0, traveled);
                    let mut sv = [0i32; 3];
                    for a in 0..3 {
                        sv[a] = ((p0[a] + d[a] * sstar) as i32).min(m.dim[a] - 1);
                    }
                    if !one_jump && m.label(sv) != cur {
                        sv = v;
                    }
                    let gate = m.gate(lopt + sstar * med.nl) as usize;
                    sink.add(gate * voxels + m.index(sv), loss);
                    rec.deposited += loss;
                }
                w = w_new;
                qw = qw_new;
            }
            lopt += traveled * med.nl;
            if track {
                if let Some(x) = extras.path.get_mut(cur) {
                    *x += traveled;
                }
            }
            if qw == 0 {
                rec.fate = Fate::WeightExhausted;
                break 'seg true;
            }
            match stop {
                Stop::Limit => {
                    if !scatter_first {
                        rec.fate = Fate::AliveAtT1;
                        rec.exit_weight = qw;
                        break 'seg true;
                    }
                    if let Some(r) = job.roulette {
                        if w < r.threshold {
                            let x = rng.uniform();
                            if x * r.survival_factor < 1.0 {
                                w *= r.survival_factor;
                                let after = q(w);
                                rec.roulette_gain += after.saturating_sub(qw);
                                qw = after;
                            } else {
                                rec.fate = Fate::RouletteKilled;
                                rec.exit_weight = q(w);
                                break 'seg true;
                            }
                        }
                    }
                    d = scatter(d, med, rng);
                    rec.scatters = rec.scatters.saturating_add(1);
                    s_rem = -math::ln(rng.uniform_open());
                }
                Stop::Face { axis, pos } => {
                    s_rem = (s_rem - traveled * med.mus_g).max(0.0);
                    let face = face_index(axis, pos);
                    match m
                        .faces
                        .get(face as usize)
                        .copied()
                        .unwrap_or(FaceBoundary::Absorb)
                    {
                        FaceBoundary::Absorb => {
                            escape(m, rec, extras, face, p, d, w);
                            break 'seg true;
                        }
                        FaceBoundary::Mirror => d[axis] = -d[axis],
                        FaceBoundary::Fresnel => {
                            if job.do_mismatch && med.n != m.n0 {
                                let (r, ct) = fresnel(med.n, m.n0, d[axis].abs());
                                if r >= 1.0 || rng.uniform() < r {
                                    d[axis] = -d[axis];
                                    break 'seg false;
                                }
                                d = refract(d, axis, med.n / m.n0, ct);
                            }
                            escape(m, rec, extras, face, p, d, w);
                            break 'seg true;
                        }
                        FaceBoundary::Cyclic => {
                            let mut nv = v;
                            nv[axis] = if pos { 0 } else { m.dim[axis] - 1 };
                            let nl = m.label(nv);
                            let np = if pos { 0.0 } else { m.dimf[axis] };
                            match cross(m, rng, &mut d, cur, nl, axis) {
                                Cross::Enter => {
                                    p[axis] = np;
                                    v = nv;
                                    cur = nl;
                                }
                                Cross::Reflect => {}
                                Cross::Escape => {
                                    escape(m, rec, extras, face, p, d, w);
                                    break 'seg true;
                                }
                            }
                        }
                    }
                }
                Stop::Interface { axis, pos, nv, nl } => {
                    s_rem = (s_rem - traveled * med.mus_g).max(0.0);
                    match cross(m, rng, &mut d, cur, nl, axis) {
                        Cross::Enter => {
                            v = nv;
                            cur = nl;
                        }
                        Cross::Reflect => {}
                        Cross::Escape => {
                            escape(m, rec, extras, face_index(axis, pos), p, d, w);
                            break 'seg true;
                        }
                    }
                }
            }

            false
        };
        (self.p, self.v, self.d) = (p, v, d);
        (self.w, self.qw, self.lopt, self.s_rem) = (w, qw, lopt, s_rem);
        (self.cur, self.segments) = (cur, segments);
        ended
    }
}

/// Outcome of meeting a different label across a face.
enum Cross {
    Enter,
    Reflect,
    /// Into a label-0 voxel: leaves the medium.
    Escape,
}

#[inline(always)]
fn cross(
    m: &Model,
    rng: &mut PhotonRng,
    d: &mut [f32; 3],
    cur: usize,
    nl: usize,
    axis: usize,
) -> Cross {
    let n1 = m.media.get(cur).map_or(m.n0, |x| x.n);
    let n2 = if nl == 0 {
        m.n0
    } else {
        m.media.get(nl).map_or(m.n0, |x| x.n)
    };
    if m.job.do_mismatch && n1 != n2 {
        let (r, ct) = fresnel(n1, n2, d[axis].abs());
        if r >= 1.0 || rng.uniform() < r {
            d[axis] = -d[axis];
            return Cross::Reflect;
        }
        *d = refract(*d, axis, n1 / n2, ct);
    }
    if nl == 0 {
        Cross::Escape
    } else {
        Cross::Enter
    }
}

fn escape(
    m: &Model,
    rec: &mut PhotonRecord,
    extras: &mut Extras,
    face: u8,
    p: [f32; 3],
    d: [f32; 3],
    w: f32,
) {
    rec.fate = Fate::Escaped { face };
    rec.exit_weight = q(w);
    for (k, det) in m.job.detectors.iter().enumerate() {
        let dx = p[0] - det.pos[0];
        let dy = p[1] - det.pos[1];
        let dz = p[2] - det.pos[2];
        if dx * dx + dy * dy + dz * dz <= det.radius * det.radius {
            rec.detector = Some(k as u16);
            extras.detected = Some(DetectedPhoton {
                photon: rec.index,
                detector: k as u16,
                scatters: rec.scatters,
                path_mm: extras.path.iter().map(|x| x * m.unit).collect(),
                exit_pos: p,
                exit_dir: d,
                weight: rec.exit_weight,
            });
            break;
        }
    }
}
