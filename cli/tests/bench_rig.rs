//! `compushare bench rig` end to end on small settings: it runs, and its `--json` object
//! carries every figure BENCHMARKS.md reports (no timing is asserted: shared machines).

use std::process::Command;

#[test]
fn bench_rig_reports_every_figure() {
    let out = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args([
            "bench",
            "rig",
            "--switches",
            "3",
            "--seconds",
            "0.4",
            "--seal-mib",
            "1",
            "--reps",
            "1",
            "--json",
        ])
        .env("COMPUSHARE_NO_CUDA", "1")
        .output()
        .expect("run compushare");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for k in ["p50", "p99", "max"] {
        assert!(j["switch_us"][k].as_f64().is_some_and(|v| v > 0.0), "{j}");
    }
    assert!(j["seal"]["in_place_mib_per_s"]
        .as_f64()
        .is_some_and(|v| v > 0.0));
    assert!(j["seal"]["allocating_mib_per_s"]
        .as_f64()
        .is_some_and(|v| v > 0.0));
    for k in ["idle", "hashing", "transport"] {
        assert!(j["rss_kib"][k].as_u64().is_some_and(|v| v > 1000), "{j}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(["bench", "rig", "--switches", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--switches"));
}
