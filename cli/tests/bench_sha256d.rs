//! `compushare bench sha256d` end to end: the `--json` object has exactly the fields
//! CONTRACT.md names, and bad arguments fail with a message naming the option.

use std::process::Command;

fn compushare(args: &[&str]) -> std::process::Output {
    // GPUs hidden: these tests are about the CPU paths and argument errors, and `cuda:0`
    // must fail the same way on a GPU machine as on CI.
    Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(args)
        .env("COMPUSHARE_NO_CUDA", "1")
        .output()
        .expect("run compushare")
}

#[test]
fn json_has_the_contract_fields() {
    let out = compushare(&[
        "bench",
        "sha256d",
        "--threads",
        "2",
        "--seconds",
        "0.3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let obj = v.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["device", "hashes", "hashes_per_s", "seconds", "threads"]
    );
    assert_eq!(obj["threads"], 2);
    assert_eq!(obj["device"], "cpu");
    assert!(obj["hashes"].as_u64().expect("integer") > 0);
    assert!(obj["hashes_per_s"].as_f64().expect("number") > 0.0);
    assert!(obj["seconds"].as_f64().expect("number") >= 0.3);
}

#[test]
fn every_path_runs_or_says_it_is_unsupported() {
    for path in ["portable", "avx2", "avx512", "shani"] {
        let out = compushare(&["bench", "sha256d", "--seconds", "0.05", "--path", path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("does not support"),
            "{path}: {stderr}"
        );
    }
}

#[test]
fn bad_arguments_are_named() {
    let cases: [(&[&str], &str); 5] = [
        (&["--device", "cuda:0"], "--device cuda:0"),
        (&["--device", "tpu"], "--device"),
        (&["--threads", "0"], "--threads"),
        (&["--seconds=-1"], "--seconds"),
        (&["--path", "nope"], "--path"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["bench", "sha256d"];
        args.extend_from_slice(extra);
        let out = compushare(&args);
        assert!(!out.status.success(), "{extra:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
}
