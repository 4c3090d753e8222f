//! The only unsafe code of this crate: asking cudarc whether the driver library can be
//! opened. cudarc marks its probe `unsafe` because it dlopens a library (running that
//! library's initialisers); every other driver call panics when the library is absent, so
//! this must run first.

#![allow(unsafe_code)]

/// Whether libcuda (libcuda.so.1 or a sibling name cudarc knows) can be loaded.
pub(crate) fn driver_library_present() -> bool {
    // SAFETY: dlopen of the system's NVIDIA driver library; its initialisers are the vendor's
    // and run the same way in every CUDA program. No pointer or state is shared with us.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
