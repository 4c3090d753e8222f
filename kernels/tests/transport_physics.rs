//! Physics validation of the transport engine against published reference values
//! (`shared/reference/transport.md`): the MCX cube60 family and the matched slab of van de
//! Hulst. Photon counts are chosen so the statistical error is well inside the tolerance.

mod common;

use compushare_kernels::transport::simulate;
use compushare_kernels::transport::tally::Tally;

fn run(job: &compushare_kernels::transport::job::Job, n: u64) -> Tally {
    match simulate(job, 0..n, 2, None) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", job.id),
    }
}

fn check_absorbed(job: &compushare_kernels::transport::job::Job, expected: f64, n: u64) {
    let t = run(job, n);
    let a = t.absorbed_fraction();
    eprintln!(
        "{}: absorbed {a:.5} (expected {expected} +- 0.005), {n} photons",
        job.id
    );
    assert!(
        (a - expected).abs() <= 0.005,
        "{}: absorbed {a} vs {expected}",
        job.id
    );
}

#[test]
fn cube60_absorbed_fraction() {
    check_absorbed(&common::cube60(false), 0.1769, 100_000);
}

#[test]
fn cube60b_absorbed_fraction() {
    check_absorbed(&common::cube60(true), 0.272, 100_000);
}

#[test]
fn cubesph60b_absorbed_fraction() {
    check_absorbed(&common::cubesph60b(), 0.2702, 100_000);
}

#[test]
fn cube60planar_absorbed_fraction() {
    check_absorbed(&common::cube60planar(), 0.2551, 100_000);
}

/// The same optical problem on 0.02 mm voxels (100^3) gives cube60's answer.
#[test]
fn fine_voxels_keep_cube60_physics() {
    check_absorbed(&common::fine_cube(), 0.1769, 100_000);
}

/// The distance-map jumps change no physics: cubesph60b walked voxel by voxel agrees with the
/// accelerated walk within statistical error (4 sigma, from the per-photon records).
#[test]
fn acceleration_preserves_physics() {
    use compushare_kernels::transport::Engine;
    let job = common::cubesph60b();
    let n = 30_000u64;
    let one = compushare_kernels::transport::tally::WEIGHT_ONE as f64;
    let mean_var = |e: &Engine| {
        let (_, recs) = e
            .simulate_with_records(0..n, 2, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let xs: Vec<f64> = recs.iter().map(|r| r.deposited as f64 / one).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n as f64 - 1.0);
        (m, v)
    };
    let fast = Engine::new(&job).unwrap_or_else(|e| panic!("{e}"));
    let mut seeded = job.clone();
    seeded.seed = 99;
    let slow = Engine::new_voxel_stepping(&seeded).unwrap_or_else(|e| panic!("{e}"));
    let (m1, v1) = mean_var(&fast);
    let (m2, v2) = mean_var(&slow);
    let z = (m1 - m2) / ((v1 + v2) / n as f64).sqrt();
    eprintln!("deposited: jumps {m1:.5}, voxel stepping {m2:.5}, z {z:.2}");
    assert!(z.abs() < 4.0, "z = {z}");
}

/// Reference section 2: Rd 0.09739, Tt 0.66096, A 0.24165 (van de Hulst), at 1e6 photons in
/// 0.01 mm voxels with cyclic lateral faces.
#[test]
fn matched_slab_van_de_hulst() {
    let job = common::slab(0.01);
    let t = run(&job, 1_000_000);
    let l = t.launched as f64;
    let rd = t.escaped[2] as f64 / l;
    let tt = t.escaped[5] as f64 / l;
    let a = t.absorbed_fraction();
    eprintln!("slab: Rd {rd:.5} Tt {tt:.5} A {a:.5}");
    assert!((rd - 0.09739).abs() <= 0.0015, "Rd {rd}");
    assert!((tt - 0.66096).abs() <= 0.0015, "Tt {tt}");
    assert!((a - 0.24165).abs() <= 0.0015, "A {a}");
    // Lateral faces are cyclic: nothing escapes through them.
    assert_eq!(t.escaped[0] + t.escaped[1] + t.escaped[3] + t.escaped[4], 0);
}

/// Unscattered transmittance of a purely absorbing slab is exactly Beer-Lambert: with mus = 0
/// every photon crosses straight, so Tt = exp(-mua d) up to fixed-point truncation.
#[test]
fn pure_absorber_is_beer_lambert() {
    let mut job = common::slab(0.01);
    job.media[1].mus = 0.0;
    let t = run(&job, 1000);
    let tt = t.escaped[5] as f64 / t.launched as f64;
    let exact = (-0.2f64).exp();
    assert!((tt - exact).abs() < 1e-6, "Tt {tt} vs {exact}");
}
