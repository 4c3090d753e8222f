//! `compushare demo` end to end at a small photon count, as a new user runs it: the node,
//! the pool, three rigs and the client in one process on loopback. The summary must show
//! the network's digest equal to the local run's, the ledger verified, shares found, and the
//! outputs (the .nii and the fluence PNG) written; with `--cheater` the cheating rig is
//! caught and unpaid and the digest is still the honest one. Plain log lines on stderr
//! (not a terminal here), one per change.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo(out: &Path, photons: u64, extra: &[&str]) -> (String, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(["demo", "--photons", &photons.to_string(), "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run compushare demo");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        run.status.success(),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    (stdout, stderr)
}

fn line<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
}

fn hex_of(l: &str) -> &str {
    l.split_whitespace()
        .find(|w| w.len() == 64)
        .unwrap_or_else(|| panic!("no digest in {l:?}"))
}

#[test]
fn demo_runs_the_whole_system_and_the_result_is_the_local_one() {
    let dir = Dir(std::env::temp_dir().join(format!("cs-demo-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let (out, err) = demo(&dir.0, 60_000, &[]);

    let network = line(&out, "digest (network)");
    let local = line(&out, "digest (local sim)");
    assert_eq!(hex_of(network), hex_of(local));
    assert!(local.ends_with("equal"), "{local}");
    assert!(line(&out, "ledger verify:").contains("passed"), "{out}");
    let absorbed: f64 = line(&out, "absorbed fraction")
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (0.15..0.20).contains(&absorbed),
        "cube60 absorbs ~17.7%: {absorbed}"
    );
    // Every rig earned, and the pool recomputed every share it accepted.
    for r in ["rig1", "rig2", "rig3"] {
        let l = line(&out, r);
        assert!(!l.contains("CAUGHT"), "{l}");
    }
    let mining = line(&out, "mining:");
    let shares: u64 = mining.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(shares > 0, "{mining}");
    assert!(mining.contains("(0 invalid"), "{mining}");

    // The outputs, and the same digest in the written summary.
    let nii = std::fs::read(dir.0.join("result.nii")).unwrap();
    assert!(nii.len() > 348, "a NIfTI-1 header and data");
    let png = std::fs::read(dir.0.join("fluence.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.0.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["digest"], hex_of(local));

    // Plain log lines (stderr is not a terminal): the devices' roles as they change.
    assert!(err.contains("hashing -> transport"), "{err}");
    assert!(err.contains("== job done"), "{err}");
}

#[test]
fn demo_cheater_is_caught_unpaid_and_the_result_stays_honest() {
    let dir = Dir(std::env::temp_dir().join(format!("cs-demo-cheat-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    // Enough photons that the first round of assignments reaches every rig, the cheater too.
    let (out, _) = demo(&dir.0, 300_000, &["--cheater"]);
    assert_eq!(
        hex_of(line(&out, "digest (network)")),
        hex_of(line(&out, "digest (local sim)"))
    );
    assert!(line(&out, "ledger verify:").contains("passed"), "{out}");
    let cheater = line(&out, "rig3");
    assert!(cheater.contains("CAUGHT"), "{cheater}");
    assert!(cheater.contains("paid 0.000000"), "{cheater}");
    for r in ["rig1", "rig2"] {
        assert!(!line(&out, r).contains("CAUGHT"), "{out}");
    }
}
