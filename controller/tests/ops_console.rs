//! The operator console: the shell (`console::answer`) against a status snapshot and the
//! rig-core test double, the serial door over a real pty, and the network door over a real
//! Noise session (allowed key, refused key, replayed and altered frames).

mod ops_common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use compushare_controller::command::Command;
use compushare_controller::console::{self, CUT_MARKER};
use compushare_controller::ops;
use compushare_protocol::limits::CONSOLE_REPLY;
use compushare_protocol::msg::{refusal, OperatorToRig, RigToOperator, PROTOCOL_VERSION};
use compushare_protocol::secure::net::connect_tcp_to;
use compushare_protocol::secure::{ChannelError, Identity};
use compushare_protocol::types::Role;
use ops_common::{sample_status, wait_for, RigCoreDouble};

#[tokio::test]
async fn read_only_commands_answer_from_the_snapshot() {
    let core = RigCoreDouble::start();
    let s = sample_status();
    let a = |l: &'static str| {
        let (s, tx) = (s.clone(), core.tx.clone());
        async move { console::answer(l.as_bytes(), &s, &tx).await }
    };
    let r = a("status").await;
    assert!(r.ok);
    for want in [
        "rig-7",
        &"ab".repeat(32),
        "pool.example",
        "1 mining at 2.50 GH/s",
        "1 transport at 41.00 khist/s",
        "3/16",
        "1.234 sat",
    ] {
        assert!(r.text.contains(want), "status lacks {want:?}:\n{}", r.text);
    }
    let r = a("devices").await;
    assert!(r.text.contains("NVIDIA H200") && r.text.contains("65.4C") && r.text.contains("410W"));
    assert!(
        r.text.contains("HOT") && r.text.contains("transport"),
        "{}",
        r.text
    );
    let r = a("pools").await;
    assert!(r
        .text
        .contains("#1 stratum+tcp://pool.example:3333  [active]"));
    assert!(r.text.contains("down (connection refused)"), "{}", r.text);
    assert!(a("manager").await.text.contains("1 credit = 1 msat"));
    assert!(a("vault").await.text.contains("3 used of 16"));
    assert!(a("help").await.text.contains("pool add URL USER"));
    assert_eq!(a("").await.text, "");
    // None of these reached the rig core.
    assert!(core.seen().is_empty());

    let mut m = s.clone();
    m.maintenance = Some("rig.conf:3: MANAGER_KEY: expected 64 hex digits".into());
    let r = console::answer(b"status", &m, &core.tx).await;
    assert!(
        r.text.contains("MAINTENANCE MODE: rig.conf:3: MANAGER_KEY"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn changes_go_to_the_rig_core_and_its_answer_comes_back() {
    let core = RigCoreDouble::start();
    let s = sample_status();
    let r = console::answer(b"role 1 mine", &s, &core.tx).await;
    assert!(r.ok && r.text.contains("device 1"), "{r:?}");
    let r = console::answer(b"role all off", &s, &core.tx).await;
    assert!(r.ok && r.text.contains("all devices"), "{r:?}");
    let r = console::answer(b"role 5 auto", &s, &core.tx).await;
    assert!(!r.ok && r.text == "error: no device 5", "{r:?}");
    let r = console::answer(b"pool add stratum+tcp://p3:3333 w pw", &s, &core.tx).await;
    assert!(r.ok && r.text.contains("added pool 3"), "{r:?}");
    let r = console::answer(b"pool add http://x:1 w", &s, &core.tx).await;
    assert!(!r.ok && r.text.contains("bad pool URL"), "{r:?}");
    let r = console::answer(b"pool remove 9", &s, &core.tx).await;
    assert_eq!(r.text, "error: no pool 9");
    let r = console::answer(b"reboot", &s, &core.tx).await;
    assert!(r.ok && r.text == "rebooting");
    assert_eq!(
        core.seen(),
        [
            Command::Role {
                device: Some(1),
                role: Role::Mine
            },
            Command::Role {
                device: None,
                role: Role::Off
            },
            Command::Role {
                device: Some(5),
                role: Role::Auto
            },
            Command::PoolAdd {
                number: None,
                url: "stratum+tcp://p3:3333".into(),
                user: "w".into(),
                pass: "pw".into()
            },
            Command::PoolAdd {
                number: None,
                url: "http://x:1".into(),
                user: "w".into(),
                pass: String::new()
            },
            Command::PoolRemove { number: 9 },
            Command::Reboot,
        ]
    );
    // A bad line never reaches the rig core.
    let r = console::answer(b"role 1 dance", &s, &core.tx).await;
    assert!(!r.ok && r.text.contains("\"dance\""));
    assert_eq!(core.seen().len(), 7);
}

#[tokio::test]
async fn a_full_queue_answers_busy_and_a_gone_core_shutting_down() {
    let core = RigCoreDouble::start_gated(0);
    let s = Arc::new(sample_status());
    // The double holds the command it took; the queue (16) fills behind it; the rest are
    // answered "busy" at once rather than waiting.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let (s, tx) = (s.clone(), core.tx.clone());
        waiting.push(tokio::spawn(async move {
            console::answer(b"reboot", &s, &tx).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (done, held): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|w| w.is_finished());
    assert!(held.len() == 16 || held.len() == 17, "{} held", held.len());
    for w in done {
        assert_eq!(w.await.unwrap().text, "error: busy, try again");
    }
    core.gate.add_permits(100);
    for w in held {
        assert!(w.await.unwrap().ok);
    }
    let tx = core.tx.clone();
    drop(core);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = console::answer(b"reboot", &s, &tx).await;
    assert_eq!(r.text, "error: rig is shutting down");
}

#[tokio::test]
async fn log_shows_the_newest_lines_within_the_reply_limit() {
    let core = RigCoreDouble::start();
    let s = sample_status();
    for i in 0..300 {
        compushare_controller::info!("console log test line {i:03} {}", "y".repeat(60));
    }
    let r = console::answer(b"log 3", &s, &core.tx).await;
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.text);
    assert!(lines[2].contains("console log test line 299"));
    let r = console::answer(b"log 1000", &s, &core.tx).await;
    assert!(r.text.len() <= CONSOLE_REPLY && r.text.starts_with("[... older lines cut]"));
    assert!(r.text.ends_with(&format!("line 299 {}", "y".repeat(60))));
    assert!(!r.text.contains(CUT_MARKER));
}

// ---- serial console over a pty ----

use compushare_testkit::pty::read_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_console_over_a_pty() {
    let (mut master, slave) = compushare_testkit::pty::open().unwrap();
    let path = slave.clone();
    let ops_common::Running { h, core, .. } =
        ops_common::start(|c| c.serial_console = Some(path)).await;
    assert!(h.serial);

    let t = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        let lim = Duration::from_secs(20);
        assert!(
            read_until(&mut master, &mut seen, "rig-7> ", lim),
            "no prompt: {seen:?}"
        );
        // The port is raw 115200 8N1.
        let t = rustix::termios::tcgetattr(&master).unwrap();
        assert_eq!(t.output_speed(), 115_200);
        // Typed with a typo fixed by DEL, ended by CR: echo, then the answer with CRLF.
        master.write_all(b"statuz\x7fs\r").unwrap();
        assert!(
            read_until(
                &mut master,
                &mut seen,
                "vault     3/16 slots in use\r\n",
                lim
            ),
            "{seen:?}"
        );
        assert!(seen.contains("statuz\x08 \x08s\r\n"), "no echo: {seen:?}");
        // LF ends a line too; a change goes to the rig core.
        master.write_all(b"role 1 mine\n").unwrap();
        assert!(
            read_until(&mut master, &mut seen, "device 1 pinned to Mine", lim),
            "{seen:?}"
        );
        // A line over 256 bytes is refused with a message saying so.
        seen.clear();
        master.write_all(&[b'x'; 300]).unwrap();
        master.write_all(b"\r\n").unwrap();
        assert!(
            read_until(&mut master, &mut seen, "line of 300 bytes refused", lim),
            "{seen:?}"
        );
        assert!(seen.contains("at most 256 bytes"));
        // CRLF ends one line, not two (an empty line would add no error, only a prompt).
        master.write_all(b"help\r\n").unwrap();
        assert!(read_until(
            &mut master,
            &mut seen,
            "reboot                      restart",
            lim
        ));
        drop(master);
    });
    t.await.unwrap();
    assert_eq!(
        core.seen(),
        [Command::Role {
            device: Some(1),
            role: Role::Mine
        }]
    );
    let lines = h.stats.console_ok.load(Ordering::Relaxed);
    assert_eq!((lines, h.stats.console_err.load(Ordering::Relaxed)), (3, 1));
    // The master closed: the console sees a hang-up and keeps retrying, counted.
    assert!(
        wait_for(Duration::from_secs(10), || h
            .stats
            .serial_hangups
            .load(Ordering::Relaxed)
            >= 1)
        .await
    );
}

#[tokio::test]
async fn a_missing_serial_port_is_retried_not_fatal() {
    let r = ops_common::start(|c| c.serial_console = Some("/nonexistent/ttyS9".into())).await;
    assert!(r.h.stats.serial_open_errors.load(Ordering::Relaxed) >= 1);
    // /dev/null is no tty: counted as an open (configure) failure.
    let r = ops_common::start(|c| c.serial_console = Some("/dev/null".into())).await;
    assert!(r.h.stats.serial_open_errors.load(Ordering::Relaxed) >= 1);
}

// ---- network console ----

struct NetRig {
    h: ops::OpsHandles,
    core: RigCoreDouble,
    rig_key: [u8; 32],
    operator: Identity,
    _status: compushare_controller::status::StatusTx,
}

async fn net_rig() -> NetRig {
    let operator = Identity::generate().unwrap();
    let keys = vec![[9; 32], operator.public()];
    let r = ops_common::start(|c| {
        c.console_keys = keys;
        c.console_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    NetRig {
        rig_key: r.rig.public(),
        h: r.h,
        core: r.core,
        operator,
        _status: r.status,
    }
}

/// Connects (pinning `pin` if given) and sends Hello with `version`.
async fn hello(
    addr: std::net::SocketAddr,
    me: &Identity,
    pin: Option<&[u8; 32]>,
    version: u16,
) -> compushare_protocol::secure::net::TcpChannel {
    let mut ch = connect_tcp_to(addr, me, pin, Duration::from_secs(5))
        .await
        .unwrap();
    ch.send(&OperatorToRig::Hello { version }).await.unwrap();
    ch
}

fn line(request: u32, text: &str) -> OperatorToRig {
    OperatorToRig::Line {
        request,
        text: text.into(),
    }
}

#[tokio::test]
async fn network_console_with_an_allowed_key() {
    let r = net_rig().await;
    let addr = r.h.console_addr.unwrap();
    // Pinned to the rig's key.
    let mut ch = hello(addr, &r.operator, Some(&r.rig_key), PROTOCOL_VERSION).await;
    let RigToOperator::Welcome(w) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!("no welcome")
    };
    assert_eq!((w.name.as_str(), w.key), ("rig-7", r.rig_key));
    ch.send(&line(1, "devices")).await.unwrap();
    let RigToOperator::Reply(rep) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!()
    };
    assert!(rep.ok && rep.request == 1 && rep.text.contains("NVIDIA H200"));
    ch.send(&line(2, "role all transport")).await.unwrap();
    let RigToOperator::Reply(rep) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!()
    };
    assert!(
        rep.ok && rep.request == 2 && rep.text.contains("all devices"),
        "{rep:?}"
    );
    ch.send(&line(3, "nonsense")).await.unwrap();
    let RigToOperator::Reply(rep) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!()
    };
    assert!(!rep.ok && rep.text.contains("unknown command \"nonsense\""));
    assert_eq!(
        r.core.seen(),
        [Command::Role {
            device: None,
            role: Role::Transport
        }]
    );
    // Unpinned: the key is learnt from the handshake and stated again in Welcome.
    let mut ch = connect_tcp_to(addr, &r.operator, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ch.peer(), r.rig_key);
    ch.send(&OperatorToRig::Hello {
        version: PROTOCOL_VERSION,
    })
    .await
    .unwrap();
    assert!(matches!(
        *ch.recv::<RigToOperator>().await.unwrap(),
        RigToOperator::Welcome(_)
    ));
    // A wrongly pinned key fails the handshake on the client's side.
    let e = connect_tcp_to(addr, &r.operator, Some(&[1; 32]), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, ChannelError::WrongPeerKey { .. }));
    assert_eq!(r.h.stats.console_sessions.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn network_console_refuses_an_unknown_key_and_counts_it() {
    let r = net_rig().await;
    let stranger = Identity::generate().unwrap();
    let mut ch = hello(
        r.h.console_addr.unwrap(),
        &stranger,
        Some(&r.rig_key),
        PROTOCOL_VERSION,
    )
    .await;
    let RigToOperator::Refused(why) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!("not refused")
    };
    assert_eq!(why.code, refusal::NOT_ALLOWED);
    assert!(why.reason.contains("CONSOLE_KEYS"));
    // The rig closes the session; a line sent anyway is never answered nor executed.
    let _ = ch.send(&line(1, "reboot")).await;
    assert!(ch.recv::<RigToOperator>().await.is_err());
    assert_eq!(r.h.stats.console_refused_key.load(Ordering::Relaxed), 1);
    assert!(r.core.seen().is_empty());
    // An unsupported version is refused with its own code, readable by any version.
    let mut ch = hello(
        r.h.console_addr.unwrap(),
        &r.operator,
        None,
        PROTOCOL_VERSION + 50,
    )
    .await;
    let RigToOperator::Refused(why) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!()
    };
    assert_eq!(why.code, refusal::UNSUPPORTED_VERSION);
}

