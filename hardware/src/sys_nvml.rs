//! The unsafe half of NVML telemetry: opening libnvidia-ml at run time and calling its C
//! functions. NVML is optional (a rig without it still works, minus temperature, power and fan),
//! so it is never linked: `libloading` opens it when first asked, and any missing library or
//! symbol is an `Err` the caller reports once.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_uint, c_void, CString};

use libloading::Library;

/// `nvmlDevice_t`: an opaque handle owned by the library.
type Handle = *mut c_void;
/// `nvmlReturn_t`; 0 is `NVML_SUCCESS`.
type Ret = c_uint;

type InitFn = unsafe extern "C" fn() -> Ret;
type ByBusFn = unsafe extern "C" fn(*const c_char, *mut Handle) -> Ret;
type ByIndexFn = unsafe extern "C" fn(c_uint, *mut Handle) -> Ret;
type TempFn = unsafe extern "C" fn(Handle, c_uint, *mut c_uint) -> Ret;
type ReadFn = unsafe extern "C" fn(Handle, *mut c_uint) -> Ret;

/// The library names NVIDIA's driver installs (the first is the ABI-stable one).
const NAMES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// An initialised NVML: the library stays open (and its function pointers valid) as long as
/// this lives.
pub(crate) struct Nvml {
    by_bus: ByBusFn,
    by_index: ByIndexFn,
    temperature: TempFn,
    power: ReadFn,
    fan: ReadFn,
    _lib: Library,
}

// SAFETY: NVML's API is documented thread-safe; the struct holds only the library handle and
// plain function pointers.
unsafe impl Send for Nvml {}
unsafe impl Sync for Nvml {}

/// A GPU's handle, valid while the [`Nvml`] it came from lives.
#[derive(Clone, Copy)]
pub(crate) struct Device(Handle);

// SAFETY: NVML handles are process-wide identifiers, usable from any thread.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Nvml {
    /// Opens libnvidia-ml and calls `nvmlInit_v2`; the error says which step failed.
    pub(crate) fn open() -> Result<Nvml, String> {
        // SAFETY: loading NVIDIA's own library runs its initialisers, as every NVML program
        // does; no state of ours is shared with it.
        let lib = NAMES
            .iter()
            .find_map(|n| unsafe { Library::new(*n) }.ok())
            .ok_or_else(|| "libnvidia-ml.so.1 not found".to_string())?;
        // SAFETY: each symbol is looked up by its documented name and given its documented C
        // signature (nvml.h); the pointers are only used while `lib` is alive (kept in Nvml).
        unsafe {
            let init: InitFn = *lib
                .get::<InitFn>(b"nvmlInit_v2\0")
                .map_err(|e| format!("nvmlInit_v2: {e}"))?;
            let by_bus: ByBusFn = *lib
                .get::<ByBusFn>(b"nvmlDeviceGetHandleByPciBusId_v2\0")
                .map_err(|e| format!("nvmlDeviceGetHandleByPciBusId_v2: {e}"))?;
            let by_index: ByIndexFn = *lib
                .get::<ByIndexFn>(b"nvmlDeviceGetHandleByIndex_v2\0")
                .map_err(|e| format!("nvmlDeviceGetHandleByIndex_v2: {e}"))?;
            let temperature: TempFn = *lib
                .get::<TempFn>(b"nvmlDeviceGetTemperature\0")
                .map_err(|e| format!("nvmlDeviceGetTemperature: {e}"))?;
            let power: ReadFn = *lib
                .get::<ReadFn>(b"nvmlDeviceGetPowerUsage\0")
                .map_err(|e| format!("nvmlDeviceGetPowerUsage: {e}"))?;
            let fan: ReadFn = *lib
                .get::<ReadFn>(b"nvmlDeviceGetFanSpeed\0")
                .map_err(|e| format!("nvmlDeviceGetFanSpeed: {e}"))?;
            let r = init();
            if r != 0 {
                return Err(format!("nvmlInit_v2 returned {r}"));
            }
            Ok(Nvml {
                by_bus,
                by_index,
                temperature,
                power,
                fan,
                _lib: lib,
            })
        }
    }

    /// The GPU at PCI bus id `bus` (as `cuDeviceGetPCIBusId` writes it), or at NVML index
    /// `index` when the bus id is unknown.
    pub(crate) fn device(&self, bus: Option<&str>, index: u32) -> Option<Device> {
        let mut h: Handle = std::ptr::null_mut();
        let r = match bus.and_then(|b| CString::new(b).ok()) {
            // SAFETY: a NUL-terminated string and a valid out-pointer, per nvml.h.
            Some(c) => unsafe { (self.by_bus)(c.as_ptr(), &mut h) },
            // SAFETY: a valid out-pointer, per nvml.h.
            None => unsafe { (self.by_index)(index, &mut h) },
        };
        (r == 0 && !h.is_null()).then_some(Device(h))
    }

    /// GPU core temperature, whole degrees Celsius (`NVML_TEMPERATURE_GPU` = 0).
    pub(crate) fn temperature_c(&self, d: Device) -> Option<u32> {
        let mut v: c_uint = 0;
        // SAFETY: a handle from `device` and a valid out-pointer.
        (unsafe { (self.temperature)(d.0, 0, &mut v) } == 0).then_some(v)
    }

    /// Board power draw, milliwatts.
    pub(crate) fn power_mw(&self, d: Device) -> Option<u32> {
        let mut v: c_uint = 0;
        // SAFETY: a handle from `device` and a valid out-pointer.
        (unsafe { (self.power)(d.0, &mut v) } == 0).then_some(v)
    }

    /// Fan speed, percent of the maximum (absent on passively cooled boards).
    pub(crate) fn fan_percent(&self, d: Device) -> Option<u32> {
        let mut v: c_uint = 0;
        // SAFETY: a handle from `device` and a valid out-pointer.
        (unsafe { (self.fan)(d.0, &mut v) } == 0).then_some(v)
    }
}
