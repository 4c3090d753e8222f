//! The rig as farms run it: `compushare rig --config rig.conf` as a process on loopback with
//! two CPU devices, next to the validating Stratum test pool (testkit, in this process) and a
//! real management node (`compushare manager run`, a child process).
//!
//! It must: hash valid shares at the pool; move its devices to paid transport when a job is
//! offered (transport pays far more than hashing at a realistic network difficulty) and back
//! to hashing when transport stops paying (manager gone, job done); keep hashing while the
//! manager is killed with SIGKILL; keep a result it finished meanwhile sealed in its vault
//! and deliver it when the manager is back on the same port; and the job completes with the
//! digest of a local run. Its operator surfaces answer meanwhile: the serial console (a pty
//! as the port), the network console (`compushare console`) and `summary+devs` on the
//! cgminer-compatible API.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_client::Client;
use compushare_kernels::transport::builtin::{builtin_job, builtin_json};
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::simulate;
use compushare_protocol::hex;
use compushare_protocol::msg::JobState;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, Mode, PublicKey};
use compushare_testkit::node::{free_addr, Node};
use compushare_testkit::pool::{PoolSettings, StratumPool};
use compushare_testkit::pty::read_until;

/// The built-in cube60 (60^3 grid, 1.7 MB tallies): assignments of a couple of seconds.
const PHOTONS: u64 = 3_000_000;
const SEED: u64 = 31;
const LONG: Duration = Duration::from_secs(120);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_compushare")
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

