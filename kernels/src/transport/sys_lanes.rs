//! The lane engine (`lanes`) compiled for wider vectors: 8 lanes with AVX2, 16 with AVX-512,
//! selected at run time. The lane code is plain Rust; these wrappers only enable the target
//! features so the compiler may use 256- and 512-bit registers for it. Bits are unchanged:
//! the features add no fused multiply-add (Rust never contracts `a * b + c`), and vector
//! `+ - * / sqrt` round as the scalar ones.
//!
//! Unsafe lives here because calling a `target_feature` function from code compiled without
//! the feature is unsafe. Soundness: each call is preceded by run-time detection of exactly
//! the features the callee enables.

#![allow(unsafe_code)]

use super::lanes::{run, Emit};
use super::model::Model;
use super::photon::DepositSink;

/// Whether this CPU can run the AVX2 lanes.
pub(crate) fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Whether this CPU can run the AVX-512 lanes.
pub(crate) fn avx512_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

#[target_feature(enable = "avx2")]
fn run_avx2<S: DepositSink>(
    m: &Model,
    next: &mut dyn FnMut() -> Option<u64>,
    sink: &mut S,
    paths: &mut [Vec<f32>],
    emit: &mut Emit,
) {
    run::<8, S>(m, next, sink, paths, emit);
}

#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
fn run_avx512<S: DepositSink>(
    m: &Model,
    next: &mut dyn FnMut() -> Option<u64>,
    sink: &mut S,
    paths: &mut [Vec<f32>],
    emit: &mut Emit,
) {
    run::<16, S>(m, next, sink, paths, emit);
}

/// Runs the AVX2 lanes; false (nothing run) when the CPU lacks AVX2.
pub(crate) fn try_avx2<S: DepositSink>(
    m: &Model,
    next: &mut dyn FnMut() -> Option<u64>,
    sink: &mut S,
    paths: &mut [Vec<f32>],
    emit: &mut Emit,
) -> bool {
    if !avx2_available() {
        return false;
    }
    // SAFETY: AVX2 was detected just above.
    unsafe { run_avx2(m, next, sink, paths, emit) };
    true
}

/// Runs the AVX-512 lanes; false (nothing run) when the CPU lacks AVX-512F/VL/DQ/BW.
pub(crate) fn try_avx512<S: DepositSink>(
    m: &Model,
    next: &mut dyn FnMut() -> Option<u64>,
    sink: &mut S,
    paths: &mut [Vec<f32>],
    emit: &mut Emit,
) -> bool {
    if !avx512_available() {
        return false;
    }
    // SAFETY: the four features `run_avx512` enables were detected just above.
    unsafe { run_avx512(m, next, sink, paths, emit) };
    true
}
