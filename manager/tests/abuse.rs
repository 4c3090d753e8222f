//! Protocol abuse against a live manager: unknown versions, oversize and undecodable frames,
//! results for assignments the rig does not hold, replayed results. Each is rejected and
//! counted (and logged); the session is closed where the peer is broken, kept where an honest
//! rig could have erred.

mod common;

use std::time::Duration;

use common::{compute, hello, JOB};
use compushare_client::Client;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::Running;
use compushare_protocol::chunk::Chunker;
use compushare_protocol::msg::{
    refusal, AckStatus, Bid, ClientToManager, CostStats, Heartbeat, ManagerToClient, ManagerToRig,
    ResultCommit, RigToManager,
};
use compushare_protocol::secure::net::{connect_tcp, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, AssignmentId, Mode};

async fn manager(client: [u8; 32]) -> Running {
    let market = MarketConfig {
        target: Duration::from_millis(200),
        samples: 16,
        ..MarketConfig::default()
    };
    common::serve_on(common::store_granting(&client, 1 << 40), 1, market).await
}

async fn rig(m: &Running) -> TcpChannel {
    let me = Identity::generate().unwrap();
    let key = m.shared.identity.public();
    let mut ch = connect_tcp(m.addr, &me, &key, HANDSHAKE_TIMEOUT)
        .await
        .unwrap();
    ch.send(&RigToManager::Hello(hello("abuser", [3; 32], 2, 1000)))
        .await
        .unwrap();
    assert!(matches!(
        *ch.recv::<ManagerToRig>().await.unwrap(),
        ManagerToRig::Welcome(_)
    ));
    ch
}

/// A heartbeat of a rig with no devices reported.
fn heartbeat() -> RigToManager {
    RigToManager::Heartbeat(Heartbeat {
        uptime_s: 1,
        devices: heapless::Vec::new(),
        vault_used: 0,
        vault_slots: 4,
    })
}

/// Reads until a message matching `f` arrives (skipping offers and the like).
async fn until<T>(ch: &mut TcpChannel, mut f: impl FnMut(&ManagerToRig) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = ch.recv::<ManagerToRig>().await.expect("session open");
            if let Some(t) = f(&m) {
                return t;
            }
        }
    })
    .await
    .expect("expected message in time")
}

