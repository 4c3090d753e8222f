//! The CUDA side of the `--device cuda:K` commands: `bench sha256d` on a GPU and the GPU
//! transport run that `sim` calls. Owned by the CUDA backend; the command modules route
//! `cuda:K` here. Without a usable GPU every entry point fails with the hardware crate's one
//! line, e.g. "--device cuda:0: no NVIDIA driver (libcuda.so.1 not found)".

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use compushare_hardware::DeviceSpec;
use compushare_kernels::cuda::sha256d::GpuScanner;
use compushare_kernels::cuda::{transport, CudaError};
use compushare_kernels::sha256d::{ScanWork, Scanner, Target};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally::Tally;

/// The CUDA device number of a `--device` value, or the error naming it.
pub fn cuda_index(device: &str) -> anyhow::Result<u32> {
    match device.parse::<DeviceSpec>() {
        Ok(DeviceSpec::Cuda(k)) => Ok(k),
        Ok(DeviceSpec::Cpu) => bail!("--device cpu is not a CUDA device"),
        Err(e) => bail!("--device: {e}"),
    }
}

fn device_error(device: &str, e: CudaError) -> anyhow::Error {
    match e {
        // Already "cuda:K: why".
        CudaError::Unavailable(line) => anyhow!("--device {line}"),
        other => anyhow!("--device {device}: {other}"),
    }
}

/// Photon range `photons` of `job` on `--device cuda:K`.
pub fn simulate(job: &Job, photons: Range<u64>, device: &str) -> anyhow::Result<Tally> {
    let k = cuda_index(device)?;
    transport::simulate(job, photons, k).map_err(|e| device_error(device, e))
}

/// `compushare bench sha256d --device cuda:K`: scans whole nonce spaces of successive headers
/// against a difficulty-1 target for `seconds`, like the CPU benchmark's thread loop.
pub fn bench_sha256d(device: &str, seconds: f64, json: bool) -> anyhow::Result<()> {
    let k = cuda_index(device)?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        bail!("--seconds: {seconds} is not within (0, 86400]");
    }
    let scanner = GpuScanner::new(k).map_err(|e| device_error(device, e))?;
    // Compile/load time is not hashing time: the clock starts after the scanner is ready.
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut hashes = 0u64;
    std::thread::scope(|s| -> anyhow::Result<()> {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            stop.store(true, Ordering::Relaxed);
        });
        for round in 0u64.. {
            let mut header = [0u8; 80];
            header[0] = 0x20;
            header[36..44].copy_from_slice(&u64::from(k).to_le_bytes());
            header[44..52].copy_from_slice(&round.to_le_bytes());
            header[72..76].copy_from_slice(&0x1d00_ffffu32.to_le_bytes());
            let work = ScanWork::new(header, Target::DIFF1);
            let stats = scanner
                .scan(&work, 0..1 << 32, &stop, &mut |_| {})
                .map_err(|e| anyhow!("--device {device}: {e}"))?;
            hashes += stats.hashes;
            if stats.cancelled {
                break;
            }
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = hashes as f64 / elapsed;
    if json {
        let out = serde_json::json!({
            "threads": 1,
            "seconds": elapsed,
            "hashes": hashes,
            "hashes_per_s": rate,
            "device": device,
        });
        println!("{out}");
    } else {
        println!(
            "sha256d {device} ({}, sm_{}{}) seconds={elapsed:.2} hashes={hashes} rate={:.3} GH/s",
            scanner.gpu().name(),
            scanner.gpu().arch().major,
            scanner.gpu().arch().minor,
            rate / 1e9
        );
    }
    Ok(())
}
