//! Photon lanes: `L` photons walked side by side, the common segment computed for all lanes at
//! once in loops over lane arrays that the compiler turns into SIMD instructions.
//!
//! The common segment is the one that dominates large homogeneous media: one distance-map
//! jump that ends by scattering inside the medium (no face, no grid box, no time-window end,
//! no medium change), its continuous absorption and deposit, and the Henyey-Greenstein scatter.
//! Each lane performs exactly the scalar walk's IEEE operations in the same order (`+ - * /`
//! and `sqrt` are correctly rounded in SIMD lanes too, and Rust never fuses a multiply and an
//! add), with the branch-free `math::*_bf` forms that are bit-equal to the scalar ones; RNG
//! draws, fixed-point conversions and deposits are done per lane in the scalar order. Every
//! other segment (launch, faces, interfaces, Fresnel, time gate, step limit, several jumps,
//! roulette) is run for that lane by the scalar `Walker::segment`. The walk's definition is
//! therefore unchanged: records and tallies are bit-identical to the scalar engine's (tested
//! on every builtin and on jobs exercising every event kind).

// Lane loops index fixed-size `[_; L]` arrays by `l < L` (no check survives, nothing can
// fail): this shape is what the compiler vectorises. Negated comparisons are deliberate: a NaN
// must fail the fast-path test and go to the scalar walk, as it fails the scalar walk's.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::math;
use super::model::Model;
use super::photon::{
    box_exit, q, DepositSink, Extras, Fate, PhotonRecord, Started, Walker, MAX_SEGMENTS,
};
use super::tally::DetectedPhoton;

/// The lane's segment length when its next segment is the common one (see the module doc),
/// decided with exactly the scalar walk's tests; `None` sends the lane to the scalar walk.
///
/// The caller has checked that the lane's medium scatters and absorbs; `inv_mus_g` and
/// `inv_nl` are that medium's. `idx` is `m.index(wk.v)` when the lanes already computed it.
#[inline(always)]
fn fast_limit(
    m: &Model,
    wk: &Walker,
    idx: Option<usize>,
    inv_mus_g: f32,
    inv_nl: f32,
) -> Option<f32> {
    if wk.segments >= MAX_SEGMENTS {
        return None;
    }
    let s_dist = wk.s_rem * inv_mus_g;
    let t_dist = (m.l1 - wk.lopt) * inv_nl;
    if !(t_dist > 0.0 && s_dist <= t_dist && s_dist > 0.0) {
        return None;
    }
    let limit = s_dist;
    let mut near = f32::INFINITY;
    for (pa, da) in wk.p.iter().zip(m.dimf) {
        near = near.min(*pa).min(da - pa);
    }
    let at = match idx {
        Some(i) => i,
        None => m.index(wk.v),
    };
    let dm = m.dist.get(at).copied().unwrap_or(1);
    if dm <= 1 || !(limit <= f32::from(dm) - 1.01) {
        return None;
    }
    // Where the scalar walk computes the grid box exit, the jump stays common only if the
    // box is farther than the segment. Either way the end and deposit points lie in
    // `[0, dim]` along a segment that does not reach the box surface.
    if !(limit * 1.001 + 0.001 < near) {
        let inv_d = [1.0 / wk.d[0], 1.0 / wk.d[1], 1.0 / wk.d[2]];
        let (t_box, _) = box_exit(wk.p, wk.d, inv_d, m.dimf);
        if t_box <= limit {
            return None;
        }
    }
    Some(limit)
}

/// Largest grid size the lanes take: their points then lie in `[0, 2^23)`, where
/// [`voxel_of`] is exact.
const LANE_DIM_MAX: i32 = 1 << 22;

