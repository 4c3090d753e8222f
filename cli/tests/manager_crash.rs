//! Crash: `compushare manager run` as a child process on a persistent ledger, three rig
//! processes (`compushare rig --config rig.conf`) and a client, with three jobs running. The
//! manager is killed with SIGKILL at random moments, several times, and restarted on the same
//! port each time, while the rigs keep working. Then:
//! - every job completes with the digest of a local run of the same job;
//! - no rig waits on work the node forgot: a last job is worked on by every rig (a rig whose
//!   device sat busy with an assignment the restarted node did not know, or that was never
//!   offered work again, would be missing from it);
//! - `ledger verify` passes, and the workers were paid exactly once for exactly the jobs'
//!   photons (results a rig finished before a crash are taken once, never paid twice).
//!
//! The kill moments come from a seed printed at the start (`CRASH_SEED=N` repeats a run).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compushare_client::Client;
use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::simulate;
use compushare_manager::escrow::Bank;
use compushare_manager::store_bank::StoreBank;
use compushare_manager::Store;
use compushare_protocol::hex;
use compushare_protocol::msg::JobState;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey};

const JOB: &str = r#"{
  "Session": { "ID": "crash", "Photons": 1000, "RNGSeed": 5 },
  "Forward": { "T0": 0, "T1": 2e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [10, 10, 10], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.02, "mus": 1.5, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [10, 10, 10] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [5, 5, 0], "Dir": [0, 0, 1] } }
}"#;
/// Photons of each of the jobs the crashes hit, and their seeds.
const PHOTONS: u64 = 150_000;
const SEEDS: [u64; 3] = [77, 78, 79];
/// Kills of the manager (each at a random moment while the jobs run).
const KILLS: usize = 4;
/// Photons of the last job, which every rig must work on.
const LAST: u64 = 60_000;
const RIGS: usize = 3;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_compushare")
}

fn manager(data: &Path, addr: &str) -> Child {
    Command::new(bin())
        .args(["manager", "run", "--data"])
        .arg(data)
        .args(["--listen", addr, "--target-secs", "0.05"])
        .stdout(Stdio::null())
        .stderr(log_to(data.parent().unwrap_or(data), "manager"))
        .spawn()
        .expect("spawn manager")
}

/// A rig process with one CPU device; its identity key is made here so the test knows it.
fn rig(dir: &Path, addr: &str, manager_key: &PublicKey, name: &str) -> (Child, PublicKey) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let id = Identity::generate().unwrap();
    id.save_new(&state.join("rig.key")).unwrap();
    let payout = Identity::generate().unwrap().public();
    let conf = dir.join("rig.conf");
    std::fs::write(
        &conf,
        format!(
            "MANAGER={addr}\nMANAGER_KEY={}\nRIG_NAME={name}\nPAYOUT={}\nCPU_DEVICES=1\nSTATE_DIR={}\n",
            hex::encode(manager_key),
            hex::encode(&payout),
            state.display()
        ),
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["rig", "--config"])
        .arg(&conf)
        // The checks read its log of assignments started and ended.
        .env("COMPUSHARE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_to(dir, "rig"))
        .spawn()
        .expect("spawn rig");
    (child, payout)
}

/// Where a child's stderr goes: `NAME.log` in `dir` (appended across restarts), read by the
/// checks below; `CRASH_LOGS=1` prints them at the end.
fn log_to(dir: &Path, name: &str) -> Stdio {
    let path = dir.join(format!("{name}.log"));
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

/// Assignments a rig's log shows it started and never ended (done, cancelled or failed): a
/// rig still running, or waiting on, work of a job the node forgot.
fn unfinished(rig_log: &str) -> Vec<u64> {
    let id = |l: &str, tail: &str| -> Option<u64> {
        l.split("assignment ")
            .nth(1)?
            .split(tail)
            .next()?
            .parse()
            .ok()
    };
    let mut open = std::collections::BTreeSet::new();
    for l in rig_log.lines() {
        if l.contains(": job ") {
            open.extend(id(l, ":"));
        } else if l.contains(" done: ") || l.contains(" cancelled") || l.contains(" failed: ") {
            for tail in [" done", " cancelled", " failed"] {
                if let Some(n) = id(l, tail) {
                    open.remove(&n);
                }
            }
        }
    }
    open.into_iter().collect()
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

/// xorshift64*: the kill moments, reproducible from the printed seed.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (hi - lo)
    }
}

fn local_digest(seed: u64, photons: u64) -> [u8; 32] {
    let mut local = parse_job_bytes(JOB.as_bytes(), &ParseOptions::default()).unwrap();
    local.seed = seed;
    simulate(&local, 0..photons, 2, None).unwrap().digest()
}

