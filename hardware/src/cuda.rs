//! CUDA GPUs through cudarc with the driver loaded at run time. The probe runs once per
//! process: first whether libcuda can be opened at all (cudarc panics on any call without
//! it), then cuInit and one primary-context query per device. Every failure becomes a
//! `CudaStatus` with a one-line message; nothing here panics or aborts discovery.

use std::sync::{Arc, OnceLock};

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::CudaContext;

use crate::sys;

/// Setting this environment variable to anything non-empty hides every CUDA device (the
/// probe is skipped), for running CPU-only on a GPU machine or testing the no-driver path.
pub const NO_CUDA_ENV: &str = "COMPUSHARE_NO_CUDA";

/// One CUDA GPU as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaGpu {
    /// The driver's device number (`cuda:K`).
    pub index: u32,
    /// Marketing name, e.g. "NVIDIA H200".
    pub name: String,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// FP32 lanes ("CUDA cores"): SMs times the lanes per SM of this architecture, 0 when
    /// the architecture is newer than this table.
    pub cores: u32,
    /// Global memory in bytes.
    pub memory_bytes: u64,
    /// Compute capability (major, minor), e.g. (9, 0); NVRTC compiles for `sm_{major}{minor}`.
    pub compute_capability: (u32, u32),
    /// PCI bus id as NVML names it (`domain:bus:device.0`, hex), to find the same board in
    /// NVML whatever order CUDA numbers devices in; `None` when the driver does not say.
    pub pci_bus_id: Option<String>,
}

/// What the CUDA probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaStatus {
    /// The driver answered; the GPUs it reported (possibly none).
    Ready(Vec<CudaGpu>),
    /// libcuda could not be loaded: no NVIDIA driver installed.
    NoDriver,
    /// Hidden on purpose through [`NO_CUDA_ENV`].
    Disabled,
    /// The driver loaded but failed (cuInit or a device query), with its error.
    DriverError(String),
}

impl CudaStatus {
    /// The GPUs found (empty unless `Ready`).
    pub fn gpus(&self) -> &[CudaGpu] {
        match self {
            CudaStatus::Ready(g) => g,
            _ => &[],
        }
    }

    /// One line saying why no GPU can be used, or how many there are.
    pub fn message(&self) -> String {
        match self {
            CudaStatus::Ready(g) if g.is_empty() => {
                "no CUDA device: the NVIDIA driver reports no GPU".to_string()
            }
            CudaStatus::Ready(g) => format!("{} CUDA device(s)", g.len()),
            CudaStatus::NoDriver => {
                "no CUDA device: no NVIDIA driver (libcuda.so.1 not found)".to_string()
            }
            CudaStatus::Disabled => format!("no CUDA device: disabled by {NO_CUDA_ENV}"),
            CudaStatus::DriverError(e) => format!("no CUDA device: the NVIDIA driver failed: {e}"),
        }
    }
}

/// The CUDA probe's result, computed on first call and shared afterwards.
pub fn cuda_status() -> &'static CudaStatus {
    static STATUS: OnceLock<CudaStatus> = OnceLock::new();
    STATUS.get_or_init(probe)
}

fn probe() -> CudaStatus {
    if std::env::var_os(NO_CUDA_ENV).is_some_and(|v| !v.is_empty()) {
        return CudaStatus::Disabled;
    }
    if !sys::driver_library_present() {
        return CudaStatus::NoDriver;
    }
    // cudarc resolves driver symbols lazily and panics on one the installed driver lacks
    // (a driver older than the `cuda-12020` bindings): report that as a driver failure.
    std::panic::catch_unwind(probe_driver).unwrap_or_else(|_| {
        CudaStatus::DriverError(
            "the driver lacks a CUDA 12.2 entry point (update the NVIDIA driver to 535 or newer)"
                .to_string(),
        )
    })
}

fn probe_driver() -> CudaStatus {
    let count = match CudaContext::device_count() {
        Ok(n) => n,
        // No GPU visible (e.g. CUDA_VISIBLE_DEVICES empty) is a normal answer, not a failure.
        Err(e) if format!("{e:?}").contains("CUDA_ERROR_NO_DEVICE") => {
            return CudaStatus::Ready(Vec::new())
        }
        Err(e) => return CudaStatus::DriverError(format!("cuInit: {e:?}")),
    };
    let mut gpus = Vec::new();
    for ordinal in 0..u32::try_from(count).unwrap_or(0) {
        match describe(ordinal) {
            Ok(g) => gpus.push(g),
            Err(e) => return CudaStatus::DriverError(format!("device {ordinal}: {e:?}")),
        }
    }
    CudaStatus::Ready(gpus)
}

fn describe(ordinal: u32) -> Result<CudaGpu, cudarc::driver::DriverError> {
    let ctx: Arc<CudaContext> = CudaContext::new(ordinal as usize)?;
    let (major, minor) = ctx.compute_capability()?;
    let sms = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let major = u32::try_from(major).unwrap_or(0);
    let minor = u32::try_from(minor).unwrap_or(0);
    let sms = u32::try_from(sms).unwrap_or(0);
    let pci = |a| ctx.attribute(a).ok().and_then(|v| u32::try_from(v).ok());
    let pci_bus_id = match (
        pci(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID),
        pci(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID),
        pci(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID),
    ) {
        (Some(domain), Some(bus), Some(dev)) => Some(format!("{domain:08x}:{bus:02x}:{dev:02x}.0")),
        _ => None,
    };
    Ok(CudaGpu {
        index: ordinal,
        name: ctx.name()?,
        sms,
        cores: sms.saturating_mul(fp32_lanes_per_sm(major, minor)),
        memory_bytes: ctx.total_mem()? as u64,
        compute_capability: (major, minor),
        pci_bus_id,
    })
}

/// FP32 lanes per SM by compute capability (NVIDIA's CUDA C programming guide, "arithmetic
/// instructions" throughput table); 0 for an architecture this table does not know.
pub(crate) fn fp32_lanes_per_sm(major: u32, minor: u32) -> u32 {
    match (major, minor) {
        (3, _) => 192,
        (5, _) => 128,
        (6, 0) => 64,
        (6, _) => 128,
        (7, _) => 64,
        (8, 0) => 64,
        (8, _) => 128,
        (9, 0) => 128,
        (10, _) | (12, _) => 128,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        for s in [
            CudaStatus::NoDriver,
            CudaStatus::Disabled,
            CudaStatus::Ready(Vec::new()),
            CudaStatus::DriverError("CUDA_ERROR_UNKNOWN".into()),
        ] {
            let m = s.message();
            assert!(!m.contains('\n') && m.starts_with("no CUDA device"), "{m}");
        }
        assert!(CudaStatus::NoDriver
            .message()
            .contains("libcuda.so.1 not found"));
    }

    #[test]
    fn lanes_per_sm() {
        assert_eq!(fp32_lanes_per_sm(9, 0), 128); // H100/H200: 132 SMs -> 16896 cores
        assert_eq!(fp32_lanes_per_sm(7, 5), 64); // Turing
        assert_eq!(fp32_lanes_per_sm(8, 6), 128); // GA10x
        assert_eq!(fp32_lanes_per_sm(99, 0), 0);
    }
}
