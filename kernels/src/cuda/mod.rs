//! CUDA backends, driven through cudarc with the driver and NVRTC loaded at run time.
//!
//! - `source`: the CUDA C sources of kernels/cuda/, embedded, with `#include` resolved.
//! - `nvrtc`: run-time compilation to CUBIN for the device's exact `sm_XX`, with the
//!   determinism options, warnings treated as errors, and an on-disk cache.
//! - `device`: opening `cuda:K` (through the hardware crate's probe, so a missing driver is an
//!   error, never a panic), loading modules, sizing launches from occupancy.
//! - `sha256d`: nonce scanning on the GPU behind the same `Scanner` trait as the CPU paths.
//! - `transport`: photon transport on the GPU, tallies equal to the CPU engine's.
//! - `sys`: the only unsafe code (NVRTC raw calls, kernel launches).

#![deny(unsafe_code)]

mod device;
mod error;
pub mod nvrtc;
pub mod sha256d;
pub mod source;
mod sys;
pub mod transport;

pub use device::Gpu;
pub use error::CudaError;
