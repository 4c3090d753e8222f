//! The DHCP client state machine over a datagram [`Link`].
//!
//! Retransmission follows RFC 2131 section 4.1 with a shorter first wait (a rig on a farm
//! switch usually answers at once, and boot time matters): 2, 4, 8, 16, 32, 32... seconds,
//! each with up to one second of random jitter so that a rack of rigs powered on together
//! does not retransmit in step. A reply counts only if it echoes our transaction id and MAC.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::{Kind, Message, WireError, MAX_LEN};

/// Longest wait between retransmissions while acquiring.
pub const MAX_RETRY: Duration = Duration::from_secs(32);
/// First wait for an answer.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// REQUESTs sent for one OFFER before starting over with a DISCOVER.
pub const REQUEST_TRIES: u32 = 3;
/// Shortest wait between renewal retransmissions (RFC 2131 4.4.5).
pub const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);
/// Lease assumed when an ACK has no lease time (the RFC requires one; some servers forget).
pub const DEFAULT_LEASE_S: u32 = 3600;

/// Where a client message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The limited broadcast address, server port 67.
    Broadcast,
    /// One server (renewal), port 67.
    Server(Ipv4Addr),
}

/// The datagram socket the client talks through.
pub trait Link {
    /// Sends one message.
    fn send(&mut self, to: Dest, bytes: &[u8]) -> io::Result<()>;
    /// Waits up to `timeout` for one datagram; `Ok(None)` when none came.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>>;
}

/// One datagram from `sock` within `timeout` (`Ok(None)` when none came): the receive half
/// of every [`Link`] over a UDP socket.
pub fn recv_timeout(
    sock: &std::net::UdpSocket,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<Option<usize>> {
    // A zero timeout would mean "block forever" to set_read_timeout.
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    match sock.recv_from(buf) {
        Ok((n, _)) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Why acquiring or renewing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhcpError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// A message could not be encoded (a bug: our messages always fit).
    #[error("encode: {0}")]
    Encode(WireError),
    /// No server answered before the deadline.
    #[error("no DHCP server answered")]
    NoAnswer,
    /// The server refused our request (DHCPNAK), with its reason if it gave one.
    #[error("server {server} refused the lease (NAK){}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Nak {
        server: Ipv4Addr,
        reason: Option<String>,
    },
}

/// An address lease, as the server granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    /// The server that granted it (option 54).
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    /// Lease length; `None`: infinite.
    pub length: Option<Duration>,
    /// When to start renewing (T1) and rebinding (T2), from `acquired`.
    pub t1: Option<Duration>,
    pub t2: Option<Duration>,
    /// When the REQUEST that won it was sent (the lease runs from there: RFC 2131 4.4.1).
    pub acquired: Instant,
}

impl Lease {
    fn from_ack(ack: &Message, server: Ipv4Addr, sent: Instant) -> Lease {
        let lease_s = ack.lease_s.unwrap_or(DEFAULT_LEASE_S);
        let (length, t1, t2) = if lease_s == u32::MAX {
            (None, None, None)
        } else {
            let l = u64::from(lease_s);
            let t1 = ack
                .renew_s
                .map(u64::from)
                .filter(|&t| t < l)
                .unwrap_or(l / 2);
            let t2 = ack
                .rebind_s
                .map(u64::from)
                .filter(|&t| t < l && t >= t1)
                .unwrap_or(l * 7 / 8)
                .max(t1);
            (
                Some(Duration::from_secs(l)),
                Some(Duration::from_secs(t1)),
                Some(Duration::from_secs(t2)),
            )
        };
        Lease {
            addr: ack.yiaddr,
            prefix: ack
                .subnet_mask
                .and_then(prefix_of)
                .unwrap_or_else(|| class_prefix(ack.yiaddr)),
            server: ack.server_id.unwrap_or(server),
            routers: ack.routers.clone(),
            dns: ack.dns.clone(),
            ntp: ack.ntp.clone(),
            domain: ack.domain.clone(),
            mtu: ack.mtu,
            length,
            t1,
            t2,
            acquired: sent,
        }
    }

