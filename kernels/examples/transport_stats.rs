//! Per-photon statistics of a benchmark (mean scatters, fates): `transport_stats NAME N`.

#[path = "../tests/common/mod.rs"]
mod common;

use compushare_kernels::transport::{simulate_with_records, Fate};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("cube60");
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let job = match name {
        "cube60b" => common::cube60(true),
        "cubesph60b" => common::cubesph60b(),
        "cube60planar" => common::cube60planar(),
        "slab" => common::slab(0.01),
        "fine100" => common::fine_cube(),
        _ => common::cube60(false),
    };
    let Ok((_, recs)) = simulate_with_records(&job, 0..n, 1, None) else {
        eprintln!("failed");
        std::process::exit(1);
    };
    let scat: u64 = recs.iter().map(|r| u64::from(r.scatters)).sum();
    let mut fates = std::collections::BTreeMap::new();
    for r in &recs {
        *fates.entry(format!("{:?}", r.fate)).or_insert(0u64) += 1;
    }
    println!("{name}: mean scatters {:.2}", scat as f64 / n as f64);
    for (k, v) in fates {
        println!("  {k}: {v}");
    }
    let _ = Fate::AliveAtT1;
}
