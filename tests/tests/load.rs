//! Load: 1,000 simulated rigs against one management node (the `compushare manager run`
//! process), through `compushare bench manager` (its simulated rig: real Noise/TCP, Hello,
//! heartbeats and bids on a staggered schedule). Every rig must connect and be welcomed, no
//! session may be closed by the node, and bids must be answered with work. The 10,000-rig
//! figures (CPU, memory per session, assignment latency) are in BENCHMARKS.md; timing is not
//! asserted here (shared machines).

use std::process::Command;

use compushare_system_tests::system::compushare_bin;

const RIGS: u64 = 1000;

#[test]
fn a_thousand_rigs_connect_bid_and_get_work() {
    let out = Command::new(compushare_bin())
        .args(["bench", "manager", "--rigs"])
        .arg(RIGS.to_string())
        .args(["--duration", "4", "--heartbeat", "2", "--devices", "2"])
        .output()
        .expect("run compushare bench manager");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    println!("{v}");
    assert_eq!(v["rigs"], RIGS);
    assert_eq!(v["connected"], RIGS, "{v}\n{stderr}");
    assert_eq!(v["failed"], 0, "{v}\n{stderr}");
    assert_eq!(v["closed_by_manager"], 0, "{v}\n{stderr}");
    let bids = v["bids"].as_u64().unwrap();
    let assigns = v["assigns"].as_u64().unwrap();
    assert!(bids >= RIGS, "every rig bid at least once: {v}");
    // Each rig's last bid may still be in flight when the counters are read.
    assert!(assigns <= bids && assigns + RIGS >= bids, "{v}");
    assert!(v["assignment_latency_ms_p99"].as_f64().is_some(), "{v}");
}
