//! Determinism and exactness of the transport engine: bit-identical digests across thread
//! counts, range splits and runs; single-photon re-simulation; exact integer energy identity;
//! Russian roulette unbiased; typed errors.

mod common;

use compushare_kernels::transport::job::{FaceBoundary, Job, Medium, Roulette};
use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::{
    simulate, simulate_photon, simulate_with_records, tally_bytes, Engine, Fate, PhotonRecord,
    TransportError,
};

fn sim(job: &Job, r: std::ops::Range<u64>, threads: usize) -> Tally {
    match simulate(job, r, threads, None) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", job.id),
    }
}

fn zoo_jobs() -> Vec<Job> {
    common::source_zoo(common::zoo)
}

fn identity_holds(t: &Tally) {
    let lhs = t.deposited() as u128
        + t.escaped_total() as u128
        + t.alive_at_t1 as u128
        + t.specular as u128
        + t.roulette_killed as u128;
    let rhs = t.launched as u128 + t.roulette_gained as u128;
    assert_eq!(lhs, rhs, "energy identity");
}

#[test]
fn digests_identical_across_threads_splits_and_runs() {
    let mut jobs = zoo_jobs();
    jobs.push(common::cube60(true));
    for (k, job) in jobs.iter().enumerate() {
        let n = 3000;
        let base = sim(job, 0..n, 1);
        let d = base.digest();
        assert_eq!(base.photons, n);
        for threads in [2, 7] {
            assert_eq!(
                sim(job, 0..n, threads).digest(),
                d,
                "job {k}: {threads} threads"
            );
        }
        assert_eq!(sim(job, 0..n, 2).digest(), d, "job {k}: second run");
        for split in [1, 1234, n - 1] {
            let mut a = sim(job, 0..split, 3);
            let b = sim(job, split..n, 2);
            a.merge(&b).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(a, base, "job {k}: split at {split}");
            assert_eq!(a.digest(), d, "job {k}: split at {split}");
        }
        identity_holds(&base);
    }
}

#[test]
fn zoo_jobs_exercise_their_paths() {
    let jobs = zoo_jobs();
    let t = sim(&jobs[0], 0..5000, 2);
    assert!(t.specular > 0, "specular at the index-mismatched entry");
    assert!(!t.detected.is_empty(), "detector sees reflected photons");
    assert!(t.escaped[0] > 0 && t.escaped[2] > 0 && t.escaped[5] > 0);
    // Without the internal void (whose escapes count on the crossing's face), nothing leaves
    // through cyclic or mirror faces.
    let mut closed = jobs[0].clone();
    for l in closed.labels.iter_mut() {
        if *l == 0 {
            *l = 1;
        }
    }
    let c = sim(&closed, 0..3000, 2);
    assert_eq!(
        c.escaped[1] + c.escaped[3] + c.escaped[4],
        0,
        "cyclic and mirror faces"
    );
    assert!(
        t.escaped[1] + t.escaped[3] + t.escaped[4] > 0,
        "escapes into the void box"
    );
    assert!(
        t.deposit.iter().skip(3 * 24 * 20 * 16).any(|&c| c > 0),
        "late gate used"
    );
    // Deposits land only in voxels whose medium absorbs, so MCX's fluence (deposit / mua)
    // is finite everywhere and its normalisation identity holds.
    let voxels = t.deposit.len() / 4;
    for (cell, &dep) in t.deposit.iter().enumerate() {
        if dep > 0 {
            let label = jobs[0].labels[cell % voxels] as usize;
            assert!(
                label != 0 && jobs[0].media[label].mua > 0.0,
                "deposit in cell {cell}"
            );
        }
    }
    // The pattern job launches less than one weight unit per photon.
    let p = sim(&jobs[7], 0..2000, 2);
    assert!(p.launched < 2000 * compushare_kernels::transport::tally::WEIGHT_ONE);
    identity_holds(&p);
    // A photon missing the grid escapes whole without depositing.
    let miss = sim(&jobs[9], 0..10, 1);
    assert_eq!(miss.deposited(), 0);
    assert_eq!(miss.escaped_total(), miss.launched);
    // Starting in the void box: the photons still reach the medium.
    let void = sim(&jobs[8], 0..1000, 1);
    assert!(void.deposited() > 0);
}

