//! The pool server is a decoder of network input too: random and mutated client lines
//! (submits with wrong lengths, bad hex, odd ids, garbage, huge lines) are answered or
//! counted, never crash it, and the connection keeps working.

use std::time::Duration;

use compushare_testkit::pool::{PoolSettings, StratumPool};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const SUBMIT: &str = r#"{"id":5,"method":"mining.submit","params":["w","1","00000001","5f000000","01020304","00002000"]}"#;

fn mutate(base: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut b = base.as_bytes().to_vec();
    for &(at, byte, kind) in edits {
        if b.is_empty() {
            break;
        }
        let i = at % b.len();
        match kind % 3 {
            0 => b[i] = byte,
            1 => {
                b.remove(i);
            }
            _ => b.insert(i, byte),
        }
    }
    // Keep one message per line: a newline inside would just split it in two.
    String::from_utf8_lossy(&b).replace('\n', " ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_client_lines_do_not_break_the_pool() {
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            job_interval: None,
            ..PoolSettings::default()
        },
    )
    .await
    .unwrap();
    let tcp = TcpStream::connect(pool.addr()).await.unwrap();
    let (rd, mut wr) = tcp.into_split();
    let mut lines = BufReader::new(rd).lines();
    wr.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n")
        .await
        .unwrap();

    // Generate inputs up front with proptest's strategies (deterministic runner).
    let mut runner = TestRunner::new(Config::default());
    let strategy = prop_oneof![
        prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..10)
            .prop_map(|e| mutate(SUBMIT, &e)),
        "\\PC{0,200}".prop_map(|s: String| s.replace('\n', " ")),
        prop::collection::vec("[0-9a-fz]{0,12}", 0..8).prop_map(|p| {
            format!(
                r#"{{"id":"x","method":"mining.submit","params":{}}}"#,
                serde_json::to_string(&p).unwrap()
            )
        }),
    ];
    let mut batch = String::new();
    for _ in 0..1500 {
        batch.push_str(&strategy.new_tree(&mut runner).unwrap().current());
        batch.push('\n');
    }
    batch.push_str(&format!(
        "{{\"id\":1,\"result\":\"{}\"}}\n",
        "a".repeat(200_000)
    ));
    wr.write_all(batch.as_bytes()).await.unwrap();
    // Still alive: a well-formed request is answered.
    wr.write_all(b"{\"id\":\"last\",\"method\":\"mining.extranonce.subscribe\",\"params\":[]}\n")
        .await
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                if v["id"] == "last" {
                    return true;
                }
            }
        }
        false
    })
    .await
    .expect("pool answers in time");
    assert!(answered);
    let s = pool.stats();
    assert_eq!(s.accepted, 0, "random submits are not valid shares: {s:?}");
    assert_eq!(s.connections, 1);
    assert!(
        s.malformed + s.bad_submit + s.unknown_job + s.low_difficulty > 0,
        "{s:?}"
    );
}
