//! Finding and mounting the USB stick's FAT partition, which holds rig.conf and the
//! controller's STATE_DIR.
//!
//! The partition is found by its FAT volume label ([`LABEL`], read from the boot sector of
//! every block device in /sys/class/block); when no device carries the label (an operator
//! relabelled the stick), the first FAT file system with a rig.conf on it is used. USB
//! storage appears some time after its driver loads, so the search is repeated until a
//! deadline.
//!
//! The mount options make the FAT look like a private directory: owner root, files 0600,
//! directories 0700 (the controller refuses a key file others can read, and FAT has no modes
//! of its own); `flush` writes data early, since sticks get pulled.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The volume label `image/build.sh` gives the partition.
pub const LABEL: &str = "COMPUSHARE";
/// Where it is mounted.
pub const MOUNT_POINT: &str = "/stick";
/// The operator's file on it.
pub const RIG_CONF: &str = "rig.conf";
/// vfat options (see the module doc).
pub const OPTIONS: &std::ffi::CStr =
    c"uid=0,gid=0,fmask=0177,dmask=0077,shortname=mixed,utf8,flush,errors=remount-ro";

/// Why no stick could be mounted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StickError {
    /// No FAT file system labelled [`LABEL`] or holding a rig.conf appeared in time.
    #[error("no FAT partition labelled {LABEL} (nor any with a rig.conf) among {0}")]
    NotFound(String),
    /// The mount failed.
    #[error("mount {device} on {MOUNT_POINT}: {source}")]
    Mount {
        device: String,
        source: std::io::Error,
    },
}

/// A FAT boot sector's label, when `sector` (512 bytes) is one.
pub fn fat_label(sector: &[u8]) -> Option<String> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = u16::from_le_bytes([sector[11], sector[12]]);
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) || sector[13] == 0 {
        return None;
    }
    // FAT32 keeps its extended BPB at 0x40, FAT12/16 at 0x24; each has the boot signature
    // 0x29, then serial, label (11 bytes) and the type string.
    let (sig, label, kind) = if &sector[0x52..0x57] == b"FAT32" {
        (0x42, 0x47, 0x52)
    } else {
        (0x26, 0x2B, 0x36)
    };
    if sector[sig] != 0x29 || &sector[kind..kind + 3] != b"FAT" {
        return None;
    }
    let label = String::from_utf8_lossy(&sector[label..label + 11]);
    Some(label.trim_end().to_owned())
}

fn read_sector(dev: &Path) -> Option<[u8; 512]> {
    let mut f = File::open(dev).ok()?;
    let mut s = [0u8; 512];
    f.read_exact(&mut s).ok()?;
    Some(s)
}

/// Block devices with a FAT file system: (device path, label).
pub fn fat_devices(sys_block: &Path, dev: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let path = dev.join(&n);
            fat_label(&read_sector(&path)?).map(|l| (path, l))
        })
        .collect()
}

fn mount(device: &Path) -> Result<(), StickError> {
    let _ = std::fs::create_dir_all(MOUNT_POINT);
    use rustix::mount::{mount, MountFlags};
    mount(
        device,
        MOUNT_POINT,
        "vfat",
        MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC,
        OPTIONS,
    )
    .map_err(|e| StickError::Mount {
        device: device.display().to_string(),
        source: e.into(),
    })
}

/// Searches until `deadline` and mounts the stick; returns the device mounted.
pub fn find_and_mount(deadline: Instant) -> Result<PathBuf, StickError> {
    loop {
        let fats = fat_devices(Path::new("/sys/class/block"), Path::new("/dev"));
        if let Some((dev, _)) = fats.iter().find(|(_, l)| l.eq_ignore_ascii_case(LABEL)) {
            mount(dev)?;
            return Ok(dev.clone());
        }
        // No label: try each FAT for a rig.conf, leaving the first that has one mounted.
        for (dev, _) in &fats {
            if mount(dev).is_ok() {
                if Path::new(MOUNT_POINT).join(RIG_CONF).exists() {
                    return Ok(dev.clone());
                }
                let _ = rustix::mount::unmount(MOUNT_POINT, rustix::mount::UnmountFlags::empty());
            }
        }
        if Instant::now() >= deadline {
            let seen: Vec<String> = fats
                .iter()
                .map(|(d, l)| format!("{} ({l:?})", d.display()))
                .collect();
            return Err(StickError::NotFound(if seen.is_empty() {
                "no FAT devices".into()
            } else {
                seen.join(", ")
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fat32_sector(label: &[u8; 11]) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[11..13].copy_from_slice(&512u16.to_le_bytes());
        s[13] = 1;
        s[0x42] = 0x29;
        s[0x47..0x52].copy_from_slice(label);
        s[0x52..0x5A].copy_from_slice(b"FAT32   ");
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn labels_of_fat32_and_fat16() {
        assert_eq!(
            fat_label(&fat32_sector(b"COMPUSHARE ")).as_deref(),
            Some("COMPUSHARE")
        );
        let mut s = [0u8; 512];
        s[11..13].copy_from_slice(&512u16.to_le_bytes());
        s[13] = 4;
        s[0x26] = 0x29;
        s[0x2B..0x36].copy_from_slice(b"RIGS       ");
        s[0x36..0x3E].copy_from_slice(b"FAT16   ");
        s[510] = 0x55;
        s[511] = 0xAA;
        assert_eq!(fat_label(&s).as_deref(), Some("RIGS"));
        let mut mbr = fat32_sector(b"COMPUSHARE ");
        mbr[0x52] = b'X';
        mbr[0x36] = 0;
        assert_eq!(fat_label(&mbr), None, "an MBR is not a FAT");
        assert_eq!(fat_label(&[0u8; 100]), None);
    }

    #[test]
    fn scans_a_sysfs_like_tree() {
        let root = std::env::temp_dir().join(format!("cs-init-stick-{}", std::process::id()));
        let (sys, dev) = (root.join("sys"), root.join("dev"));
        for d in [&sys, &dev] {
            std::fs::create_dir_all(d).unwrap();
        }
        for (name, content) in [
            ("sda", vec![0u8; 512]),
            ("sda1", fat32_sector(b"COMPUSHARE ").to_vec()),
            ("loop0", fat32_sector(b"LOOP       ").to_vec()),
        ] {
            std::fs::create_dir_all(sys.join(name)).unwrap();
            std::fs::write(dev.join(name), content).unwrap();
        }
        assert_eq!(
            fat_devices(&sys, &dev),
            vec![(dev.join("sda1"), "COMPUSHARE".to_owned())]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn any_sector_is_handled(b in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = fat_label(&b);
        }
    }
}
