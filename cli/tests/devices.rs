//! `compushare devices`: always lists the CPU; without a GPU it says why in one line.

use std::process::Command;

fn compushare(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(args)
        .output()
        .expect("running compushare")
}

#[test]
fn lists_the_cpu_and_the_cuda_verdict() {
    let out = compushare(&["devices", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices[0]["device"], "cpu");
    assert!(devices[0]["cores"].as_u64().unwrap() >= 1);
    let cuda = v["cuda"].as_str().unwrap();
    assert!(!cuda.contains('\n'));
    if devices.len() == 1 {
        assert!(cuda.starts_with("no CUDA device"), "{cuda}");
    }
    let text = compushare(&["devices"]);
    assert!(text.status.success());
    let s = String::from_utf8(text.stdout).unwrap();
    assert!(s.starts_with("cpu: "), "{s}");
}
