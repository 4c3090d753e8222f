//! Bringing the network up and keeping it up: interface choice, DHCP lease or static
//! settings applied to the kernel, /etc/resolv.conf, and the clock from NTP.
//!
//! Runs on its own thread ([`spawn`]) and publishes what it did in a [`NetState`] that the
//! status line and the supervisor read. The supervisor waits for the first address only a
//! bounded time: a rig whose network is down still starts its controller (console and API).

use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conf::{Addressing, InitConf};
use crate::console::Console;
use crate::dhcp::{Client, Dest, DhcpError, Lease, Link};
use crate::{ntp, sys};

/// How long to wait for a carrier before trying interfaces without one.
pub const CARRIER_WAIT: Duration = Duration::from_secs(5);
/// How long one interface gets to find a DHCP server before the next is tried.
pub const DHCP_TRY: Duration = Duration::from_secs(30);
/// Wait before retrying an interface that cannot be used at all (no MAC, no socket: a wrong
/// NET_INTERFACE), so that the console is not flooded.
pub const SOCKET_RETRY: Duration = Duration::from_secs(10);
/// Time allowed per NTP server.
pub const NTP_TIMEOUT: Duration = Duration::from_secs(1);
/// Retry period while no NTP server answered, and the resync period after one did.
pub const NTP_RETRY: Duration = Duration::from_secs(64);
pub const NTP_RESYNC: Duration = Duration::from_secs(3600);
/// The public fallback when neither rig.conf nor DHCP names a time server.
pub const NTP_FALLBACK: &str = "pool.ntp.org";

/// What the network thread has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetState {
    pub interface: Option<String>,
    /// Address and prefix in force.
    pub addr: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    /// `dhcp` or `static`.
    pub source: &'static str,
    /// The last problem, until the next success.
    pub error: Option<String>,
    /// The last clock result ("ntp 10.0.2.2:123 +0.002 s", "no NTP answer").
    pub clock: Option<String>,
}

/// The shared state.
pub type Shared = Arc<Mutex<NetState>>;

fn update(shared: &Shared, f: impl FnOnce(&mut NetState)) {
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
}

/// Wired interfaces in /sys/class/net (not loopback, not wireless), sorted by name.
pub fn interfaces(sys_net: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(sys_net) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            let dir = sys_net.join(n);
            let ty = std::fs::read_to_string(dir.join("type")).unwrap_or_default();
            ty.trim() == "1" && !dir.join("wireless").exists() && n != "lo"
        })
        .collect();
    v.sort();
    v
}

fn has_carrier(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).is_ok_and(|c| c.trim() == "1")
}

/// The MAC address of `name` from sysfs.
pub fn mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut out = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The rig's DHCP socket: port 68 on one interface, broadcast to port 67.
pub struct UdpLink {
    sock: UdpSocket,
}

impl UdpLink {
    pub fn open(interface: &str) -> std::io::Result<UdpLink> {
        let sock = UdpSocket::bind(("0.0.0.0", 68))?;
        sys::bind_to_device(&sock, interface)?;
        sock.set_broadcast(true)?;
        Ok(UdpLink { sock })
    }
}

impl Link for UdpLink {
    fn send(&mut self, to: Dest, bytes: &[u8]) -> std::io::Result<()> {
        let ip = match to {
            Dest::Broadcast => Ipv4Addr::BROADCAST,
            Dest::Server(ip) => ip,
        };
        self.sock.send_to(bytes, (ip, 67)).map(|_| ())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        crate::dhcp::client::recv_timeout(&self.sock, buf, timeout)
    }
}

/// Writes /etc/resolv.conf for `dns` (and a search domain).
fn write_resolv(dns: &[Ipv4Addr], domain: Option<&str>) -> std::io::Result<()> {
    let mut text = String::from("# written by compushare-init\n");
    if let Some(d) = domain.filter(|d| {
        d.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    }) {
        text.push_str(&format!("search {d}\n"));
    }
    for d in dns {
        text.push_str(&format!("nameserver {d}\n"));
    }
    std::fs::create_dir_all("/etc")?;
    std::fs::write("/etc/resolv.conf", text)
}

