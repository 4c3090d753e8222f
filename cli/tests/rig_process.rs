//! The rig as farms run it: `compushare rig --config rig.conf` as a process on loopback with
//! two CPU devices, next to the validating Stratum test pool (testkit, in this process) and a
//! real management node (`compushare manager run`, a child process).
//!
//! It must: hash valid shares at the pool; move its devices to paid transport when a job is
//! offered (transport pays far more than hashing at a realistic network difficulty) and back
//! to hashing when transport stops paying (manager gone, job done); keep hashing while the
//! manager is killed with SIGKILL; keep a result it finished meanwhile sealed in its vault
//! and deliver it when the manager is back on the same port; and the job completes with the
//! digest of a local run.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::simulate;
use compushare_manager::client::Client;
use compushare_protocol::hex;
use compushare_protocol::msg::JobState;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode, PublicKey};
use compushare_testkit::pool::{PoolSettings, StratumPool};

const JOB: &str = r#"{
  "Session": { "ID": "rigproc", "Photons": 1000, "RNGSeed": 5 },
  "Forward": { "T0": 0, "T1": 2e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [10, 10, 10], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.02, "mus": 1.5, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [10, 10, 10] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [5, 5, 0], "Dir": [0, 0, 1] } }
}"#;
const PHOTONS: u64 = 400_000;
const SEED: u64 = 31;
const LONG: Duration = Duration::from_secs(120);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_compushare")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn manager(data: &Path, addr: &str) -> Child {
    Command::new(bin())
        .args(["manager", "run", "--data"])
        .arg(data)
        // Assignments of about two seconds: one is still running when the node is killed.
        .args(["--listen", addr, "--target-secs", "2", "--credit-msat", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn manager")
}

/// The rig's stderr, line by line, as it comes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn follow(&self, child: &mut Child) {
        let err = child.stderr.take().expect("piped stderr");
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("rig| {l}");
                lines.lock().unwrap().push(l);
            }
        });
    }

    fn count(&self, pat: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(pat))
            .count()
    }

    /// Waits until `n` lines contain `pat`; returns the last of them.
    async fn wait(&self, pat: &str, n: usize, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            {
                let lines = self.0.lock().unwrap();
                let hits: Vec<&String> = lines.iter().filter(|l| l.contains(pat)).collect();
                if hits.len() >= n {
                    return hits[n - 1].clone();
                }
            }
            assert!(
                t0.elapsed() < limit,
                "no {n} log line(s) with {pat:?} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn client(addr: &str, key_file: &Path, manager_key: &PublicKey) -> Client {
    let t0 = Instant::now();
    loop {
        match Client::connect(addr, Identity::load(key_file).unwrap(), manager_key).await {
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

fn accepted_from(pool: &StratumPool, worker: &str) -> usize {
    pool.accepted_shares()
        .iter()
        .filter(|s| s.submit.worker == worker)
        .count()
}

async fn wait_shares(pool: &StratumPool, worker: &str, more_than: usize, what: &str) -> usize {
    let t0 = Instant::now();
    loop {
        let n = accepted_from(pool, worker);
        if n > more_than {
            return n;
        }
        assert!(t0.elapsed() < LONG, "no share from the rig {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rig_hashes_switches_to_paid_work_and_survives_a_manager_crash() {
    let dir = Dir(std::env::temp_dir().join(format!("cs-rig-process-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();

    // The pool: easy shares, but a mainnet-like network difficulty (nbits), so a CPU's hash
    // rate earns next to nothing and paid transport wins.
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 0.002,
            nbits: 0x1703_4219,
            job_interval: Some(Duration::from_secs(2)),
            ..PoolSettings::default()
        },
    )
    .await
    .unwrap();

    // The management node, with a funded client.
    let data = dir.0.join("manager");
    let init = Command::new(bin())
        .args(["manager", "init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success());
    let mkey: PublicKey = hex::decode_array(String::from_utf8_lossy(&init.stdout).trim()).unwrap();
    let ckey_file = dir.0.join("client.key");
    let (client_id, _) = Identity::load_or_create(&ckey_file).unwrap();
    let grant = Command::new(bin())
        .args(["manager", "grant", "--data"])
        .arg(&data)
        .arg(hex::encode(&client_id.public()))
        .arg("1000000000")
        .output()
        .unwrap();
    assert!(grant.status.success());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut node = manager(&data, &addr);

    // The rig, from its rig.conf only. Short dwell and lead so the test need not wait the
    // production half minute; everything else is what an operator writes.
    let conf = dir.0.join("rig.conf");
    std::fs::write(
        &conf,
        format!(
            "# a test rig\nRIG_NAME=proc-rig\nMANAGER={addr}\nMANAGER_KEY={}\n\
             POOL1={}\nPOOL1_USER=rigworker\nPOOL1_PASS=x\nCPU_DEVICES=2\n\
             STATE_DIR={}\nVAULT_SLOTS=4\nVAULT_SLOT_BYTES=1M\nSWITCH_DWELL_S=2\nSWITCH_EVALUATIONS=2\n",
            hex::encode(&mkey),
            pool.url(),
            dir.0.join("state").display()
        ),
    )
    .unwrap();
    let mut rig = Command::new(bin())
        .args(["rig", "--config"])
        .arg(&conf)
        .env("COMPUSHARE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rig");
    let log = Log::default();
    log.follow(&mut rig);

    // 1. It hashes: valid shares at the pool, from its worker.
    wait_shares(&pool, "rigworker", 0, "at start").await;
    log.wait("welcomed by", 1, LONG).await;

    // 2. A job is offered: both devices leave hashing for paid transport.
    let mut c = client(&addr, &ckey_file, &mkey).await;
    let (job, _price, _) = c
        .submit(
            JOB.as_bytes(),
            PHOTONS,
            Some(SEED),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap();
    let line = log.wait("mine -> transport", 1, LONG).await;
    assert!(
        line.contains("mining") && line.contains("transport"),
        "{line}"
    );
    log.wait("assignment", 1, LONG).await;
    let accepted = log.wait("photons [", 1, LONG).await;
    assert!(accepted.contains("on device"), "{accepted}");

    // 3. The node is killed while an assignment runs. The rig finishes it into its vault,
    // goes back to hashing (transport stopped paying) and keeps hashing through the outage.
    node.kill().unwrap();
    node.wait().unwrap();
    drop(c);
    let done_before = log.count("done on device");
    log.wait("done on device", done_before + 1, LONG).await;
    log.wait("transport -> mine", 1, LONG).await;
    let shares = accepted_from(&pool, "rigworker");
    wait_shares(&pool, "rigworker", shares, "while the manager is down").await;

    // 4. The node comes back on the same port: the rig reconnects, delivers what its vault
    // held, takes transport work again, and the job completes with the local digest.
    let mut node = manager(&data, &addr);
    let delivering = log.wait("held in the vault", 1, LONG).await;
    assert!(delivering.contains("delivering"), "{delivering}");
    let mut c = client(&addr, &ckey_file, &mkey).await;
    let t0 = Instant::now();
    loop {
        let s = c.status(job).await.expect("the job survived the crash");
        if s.state == JobState::Done {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(240), "job stuck: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tally = c.fetch(job).await.unwrap();
    let mut local = parse_job_bytes(JOB.as_bytes(), &ParseOptions::default()).unwrap();
    local.seed = SEED;
    assert_eq!(
        tally.digest(),
        simulate(&local, 0..PHOTONS, 2, None).unwrap().digest()
    );
    // Paid work went both ways: to transport again after the restart, and back to hashing
    // once the job's work ended.
    assert!(
        log.count("mine -> transport") >= 2,
        "back to transport after the restart"
    );
    let back = log.count("transport -> mine");
    log.wait("transport -> mine", back + 1, LONG).await;
    let shares = accepted_from(&pool, "rigworker");
    wait_shares(&pool, "rigworker", shares, "after the job").await;
    // Every share it sent was valid.
    let st = pool.stats();
    assert_eq!(
        (
            st.low_difficulty,
            st.duplicate,
            st.bad_submit,
            st.unknown_job
        ),
        (0, 0, 0, 0),
        "{st:?}"
    );
    assert!(
        rig.try_wait().unwrap().is_none(),
        "the rig is still running"
    );
    rig.kill().unwrap();
    rig.wait().unwrap();
    node.kill().unwrap();
    node.wait().unwrap();
}
