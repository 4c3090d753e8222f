//! `compushare bench sha256d`: SHA-256d nonce-scanning throughput of a device.
//!
//! Each thread scans its own header (distinct so that no two threads hash the same thing)
//! against a difficulty-1 target, the way a miner would, until the time is up; the stop is
//! the same cancel flag a miner uses for clean_jobs. Output: a human line, or with `--json`
//! exactly the object CONTRACT.md names.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use compushare_kernels::sha256d::{CpuPath, CpuScanner, ScanWork, Scanner, Target};

/// Arguments of `compushare bench sha256d`.
#[derive(Args, Debug)]
pub struct BenchSha256dArgs {
    /// Hashing threads (one scanner each).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How long to hash, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Device: `cpu` or `cuda:K`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU instruction-set path: auto, or one of the names `--path list` prints.
    #[arg(long, default_value = "auto")]
    path: String,
    /// Print one JSON object on stdout instead of a line of text.
    #[arg(long)]
    json: bool,
}

/// Upper bounds that keep a typo from starting a day-long or thousand-thread run.
const MAX_THREADS: usize = 1024;
const MAX_SECONDS: f64 = 86_400.0;

fn choose_path(name: &str) -> anyhow::Result<CpuPath> {
    if name == "auto" {
        return Ok(CpuPath::detect());
    }
    let path = CpuPath::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = CpuPath::ALL.iter().map(|p| p.name()).collect();
        anyhow!(
            "--path: unknown path `{name}` (expected auto, {})",
            names.join(", ")
        )
    })?;
    if !path.is_available() {
        bail!("--path: this CPU does not support the `{name}` path");
    }
    Ok(path)
}

/// Runs the benchmark and prints its result.
pub fn run(args: BenchSha256dArgs) -> anyhow::Result<()> {
    if args.path == "list" {
        for p in CpuPath::ALL {
            let note = if p.is_available() {
                ""
            } else {
                " (not supported here)"
            };
            println!("{}{note}", p.name());
        }
        return Ok(());
    }
    match args.device.as_str() {
        "cpu" => {}
        d if d.starts_with("cuda:") => {
            return crate::cmd_cuda::bench_sha256d(d, args.seconds, args.json)
        }
        d => bail!("--device: unknown device `{d}` (expected cpu or cuda:K)"),
    }
    if args.threads == 0 || args.threads > MAX_THREADS {
        bail!(
            "--threads: {} is not within 1..={MAX_THREADS}",
            args.threads
        );
    }
    if !args.seconds.is_finite() || args.seconds <= 0.0 || args.seconds > MAX_SECONDS {
        bail!(
            "--seconds: {} is not within (0, {MAX_SECONDS}]",
            args.seconds
        );
    }
    let path = choose_path(&args.path)?;
    let scanner = CpuScanner::with_path(path).context("--path")?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || bench_thread(scanner, i as u64, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut hashes: u64 = 0;
    let mut cpu_seconds = Some(0.0);
    for w in workers {
        let (h, cpu) = w
            .join()
            .map_err(|_| anyhow!("a hashing thread panicked"))??;
        hashes += h;
        cpu_seconds = cpu_seconds.zip(cpu).map(|(a, b)| a + b);
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = hashes as f64 / seconds;
    if args.json {
        let out = serde_json::json!({
            "threads": args.threads,
            "seconds": seconds,
            "hashes": hashes,
            "hashes_per_s": rate,
            "device": "cpu",
        });
        println!("{out}");
    } else {
        // On a shared machine the wall-clock rate depends on everyone else; the rate per
        // second the threads actually ran on a CPU says what the code does.
        let per_cpu = match cpu_seconds {
            Some(cpu) if cpu > 0.0 => {
                format!(", {:.2} MH/s per CPU-second", hashes as f64 / cpu / 1e6)
            }
            _ => String::new(),
        };
        println!(
            "sha256d cpu path={} threads={} seconds={seconds:.2} hashes={hashes} rate={:.2} MH/s ({:.2} MH/s per thread{per_cpu})",
            path.name(),
            args.threads,
            rate / 1e6,
            rate / 1e6 / args.threads as f64
        );
    }
    Ok(())
}

/// Seconds this thread has run on a CPU, from Linux's /proc/thread-self/schedstat (None
/// elsewhere or if it cannot be read).
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// One thread: scan whole nonce spaces of a thread-specific header until `stop`. Returns the
/// hashes done and, where known, the CPU time it took.
fn bench_thread(
    scanner: CpuScanner,
    thread: u64,
    stop: &AtomicBool,
) -> anyhow::Result<(u64, Option<f64>)> {
    let cpu_start = thread_cpu_seconds();
    let mut total = 0u64;
    for round in 0u64.. {
        let mut header = [0u8; 80];
        header[0] = 0x20; // version 0x20000000, like a BIP 9 era block
        header[36..44].copy_from_slice(&thread.to_le_bytes());
        header[44..52].copy_from_slice(&round.to_le_bytes());
        header[72..76].copy_from_slice(&0x1d00_ffffu32.to_le_bytes());
        let work = ScanWork::new(header, Target::DIFF1);
        let stats = scanner.scan(&work, 0..1 << 32, stop, &mut |_| {})?;
        total += stats.hashes;
        if stats.cancelled {
            break;
        }
    }
    let cpu = cpu_start
        .zip(thread_cpu_seconds())
        .map(|(start, end)| end - start);
    Ok((total, cpu))
}
