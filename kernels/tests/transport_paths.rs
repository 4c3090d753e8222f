//! Every CPU path of the transport engine (scalar reference, lanes, AVX2, AVX-512: each one
//! this CPU has) gives the scalar engine's bits: tally digest, every photon's record, and the
//! detected photons, on the builtins and on jobs that exercise every event kind (faces of
//! every boundary kind, Fresnel interfaces, internal background, time-window ends, roulette
//! kills and survivals, weight exhaustion, step limit, every source kind).

mod common;

use compushare_kernels::transport::job::{
    FaceBoundary, Job, Medium, Roulette, SourceKind, TimeGates,
};
use compushare_kernels::transport::{CpuPath, Engine, Fate, PhotonRecord};

/// The shared event zoo ([`common::zoo`]) with a strongly absorbing region (x > 19, where the
/// zoo has its default medium) and a shorter window of four gates.
fn zoo(kind: SourceKind, pos: [f32; 3], dir: [f32; 3]) -> Job {
    let mut j = common::zoo(kind, pos, dir);
    j.id = "paths-zoo".into();
    j.media.push(Medium {
        mua: 2.0,
        mus: 4.0,
        g: 0.0,
        n: 1.37,
    });
    // Labels run x fastest: a voxel's x is its index modulo the row length.
    let nx = j.dim[0] as usize;
    for (i, l) in j.labels.iter_mut().enumerate() {
        if *l == 1 && i % nx > 19 {
            *l = 4;
        }
    }
    j.time = TimeGates {
        t0: 0.0,
        t1: 0.6e-9,
        dt: 0.15e-9,
        gates: 4,
    };
    j
}

fn jobs() -> Vec<Job> {
    let down = [0.0, 0.0, 1.0];
    let mut v = common::source_zoo(zoo);
    // Roulette in the lane path: strong absorption, long window.
    let mut r = zoo(SourceKind::Isotropic, [12.0, 10.0, 8.0], down);
    r.media[1].mua = 0.4;
    r.time.t1 = 5e-9;
    r.time.dt = 1.25e-9;
    r.roulette = Some(Roulette {
        threshold: 0.05,
        survival_factor: 10.0,
    });
    v.push(r);
    // Weight exhaustion (no roulette) and a medium without absorption or scattering.
    let mut e = zoo(SourceKind::Pencil, [12.0, 10.0, 0.0], down);
    e.media[1].mua = 5.0;
    e.media[2] = Medium {
        mua: 0.0,
        mus: 0.0,
        g: 0.0,
        n: 1.0,
    };
    e.time.t1 = 1e-6;
    e.time.dt = 0.25e-6;
    v.push(e);
    // Step limit: a mirror box with neither absorption nor scattering.
    let mut s = common::cube60(false);
    s.dim = [4, 4, 4];
    s.labels = vec![1; 64];
    s.media[1] = Medium {
        mua: 0.0,
        mus: 0.0,
        g: 0.0,
        n: 1.0,
    };
    s.faces = [FaceBoundary::Mirror; 6];
    s.time.t1 = 1.0;
    s.time.dt = 1.0;
    s.source.pos = [1.5, 1.5, 1.5];
    s.source.dir = [0.6, 0.48, 0.64];
    s.detectors.clear();
    v.push(s);
    v
}

fn run(job: &Job, path: CpuPath, n: u64, threads: usize) -> (String, Vec<PhotonRecord>, usize) {
    let e = Engine::with_path(job, path).unwrap_or_else(|err| panic!("{}: {err}", job.id));
    assert_eq!(e.path(), path);
    let (t, recs) = e
        .simulate_with_records(0..n, threads, None)
        .unwrap_or_else(|err| panic!("{}: {err}", job.id));
    (hex(&t.digest()), recs, t.detected.len())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn paths() -> Vec<CpuPath> {
    let p: Vec<CpuPath> = CpuPath::ALL
        .into_iter()
        .filter(|p| *p != CpuPath::Scalar && p.available())
        .collect();
    eprintln!("paths checked against scalar: {p:?}");
    assert!(p.contains(&CpuPath::Lanes), "the portable lanes always run");
    p
}

fn compare(job: &Job, n: u64) -> Vec<PhotonRecord> {
    let (want, want_recs, want_det) = run(job, CpuPath::Scalar, n, 1);
    for path in paths() {
        for threads in [1, 2] {
            let (got, recs, det) = run(job, path, n, threads);
            assert_eq!(det, want_det, "{} {path:?}: detected", job.id);
            assert_eq!(recs.len(), want_recs.len());
            for (a, b) in recs.iter().zip(&want_recs) {
                assert_eq!(a, b, "{} {path:?} {threads} threads: record", job.id);
            }
            assert_eq!(got, want, "{} {path:?} {threads} threads: digest", job.id);
        }
    }
    want_recs
}

#[test]
fn every_path_equals_scalar_on_event_zoo() {
    let mut fates = [false; 6];
    let mut roulette = false;
    for (k, job) in jobs().iter().enumerate() {
        let n = if k == 12 { 1 } else { 1500 };
        for r in compare(job, n) {
            let f = match r.fate {
                Fate::Escaped { .. } => 0,
                Fate::AliveAtT1 => 1,
                Fate::RouletteKilled => 2,
                Fate::WeightExhausted => 3,
                Fate::NeverEntered { .. } => 4,
                Fate::StepLimit => 5,
            };
            fates[f] = true;
            roulette |= r.roulette_gain > 0;
        }
    }
    assert_eq!(fates, [true; 6], "every fate occurred");
    assert!(roulette, "a roulette survival occurred");
}

#[test]
fn every_path_equals_scalar_on_builtins_and_fine_voxels() {
    for job in [
        common::cube60(false),
        common::cube60(true),
        common::cubesph60b(),
        common::cube60planar(),
    ] {
        compare(&job, 1500);
    }
    compare(&common::slab(0.01), 300);
    compare(&common::fine_cube(), 300);
}

#[test]
fn simulate_photon_equals_lane_records() {
    let job = common::cubesph60b();
    let e = Engine::with_path(&job, CpuPath::Lanes).unwrap_or_else(|err| panic!("{err}"));
    let (_, recs) = e
        .simulate_with_records(0..200, 2, None)
        .unwrap_or_else(|err| panic!("{err}"));
    for r in recs.iter().step_by(7) {
        assert_eq!(e.simulate_photon(r.index), *r);
    }
}
