//! Device telemetry the watchdog and the operator surfaces read: temperature, power and fan.
//!
//! - GPUs: NVML (libnvidia-ml), opened at run time on first use and never linked, so a rig
//!   without it still runs; the GPU is found by its PCI bus id (the CUDA and NVML numberings
//!   may differ), by index only when the bus id is unknown.
//! - The CPU: the package temperature from Linux's hwmon (`coretemp`, `k10temp`, ...) or the
//!   `x86_pkg_temp` thermal zone; no power or fan.
//!
//! Every reading is optional: a sensor that is missing or fails reads `None`, never an error
//! that stops a device.

use std::path::Path;
use std::sync::OnceLock;

use crate::cuda::{CudaGpu, NO_CUDA_ENV};
use crate::sys_nvml::Nvml;

/// One reading of a device's sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Telemetry {
    /// Tenths of a degree Celsius.
    pub temperature_dc: Option<i16>,
    /// Watts.
    pub power_w: Option<u16>,
    /// Percent of the fan's maximum speed.
    pub fan_percent: Option<u8>,
}

/// Whether NVML could be opened (once per process).
fn nvml() -> &'static Result<Nvml, String> {
    static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| {
        if std::env::var_os(NO_CUDA_ENV).is_some_and(|v| !v.is_empty()) {
            return Err(format!("disabled by {NO_CUDA_ENV}"));
        }
        Nvml::open()
    })
}

/// One line about GPU telemetry on this machine: `None` when NVML works, else why not.
pub fn nvml_problem() -> Option<String> {
    nvml().as_ref().err().cloned()
}

/// The sensors of `gpu` through NVML (all `None` without it).
pub fn gpu_telemetry(gpu: &CudaGpu) -> Telemetry {
    let Ok(n) = nvml() else {
        return Telemetry::default();
    };
    let Some(d) = n.device(gpu.pci_bus_id.as_deref(), gpu.index) else {
        return Telemetry::default();
    };
    Telemetry {
        temperature_dc: n
            .temperature_c(d)
            .and_then(|c| i16::try_from(c.saturating_mul(10)).ok()),
        power_w: n
            .power_mw(d)
            .map(|mw| u16::try_from(mw / 1000).unwrap_or(u16::MAX)),
        fan_percent: n.fan_percent(d).map(|p| p.min(100) as u8),
    }
}

/// The CPU package temperature (power and fan are not read on the CPU).
pub fn cpu_telemetry() -> Telemetry {
    Telemetry {
        temperature_dc: cpu_temperature_dc(Path::new("/sys/class")),
        ..Telemetry::default()
    }
}

/// hwmon drivers that report the CPU package.
const CPU_SENSORS: [&str; 5] = [
    "coretemp",
    "k10temp",
    "zenpower",
    "cpu_thermal",
    "soc_thermal",
];

/// The CPU temperature under a sysfs `class` directory (tests pass a fake tree): the first
/// CPU hwmon's `temp1_input`, else the `x86_pkg_temp` thermal zone; millidegrees to tenths.
pub fn cpu_temperature_dc(class: &Path) -> Option<i16> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let milli = |p: &Path| read(p).and_then(|t| t.trim().parse::<i64>().ok());
    let to_dc = |m: i64| i16::try_from(m / 100).ok();
    let dirs = |sub: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(class.join(sub))
            .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    for d in dirs("hwmon") {
        let name = read(&d.join("name")).unwrap_or_default();
        if CPU_SENSORS.contains(&name.trim()) {
            if let Some(m) = milli(&d.join("temp1_input")) {
                return to_dc(m);
            }
        }
    }
    for d in dirs("thermal") {
        if read(&d.join("type")).is_some_and(|t| t.trim() == "x86_pkg_temp") {
            if let Some(m) = milli(&d.join("temp")) {
                return to_dc(m);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hw-telemetry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn cpu_temperature_from_hwmon_then_thermal_zone() {
        let d = tree("hwmon");
        let gpu = d.join("hwmon/hwmon0");
        let cpu = d.join("hwmon/hwmon1");
        std::fs::create_dir_all(&gpu).unwrap();
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(gpu.join("name"), "nvme\n").unwrap();
        std::fs::write(gpu.join("temp1_input"), "30000\n").unwrap();
        std::fs::write(cpu.join("name"), "coretemp\n").unwrap();
        std::fs::write(cpu.join("temp1_input"), "67500\n").unwrap();
        assert_eq!(cpu_temperature_dc(&d), Some(675));
        let _ = std::fs::remove_dir_all(&d);

        let d = tree("zone");
        let z = d.join("thermal/thermal_zone3");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("type"), "x86_pkg_temp\n").unwrap();
        std::fs::write(z.join("temp"), "81000\n").unwrap();
        assert_eq!(cpu_temperature_dc(&d), Some(810));
        std::fs::write(z.join("temp"), "garbage\n").unwrap();
        assert_eq!(cpu_temperature_dc(&d), None);
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(cpu_temperature_dc(Path::new("/nonexistent/class")), None);
    }

    #[test]
    fn gpu_telemetry_without_nvml_reads_nothing() {
        if nvml().is_ok() {
            return; // a machine with NVML: nothing to assert about its absence
        }
        let gpu = CudaGpu {
            index: 0,
            name: "absent".into(),
            sms: 1,
            cores: 1,
            memory_bytes: 1,
            compute_capability: (9, 0),
            pci_bus_id: Some("00000000:3b:00.0".into()),
        };
        assert_eq!(gpu_telemetry(&gpu), Telemetry::default());
        assert!(nvml_problem().is_some_and(|m| !m.contains('\n')));
    }
}
