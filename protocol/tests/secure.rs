//! The Noise channel: right key, wrong key, truncated and stalled handshakes, and sealed frames
//! that are tampered with, replayed, reordered or dropped in flight; version refusal; real TCP.

use std::time::Duration;

use compushare_protocol::frame::{read_frame_async, write_frame_async, FrameBuf};
use compushare_protocol::limits::MAX_FRAME;
use compushare_protocol::msg::{
    self, refusal, CodecError, Heartbeat, ManagerToRig, Refusal, RigHello, RigToManager,
};
use compushare_protocol::secure::net::{accept_tcp, connect_tcp, with_timeout};
use compushare_protocol::secure::{accept, connect, ChannelError, Identity, SecureChannel};
use embedded_io_adapters::tokio_1::FromTokio;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

type Pipe = SecureChannel<FromTokio<ReadHalf<DuplexStream>>, FromTokio<WriteHalf<DuplexStream>>>;

fn ends(
    s: DuplexStream,
) -> (
    FromTokio<ReadHalf<DuplexStream>>,
    FromTokio<WriteHalf<DuplexStream>>,
) {
    let (r, w) = tokio::io::split(s);
    (FromTokio::new(r), FromTokio::new(w))
}

fn hello(version: u16) -> RigToManager {
    RigToManager::Hello(RigHello {
        version,
        firmware: "0.1.0".into(),
        name: "rig-7".into(),
        payout: [7; 32],
        devices: Default::default(),
        farm: None,
        sheet: None,
    })
}

fn heartbeat(uptime_s: u64) -> RigToManager {
    RigToManager::Heartbeat(Heartbeat {
        uptime_s,
        devices: Default::default(),
        vault_used: 1,
        vault_slots: 8,
    })
}

const LIMIT: Duration = Duration::from_secs(5);

/// A client and server joined directly by a pipe.
async fn pair(
    client: &Identity,
    server: &Identity,
    pinned: [u8; 32],
) -> (Result<Pipe, ChannelError>, Result<Pipe, ChannelError>) {
    let (a, b) = tokio::io::duplex(MAX_FRAME * 2);
    let (ar, aw) = ends(a);
    let (br, bw) = ends(b);
    tokio::join!(
        with_timeout(LIMIT, connect(ar, aw, client, &pinned)),
        with_timeout(LIMIT, accept(br, bw, server))
    )
}

#[tokio::test]
async fn right_key_connects_and_learns_identities() {
    let (client, server) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (c, s) = pair(&client, &server, server.public()).await;
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    assert_eq!(c.peer(), server.public());
    assert_eq!(s.peer(), client.public());
    c.send(&hello(msg::PROTOCOL_VERSION)).await.unwrap();
    assert_eq!(
        *s.recv_hello::<RigToManager>().await.unwrap(),
        hello(msg::PROTOCOL_VERSION)
    );
    let refused = ManagerToRig::Refused(Refusal::new(refusal::UNAVAILABLE, "maintenance"));
    s.send(&refused).await.unwrap();
    assert_eq!(*c.recv::<ManagerToRig>().await.unwrap(), refused);
}

#[tokio::test]
async fn wrong_pinned_key_fails_with_both_keys_named() {
    let (client, server, other) = (
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
    );
    let (c, s) = pair(&client, &server, other.public()).await;
    match c {
        Err(ChannelError::WrongPeerKey { expected, got }) => {
            assert_eq!(expected, other.public());
            assert_eq!(got, server.public());
            let text = ChannelError::WrongPeerKey { expected, got }.to_string();
            assert!(
                text.contains(&compushare_protocol::hex::encode(&got)),
                "{text}"
            );
        }
        other => panic!("expected WrongPeerKey, got {other:?}"),
    }
    // The server never learns the client's identity and sees the connection end.
    assert!(
        matches!(s, Err(ChannelError::Closed | ChannelError::Truncated)),
        "{s:?}"
    );
}

