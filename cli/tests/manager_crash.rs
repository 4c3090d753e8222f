//! Crash: `compushare manager run` as a child process on a persistent ledger, three real rigs
//! (the controller's transport client) and a client. The manager is killed with SIGKILL
//! mid-job and restarted on the same port: the job completes, its result equals a local run,
//! `ledger verify` passes and the workers were paid exactly once for exactly the job's photons.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compushare_controller::rig::Rig;
use compushare_controller::settings::RigSettings;
use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::simulate;
use compushare_manager::client::Client;
use compushare_manager::escrow::Bank;
use compushare_manager::store_bank::StoreBank;
use compushare_manager::Store;
use compushare_protocol::hex;
use compushare_protocol::msg::JobState;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode, PublicKey};

const JOB: &str = r#"{
  "Session": { "ID": "crash", "Photons": 1000, "RNGSeed": 5 },
  "Forward": { "T0": 0, "T1": 2e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [10, 10, 10], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.02, "mus": 1.5, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [10, 10, 10] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [5, 5, 0], "Dir": [0, 0, 1] } }
}"#;
// Enough that the job is still running when the first verified result is seen, however fast
// the machine: the test kills the manager between the two.
const PHOTONS: u64 = 600_000;
const SEED: u64 = 77;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_compushare")
}

fn manager(data: &Path, addr: &str) -> Child {
    Command::new(bin())
        .args(["manager", "run", "--data"])
        .arg(data)
        .args(["--listen", addr, "--target-secs", "0.05"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn manager")
}

async fn client(addr: &str, key_file: &Path, manager_key: &PublicKey) -> Client {
    let t0 = Instant::now();
    loop {
        let me = Identity::load(key_file).unwrap();
        match Client::connect(addr, me, manager_key).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "manager unreachable: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn rig(addr: &str, key: PublicKey, dir: PathBuf, name: &str) -> (PublicKey, RigSettings) {
    let payout = Identity::generate().unwrap().public();
    std::fs::create_dir_all(&dir).unwrap();
    let settings = compushare_testkit::rig::transport_rig(addr, key, name, payout, dir);
    (payout, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_restart_completes_and_pays_once() {
    let dir = std::env::temp_dir().join(format!("cs-manager-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let init = Command::new(bin())
        .args(["manager", "init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success());
    let mkey: PublicKey = hex::decode_array(String::from_utf8_lossy(&init.stdout).trim()).unwrap();
    let ckey_file = dir.join("client.key");
    let (client_id, _) = Identity::load_or_create(&ckey_file).unwrap();
    let grant = Command::new(bin())
        .args(["manager", "grant", "--data"])
        .arg(&data)
        .arg(hex::encode(&client_id.public()))
        .arg("1000")
        .output()
        .unwrap();
    assert!(grant.status.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = manager(&data, &addr);

    let mut payouts = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (payout, settings) = rig(&addr, mkey, dir.join(format!("rig{i}")), &format!("rig{i}"));
        payouts.push(payout);
        let r =
            tokio::task::spawn_blocking(move || Rig::new(settings, Identity::generate().unwrap()))
                .await
                .unwrap()
                .unwrap();
        tasks.push(tokio::spawn(r.run()));
    }
    let mut c = client(&addr, &ckey_file, &mkey).await;
    let (job, price, _) = c
        .submit(
            JOB.as_bytes(),
            PHOTONS,
            Some(SEED),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap();
    // Wait for some, not all, verified work; then kill -9.
    let t0 = Instant::now();
    loop {
        let s = c.status(job).await.unwrap();
        if s.photons_done > 0 && s.state != JobState::Done {
            break;
        }
        assert!(
            s.state != JobState::Done,
            "job finished before the crash; make it longer"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no progress: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(c);
    let mut child = manager(&data, &addr);
    let mut c = client(&addr, &ckey_file, &mkey).await;
    let t0 = Instant::now();
    loop {
        let s = c.status(job).await.expect("job survived the crash");
        if s.state == JobState::Done {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(150),
            "stuck after restart: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tally = c.fetch(job).await.unwrap();
    let mut local = parse_job_bytes(JOB.as_bytes(), &ParseOptions::default()).unwrap();
    local.seed = SEED;
    assert_eq!(
        tally.digest(),
        simulate(&local, 0..PHOTONS, 2, None).unwrap().digest()
    );
    for t in &tasks {
        t.abort();
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let verify = Command::new(bin())
        .args(["ledger", "verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Paid exactly once for exactly the job's photons.
    let bank = StoreBank::new(std::sync::Arc::new(Store::open_dir(&data).unwrap()));
    let paid: u64 = payouts
        .iter()
        .map(|p| bank.balance(p) + bank.held(p).unwrap())
        .sum();
    assert_eq!(paid, PHOTONS * price.0);
    let _ = std::fs::remove_dir_all(&dir);
}
