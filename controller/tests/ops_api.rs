//! The cgminer-compatible API over TCP: cgminer's exact reply shapes in both request forms,
//! privileged commands refused, bounds; and a cgminer client written the way cgminer's own
//! api-example.py is (Python standard library only), run when python3 is on PATH.

mod ops_common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn api() -> ops_common::Running {
    ops_common::start(|c| c.api_listen = Some("127.0.0.1:0".parse().unwrap())).await
}

/// Sends `req` and reads until the rig closes, as cgminer clients do.
async fn ask(addr: std::net::SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

fn json(reply: &[u8]) -> Value {
    let (last, body) = reply.split_last().unwrap();
    assert_eq!(*last, 0, "no trailing NUL");
    assert!(!body.contains(&0));
    serde_json::from_slice(body).unwrap()
}

fn check_status(v: &Value, letter: &str, code: i64) {
    let st = &v["STATUS"].as_array().unwrap()[0];
    assert_eq!(st["STATUS"], letter, "{v}");
    assert_eq!(st["Code"], code, "{v}");
    assert!(st["When"].as_u64().unwrap() > 1_700_000_000);
    assert!(st["Msg"].is_string());
    assert_eq!(v["id"], 1);
}

#[tokio::test]
async fn summary_and_devs_joined_in_cgminers_shape() {
    let a = api().await;
    let addr = a.h.api_addr.unwrap();
    let v = json(&ask(addr, br#"{"command":"summary+devs","parameter":""}"#).await);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["devs", "id", "summary"]);
    assert_eq!(v["id"], 1);
    let summary = &v["summary"].as_array().unwrap()[0];
    check_status(summary, "S", 11);
    assert_eq!(summary["STATUS"][0]["Msg"], "Summary");
    assert_eq!(summary["STATUS"][0]["Description"], "compushare 0.1.0");
    let s = &summary["SUMMARY"].as_array().unwrap()[0];
    assert_eq!(s["Elapsed"], 3725);
    assert_eq!(s["MHS 5s"], 2500.0);
    assert_eq!(s["Accepted"], 40);
    assert_eq!(s["Rejected"], 2);
    assert_eq!(s["Stale"], 1);
    assert_eq!(s["Hardware Errors"], 1);
    // MHS av = hashes / elapsed: 9e12 + 1e6 hashes over 3725 s.
    assert_eq!(s["MHS av"], 2416.11);
    // The rig's own fields: the manager session, maintenance mode.
    assert_eq!(s["Manager"], "10.0.0.1:7733");
    assert_eq!(s["Manager Status"], "Connected");
    assert_eq!(s["Manager Error"], "");
    assert_eq!(s["Maintenance"], "");
    let devs = &v["devs"].as_array().unwrap()[0];
    check_status(devs, "S", 9);
    assert_eq!(devs["STATUS"][0]["Msg"], "1 GPU(s) - 1 CPU(s)");
    let d = devs["DEVS"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["GPU"], 0);
    assert_eq!(d[0]["Temperature"], 65.4);
    assert_eq!(d[0]["Status"], "Alive");
    assert_eq!(d[0]["Enabled"], "Y");
    assert_eq!(d[0]["MHS 5s"], 2500.0);
    assert_eq!(d[0]["Fan Percent"], 55);
    assert_eq!(d[1]["CPU"], 1);
    assert_eq!(d[1]["Status"], "Sick"); // hot: paused until it cools
    assert_eq!(d[1]["Role"], "transport");
    assert_eq!(d[1]["Histories/s"], 41000.0);
    // Numbers keep cgminer's printf precision in the raw text.
    let raw = String::from_utf8(ask(addr, br#"{"command":"summary"}"#).await).unwrap();
    assert!(raw.contains("\"MHS 5s\":2500.00,"), "{raw}");
    assert!(raw.contains("\"Elapsed\":3725,"));
    assert!(raw.starts_with("{\"STATUS\":[{\"STATUS\":\"S\",\"When\":"));
    assert!(raw.ends_with(",\"id\":1}\0"));
}

#[tokio::test]
async fn plain_text_form() {
    let a = api().await;
    let addr = a.h.api_addr.unwrap();
    let r = String::from_utf8(ask(addr, b"summary|").await).unwrap();
    assert!(r.starts_with("STATUS=S,When="), "{r}");
    assert!(r.contains(",Code=11,Msg=Summary,Description=compushare 0.1.0|SUMMARY,Elapsed=3725,MHS av=2416.11,MHS 5s=2500.00,"), "{r}");
    assert!(r.ends_with("|\0"));
    // Pools: one record each; user input escaped with a backslash.
    let r = String::from_utf8(ask(addr, b"pools").await).unwrap();
    assert!(
        r.contains("|POOL=0,URL=stratum+tcp://pool.example:3333,Status=Alive,Priority=0,"),
        "{r}"
    );
    assert!(r.contains("POOL=1,URL=stratum+tcp://backup.example:3333,Status=Dead,"));
    assert!(r.contains("User=farm\\,rig\\|7\\=\"x\""), "{r}");
    // Joined: CMD=name| before each section.
    let r = String::from_utf8(ask(addr, b"version+config").await).unwrap();
    assert!(r.starts_with("CMD=version|STATUS=S,"), "{r}");
    assert!(
        r.contains("|VERSION,CGMiner=0.1.0,API=3.7|CMD=config|STATUS=S,"),
        "{r}"
    );
    assert!(r.contains("CONFIG,GPU Count=1,CPU Count=1,ASC Count=0,PGA Count=0,Pool Count=2,"));
    // A new snapshot is what the next request sees: the manager went down.
    let mut down = ops_common::sample_status();
    down.manager.state = compushare_controller::status::LinkState::Down {
        error: "connection refused".into(),
        retry_in_s: 5,
    };
    a.status.send(Arc::new(down)).unwrap();
    let r = String::from_utf8(ask(addr, b"summary+pools").await).unwrap();
    assert!(
        r.contains(",Manager=10.0.0.1:7733,Manager Status=Down,Manager Error=connection refused|"),
        "{r}"
    );
}

#[tokio::test]
async fn privileged_and_unknown_commands_are_refused_like_cgminer() {
    let a = api().await;
    let addr = a.h.api_addr.unwrap();
    for cmd in [
        "switchpool",
        "addpool",
        "restart",
        "quit",
        "removepool",
        "privileged",
    ] {
        let v = json(
            &ask(
                addr,
                format!(r#"{{"command":"{cmd}","parameter":"0"}}"#).as_bytes(),
            )
            .await,
        );
        check_status(&v, "E", 45);
        assert_eq!(
            v["STATUS"][0]["Msg"],
            format!("Access denied to '{cmd}' command")
        );
    }
    let r = String::from_utf8(ask(addr, b"quit|").await).unwrap();
    assert!(r.contains("STATUS=E,") && r.contains("Code=45,Msg=Access denied to 'quit' command"));
    // In a joined request the others are still answered.
    let v = json(&ask(addr, br#"{"command":"restart+pools+bogus+pools"}"#).await);
    check_status(&v["restart"][0], "E", 45);
    check_status(&v["pools"][0], "S", 7);
    check_status(&v["bogus"][0], "E", 14);
    assert_eq!(v["pools"][0]["POOLS"].as_array().unwrap().len(), 2);
    // Invalid command: no Description (cgminer tells probes nothing).
    let v = json(&ask(addr, br#"{"command":"nothing"}"#).await);
    check_status(&v, "E", 14);
    assert!(v["STATUS"][0].get("Description").is_none());
    let v = json(&ask(addr, b"{\"command\":").await);
    check_status(&v, "E", 23);
    let v = json(&ask(addr, br#"{"parameter":"x"}"#).await);
    check_status(&v, "E", 24);
    let v = json(&ask(addr, br#"{"command":"check","parameter":"addpool"}"#).await);
    assert_eq!(v["CHECK"][0]["Exists"], "Y");
    assert_eq!(v["CHECK"][0]["Access"], "N");
    assert_eq!(a.h.stats.api_denied.load(Ordering::Relaxed), 8);
}

#[tokio::test]
async fn bounds_size_time_connections() {
    let a = api().await;
    let addr = a.h.api_addr.unwrap();
    // Too long: refused, and the rig still answers.
    let big = vec![b'a'; 10_000];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&big).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out).contains("Code=14"), "{out:?}");
    // A JSON request in two pieces is read whole.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"{\"command\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"\"version\"}").await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(json(&out)["VERSION"][0]["API"], "3.7");
    // A client that connects and says nothing is cut at the time limit.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(4) && out.is_empty(),
        "{out:?}"
    );
    assert_eq!(a.h.stats.api.timed_out.load(Ordering::Relaxed), 1);
    // More than CONNECTIONS at once: the extra ones are closed at once.
    let mut held = Vec::new();
    for _ in 0..compushare_controller::api::CONNECTIONS {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(r.is_err() || out.is_empty(), "{out:?}");
    assert!(a.h.stats.api.busy.load(Ordering::Relaxed) >= 1);
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!ask(addr, b"summary").await.is_empty());
}

/// A client as cgminer documents (api-example.py): standard library only, JSON request, read
/// until close, strip the NUL, json.loads; then what farm exporters read from summary+devs.
const PYTHON_CLIENT: &str = r#"
import json, socket, sys
def api(port, command):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    s.send(json.dumps({"command": command}).encode())
    buf = b""
    while True:
        more = s.recv(4096)
        if not more:
            break
        buf += more
    s.close()
    assert buf.endswith(b"\x00"), "no NUL"
    return json.loads(buf.replace(b"\x00", b"").decode())
port = int(sys.argv[1])
r = api(port, "summary+devs")
summary = r["summary"][0]
assert summary["STATUS"][0]["STATUS"] == "S"
mhs = summary["SUMMARY"][0]["MHS 5s"]
devs = r["devs"][0]["DEVS"]
temps = [d["Temperature"] for d in devs]
print("ok mhs=%.2f devs=%d temps=%s accepted=%d" % (mhs, len(devs), temps, summary["SUMMARY"][0]["Accepted"]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_cgminer_client_reads_it() {
    let Ok(out) = std::process::Command::new("python3")
        .arg("--version")
        .output()
    else {
        eprintln!("python3 not on PATH: skipping the real-client check");
        return;
    };
    assert!(out.status.success());
    let a = api().await;
    let port = a.h.api_addr.unwrap().port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", PYTHON_CLIENT, &port])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "ok mhs=2500.00 devs=2 temps=[65.4, 0.0] accepted=40"
    );
}
