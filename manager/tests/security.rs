//! A job from the network never touches the node's disk, and nothing the node answers echoes
//! its own files. Reproduces the key theft once reported: a client named the manager's key
//! file as the job's `Domain.VolumeFile` (absolute, and `../`-relative to the manager's
//! working directory); the manager read it as the volume and its error messages gave away the
//! file's size and first byte. Now the job is refused naming the field, and the reply holds
//! neither the path, nor the size, nor any byte of the key.

mod common;

use std::path::{Component, Path, PathBuf};

use compushare_client::{Client, ClientError};
use compushare_kernels::transport::input::bundle::JobBundle;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, ServerConfig};
use compushare_protocol::msg::ErrorCode;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode};
use serde_json::json;

/// A job whose `Domain.VolumeFile` is `volume` (2 x 2 x 8 voxels, one medium per byte value,
/// so that every byte of a file read as labels would be a valid label, as in the theft).
fn job_naming(volume: &str) -> serde_json::Value {
    let media: Vec<_> = (0..256)
        .map(|i| json!({ "mua": 0.001 * f64::from(i), "mus": 1.0, "g": 0.9, "n": 1.37 }))
        .collect();
    json!({
        "Session": { "ID": "theft", "Photons": 1000 },
        "Forward": { "T0": 0, "T1": 1e-9, "Dt": 1e-9 },
        "Domain": { "Dim": [2, 2, 8], "OriginType": 1, "VolumeFile": volume, "Media": media },
        "Optode": { "Source": { "Pos": [1, 1, 0], "Dir": [0, 0, 1] } }
    })
}

/// `target` relative to `from` (both absolute): `../` up to their common root, then down.
fn relative(from: &Path, target: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

/// Everything a refusal must not contain about `key_file`.
fn assert_reveals_nothing(reply: &str, key_file: &Path) {
    let bytes = std::fs::read(key_file).unwrap();
    let len = bytes.len();
    let name = key_file.file_name().unwrap().to_str().unwrap();
    assert!(!reply.contains(name), "names the file: {reply}");
    assert!(
        !reply.contains(&key_file.display().to_string()),
        "names the path: {reply}"
    );
    assert!(!reply.contains(&len.to_string()), "gives the size: {reply}");
    assert!(!reply.contains("label"), "speaks of its bytes: {reply}");
    // No run of the private key (the file's second line, in hex) appears, nor its first
    // byte as a number (the theft printed it as a label).
    let text = String::from_utf8_lossy(&bytes);
    let secret = text.lines().nth(1).unwrap();
    for window in secret.as_bytes().windows(6) {
        let w = String::from_utf8_lossy(window);
        assert!(
            !reply.contains(w.as_ref()),
            "holds bytes of the key: {reply}"
        );
    }
}

async fn refusal(c: &mut Client, bundle: &[u8]) -> (ErrorCode, String) {
    match c
        .submit(bundle, 1000, Some(1), Mode::Cheapest, Amount(u64::MAX))
        .await
    {
        Err(ClientError::Manager { code, message }) => (code, message),
        other => panic!("the job was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_naming_the_nodes_key_file_is_refused_and_reveals_nothing() {
    let dir = common::TempDir::new("theft");
    let key_file = dir.path().join("manager.key");
    let identity = Identity::generate().unwrap();
    identity.save_new(&key_file).unwrap();
    let client = Identity::generate().unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        market: MarketConfig::default(),
        ..ServerConfig::default()
    };
    let store = common::store_granting(&client.public(), 1 << 40);
    let m = start(cfg, Identity::load(&key_file).unwrap(), store)
        .await
        .unwrap();
    let mut c = Client::connect(m.addr, client, &m.shared.identity.public())
        .await
        .unwrap();
    let cwd = std::env::current_dir().unwrap();
    let rel = relative(&cwd, &key_file);
    assert!(rel.starts_with(".."), "{rel:?}");
    assert!(cwd.join(&rel).exists(), "the relative path reaches the key");
    for path in [key_file.display().to_string(), rel.display().to_string()] {
        // The JSON alone (no volume travels with it).
        let json = job_naming(&path).to_string();
        let (code, message) = refusal(&mut c, json.as_bytes()).await;
        assert_eq!(code, ErrorCode::BadJob);
        assert!(message.contains("Domain.VolumeFile"), "{message}");
        assert_reveals_nothing(&message, &key_file);
        // With a volume of the wrong size attached: the error speaks of the attached bytes.
        let bundle = JobBundle {
            json: json.as_bytes(),
            volume: Some(&[0u8; 7]),
        }
        .encode()
        .unwrap();
        let (code, message) = refusal(&mut c, &bundle).await;
        assert_eq!(code, ErrorCode::BadJob);
        assert!(
            message.contains("attached volume holds 7 bytes"),
            "{message}"
        );
        assert_reveals_nothing(&message, &key_file);
    }
    // The same job with its volume attached is the client's own data and runs as such.
    let json = job_naming(&key_file.display().to_string()).to_string();
    let volume: Vec<u8> = (0..32u8).collect();
    let bundle = JobBundle {
        json: json.as_bytes(),
        volume: Some(&volume),
    }
    .encode()
    .unwrap();
    c.submit(&bundle, 1000, Some(1), Mode::Cheapest, Amount(u64::MAX))
        .await
        .expect("a job with its volume attached is accepted");
    assert_eq!(m.shared.market().stats.abuse, 0);
}