/// `(x as i32).min(dim_m1)` for `x` in `(-1, 2^23)` (every fast-lane point: it lies inside
/// the grid box up to rounding, see `fast_inputs`), without the saturating conversion the
/// compiler will not vectorise: round to an integer with the `2^23` trick, step down if that
/// rounded up, and read the integer from the bits of `t + 2^23`.
#[inline(always)]
fn voxel_of(x: f32, dim_m1: i32) -> i32 {
    const TWO23: f32 = 8_388_608.0;
    // Truncation maps (-1, 0] to 0.
    let x = if x > 0.0 { x } else { 0.0 };
    let r = (x + TWO23) - TWO23;
    let t = if r > x { r - 1.0 } else { r };
    ((t + TWO23).to_bits() as i32 - 0x4b00_0000).min(dim_m1)
}

/// `x.clamp(lo, hi)` for `lo <= hi` (both finite), written without the bounds assertion so
/// the lane loop has no panic branch; same result as `f32::clamp` there, NaN included.
#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// `Model::index` of a voxel in `[0, dim)` on a grid of fewer than 2^31 voxels, in `i32`
/// arithmetic that vectorises (wrapping ops: no overflow check; none can overflow there).
#[inline(always)]
fn flat_index(v0: i32, v1: i32, v2: i32, dim: [i32; 3]) -> i32 {
    v0.wrapping_add(dim[0].wrapping_mul(v1.wrapping_add(dim[1].wrapping_mul(v2))))
}

/// Henyey-Greenstein scatter as `photon::scatter`, branch-free.
#[inline(always)]
fn scatter_bf(d: [f32; 3], hg: [f32; 5], aniso: bool, u: f32, phi: f32) -> [f32; 3] {
    let [a, b, c, e, inv2g] = hg;
    let tmp = a / (b + c * u);
    let ct_hg = ((e - tmp * tmp) * inv2g).clamp(-1.0, 1.0);
    let ct = if aniso { ct_hg } else { 2.0 * u - 1.0 };
    let st = (1.0 - ct * ct).max(0.0).sqrt();
    let (sp, cp) = math::sincos_turns_bf(phi);
    let polar = [st * cp, st * sp, if d[2] > 0.0 { ct } else { -ct }];
    let tmp = (1.0 - d[2] * d[2]).sqrt();
    let k = st / tmp;
    let general = [
        k * (d[0] * d[2] * cp - d[1] * sp) + d[0] * ct,
        k * (d[1] * d[2] * cp + d[0] * sp) + d[1] * ct,
        -st * cp * tmp + d[2] * ct,
    ];
    if d[2].abs() > 0.99999 {
        polar
    } else {
        general
    }
}

/// Structure-of-arrays state of the lanes taking the fast segment this round.
struct Soa<const L: usize> {
    p: [[f32; L]; 3],
    d: [[f32; L]; 3],
    limit: [f32; L],
    mua: [f32; L],
    inv_mua: [f32; L],
    nl: [f32; L],
    lopt: [f32; L],
    w: [f32; L],
    hg: [[f32; L]; 5],
    aniso: [bool; L],
    /// Medium whose constants (`mua`, `inv_mua`, `nl`, `hg`, `aniso`, `elig`, `inv_mus`,
    /// `inv_nl`) the lane holds;
    /// `usize::MAX` before the first load.
    med: [usize; L],
    /// Whether that medium both scatters and absorbs (else every segment is scalar).
    elig: [bool; L],
    inv_mus: [f32; L],
    inv_nl: [f32; L],
    // Outputs and per-lane scalar results.
    np: [[f32; L]; 3],
    att: [f32; L],
    wn: [f32; L],
    x: [f32; L],
    sp: [[f32; L]; 3],
    glopt: [f32; L],
    u: [f32; L],
    phi: [f32; L],
    uo: [f32; L],
    nd: [[f32; L]; 3],
    s_rem: [f32; L],
    /// Voxel of the end point and of the deposit point (`min(trunc, dim - 1)`).
    nv: [[i32; L]; 3],
    sv: [[i32; L]; 3],
    /// `Model::index` of `nv` and of `sv` (the lanes run only on grids of fewer than 2^31
    /// voxels, so the `i32` products cannot overflow).
    nidx: [i32; L],
    sidx: [i32; L],
}

