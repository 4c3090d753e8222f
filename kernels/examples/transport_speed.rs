//! Speed harness: `cargo run -p compushare-kernels --release --example transport_speed --
//! NAME [PHOTONS] [THREADS] [RUNS]` with NAME one of cube60, cube60b, cubesph60b,
//! cube60planar, slab, fine100. Prints photon/ms per run, the median, and the digest.

#[path = "../tests/common/mod.rs"]
mod common;

use compushare_kernels::transport::Engine;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("cube60");
    let photons: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let runs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let job = match name {
        "cube60" => common::cube60(false),
        "cube60b" => common::cube60(true),
        "cubesph60b" => common::cubesph60b(),
        "cube60planar" => common::cube60planar(),
        "slab" => common::slab(0.01),
        "fine100" => common::fine_cube(),
        other => {
            eprintln!("unknown benchmark {other}");
            std::process::exit(2);
        }
    };
    let engine = match Engine::new(&job) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut speeds = Vec::new();
    for run in 0..runs {
        let t = Instant::now();
        let tally = match engine.simulate(0..photons, threads, None) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let speed = photons as f64 / ms;
        speeds.push(speed);
        let l = tally.launched as f64;
        let esc: Vec<String> = tally
            .escaped
            .iter()
            .map(|&e| format!("{:.5}", e as f64 / l))
            .collect();
        println!(
            "{name} run {run}: {photons} photons, {threads} threads, {ms:.0} ms, {speed:.1} photon/ms, absorbed {:.5}, deposited {:.5}, alive {:.5}, escaped [{}], detected {}, digest {}",
            tally.absorbed_fraction(),
            tally.deposited() as f64 / l,
            tally.alive_at_t1 as f64 / l,
            esc.join(" "),
            tally.detected.len(),
            tally.digest().iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    speeds.sort_by(|a, b| a.total_cmp(b));
    if let Some(m) = speeds.get(speeds.len() / 2) {
        println!("{name} median {m:.1} photon/ms");
    }
}
