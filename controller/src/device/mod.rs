//! The rig's compute devices behind one trait, [`Device`], with the two kinds of work a device
//! does: scan a nonce range of a block header ([`Device::scan`]), and run a photon range of a
//! transport job ([`Device::load`] then [`LoadedJob::run`]). The scheduler, the miner and the
//! transport session never know which kind of device they drive.
//!
//! - `cpu`: a share of the host's cores (CPU_DEVICES of them), the kernels' CPU paths.
//! - `cuda`: one NVIDIA GPU, the kernels' CUDA backends (NVRTC-compiled at start) with NVML
//!   telemetry.
//! - `calibrate`: what each device does per second, measured at start (Hello's figures).
//!
//! Discovery ([`discover`]) never fails: a GPU that cannot be opened is left out with a line
//! saying why, and the CPU devices are always there.

pub mod calibrate;
pub mod cpu;
pub mod cuda;

use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use compushare_hardware::Telemetry;
use compushare_kernels::sha256d::ScanWork;
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::{PhotonRecord, TransportError};
use compushare_protocol::limits::MAX_DEVICES;
use compushare_protocol::types::DeviceKind;

/// What a device is, as announced in Hello and shown on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDescription {
    pub kind: DeviceKind,
    /// e.g. "cpu0 (Intel Xeon ..., 4 cores)" or "NVIDIA H200".
    pub name: String,
    /// SMs on a GPU, cores on a CPU device.
    pub compute_units: u32,
    /// Threads that run side by side (CUDA cores, CPU threads).
    pub cores: u32,
    /// Memory the device may use, bytes.
    pub memory: u64,
    /// Nonces per unit of mining work, log2: a unit takes well under a second, so progress
    /// (what the watchdog watches) is reported often.
    pub scan_chunk_bits: u32,
    /// Why the device cannot take paid transport, if it cannot (paid work needs one record
    /// per history for its Merkle commitment).
    pub no_paid_transport: Option<&'static str>,
}

/// Why a device could not do a piece of work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The transport engine refused the job or failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The hashing backend failed (driver error, lost device).
    #[error("scan: {0}")]
    Scan(#[from] ScanFault),
    /// The device's backend failed outside a scan.
    #[error("driver: {0}")]
    Driver(#[from] DriverFault),
    /// The CUDA backend failed (driver call, kernel compile, a malformed record).
    #[error("cuda: {0}")]
    Cuda(#[from] compushare_kernels::cuda::CudaError),
    /// This device cannot produce what was asked.
    #[error("unsupported on this device: {0}")]
    Unsupported(&'static str),
    /// The work was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl DeviceError {
    /// Every variant's short name ([`DeviceError::kind`]), in the order counters list them.
    pub const KINDS: [&'static str; 6] = [
        "transport",
        "scan",
        "driver",
        "cuda",
        "unsupported",
        "cancelled",
    ];

    /// The variant's short name: the `error` label of the counters kept per variant.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceError::Transport(_) => "transport",
            DeviceError::Scan(_) => "scan",
            DeviceError::Driver(_) => "driver",
            DeviceError::Cuda(_) => "cuda",
            DeviceError::Unsupported(_) => "unsupported",
            DeviceError::Cancelled => "cancelled",
        }
    }
}

/// Why a scan failed ([`DeviceError::Scan`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanFault {
    /// The hashing backend refused the range or failed during it (a GPU driver error, a
    /// lost device, an instruction-set path this CPU lacks); the backend's error is kept.
    #[error("{0}")]
    Backend(#[source] compushare_kernels::sha256d::ScanError),
    /// One of the device's hashing threads panicked (a backend bug): its share of the range
    /// was not hashed, and the scan reports no count rather than a short one.
    #[error("a hashing thread panicked")]
    ThreadPanicked,
}

/// Why a device's backend failed outside a scan ([`DeviceError::Driver`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverFault {
    /// A transport run panicked inside the device's backend; the worker caught it, counted a
    /// fault on the device and wiped the result's vault slot.
    #[error("the transport run panicked")]
    TransportPanicked,
}

