//! What the rig's commitments cost: a plain engine run of a photon range versus the rig's
//! block-wise run (records, leaf hashes, block roots, exact tally merges), and the time to
//! answer a sample request that lands in distinct blocks.
//!
//! `cargo run --release -p compushare-controller --example rig_commit_bench -- [JOB] [PHOTONS]
//! [THREADS] [SAMPLES] [REPS]` (JOB: a built-in benchmark name; defaults cube60 200000 2 64 3).
//! Plain and rig runs alternate REPS times (a shared machine drifts); prints one JSON line of
//! medians.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::Device;
use compushare_controller::transport::assignment::{batch_log2_for, block_log2_for, run};
use compushare_controller::transport::proofs::{prove, Commitments};
use compushare_kernels::transport::builtin::builtin_job;
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::tally_ops::tally_cells;
use compushare_kernels::transport::Engine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map(String::as_str).unwrap_or("cube60");
    let photons: u64 = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let samples: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let opts = ParseOptions {
        photons: Some(photons),
        ..ParseOptions::default()
    };
    let job = builtin_job(name, &opts)?;
    let engine = Engine::new(&job)?;
    // The rig runs through its device: a CPU device of `threads` cores.
    let device = CpuDevice::new(0, threads, 0, "bench CPU");
    let mut loaded = device.load(&job)?;

    let reps: usize = args
        .get(4)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let block_log2 = block_log2_for(photons);
    let batch_log2 = batch_log2_for(tally_cells(&job).unwrap_or(0));
    let (mut plain_t, mut rig_t) = (Vec::new(), Vec::new());
    let mut done = None;
    for _ in 0..reps {
        let t = Instant::now();
        let plain = engine.simulate(0..photons, threads, None)?;
        plain_t.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let d = run(
            loaded.as_mut(),
            0,
            photons,
            block_log2,
            batch_log2,
            &AtomicBool::new(false),
            &mut |_| {},
        )?;
        rig_t.push(t.elapsed().as_secs_f64());
        if d.tally.digest() != plain.digest() {
            return Err("block-wise tally differs from the plain run".into());
        }
        done = Some(d);
    }
    let done = done.ok_or("no run")?;
    let plain_s = median(&mut plain_t);
    let rig_s = median(&mut rig_t);

    // Spread the samples so each lands in its own block where possible (the worst case).
    let step = (photons / samples.max(1)).max(1);
    let asked: Vec<u64> = (0..samples).map(|i| (i * step) % photons).collect();
    let c = Commitments {
        start: 0,
        count: photons,
        block_log2: done.block_log2,
        block_roots: done.block_roots.clone(),
    };
    let t = Instant::now();
    let proofs = prove(loaded.as_mut(), &c, &asked)?;
    let prove_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"job\":\"{name}\",\"photons\":{photons},\"threads\":{threads},\"block\":{},\"batch\":{},\
         \"plain_s\":{plain_s:.3},\"rig_s\":{rig_s:.3},\"overhead\":{:.4},\
         \"samples\":{},\"prove_s\":{prove_s:.3},\"photons_per_s\":{:.0}}}",
        1u64 << done.block_log2,
        1u64 << batch_log2,
        rig_s / plain_s - 1.0,
        proofs.len(),
        photons as f64 / rig_s
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