/// A client of the node at `addr` with the identity in `key_file`, retried while the node
/// starts.
async fn client(addr: &str, key_file: &Path, manager_key: &PublicKey) -> Client {
    let t0 = Instant::now();
    loop {
        let id = Identity::load(key_file).unwrap();
        match Client::connect(addr, id, manager_key).await {
            Ok(c) => return c,
            Err(e) if t0.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("manager unreachable: {e}"),
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

/// One request to the cgminer-compatible API, as cgminer's own clients do: JSON in, the
/// answer read to the end, its trailing NUL dropped.
async fn cgminer(addr: &str, command: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = serde_json::json!({ "command": command, "parameter": "" }).to_string();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    assert_eq!(buf.last(), Some(&0), "cgminer's trailing NUL");
    buf.pop();
    serde_json::from_slice(&buf).unwrap()
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
    let node = Node::init(Path::new(bin()), dir.0.join("manager")).unwrap();
    let mkey = node.key;
    let me = dir.0.join("client.key");
    let (id, _) = Identity::load_or_create(&me).unwrap();
    node.grant(&id.public(), 1_000_000_000).unwrap();
    let addr = free_addr().unwrap();
    // Assignments of several seconds: they are still running when the node is killed, after
    // the node has recorded them (it writes assignments to disk every second).
    let args = ["--target-secs", "8", "--credit-msat", "1"];
    let mut running = node.run(&addr, &args).unwrap();

    // Its operator surfaces: the serial console on a pty, the network console for one
    // operator key, the cgminer API.
    let (mut tty, tty_path) = compushare_testkit::pty::open().unwrap();
    let operator_file = dir.0.join("operator.key");
    let (operator, _) = Identity::load_or_create(&operator_file).unwrap();
    let (api, console) = (free_addr().unwrap(), free_addr().unwrap());

    // The rig, from its rig.conf only. Short dwell and lead so the test need not wait the
    // production half minute; everything else is what an operator writes.
    let conf = dir.0.join("rig.conf");
    std::fs::write(
        &conf,
        format!(
            "# a test rig\nRIG_NAME=proc-rig\nMANAGER={addr}\nMANAGER_KEY={}\n\
             POOL1={}\nPOOL1_USER=rigworker\nPOOL1_PASS=x\nCPU_DEVICES=2\n\
             STATE_DIR={}\nVAULT_SLOTS=4\nVAULT_SLOT_BYTES=4M\nSWITCH_DWELL_S=2\nSWITCH_EVALUATIONS=2\n\
             SERIAL_CONSOLE={}\nAPI_LISTEN={api}\nCONSOLE_LISTEN={console}\nCONSOLE_KEYS={}\n",
            hex::encode(&mkey),
            pool.url(),
            dir.0.join("state").display(),
            tty_path.display(),
            hex::encode(&operator.public()),
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

    // Its operator surfaces answer: the serial console (a pty as the port), the network
    // console (`compushare console`), `summary+devs` on the cgminer API.
    let serial = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut seen = String::new();
        let lim = Duration::from_secs(30);
        assert!(
            read_until(&mut tty, &mut seen, "proc-rig> ", lim),
            "{seen:?}"
        );
        tty.write_all(b"devices\r").unwrap();
        assert!(read_until(&mut tty, &mut seen, "cpu1", lim), "{seen:?}");
        seen
    });
    let seen = serial.await.unwrap();
    assert!(seen.contains("cpu0") && seen.contains("mine"), "{seen:?}");
    let console_says = |line: &str| {
        let mut cmd = Command::new(bin());
        cmd.args(["console", &console, "--key"]).arg(&operator_file);
        let out = cmd.args(["--command", line]).output().unwrap();
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "console {line}: {why}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Snapshots are a quarter second apart: poll until they show the session.
    let t0 = Instant::now();
    let text = loop {
        let text = console_says("status");
        if text.contains("manager") && !text.contains("connecting") {
            break text;
        }
        assert!(t0.elapsed() < LONG, "{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        text.contains("proc-rig") && text.contains("connected"),
        "{text}"
    );
    let v = cgminer(&api, "summary+devs").await;
    let summary = &v["summary"][0];
    assert_eq!(summary["STATUS"][0]["STATUS"], "S", "{v}");
    assert_eq!(summary["SUMMARY"][0]["Manager Status"], "Connected", "{v}");
    let devs = v["devs"][0]["DEVS"].as_array().expect("a DEVS array");
    assert_eq!(devs.len(), 2, "{v}");

    // 2. A job is offered: both devices leave hashing for paid transport.
    let mut c = client(&addr, &me, &mkey).await;
    let (any_price, cube60) = (Amount(u64::MAX), builtin_json("cube60").unwrap());
    let submitted = c.submit(
        cube60.as_bytes(),
        PHOTONS,
        Some(SEED),
        Mode::Cheapest,
        any_price,
    );
    let (job, _price, _) = submitted.await.unwrap();
    let line = log.wait("mine -> transport", 1, LONG).await;
    assert!(
        line.contains("mining") && line.contains("transport"),
        "{line}"
    );
    log.wait("assignment", 1, LONG).await;
    let accepted = log.wait("photons [", 1, LONG).await;
    assert!(accepted.contains("on device"), "{accepted}");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 3. The node is killed while an assignment runs. The rig finishes it into its vault,
    // goes back to hashing (transport stopped paying) and keeps hashing through the outage.
    let done_before = log.count(" done: ");
    running.kill().unwrap();
    running.wait().unwrap();
    drop(c);
    let finished = log.wait(" done: ", done_before + 1, LONG).await;
    // "assignment N done: ..."
    let held: u64 = finished
        .split("assignment ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("an assignment number");
    log.wait("transport -> mine", 1, LONG).await;
    let shares = accepted_from(&pool, "rigworker");
    wait_shares(&pool, "rigworker", shares, "while the manager is down").await;

    // 4. The node comes back on the same port: the rig reconnects, delivers what its vault
    // held, takes transport work again, and the job completes with the local digest.
    let mut running = node.run(&addr, &args).unwrap();
    let delivering = log.wait("held in the vault", 1, LONG).await;
    assert!(delivering.contains("delivering"), "{delivering}");
    // The restarted node takes the result it never saw: it recorded the assignment before
    // it was killed.
    log.wait(&format!("result of assignment {held} delivered"), 1, LONG)
        .await;
    let back_before = log.count("transport -> mine");
    let mut c = client(&addr, &me, &mkey).await;
    let t0 = Instant::now();
    while c
        .status(job)
        .await
        .expect("the job survived the crash")
        .state
        != JobState::Done
    {
        assert!(t0.elapsed() < Duration::from_secs(240), "job stuck");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The job's result is the local run's, bit for bit.
    let fetched = c.fetch(job).await.unwrap().digest();
    let opts = ParseOptions {
        photons: Some(PHOTONS),
        ..ParseOptions::default()
    };
    let mut local = builtin_job("cube60", &opts).unwrap();
    local.seed = SEED;
    let want = simulate(&local, 0..PHOTONS, 2, None).unwrap().digest();
    assert_eq!(fetched, want);
    // Paid work went both ways: to transport again after the restart, and back to hashing
    // once the job's work ended.
    assert!(
        log.count("mine -> transport") >= 2,
        "back to transport after the restart"
    );
    log.wait("transport -> mine", back_before + 1, LONG).await;
    let shares = accepted_from(&pool, "rigworker");
    wait_shares(&pool, "rigworker", shares, "after the job").await;
    // The operator pins a device from the network console; the API shows it hashing.
    let text = console_says("role 1 mine");
    assert!(text.contains("device 1"), "{text}");
    let v = cgminer(&api, "devs").await;
    assert_eq!(v["DEVS"].as_array().map(Vec::len), Some(2), "{v}");
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
    running.kill().unwrap();
    running.wait().unwrap();
}
