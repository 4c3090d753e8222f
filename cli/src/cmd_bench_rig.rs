//! `compushare bench rig`: the rig's own figures for BENCHMARKS.md.
//!
//! - Switch latency, transport end -> hashing: a CPU device worker in the transport role
//!   hashes a pool job (the validating test pool on loopback); a short assignment is handed
//!   to it, and the time from the moment its run ends (the worker's clock) to the moment it
//!   starts its next unit of nonces is measured, `--switches` times (p50, p99, max). The
//!   transport run itself includes sealing the result into its vault slot.
//! - Vault seal throughput: a tally of `--seal-mib` MiB encoded and sealed in place into a
//!   preallocated vault slot, against the allocating path it replaced (encode to a Vec, seal
//!   into another), alternated `--reps` times (medians).
//! - Resident memory of `compushare rig` (this binary, as a child process): idle (two CPU
//!   devices, no pool, no manager), hashing (a pool), and running paid transport (a
//!   management node child process and a job): VmRSS sampled every 200 ms for `--seconds`
//!   per phase (medians).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::DeviceRef;
use compushare_controller::mining::{NumberedPool, RigMining};
use compushare_controller::scheduler::Stance;
use compushare_controller::stratum::client::{ClientConfig, PoolConfig};
use compushare_controller::stratum::conn::PoolUrl;
use compushare_controller::stratum::pools::FailoverConfig;
use compushare_controller::vault::Vault;
use compushare_controller::worker::{self, Activity, TransportTask, WorkerEnv};
use compushare_kernels::transport::builtin::{builtin_job, builtin_json};
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::tally::Tally;
use compushare_protocol::hex;
use compushare_protocol::msg::Assign;
use compushare_protocol::secure::{seal, Identity};
use compushare_protocol::types::{Amount, AssignmentId, JobId, Mode, PhotonRange};
use compushare_testkit::node::{free_addr, Node};
use compushare_testkit::pool::{PoolSettings, StratumPool};
use serde_json::json;

/// Arguments of `compushare bench rig`.
#[derive(clap::Args, Debug)]
pub struct BenchRigArgs {
    /// Transport-end -> hashing switches to time.
    #[arg(long, default_value_t = 20)]
    switches: usize,
    /// Size of the tally sealed, MiB.
    #[arg(long, default_value_t = 16)]
    seal_mib: u64,
    /// Repetitions of each seal path.
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Seconds of memory samples per phase.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Runs the benchmark.
pub fn run(args: BenchRigArgs) -> anyhow::Result<()> {
    if args.switches == 0 || args.switches > 10_000 || args.reps == 0 || args.reps > 1000 {
        bail!("--switches 1..10000 and --reps 1..1000");
    }
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds must be between 0 and 3600");
    }
    if args.seal_mib == 0 || args.seal_mib > 1024 {
        bail!("--seal-mib must be 1 to 1024");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::WORKER_STACK)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut lat = rt.block_on(switch_latency(args.switches))?;
    let (inplace, old) = seal_throughput(args.seal_mib, args.reps)?;
    let rss = rt.block_on(resident(Duration::from_secs_f64(args.seconds)))?;
    let us = |s: f64| s * 1e6;
    let (p50, p99, max) = (
        us(percentile(&mut lat, 0.5)),
        us(percentile(&mut lat, 0.99)),
        us(percentile(&mut lat, 1.0)),
    );
    if args.json {
        println!(
            "{}",
            json!({
                "switches": args.switches,
                "switch_us": { "p50": p50, "p99": p99, "max": max },
                "seal": { "mib": args.seal_mib, "reps": args.reps,
                          "in_place_mib_per_s": inplace, "allocating_mib_per_s": old },
                "rss_kib": { "idle": rss.0, "hashing": rss.1, "transport": rss.2 },
            })
        );
    } else {
        println!(
            "switch transport-end -> hashing over {} switches: p50 {p50:.1} us, p99 {p99:.1} us, max {max:.1} us",
            args.switches
        );
        println!(
            "vault seal of a {} MiB tally: {inplace:.0} MiB/s in place, {old:.0} MiB/s allocating (medians of {})",
            args.seal_mib, args.reps
        );
        println!(
            "compushare rig resident memory (median VmRSS): idle {} KiB, hashing {} KiB, transport {} KiB",
            rss.0, rss.1, rss.2
        );
    }
    Ok(())
}