/// What a transport run must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// The tally only (calibration).
    Tally,
    /// The tally and every history's record, in photon order (paid work: Merkle leaves).
    TallyAndRecords,
    /// Only the records, each history re-simulated alone (sample proofs: cost independent of
    /// the tally's size).
    RecordsOnly,
}

/// The product of a transport run.
#[derive(Debug, Default)]
pub struct TransportOutput {
    /// Absent for [`Output::RecordsOnly`].
    pub tally: Option<Tally>,
    /// Present unless [`Output::Tally`] was asked; in photon order.
    pub records: Vec<PhotonRecord>,
}

/// A nonce range of a block header to hash.
pub struct Scan<'a> {
    pub work: &'a ScanWork,
    /// A sub-range of 0..2^32.
    pub nonces: Range<u64>,
    /// Turned true to stop the scan early.
    pub cancel: &'a AtomicBool,
    /// Called with each nonce whose hash meets the work's target, from any of the device's
    /// threads.
    pub found: &'a (dyn Fn(u32) + Sync),
}

/// A job prepared on a device (model built, or uploaded to the GPU) to run ranges of.
pub trait LoadedJob {
    /// Runs photon indices `photons`.
    fn run(&mut self, photons: Range<u64>, output: Output) -> Result<TransportOutput, DeviceError>;
}

/// A compute device of the rig.
pub trait Device: Send + Sync {
    /// What it is.
    fn describe(&self) -> &DeviceDescription;

    /// Its sensors now (all `None` where it has none).
    fn telemetry(&self) -> Telemetry;

    /// Hashes the scan's nonces; returns how many it hashed. Stops soon after its cancel
    /// flag turns true.
    fn scan(&self, s: Scan<'_>) -> Result<u64, DeviceError>;

    /// Prepares `job` for runs on this device.
    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError>;
}

/// Shared handle to a device.
pub type DeviceRef = Arc<dyn Device>;

/// How the rig's devices are made.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// CPU worker devices (rig.conf CPU_DEVICES).
    pub cpu_devices: u32,
    /// Cores shared by the CPU devices (default: every core this process may use).
    pub cores: Option<usize>,
    /// Leave GPUs out (tests on a GPU machine).
    pub no_gpus: bool,
}

/// The rig's devices: each CUDA GPU that opens, then the CPU devices; at most the protocol's
/// device limit. The strings say what was left out and why (logged by the caller).
pub fn discover(opts: &DiscoverOptions) -> (Vec<DeviceRef>, Vec<String>) {
    let mut devices: Vec<DeviceRef> = Vec::new();
    let mut notes = Vec::new();
    if !opts.no_gpus {
        let inv = compushare_hardware::discover();
        if inv.gpus().next().is_none() {
            notes.push(inv.cuda_message());
        }
        for gpu in inv.cuda().gpus() {
            match cuda::CudaDevice::open(gpu.clone()) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => notes.push(format!("cuda:{} left out: {e}", gpu.index)),
            }
        }
        if let Some(why) = compushare_hardware::nvml_problem().filter(|_| !devices.is_empty()) {
            notes.push(format!("GPU telemetry unavailable: {why}"));
        }
    }
    let cores = opts
        .cores
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let n = opts.cpu_devices as usize;
    let cpu = compushare_hardware::cpu_device();
    for i in 0..n {
        // Split the cores as evenly as possible; every device gets at least one.
        let c = (cores / n + usize::from(i < cores % n)).max(1);
        devices.push(Arc::new(cpu::CpuDevice::new(
            i,
            c,
            cpu.memory_bytes / n as u64,
            &cpu.name,
        )));
    }
    if devices.len() > MAX_DEVICES {
        notes.push(format!(
            "{} devices found; the first {MAX_DEVICES} are used",
            devices.len()
        ));
        devices.truncate(MAX_DEVICES);
    }
    (devices, notes)
}
