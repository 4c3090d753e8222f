//! Jobs built in Rust for the engine's tests and speed harness: the MCX cube60 family and the
//! matched slab of `shared/reference/transport.md`.
#![allow(dead_code)]

use compushare_kernels::transport::job::{
    Detector, FaceBoundary, Job, Medium, Source, SourceKind, TimeGates,
};

pub fn cube60_media() -> Vec<Medium> {
    vec![
        Medium {
            mua: 0.0,
            mus: 0.0,
            g: 1.0,
            n: 1.0,
        },
        Medium {
            mua: 0.005,
            mus: 1.0,
            g: 0.01,
            n: 1.37,
        },
        Medium {
            mua: 0.002,
            mus: 5.0,
            g: 0.90,
            n: 1.0,
        },
    ]
}

/// cube60 (`mismatch` false) or cube60b (`mismatch` true).
pub fn cube60(mismatch: bool) -> Job {
    Job {
        id: if mismatch { "cube60b" } else { "cube60" }.into(),
        dim: [60, 60, 60],
        unit_mm: 1.0,
        media: cube60_media(),
        labels: vec![1; 60 * 60 * 60],
        time: TimeGates {
            t0: 0.0,
            t1: 5e-9,
            dt: 5e-9,
            gates: 1,
        },
        source: Source {
            pos: [29.0, 29.0, 0.0],
            dir: [0.0, 0.0, 1.0],
            kind: SourceKind::Pencil,
        },
        detectors: [
            [29.0, 19.0, 0.0],
            [29.0, 39.0, 0.0],
            [19.0, 29.0, 0.0],
            [39.0, 29.0, 0.0],
        ]
        .into_iter()
        .map(|pos| Detector { pos, radius: 1.0 })
        .collect(),
        do_mismatch: mismatch,
        do_specular: false,
        faces: [FaceBoundary::Fresnel; 6],
        roulette: None,
        photons: 1_000_000,
        seed: 1_648_335_518,
    }
}

/// cubesph60b: a sphere of label 2, centre [30,30,30], radius 15 (voxel centres inside).
pub fn cubesph60b() -> Job {
    let mut j = cube60(true);
    j.id = "cubesph60b".into();
    for z in 0..60u32 {
        for y in 0..60u32 {
            for x in 0..60u32 {
                let c = |a: u32| a as f32 + 0.5 - 30.0;
                if c(x) * c(x) + c(y) * c(y) + c(z) * c(z) < 15.0 * 15.0 {
                    let i = j.voxel_index(x, y, z);
                    j.labels[i] = 2;
                }
            }
        }
    }
    j
}

/// cube60planar: 40x40 mm planar source 10 mm above the top face.
pub fn cube60planar() -> Job {
    let mut j = cube60(true);
    j.id = "cube60planar".into();
    j.source = Source {
        pos: [10.0, 10.0, -10.0],
        dir: [0.0, 0.0, 1.0],
        kind: SourceKind::Planar {
            v1: [40.0, 0.0, 0.0],
            v2: [0.0, 40.0, 0.0],
        },
    };
    j
}

/// The matched slab of reference section 2 in voxels of `voxel_mm` (0.01 mm: 100x100x20).
pub fn slab(voxel_mm: f32) -> Job {
    let nz = (0.2 / voxel_mm).round() as u32;
    let nxy = 100u32;
    Job {
        id: "slab".into(),
        dim: [nxy, nxy, nz],
        unit_mm: voxel_mm,
        media: vec![
            Medium {
                mua: 0.0,
                mus: 0.0,
                g: 1.0,
                n: 1.0,
            },
            Medium {
                mua: 1.0,
                mus: 9.0,
                g: 0.75,
                n: 1.0,
            },
        ],
        labels: vec![1; (nxy * nxy * nz) as usize],
        time: TimeGates {
            t0: 0.0,
            t1: 1e-6,
            dt: 1e-6,
            gates: 1,
        },
        source: Source {
            pos: [nxy as f32 / 2.0, nxy as f32 / 2.0, 0.0],
            dir: [0.0, 0.0, 1.0],
            kind: SourceKind::Pencil,
        },
        detectors: vec![],
        do_mismatch: false,
        do_specular: false,
        faces: [
            FaceBoundary::Cyclic,
            FaceBoundary::Cyclic,
            FaceBoundary::Absorb,
            FaceBoundary::Cyclic,
            FaceBoundary::Cyclic,
            FaceBoundary::Absorb,
        ],
        roulette: None,
        photons: 1_000_000,
        seed: 12345,
    }
}

