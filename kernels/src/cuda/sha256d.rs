//! SHA-256d nonce scanning on a CUDA GPU, behind the CPU paths' `Scanner` trait.
//!
//! The host computes the per-work constants (`Prepared`: midstate, first rounds of the second
//! block, constant schedule words) exactly as the CPU paths do and uploads them; the kernel
//! (kernels/cuda/sha256d.cu) hashes a launch's nonces and returns the early-reject survivors.
//! Each survivor is re-hashed with the reference `sha256d` and compared with the full target
//! here, as the CPU scanner does, so the GPU reports exactly the CPU's nonces. If a launch
//! has more survivors than the buffer holds (only with absurdly easy targets), that launch's
//! range is rescanned on the CPU: same answer, never a lost share.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

use cudarc::driver::{CudaFunction, LaunchConfig};

use super::device::Gpu;
use super::sys;
use super::CudaError;
use crate::sha256d::{sha256d, CpuScanner, Prepared, ScanError, ScanStats, ScanWork, Scanner};

/// Nonces per launch: about 8 ms on an H100-class GPU, so cancel is seen within that.
const LAUNCH_NONCES: u64 = 1 << 26;

/// Survivor slots per launch. The early reject keeps a nonce with probability about
/// (top word + 1) / 2^32; for share targets of difficulty >= 1 that is under 1 per 2^32.
const OUT_CAP: u32 = 4096;

/// Threads per block (the kernel's `__launch_bounds__`).
const BLOCK: u32 = 256;

/// A SHA-256d scanner on one GPU.
#[derive(Debug)]
pub struct GpuScanner {
    gpu: Gpu,
    func: CudaFunction,
    cfg: LaunchConfig,
}

impl GpuScanner {
    /// Opens `cuda:index`, compiles (or loads from cache) the kernel and sizes its launches.
    pub fn new(index: u32) -> Result<GpuScanner, CudaError> {
        let gpu = Gpu::open(index)?;
        let func = gpu.load("sha256d.cu", "sha256d_scan")?;
        let cfg = gpu.fill_config(&func, BLOCK)?;
        Ok(GpuScanner { gpu, func, cfg })
    }

    /// The device in use.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn scan_gpu(
        &self,
        work: &ScanWork,
        start: u64,
        end: u64,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> Result<ScanStats, CudaError> {
        let stream = self.gpu.stream();
        let prm = stream
            .clone_htod(&work_constants(work))
            .map_err(|e| CudaError::driver("uploading the work", e))?;
        let mut out = stream
            .alloc_zeros::<u32>(1 + OUT_CAP as usize)
            .map_err(|e| CudaError::driver("allocating the result buffer", e))?;
        let target = work.target();
        let top = target.top_word();
        let mut host = vec![0u32; 1 + OUT_CAP as usize];
        let mut stats = ScanStats::default();
        let mut next = start;
        while next < end {
            if cancel.load(Ordering::Relaxed) {
                stats.cancelled = true;
                break;
            }
            let chunk_end = end.min(next + LAUNCH_NONCES);
            let count = (chunk_end - next) as u32; // <= 2^26
            stream
                .memset_zeros(&mut out)
                .map_err(|e| CudaError::driver("clearing the result buffer", e))?;
            sys::launch_sha256d_scan(
                stream,
                &self.func,
                self.cfg,
                sys::Sha256dArgs {
                    prm: &prm,
                    base: next as u32, // next < 2^32
                    count,
                    target_top: top,
                    out: &mut out,
                    out_cap: OUT_CAP,
                },
            )
            .map_err(|e| CudaError::driver("launching sha256d_scan", e))?;
            stream
                .memcpy_dtoh(&out, &mut host[..])
                .map_err(|e| CudaError::driver("reading the survivors", e))?;
            let survivors = host[0];
            if survivors > OUT_CAP {
                // Too many to hold: the CPU scanner finds the same nonces in this range.
                let never = AtomicBool::new(false);
                CpuScanner::auto()
                    .scan(work, next..chunk_end, &never, found)
                    .map_err(|e| CudaError::TooLarge(e.to_string()))?;
            } else {
                let mut c: Vec<u32> = host
                    .get(1..=survivors as usize)
                    .unwrap_or_default()
                    .to_vec();
                c.sort_unstable();
                for nonce in c {
                    if target.is_met_by(&sha256d(&work.header_with_nonce(nonce))) {
                        found(nonce);
                    }
                }
            }
            stats.hashes += u64::from(count);
            next = chunk_end;
        }
        Ok(stats)
    }
}

/// The 24 words `sha256d_scan` reads for `work` (layout in kernels/cuda/sha256d.cu).
pub fn work_constants(work: &ScanWork) -> [u32; 24] {
    let p = Prepared::new(work);
    let mut w = [0u32; 24];
    w[..8].copy_from_slice(&p.mid);
    w[8..16].copy_from_slice(&p.s3);
    w[16..].copy_from_slice(&[p.r3_a, p.r3_e, p.w16, p.w17, p.c18, p.c19, p.o_a1, p.o_e1]);
    w
}

impl Scanner for GpuScanner {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn scan(
        &self,
        work: &ScanWork,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> Result<ScanStats, ScanError> {
        let Range { start, end } = nonces;
        if start > end || end > 1 << 32 {
            return Err(ScanError::NonceRange { start, end });
        }
        self.scan_gpu(work, start, end, cancel, found)
            .map_err(|e| ScanError::Device(e.to_string()))
    }
}
