//! `compushare bench fleet`: how long a flight-sheet change takes to reach every rig of a farm.
//!
//! Starts `compushare manager run` as a child process with an operator key, creates a farm,
//! connects `--rigs` simulated farm rigs over real Noise/TCP (Hello with the farm key; each
//! answers every `Sheet` with `SheetApplied`, as a rig does), then makes `--changes` sheet
//! changes one after another through an admin session. For each change and each rig the
//! latency is the time from the operator sending `SheetSet` to the rig receiving the new
//! version; a change is complete when every rig has it. Prints one JSON object: p50, p99 and
//! the maximum over all (change, rig) pairs, and the median and worst time for a change to
//! reach the last rig.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_client::admin::AdminClient;
use compushare_protocol::hex;
use compushare_protocol::msg::{self, AdminToManager, ManagerToAdmin, ManagerToRig, RigToManager};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::sheet::{FarmKey, SheetSettings};
use compushare_protocol::types::{bounded, Amount};

use crate::cmd_bench_manager::{banner, bench_runtime, hello, spawn_manager};

/// Arguments of `compushare bench fleet`.
#[derive(clap::Args, Debug)]
pub struct BenchFleetArgs {
    /// Simulated rigs in the farm.
    #[arg(long, default_value_t = 1000)]
    pub rigs: usize,
    /// Sheet changes measured, one after another.
    #[arg(long, default_value_t = 20)]
    pub changes: u64,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 64)]
    pub ramp: usize,
}

/// What a simulated farm rig keeps: per rig, the latest version received and when (ns since
/// the run's base).
struct Seen {
    version: Vec<AtomicU64>,
    at_ns: Vec<AtomicU64>,
    connected: AtomicU64,
    failed: AtomicU64,
}