/// cube60 scaled down 30 times onto a 100^3 grid of 0.02 mm voxels: a 2 mm cube with
/// mua 0.15/mm and mus 30/mm (same optical size), time window 5 ns / 30. Its absorbed fraction
/// equals cube60's (0.1769); it checks that fine voxels neither change the physics nor
/// collapse the speed.
pub fn fine_cube() -> Job {
    let mut j = cube60(false);
    j.id = "fine100".into();
    j.dim = [100, 100, 100];
    j.unit_mm = 0.02;
    j.labels = vec![1; 1_000_000];
    j.media[1].mua = 0.15;
    j.media[1].mus = 30.0;
    j.time.t1 = 5e-9 / 30.0;
    j.time.dt = 5e-9 / 30.0;
    j.source.pos = [50.0, 50.0, 0.0];
    j.detectors.clear();
    j
}

/// A small job that exercises every boundary kind, an index-mismatched inclusion, internal
/// label-0 voxels, detectors, specular reflection and several gates.
pub fn zoo(kind: SourceKind, pos: [f32; 3], dir: [f32; 3]) -> Job {
    let mut j = cube60(true);
    j.id = "zoo".into();
    j.dim = [24, 20, 16];
    j.media.push(Medium {
        mua: 0.05,
        mus: 3.0,
        g: 0.5,
        n: 1.6,
    });
    let mut labels = Vec::new();
    for z in 0..16i32 {
        for y in 0..20i32 {
            for x in 0..24i32 {
                let (dx, dy, dz) = (x - 12, y - 10, z - 8);
                let l = if dx * dx + dy * dy + dz * dz < 16 {
                    3
                } else if (2..5).contains(&x) && (2..5).contains(&y) && (10..13).contains(&z) {
                    0
                } else if z > 12 {
                    2
                } else {
                    1
                };
                labels.push(l);
            }
        }
    }
    j.labels = labels;
    j.time = TimeGates {
        t0: 0.0,
        t1: 1e-9,
        dt: 0.25e-9,
        gates: 4,
    };
    j.faces = [
        FaceBoundary::Fresnel,
        FaceBoundary::Cyclic,
        FaceBoundary::Fresnel,
        FaceBoundary::Mirror,
        FaceBoundary::Cyclic,
        FaceBoundary::Absorb,
    ];
    j.do_specular = true;
    j.source.kind = kind;
    j.source.pos = pos;
    j.source.dir = dir;
    j.detectors = vec![Detector {
        pos: [12.0, 10.0, 0.0],
        radius: 4.0,
    }];
    j
}

/// One job per source kind and launch case (inside, outside, oblique, through label 0, missing
/// the grid), built by `make(kind, position, direction)` on the caller's geometry: the event
/// zoo that the determinism and CPU-path tests both walk.
pub fn source_zoo(make: impl Fn(SourceKind, [f32; 3], [f32; 3]) -> Job) -> Vec<Job> {
    let zoo = make;
    let down = [0.0, 0.0, 1.0];
    let slanted = [0.3, 0.2, 0.932_737_9];
    vec![
        zoo(SourceKind::Pencil, [12.0, 10.0, 0.0], down),
        zoo(SourceKind::Pencil, [5.0, 3.0, -4.0], slanted),
        zoo(SourceKind::Isotropic, [12.0, 10.0, 8.0], down),
        zoo(
            SourceKind::Cone { half_angle: 0.5 },
            [12.0, 10.0, 0.0],
            down,
        ),
        zoo(SourceKind::Gaussian { waist: 3.0 }, [12.0, 10.0, 0.0], down),
        zoo(SourceKind::Disk { radius: 4.0 }, [12.0, 10.0, 0.0], down),
        zoo(
            SourceKind::Planar {
                v1: [20.0, 0.0, 0.0],
                v2: [0.0, 16.0, 0.0],
            },
            [2.0, 2.0, -3.0],
            down,
        ),
        zoo(
            SourceKind::Pattern {
                v1: [20.0, 0.0, 0.0],
                v2: [0.0, 16.0, 0.0],
                width: 3,
                height: 2,
                pattern: vec![1.0, 0.5, 0.0, 0.25, 0.75, 1.0],
            },
            [2.0, 2.0, -3.0],
            down,
        ),
        // Starts inside the label-0 box and must travel to the medium.
        zoo(SourceKind::Pencil, [3.5, 3.5, 11.5], [0.0, 0.0, -1.0]),
        // Misses the grid entirely.
        zoo(SourceKind::Pencil, [-5.0, -5.0, -5.0], [0.0, 0.0, -1.0]),
    ]
}