#[tokio::test]
async fn truncated_handshake_is_an_error_not_a_hang() {
    let server = Identity::generate().unwrap();
    // A peer that sends half of a first message and hangs up.
    let (a, b) = tokio::io::duplex(4096);
    let (mut ar, mut aw) = ends(a);
    let (br, bw) = ends(b);
    let srv = tokio::spawn(async move {
        with_timeout(LIMIT, accept(br, bw, &server))
            .await
            .map(|_| ())
    });
    use embedded_io_async::Write;
    aw.write_all(&[0, 32, 1, 2, 3]).await.unwrap();
    drop(aw);
    let _ = &mut ar;
    drop(ar);
    assert!(matches!(srv.await.unwrap(), Err(ChannelError::Truncated)));

    // A responder that answers with garbage in place of its handshake message.
    let client = Identity::generate().unwrap();
    let (a, b) = tokio::io::duplex(4096);
    let (ar, aw) = ends(a);
    let (mut br, mut bw) = ends(b);
    let cli = tokio::spawn(async move {
        with_timeout(LIMIT, connect(ar, aw, &client, &[1; 32]))
            .await
            .map(|_| ())
    });
    let mut buf: Box<FrameBuf> = Box::new([0; MAX_FRAME]);
    read_frame_async(&mut br, &mut buf).await.unwrap();
    write_frame_async(&mut bw, &[0xAA; 96]).await.unwrap();
    assert!(matches!(
        cli.await.unwrap(),
        Err(ChannelError::Handshake(_))
    ));
}

#[tokio::test]
async fn stalled_handshake_times_out() {
    let client = Identity::generate().unwrap();
    let (a, _b) = tokio::io::duplex(4096); // the other end never answers
    let (ar, aw) = ends(a);
    let limit = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let result = with_timeout(limit, connect(ar, aw, &client, &[1; 32])).await;
    assert!(matches!(result, Err(ChannelError::Timeout(d)) if d == limit));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// What the relay does to client->server frames after the handshake (frame 0 is the first
/// sealed frame).
#[derive(Clone, Copy)]
enum Attack {
    Tamper(usize),
    Replay(usize),
    Swap(usize),
    Drop(usize),
}

/// Client and server joined through a relay that applies `attack` to the client's sealed
/// frames; returns what the server receives for each of `n` heartbeats the client sends.
async fn through_relay(attack: Attack, n: u64) -> Vec<Result<RigToManager, String>> {
    let (client, server) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (a, relay_c) = tokio::io::duplex(MAX_FRAME * 4);
    let (relay_s, b) = tokio::io::duplex(MAX_FRAME * 4);
    let (mut rc_r, mut rc_w) = ends(relay_c);
    let (mut rs_r, mut rs_w) = ends(relay_s);
    // Server -> client: pass through.
    tokio::spawn(async move {
        let mut buf: Box<FrameBuf> = Box::new([0; MAX_FRAME]);
        while let Ok(f) = read_frame_async(&mut rs_r, &mut buf).await {
            if write_frame_async(&mut rc_w, f).await.is_err() {
                break;
            }
        }
    });
    // Client -> server: two handshake frames pass, then the attack.
    tokio::spawn(async move {
        let mut buf: Box<FrameBuf> = Box::new([0; MAX_FRAME]);
        let mut index = 0usize;
        let mut held: Option<Vec<u8>> = None;
        let mut seen = 0usize;
        while let Ok(f) = read_frame_async(&mut rc_r, &mut buf).await {
            let mut f = f.to_vec();
            seen += 1;
            if seen <= 2 {
                let _ = write_frame_async(&mut rs_w, &f).await;
                continue;
            }
            let mut out = vec![];
            match attack {
                Attack::Tamper(i) if i == index => {
                    let mid = f.len() / 2;
                    f[mid] ^= 0x01;
                    out.push(f);
                }
                Attack::Replay(i) if i == index => {
                    out.push(f.clone());
                    out.push(f);
                }
                Attack::Swap(i) if i == index => held = Some(f),
                Attack::Swap(i) if i + 1 == index => {
                    out.push(f);
                    out.extend(held.take());
                }
                Attack::Drop(i) if i == index => {}
                _ => out.push(f),
            }
            index += 1;
            for f in out {
                let _ = write_frame_async(&mut rs_w, &f).await;
            }
        }
    });
    let (ar, aw) = ends(a);
    let (br, bw) = ends(b);
    let pinned = server.public();
    let (c, s) = tokio::join!(connect(ar, aw, &client, &pinned), accept(br, bw, &server));
    let (mut c, s) = (c.unwrap(), s.unwrap());
    let (mut reader, _writer) = s.split();
    for i in 0..n {
        c.send(&heartbeat(i)).await.unwrap();
    }
    let mut got = vec![];
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_millis(500), reader.recv::<RigToManager>()).await
        {
            Ok(r) => got.push(r.map(|m| *m).map_err(|e| format!("{e:?}"))),
            Err(_) => break,
        }
    }
    got
}

#[tokio::test]
async fn untouched_relay_delivers_everything() {
    let got = through_relay(Attack::Tamper(usize::MAX), 4).await;
    assert_eq!(got, (0..4).map(|i| Ok(heartbeat(i))).collect::<Vec<_>>());
}

