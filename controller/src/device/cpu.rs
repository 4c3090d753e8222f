//! A CPU device: a share of the host's cores. Hashing splits each nonce range over the
//! device's threads (each runs the fastest SHA-256d path this CPU has); transport runs the
//! kernels' CPU engine on the same number of threads. The package temperature is the whole
//! CPU's, so every CPU device reads the same sensor.

use std::ops::Range;

use compushare_hardware::Telemetry;
use compushare_kernels::sha256d::{CpuScanner, Scanner};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::{Engine, PhotonRecord};
use compushare_protocol::types::DeviceKind;

use super::{
    Device, DeviceDescription, DeviceError, LoadedJob, Output, Scan, ScanFault, TransportOutput,
};

/// Nonces per unit of mining work per core, log2 (~0.1-0.5 s on one core).
const CHUNK_BITS_PER_CORE: u32 = 21;

/// `cores` of the host's cores as one device.
#[derive(Debug)]
pub struct CpuDevice {
    desc: DeviceDescription,
    threads: usize,
    scanner: CpuScanner,
}

impl CpuDevice {
    /// CPU device number `index` of `cores` threads and `memory` bytes of the host's memory.
    pub fn new(index: usize, cores: usize, memory: u64, cpu_name: &str) -> CpuDevice {
        let cores = cores.max(1);
        let bits = CHUNK_BITS_PER_CORE + usize::BITS - 1 - cores.leading_zeros();
        CpuDevice {
            desc: DeviceDescription {
                kind: DeviceKind::Cpu,
                name: format!("cpu{index} ({cores} of {cpu_name})"),
                compute_units: cores as u32,
                cores: cores as u32,
                memory,
                scan_chunk_bits: bits.min(32),
                no_paid_transport: None,
            },
            threads: cores,
            scanner: CpuScanner::auto(),
        }
    }

    /// Threads the device runs.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Device for CpuDevice {
    fn describe(&self) -> &DeviceDescription {
        &self.desc
    }

    fn telemetry(&self) -> Telemetry {
        compushare_hardware::cpu_telemetry()
    }

    fn scan(&self, s: Scan<'_>) -> Result<u64, DeviceError> {
        let Scan {
            work,
            nonces,
            cancel,
            found,
        } = s;
        let n = nonces.end.saturating_sub(nonces.start);
        let threads = (self.threads as u64).clamp(1, n.max(1));
        let per = n.div_ceil(threads);
        let one = |r: Range<u64>| {
            self.scanner
                .scan(work, r, cancel, &mut |nonce| found(nonce))
                .map(|s| s.hashes)
                .map_err(|e| DeviceError::Scan(ScanFault::Backend(e)))
        };
        if threads == 1 {
            return one(nonces);
        }
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    let from = nonces.start + t * per;
                    let to = (from + per).min(nonces.end);
                    s.spawn(move || one(from..to))
                })
                .collect();
            let mut hashes = 0u64;
            for p in parts {
                hashes += p
                    .join()
                    .map_err(|_| DeviceError::Scan(ScanFault::ThreadPanicked))??;
            }
            Ok(hashes)
        })
    }

    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError> {
        Ok(Box::new(CpuJob {
            engine: Engine::new(job)?,
            threads: self.threads,
        }))
    }
}

/// A job on the CPU engine.
struct CpuJob<'j> {
    engine: Engine<'j>,
    threads: usize,
}

impl LoadedJob for CpuJob<'_> {
    fn run(&mut self, photons: Range<u64>, output: Output) -> Result<TransportOutput, DeviceError> {
        Ok(match output {
            Output::Tally => TransportOutput {
                tally: Some(self.engine.simulate(photons, self.threads, None)?),
                records: Vec::new(),
            },
            Output::TallyAndRecords => {
                let (tally, records) =
                    self.engine
                        .simulate_with_records(photons, self.threads, None)?;
                TransportOutput {
                    tally: Some(tally),
                    records,
                }
            }
            Output::RecordsOnly => TransportOutput {
                tally: None,
                records: records_only(&self.engine, photons, self.threads),
            },
        })
    }
}

/// Records of `photons`, each re-simulated alone (no tally), on `threads` threads: what a
/// proof needs to rebuild a block's leaves, at a cost independent of the tally size.
fn records_only(engine: &Engine<'_>, photons: Range<u64>, threads: usize) -> Vec<PhotonRecord> {
    let n = photons.end.saturating_sub(photons.start);
    let threads = (threads.max(1) as u64).min(n.max(1));
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let from = photons.start + t * per;
                let to = (from + per).min(photons.end);
                s.spawn(move || {
                    (from..to)
                        .map(|i| engine.simulate_photon(i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n as usize);
        for p in parts {
            // A panicking worker would be an engine bug; its records are simply missing and
            // the proof then fails to match rather than taking the rig down.
            if let Ok(v) = p.join() {
                all.extend(v);
            }
        }
        all
    })
}
