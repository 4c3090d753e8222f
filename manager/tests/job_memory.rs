//! Nothing costly before a client can pay: a job's memory and cost are bounded from its JSON
//! alone before any grid is built. A zero-balance client's `Dim` [800, 800, 800] job (5.6 GB
//! of tally and labels, which the manager used to allocate) is refused at `SubmitJob`, before
//! its upload is accepted; a funded client's is refused by the node's `max_job_bytes` before
//! any grid exists; and several such jobs at once leave the node's peak memory where it was.
//!
//! One test in its own binary: it reads this process's peak resident memory (`VmHWM`, reset
//! through `/proc/self/clear_refs` where the kernel allows), which other tests running
//! alongside would disturb.

mod common;

use compushare_client::{Client, ClientError};
use compushare_manager::market::MarketConfig;
use compushare_protocol::msg::ErrorCode;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode};

const HUGE: &str = r#"{
  "Session": { "ID": "huge", "Photons": 1000 },
  "Forward": { "T0": 0, "T1": 1e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [800, 800, 800], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.02, "mus": 1.5, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [800, 800, 800] } } ],
  "Optode": { "Source": { "Pos": [400, 400, 0], "Dir": [0, 0, 1] } }
}"#;

/// A `/proc/self/status` figure, KiB.
fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Peak resident memory from now on: the peak is reset where the kernel allows (else the
/// peak so far, which only makes the check stricter on growth past it).
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmHWM:").max(status_kib("VmRSS:"))
}

async fn refused(c: &mut Client, photons: u64) -> (ErrorCode, String) {
    match c
        .submit(
            HUGE.as_bytes(),
            photons,
            Some(1),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
    {
        Err(ClientError::Manager { code, message }) => (code, message),
        other => panic!("the 800^3 job was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_jobs_are_refused_without_the_node_growing() {
    let funded = Identity::generate().unwrap();
    let m = common::manager_granting(&funded.public(), 1 << 40, MarketConfig::default()).await;
    let key = m.shared.identity.public();
    // Warm up: sessions, a small job accepted and calibrated.
    let mut warm = Client::connect(m.addr, funded, &key).await.unwrap();
    common::submit(&mut warm, 1, 1_000).await;
    let before = reset_peak();

    // A zero-balance client: refused at SubmitJob, before its upload.
    let mut poor = Client::connect(m.addr, Identity::generate().unwrap(), &key)
        .await
        .unwrap();
    let (code, message) = refused(&mut poor, 1_000).await;
    assert_eq!(code, ErrorCode::InsufficientFunds, "{message}");
    // A funded client: refused by the node's max_job_bytes, from the JSON alone.
    let (code, message) = refused(&mut warm, 1_000).await;
    assert_eq!(code, ErrorCode::BadJob, "{message}");
    assert!(
        message.contains("`Domain.Dim` [800, 800, 800]"),
        "{message}"
    );
    assert!(message.contains("limit"), "{message}");
    // Several at once, zero-balance and funded.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let addr = m.addr;
        let id = Identity::generate().unwrap();
        if i % 2 == 1 {
            m.shared
                .store
                .write(|tx| tx.grant(&id.public(), Amount(1 << 40)))
                .unwrap();
        }
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, id, &key).await.unwrap();
            refused(&mut c, 1_000).await.0
        }));
    }
    for t in tasks {
        let code = t.await.unwrap();
        assert!(
            matches!(code, ErrorCode::InsufficientFunds | ErrorCode::BadJob),
            "{code:?}"
        );
    }
    let after = status_kib("VmHWM:");
    let grown = after.saturating_sub(before);
    println!("peak resident memory: {before} KiB before, {after} KiB after ({grown} KiB)");
    assert!(
        grown < 8 * 1024,
        "the node grew {grown} KiB for refused jobs"
    );
}
