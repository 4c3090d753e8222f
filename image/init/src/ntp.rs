//! Setting the clock: an SNTP client (RFC 4330, NTPv4 packets) and, for tests and the boot
//! test's host side, a minimal SNTP responder.
//!
//! The rig needs wall-clock time for TLS pools (certificate validity) and for the times in
//! its logs and status. One exchange gives the offset `((t2 - t1) + (t3 - t4)) / 2`; the
//! client steps the clock when the offset exceeds [`STEP_THRESHOLD`] (like ntpd's 128 ms
//! step threshold; smaller errors are left alone rather than slewed: a rig's wall clock is
//! for humans and TLS, not for measuring intervals, which use the monotonic clock).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the NTP era 0 (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// An SNTP packet without extensions.
pub const PACKET_LEN: usize = 48;
/// Offsets smaller than this are left alone.
pub const STEP_THRESHOLD: Duration = Duration::from_millis(128);
/// Default NTP port.
pub const PORT: u16 = 123;

/// Why a server gave no usable time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NtpError {
    /// The name did not resolve, or the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No answer within the timeout.
    #[error("no answer")]
    Timeout,
    /// The answer was not a valid server reply to our request.
    #[error("bad reply: {0}")]
    BadReply(&'static str),
    /// The server told us to go away (kiss-o'-death, stratum 0) or is unsynchronised.
    #[error("server unsynchronised or refusing (stratum {0})")]
    Unsynchronised(u8),
}

/// An NTP timestamp (seconds since 1900, 32.32 fixed point) of a Unix time.
pub fn to_ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Nanoseconds since the Unix epoch of an NTP timestamp (era 0; i128 keeps the arithmetic
/// of offsets exact and sign-safe).
pub fn ntp_to_unix_ns(ts: u64) -> i128 {
    let secs = i128::from(ts >> 32) - i128::from(NTP_UNIX_OFFSET);
    let frac = (i128::from(ts & 0xffff_ffff) * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac
}

fn unix_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// One exchange's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Server time minus ours, nanoseconds.
    pub offset_ns: i128,
    /// Round-trip delay minus the server's processing time, nanoseconds.
    pub delay_ns: i128,
    pub stratum: u8,
    pub server: SocketAddr,
}

/// Asks `server` (`host` or `host:port`) for the time, waiting up to `timeout`.
pub fn query(server: &str, timeout: Duration) -> Result<Sample, NtpError> {
    let with_port = if server
        .rsplit_once(':')
        .is_some_and(|(h, p)| p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')))
    {
        server.to_owned()
    } else {
        format!("{server}:{PORT}")
    };
    let addr = with_port
        .to_socket_addrs()?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no IPv4 address"))?;
    let sock = UdpSocket::bind(("0.0.0.0", 0))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.connect(addr)?;
    let mut req = [0u8; PACKET_LEN];
    req[0] = 0x23; // LI 0, version 4, mode 3 (client)
    let t1 = SystemTime::now();
    let t1_ntp = to_ntp(t1);
    req[40..48].copy_from_slice(&t1_ntp.to_be_bytes());
    sock.send(&req)?;
    let mut buf = [0u8; 128];
    let n = match sock.recv(&mut buf) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(NtpError::Timeout)
        }
        Err(e) => return Err(e.into()),
    };
    let t4 = SystemTime::now();
    let mut sample = parse_reply(&buf[..n], t1_ntp, unix_ns(t1), unix_ns(t4))?;
    sample.server = addr;
    Ok(sample)
}

/// Checks a reply to a request sent with transmit timestamp `origin` at local `t1_ns`,
/// received at `t4_ns`.
pub fn parse_reply(b: &[u8], origin: u64, t1_ns: i128, t4_ns: i128) -> Result<Sample, NtpError> {
    if b.len() < PACKET_LEN {
        return Err(NtpError::BadReply("short packet"));
    }
    let mode = b[0] & 7;
    let version = (b[0] >> 3) & 7;
    let leap = b[0] >> 6;
    if mode != 4 || !(1..=4).contains(&version) {
        return Err(NtpError::BadReply("not a server reply"));
    }
    let stratum = b[1];
    if stratum == 0 || stratum > 15 || leap == 3 {
        return Err(NtpError::Unsynchronised(stratum));
    }
    let ts = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_be_bytes(a)
    };
    if ts(24) != origin {
        return Err(NtpError::BadReply("origin timestamp is not our request's"));
    }
    let (t2, t3) = (ts(32), ts(40));
    if t3 == 0 {
        return Err(NtpError::BadReply("no transmit timestamp"));
    }
    let (t2, t3) = (ntp_to_unix_ns(t2), ntp_to_unix_ns(t3));
    Ok(Sample {
        offset_ns: ((t2 - t1_ns) + (t3 - t4_ns)) / 2,
        delay_ns: (t4_ns - t1_ns) - (t3 - t2),
        stratum,
        server: SocketAddr::from(([0, 0, 0, 0], 0)),
    })
}

