//! The unsafe edge of the CUDA backend, kept to the calls cudarc offers only as `unsafe`:
//! probing for libnvrtc, the raw NVRTC program calls (cudarc's safe wrapper returns PTX only
//! and drops the log of a successful compile, and we want CUBIN plus every warning), and
//! kernel launches (cudarc cannot check a kernel's C signature, so every launch is unsafe).
//! Each launch wrapper below is typed to exactly one kernel's signature in kernels/cuda/.

#![allow(unsafe_code)]

use core::ffi::{c_char, c_int, CStr};
use std::ffi::CString;

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::result::{self as nvrtc_result, NvrtcError};
use cudarc::nvrtc::sys as nvrtc_sys;

/// Whether libnvrtc (libnvrtc.so.12 or a sibling name cudarc knows) can be loaded.
pub(crate) fn nvrtc_library_present() -> bool {
    // SAFETY: dlopen of NVIDIA's NVRTC library; no state is shared with us. Every other NVRTC
    // call panics inside cudarc when the library is absent, so this runs first.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// NVRTC's (major, minor) version. Call only after `nvrtc_library_present`.
pub(crate) fn nvrtc_version() -> Result<(i32, i32), NvrtcError> {
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: both pointers are to live locals of the type NVRTC writes.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }.result()?;
    Ok((major, minor))
}

/// What one NVRTC compile produced.
pub(crate) struct NvrtcOutput {
    /// Whether compilation succeeded.
    pub ok: Option<NvrtcError>,
    /// The compiler log (errors and warnings), empty when clean.
    pub log: String,
    /// The CUBIN image, when compilation succeeded.
    pub cubin: Vec<u8>,
}

/// Compiles `src` (one self-contained translation unit) with `options`; NVRTC must be present.
pub(crate) fn nvrtc_compile(
    src: &CStr,
    name: &CStr,
    options: &[String],
) -> Result<NvrtcOutput, NvrtcError> {
    let prog = nvrtc_result::create_program(src, Some(name))?;
    let guard = ProgramGuard(prog);
    // Options never hold NUL bytes (they are built from fixed strings and digits); an option
    // that did would be refused here rather than panic inside cudarc.
    if options.iter().any(|o| o.contains('\0')) {
        return Err(NvrtcError(
            nvrtc_sys::nvrtcResult::NVRTC_ERROR_INVALID_OPTION,
        ));
    }
    // SAFETY: `prog` is a live program (dropped by `guard` after this function).
    let compiled = unsafe { nvrtc_result::compile_program(guard.0, options) };
    // SAFETY: as above; NVRTC fills the log whether or not compilation succeeded.
    let raw_log = unsafe { nvrtc_result::get_program_log(guard.0) }?;
    let log = c_chars_to_string(&raw_log);
    let mut cubin = Vec::new();
    if compiled.is_ok() {
        let mut size: usize = 0;
        // SAFETY: live program, size written to a live local.
        unsafe { nvrtc_sys::nvrtcGetCUBINSize(guard.0, &mut size) }.result()?;
        cubin.resize(size, 0u8);
        // SAFETY: the buffer holds exactly the size NVRTC reported.
        unsafe { nvrtc_sys::nvrtcGetCUBIN(guard.0, cubin.as_mut_ptr().cast::<c_char>()) }
            .result()?;
    }
    Ok(NvrtcOutput {
        ok: compiled.err(),
        log,
        cubin,
    })
}

/// Destroys an NVRTC program on every exit path.
struct ProgramGuard(nvrtc_sys::nvrtcProgram);

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram and destroyed only here. A failure to free
        // cannot be acted on in a destructor; it only leaks the program.
        let _ = unsafe { nvrtc_result::destroy_program(self.0) };
    }
}

fn c_chars_to_string(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// A NUL-free C string (sources and names come from this crate; a NUL would be a bug).
pub(crate) fn cstring(s: &str) -> Option<CString> {
    CString::new(s).ok()
}

/// The arguments of `sha256d_scan` (kernels/cuda/sha256d.cu), in its order.
pub(crate) struct Sha256dArgs<'a> {
    pub prm: &'a CudaSlice<u32>,
    pub base: u32,
    pub count: u32,
    pub target_top: u32,
    pub out: &'a mut CudaSlice<u32>,
    pub out_cap: u32,
}

/// Launches `sha256d_scan`.
pub(crate) fn launch_sha256d_scan(
    stream: &CudaStream,
    func: &CudaFunction,
    cfg: LaunchConfig,
    a: Sha256dArgs<'_>,
) -> Result<(), DriverError> {
    let mut b = stream.launch_builder(func);
    b.arg(a.prm)
        .arg(&a.base)
        .arg(&a.count)
        .arg(&a.target_top)
        .arg(a.out)
        .arg(&a.out_cap);
    // SAFETY: the arguments match `sha256d_scan(const uint32_t*, uint32_t, uint32_t,
    // uint32_t, uint32_t*, uint32_t)` one for one; `prm` holds the 24 words the kernel reads
    // and `out` holds 1 + out_cap words (both sized by `cuda::sha256d::GpuScanner`).
    unsafe { b.launch(cfg) }.map(|_| ())
}

/// The arguments of `transport_run` (kernels/cuda/transport.cu), in its order.
pub(crate) struct TransportArgs<'a> {
    pub prm: &'a CudaSlice<u32>,
    pub labels: &'a CudaSlice<u16>,
    pub dist: &'a CudaSlice<u8>,
    pub media: &'a CudaSlice<f32>,
    pub pattern: &'a CudaSlice<f32>,
    pub det: &'a CudaSlice<f32>,
    pub first: u64,
    pub count: u32,
    pub deposit: &'a mut CudaSlice<u64>,
    pub totals: &'a mut CudaSlice<u64>,
    pub det_count: &'a mut CudaSlice<u32>,
    pub det_buf: &'a mut CudaSlice<u32>,
    pub det_cap: u32,
    /// `count` x `RECORD_WORDS` words when `want_records` is 1; at least one word otherwise.
    pub records: &'a mut CudaSlice<u32>,
    pub want_records: u32,
}

/// Launches `transport_run`.
pub(crate) fn launch_transport(
    stream: &CudaStream,
    func: &CudaFunction,
    cfg: LaunchConfig,
    a: TransportArgs<'_>,
) -> Result<(), DriverError> {
    let mut b = stream.launch_builder(func);
    b.arg(a.prm)
        .arg(a.labels)
        .arg(a.dist)
        .arg(a.media)
        .arg(a.pattern)
        .arg(a.det)
        .arg(&a.first)
        .arg(&a.count)
        .arg(a.deposit)
        .arg(a.totals)
        .arg(a.det_count)
        .arg(a.det_buf)
        .arg(&a.det_cap)
        .arg(a.records)
        .arg(&a.want_records);
    // SAFETY: the arguments match `transport_run`'s C signature one for one (pointer types
    // u32/u16/u8/f32/f32/f32, then u64, u32, u64*, u64*, u32*, u32*, u32, u32*, u32). Sizes,
    // checked by `cuda::transport::GpuTransport`, which builds every buffer from one
    // `ModelBlock`: prm has CS_P_WORDS words, labels and dist one entry per voxel, media 12
    // floats per medium, deposit gates x voxels cells, totals 12, det_buf det_cap records;
    // records has count x 16 words whenever want_records is 1 (sized for a whole batch).
    unsafe { b.launch(cfg) }.map(|_| ())
}
