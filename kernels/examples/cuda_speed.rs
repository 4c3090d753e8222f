//! GPU speed harness: `cargo run -p compushare-kernels --release --example cuda_speed --
//! [NAME] [PHOTONS] [RUNS] [SHA_SECONDS]` prints transport photon/ms of NAME (cube60, cube60b,
//! cubesph60b, cube60planar) on cuda:0 per run and the median (kernel load excluded, upload
//! included in the first setup only), the digest, then sha256d GH/s over SHA_SECONDS.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use compushare_kernels::cuda::sha256d::GpuScanner;
use compushare_kernels::cuda::transport::GpuTransport;
use compushare_kernels::cuda::Gpu;
use compushare_kernels::sha256d::{ScanWork, Scanner, Target};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("cube60");
    let photons: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let sha_seconds: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let job = match name {
        "cube60" => common::cube60(false),
        "cube60b" => common::cube60(true),
        "cubesph60b" => common::cubesph60b(),
        "cube60planar" => common::cube60planar(),
        other => {
            eprintln!("unknown benchmark {other}");
            std::process::exit(2);
        }
    };
    let gpu = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut t = match GpuTransport::new(&gpu, &job) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut rates = Vec::new();
    for r in 0..runs {
        let t0 = Instant::now();
        let tally = match t.run(0..photons) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let rate = photons as f64 / ms;
        let digest: String = tally.digest().iter().map(|b| format!("{b:02x}")).collect();
        println!(
            "{name} run {r}: {photons} photons {ms:.1} ms {rate:.0} photon/ms digest {digest}"
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    if let Some(m) = rates.get(rates.len() / 2) {
        println!(
            "{name} median {m:.0} photon/ms on {} (sm_{}{})",
            gpu.name(),
            gpu.arch().major,
            gpu.arch().minor
        );
    }
    let scanner = match GpuScanner::new(0) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let stop = AtomicBool::new(false);
    let mut hashes = 0u64;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(sha_seconds));
            stop.store(true, Ordering::Relaxed);
        });
        for round in 0u64.. {
            let mut header = [0u8; 80];
            header[44..52].copy_from_slice(&round.to_le_bytes());
            let work = ScanWork::new(header, Target::DIFF1);
            match scanner.scan(&work, 0..1 << 32, &stop, &mut |_| {}) {
                Ok(st) => {
                    hashes += st.hashes;
                    if st.cancelled {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    break;
                }
            }
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sha256d {:.3} GH/s ({hashes} hashes in {secs:.2} s)",
        hashes as f64 / secs / 1e9
    );
}