#[test]
fn single_photon_resimulation_matches_range_records() {
    for job in zoo_jobs().iter().take(8) {
        let engine = Engine::new(job).unwrap_or_else(|e| panic!("{e}"));
        let (tally, recs) = match simulate_with_records(job, 100..1100, 3, None) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(recs.len(), 1000);
        let (_, recs7) = engine
            .simulate_with_records(100..1100, 7, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recs, recs7);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.index, 100 + i as u64);
            // Per-photon identity.
            assert_eq!(
                r.launched + r.roulette_gain,
                r.specular + r.deposited + r.exit_weight,
                "photon {}",
                r.index
            );
        }
        for r in &recs {
            // The decoding a GPU's records go through gives back every record.
            assert_eq!(PhotonRecord::from_bytes(&r.to_bytes()), Some(*r));
        }
        for r in recs.iter().step_by(37) {
            assert_eq!(engine.simulate_photon(r.index), *r);
            assert_eq!(r.to_bytes(), engine.simulate_photon(r.index).to_bytes());
        }
        assert_eq!(simulate_photon(job, recs[5].index).ok(), Some(recs[5]));
        // Records add up to the tally.
        let dep: u64 = recs.iter().map(|r| r.deposited).sum();
        assert_eq!(dep, tally.deposited());
        let det = recs.iter().filter(|r| r.detector.is_some()).count();
        assert_eq!(det, tally.detected.len());
    }
}

#[test]
fn record_encoding_is_canonical() {
    let r = PhotonRecord {
        index: 0x0102_0304_0506_0708,
        fate: Fate::Escaped { face: 5 },
        launched: 1,
        specular: 2,
        deposited: 3,
        exit_weight: 4,
        roulette_gain: 5,
        scatters: 6,
        end_gate: 7,
        detector: Some(9),
    };
    let b = r.to_bytes();
    assert_eq!(&b[0..8], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!((b[8], b[9], b[10], b[12]), (0, 5, 1, 9));
    assert_eq!(&b[16..24], &1u64.to_le_bytes());
    assert_eq!(&b[56..60], &6u32.to_le_bytes());
    assert_eq!(&b[60..64], &7u32.to_le_bytes());
    let other = PhotonRecord {
        detector: None,
        ..r
    };
    assert_ne!(other.to_bytes(), b);
    // Decoding takes canonical encodings of conserving records only.
    assert_eq!(PhotonRecord::from_bytes(&b), None, "1 + 5 != 2 + 3 + 4");
    let ok = PhotonRecord {
        exit_weight: 1,
        ..r
    };
    let good = ok.to_bytes();
    assert_eq!(PhotonRecord::from_bytes(&good), Some(ok));
    for (at, v) in [(8, 6), (9, 6), (10, 2), (11, 1), (14, 1), (15, 1)] {
        let mut bad = good;
        bad[at] = v;
        assert_eq!(PhotonRecord::from_bytes(&bad), None, "byte {at} = {v}");
    }
    let mut no_flag = PhotonRecord {
        detector: None,
        ..ok
    }
    .to_bytes();
    no_flag[12] = 3; // a detector number without its flag
    assert_eq!(PhotonRecord::from_bytes(&no_flag), None);
    let mut alive = PhotonRecord {
        fate: Fate::AliveAtT1,
        ..ok
    }
    .to_bytes();
    assert!(PhotonRecord::from_bytes(&alive).is_some());
    alive[9] = 2; // a face on a fate that has none
    assert_eq!(PhotonRecord::from_bytes(&alive), None);
}

/// Mean and variance of the escaped and deposited weight per photon.
fn stats(job: &Job, seed: u64, n: u64) -> [(f64, f64); 2] {
    let mut j = job.clone();
    j.seed = seed;
    let (_, recs) = simulate_with_records(&j, 0..n, 2, None).unwrap_or_else(|e| panic!("{e}"));
    let one = compushare_kernels::transport::tally::WEIGHT_ONE as f64;
    let escaped: Vec<f64> = recs
        .iter()
        .map(|r| match r.fate {
            Fate::Escaped { .. } => r.exit_weight as f64 / one,
            _ => 0.0,
        })
        .collect();
    let deposited: Vec<f64> = recs.iter().map(|r| r.deposited as f64 / one).collect();
    let mv = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n as f64 - 1.0);
        (m, v)
    };
    [mv(&escaped), mv(&deposited)]
}

