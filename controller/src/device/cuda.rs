//! A CUDA GPU: the kernels' GPU scanner for hashing, their GPU transport for tallies, NVML for
//! temperature, power and fan. Opening compiles (or loads from NVRTC's cache) both kernels,
//! so a GPU whose driver or NVRTC fails is left out at start instead of failing later.
//!
//! Paid transport needs a record per history (the Merkle leaves a manager samples): the
//! kernel writes each photon's canonical record next to the tally (`run_with_records`), the
//! same bytes as the CPU engine's (kernels/tests/cuda_host.rs runs the kernel's walk and
//! record encoding as C against the CPU engine, record by record). Sample proofs
//! ([`Output::RecordsOnly`]) re-run their block's photons on the GPU and keep the records.
//!
//! Untested here (no GPU on the build machines): every path below past `open`; on a GPU,
//! kernels/tests/gpu_checks.sh compares the GPU's records and digests with the CPU's.

use std::ops::Range;

use compushare_hardware::{CudaGpu, Telemetry};
use compushare_kernels::cuda::sha256d::GpuScanner;
use compushare_kernels::cuda::transport::GpuTransport;
use compushare_kernels::cuda::{CudaError, Gpu};
use compushare_kernels::sha256d::Scanner;
use compushare_kernels::transport::job::Job;
use compushare_protocol::types::DeviceKind;

use super::{
    Device, DeviceDescription, DeviceError, LoadedJob, Output, Scan, ScanFault, TransportOutput,
};

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
                no_paid_transport: None,
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
            .map_err(|e| DeviceError::Scan(ScanFault::Backend(e)))
    }

    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError> {
        Ok(Box::new(CudaJob(GpuTransport::new(&self.gpu, job)?)))
    }
}

/// A job uploaded to the GPU.
struct CudaJob(GpuTransport);

impl LoadedJob for CudaJob {
    fn run(&mut self, photons: Range<u64>, output: Output) -> Result<TransportOutput, DeviceError> {
        Ok(match output {
            Output::Tally => TransportOutput {
                tally: Some(self.0.run(photons)?),
                records: Vec::new(),
            },
            Output::TallyAndRecords => {
                let (tally, records) = self.0.run_with_records(photons)?;
                TransportOutput {
                    tally: Some(tally),
                    records,
                }
            }
            // The block's photons re-run with their tally (cheap on a GPU), which is dropped.
            Output::RecordsOnly => TransportOutput {
                tally: None,
                records: self.0.run_with_records(photons)?.1,
            },
        })
    }
}
