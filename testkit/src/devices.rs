//! TEST DOUBLES of faulty devices, for the watchdog's tests: a CPU device whose hashing can
//! be made to hang (as a wedged GPU kernel would) or fail (as a lost GPU would), whose jobs
//! can be made to fail to load, and whose temperature is scripted.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::{
    Device, DeviceDescription, DeviceError, LoadedJob, Scan, ScanFault,
};
use compushare_hardware::Telemetry;
use compushare_kernels::sha256d::ScanError;
use compushare_kernels::transport::job::Job;

/// The knobs of a [`FaultyDevice`], kept by the test.
#[derive(Debug, Default)]
pub struct Faults {
    /// While true, a scan blocks (ignoring its cancel flag) without hashing.
    pub hang: AtomicBool,
    /// Temperature reported, tenths of a degree (i32::MIN: none).
    pub temperature_dc: AtomicI32,
    /// While true, a scan fails at once as a lost GPU's would.
    pub fail_scan: AtomicBool,
    /// While true, loading a transport job fails (the device cannot take it).
    pub fail_load: AtomicBool,
}

/// A CPU device with scripted faults.
pub struct FaultyDevice {
    inner: CpuDevice,
    faults: Arc<Faults>,
}

impl FaultyDevice {
    /// CPU device `index` of one core, and the handle that scripts its faults.
    pub fn new(index: usize) -> (FaultyDevice, Arc<Faults>) {
        let faults = Arc::new(Faults {
            hang: AtomicBool::new(false),
            temperature_dc: AtomicI32::new(i32::MIN),
            fail_scan: AtomicBool::new(false),
            fail_load: AtomicBool::new(false),
        });
        let cpu = compushare_hardware::cpu_device();
        (
            FaultyDevice {
                inner: CpuDevice::new(index, 1, cpu.memory_bytes, "faulty test CPU"),
                faults: faults.clone(),
            },
            faults,
        )
    }
}

impl Device for FaultyDevice {
    fn describe(&self) -> &DeviceDescription {
        self.inner.describe()
    }

    fn telemetry(&self) -> Telemetry {
        let t = self.faults.temperature_dc.load(Ordering::Relaxed);
        Telemetry {
            temperature_dc: i16::try_from(t).ok(),
            ..Telemetry::default()
        }
    }

    fn scan(&self, s: Scan<'_>) -> Result<u64, DeviceError> {
        if self.faults.hang.load(Ordering::Relaxed) {
            while self.faults.hang.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(0);
        }
        if self.faults.fail_scan.load(Ordering::Relaxed) {
            return Err(DeviceError::Scan(ScanFault::Backend(ScanError::Device(
                "scripted failure: device lost".into(),
            ))));
        }
        self.inner.scan(s)
    }

    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError> {
        if self.faults.fail_load.load(Ordering::Relaxed) {
            return Err(DeviceError::Unsupported(
                "scripted failure: job not loadable",
            ));
        }
        self.inner.load(job)
    }
}
