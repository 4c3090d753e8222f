//! DHCP messages (RFC 2131 / RFC 2132) as bytes and as a representation.
//!
//! [`Message`] is what the client reads and writes: the fixed BOOTP header fields it uses and
//! the options it understands, parsed into typed fields. [`Message::decode`] accepts any bytes
//! and returns a message or a [`WireError`], never panics and never allocates by the peer's
//! say-so (options are read from the received datagram in place; lists are capped).
//! [`Message::encode`] writes into a caller-sized buffer.

use std::net::Ipv4Addr;

/// BOOTP's fixed header is 236 bytes, then the 4-byte magic cookie.
pub const HEADER_LEN: usize = 236;
/// Options start here.
pub const OPTIONS_AT: usize = HEADER_LEN + 4;
/// The cookie that says "DHCP options follow" (RFC 2132 section 2).
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// BOOTP's minimum message (some relays drop shorter ones): encode pads up to it.
pub const MIN_LEN: usize = 300;
/// The largest message we send or accept (RFC 2131 minimum every host must take).
pub const MAX_LEN: usize = 576;
/// Most servers kept from a list option (routers, DNS, NTP).
pub const MAX_LIST: usize = 4;

/// Options requested from the server (option 55).
pub const REQUESTED: [u8; 10] = [1, 3, 6, 12, 15, 26, 42, 51, 58, 59];

/// DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Discover,
            2 => Kind::Offer,
            3 => Kind::Request,
            4 => Kind::Decline,
            5 => Kind::Ack,
            6 => Kind::Nak,
            7 => Kind::Release,
            8 => Kind::Inform,
            _ => return None,
        })
    }
}

/// Why bytes are not a DHCP message we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than the header and cookie.
    #[error("{0} bytes is shorter than a DHCP message")]
    Short(usize),
    /// Not a BOOTP reply/request over Ethernet (op, htype or hlen wrong).
    #[error("not a BOOTP message over Ethernet")]
    NotEthernetBootp,
    /// The magic cookie is missing: plain BOOTP, which we do not speak.
    #[error("no DHCP magic cookie")]
    NoCookie,
    /// An option runs past the end of the message.
    #[error("option {0} runs past the end of the message")]
    Truncated(u8),
    /// Option 53 is absent or unknown.
    #[error("no valid DHCP message type")]
    NoKind,
    /// The encode buffer is too small.
    #[error("buffer of {0} bytes too small for the message")]
    BufferTooSmall(usize),
}

/// A DHCP message: the header fields the client uses and the options it understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 1: client to server; 2: server to client.
    pub op: u8,
    pub xid: u32,
    /// Seconds since the client began (DISCOVER/REQUEST).
    pub secs: u16,
    /// Ask the server to broadcast its reply (we cannot receive unicast before we have an
    /// address).
    pub broadcast: bool,
    /// Our current address (RENEWING, REBINDING), else 0.
    pub ciaddr: Ipv4Addr,
    /// The address offered or assigned.
    pub yiaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub kind: Kind,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 51, seconds (`u32::MAX`: infinite).
    pub lease_s: Option<u32>,
    /// Option 58 (T1), seconds.
    pub renew_s: Option<u32>,
    /// Option 59 (T2), seconds.
    pub rebind_s: Option<u32>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3 (first few).
    pub routers: Vec<Ipv4Addr>,
    /// Option 6 (first few).
    pub dns: Vec<Ipv4Addr>,
    /// Option 42 (first few).
    pub ntp: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 12 (sent by the client).
    pub hostname: Option<String>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 56: the server's reason for a NAK.
    pub message: Option<String>,
}

impl Message {
    /// A client message of `kind` with no options beyond the type.
    pub fn client(kind: Kind, xid: u32, chaddr: [u8; 6]) -> Message {
        Message {
            op: 1,
            xid,
            secs: 0,
            broadcast: true,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            kind,
            server_id: None,
            requested_ip: None,
            lease_s: None,
            renew_s: None,
            rebind_s: None,
            subnet_mask: None,
            routers: Vec::new(),
            dns: Vec::new(),
            ntp: Vec::new(),
            domain: None,
            hostname: None,
            mtu: None,
            message: None,
        }
    }

