//! Bad input at every door of a running system, the whole-process view: while honest rigs
//! run a paid job (and mine at the pool), hostile peers hammer the node's rig door and
//! client door with arbitrary frames after a valid handshake and Hello, raw bytes before any
//! handshake, and mutated job files; the pool sends the rigs garbage Stratum lines; the
//! rigs' cgminer-compatible API gets arbitrary requests. Then: the job completes with the
//! local digest and its books check out, the node still serves a new client and a new job,
//! and the rigs' shares are all valid. Nothing may panic (a panicking session task would
//! leave a rig or client unserved).
//!
//! The per-door parsers are fuzzed in their crates: protocol/tests/fuzz.rs (frames and
//! messages), manager/tests/abuse.rs and network_decode_props.rs (the node's decoders),
//! kernels' input tests (job JSON), controller/tests/{messages,pool_input,ops_fuzz,
//! rig_config}.rs (Stratum lines, console lines, API requests, rig.conf). This file does not
//! repeat them; it checks that a door under attack does not stop the others.

use std::time::Duration;

use compushare_controller::ops::{self, OpsConfig};
use compushare_protocol::msg::{ClientToManager, RigHello, RigToManager, PROTOCOL_VERSION};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, DeviceInfo, DeviceKind, Mode, PublicKey};
use compushare_system_tests::system::{
    check_books, eventually, free_addr, in_rig, local_digest, market, Node, RigSpec, TempDir, JOB,
};
use compushare_testkit::pool::{PoolSettings, StratumPool};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(240);

fn noise(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random()).collect()
}

/// A hostile rig: a real handshake and Hello, then `frames` arbitrary sealed frames.
async fn hostile_rig(addr: std::net::SocketAddr, node: PublicKey, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let me = Identity::generate().unwrap();
    let Ok(ch) = connect_tcp(addr, &me, &node, HANDSHAKE_TIMEOUT).await else {
        return;
    };
    let (_r, mut w) = ch.split();
    let mut devices = heapless::Vec::new();
    let _ = devices.push(DeviceInfo {
        index: 0,
        kind: DeviceKind::Cpu,
        name: heapless::String::from("cpu0"),
        compute_units: 1,
        cores: 1,
        memory: 1 << 30,
        hash_rate: 0,
        histories_per_s: 1000,
    });
    let hello = RigToManager::Hello(RigHello {
        version: PROTOCOL_VERSION,
        firmware: heapless::String::from("fuzz"),
        name: heapless::String::from("fuzz"),
        payout: me.public(),
        devices,
        farm: None,
        sheet: None,
    });
    if w.send(&hello).await.is_err() {
        return;
    }
    for _ in 0..40 {
        let bytes = noise(&mut rng, 600);
        if w.send_bytes(&bytes).await.is_err() {
            return;
        }
    }
}

/// A hostile client: a real handshake and Hello, then arbitrary sealed frames.
async fn hostile_client(addr: std::net::SocketAddr, node: PublicKey, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let me = Identity::generate().unwrap();
    let Ok(ch) = connect_tcp(addr, &me, &node, HANDSHAKE_TIMEOUT).await else {
        return;
    };
    let (_r, mut w) = ch.split();
    let hello = ClientToManager::Hello {
        version: PROTOCOL_VERSION,
    };
    if w.send(&hello).await.is_err() {
        return;
    }
    for _ in 0..40 {
        let bytes = noise(&mut rng, 600);
        if w.send_bytes(&bytes).await.is_err() {
            return;
        }
    }
}

/// Raw bytes at a TCP door, before (or instead of) any handshake.
async fn raw_bytes(addr: std::net::SocketAddr, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let bytes = noise(&mut rng, 4000);
    let _ = s.write_all(&bytes).await;
    let _ = s.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
}