fn apply(
    iface: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> std::io::Result<()> {
    sys::set_ipv4(iface, addr, prefix)?;
    if let Some(gw) = gateway {
        sys::add_default_route(iface, gw)?;
    }
    Ok(())
}

/// Starts the network thread.
pub fn spawn(conf: InitConf, console: Arc<Console>) -> Shared {
    let shared: Shared = Arc::default();
    let s2 = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("net".into())
        .spawn(move || run(conf, &console, &s2));
    if let Err(e) = spawned {
        update(&shared, |s| {
            s.error = Some(format!("cannot start the network thread: {e}"))
        });
    }
    shared
}

/// Waits until the network has an address or `timeout` passes; returns whether it has one.
pub fn wait_for_address(shared: &Shared, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if shared.lock().map(|s| s.addr.is_some()).unwrap_or(false) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(conf: InitConf, console: &Console, shared: &Shared) {
    if let Err(e) = sys::set_up("lo", true) {
        console.say(format_args!("net: lo: {e}"));
    }
    let candidates = match &conf.interface {
        Some(i) => vec![i.clone()],
        None => interfaces(Path::new("/sys/class/net")),
    };
    if candidates.is_empty() {
        console.say(format_args!(
            "net: no wired network interface found (driver missing?)"
        ));
        update(shared, |s| s.error = Some("no network interface".into()));
        return;
    }
    for i in &candidates {
        if let Err(e) = sys::set_up(i, true) {
            console.say(format_args!("net: {i}: cannot bring up: {e}"));
        }
    }
    // Prefer interfaces with a cable in; give links a moment to negotiate.
    let deadline = Instant::now() + CARRIER_WAIT;
    let ordered = loop {
        let with: Vec<String> = candidates
            .iter()
            .filter(|i| has_carrier(i))
            .cloned()
            .collect();
        if !with.is_empty() || Instant::now() >= deadline {
            let mut o = with.clone();
            o.extend(candidates.iter().filter(|i| !with.contains(i)).cloned());
            break o;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ntp_servers = match conf.addressing {
        Addressing::Static { addr, prefix } => {
            let iface = &ordered[0];
            match apply(iface, addr, prefix, conf.gateway) {
                Ok(()) => {
                    let _ = write_resolv(&conf.dns, None);
                    console.say(format_args!(
                        "net: {iface} {addr}/{prefix} (static){}",
                        conf.gateway
                            .map(|g| format!(" via {g}"))
                            .unwrap_or_default()
                    ));
                    update(shared, |s| {
                        s.interface = Some(iface.clone());
                        s.addr = Some((addr, prefix));
                        s.gateway = conf.gateway;
                        s.source = "static";
                        s.error = None;
                    });
                }
                Err(e) => {
                    console.say(format_args!("net: {iface}: static {addr}/{prefix}: {e}"));
                    update(shared, |s| s.error = Some(format!("{iface}: {e}")));
                }
            }
            ntp_list(&conf, &[], conf.gateway)
        }
        Addressing::Dhcp => {
            // The lease loop also tends the clock once each lease is in.
            return dhcp_forever(&conf, &ordered, console, shared);
        }
    };
    clock_forever(&ntp_servers, console, shared);
}

/// The servers to ask for the time, in order: rig.conf's, DHCP's, the gateway, the pool.
fn ntp_list(conf: &InitConf, dhcp: &[Ipv4Addr], gateway: Option<Ipv4Addr>) -> Vec<String> {
    let mut v: Vec<String> = conf.ntp.clone();
    if v.is_empty() {
        v.extend(dhcp.iter().map(|i| i.to_string()));
        v.extend(gateway.map(|g| g.to_string()));
        v.push(NTP_FALLBACK.into());
    }
    v.dedup();
    v
}

/// Tries each server once; steps the clock from the first that answers.
fn sync_clock(servers: &[String], console: &Console, shared: &Shared) -> bool {
    let mut errors = Vec::new();
    for server in servers {
        match ntp::query(server, NTP_TIMEOUT) {
            Ok(sample) => {
                let secs = sample.offset_ns as f64 / 1e9;
                let stepped = ntp::step(sample.offset_ns);
                let text = match &stepped {
                    Ok(true) => format!("ntp {} stepped {secs:+.3} s", sample.server),
                    Ok(false) => format!("ntp {} within {secs:+.3} s", sample.server),
                    Err(e) => format!("ntp {}: cannot set the clock: {e}", sample.server),
                };
                console.say(format_args!(
                    "clock: {text} (stratum {}); now {}",
                    sample.stratum,
                    crate::utc_now()
                ));
                update(shared, |s| s.clock = Some(text));
                return stepped.is_ok();
            }
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    let text = format!("no NTP answer ({})", errors.join("; "));
    update(shared, |s| s.clock = Some(text.clone()));
    console.say(format_args!(
        "clock: {text}; keeping the RTC's time {}",
        crate::utc_now()
    ));
    false
}

fn clock_forever(servers: &[String], console: &Console, shared: &Shared) {
    loop {
        let ok = sync_clock(servers, console, shared);
        std::thread::sleep(if ok { NTP_RESYNC } else { NTP_RETRY });
    }
}

/// Acquires a lease, keeps it (renew at T1, rebind at T2), starts over when it is lost;
/// syncs the clock once per lease and then hourly.
fn dhcp_forever(conf: &InitConf, ordered: &[String], console: &Console, shared: &Shared) {
    let mut next = 0usize;
    loop {
        let iface = ordered[next % ordered.len()].clone();
        next += 1;
        let Some(mac) = mac(&iface) else {
            console.say(format_args!(
                "net: {iface}: no MAC address; retrying in {} s",
                SOCKET_RETRY.as_secs()
            ));
            std::thread::sleep(SOCKET_RETRY);
            continue;
        };
        let link = match UdpLink::open(&iface) {
            Ok(l) => l,
            Err(e) => {
                console.say(format_args!(
                    "net: {iface}: DHCP socket: {e}; retrying in {} s",
                    SOCKET_RETRY.as_secs()
                ));
                update(shared, |s| s.error = Some(format!("{iface}: {e}")));
                std::thread::sleep(SOCKET_RETRY);
                continue;
            }
        };
        let mut client = Client::new(link, mac, conf.rig_name.clone());
        let lease = match client.acquire(Instant::now() + DHCP_TRY) {
            Ok(l) => l,
            Err(e) => {
                console.say(format_args!("net: {iface}: DHCP: {e}"));
                update(shared, |s| s.error = Some(format!("{iface}: DHCP: {e}")));
                if matches!(e, DhcpError::Nak { .. }) {
                    std::thread::sleep(Duration::from_secs(2));
                }
                continue;
            }
        };
        keep_lease(conf, &iface, &mut client, lease, console, shared);
        // Lost: remove the address so nothing keeps using it.
        let _ = sys::set_ipv4(&iface, Ipv4Addr::UNSPECIFIED, 0);
        update(shared, |s| s.addr = None);
        next -= 1; // start over on the same interface first
    }
}

fn bind_lease(
    conf: &InitConf,
    iface: &str,
    lease: &Lease,
    console: &Console,
    shared: &Shared,
) -> bool {
    let gateway = conf.gateway.or_else(|| lease.routers.first().copied());
    if let Err(e) = apply(iface, lease.addr, lease.prefix, gateway) {
        console.say(format_args!(
            "net: {iface}: applying {}/{}: {e}",
            lease.addr, lease.prefix
        ));
        update(shared, |s| s.error = Some(format!("{iface}: {e}")));
        return false;
    }
    let dns = if conf.dns.is_empty() {
        &lease.dns
    } else {
        &conf.dns
    };
    if let Err(e) = write_resolv(dns, lease.domain.as_deref()) {
        console.say(format_args!("net: /etc/resolv.conf: {e}"));
    }
    let length = lease
        .length
        .map(|l| format!("{} s", l.as_secs()))
        .unwrap_or_else(|| "infinite".into());
    console.say(format_args!(
        "net: {iface} {}/{} via {} (DHCP server {}, lease {length}, dns {})",
        lease.addr,
        lease.prefix,
        gateway.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
        lease.server,
        dns.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    update(shared, |s| {
        s.interface = Some(iface.to_owned());
        s.addr = Some((lease.addr, lease.prefix));
        s.gateway = gateway;
        s.source = "dhcp";
        s.error = None;
    });
    true
}

fn keep_lease(
    conf: &InitConf,
    iface: &str,
    client: &mut Client<UdpLink>,
    mut lease: Lease,
    console: &Console,
    shared: &Shared,
) {
    if !bind_lease(conf, iface, &lease, console, shared) {
        return;
    }
    let servers = ntp_list(
        conf,
        &lease.ntp,
        conf.gateway.or_else(|| lease.routers.first().copied()),
    );
    let mut clock_ok = sync_clock(&servers, console, shared);
    let mut next_clock = Instant::now() + if clock_ok { NTP_RESYNC } else { NTP_RETRY };
    loop {
        let (Some(length), Some(t1), Some(t2)) = (lease.length, lease.t1, lease.t2) else {
            // Infinite lease: only the clock needs tending.
            std::thread::sleep(next_clock.saturating_duration_since(Instant::now()));
            clock_ok = sync_clock(&servers, console, shared);
            next_clock = Instant::now() + if clock_ok { NTP_RESYNC } else { NTP_RETRY };
            continue;
        };
        let renew_at = lease.acquired + t1;
        // Tend the clock while waiting for T1.
        while Instant::now() < renew_at {
            let wake = renew_at.min(next_clock);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            if Instant::now() >= next_clock {
                clock_ok = sync_clock(&servers, console, shared);
                next_clock = Instant::now() + if clock_ok { NTP_RESYNC } else { NTP_RETRY };
            }
        }
        let phases = [
            (Dest::Server(lease.server), lease.acquired + t2, "renewing"),
            (Dest::Broadcast, lease.acquired + length, "rebinding"),
        ];
        let mut renewed = None;
        for (dest, until, what) in phases {
            match client.extend(&lease, dest, until) {
                Ok(Some(l)) => {
                    renewed = Some(l);
                    break;
                }
                Ok(None) => console.say(format_args!("net: {iface}: no answer while {what}")),
                Err(e) => {
                    console.say(format_args!("net: {iface}: {what}: {e}"));
                    break;
                }
            }
        }
        match renewed {
            Some(l) => {
                let changed = !l.same_config(&lease);
                lease = l;
                if changed && !bind_lease(conf, iface, &lease, console, shared) {
                    return;
                }
                console.say(format_args!(
                    "net: {iface}: lease of {} renewed",
                    lease.addr
                ));
            }
            None => {
                console.say(format_args!("net: {iface}: lease of {} lost", lease.addr));
                update(shared, |s| s.error = Some(format!("{iface}: lease lost")));
                return;
            }
        }
    }
}
