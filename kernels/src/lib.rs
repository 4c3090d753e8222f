//! Compute kernels for CompuShare: the work a device does.
//!
//! Two families live here, each behind a small API that the CUDA backends will share:
//! photon transport (paid work, deterministic to the bit) and SHA-256d nonce scanning
//! (what a device does when no paid work is present).

#![deny(unsafe_code)]

pub mod cuda;
pub mod sha256d;
pub mod transport;