fn spin_until(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<Instant> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Ok(Instant::now());
        }
        if t0.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::yield_now();
    }
}

async fn switch_latency(n: usize) -> anyhow::Result<Vec<f64>> {
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 1.0,
            ..PoolSettings::default()
        },
    )
    .await?;
    let mining = RigMining::start(
        vec![NumberedPool {
            number: 1,
            pool: PoolConfig {
                url: PoolUrl::parse(&pool.url())?,
                user: "bench".into(),
                pass: "x".into(),
            },
        }],
        1,
        ClientConfig::default(),
        FailoverConfig::default(),
    );
    let link = mining.link().clone();
    let t0 = Instant::now();
    while link.board().current().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the test pool sent no job");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(8);
    let env = WorkerEnv {
        mining: link.clone(),
        events: events_tx,
    };
    let cpu = compushare_hardware::cpu_device();
    let device: DeviceRef = Arc::new(CpuDevice::new(0, 1, cpu.memory_bytes, &cpu.name));
    let cells = worker::start(&[device], &env, Instant::now())?;
    let cell = cells[0].clone();
    cell.set_stance(Stance::Transport, |_| {});
    let mut vault = Vault::new(2, 4 << 20)?;
    let opts = ParseOptions {
        photons: Some(1000),
        ..ParseOptions::default()
    };
    let job = Arc::new(builtin_job("cube60", &opts)?);
    let key = Identity::generate()?.public();
    let board = link.board().clone();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n as u64 {
        spin_until("hashing", Duration::from_secs(10), || {
            cell.activity() == Activity::Mining
        })?;
        let id = AssignmentId(i + 1);
        let slot = vault.reserve(id)?;
        let buf = vault.lend(slot)?;
        let assign = Assign {
            assignment: id,
            job: JobId(1),
            device: 0,
            geometry: [0; 32],
            geometry_len: 0,
            seed: i,
            photons: PhotonRange {
                start: 0,
                count: 1000,
            },
            deadline_unix_s: u64::MAX,
            payout: Amount(0),
        };
        let task = TransportTask {
            assign,
            job: job.clone(),
            slot: buf,
            manager_key: key,
            block_log2: None,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        if cell.hand(task, |s| board.interrupt(s)).is_err() {
            bail!("the device did not take the assignment");
        }
        spin_until("transport", Duration::from_secs(10), || {
            cell.activity() == Activity::Transport
        })?;
        spin_until("the end of transport", Duration::from_secs(60), || {
            cell.activity() != Activity::Transport
        })?;
        let mut back = None;
        spin_until("hashing again", Duration::from_secs(10), || {
            back = cell.back_to_hashing();
            back.is_some()
        })?;
        lat.push(back.map_or(0.0, |d| d.as_secs_f64()));
        match events_rx.recv().await {
            Some(worker::WorkerEvent::Finished { slot, result, .. }) => {
                result.map_err(|e| anyhow::anyhow!("assignment failed: {e}"))?;
                vault.give_back(slot);
            }
            None => bail!("the worker stopped"),
        }
    }
    cell.stop();
    mining.stop().await;
    pool.kill();
    Ok(lat)
}

fn seal_throughput(mib: u64, reps: usize) -> anyhow::Result<(f64, f64)> {
    let cells = (mib << 20) / 8;
    let tally = Tally {
        photons: 1,
        launched: 1,
        deposit: (0..cells).map(|i| i.wrapping_mul(0x9e37_79b9)).collect(),
        ..Tally::default()
    };
    let bytes = tally.canonical_len() as u64;
    let key = Identity::generate()?.public();
    let mut vault = Vault::new(1, bytes + 4096)?;
    let (mut inplace, mut old) = (Vec::new(), Vec::new());
    let mb = bytes as f64 / (1u64 << 20) as f64;
    for r in 0..reps {
        let id = AssignmentId(r as u64);
        let slot = vault.reserve(id)?;
        let mut buf = vault.lend(slot)?;
        let t = Instant::now();
        buf.seal(&tally, &key)?;
        inplace.push(mb / t.elapsed().as_secs_f64());
        vault.give_back(buf);
        let t = Instant::now();
        let sealed = seal::seal(&key, &tally.canonical_bytes())?;
        old.push(mb / t.elapsed().as_secs_f64());
        drop(sealed);
    }
    Ok((median(&mut inplace), median(&mut old)))
}