/// A TCP relay between the client and the rig that copies the client's frames
/// (2-byte length prefix) and, at frame `at` (0-based, handshake frames included),
/// either sends it twice or flips a bit in it.
async fn tampering_relay(
    rig: std::net::SocketAddr,
    at: usize,
    replay: bool,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let upstream = tokio::net::TcpStream::connect(rig).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
        });
        let mut n = 0usize;
        loop {
            let mut head = [0u8; 2];
            if cr.read_exact(&mut head).await.is_err() {
                break;
            }
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(head))];
            if cr.read_exact(&mut body).await.is_err() {
                break;
            }
            if n == at && !replay {
                body[0] ^= 0x01;
            }
            let mut frame = head.to_vec();
            frame.extend_from_slice(&body);
            if uw.write_all(&frame).await.is_err() {
                break;
            }
            if n == at && replay {
                let _ = uw.write_all(&frame).await;
            }
            n += 1;
        }
    });
    addr
}

async fn tampered_session(replay: bool) {
    let r = net_rig().await;
    // Frames from the client: handshake 1, handshake 3, Hello, then the first Line (3).
    let relay = tampering_relay(r.h.console_addr.unwrap(), 3, replay).await;
    let mut ch = hello(relay, &r.operator, Some(&r.rig_key), PROTOCOL_VERSION).await;
    assert!(matches!(
        *ch.recv::<RigToOperator>().await.unwrap(),
        RigToOperator::Welcome(_)
    ));
    ch.send(&line(1, "role 0 off")).await.unwrap();
    if replay {
        // The original is answered; its copy fails authentication and ends the session.
        let RigToOperator::Reply(rep) = *ch.recv::<RigToOperator>().await.unwrap() else {
            panic!()
        };
        assert!(rep.ok);
    }
    let end = tokio::time::timeout(Duration::from_secs(5), ch.recv::<RigToOperator>())
        .await
        .unwrap();
    assert!(end.is_err(), "session went on: {end:?}");
    assert!(
        wait_for(Duration::from_secs(5), || r
            .h
            .stats
            .console_auth_errors
            .load(Ordering::Relaxed)
            == 1)
        .await
    );
    let want = if replay {
        vec![Command::Role {
            device: Some(0),
            role: Role::Off,
        }]
    } else {
        vec![]
    };
    assert_eq!(r.core.seen(), want, "a tampered frame was executed");
}