    /// Whether the same configuration is granted (an ACK on renewal usually is).
    pub fn same_config(&self, other: &Lease) -> bool {
        self.addr == other.addr && self.prefix == other.prefix && self.routers == other.routers
    }
}

/// The prefix length of a contiguous netmask.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0 && ones > 0).then_some(ones as u8)
}

/// The classful prefix, for a server that sends no mask.
fn class_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// A DHCP client on one link for one MAC address.
pub struct Client<L: Link> {
    link: L,
    mac: [u8; 6],
    hostname: Option<String>,
    buf: [u8; MAX_LEN],
}

/// Up to one second of jitter (RFC 2131: randomized by +/- 1 s).
fn jitter() -> Duration {
    let mut b = [0u8; 2];
    // GRND_INSECURE never blocks, even before the kernel's pool is initialised at boot.
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::INSECURE);
    Duration::from_millis(u64::from(u16::from_le_bytes(b)) % 1000)
}

fn new_xid() -> u32 {
    let mut b = [0u8; 4];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::INSECURE);
    let x = u32::from_le_bytes(b);
    // Mix in the clock in case getrandom wrote nothing.
    x ^ std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

impl<L: Link> Client<L> {
    pub fn new(link: L, mac: [u8; 6], hostname: Option<String>) -> Self {
        Client {
            link,
            mac,
            hostname: hostname
                .map(|h| sanitize_hostname(&h))
                .filter(|h| !h.is_empty()),
            buf: [0; MAX_LEN],
        }
    }

    fn send(&mut self, m: &Message, to: Dest) -> Result<(), DhcpError> {
        let mut out = [0u8; MAX_LEN];
        let n = m.encode(&mut out).map_err(DhcpError::Encode)?;
        self.link.send(to, &out[..n])?;
        Ok(())
    }

    /// Waits until `deadline` for a reply to `xid` of one of `kinds`.
    fn wait(
        &mut self,
        xid: u32,
        kinds: &[Kind],
        deadline: Instant,
    ) -> Result<Option<Message>, DhcpError> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let Some(n) = self.link.recv(&mut self.buf, deadline - now)? else {
                return Ok(None);
            };
            let Ok(m) = Message::decode(&self.buf[..n.min(MAX_LEN)]) else {
                continue;
            };
            if m.op == 2 && m.xid == xid && m.chaddr == self.mac && kinds.contains(&m.kind) {
                return Ok(Some(m));
            }
        }
    }

    fn request(&self, xid: u32, started: Instant) -> Message {
        let mut m = Message::client(Kind::Request, xid, self.mac);
        m.secs = started.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
        m.hostname = self.hostname.clone();
        m
    }

    /// INIT -> SELECTING -> REQUESTING -> BOUND: returns the first lease a server ACKs, or
    /// [`DhcpError::NoAnswer`] at `give_up`, or the NAK.
    pub fn acquire(&mut self, give_up: Instant) -> Result<Lease, DhcpError> {
        let started = Instant::now();
        let mut wait = FIRST_RETRY;
        loop {
            let xid = new_xid();
            let mut discover = Message::client(Kind::Discover, xid, self.mac);
            discover.secs = started.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
            discover.hostname = self.hostname.clone();
            self.send(&discover, Dest::Broadcast)?;
            let deadline = (Instant::now() + wait + jitter()).min(give_up);
            let offer = self.wait(xid, &[Kind::Offer], deadline)?;
            let offer = match offer {
                Some(o) if !o.yiaddr.is_unspecified() && o.server_id.is_some() => o,
                _ => {
                    if Instant::now() >= give_up {
                        return Err(DhcpError::NoAnswer);
                    }
                    wait = (wait * 2).min(MAX_RETRY);
                    continue;
                }
            };
            let server = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let mut req = self.request(xid, started);
            req.requested_ip = Some(offer.yiaddr);
            req.server_id = Some(server);
            let mut req_wait = FIRST_RETRY;
            for _ in 0..REQUEST_TRIES {
                let sent = Instant::now();
                self.send(&req, Dest::Broadcast)?;
                let deadline = (sent + req_wait + jitter()).min(give_up);
                match self.wait(xid, &[Kind::Ack, Kind::Nak], deadline)? {
                    Some(m) if m.server_id.is_some_and(|s| s != server) => continue,
                    Some(m) if m.kind == Kind::Ack && !m.yiaddr.is_unspecified() => {
                        return Ok(Lease::from_ack(&m, server, sent))
                    }
                    Some(m) if m.kind == Kind::Nak => {
                        return Err(DhcpError::Nak {
                            server,
                            reason: m.message,
                        })
                    }
                    _ => {}
                }
                if Instant::now() >= give_up {
                    return Err(DhcpError::NoAnswer);
                }
                req_wait = (req_wait * 2).min(MAX_RETRY);
            }
        }
    }

    /// RENEWING (to `Dest::Server`) or REBINDING (`Dest::Broadcast`): asks to extend
    /// `lease` until `until`, retransmitting at half the remaining time (at least
    /// [`MIN_RENEW_RETRY`]). `Ok(None)`: nobody answered in time.
    pub fn extend(
        &mut self,
        lease: &Lease,
        to: Dest,
        until: Instant,
    ) -> Result<Option<Lease>, DhcpError> {
        let started = Instant::now();
        let xid = new_xid();
        let mut req = self.request(xid, started);
        req.ciaddr = lease.addr;
        // A unicast reply reaches us now that the address is configured.
        req.broadcast = false;
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            self.send(&req, to)?;
            let wait = ((until - now) / 2).max(MIN_RENEW_RETRY).min(until - now);
            match self.wait(xid, &[Kind::Ack, Kind::Nak], now + wait)? {
                Some(m) if m.kind == Kind::Ack && !m.yiaddr.is_unspecified() => {
                    return Ok(Some(Lease::from_ack(&m, lease.server, now)))
                }
                Some(m) if m.kind == Kind::Nak => {
                    return Err(DhcpError::Nak {
                        server: m.server_id.unwrap_or(lease.server),
                        reason: m.message,
                    })
                }
                _ => {}
            }
        }
    }

    /// The link (tests read what was sent).
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }
}

