//! Board support for a CompuShare rig: which compute devices this machine has and which one a
//! command asked for.
//!
//! - `spec`: the `--device cpu|cuda:K` syntax.
//! - `cpu`: the CPU device (cores and memory from /proc).
//! - `cuda`: CUDA GPUs through cudarc's dynamically loaded driver, probed before first use
//!   (cudarc panics when libcuda is missing).
//! - `inventory`: the device list and the checks that turn a spec into a usable device.
//! - `telemetry`: temperature, power and fan (NVML for GPUs, opened at run time; hwmon for
//!   the CPU).
//! - `sys`: the one unsafe call (cudarc's library probe); `sys_nvml`: NVML's C calls.
//!
//! A machine without an NVIDIA driver, or with a driver but no GPU, is normal here: the list
//! then holds the CPU device only and `CudaStatus::message` says why in one line.

#![deny(unsafe_code)]

mod cpu;
mod cuda;
mod inventory;
mod spec;
mod sys;
mod sys_nvml;
mod telemetry;

pub use cpu::{cpu_device, CpuInfo};
pub use cuda::{cuda_status, CudaGpu, CudaStatus, NO_CUDA_ENV};
pub use inventory::{discover, DeviceInfo, DeviceKind, Inventory, SelectError};
pub use spec::{DeviceSpec, SpecError};
pub use telemetry::{cpu_telemetry, cpu_temperature_dc, gpu_telemetry, nvml_problem, Telemetry};
