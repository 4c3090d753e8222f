//! TEST DOUBLES of faulty devices, for the watchdog's tests: a CPU device whose hashing can
//! be made to hang (as a wedged GPU kernel would) and whose temperature is scripted.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::{Device, DeviceDescription, DeviceError, LoadedJob, Scan};
use compushare_hardware::Telemetry;
use compushare_kernels::transport::job::Job;

/// The knobs of a [`FaultyDevice`], kept by the test.
#[derive(Debug, Default)]
pub struct Faults {
    /// While true, a scan blocks (ignoring its cancel flag) without hashing.
    pub hang: AtomicBool,
    /// Temperature reported, tenths of a degree (i32::MIN: none).
    pub temperature_dc: AtomicI32,
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
        self.inner.scan(s)
    }

    fn load<'j>(&'j self, job: &'j Job) -> Result<Box<dyn LoadedJob + 'j>, DeviceError> {
        self.inner.load(job)
    }
}
