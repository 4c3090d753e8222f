//! NVIDIA device nodes, on images built with the NVIDIA option.
//!
//! The NVIDIA kernel modules register character devices without creating nodes (on a
//! distribution, nvidia-modprobe or udev makes them), and devtmpfs does not show them. libcuda
//! opens /dev/nvidiactl, /dev/nvidiaN and /dev/nvidia-uvm, so PID 1 makes them: major 195
//! (fixed by the driver) for the control and per-GPU nodes, and nvidia-uvm's major as the
//! kernel lists it in /proc/devices.

use std::path::Path;

/// The NVIDIA driver's fixed character major.
pub const NVIDIA_MAJOR: u32 = 195;
/// Minor of /dev/nvidiactl.
pub const CTL_MINOR: u32 = 255;

/// The major of `name` in /proc/devices text ("Character devices:" section).
pub fn char_major(proc_devices: &str, name: &str) -> Option<u32> {
    proc_devices
        .lines()
        .skip_while(|l| !l.starts_with("Character devices"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (major, n) = l.trim().split_once(' ')?;
            (n.trim() == name).then(|| major.parse().ok()).flatten()
        })
}

fn mknod(path: &str, major: u32, minor: u32) -> std::io::Result<()> {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    match mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(major, minor),
    ) {
        Err(rustix::io::Errno::EXIST) => Ok(()),
        r => r.map_err(Into::into),
    }
}

/// Creates the nodes when the driver is loaded; returns the number of GPUs it lists, or
/// `None` when there is no NVIDIA driver.
pub fn make_nodes() -> Result<Option<usize>, std::io::Error> {
    let gpus_dir = Path::new("/proc/driver/nvidia/gpus");
    if !gpus_dir.exists() {
        return Ok(None);
    }
    let gpus = std::fs::read_dir(gpus_dir)?.count();
    mknod("/dev/nvidiactl", NVIDIA_MAJOR, CTL_MINOR)?;
    for i in 0..gpus.min(CTL_MINOR as usize) {
        mknod(&format!("/dev/nvidia{i}"), NVIDIA_MAJOR, i as u32)?;
    }
    let devices = std::fs::read_to_string("/proc/devices")?;
    if let Some(uvm) = char_major(&devices, "nvidia-uvm") {
        mknod("/dev/nvidia-uvm", uvm, 0)?;
        mknod("/dev/nvidia-uvm-tools", uvm, 1)?;
    }
    Ok(Some(gpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_char_majors() {
        let text = "Character devices:\n  1 mem\n195 nvidia\n234 nvidia-uvm\n\nBlock devices:\n234 nvidia-uvm-fake\n";
        assert_eq!(char_major(text, "nvidia-uvm"), Some(234));
        assert_eq!(char_major(text, "nvidia"), Some(195));
        assert_eq!(char_major(text, "nvidia-uvm-fake"), None);
        assert_eq!(char_major("", "x"), None);
    }
}