#[test]
fn russian_roulette_is_unbiased() {
    // Strong absorption so that weights fall below the threshold often.
    let mut off = common::cube60(true);
    off.dim = [20, 20, 20];
    off.labels = vec![1; 8000];
    off.source.pos = [10.0, 10.0, 0.0];
    off.media[1].mua = 0.3;
    off.media[1].mus = 3.0;
    let mut on = off.clone();
    on.roulette = Some(Roulette {
        threshold: 0.05,
        survival_factor: 10.0,
    });
    let n = 40_000;
    let t_on = sim(&on, 0..n, 2);
    assert!(
        t_on.roulette_killed > 0 && t_on.roulette_gained > 0,
        "roulette active"
    );
    identity_holds(&t_on);
    let a = stats(&off, 11, n);
    let b = stats(&on, 22, n);
    for (k, name) in ["escaped", "deposited"].iter().enumerate() {
        let (m1, v1) = a[k];
        let (m2, v2) = b[k];
        let z = (m1 - m2) / ((v1 + v2) / n as f64).sqrt();
        eprintln!("{name}: off {m1:.5} on {m2:.5} z {z:.2}");
        assert!(z.abs() < 4.0, "{name}: off {m1} on {m2}, z = {z}");
    }
}

/// A photon that can never end (mirror box, no absorption, no scattering, endless time window)
/// stops at the segment limit with its weight counted as alive, instead of hanging.
#[test]
fn endless_photon_is_stopped() {
    let mut job = common::cube60(false);
    job.dim = [4, 4, 4];
    job.labels = vec![1; 64];
    job.media[1] = Medium {
        mua: 0.0,
        mus: 0.0,
        g: 0.0,
        n: 1.0,
    };
    job.faces = [FaceBoundary::Mirror; 6];
    job.time.t1 = 1.0;
    job.time.dt = 1.0;
    job.source.pos = [1.5, 1.5, 1.5];
    job.source.dir = [0.6, 0.48, 0.64];
    job.detectors.clear();
    let r = simulate_photon(&job, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.fate, Fate::StepLimit);
    assert_eq!(r.exit_weight, r.launched);
    let t = sim(&job, 0..2, 2);
    assert_eq!(t.alive_at_t1, t.launched);
}

#[test]
fn errors_are_typed() {
    let job = common::cube60(false);
    assert_eq!(
        simulate(&job, 0..10, 0, None).err(),
        Some(TransportError::ZeroThreads)
    );
    let mut bad = job.clone();
    bad.labels[7] = 9;
    assert!(matches!(
        simulate(&bad, 0..10, 1, None),
        Err(TransportError::InvalidJob {
            field: "labels",
            ..
        })
    ));
    let mut bad = job.clone();
    bad.labels.pop();
    assert!(matches!(
        Engine::new(&bad),
        Err(TransportError::InvalidJob { .. })
    ));
    let mut bad = job.clone();
    bad.source.dir = [0.0; 3];
    assert!(matches!(
        Engine::new(&bad),
        Err(TransportError::InvalidJob {
            field: "source",
            ..
        })
    ));
    let mut huge = job.clone();
    huge.dim = [1 << 30, 1 << 30, 1 << 30];
    assert_eq!(tally_bytes(&huge), u64::MAX);
    assert!(Tally::try_new(&huge).is_err());
    let mut a = Tally::new(&job);
    let mut other = job.clone();
    other.dim = [10, 10, 10];
    assert!(matches!(
        a.merge(&Tally::new(&other)),
        Err(TransportError::MergeMismatch { .. })
    ));
    // An empty range is a valid, empty tally.
    let t = sim(&job, 5..5, 2);
    assert_eq!(t.photons, 0);
    assert_eq!(t.digest(), Tally::new(&job).digest());
}

#[test]
fn progress_is_reported() {
    let job = common::cube60(false);
    let seen = std::sync::atomic::AtomicU64::new(0);
    let cb = |n: u64| {
        seen.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    };
    let t = simulate(&job, 0..20_000, 2, Some(&cb)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.photons, 20_000);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 20_000);
}
