//! `compushare mine` against the validating test pool on 127.0.0.1: the CONTRACT's JSON,
//! failover across `--pool` options, and argument errors.

use std::process::Command;
use std::time::Duration;

use compushare_testkit::pool::{PoolSettings, StratumPool};

fn settings() -> PoolSettings {
    PoolSettings {
        difficulty: 2e-5,
        job_interval: Some(Duration::from_millis(700)),
        ..PoolSettings::default()
    }
}

async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_compushare"))
            .arg("mine")
            .args(args)
            .output()
            .expect("runs")
    })
    .await
    .expect("joins")
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_summary_matches_the_contract_and_the_pool() {
    let pool = StratumPool::start("127.0.0.1:0", settings()).await.unwrap();
    let url = pool.url();
    let out = run(strings(&[
        "--pool",
        &url,
        "--user",
        "w",
        "--pass",
        "x",
        "--threads",
        "1",
        "--duration",
        "3",
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let o = v.as_object().unwrap();
    let mut keys: Vec<_> = o.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["accepted", "hashes_per_s", "pool", "rejected", "stale"]
    );
    assert_eq!(o["pool"], url.as_str());
    let accepted = o["accepted"].as_u64().unwrap();
    assert!(accepted >= 1, "{v}");
    assert_eq!(o["rejected"], 0);
    assert!(o["stale"].as_u64().is_some());
    assert!(o["hashes_per_s"].as_f64().unwrap() > 0.0);
    let s = pool.stats();
    assert!(accepted <= s.accepted, "{v} vs {s:?}");
    assert_eq!(
        s.low_difficulty + s.duplicate + s.bad_submit + s.unknown_job,
        0,
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_second_pool() {
    let dead = StratumPool::start("127.0.0.1:0", settings()).await.unwrap();
    let dead_url = dead.url();
    dead.kill();
    drop(dead);
    let live = StratumPool::start("127.0.0.1:0", settings()).await.unwrap();
    let out = run(strings(&[
        "--pool",
        &dead_url,
        "--pool",
        &live.url(),
        "--user",
        "a",
        "--user",
        "b",
        "--pass",
        "x",
        "--threads",
        "1",
        "--duration",
        "3",
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pool"], live.url().as_str());
    assert!(v["accepted"].as_u64().unwrap() >= 1);
    assert!(live.stats().accepted >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_and_connection_errors() {
    let bad_url = run(strings(&[
        "--pool",
        "http://127.0.0.1:1",
        "--user",
        "w",
        "--pass",
        "x",
        "--duration",
        "1",
    ]))
    .await;
    assert!(!bad_url.status.success());
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("--pool http://127.0.0.1:1"));

    let no_pool = run(strings(&["--user", "w", "--pass", "x"])).await;
    assert!(!no_pool.status.success());

    let users = run(strings(&[
        "--pool",
        "127.0.0.1:1",
        "--pool",
        "127.0.0.1:2",
        "--pool",
        "127.0.0.1:3",
        "--user",
        "a",
        "--user",
        "b",
        "--pass",
        "x",
        "--duration",
        "1",
    ]))
    .await;
    assert!(!users.status.success());
    assert!(String::from_utf8_lossy(&users.stderr).contains("--user given 2 times for 3 pools"));

    let ca = run(strings(&[
        "--pool",
        "stratum+ssl://127.0.0.1:1",
        "--user",
        "w",
        "--pass",
        "x",
        "--ca-file",
        "/nonexistent/ca.pem",
    ]))
    .await;
    assert!(!ca.status.success());
    assert!(String::from_utf8_lossy(&ca.stderr).contains("--ca-file /nonexistent/ca.pem"));

    // Nothing listens there: after the duration the miner says no pool could be reached.
    let dead = StratumPool::start("127.0.0.1:0", settings()).await.unwrap();
    let url = dead.url();
    dead.kill();
    drop(dead);
    let unreachable = run(strings(&[
        "--pool",
        &url,
        "--user",
        "w",
        "--pass",
        "x",
        "--threads",
        "1",
        "--duration",
        "1",
        "--json",
    ]))
    .await;
    assert!(!unreachable.status.success());
    let err = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        err.contains("no pool could be reached") && err.contains(&url),
        "{err}"
    );
    assert!(unreachable.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_prints_the_summary() {
    let pool = StratumPool::start("127.0.0.1:0", settings()).await.unwrap();
    let url = pool.url();
    let out = tokio::task::spawn_blocking(move || {
        let child = Command::new(env!("CARGO_BIN_EXE_compushare"))
            .args([
                "mine",
                "--pool",
                &url,
                "--user",
                "w",
                "--pass",
                "x",
                "--threads",
                "1",
                "--json",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starts");
        std::thread::sleep(Duration::from_secs(2));
        // SIGINT, as a terminal's Ctrl-C sends.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        child.wait_with_output().expect("exits")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary on stdout");
    assert!(v["accepted"].as_u64().is_some());
}