/// Polls until every job is done (a fresh client after each restart), within `limit`.
async fn wait_all(addr: &str, key_file: &Path, mkey: &PublicKey, jobs: &[JobId], limit: Duration) {
    let t0 = Instant::now();
    let mut c = client(addr, key_file, mkey).await;
    for &job in jobs {
        loop {
            let s = match c.status(job).await {
                Ok(s) => s,
                Err(_) => {
                    c = client(addr, key_file, mkey).await;
                    continue;
                }
            };
            if s.state == JobState::Done {
                break;
            }
            assert!(s.state != JobState::Failed, "job {} failed", job.0);
            assert!(t0.elapsed() < limit, "stuck after the crashes: {s:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Cleanup {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_every_job_completes_once_paid() {
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
        .arg("100000")
        .output()
        .unwrap();
    assert!(grant.status.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("CRASH_SEED={seed}");
    let mut moments = Moments(seed);
    let mut guard = Cleanup {
        children: vec![manager(&data, &addr)],
        dir: dir.clone(),
    };
    let mut payouts = Vec::new();
    for i in 0..RIGS {
        let (child, payout) = rig(
            &dir.join(format!("rig{i}")),
            &addr,
            &mkey,
            &format!("rig{i}"),
        );
        guard.children.push(child);
        payouts.push(payout);
    }

    let mut c = client(&addr, &ckey_file, &mkey).await;
    let mut jobs = Vec::new();
    let mut owed = 0u64;
    for s in SEEDS {
        let (job, price, _) = c
            .submit(
                JOB.as_bytes(),
                PHOTONS,
                Some(s),
                Mode::Cheapest,
                Amount(u64::MAX),
            )
            .await
            .unwrap();
        owed += PHOTONS * price.0;
        jobs.push(job);
    }
    drop(c);
    // Wait until the rigs are at work, then kill at random moments.
    let mut c = client(&addr, &ckey_file, &mkey).await;
    let t0 = Instant::now();
    while c.status(jobs[0]).await.unwrap().photons_done == 0 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    let mut hit_running = 0;
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(moments.next_ms(200, 1500))).await;
        let mut c = client(&addr, &ckey_file, &mkey).await;
        let mut running = false;
        for &job in &jobs {
            running |= c.status(job).await.unwrap().state != JobState::Done;
        }
        drop(c);
        hit_running += usize::from(running);
        let mut m = guard.children.remove(0);
        m.kill().unwrap();
        m.wait().unwrap();
        guard.children.insert(0, manager(&data, &addr));
    }
    assert!(
        hit_running >= 2,
        "only {hit_running} kill(s) hit running jobs; make them longer"
    );
    wait_all(&addr, &ckey_file, &mkey, &jobs, Duration::from_secs(300)).await;
    let mut c = client(&addr, &ckey_file, &mkey).await;
    for (&job, &s) in jobs.iter().zip(&SEEDS) {
        let tally = c.fetch(job).await.unwrap();
        assert_eq!(tally.digest(), local_digest(s, PHOTONS), "job {}", job.0);
    }

    // A last job completes at once: the rigs are free to take it.
    let (last, price, _) = c
        .submit(
            JOB.as_bytes(),
            LAST,
            Some(80),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap();
    owed += LAST * price.0;
    drop(c);
    wait_all(&addr, &ckey_file, &mkey, &[last], Duration::from_secs(60)).await;
    let mut c = client(&addr, &ckey_file, &mkey).await;
    assert_eq!(
        c.fetch(last).await.unwrap().digest(),
        local_digest(80, LAST)
    );
    drop(c);
    // No rig waits on work the node forgot: every assignment any rig started has ended.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..RIGS {
        let log = std::fs::read_to_string(dir.join(format!("rig{i}/rig.log"))).unwrap_or_default();
        if std::env::var_os("CRASH_LOGS").is_some() {
            println!("--- rig{i}\n{log}");
        }
        assert_eq!(
            unfinished(&log),
            Vec::<u64>::new(),
            "rig{i} still holds work"
        );
    }
    for ch in &mut guard.children {
        ch.kill().unwrap();
        ch.wait().unwrap();
    }
    guard.children.clear();

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
    // Paid exactly once for exactly the jobs' photons (checks ran on the manager's engine:
    // no rig is trusted, so no check run was paid).
    let bank = StoreBank::new(std::sync::Arc::new(Store::open_dir(&data).unwrap()));
    let paid: u64 = payouts
        .iter()
        .map(|p| bank.balance(p).unwrap() + bank.held(p).unwrap())
        .sum();
    if paid != owed {
        let read = bank.store().read().unwrap();
        let mut lines = Vec::new();
        for e in read.entries(0, usize::MAX).unwrap() {
            let e = e.entry;
            lines.push(format!(
                "{:?} {} -> {} {} job {:?} a {:?}",
                e.kind, e.debit, e.credit, e.amount, e.job, e.assignment
            ));
        }
        let payouts: Vec<String> = payouts.iter().map(|p| hex::encode(&p[..4])).collect();
        panic!(
            "paid {paid}, owed {owed}; payouts {payouts:?}\n{}",
            lines.join("\n")
        );
    }
}
