//! The DHCP client against a test double of a DHCP server over loopback UDP (a real server
//! needs ports 67/68 and a broadcast domain; the boot test runs the client against QEMU's
//! built-in server for that). The double answers by the RFC: OFFER to DISCOVER, ACK or NAK
//! to REQUEST, and records what it was sent.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_init::dhcp::wire::{Kind, Message, MAX_LEN};
use compushare_init::dhcp::{Client, Dest, DhcpError, Link};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 50);

/// The client's side: everything goes to the double, whatever the destination (recorded).
struct LoopLink {
    sock: UdpSocket,
    server: SocketAddr,
    sent_to: Vec<Dest>,
}

impl Link for LoopLink {
    fn send(&mut self, to: Dest, bytes: &[u8]) -> std::io::Result<()> {
        self.sent_to.push(to);
        self.sock.send_to(bytes, self.server).map(|_| ())
    }
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        compushare_init::dhcp::client::recv_timeout(&self.sock, buf, timeout)
    }
}

/// How the double behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// DISCOVERs to ignore before answering (retransmission test).
    drop_discovers: u32,
    /// Send an OFFER with the wrong xid before the right one.
    decoy: bool,
    /// NAK every REQUEST, with this reason.
    nak: Option<String>,
}

/// Received client messages, in order.
type Seen = Arc<Mutex<Vec<Message>>>;

fn server(b: Behaviour) -> (SocketAddr, Seen) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let Ok(m) = Message::decode(&buf[..n]) else {
                continue;
            };
            seen2.lock().unwrap().push(m.clone());
            let mut r = Message::client(Kind::Offer, m.xid, m.chaddr);
            r.op = 2;
            r.server_id = Some(SERVER);
            r.yiaddr = OFFERED;
            r.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
            r.routers = vec![SERVER];
            r.dns = vec![Ipv4Addr::new(10, 9, 0, 53)];
            r.ntp = vec![Ipv4Addr::new(10, 9, 0, 123)];
            r.domain = Some("farm.test".into());
            r.lease_s = Some(600);
            match m.kind {
                Kind::Discover => {
                    if b.drop_discovers > 0 {
                        b.drop_discovers -= 1;
                        continue;
                    }
                    if b.decoy {
                        let mut d = r.clone();
                        d.xid ^= 1;
                        d.yiaddr = Ipv4Addr::new(10, 9, 0, 66);
                        send(&sock, &d, from);
                    }
                }
                Kind::Request => {
                    if let Some(reason) = &b.nak {
                        r.kind = Kind::Nak;
                        r.yiaddr = Ipv4Addr::UNSPECIFIED;
                        r.message = Some(reason.clone());
                    } else {
                        r.kind = Kind::Ack;
                    }
                }
                _ => continue,
            }
            send(&sock, &r, from);
        }
    });
    (addr, seen)
}

fn send(sock: &UdpSocket, m: &Message, to: SocketAddr) {
    let mut out = [0u8; MAX_LEN];
    let n = m.encode(&mut out).unwrap();
    sock.send_to(&out[..n], to).unwrap();
}

fn client(server: SocketAddr) -> Client<LoopLink> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    Client::new(
        LoopLink {
            sock,
            server,
            sent_to: Vec::new(),
        },
        MAC,
        Some("rig 7".into()),
    )
}

#[test]
fn acquires_a_lease_and_renews_it() {
    let (addr, seen) = server(Behaviour {
        decoy: true,
        ..Behaviour::default()
    });
    let mut c = client(addr);
    let lease = c.acquire(Instant::now() + Duration::from_secs(10)).unwrap();
    assert_eq!(
        lease.addr, OFFERED,
        "the decoy OFFER (wrong xid) is ignored"
    );
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.server, SERVER);
    assert_eq!(lease.routers, vec![SERVER]);
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 9, 0, 53)]);
    assert_eq!(lease.ntp, vec![Ipv4Addr::new(10, 9, 0, 123)]);
    assert_eq!(lease.domain.as_deref(), Some("farm.test"));
    assert_eq!(lease.length, Some(Duration::from_secs(600)));
    assert_eq!(
        (lease.t1, lease.t2),
        (
            Some(Duration::from_secs(300)),
            Some(Duration::from_secs(525))
        )
    );
    {
        let seen = seen.lock().unwrap();
        let kinds: Vec<Kind> = seen.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, vec![Kind::Discover, Kind::Request]);
        let req = &seen[1];
        assert_eq!(req.requested_ip, Some(OFFERED));
        assert_eq!(req.server_id, Some(SERVER));
        assert_eq!(
            req.xid, seen[0].xid,
            "REQUEST keeps the DISCOVER's transaction"
        );
        assert!(req.broadcast);
        assert_eq!(req.hostname.as_deref(), Some("rig-7"));
    }
    // RENEWING: unicast to the server, ciaddr set, no requested-IP or server-id options.
    let renewed = c
        .extend(
            &lease,
            Dest::Server(lease.server),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap()
        .expect("renewed");
    assert_eq!(renewed.addr, OFFERED);
    assert!(renewed.same_config(&lease));
    let seen = seen.lock().unwrap();
    let renew = seen.last().unwrap();
    assert_eq!(renew.kind, Kind::Request);
    assert_eq!(renew.ciaddr, OFFERED);
    assert_eq!((renew.requested_ip, renew.server_id), (None, None));
    assert!(!renew.broadcast);
    assert_eq!(
        c.link_mut().sent_to,
        vec![Dest::Broadcast, Dest::Broadcast, Dest::Server(SERVER)]
    );
}

#[test]
fn retransmits_a_discover_nobody_answered() {
    let (addr, seen) = server(Behaviour {
        drop_discovers: 1,
        ..Behaviour::default()
    });
    let mut c = client(addr);
    let lease = c.acquire(Instant::now() + Duration::from_secs(20)).unwrap();
    assert_eq!(lease.addr, OFFERED);
    let kinds: Vec<Kind> = seen.lock().unwrap().iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![Kind::Discover, Kind::Discover, Kind::Request]);
}

#[test]
fn a_nak_is_an_error_with_the_servers_reason() {
    let (addr, _) = server(Behaviour {
        nak: Some("address in use".into()),
        ..Behaviour::default()
    });
    let mut c = client(addr);
    match c.acquire(Instant::now() + Duration::from_secs(10)) {
        Err(DhcpError::Nak { server, reason }) => {
            assert_eq!(server, SERVER);
            assert_eq!(reason.as_deref(), Some("address in use"));
        }
        other => panic!("expected a NAK, got {other:?}"),
    }
}

#[test]
fn gives_up_at_the_deadline_when_nobody_answers() {
    let (addr, _) = server(Behaviour {
        drop_discovers: u32::MAX,
        ..Behaviour::default()
    });
    let mut c = client(addr);
    let started = Instant::now();
    let r = c.acquire(Instant::now() + Duration::from_millis(500));
    assert!(matches!(r, Err(DhcpError::NoAnswer)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