/// A job file mutated: bytes flipped, cut or inserted.
fn mutated_job(rng: &mut StdRng) -> Vec<u8> {
    let mut b = JOB.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..6) {
        let i = rng.random_range(0..b.len());
        match rng.random_range(0..3) {
            0 => b[i] = rng.random(),
            1 => b.truncate(i.max(1)),
            _ => b.insert(i, *b"{}[],:\"0e-9".get(rng.random_range(0..11)).unwrap()),
        }
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_fuzzed_while_the_system_works_loses_nothing() {
    let seed: u64 = std::env::var("DOOR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("DOOR_SEED={seed}");
    let dir = TempDir::new("doors");
    let node = Node::start(
        &dir.0,
        market(Duration::from_millis(300), Duration::from_secs(20)),
    )
    .await;
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 0.001,
            nbits: 0x1703_4219,
            job_interval: Some(Duration::from_secs(2)),
            ..PoolSettings::default()
        },
    )
    .await
    .unwrap();
    let addr = node.running.addr;
    let mut rigs = Vec::new();
    for i in 0..2 {
        let spec = RigSpec {
            pool: Some(pool.url()),
            ..RigSpec::default()
        };
        rigs.push(in_rig(&addr.to_string(), node.key(), &format!("rig{i}"), spec).await);
    }
    // rig0's cgminer-compatible API, as rig.conf's API_LISTEN opens it.
    let api = free_addr();
    let ops_cfg = OpsConfig {
        serial_console: None,
        console_listen: None,
        console_keys: Vec::new(),
        api_listen: Some(api),
        metrics_listen: None,
    };
    let (status, commands, identity) = rigs[0].surfaces();
    let _ops = ops::spawn_with(&ops_cfg, status, commands, identity)
        .await
        .unwrap();

    const PHOTONS: u64 = 300_000;
    let (job, price) = node.submit(PHOTONS, 71).await;

    // Every door at once.
    let key = node.key();
    let mut attacks = tokio::task::JoinSet::new();
    for i in 0..12u64 {
        attacks.spawn(hostile_rig(addr, key, seed + i));
        attacks.spawn(hostile_client(addr, key, seed + 100 + i));
        attacks.spawn(raw_bytes(addr, seed + 200 + i));
        attacks.spawn(raw_bytes(api, seed + 300 + i));
    }
    let mut rng = StdRng::seed_from_u64(seed + 400);
    // Garbage Stratum lines from the pool to the mining rigs.
    for _ in 0..30 {
        let n = rng.random_range(0..300);
        let line: String = (0..n)
            .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
            .collect();
        pool.send_raw(&line);
    }
    pool.send_raw(r#"{"id":null,"method":"mining.notify","params":[1,2,3]}"#);
    pool.send_raw(r#"{"id":null,"method":"mining.set_difficulty","params":[-1]}"#);
    // Mutated job files from a funded client: refused with a reason, or accepted as jobs.
    let mut c = node.client().await;
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..30 {
        let bytes = mutated_job(&mut rng);
        match c
            .submit(&bytes, 1000, Some(1), Mode::Cheapest, Amount(u64::MAX))
            .await
        {
            Ok(_) => accepted += 1,
            Err(compushare_client::ClientError::Manager { message, .. }) => {
                assert!(!message.is_empty(), "a refusal says why");
                refused += 1;
            }
            Err(e) => panic!("a bad job file broke the client session: {e}"),
        }
    }
    println!("mutated job files: {refused} refused, {accepted} accepted");
    assert!(refused > 0);
    while attacks.join_next().await.is_some() {}

    // The honest work was untouched.
    let digest = node.done_digest(job, LONG).await;
    assert_eq!(digest, local_digest(71, PHOTONS));
    check_books(node.store(), job, PHOTONS, price);
    // The node still serves: a new client, a new job.
    let (job2, price2) = node.submit(50_000, 72).await;
    assert_eq!(node.done_digest(job2, LONG).await, local_digest(72, 50_000));
    check_books(node.store(), job2, 50_000, price2);
    // The rigs still mine, and only valid shares.
    for r in &rigs {
        let before = pool
            .accepted_shares()
            .iter()
            .filter(|s| s.submit.worker == r.name)
            .count();
        eventually(&format!("{} mines after the garbage", r.name), LONG, || {
            pool.accepted_shares()
                .iter()
                .filter(|s| s.submit.worker == r.name)
                .count()
                > before
        })
        .await;
    }
    let s = pool.stats();
    assert_eq!(s.low_difficulty + s.bad_submit + s.duplicate, 0, "{s:?}");
    // And the API answers a real request.
    let mut conn = tokio::net::TcpStream::connect(api).await.unwrap();
    conn.write_all(br#"{"command":"summary"}"#).await.unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.unwrap();
    assert!(
        String::from_utf8_lossy(&reply).contains("SUMMARY"),
        "{reply:?}"
    );
}