#[tokio::test]
async fn network_console_ends_a_session_on_a_replayed_frame() {
    tampered_session(true).await;
}

#[tokio::test]
async fn network_console_ends_a_session_on_an_altered_frame() {
    tampered_session(false).await;
}

#[tokio::test]
async fn network_console_without_keys_does_not_listen_and_busy_doors_close() {
    let bare = ops_common::start(|_| {}).await;
    assert!(bare.h.console_addr.is_none() && bare.h.api_addr.is_none());
    // CONSOLE_LISTEN without CONSOLE_KEYS: nobody could log in, so it is refused at start;
    // an address in use names its key.
    let (_stx, srx) = ops_common::status_channel();
    let mut cfg = ops::OpsConfig::maintenance(None);
    cfg.api_listen = None;
    cfg.console_listen = Some("127.0.0.1:0".parse().unwrap());
    let e = ops::spawn_with(&cfg, srx.clone(), bare.core.tx.clone(), bare.rig.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CONSOLE_KEYS is empty"), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.console_listen = None;
    cfg.metrics_listen = Some(taken.local_addr().unwrap());
    let e = ops::spawn_with(&cfg, srx, bare.core.tx.clone(), bare.rig.clone())
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("METRICS_LISTEN=127.0.0.1:"),
        "{e}"
    );
    // Sessions over the limit are closed at once and counted; the first ones stay.
    let r = net_rig().await;
    let addr = r.h.console_addr.unwrap();
    let mut held = Vec::new();
    for _ in 0..console::net::SESSIONS {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    assert!(
        wait_for(Duration::from_secs(5), || r
            .h
            .stats
            .console
            .accepted
            .load(Ordering::Relaxed)
            == 4)
        .await
    );
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(r.h.stats.console.busy.load(Ordering::Relaxed), 1);
}