/// Steps CLOCK_REALTIME by `offset_ns` if it exceeds [`STEP_THRESHOLD`]; returns whether it
/// did.
pub fn step(offset_ns: i128) -> io::Result<bool> {
    if offset_ns.unsigned_abs() < STEP_THRESHOLD.as_nanos() {
        return Ok(false);
    }
    let target = unix_ns(SystemTime::now()) + offset_ns;
    let ts = rustix::time::Timespec {
        tv_sec: target.div_euclid(1_000_000_000) as i64,
        tv_nsec: target.rem_euclid(1_000_000_000) as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts)?;
    Ok(true)
}

/// The reply a server at stratum `stratum` whose clock reads `now + offset` gives to `req`
/// (`None` for anything that is not a client request).
pub fn reply(req: &[u8], now: SystemTime, stratum: u8) -> Option<[u8; PACKET_LEN]> {
    if req.len() < PACKET_LEN || req[0] & 7 != 3 {
        return None;
    }
    let mut r = [0u8; PACKET_LEN];
    let version = ((req[0] >> 3) & 7).clamp(1, 4);
    r[0] = (version << 3) | 4;
    r[1] = stratum;
    r[2] = req[2];
    r[3] = 0xec; // precision 2^-20 s
    r[12..16].copy_from_slice(b"LOCL");
    let t = to_ntp(now);
    r[16..24].copy_from_slice(&t.to_be_bytes()); // reference
    r[24..32].copy_from_slice(&req[40..48]); // origin = the client's transmit
    r[32..40].copy_from_slice(&t.to_be_bytes()); // receive
    r[40..48].copy_from_slice(&to_ntp(SystemTime::now().max(now)).to_be_bytes());
    Some(r)
}

/// Answers SNTP requests on `sock` with this host's clock shifted by `offset` (for tests
/// and the boot test's host side) while `go_on(answered so far)` returns true (asked after
/// each answer and every 100 ms); returns the number answered.
pub fn serve(
    sock: &UdpSocket,
    offset: Duration,
    mut go_on: impl FnMut(u64) -> bool,
) -> io::Result<u64> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut answered = 0u64;
    let mut buf = [0u8; 512];
    while go_on(answered) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        if let Some(r) = reply(&buf[..n], SystemTime::now() + offset, 2) {
            sock.send_to(&r, from)?;
            answered += 1;
        }
    }
    Ok(answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let back = ntp_to_unix_ns(to_ntp(t));
        assert!((back - 1_700_000_000_123_456_789i128).abs() < 2);
    }

    #[test]
    fn offset_against_a_local_server_ahead_by_an_hour() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            serve(&server, Duration::from_secs(3600), |_| {
                !s2.load(std::sync::atomic::Ordering::Relaxed)
            })
        });
        let sample = query(&addr.to_string(), Duration::from_secs(5)).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(t.join().unwrap().unwrap(), 1);
        let err = sample.offset_ns - 3_600_000_000_000;
        assert!(err.abs() < 1_000_000_000, "offset {} ns", sample.offset_ns);
        assert_eq!(sample.stratum, 2);
        assert_eq!(sample.server, addr);
    }

    #[test]
    fn replies_are_checked() {
        let t1 = SystemTime::now();
        let origin = to_ntp(t1);
        let mut req = [0u8; PACKET_LEN];
        req[0] = 0x23;
        req[40..48].copy_from_slice(&origin.to_be_bytes());
        let good = reply(&req, t1, 3).unwrap();
        let ns = unix_ns(t1);
        assert!(parse_reply(&good, origin, ns, ns).is_ok());
        assert!(matches!(
            parse_reply(&good, origin + 1, ns, ns),
            Err(NtpError::BadReply(_))
        ));
        let mut kod = good;
        kod[1] = 0;
        assert!(matches!(
            parse_reply(&kod, origin, ns, ns),
            Err(NtpError::Unsynchronised(0))
        ));
        assert!(parse_reply(&good[..20], origin, ns, ns).is_err());
        assert!(
            reply(&good, t1, 2).is_none(),
            "a server reply is not answered"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_reply_bytes_are_handled(b in proptest::collection::vec(proptest::num::u8::ANY, 0..100), origin: u64) {
            let _ = parse_reply(&b, origin, 0, 1);
            let _ = reply(&b, SystemTime::now(), 2);
        }
    }
}
