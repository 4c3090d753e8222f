//! `compushare bench manager` at a small scale: the real manager process and simulated rigs
//! over Noise/TCP. Every rig must connect, be welcomed, bid and receive work, and none may be
//! closed by the manager. This is the end-to-end run of the manager's session path in the
//! release binary: it is where a miscompiled decode of the manager's messages first showed
//! (see BENCHMARKS.md), so CI runs it on every build.

use std::process::Command;

#[test]
fn every_simulated_rig_connects_bids_and_gets_work() {
    let out = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args([
            "bench",
            "manager",
            "--rigs",
            "24",
            "--duration",
            "2",
            "--heartbeat",
            "1",
            "--devices",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}\n{stderr}");
    });
    assert_eq!(v["rigs"], 24);
    assert_eq!(v["connected"], 24, "{v}\n{stderr}");
    assert_eq!(v["failed"], 0, "{v}\n{stderr}");
    assert_eq!(v["closed_by_manager"], 0, "{v}\n{stderr}");
    let bids = v["bids"].as_u64().unwrap();
    assert!(bids > 0, "{v}");
    // The photon pool is far larger than the run uses: every bid is answered with work, but
    // each rig's last bid may still be in flight when the counters are read.
    let assigns = v["assigns"].as_u64().unwrap();
    assert!(
        assigns > 0 && assigns <= bids && assigns + 24 >= bids,
        "{v}"
    );
    assert!(v["assignment_latency_ms_p99"].as_f64().is_some(), "{v}");
}

/// `compushare bench manager-memory` at a small scale: jobs run to completion with real rigs,
/// rigs come and go, and the figures are reported (the full run's are in BENCHMARKS.md; a
/// timed or sized assertion here would be noise on a shared machine).
#[test]
fn the_memory_benchmark_runs_jobs_and_rigs_through() {
    let out = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(["bench", "manager-memory", "--jobs", "5", "--rigs", "40"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["rigs_welcomed"], 40, "{v}");
    assert!(v["fresh_kib"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["after_kib"].as_u64().unwrap_or(0) > 0, "{v}");
}