    /// Parses a received datagram.
    pub fn decode(b: &[u8]) -> Result<Message, WireError> {
        if b.len() < OPTIONS_AT {
            return Err(WireError::Short(b.len()));
        }
        if !(b[0] == 1 || b[0] == 2) || b[1] != 1 || b[2] != 6 {
            return Err(WireError::NotEthernetBootp);
        }
        if b[HEADER_LEN..OPTIONS_AT] != MAGIC {
            return Err(WireError::NoCookie);
        }
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&b[28..34]);
        let mut m = Message::client(
            Kind::Discover,
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            chaddr,
        );
        m.op = b[0];
        m.secs = u16::from_be_bytes([b[8], b[9]]);
        m.broadcast = b[10] & 0x80 != 0;
        m.ciaddr = ip(12);
        m.yiaddr = ip(16);
        let mut kind = None;
        let mut at = OPTIONS_AT;
        while at < b.len() {
            let code = b[at];
            if code == 0 {
                at += 1;
                continue;
            }
            if code == 255 {
                break;
            }
            let len = *b.get(at + 1).ok_or(WireError::Truncated(code))? as usize;
            let v = b
                .get(at + 2..at + 2 + len)
                .ok_or(WireError::Truncated(code))?;
            at += 2 + len;
            let one_ip = || (v.len() == 4).then(|| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
            let u32v = || v.try_into().ok().map(u32::from_be_bytes);
            let ips = || {
                v.chunks_exact(4)
                    .take(MAX_LIST)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect::<Vec<_>>()
            };
            let text = || {
                std::str::from_utf8(v)
                    .ok()
                    .map(|s| s.trim_end_matches('\0').to_owned())
            };
            match code {
                53 if v.len() == 1 => kind = Kind::from_u8(v[0]),
                54 => m.server_id = one_ip(),
                50 => m.requested_ip = one_ip(),
                51 => m.lease_s = u32v(),
                58 => m.renew_s = u32v(),
                59 => m.rebind_s = u32v(),
                1 => m.subnet_mask = one_ip(),
                3 => m.routers = ips(),
                6 => m.dns = ips(),
                42 => m.ntp = ips(),
                15 => m.domain = text(),
                12 => m.hostname = text(),
                26 => m.mtu = v.try_into().ok().map(u16::from_be_bytes),
                56 => m.message = text(),
                _ => {}
            }
        }
        m.kind = kind.ok_or(WireError::NoKind)?;
        Ok(m)
    }