impl<const L: usize> Soa<L> {
    fn new() -> Self {
        Soa {
            p: [[0.0; L]; 3],
            d: [[0.0; L]; 3],
            limit: [0.0; L],
            mua: [0.0; L],
            inv_mua: [0.0; L],
            nl: [0.0; L],
            lopt: [0.0; L],
            w: [0.0; L],
            hg: [[0.0; L]; 5],
            aniso: [false; L],
            med: [usize::MAX; L],
            elig: [false; L],
            inv_mus: [0.0; L],
            inv_nl: [0.0; L],
            np: [[0.0; L]; 3],
            att: [0.0; L],
            wn: [0.0; L],
            // Neutral draws for lanes not in use: every lane loop stays finite.
            x: [0.0; L],
            sp: [[0.0; L]; 3],
            glopt: [0.0; L],
            u: [0.5; L],
            phi: [0.0; L],
            uo: [0.5; L],
            nd: [[0.0; L]; 3],
            s_rem: [0.0; L],
            nv: [[0; L]; 3],
            sv: [[0; L]; 3],
            nidx: [0; L],
            sidx: [0; L],
        }
    }

    /// Move and attenuation of every lane.
    #[inline(always)]
    fn move_and_attenuate(&mut self, dim: [i32; 3]) {
        for a in 0..3 {
            for l in 0..L {
                self.np[a][l] = self.p[a][l] + self.d[a][l] * self.limit[l];
                self.nv[a][l] = voxel_of(self.np[a][l], dim[a] - 1);
            }
        }
        for l in 0..L {
            self.nidx[l] = flat_index(self.nv[0][l], self.nv[1][l], self.nv[2][l], dim);
        }
        for l in 0..L {
            self.att[l] = math::exp_bf(-self.mua[l] * self.limit[l]);
            self.wn[l] = self.w[l] * self.att[l];
        }
    }

    /// Deposit point and its optical path, from each lane's draw `x`.
    #[inline(always)]
    fn deposit_points(&mut self, dim: [i32; 3]) {
        let mut sstar = [0.0f32; L];
        for l in 0..L {
            let s = math::neg_ln_1m_bf(self.x[l] * (1.0 - self.att[l])) * self.inv_mua[l];
            sstar[l] = clamp(s, 0.0, self.limit[l]);
            self.glopt[l] = self.lopt[l] + sstar[l] * self.nl[l];
        }
        for a in 0..3 {
            for l in 0..L {
                self.sp[a][l] = self.p[a][l] + self.d[a][l] * sstar[l];
                self.sv[a][l] = voxel_of(self.sp[a][l], dim[a] - 1);
            }
        }
        for l in 0..L {
            self.sidx[l] = flat_index(self.sv[0][l], self.sv[1][l], self.sv[2][l], dim);
        }
    }

    /// New direction and scattering depth from each lane's three draws.
    #[inline(always)]
    fn scatter(&mut self) {
        for l in 0..L {
            let d = [self.d[0][l], self.d[1][l], self.d[2][l]];
            let hg = [
                self.hg[0][l],
                self.hg[1][l],
                self.hg[2][l],
                self.hg[3][l],
                self.hg[4][l],
            ];
            let nd = scatter_bf(d, hg, self.aniso[l], self.u[l], self.phi[l]);
            for a in 0..3 {
                self.nd[a][l] = nd[a];
            }
            self.s_rem[l] = -math::ln_bf(self.uo[l]);
        }
    }
}

/// A finished photon's record and detector hit, handed to the caller.
pub(crate) type Emit<'e> = dyn FnMut(PhotonRecord, Option<DetectedPhoton>) + 'e;

