//! compushare-init: PID 1 of the CompuShare rig image, as a library so that its parts are
//! tested on the host (the binary in main.rs only sequences them).
//!
//! Boot: mount /dev, /proc, /sys -> open the consoles, banner -> load kernel modules ->
//! mount the stick -> read rig.conf's network keys -> network (DHCP or static) and clock
//! (NTP) on their own thread -> start and supervise `compushare rig`, drawing the status line.
#![deny(unsafe_code)]

pub mod conf;
pub mod console;
pub mod dhcp;
pub mod modules;
pub mod net;
pub mod ntp;
pub mod nvidia;
pub mod status;
pub mod stick;
pub mod supervise;
pub mod sys;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the kernel started (CLOCK_BOOTTIME: includes suspend, unaffected by NTP).
pub fn uptime() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The wall clock as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

/// `YYYY-MM-DD hh:mm:ss UTC` of a Unix time (the civil-from-days algorithm).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc(1_796_164_738), "2026-12-01 22:38:58 UTC");
    }
}
