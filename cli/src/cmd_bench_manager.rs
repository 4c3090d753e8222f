//! `compushare bench manager`: many simulated rigs against one management node on loopback.
//!
//! Starts `compushare manager run` as a child process (so its CPU and memory are measured
//! alone, from /proc), submits one large job, then connects `--rigs` simulated rigs over real
//! Noise/TCP. Each rig says Hello with `--devices` devices and, every `--heartbeat` seconds
//! (staggered over the period), sends a Heartbeat and a Bid for one more of its devices. The
//! assignment latency is the time from sending a Bid to receiving its Assign, measured at the
//! rig. Simulated rigs hold their assignments (the photon pool is far larger than the run
//! uses), so every bid is answered with work. The run stops by itself after `--duration`
//! seconds and prints one JSON object. Memory per session is the manager's resident memory in
//! the measured window less its resident memory before the first rig, over the rigs connected.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_client::Client;
use compushare_protocol::hex;
use compushare_protocol::msg::{
    self as msg, Bid, Heartbeat, ManagerToRig, RigHello, RigToManager, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, DeviceInfo, DeviceKind, JobId, Mode, PublicKey};

/// The job the benchmark submits (small grid: the manager's calibration is quick).
pub(crate) const JOB: &str = r#"{
  "Session": { "ID": "bench", "Photons": 1000, "RNGSeed": 1 },
  "Forward": { "T0": 0, "T1": 1e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [8, 8, 8], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.1, "mus": 1, "g": 0.9, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [8, 8, 8] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [4, 4, 0], "Dir": [0, 0, 1] } }
}"#;

/// Arguments of `compushare bench manager`.
#[derive(clap::Args, Debug)]
pub struct BenchManagerArgs {
    /// Simulated rigs.
    #[arg(long, default_value_t = 10_000)]
    pub rigs: usize,
    /// Seconds of steady state measured after every rig connected.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seconds between a rig's heartbeats (and bids).
    #[arg(long, default_value_t = 10)]
    pub heartbeat: u64,
    /// Devices per simulated rig (one more is bid for each heartbeat).
    #[arg(long, default_value_t = 8)]
    pub devices: u8,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 64)]
    pub ramp: usize,
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    heartbeats: AtomicU64,
    bids: AtomicU64,
    assigns: AtomicU64,
    closed: AtomicU64,
}

fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn proc_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A figure of /proc/PID/smaps_rollup in KiB (`Anonymous:`: the resident memory that is no
/// file's pages: heap, arenas, stacks).
pub(crate) fn rollup_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clk_tck() -> f64 {
    // Linux reports /proc times in USER_HZ, 100 on every mainstream configuration.
    100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A bounded string from a short literal (cut to its capacity).
use compushare_protocol::types::bounded as short;

pub(crate) fn hello(i: usize, devices: u8) -> RigHello {
    let mut list = heapless::Vec::new();
    for d in 0..devices {
        let _ = list.push(DeviceInfo {
            index: d,
            kind: DeviceKind::Cpu,
            name: short("sim"),
            compute_units: 8,
            cores: 8,
            memory: 1 << 30,
            hash_rate: 0,
            histories_per_s: 1000,
        });
    }
    let mut name = heapless::String::new();
    let _ = name.push_str(&format!("sim{i}"));
    RigHello {
        version: PROTOCOL_VERSION,
        firmware: short("bench"),
        name,
        payout: [7; 32],
        devices: list,
        farm: None,
        sheet: None,
    }
}

struct RigCtx {
    addr: std::net::SocketAddr,
    key: PublicKey,
    job: JobId,
    devices: u8,
    period: Duration,
    offset: Duration,
    until: Instant,
    counters: Arc<Counters>,
    latencies: Arc<Mutex<Vec<f64>>>,
    ramp: Arc<tokio::sync::Semaphore>,
    index: usize,
}

/// What a simulated rig needs to know of a manager's message.
#[derive(Debug)]
pub(crate) enum Kind {
    Welcome,
    Assign,
    /// Anything else, as the manager said it (or why it did not decode).
    Other(String),
}

/// Decodes a frame outside the async state machines (never inlined into them): a `ManagerToRig` is ~60 KiB (its largest
/// variant holds a chunk inline), and one held across an await would sit in each of the
/// thousands of simulated rigs' futures.
#[inline(never)]
pub(crate) fn kind(bytes: &[u8]) -> Kind {
    match msg::decode_boxed::<ManagerToRig>(bytes).as_deref() {
        Ok(ManagerToRig::Welcome(_)) => Kind::Welcome,
        Ok(ManagerToRig::Assign(_)) => Kind::Assign,
        Ok(other) => Kind::Other(format!("{other:?}")),
        Err(e) => Kind::Other(format!("undecodable: {e}")),
    }
}

async fn sim_rig(ctx: RigCtx) {
    let me = match Identity::generate() {
        Ok(m) => m,
        Err(_) => return,
    };
    let (mut rd, mut wr) = {
        let _permit = ctx.ramp.acquire().await;
        let ch = match connect_tcp(ctx.addr, &me, &ctx.key, HANDSHAKE_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => {
                if ctx.counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("bench manager: first rig could not connect: {e}");
                }
                return;
            }
        };
        let (mut rd, mut wr) = ch.split();
        if wr
            .send(&RigToManager::Hello(hello(ctx.index, ctx.devices)))
            .await
            .is_err()
        {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match rd.recv_bytes().await.map(kind) {
            Ok(Kind::Welcome) => {}
            other => {
                if ctx.counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    let why = match other {
                        Ok(Kind::Other(said)) => said,
                        Ok(k) => format!("{k:?}"),
                        Err(e) => e.to_string(),
                    };
                    eprintln!("bench manager: first rig refused: {why}");
                }
                return;
            }
        }
        (rd, wr)
    };
    ctx.counters.connected.fetch_add(1, Ordering::Relaxed);
    // Nanoseconds since `base` when the outstanding bid was sent (0: none).
    let base = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let counters = ctx.counters.clone();
    let lat = ctx.latencies.clone();
    let reader = tokio::spawn(async move {
        loop {
            match rd.recv_bytes().await.map(kind) {
                Ok(Kind::Assign) => {
                    let t = s2.swap(0, Ordering::Relaxed);
                    counters.assigns.fetch_add(1, Ordering::Relaxed);
                    if t > 0 {
                        let now = base.elapsed().as_nanos() as u64;
                        let ms = now.saturating_sub(t) as f64 / 1e6;
                        if let Ok(mut l) = lat.lock() {
                            l.push(ms);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    });
    tokio::time::sleep(ctx.offset).await;
    let mut next_device = 0u8;
    let mut beat = tokio::time::interval(ctx.period);
    let start = Instant::now();
    while Instant::now() < ctx.until {
        beat.tick().await;
        let hb = Heartbeat {
            uptime_s: start.elapsed().as_secs(),
            devices: heapless::Vec::new(),
            vault_used: 0,
            vault_slots: 8,
        };
        if wr.send(&RigToManager::Heartbeat(hb)).await.is_err() {
            break;
        }
        ctx.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
        if next_device < ctx.devices {
            let bid = Bid {
                job: ctx.job,
                device: next_device,
                cores: 8,
                histories_per_s: 1000,
                min_price: Amount(0),
            };
            next_device += 1;
            sent.store(base.elapsed().as_nanos().max(1) as u64, Ordering::Relaxed);
            if wr.send(&RigToManager::Bid(bid)).await.is_err() {
                break;
            }
            ctx.counters.bids.fetch_add(1, Ordering::Relaxed);
        }
    }
    reader.abort();
}

/// Environment variable naming a command the manager child is started under (a profiler), for
/// example `COMPUSHARE_BENCH_WRAP="heaptrack -o /tmp/manager"`: its words go before
/// `compushare manager run ...`. The figures are then read from the manager process itself
/// (found among the wrapper's descendants: [`manager_pid`]), and [`stop_manager`] ends it
/// with SIGINT, so the wrapper can finish its output.
pub(crate) const WRAP_ENV: &str = "COMPUSHARE_BENCH_WRAP";

/// Whether the manager is started under a [`WRAP_ENV`] wrapper.
fn wrapped() -> bool {
    std::env::var(WRAP_ENV).is_ok_and(|w| !w.trim().is_empty())
}

/// `compushare manager run` on `dir`, listening on a loopback port, with `client` granted
/// plenty; its stdout piped (for [`banner`]). Its log, for a failing run:
/// `COMPUSHARE_BENCH_MANAGER_LOG=1`; under a profiler: [`WRAP_ENV`].
pub(crate) fn spawn_manager(
    dir: &std::path::Path,
    client: &PublicKey,
    extra: &[&str],
) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe()?;
    let wrap = std::env::var(WRAP_ENV).unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(["manager", "run", "--data"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--grant"])
        .arg(format!("{}={}", hex::encode(client), u64::MAX / 4))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(
            if std::env::var_os("COMPUSHARE_BENCH_MANAGER_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            },
        )
        .spawn()
        .with_context(|| format!("starting compushare manager run (wrapped in {wrap:?})"))
}

/// The manager's own process id: the child's, or under a [`WRAP_ENV`] wrapper the child or
/// descendant of it that runs this executable (a wrapper may exec it or start it). Call it after [`banner`] (the manager
/// is running by then).
pub(crate) fn manager_pid(child: &std::process::Child) -> anyhow::Result<u32> {
    let root = child.id();
    if !wrapped() {
        return Ok(root);
    }
    let exe = std::env::current_exe()?;
    // Parent of every process now, from /proc/PID/stat (field 4, after the command name).
    let mut parent = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent.insert(pid, ppid);
        }
    }
    let descends = |mut pid: u32| {
        for _ in 0..64 {
            if pid == root {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p != pid => pid = p,
                _ => return false,
            }
        }
        false
    };
    parent
        .keys()
        .copied()
        .filter(|&pid| descends(pid))
        .find(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe))
        .with_context(|| format!("no manager process under the {WRAP_ENV} wrapper (pid {root})"))
}

/// Ends the manager: killed when it is the child; under a [`WRAP_ENV`] wrapper interrupted
/// (SIGINT: it exits as on Ctrl-C) and the wrapper waited for (at most a minute), so a
/// profiler writes its output.
pub(crate) fn stop_manager(child: &mut std::process::Child, pid: u32) {
    if wrapped() {
        let interrupted = Command::new("sh")
            .args(["-c", "kill -INT \"$0\"", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let until = Instant::now() + Duration::from_secs(60);
        while interrupted && Instant::now() < until {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                _ => return,
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The multi-threaded runtime the simulated peers of a benchmark run on (thread stacks sized
/// for the protocol's messages).
pub(crate) fn bench_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::WORKER_STACK)
        .enable_all()
        .build()
}

/// The manager's key and address from its first line, "manager HEX listening on ADDR".
pub(crate) fn banner(
    child: &mut std::process::Child,
) -> anyhow::Result<(PublicKey, std::net::SocketAddr)> {
    let stdout = child.stdout.take().context("manager stdout")?;
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    // A wrapper (see [`WRAP_ENV`]) may print a few lines of its own first.
    for _ in 0..64 {
        line.clear();
        if stdout.read_line(&mut line)? == 0 || line.starts_with("manager ") {
            break;
        }
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let (key_hex, addr) = match words.as_slice() {
        ["manager", k, "listening", "on", a] => (*k, *a),
        _ => bail!("unexpected manager banner {line:?}"),
    };
    let key: PublicKey = hex::decode_array(key_hex).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((key, addr.parse()?))
}

/// Runs `compushare bench manager`.
pub fn run(args: BenchManagerArgs) -> anyhow::Result<()> {
    if args.rigs == 0 || args.heartbeat == 0 || args.devices == 0 || args.devices > 32 {
        bail!("--rigs, --heartbeat and --devices (1-32) must be positive");
    }
    let dir = std::env::temp_dir().join(format!("compushare-bench-manager-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let client = Identity::generate()?;
    let mut child = spawn_manager(&dir, &client.public(), &[])?;
    let mut pid = child.id();
    let result = (|| -> anyhow::Result<serde_json::Value> {
        let (key, addr) = banner(&mut child)?;
        pid = manager_pid(&child)?;
        bench_runtime()?.block_on(async {
            let mut c = Client::connect(addr, client, &key).await?;
            let (job, _, _) = c
                .submit(
                    JOB.as_bytes(),
                    1 << 40,
                    Some(1),
                    Mode::Cheapest,
                    Amount(u64::MAX),
                )
                .await?;
            // Memory before any rig: what the sessions add is measured against it.
            let rss_idle = proc_kib(pid, "VmRSS:").unwrap_or(0);
            let counters = Arc::new(Counters::default());
            let latencies = Arc::new(Mutex::new(Vec::new()));
            let ramp = Arc::new(tokio::sync::Semaphore::new(args.ramp.max(1)));
            let period = Duration::from_secs(args.heartbeat);
            let t_connect = Instant::now();
            // Generous end; the measured window is set once everyone is connected.
            let until = Instant::now() + Duration::from_secs(args.duration + 600);
            let mut tasks = Vec::with_capacity(args.rigs);
            for i in 0..args.rigs {
                let ctx = RigCtx {
                    addr,
                    key,
                    job,
                    devices: args.devices,
                    period,
                    offset: period.mul_f64(i as f64 / args.rigs as f64),
                    until,
                    counters: counters.clone(),
                    latencies: latencies.clone(),
                    ramp: ramp.clone(),
                    index: i,
                };
                tasks.push(tokio::spawn(sim_rig(ctx)));
            }
            while counters.connected.load(Ordering::Relaxed)
                + counters.failed.load(Ordering::Relaxed)
                < args.rigs as u64
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if t_connect.elapsed() > Duration::from_secs(600) {
                    break;
                }
            }
            let connect_s = t_connect.elapsed().as_secs_f64();
            // Let the staggered heartbeats settle, then measure a clean window.
            tokio::time::sleep(period).await;
            if let Ok(mut l) = latencies.lock() {
                l.clear();
            }
            let cpu0 = proc_cpu_ticks(pid).unwrap_or(0);
            let hb0 = counters.heartbeats.load(Ordering::Relaxed);
            let w0 = Instant::now();
            let mut rss_max = 0u64;
            while w0.elapsed() < Duration::from_secs(args.duration) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                rss_max = rss_max.max(proc_kib(pid, "VmRSS:").unwrap_or(0));
            }
            let window = w0.elapsed().as_secs_f64();
            let cpu1 = proc_cpu_ticks(pid).unwrap_or(0);
            let hb1 = counters.heartbeats.load(Ordering::Relaxed);
            // Before the rigs stop: a stopped rig's session ends, and its reader would count
            // that close.
            let closed = counters.closed.load(Ordering::Relaxed);
            for t in &tasks {
                t.abort();
            }
            let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let cpu_pct = (cpu1.saturating_sub(cpu0)) as f64 / clk_tck() / window * 100.0;
            let connected = counters.connected.load(Ordering::Relaxed);
            let per_session_kib = rss_max.saturating_sub(rss_idle) as f64 / connected.max(1) as f64;
            Ok(serde_json::json!({
                "rigs": args.rigs,
                "connected": connected,
                "failed": counters.failed.load(Ordering::Relaxed),
                "closed_by_manager": closed,
                "connect_s": connect_s,
                "window_s": window,
                "heartbeats_per_s": (hb1 - hb0) as f64 / window,
                "bids": counters.bids.load(Ordering::Relaxed),
                "assigns": counters.assigns.load(Ordering::Relaxed),
                "assignment_latency_samples": lat.len(),
                "assignment_latency_ms_p50": percentile(&lat, 0.50),
                "assignment_latency_ms_p99": percentile(&lat, 0.99),
                "assignment_latency_ms_max": lat.last().copied().unwrap_or(f64::NAN),
                "manager_cpu_percent_of_one_core": cpu_pct,
                "manager_rss_mib": rss_max as f64 / 1024.0,
                "manager_idle_rss_mib": rss_idle as f64 / 1024.0,
                "manager_kib_per_session": per_session_kib,
                "manager_peak_rss_mib": proc_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
            }))
        })
    })();
    stop_manager(&mut child, pid);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", result?);
    Ok(())
}
