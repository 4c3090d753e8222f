//! `compushare keygen` and `compushare bench protocol` as an operator runs them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn compushare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_compushare"))
}

#[test]
fn keygen_creates_once_and_prints_the_same_public_key() {
    let dir = std::env::temp_dir().join(format!("compushare-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("rig.key");
    let first = compushare().arg("keygen").arg(&key).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let public = String::from_utf8(first.stdout).unwrap();
    assert_eq!(public.trim().len(), 64);
    assert!(public.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(String::from_utf8_lossy(&first.stderr).contains("created"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let second = compushare().arg("keygen").arg(&key).output().unwrap();
    assert!(second.status.success());
    assert_eq!(String::from_utf8(second.stdout).unwrap(), public);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let refused = compushare().arg("keygen").arg(&key).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(key.to_str().unwrap()) && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_protocol_reports_json() {
    let out = compushare()
        .args(["bench", "protocol", "--seconds", "0.25", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hb = &v["heartbeat"];
    assert!(hb["messages_per_s"].as_f64().unwrap() > 0.0);
    // The binary heartbeat is smaller than either JSON form of the same data.
    let wire = hb["wire_bytes"].as_u64().unwrap();
    assert!(wire < hb["json_positional_bytes"].as_u64().unwrap());
    assert!(wire < hb["json_keyed_bytes"].as_u64().unwrap());
    assert_eq!(v["result_chunk"]["payload_bytes"], 61440);
    // Frame prefix 2 + tag 16 + variant 1 + content 32 + varints total_len 3, offset 1, len 3.
    assert_eq!(
        v["result_chunk"]["wire_bytes"].as_u64().unwrap(),
        2 + 16 + 1 + 32 + 3 + 1 + 3 + 61440
    );
}

#[test]
fn bad_seconds_is_an_error() {
    let out = compushare()
        .args(["bench", "protocol", "--seconds", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seconds"));
}