/// The sheet version of a `Sheet` message, decoded outside the async state machines.
#[inline(never)]
fn sheet_version(bytes: &[u8]) -> Option<Result<u64, String>> {
    match msg::decode_boxed::<ManagerToRig>(bytes).as_deref() {
        Ok(ManagerToRig::Sheet(s)) => Some(Ok(s.version)),
        Ok(ManagerToRig::Refused(r)) => Some(Err(r.reason.to_string())),
        Ok(_) => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

async fn farm_rig(
    index: usize,
    addr: std::net::SocketAddr,
    key: [u8; 32],
    farm: FarmKey,
    seen: Arc<Seen>,
    base: Instant,
    ramp: Arc<tokio::sync::Semaphore>,
) {
    let Ok(me) = Identity::generate() else { return };
    let (mut rd, mut wr) = {
        let _permit = ramp.acquire().await;
        let Ok(ch) = connect_tcp(addr, &me, &key, HANDSHAKE_TIMEOUT).await else {
            seen.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (rd, mut wr) = ch.split();
        let mut h = hello(index, 1);
        h.farm = Some(farm);
        if wr.send(&RigToManager::Hello(h)).await.is_err() {
            seen.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        (rd, wr)
    };
    seen.connected.fetch_add(1, Ordering::Relaxed);
    loop {
        let Ok(bytes) = rd.recv_bytes().await else {
            return;
        };
        match sheet_version(bytes) {
            None => {}
            Some(Ok(v)) => {
                let now = base.elapsed().as_nanos() as u64;
                if let (Some(a), Some(t)) = (seen.version.get(index), seen.at_ns.get(index)) {
                    t.store(now, Ordering::Relaxed);
                    a.store(v, Ordering::Release);
                }
                if wr
                    .send(&RigToManager::SheetApplied { version: v })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Err(why)) => {
                if seen.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("bench fleet: a rig was refused: {why}");
                }
                return;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sheet(change: u64) -> SheetSettings {
    SheetSettings {
        min_price: Some(Amount(1 + change)),
        switch_margin_ppm: Some(50_000),
        ..SheetSettings::default()
    }
}

pub fn run(args: BenchFleetArgs) -> anyhow::Result<()> {
    if args.rigs == 0 || args.changes == 0 {
        bail!("--rigs and --changes must be positive");
    }
    let dir = std::env::temp_dir().join(format!("compushare-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let op = Identity::generate()?;
    let init = std::process::Command::new(std::env::current_exe()?)
        .args(["manager", "init", "--data"])
        .arg(&dir)
        .args(["--operator", &hex::encode(&op.public())])
        .output()
        .context("compushare manager init")?;
    if !init.status.success() {
        bail!("manager init: {}", String::from_utf8_lossy(&init.stderr));
    }
    let mut child = spawn_manager(&dir, &op.public(), &[])?;
    let result = (|| -> anyhow::Result<serde_json::Value> {
        let (key, addr) = banner(&mut child)?;
        bench_runtime()?.block_on(async {
            let mut admin = AdminClient::connect(addr, &op, &key).await?;
            let farm = match admin
                .request(&AdminToManager::FarmCreate {
                    name: bounded("bench"),
                })
                .await?
            {
                ManagerToAdmin::FarmCreated { key, .. } => key,
                other => bail!("farm create: {other:?}"),
            };
            let seen = Arc::new(Seen {
                version: (0..args.rigs).map(|_| AtomicU64::new(0)).collect(),
                at_ns: (0..args.rigs).map(|_| AtomicU64::new(0)).collect(),
                connected: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            });
            let base = Instant::now();
            let ramp = Arc::new(tokio::sync::Semaphore::new(args.ramp.max(1)));
            let t_connect = Instant::now();
            let tasks: Vec<_> = (0..args.rigs)
                .map(|i| {
                    tokio::spawn(farm_rig(
                        i,
                        addr,
                        key,
                        farm,
                        seen.clone(),
                        base,
                        ramp.clone(),
                    ))
                })
                .collect();
            // Every rig in and holding the farm's first sheet (v1).
            let all_at = |v: u64| seen.version.iter().all(|x| x.load(Ordering::Acquire) >= v);
            while !all_at(1) {
                if seen.failed.load(Ordering::Relaxed) > 0
                    || t_connect.elapsed() > Duration::from_secs(600)
                {
                    bail!(
                        "only {} of {} rigs enrolled ({} failed)",
                        seen.connected.load(Ordering::Relaxed),
                        args.rigs,
                        seen.failed.load(Ordering::Relaxed)
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let connect_s = t_connect.elapsed().as_secs_f64();
            let latencies = Mutex::new(Vec::new());
            let mut complete = Vec::new();
            for change in 1..=args.changes {
                let sent_ns = base.elapsed().as_nanos() as u64;
                let version = match admin
                    .request(&AdminToManager::SheetSet {
                        farm: bounded("bench"),
                        settings: sheet(change),
                    })
                    .await?
                {
                    ManagerToAdmin::SheetStored { version, .. } => version,
                    other => bail!("sheet set: {other:?}"),
                };
                let t0 = Instant::now();
                while !all_at(version) {
                    if t0.elapsed() > Duration::from_secs(120) {
                        bail!("change {change} did not reach every rig in 120 s");
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                let mut last = 0f64;
                let mut l = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                for t in &seen.at_ns {
                    let ms = t.load(Ordering::Relaxed).saturating_sub(sent_ns) as f64 / 1e6;
                    last = last.max(ms);
                    l.push(ms);
                }
                complete.push(last);
            }
            for t in &tasks {
                t.abort();
            }
            let mut lat = latencies.into_inner().unwrap_or_default();
            lat.sort_by(|a, b| a.total_cmp(b));
            complete.sort_by(|a, b| a.total_cmp(b));
            Ok(serde_json::json!({
                "rigs": args.rigs,
                "changes": args.changes,
                "connect_and_enrol_s": connect_s,
                "samples": lat.len(),
                "sheet_latency_ms_p50": percentile(&lat, 0.50),
                "sheet_latency_ms_p99": percentile(&lat, 0.99),
                "sheet_latency_ms_max": lat.last().copied().unwrap_or(f64::NAN),
                "change_complete_ms_p50": percentile(&complete, 0.50),
                "change_complete_ms_max": complete.last().copied().unwrap_or(f64::NAN),
            }))
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", result?);
    Ok(())
}