/// A host name as DHCP option 12 allows it: letters, digits and hyphens, at most 63.
fn sanitize_hostname(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 0, 255)), None);
        assert_eq!(prefix_of(Ipv4Addr::UNSPECIFIED), None);
        assert_eq!(prefix_of(Ipv4Addr::BROADCAST), Some(32));
        assert_eq!(class_prefix(Ipv4Addr::new(10, 1, 2, 3)), 8);
        assert_eq!(class_prefix(Ipv4Addr::new(192, 168, 1, 3)), 24);
        assert_eq!(sanitize_hostname("rig 7_a"), "rig-7-a");
    }

    #[test]
    fn lease_timers_follow_the_rfc_defaults_and_bounds() {
        let mut ack = Message::client(Kind::Ack, 1, [0; 6]);
        ack.yiaddr = Ipv4Addr::new(10, 0, 0, 5);
        ack.lease_s = Some(800);
        let l = Lease::from_ack(&ack, Ipv4Addr::new(10, 0, 0, 1), Instant::now());
        assert_eq!(l.t1, Some(Duration::from_secs(400)));
        assert_eq!(l.t2, Some(Duration::from_secs(700)));
        assert_eq!(l.prefix, 8);
        // Server timers beyond the lease are ignored.
        ack.renew_s = Some(900);
        ack.rebind_s = Some(100);
        let l = Lease::from_ack(&ack, Ipv4Addr::new(10, 0, 0, 1), Instant::now());
        assert_eq!(l.t1, Some(Duration::from_secs(400)));
        assert_eq!(l.t2, Some(Duration::from_secs(700)));
        ack.lease_s = Some(u32::MAX);
        let l = Lease::from_ack(&ack, Ipv4Addr::new(10, 0, 0, 1), Instant::now());
        assert_eq!((l.length, l.t1, l.t2), (None, None, None));
    }
}
