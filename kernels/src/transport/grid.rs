//! The distance map that lets a photon cross runs of identical voxels in one move.
//!
//! For every voxel `v`, `dist[v]` is the Chebyshev distance (in voxels, capped at 255) to the
//! nearest voxel of the grid whose label differs from `v`'s. Every in-grid voxel within
//! Chebyshev distance `dist[v] - 1` of `v` therefore has `v`'s label, so a photon anywhere in
//! `v` may move any straight distance `< dist[v] - 1` that stays inside the grid box without
//! meeting a medium change (the walk bounds jumps by the box itself, see `photon`). The map is a pure function of the labels, so every
//! device computes the same jumps (this is how the acceleration stays deterministic: it is part
//! of the definition of the walk, not an optional shortcut; see `photon`).
//!
//! Computed with the exact two-pass chamfer transform for the 26-neighbourhood (the Chebyshev
//! metric): a shortest Chebyshev path from `v` to its nearest differing voxel only crosses
//! voxels with `v`'s label, so propagating `+1` between equal-label neighbours is exact.

/// Largest stored distance.
pub const DIST_CAP: u8 = 255;

/// Chebyshev distance map of `labels` (`dim[0]` fastest), see the module doc.
pub fn distance_map(labels: &[u16], dim: [u32; 3]) -> Vec<u8> {
    let [nx, ny, nz] = [dim[0] as i64, dim[1] as i64, dim[2] as i64];
    let n = labels.len();
    if n as i64 != nx * ny * nz {
        // Caller validated sizes; a mismatch yields the all-unsafe map (voxel stepping only).
        return vec![1; n];
    }
    let mut d = vec![DIST_CAP; n];
    // Neighbours that precede a voxel in raster order (forward mask); the backward mask is
    // their negation.
    let mut fwd: Vec<(i64, i64, i64)> = Vec::with_capacity(13);
    for dz in -1..=1i64 {
        for dy in -1..=1i64 {
            for dx in -1..=1i64 {
                if dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0))) {
                    fwd.push((dx, dy, dz));
                }
            }
        }
    }
    let bwd: Vec<(i64, i64, i64)> = fwd.iter().map(|&(a, b, c)| (-a, -b, -c)).collect();
    pass(labels, &mut d, [nx, ny, nz], &fwd, false);
    pass(labels, &mut d, [nx, ny, nz], &bwd, true);
    d
}

/// One chamfer sweep over the grid (`reverse`: last voxel first) with neighbour mask `offs`.
fn pass(labels: &[u16], d: &mut [u8], dim: [i64; 3], offs: &[(i64, i64, i64)], reverse: bool) {
    let [nx, ny, nz] = dim;
    let flat: Vec<i64> = offs
        .iter()
        .map(|&(a, b, c)| a + nx * (b + ny * c))
        .collect();
    for zz in 0..nz {
        let z = if reverse { nz - 1 - zz } else { zz };
        for yy in 0..ny {
            let y = if reverse { ny - 1 - yy } else { yy };
            // Rows whose every neighbour row exists take the unchecked-geometry fast path.
            let row_inner = y >= 1 && y + 1 < ny && z >= 1 && z + 1 < nz;
            for xx in 0..nx {
                let x = if reverse { nx - 1 - xx } else { xx };
                let i = x + nx * (y + ny * z);
                let Some(&lab) = labels.get(i as usize) else {
                    continue;
                };
                let mut best = d.get(i as usize).copied().unwrap_or(1);
                if row_inner && x >= 1 && x + 1 < nx {
                    for &o in &flat {
                        let j = (i + o) as usize;
                        let nd = match (labels.get(j), d.get(j)) {
                            (Some(&l), Some(&dj)) if l == lab => dj.saturating_add(1),
                            _ => 1,
                        };
                        best = best.min(nd);
                    }
                } else {
                    for &(dx, dy, dz) in offs {
                        let (a, b, c) = (x + dx, y + dy, z + dz);
                        if a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz {
                            // Outside the grid: not a medium change (the walk handles faces).
                            continue;
                        }
                        let j = (a + nx * (b + ny * c)) as usize;
                        let nd = match (labels.get(j), d.get(j)) {
                            (Some(&l), Some(&dj)) if l == lab => dj.saturating_add(1),
                            _ => 1,
                        };
                        best = best.min(nd);
                    }
                }
                if let Some(slot) = d.get_mut(i as usize) {
                    *slot = best;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::rng::PhotonRng;

    fn brute(labels: &[u16], dim: [u32; 3]) -> Vec<u8> {
        let [nx, ny, nz] = [dim[0] as i64, dim[1] as i64, dim[2] as i64];
        let mut out = Vec::new();
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let lab = labels[(x + nx * (y + ny * z)) as usize];
                    let mut best = 255;
                    for c in 0..nz {
                        for b in 0..ny {
                            for a in 0..nx {
                                if labels[(a + nx * (b + ny * c)) as usize] != lab {
                                    let dd = (a - x).abs().max((b - y).abs()).max((c - z).abs());
                                    best = best.min(dd);
                                }
                            }
                        }
                    }
                    out.push(best.min(255) as u8);
                }
            }
        }
        out
    }

    #[test]
    fn matches_brute_force_on_random_blobs() {
        let mut rng = PhotonRng::new(5, 0);
        for case in 0..20 {
            let dim = [
                3 + rng.next_u32() % 9,
                3 + rng.next_u32() % 9,
                3 + rng.next_u32() % 9,
            ];
            let n = (dim[0] * dim[1] * dim[2]) as usize;
            // sparse islands of other labels in a background of 1
            let mut labels = vec![1u16; n];
            let islands = rng.next_u32() % 4;
            for _ in 0..islands {
                let i = (rng.next_u32() as usize) % n;
                labels[i] = (rng.next_u32() % 3) as u16;
            }
            assert_eq!(
                distance_map(&labels, dim),
                brute(&labels, dim),
                "case {case}"
            );
        }
    }

    #[test]
    fn uniform_cube_has_no_limit_and_one_odd_voxel_counts() {
        let dim = [10, 10, 10];
        let labels = vec![1u16; 1000];
        let d = distance_map(&labels, dim);
        assert!(d.iter().all(|&x| x == DIST_CAP));
        let mut labels = labels;
        labels[0] = 2;
        let d = distance_map(&labels, dim);
        assert_eq!(d[0], 1);
        assert_eq!(d[1], 1);
        assert_eq!(d[5 + 10 * (5 + 10 * 5)], 5);
    }
}