/// Walks every photon index `next` yields on `L` lanes until it yields `None` and all lanes
/// have finished; `emit` receives each photon's record (in completion order, not index order).
/// `paths` is one per-medium path scratch per lane.
#[inline(always)]
pub(crate) fn run<const L: usize, S: DepositSink>(
    m: &Model,
    next: &mut dyn FnMut() -> Option<u64>,
    sink: &mut S,
    paths: &mut [Vec<f32>],
    emit: &mut Emit,
) {
    let mut lanes: [Option<Walker>; L] = std::array::from_fn(|_| None);
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let paths: &mut [Vec<f32>] = if paths.len() >= L {
        paths
    } else {
        scratch.resize(L, Vec::new());
        &mut scratch
    };
    let track = !m.job.detectors.is_empty();
    // Larger grids take the scalar walk for every segment (see `voxel_of`).
    let lanes_ok = m.dim.iter().all(|&n| n <= LANE_DIM_MAX) && m.voxels <= i32::MAX as usize;
    let roulette = m.job.roulette;
    let mut exhausted = false;
    let mut soa = Soa::<L>::new();
    // Lanes whose walker ended the last round in the lanes (scattered): `soa.nidx` is then
    // the index of its voxel.
    let mut idx_ok = [false; L];
    loop {
        // Refill empty lanes; photons that end at launch are emitted at once.
        let mut active = 0;
        for (slot, path) in lanes.iter_mut().zip(paths.iter_mut()) {
            while slot.is_none() && !exhausted {
                let Some(index) = next() else {
                    exhausted = true;
                    break;
                };
                let mut ex = Extras {
                    path,
                    detected: None,
                };
                match super::photon::start(m, index, &mut ex) {
                    Started::Done(rec) => emit(rec, ex.detected.take()),
                    Started::Walk(wk) => *slot = Some(wk),
                }
            }
            active += usize::from(slot.is_some());
        }
        if active == 0 {
            return;
        }
        // Classify: fast lanes load their inputs, the others take one scalar segment now.
        let mut fast = [false; L];
        let mut any_fast = false;
        for l in 0..L {
            let (Some(slot), Some(path)) = (lanes.get_mut(l), paths.get_mut(l)) else {
                continue;
            };
            let Some(wk) = slot.as_mut() else {
                continue;
            };
            let idx = idx_ok[l].then(|| soa.nidx[l] as usize);
            idx_ok[l] = false;
            // A lane stays in one medium for most rounds: its constants are loaded only when
            // the medium changes.
            if soa.med[l] != wk.cur {
                soa.med[l] = wk.cur;
                soa.elig[l] = false;
                if let Some(med) = m.media.get(wk.cur) {
                    soa.elig[l] = med.mus_g > 0.0 && med.mua_g > 0.0;
                    for (k, h) in med.hg.iter().enumerate() {
                        soa.hg[k][l] = *h;
                    }
                    soa.aniso[l] = med.g.abs() > 1e-6;
                    soa.mua[l] = med.mua_g;
                    soa.inv_mua[l] = med.inv_mua_g;
                    soa.nl[l] = med.nl;
                    soa.inv_mus[l] = med.inv_mus_g;
                    soa.inv_nl[l] = med.inv_nl;
                }
            }
            let limit = if lanes_ok && soa.elig[l] {
                fast_limit(m, wk, idx, soa.inv_mus[l], soa.inv_nl[l])
            } else {
                None
            };
            if let Some(limit) = limit {
                fast[l] = true;
                any_fast = true;
                for a in 0..3 {
                    soa.p[a][l] = wk.p[a];
                    soa.d[a][l] = wk.d[a];
                }
                soa.limit[l] = limit;
                soa.lopt[l] = wk.lopt;
                soa.w[l] = wk.w;
                continue;
            }
            let mut ex = Extras {
                path,
                detected: None,
            };
            if wk.segment(m, sink, &mut ex) {
                if let Some(wk) = slot.take() {
                    emit(wk.finish(m), ex.detected.take());
                }
            }
        }
        if !any_fast {
            continue;
        }
        soa.move_and_attenuate(m.dim);
        // Fixed-point loss and the deposit draw, per lane in the scalar order.
        let mut loss = [0u64; L];
        let mut qn = [0u64; L];
        for l in 0..L {
            soa.x[l] = 0.0;
            let (true, Some(Some(wk))) = (fast[l], lanes.get_mut(l)) else {
                continue;
            };
            qn[l] = q(soa.wn[l]);
            loss[l] = wk.qw.saturating_sub(qn[l]);
            if loss[l] > 0 {
                soa.x[l] = wk.rng.uniform();
            }
        }
        soa.deposit_points(m.dim);
        let mut scat = [false; L];
        for l in 0..L {
            let (true, Some(slot), Some(path)) = (fast[l], lanes.get_mut(l), paths.get_mut(l))
            else {
                continue;
            };
            let Some(wk) = slot.as_mut() else {
                continue;
            };
            wk.segments += 1;
            if loss[l] > 0 {
                let gate = m.gate(soa.glopt[l]) as usize;
                sink.add(gate * m.voxels + soa.sidx[l] as usize, loss[l]);
                wk.rec.deposited += loss[l];
            }
            for a in 0..3 {
                wk.p[a] = soa.np[a][l];
                wk.v[a] = soa.nv[a][l];
            }
            wk.w = soa.wn[l];
            wk.qw = qn[l];
            wk.lopt += soa.limit[l] * soa.nl[l];
            if track {
                if let Some(x) = path.get_mut(wk.cur) {
                    *x += soa.limit[l];
                }
            }
            let mut ended = false;
            if wk.qw == 0 {
                wk.rec.fate = Fate::WeightExhausted;
                ended = true;
            } else if let Some(r) = roulette {
                if wk.w < r.threshold {
                    let x = wk.rng.uniform();
                    if x * r.survival_factor < 1.0 {
                        wk.w *= r.survival_factor;
                        let after = q(wk.w);
                        wk.rec.roulette_gain += after.saturating_sub(wk.qw);
                        wk.qw = after;
                    } else {
                        wk.rec.fate = Fate::RouletteKilled;
                        wk.rec.exit_weight = q(wk.w);
                        ended = true;
                    }
                }
            }
            if ended {
                if let Some(wk) = slot.take() {
                    emit(wk.finish(m), None);
                }
                continue;
            }
            (soa.u[l], soa.phi[l], soa.uo[l]) = wk.rng.uniform2_open1();
            scat[l] = true;
        }
        soa.scatter();
        idx_ok = scat;
        for l in 0..L {
            let (true, Some(Some(wk))) = (scat[l], lanes.get_mut(l)) else {
                continue;
            };
            for a in 0..3 {
                wk.d[a] = soa.nd[a][l];
            }
            wk.rec.scatters = wk.rec.scatters.saturating_add(1);
            wk.s_rem = soa.s_rem[l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voxel_of_equals_truncation_on_lane_range() {
        assert_eq!(voxel_of(-1e-30, 3), 0);
        assert_eq!(voxel_of(-0.0, 3), 0);
        let mut b = 0u32;
        while b < 8_388_608.0f32.to_bits() {
            let x = f32::from_bits(b);
            for dim_m1 in [0, 7, 59, LANE_DIM_MAX - 1] {
                assert_eq!(voxel_of(x, dim_m1), (x as i32).min(dim_m1), "{x}");
            }
            b += 97;
        }
        for k in 0..100_000 {
            let neg = -(k as f32) / 100_000.0;
            assert_eq!(voxel_of(neg, 5), neg as i32);
            let x = k as f32 * 0.25;
            assert_eq!(voxel_of(x, i32::MAX), x as i32);
            let y = f32::from_bits((k as f32).to_bits().wrapping_sub(1));
            if y >= 0.0 {
                assert_eq!(voxel_of(y, i32::MAX), y as i32);
            }
        }
    }
}
