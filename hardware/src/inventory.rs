//! The machine's device list (CPU first, then each CUDA GPU) and the check that turns a
//! `DeviceSpec` into a device that exists, with the errors an operator reads.

use core::fmt;

use thiserror::Error;

use crate::cpu::{cpu_device, CpuInfo};
use crate::cuda::{cuda_status, CudaGpu, CudaStatus};
use crate::spec::DeviceSpec;

/// What kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// The host CPU.
    Cpu,
    /// An NVIDIA GPU driven through CUDA.
    Cuda,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        })
    }
}

/// One entry of the device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// CPU or CUDA.
    pub kind: DeviceKind,
    /// How to name it on the command line.
    pub spec: DeviceSpec,
    /// Model name.
    pub name: String,
    /// Independent compute units: SMs on a GPU, logical cores on the CPU.
    pub compute_units: u32,
    /// Arithmetic lanes: FP32 lanes on a GPU (0 if unknown), logical cores on the CPU.
    pub cores: u32,
    /// Memory in bytes (device memory on a GPU, physical memory on the CPU; 0 if unknown).
    pub memory_bytes: u64,
    /// CUDA compute capability; `None` on the CPU.
    pub compute_capability: Option<(u32, u32)>,
}

impl DeviceInfo {
    fn from_cpu(cpu: &CpuInfo) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Cpu,
            spec: DeviceSpec::Cpu,
            name: cpu.name.clone(),
            compute_units: cpu.cores,
            cores: cpu.cores,
            memory_bytes: cpu.memory_bytes,
            compute_capability: None,
        }
    }

    fn from_gpu(gpu: &CudaGpu) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Cuda,
            spec: DeviceSpec::Cuda(gpu.index),
            name: gpu.name.clone(),
            compute_units: gpu.sms,
            cores: gpu.cores,
            memory_bytes: gpu.memory_bytes,
            compute_capability: Some(gpu.compute_capability),
        }
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({} compute units, {} cores, {} MiB",
            self.spec,
            self.name,
            self.compute_units,
            self.cores,
            self.memory_bytes >> 20
        )?;
        if let Some((major, minor)) = self.compute_capability {
            write!(f, ", sm_{major}{minor}")?;
        }
        f.write_str(")")
    }
}

/// Why a `--device` cannot be used on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SelectError {
    /// A CUDA device was asked for but the driver is missing, hidden or failing; the
    /// string is `CudaStatus::message` without its "no CUDA device: " prefix.
    #[error("{spec}: {reason}")]
    NoCuda {
        /// The device asked for.
        spec: DeviceSpec,
        /// Why CUDA is unavailable.
        reason: String,
    },
    /// The driver works but has fewer devices than the index asked for.
    #[error("{spec}: only {found} CUDA device{} found", if *.found == 1 { "" } else { "s" })]
    NoSuchGpu {
        /// The device asked for.
        spec: DeviceSpec,
        /// How many CUDA devices exist.
        found: usize,
    },
}

/// The devices of this machine and the CUDA probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    devices: Vec<DeviceInfo>,
    cuda: CudaStatus,
}

/// Discovers the CPU and (if a driver is present) the CUDA GPUs. Never fails: without CUDA
/// the list holds the CPU alone and [`Inventory::cuda_message`] says why.
pub fn discover() -> Inventory {
    Inventory::from_parts(&cpu_device(), cuda_status().clone())
}

impl Inventory {
    /// Builds a list from already-probed parts (discovery itself, and tests).
    pub fn from_parts(cpu: &CpuInfo, cuda: CudaStatus) -> Inventory {
        let mut devices = vec![DeviceInfo::from_cpu(cpu)];
        devices.extend(cuda.gpus().iter().map(DeviceInfo::from_gpu));
        Inventory { devices, cuda }
    }

    /// Every device, the CPU first.
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.devices
    }

    /// The CUDA GPUs only.
    pub fn gpus(&self) -> impl Iterator<Item = &DeviceInfo> {
        self.devices.iter().filter(|d| d.kind == DeviceKind::Cuda)
    }

    /// The CUDA probe's verdict.
    pub fn cuda(&self) -> &CudaStatus {
        &self.cuda
    }

    /// One line about CUDA on this machine (why there is none, or how many GPUs).
    pub fn cuda_message(&self) -> String {
        self.cuda.message()
    }

    /// The device `spec` names, if this machine has it.
    pub fn select(&self, spec: DeviceSpec) -> Result<&DeviceInfo, SelectError> {
        if let Some(d) = self.devices.iter().find(|d| d.spec == spec) {
            return Ok(d);
        }
        match &self.cuda {
            CudaStatus::Ready(gpus) if !gpus.is_empty() => Err(SelectError::NoSuchGpu {
                spec,
                found: gpus.len(),
            }),
            other => {
                let m = other.message();
                let reason = m.strip_prefix("no CUDA device: ").unwrap_or(&m).to_string();
                Err(SelectError::NoCuda { spec, reason })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> CpuInfo {
        CpuInfo {
            name: "Test CPU".into(),
            cores: 2,
            memory_bytes: 4 << 30,
        }
    }

    fn h200(index: u32) -> CudaGpu {
        CudaGpu {
            index,
            name: "NVIDIA H200".into(),
            sms: 132,
            cores: 132 * 128,
            memory_bytes: 141 << 30,
            compute_capability: (9, 0),
            pci_bus_id: None,
        }
    }

    #[test]
    fn no_driver_leaves_the_cpu() {
        let inv = Inventory::from_parts(&cpu(), CudaStatus::NoDriver);
        assert_eq!(inv.devices().len(), 1);
        assert_eq!(inv.devices()[0].kind, DeviceKind::Cpu);
        assert!(inv.select(DeviceSpec::Cpu).is_ok());
        let err = inv.select(DeviceSpec::Cuda(0)).unwrap_err().to_string();
        assert_eq!(err, "cuda:0: no NVIDIA driver (libcuda.so.1 not found)");
    }

    #[test]
    fn index_past_the_end() {
        let inv = Inventory::from_parts(&cpu(), CudaStatus::Ready(vec![h200(0)]));
        assert_eq!(inv.gpus().count(), 1);
        let gpu = inv.select(DeviceSpec::Cuda(0)).unwrap();
        assert_eq!(gpu.compute_capability, Some((9, 0)));
        assert_eq!(gpu.compute_units, 132);
        assert_eq!(
            gpu.to_string(),
            "cuda:0: NVIDIA H200 (132 compute units, 16896 cores, 144384 MiB, sm_90)"
        );
        let err = inv.select(DeviceSpec::Cuda(3)).unwrap_err().to_string();
        assert_eq!(err, "cuda:3: only 1 CUDA device found");
        let two = Inventory::from_parts(&cpu(), CudaStatus::Ready(vec![h200(0), h200(1)]));
        let err = two.select(DeviceSpec::Cuda(2)).unwrap_err().to_string();
        assert_eq!(err, "cuda:2: only 2 CUDA devices found");
    }

    #[test]
    fn driver_without_gpus_and_driver_errors() {
        let inv = Inventory::from_parts(&cpu(), CudaStatus::Ready(Vec::new()));
        let err = inv.select(DeviceSpec::Cuda(0)).unwrap_err().to_string();
        assert_eq!(err, "cuda:0: the NVIDIA driver reports no GPU");
        let inv = Inventory::from_parts(&cpu(), CudaStatus::DriverError("cuInit: X".into()));
        let err = inv.select(DeviceSpec::Cuda(1)).unwrap_err().to_string();
        assert_eq!(err, "cuda:1: the NVIDIA driver failed: cuInit: X");
    }
}
