//! The distance map that lets a photon cross runs of identical voxels in one move.
//!
//! For every voxel `v`, `dist[v]` is the Chebyshev distance (in voxels, capped at 255) to the
//! nearest voxel whose label differs from `v`'s or that lies outside the grid. Every voxel
//! within Chebyshev distance `dist[v] - 1` of `v` therefore has `v`'s label and is inside the
//! grid, so a photon anywhere in `v` may move any straight distance `< dist[v] - 1` without
//! meeting a medium change or a grid face. The map is a pure function of the labels, so every
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
    let mut d = vec![DIST_CAP; n];
    if n as i64 != nx * ny * nz {
        // Caller validated sizes; a mismatch yields the all-unsafe map (voxel stepping only).
        return vec![1; n];
    }
    let idx = |x: i64, y: i64, z: i64| (x + nx * (y + ny * z)) as usize;
    // Neighbours that precede a voxel in raster order (forward mask); the backward mask is
    // their negation.
    let mut fwd: Vec<(i64, i64, i64)> = Vec::with_capacity(13);
    for dz in -1..=1i64 {
        for dy in -1..=1i64 {
            for dx in -1..=1i64 {
                let before = dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0)));
                if before {
                    fwd.push((dx, dy, dz));
                }
            }
        }
    }
    let mut pass = |offs: &[(i64, i64, i64)], order: &mut dyn Iterator<Item = (i64, i64, i64)>| {
        for (x, y, z) in order {
            let i = idx(x, y, z);
            let lab = labels.get(i).copied().unwrap_or(0);
            let mut best = d.get(i).copied().unwrap_or(1);
            for &(dx, dy, dz) in offs {
                let (a, b, c) = (x + dx, y + dy, z + dz);
                let nd = if a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz {
                    1
                } else {
                    let j = idx(a, b, c);
                    if labels.get(j).copied().unwrap_or(0) != lab {
                        1
                    } else {
                        d.get(j).copied().unwrap_or(0).saturating_add(1)
                    }
                };
                best = best.min(nd);
            }
            if let Some(slot) = d.get_mut(i) {
                *slot = best;
            }
        }
    };
    let mut forward =
        (0..nz).flat_map(|z| (0..ny).flat_map(move |y| (0..nx).map(move |x| (x, y, z))));
    pass(&fwd, &mut forward);
    let bwd: Vec<(i64, i64, i64)> = fwd.iter().map(|&(a, b, c)| (-a, -b, -c)).collect();
    let mut backward = (0..nz).rev().flat_map(|z| {
        (0..ny)
            .rev()
            .flat_map(move |y| (0..nx).rev().map(move |x| (x, y, z)))
    });
    pass(&bwd, &mut backward);
    d
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
                    // distance to outside: nearest face
                    let mut best = [x + 1, y + 1, z + 1, nx - x, ny - y, nz - z]
                        .into_iter()
                        .min()
                        .unwrap_or(1);
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
    fn uniform_cube_is_distance_to_faces() {
        let dim = [10, 10, 10];
        let labels = vec![1u16; 1000];
        let d = distance_map(&labels, dim);
        assert_eq!(d[0], 1);
        assert_eq!(d[5 + 10 * (5 + 10 * 5)], 5);
        assert_eq!(d[4 + 10 * (4 + 10 * 4)], 5);
    }
}
