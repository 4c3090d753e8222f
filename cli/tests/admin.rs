//! `compushare admin jobs|ledger|settings` against `compushare manager run` as a child process
//! (issue 14): their text and `--json` output, their refusals, and a cancel and a settings
//! change that survive a `kill -9` of the node.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use compushare_client::Client;
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode};
use compushare_testkit::node::Node;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_compushare")
}

struct Setup {
    root: PathBuf,
    node: Node,
    addr: String,
    op_key: PathBuf,
    client_key: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn keygen(path: &Path) -> String {
    let out = Command::new(bin())
        .arg("keygen")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `compushare ARGS... --manager A --manager-key K --key KEY`.
fn run(s: &Setup, key: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .args([
            "--manager",
            &s.addr,
            "--manager-key",
            &hex::encode(&s.node.key),
        ])
        .arg("--key")
        .arg(key)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// Starts the node and waits until it answers an operator.
fn start(s: &Setup) -> Child {
    let child = s.node.run(&s.addr, &[]).unwrap();
    let t0 = Instant::now();
    while !run(s, &s.op_key, &["admin", "settings"]).status.success() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the node never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

#[test]
fn admin_jobs_ledger_and_settings_on_a_running_node() {
    let root = std::env::temp_dir().join(format!("cs-cli-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let node = Node::init(Path::new(bin()), root.join("mgr")).unwrap();
    let (op_key, client_key) = (root.join("op.key"), root.join("client.key"));
    let op = keygen(&op_key);
    let client = keygen(&client_key);
    let out = Command::new(bin())
        .args(["manager", "init", "--data"])
        .arg(&node.data)
        .args(["--operator", &op])
        .output()
        .unwrap();
    ok(&out);
    node.grant(&hex::decode_array(&client).unwrap(), 10_000)
        .unwrap();
    let s = Setup {
        addr: compushare_testkit::node::free_addr().unwrap(),
        root,
        node,
        op_key,
        client_key,
    };
    let mut child = start(&s);

    // A job with no rig to run it (MCX's cube60 benchmark): it stays open.
    let input = compushare_kernels::transport::builtin::builtin_json("cube60").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let me = Identity::load(&s.client_key).unwrap();
    let (job, _, escrow) = rt.block_on(async {
        let mut c = Client::connect(s.addr.as_str(), me, &s.node.key)
            .await
            .unwrap();
        c.submit(
            input.as_bytes(),
            100_000,
            Some(3),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap()
    });
    let escrow_text = compushare_manager::ledger::format_credits(i128::from(escrow.0));

    // The job list, as JSON and as text.
    let v = json(&run(&s, &s.op_key, &["admin", "jobs", "--json"]));
    let jobs = v.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{v}");
    let j = &jobs[0];
    assert_eq!(j["job"], job.0);
    assert_eq!(j["client"], client.as_str());
    assert_eq!(j["state"], "queued");
    assert_eq!(j["photons_done"], 0);
    assert_eq!(j["photons_total"], 100_000);
    assert_eq!(j["escrow"], escrow_text.as_str());
    assert_eq!(j["spent"], "0.000000");
    assert_eq!(j["fee_bp"], 500);
    let text = ok(&run(&s, &s.op_key, &["admin", "jobs", "--state", "open"]));
    assert!(
        text.starts_with(&format!("job {:<6} client {}", job.0, &client[..8])),
        "{text}"
    );
    let v = json(&run(
        &s,
        &s.op_key,
        &["admin", "jobs", "--state", "done", "--json"],
    ));
    assert_eq!(v, serde_json::json!([]));
    let bad = run(&s, &s.op_key, &["admin", "jobs", "--state", "finished"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--state"));

    // Settings: shown, changed, a bad value refused naming the field.
    let v = json(&run(&s, &s.op_key, &["admin", "settings", "--json"]));
    assert_eq!(
        v,
        serde_json::json!({"fee_bp": 500, "price": 1, "credit_msat": 1, "credit_sat": "0.001"})
    );
    let text = ok(&run(
        &s,
        &s.op_key,
        &[
            "admin",
            "settings",
            "set",
            "fee_bp=250",
            "price=2",
            "credit_sat=1.5",
        ],
    ));
    assert_eq!(text, "fee_bp=250\nprice=2\ncredit_sat=1.5\n");
    let bad = run(&s, &s.op_key, &["admin", "settings", "set", "fee_bp=20000"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("fee_bp"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // The client is no operator.
    let bad = run(&s, &s.client_key, &["admin", "ledger"]);
    assert!(!bad.status.success());

    // The cancel: nothing was verified, so all the escrow goes back.
    let text = ok(&run(
        &s,
        &s.op_key,
        &["admin", "jobs", "cancel", &job.0.to_string()],
    ));
    assert_eq!(
        text,
        format!(
            "job {} cancelled: paid 0.000000 for verified work, fee 0.000000, refunded {escrow_text}\n",
            job.0
        )
    );
    let again = run(
        &s,
        &s.op_key,
        &["admin", "jobs", "cancel", &job.0.to_string()],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("JobEnded"));

    // The ledger's summary.
    let v = json(&run(&s, &s.op_key, &["admin", "ledger", "--json"]));
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["fault"], serde_json::Value::Null);
    assert_eq!(v["granted"], "10000.000000");
    assert_eq!(v["clients"], "10000.000000");
    assert_eq!(v["escrow"], "0.000000");
    assert_eq!(v["refunded"], escrow_text.as_str());
    assert_eq!(v["paid"], "0.000000");
    // grant, escrow, refund.
    assert_eq!(v["entries"], 3);
    assert_eq!(v["head_seq"], 2);
    assert_eq!(v["head_hash"].as_str().unwrap().len(), 64);
    let text = ok(&run(&s, &s.op_key, &["admin", "ledger"]));
    assert!(text.contains("verify: ok"), "{text}");
    assert!(
        text.contains(&format!("refunded          {escrow_text}")),
        "{text}"
    );

    // kill -9, restart: the cancel and the settings were durable before their replies.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = start(&s);
    let status = ok(&run(&s, &s.client_key, &["status", &job.0.to_string()]));
    assert!(status.contains("Cancelled"), "{status}");
    let v = json(&run(
        &s,
        &s.op_key,
        &["admin", "jobs", "--state", "cancelled", "--json"],
    ));
    assert_eq!(v[0]["state"], "cancelled");
    assert_eq!(v[0]["escrow"], "0.000000");
    let v = json(&run(&s, &s.op_key, &["admin", "settings", "--json"]));
    assert_eq!(v["fee_bp"], 250);
    assert_eq!(v["credit_msat"], 1500);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(bin())
        .args(["ledger", "verify", "--data"])
        .arg(&s.node.data)
        .output()
        .unwrap();
    ok(&out);
}