    /// Writes the message into `buf`, returning its length (at least [`MIN_LEN`]).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer { buf, at: 0 };
        w.put(&[self.op, 1, 6, 0])?;
        w.put(&self.xid.to_be_bytes())?;
        w.put(&self.secs.to_be_bytes())?;
        w.put(&[if self.broadcast { 0x80 } else { 0 }, 0])?;
        w.put(&self.ciaddr.octets())?;
        w.put(&self.yiaddr.octets())?;
        w.put(&[0; 8])?; // siaddr, giaddr
        w.put(&self.chaddr)?;
        w.put(&[0; 10 + 64 + 128])?; // chaddr padding, sname, file
        w.put(&MAGIC)?;
        w.option(53, &[self.kind as u8])?;
        if let Some(ip) = self.requested_ip {
            w.option(50, &ip.octets())?;
        }
        if let Some(ip) = self.server_id {
            w.option(54, &ip.octets())?;
        }
        if self.op == 1 {
            // Client identifier: hardware type 1 and the MAC (RFC 2132 9.14).
            let mut id = [1u8; 7];
            id[1..].copy_from_slice(&self.chaddr);
            w.option(61, &id)?;
            w.option(57, &(MAX_LEN as u16).to_be_bytes())?;
            if matches!(self.kind, Kind::Discover | Kind::Request) {
                w.option(55, &REQUESTED)?;
            }
        }
        if let Some(h) = &self.hostname {
            w.option(12, &h.as_bytes()[..h.len().min(63)])?;
        }
        for (code, v) in [(51, self.lease_s), (58, self.renew_s), (59, self.rebind_s)] {
            if let Some(v) = v {
                w.option(code, &v.to_be_bytes())?;
            }
        }
        if let Some(m) = self.subnet_mask {
            w.option(1, &m.octets())?;
        }
        for (code, list) in [(3, &self.routers), (6, &self.dns), (42, &self.ntp)] {
            if !list.is_empty() {
                let bytes: Vec<u8> = list
                    .iter()
                    .take(MAX_LIST)
                    .flat_map(|i| i.octets())
                    .collect();
                w.option(code, &bytes)?;
            }
        }
        if let Some(d) = &self.domain {
            w.option(15, &d.as_bytes()[..d.len().min(255)])?;
        }
        if let Some(m) = &self.message {
            w.option(56, &m.as_bytes()[..m.len().min(255)])?;
        }
        w.put(&[255])?;
        while w.at < MIN_LEN {
            w.put(&[0])?;
        }
        Ok(w.at)
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let end = self.at + bytes.len();
        let dst = self
            .buf
            .get_mut(self.at..end)
            .ok_or(WireError::BufferTooSmall(end))?;
        dst.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    fn option(&mut self, code: u8, v: &[u8]) -> Result<(), WireError> {
        self.put(&[code, v.len() as u8])?;
        self.put(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Message {
        let mut m = Message::client(Kind::Offer, 0xdead_beef, [2, 0, 0, 0, 0, 1]);
        m.op = 2;
        m.yiaddr = Ipv4Addr::new(10, 0, 2, 15);
        m.server_id = Some(Ipv4Addr::new(10, 0, 2, 2));
        m.lease_s = Some(86400);
        m.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
        m.routers = vec![Ipv4Addr::new(10, 0, 2, 2)];
        m.dns = vec![Ipv4Addr::new(10, 0, 2, 3)];
        m.ntp = vec![Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 2, 4)];
        m.domain = Some("farm.lan".into());
        m.mtu = None;
        m
    }

    #[test]
    fn round_trips() {
        let mut buf = [0u8; MAX_LEN];
        for m in [offer(), {
            let mut r = Message::client(Kind::Request, 7, [1, 2, 3, 4, 5, 6]);
            r.requested_ip = Some(Ipv4Addr::new(10, 0, 2, 15));
            r.server_id = Some(Ipv4Addr::new(10, 0, 2, 2));
            r.hostname = Some("rig-7".into());
            r
        }] {
            let n = m.encode(&mut buf).unwrap();
            assert!(n >= MIN_LEN);
            assert_eq!(Message::decode(&buf[..n]).unwrap(), m);
        }
    }

    #[test]
    fn client_messages_carry_the_rfc_fields() {
        let mut buf = [0u8; MAX_LEN];
        let d = Message::client(Kind::Discover, 0x0102_0304, [2, 0, 0, 0, 0, 9]);
        let n = d.encode(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[1, 1, 6, 0]);
        assert_eq!(&buf[4..8], &[1, 2, 3, 4]);
        assert_eq!(buf[10], 0x80, "broadcast flag");
        assert_eq!(&buf[28..34], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&buf[236..240], &MAGIC);
        assert_eq!(&buf[240..243], &[53, 1, 1]);
        assert_eq!(buf[n - 1], 0, "padded to the BOOTP minimum");
        let opts = &buf[240..n];
        assert!(opts.windows(2).any(|w| w == [55, REQUESTED.len() as u8]));
    }

    #[test]
    fn refuses_what_is_not_dhcp() {
        assert_eq!(Message::decode(&[0; 10]), Err(WireError::Short(10)));
        let mut buf = [0u8; MAX_LEN];
        let n = offer().encode(&mut buf).unwrap();
        let mut b = buf;
        b[236] = 0;
        assert_eq!(Message::decode(&b[..n]), Err(WireError::NoCookie));
        let mut b = buf;
        b[2] = 16;
        assert_eq!(Message::decode(&b[..n]), Err(WireError::NotEthernetBootp));
        // An option whose length runs past the end.
        let mut b = buf[..OPTIONS_AT + 2].to_vec();
        b[OPTIONS_AT] = 51;
        b[OPTIONS_AT + 1] = 4;
        assert_eq!(Message::decode(&b), Err(WireError::Truncated(51)));
        assert_eq!(
            Message::client(Kind::Discover, 1, [0; 6]).encode(&mut [0u8; 100]),
            Err(WireError::BufferTooSmall(HEADER_LEN))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn any_options_after_a_valid_header_decode_without_panic(
            opts in proptest::collection::vec(proptest::num::u8::ANY, 0..400)
        ) {
            let mut buf = [0u8; MAX_LEN];
            let n = offer().encode(&mut buf).unwrap();
            let mut b = buf[..OPTIONS_AT].to_vec();
            b.extend_from_slice(&opts);
            let _ = n;
            let _ = Message::decode(&b);
        }
    }
}
