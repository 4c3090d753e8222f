//! A CUDA GPU: the kernels' GPU scanner for hashing, their GPU transport for tallies, NVML for
//! temperature, power and fan. Opening compiles (or loads from NVRTC's cache) both kernels,
//! so a GPU whose driver or NVRTC fails is left out at start instead of failing later.
//!
//! Paid transport needs a record per history (the Merkle leaves a manager samples); the CUDA
//! transport kernel returns tallies only, so a GPU takes no paid transport yet
//! ([`DeviceDescription::no_paid_transport`]) and the scheduler keeps it hashing.
//!
//! Untested here (no GPU on the build machines): every path below past `open`.

use std::ops::Range;

use compushare_hardware::{CudaGpu, Telemetry};
use compushare_kernels::cuda::sha256d::GpuScanner;
use compushare_kernels::cuda::transport::GpuTransport;
use compushare_kernels::cuda::{CudaError, Gpu};
use compushare_kernels::sha256d::Scanner;
use compushare_kernels::transport::job::Job;
use compushare_protocol::types::DeviceKind;

use super::{Device, DeviceDescription, DeviceError, LoadedJob, Output, Scan, TransportOutput};

/// Nonces per unit of mining work, log2: 2^30 is a fraction of a second on current GPUs.
const CHUNK_BITS: u32 = 30;

/// One opened GPU.
#[derive(Debug)]
pub struct CudaDevice {
    info: CudaGpu,
    desc: DeviceDescription,
    scanner: GpuScanner,
    gpu: Gpu,
}

impl CudaDevice {
    /// Opens the GPU and prepares its hashing kernel.
    pub fn open(info: CudaGpu) -> Result<CudaDevice, CudaError> {
        let scanner = GpuScanner::new(info.index)?;
        let gpu = scanner.gpu().clone();
        Ok(CudaDevice {
            desc: DeviceDescription {
                kind: DeviceKind::CudaGpu,
                name: info.name.clone(),
                compute_units: info.sms,
                cores: info.cores.max(info.sms),
                memory: info.memory_bytes,
                scan_chunk_bits: CHUNK_BITS,
                no_paid_transport: Some(
                    "the CUDA transport kernel returns no per-history records (Merkle leaves)",
                ),
            },
            info,
            scanner,
            gpu,
        })
    }
}

impl Device for CudaDevice {
    fn describe(&self) -> &DeviceDescription {
        &self.desc
    }

    fn telemetry(&self) -> Telemetry {
        compushare_hardware::gpu_telemetry(&self.info)
    }

    fn scan(&self, s: Scan<'_>) -> Result<u64, DeviceError> {
        let found = s.found;
        self.scanner
            .scan(s.work, s.nonces, s.cancel, &mut |n| found(n))
            .map(|s| s.hashes)
            .map_err(|e| DeviceError::Scan(e.to_string()))
    }

    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError> {
        let t =
            GpuTransport::new(&self.gpu, job).map_err(|e| DeviceError::Driver(e.to_string()))?;
        Ok(Box::new(CudaJob(t)))
    }
}

/// A job uploaded to the GPU.
struct CudaJob(GpuTransport);

impl LoadedJob for CudaJob {
    fn run(&mut self, photons: Range<u64>, output: Output) -> Result<TransportOutput, DeviceError> {
        match output {
            Output::Tally => Ok(TransportOutput {
                tally: Some(
                    self.0
                        .run(photons)
                        .map_err(|e| DeviceError::Driver(e.to_string()))?,
                ),
                records: Vec::new(),
            }),
            _ => Err(DeviceError::Unsupported(
                "per-history records from the CUDA transport kernel",
            )),
        }
    }
}