#[tokio::test]
async fn tampered_frame_is_rejected_and_closes_the_session() {
    let got = through_relay(Attack::Tamper(1), 4).await;
    assert_eq!(got[0], Ok(heartbeat(0)));
    assert_eq!(got[1], Err("Decrypt".into()));
    assert!(
        got[2..].iter().all(|r| r == &Err("Poisoned".to_string())),
        "{got:?}"
    );
}

#[tokio::test]
async fn replayed_frame_is_rejected() {
    let got = through_relay(Attack::Replay(0), 3).await;
    assert_eq!(got[0], Ok(heartbeat(0)));
    assert_eq!(got[1], Err("Decrypt".into()));
}

#[tokio::test]
async fn reordered_frames_are_rejected() {
    let got = through_relay(Attack::Swap(0), 3).await;
    assert_eq!(got[0], Err("Decrypt".into()));
}

#[tokio::test]
async fn dropped_frame_is_detected() {
    let got = through_relay(Attack::Drop(1), 3).await;
    assert_eq!(got[0], Ok(heartbeat(0)));
    assert_eq!(got[1], Err("Decrypt".into()));
}

#[tokio::test]
async fn unknown_version_gets_a_refusal_the_old_peer_can_read() {
    let (client, server) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (c, s) = pair(&client, &server, server.public()).await;
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    c.send(&hello(99)).await.unwrap();
    let err = s.recv_hello::<RigToManager>().await.unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::Codec(CodecError::UnsupportedVersion { got: 99, .. })
        ),
        "{err:?}"
    );
    s.send(&ManagerToRig::Refused(Refusal::new(
        refusal::UNSUPPORTED_VERSION,
        &err.to_string(),
    )))
    .await
    .unwrap();
    match *c.recv::<ManagerToRig>().await.unwrap() {
        ManagerToRig::Refused(r) => {
            assert_eq!(r.code, refusal::UNSUPPORTED_VERSION);
            assert_eq!(
                (r.min_version, r.max_version),
                (msg::MIN_PROTOCOL_VERSION, msg::PROTOCOL_VERSION)
            );
            assert!(r.reason.contains("version 99"), "{}", r.reason);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    let (client, server) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (c, s) = pair(&client, &server, server.public()).await;
    let (mut cr, mut cw) = c.unwrap().split();
    let (mut sr, mut sw) = s.unwrap().split();
    let echo = tokio::spawn(async move {
        for _ in 0..100 {
            let m: RigToManager = *sr.recv().await.unwrap();
            if let RigToManager::Heartbeat(h) = m {
                sw.send(&ManagerToRig::Cancel {
                    assignment: compushare_protocol::types::AssignmentId(h.uptime_s),
                })
                .await
                .unwrap();
            }
        }
    });
    let sender = tokio::spawn(async move {
        for i in 0..100 {
            cw.send(&heartbeat(i)).await.unwrap();
        }
    });
    for i in 0..100 {
        let m: ManagerToRig = *cr.recv().await.unwrap();
        assert_eq!(
            m,
            ManagerToRig::Cancel {
                assignment: compushare_protocol::types::AssignmentId(i)
            }
        );
    }
    sender.await.unwrap();
    echo.await.unwrap();
}

#[tokio::test]
async fn tcp_loopback_with_pinned_key() {
    let (client, server) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_pub = server.public();
    let srv = tokio::spawn(async move {
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            if let Ok(mut ch) = accept_tcp(stream, &server, LIMIT).await {
                let m: RigToManager = *ch.recv_hello().await.unwrap();
                assert_eq!(m, hello(msg::PROTOCOL_VERSION));
                return ch.peer();
            }
        }
        panic!("no good session");
    });
    let wrong = connect_tcp(addr, &client, &[9; 32], LIMIT).await;
    assert!(matches!(wrong, Err(ChannelError::WrongPeerKey { .. })));
    let mut ch = connect_tcp(addr, &client, &server_pub, LIMIT)
        .await
        .unwrap();
    ch.send(&hello(msg::PROTOCOL_VERSION)).await.unwrap();
    assert_eq!(srv.await.unwrap(), client.public());
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let client = Identity::generate().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = connect_tcp(("127.0.0.1", port), &client, &[1; 32], LIMIT).await;
    assert!(
        matches!(
            r,
            Err(ChannelError::Io(embedded_io::ErrorKind::ConnectionRefused))
        ),
        "{r:?}"
    );
}