fn abuse(m: &Running) -> u64 {
    m.shared.market().stats.abuse
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_versions_are_refused_for_rigs_and_clients() {
    let m = manager([1; 32]).await;
    let key = m.shared.identity.public();
    let me = Identity::generate().unwrap();
    let mut ch = connect_tcp(m.addr, &me, &key, HANDSHAKE_TIMEOUT)
        .await
        .unwrap();
    let mut h = hello("future", [3; 32], 1, 1);
    h.version = 99;
    ch.send(&RigToManager::Hello(h)).await.unwrap();
    match *ch.recv::<ManagerToRig>().await.unwrap() {
        ManagerToRig::Refused(r) => assert_eq!(r.code, refusal::UNSUPPORTED_VERSION),
        other => panic!("{other:?}"),
    }
    assert!(
        ch.recv::<ManagerToRig>().await.is_err(),
        "session must close"
    );

    let mut ch = connect_tcp(m.addr, &me, &key, HANDSHAKE_TIMEOUT)
        .await
        .unwrap();
    ch.send(&ClientToManager::Hello { version: 0 })
        .await
        .unwrap();
    match *ch.recv::<ManagerToClient>().await.unwrap() {
        ManagerToClient::Refused(r) => assert_eq!(r.code, refusal::UNSUPPORTED_VERSION),
        other => panic!("{other:?}"),
    }
    // A first message that is no Hello at all.
    let mut ch = connect_tcp(m.addr, &me, &key, HANDSHAKE_TIMEOUT)
        .await
        .unwrap();
    ch.send(&ClientToManager::JobStatus {
        job: compushare_protocol::types::JobId(1),
    })
    .await
    .unwrap();
    match *ch.recv::<ManagerToClient>().await.unwrap() {
        ManagerToClient::Refused(r) => assert_eq!(r.code, refusal::PROTOCOL),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_undecodable_frames_close_the_session() {
    let m = manager([1; 32]).await;
    for bytes in [vec![0xab; 65_000], vec![0xff; 3], Vec::new()] {
        let before = abuse(&m);
        let ch = rig(&m).await;
        let (mut rd, mut wr) = ch.split();
        wr.send_bytes(&bytes).await.unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rd.recv::<ManagerToRig>().await.map(|m| *m) {
                    Ok(ManagerToRig::Refused(r)) => return Some(r.code),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(refused, Some(refusal::PROTOCOL), "{} bytes", bytes.len());
        assert!(
            rd.recv::<ManagerToRig>().await.is_err(),
            "session must close"
        );
        assert_eq!(abuse(&m), before + 1);
    }
    // A message of the wrong direction is undecodable too.
    let ch = rig(&m).await;
    let (mut rd, mut wr) = ch.split();
    wr.send(&ClientToManager::FetchResult {
        job: compushare_protocol::types::JobId(1),
    })
    .await
    .unwrap();
    loop {
        match rd.recv::<ManagerToRig>().await.as_deref() {
            Ok(ManagerToRig::Refused(_)) | Err(_) => break,
            Ok(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_replayed_results_are_rejected_and_the_session_stays() {
    let client = Identity::generate().unwrap();
    let client_key = client.public();
    let m = manager(client_key).await;
    let key = m.shared.identity.public();

    // A result for an assignment that does not exist.
    let mut ch = rig(&m).await;
    let before = abuse(&m);
    let fake = ResultCommit {
        assignment: AssignmentId(777),
        histories: 10,
        tally: [0; 32],
        merkle_root: [0; 32],
        sealed: [0; 32],
        sealed_len: 100,
        stats: CostStats {
            elapsed_ms: 1,
            voxel_steps: 0,
            scatters: 0,
        },
    };
    ch.send(&RigToManager::ResultCommit(fake)).await.unwrap();
    let st = until(&mut ch, |m| match m {
        ManagerToRig::Ack { assignment, status } if assignment.0 == 777 => Some(*status),
        _ => None,
    })
    .await;
    assert_eq!(st, AckStatus::Unknown);
    assert_eq!(abuse(&m), before + 1);

    // Real work: submit a job, bid, run the assignment, deliver it.
    let mut c = Client::connect(m.addr, client, &key).await.unwrap();
    let (job, _, _) = c
        .submit(
            JOB.as_bytes(),
            400,
            Some(5),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap();
    let offer = until(&mut ch, |m| match m {
        ManagerToRig::Offer(o) if o.job == job => Some(*o),
        _ => None,
    })
    .await;
    ch.send(&RigToManager::Bid(Bid {
        job,
        device: 0,
        cores: 2,
        histories_per_s: 1000,
        min_price: Amount(0),
    }))
    .await
    .unwrap();
    let a = until(&mut ch, |m| match m {
        ManagerToRig::Assign(a) => Some(*a),
        _ => None,
    })
    .await;
    assert_eq!(a.geometry, offer.geometry);
    let done = compute(JOB.as_bytes(), &a, &key, None);

    // Another rig cannot deliver this rig's assignment.
    let mut thief = rig(&m).await;
    let before = abuse(&m);
    thief
        .send(&RigToManager::ResultCommit(done.commit))
        .await
        .unwrap();
    let st = until(&mut thief, |m| match m {
        ManagerToRig::Ack { assignment, status } if *assignment == a.assignment => Some(*status),
        _ => None,
    })
    .await;
    assert_eq!(st, AckStatus::Unknown);
    assert_eq!(abuse(&m), before + 1);

    ch.send(&RigToManager::ResultCommit(done.commit))
        .await
        .unwrap();
    for chunk in Chunker::new(&done.sealed).unwrap() {
        ch.send(&RigToManager::ResultChunk(chunk)).await.unwrap();
    }
    // Answer sample requests until verified.
    loop {
        match *ch.recv::<ManagerToRig>().await.unwrap() {
            ManagerToRig::SampleRequest { photons, .. } => {
                for p in common::proofs(&done, a.photons.start, &photons) {
                    ch.send(&RigToManager::SampleProof(p)).await.unwrap();
                }
            }
            ManagerToRig::Ack {
                status: AckStatus::Verified,
                ..
            } => break,
            ManagerToRig::Ack {
                status: AckStatus::Failed,
                ..
            } => panic!("honest result failed"),
            _ => {}
        }
    }
    // The same result again (a rig re-sends what it holds after a reconnect): answered with
    // where it stands, not counted as abuse.
    let before = abuse(&m);
    ch.send(&RigToManager::ResultCommit(done.commit))
        .await
        .unwrap();
    let st = until(&mut ch, |m| match m {
        ManagerToRig::Ack { assignment, status } if *assignment == a.assignment => Some(*status),
        _ => None,
    })
    .await;
    assert_eq!(st, AckStatus::Verified);
    assert_eq!(abuse(&m), before);
    // Another commitment for the same assignment: a replay.
    let mut forged = done.commit;
    forged.tally[0] ^= 1;
    ch.send(&RigToManager::ResultCommit(forged)).await.unwrap();
    let st = until(&mut ch, |m| match m {
        ManagerToRig::Ack { assignment, status } if *assignment == a.assignment => Some(*status),
        _ => None,
    })
    .await;
    assert_eq!(st, AckStatus::Unknown);
    assert_eq!(abuse(&m), before + 1);
    // The session is still usable.
    ch.send(&heartbeat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(m.shared.market().stats.heartbeats >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rig_whose_queue_refuses_is_disconnected_not_left_idle() {
    // No room in any rig's send queue: the first message the market queues for the rig (the
    // offer of a new job) is refused and the market drops the rig. Its session must end, so
    // that the rig reconnects, instead of staying connected and never given work.
    let client = Identity::generate().unwrap();
    let market = MarketConfig {
        session_queue_bytes: 0,
        ..MarketConfig::default()
    };
    let m = common::serve_on(common::store_granting(&client.public(), 1 << 40), 1, market).await;
    let mut ch = rig(&m).await;
    let key = m.shared.identity.public();
    let mut c = Client::connect(m.addr, client, &key).await.unwrap();
    common::submit(&mut c, 5, 1_000).await;
    // The session notices at the next frame the rig sends.
    ch.send(&heartbeat()).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if ch.recv::<ManagerToRig>().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the dropped rig's session stayed open");
    assert_eq!(m.shared.market().connected(), 0);
}
