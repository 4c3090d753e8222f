//! The CPU as a compute device: its model name, logical cores and memory, read from /proc
//! (Linux, the rig image's only OS). Anything unreadable degrades to "unknown"/0 rather than
//! failing: the CPU device is always usable.

use std::fs;

/// What discovery learned about the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// Model name from /proc/cpuinfo (`model name`), or "unknown CPU".
    pub name: String,
    /// Logical cores this process may run on.
    pub cores: u32,
    /// Physical memory in bytes (MemTotal), 0 if unknown.
    pub memory_bytes: u64,
}

/// Reads the CPU's description from /proc.
pub fn cpu_device() -> CpuInfo {
    let cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let name = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| model_name(&s))
        .unwrap_or_else(|| "unknown CPU".to_string());
    let memory_bytes = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_total_bytes(&s))
        .unwrap_or(0);
    CpuInfo {
        name,
        cores,
        memory_bytes,
    }
}

/// The first `model name` line of /proc/cpuinfo text.
pub(crate) fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// `MemTotal:  N kB` of /proc/meminfo text, in bytes.
pub(crate) fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_text() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t: fpu\n";
        assert_eq!(
            model_name(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8480+")
        );
        assert_eq!(model_name("processor: 0\n"), None);
        let meminfo = "MemTotal:       131072000 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(131_072_000 * 1024));
        assert_eq!(mem_total_bytes("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: 99999999999999999999 kB\n"), None);
        assert_eq!(mem_total_bytes(""), None);
    }

    #[test]
    fn this_machine_has_a_cpu() {
        let cpu = cpu_device();
        assert!(cpu.cores >= 1);
        assert!(!cpu.name.is_empty());
    }
}
