//! The few system calls that no safe crate covers, each behind a safe function.
//!
//! rustix covers mount, finit_module, reboot, clock_settime and mknod safely; what is left
//! here is network interface configuration (the classic `SIOCSIF*` / `SIOCADDRT` ioctls,
//! which need `ifreq` / `rtentry` structures) and `SO_BINDTODEVICE`. Every function checks
//! its inputs (interface names fit `IFNAMSIZ`) before the structure is built, so the kernel
//! only ever sees well-formed, fully initialised memory.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

/// `IFF_UP`: the interface is administratively up.
const IFF_UP: libc::c_short = libc::IFF_UP as libc::c_short;
/// Route flags of `struct rtentry` (linux/route.h).
const RTF_UP: libc::c_ushort = 0x0001;
const RTF_GATEWAY: libc::c_ushort = 0x0002;

/// The kernel's `struct rtentry` (include/uapi/linux/route.h) for 64-bit and 32-bit Linux:
/// the libc crate has no glibc definition of it.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn bad_name(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("interface name {name:?} is empty, too long or contains NUL"),
    )
}

/// A zeroed `ifreq` naming `name` (checked to fit with its terminating NUL).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(bad_name(name));
    }
    // SAFETY: `ifreq` is plain old data (arrays, integers, a union of those and raw
    // pointers); all-zero bytes are a valid value of every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// An IPv4 `sockaddr` (port 0), as the interface ioctls expect it.
fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes and plain data; the kernel reads
    // the generic form and dispatches on sa_family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// A datagram socket to issue interface ioctls on.
fn control_socket() -> io::Result<OwnedFd> {
    rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(io::Error::from)
}

/// Issues `request` with `arg` on `fd`, mapping -1 to the errno.
///
/// SAFETY (for callers): `arg` must point to the structure `request` expects, fully
/// initialised, and stay valid for the call.
unsafe fn ioctl<T>(fd: &OwnedFd, request: libc::c_ulong, arg: *mut T) -> io::Result<()> {
    if libc::ioctl(fd.as_raw_fd(), request as _, arg) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings interface `name` up (or down), keeping its other flags.
pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let fd = control_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS reads an ifreq with a NUL-terminated name and writes ifru_flags.
    unsafe { ioctl(&fd, libc::SIOCGIFFLAGS, &mut req)? };
    // SAFETY: the kernel just wrote ifru_flags, a c_short.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = if up { flags | IFF_UP } else { flags & !IFF_UP };
    // SAFETY: SIOCSIFFLAGS reads the name and ifru_flags of a fully initialised ifreq.
    unsafe { ioctl(&fd, libc::SIOCSIFFLAGS, &mut req) }
}

/// Sets the IPv4 address, netmask and broadcast address of interface `name`.
/// `0.0.0.0` removes the address (and with it the routes through it).
pub fn set_ipv4(name: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let fd = control_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(addr);
    // SAFETY: SIOCSIFADDR reads a fully initialised ifreq whose ifru_addr is an AF_INET sockaddr.
    unsafe { ioctl(&fd, libc::SIOCSIFADDR, &mut req)? };
    if addr.is_unspecified() {
        return Ok(());
    }
    let mask = prefix_mask(prefix);
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr(mask);
    // SAFETY: as above, with ifru_netmask.
    unsafe { ioctl(&fd, libc::SIOCSIFNETMASK, &mut req)? };
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_broadaddr = sockaddr(Ipv4Addr::from(u32::from(addr) | !u32::from(mask)));
    // SAFETY: as above, with ifru_broadaddr.
    unsafe { ioctl(&fd, libc::SIOCSIFBRDADDR, &mut req) }
}

/// The netmask of a prefix length (clamped to 32).
pub fn prefix_mask(prefix: u8) -> Ipv4Addr {
    let prefix = u32::from(prefix.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0))
}

/// Adds a default route via `gateway` out of interface `name` (`EEXIST` is success: the
/// route is already there).
pub fn add_default_route(name: &str, gateway: Ipv4Addr) -> io::Result<()> {
    // Checked like an ifreq name: rt_dev is read as a NUL-terminated string.
    ifreq(name)?;
    let mut dev: Vec<libc::c_char> = name.bytes().map(|b| b as libc::c_char).collect();
    dev.push(0);
    let fd = control_socket()?;
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr(gateway),
        rt_genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_flags: RTF_UP | RTF_GATEWAY,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: SIOCADDRT reads a struct rtentry laid out as the kernel's; rt_dev points to
    // a NUL-terminated name that outlives the call.
    match unsafe { ioctl(&fd, libc::SIOCADDRT, &mut rt) } {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Binds `socket` to interface `name` (`SO_BINDTODEVICE`), so that broadcasts leave through
/// it and only its packets arrive, before the interface has an address.
pub fn bind_to_device(socket: &impl AsRawFd, name: &str) -> io::Result<()> {
    ifreq(name)?;
    let bytes = name.as_bytes();
    // SAFETY: the option value is `bytes.len()` readable bytes (an interface name; the kernel
    // copies at most IFNAMSIZ and adds the NUL itself).
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(32), Ipv4Addr::BROADCAST);
        assert_eq!(prefix_mask(200), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn names_are_checked() {
        assert!(ifreq("").is_err());
        assert!(ifreq("a-name-far-too-long").is_err());
        assert!(ifreq("et\0h").is_err());
        assert!(ifreq("eth0").is_ok());
    }

    #[test]
    fn rtentry_matches_the_kernel_layout() {
        // x86_64: 8 + 3*16 + 2 + 2(pad) + 4(align) + 8 + 8 + 2 + 6(align) + 8 + 8 + 8 + 2 + 6
        #[cfg(target_arch = "x86_64")]
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
    }
}
