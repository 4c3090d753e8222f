//! SHA-256d (Bitcoin proof of work) on the CPU: the reference hash, share/block targets and
//! nonce scanning over a block header, with run-time choice of the fastest instruction-set
//! path.
//!
//! - `compress`: textbook SHA-256, `sha256d`, the header midstate (the reference).
//! - `target`: the 256-bit target, difficulty and compact-bits conversions, byte order.
//! - `work`: a header + target to scan and its per-job precomputation.
//! - `lanes`: the scan core written once over N-lane vectors (portable is N = 1).
//! - `scan`: the `Scanner` interface shared with the coming CUDA backend, the CPU scanner.
//! - `sys_shani`: interleaved SHA-NI streams; `sys_avx512`, `sys_avx2`: the scan core on
//!   16 / 8 SIMD lanes. These three hold the only unsafe code.
//!
//! Byte order: hashes are the bytes as computed (a block explorer shows them reversed) and
//! are compared with targets as little-endian 256-bit integers; see `target`.

#![deny(unsafe_code)]

mod compress;
mod lanes;
mod scan;
#[cfg(target_arch = "x86_64")]
mod sys_avx2;
#[cfg(target_arch = "x86_64")]
mod sys_avx512;
#[cfg(target_arch = "x86_64")]
mod sys_shani;
mod target;
mod work;

pub use compress::{midstate, sha256, sha256d};
pub use scan::{CpuPath, CpuScanner, ScanError, ScanStats, Scanner, CANCEL_CHUNK};
pub use target::{Target, TargetError};
/// Per-work constants, shared with the CUDA scanner (`cuda::sha256d`).
pub(crate) use work::Prepared;
pub use work::ScanWork;