/// VmRSS of process `pid`, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The median of VmRSS samples every 200 ms over `d`.
async fn sample(pid: u32, d: Duration) -> u64 {
    let mut v = Vec::new();
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let Some(k) = rss_kib(pid) {
            v.push(k as f64);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    median(&mut v) as u64
}

/// A child's stderr lines as they come.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(child: &mut Child) -> Lines {
        let me = Lines::default();
        if let Some(err) = child.stderr.take() {
            let lines = me.0.clone();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut v) = lines.lock() {
                        v.push(l);
                    }
                }
            });
        }
        me
    }

    async fn wait(&self, pat: &str, limit: Duration) -> anyhow::Result<()> {
        let t0 = Instant::now();
        loop {
            if self
                .0
                .lock()
                .map(|v| v.iter().any(|l| l.contains(pat)))
                .unwrap_or(false)
            {
                return Ok(());
            }
            if t0.elapsed() > limit {
                bail!("the rig never logged {pat:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Kills a child on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rig(conf: &Path) -> anyhow::Result<(Kill, Lines)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["rig", "--config"])
        .arg(conf)
        .env("COMPUSHARE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting compushare rig")?;
    let lines = Lines::follow(&mut child);
    Ok((Kill(child), lines))
}

async fn resident(d: Duration) -> anyhow::Result<(u64, u64, u64)> {
    let dir = TempDir::new()?;
    let exe = std::env::current_exe()?;
    let wait = Duration::from_secs(120);
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 0.01,
            nbits: 0x1703_4219,
            ..PoolSettings::default()
        },
    )
    .await?;
    let node = Node::init(&exe, dir.0.join("manager"))?;
    let mkey = node.key;
    let client_id = Identity::generate()?;
    node.grant(&client_id.public(), 100_000_000_000)?;
    let addr = free_addr()?;
    let _node = Kill(node.run(&addr, &["--target-secs", "30"])?);
    let conf = |name: &str, pool_line: &str| -> anyhow::Result<PathBuf> {
        let path = dir.0.join(format!("{name}.conf"));
        std::fs::write(
            &path,
            format!(
                "CPU_DEVICES=2\nSTATE_DIR={}\nMANAGER={addr}\nMANAGER_KEY={}\nSWITCH_DWELL_S=0\n{pool_line}",
                dir.0.join(format!("{name}-state")).display(),
                hex::encode(&mkey)
            ),
        )?;
        Ok(path)
    };
    // Idle: two CPU devices, connected to a manager with no job, no pool to hash for.
    let idle = {
        let (child, lines) = rig(&conf("idle", "")?)?;
        lines.wait("welcomed by", wait).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        sample(child.0.id(), d).await
    };
    // Work: the same with a pool (hashing), then a job (paid transport).
    let (child, lines) = rig(&conf(
        "work",
        &format!("POOL1={}\nPOOL1_USER=bench\n", pool.url()),
    )?)?;
    lines.wait("welcomed by", wait).await?;
    lines.wait("mining on pool", wait).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hashing = sample(child.0.id(), d).await;
    // The built-in cube60: a 60^3 grid, one time gate (a 1.7 MB tally per run).
    let job = builtin_json("cube60").context("the built-in cube60")?;
    let mut c = compushare_client::Client::connect(addr.as_str(), client_id, &mkey).await?;
    c.submit(
        job.as_bytes(),
        50_000_000,
        Some(1),
        Mode::Cheapest,
        Amount(u64::MAX),
    )
    .await?;
    lines.wait("photons [", wait).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let transport = sample(child.0.id(), d).await;
    drop(child);
    pool.kill();
    Ok((idle, hashing, transport))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d = std::env::temp_dir().join(format!("cs-bench-rig-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d)?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
