//! `compushare mine`: a stand-alone Stratum v1 miner on the CPU (like cpuminer), with pool
//! failover in the order the `--pool` options are given. With `--duration` it stops after
//! that many seconds (or at Ctrl-C) and prints a summary (`--json`: the CONTRACT's object).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_controller::stratum::client::{ClientConfig, PoolConfig};
use compushare_controller::stratum::conn::{PoolUrl, TlsSettings};
use compushare_controller::stratum::miner::{KernelScanner, MinerConfig};
use compushare_controller::stratum::pools::FailoverConfig;
use compushare_controller::stratum::MiningEngine;
use serde_json::json;

/// Arguments of `compushare mine`.
#[derive(clap::Args, Debug)]
pub struct MineArgs {
    /// Pool URL (stratum+tcp://host:port or stratum+ssl://host:port); repeat for failover
    /// pools, highest priority first.
    #[arg(long = "pool", required = true, value_name = "URL")]
    pools: Vec<String>,
    /// Worker name: once for all pools, or once per pool in the same order.
    #[arg(long = "user", required = true, value_name = "U")]
    users: Vec<String>,
    /// Worker password: once for all pools, or once per pool.
    #[arg(long = "pass", required = true, value_name = "P")]
    passes: Vec<String>,
    /// Mining threads (default: all CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop after this many seconds and print the summary.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// PEM file of CA certificates to trust for stratum+ssl instead of the system roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Seconds before switching back to a recovered higher-priority pool.
    #[arg(long, default_value_t = 300.0, value_name = "S")]
    switch_back: f64,
    /// Do not ask pools for BIP 310 version rolling.
    #[arg(long)]
    no_version_rolling: bool,
}

fn per_pool(values: &[String], pools: usize, what: &str) -> anyhow::Result<Vec<String>> {
    match values.len() {
        1 => Ok(vec![values[0].clone(); pools]),
        n if n == pools => Ok(values.to_vec()),
        n => bail!("--{what} given {n} times for {pools} pools: give it once, or once per pool"),
    }
}

fn seconds(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("--{what} {v}: not a valid number of seconds"))
}

/// Runs the miner.
pub fn run(args: MineArgs) -> anyhow::Result<()> {
    let users = per_pool(&args.users, args.pools.len(), "user")?;
    let passes = per_pool(&args.passes, args.pools.len(), "pass")?;
    let mut pools = Vec::with_capacity(args.pools.len());
    for ((url, user), pass) in args.pools.iter().zip(users).zip(passes) {
        let url = PoolUrl::parse(url).with_context(|| format!("--pool {url}"))?;
        pools.push(PoolConfig { url, user, pass });
    }
    let threads = match args.threads {
        Some(0) => bail!("--threads 0: at least one thread is needed"),
        Some(t) => t,
        None => MinerConfig::default().threads,
    };
    let duration = args.duration.map(|d| seconds(d, "duration")).transpose()?;
    if let Some(ca) = &args.ca_file {
        if !ca.is_file() {
            bail!("--ca-file {}: no such file", ca.display());
        }
    }
    let client = ClientConfig {
        version_rolling: (!args.no_version_rolling).then_some(0x1fff_e000),
        tls: TlsSettings {
            ca_file: args.ca_file.clone(),
        },
        ..ClientConfig::default()
    };
    let failover = FailoverConfig {
        switch_back_delay: seconds(args.switch_back, "switch-back")?,
        ..FailoverConfig::default()
    };
    let miner = MinerConfig {
        threads,
        ..MinerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = rt.block_on(async {
        let scanner = Arc::new(KernelScanner::cpu());
        let engine = MiningEngine::start(pools.clone(), client, failover, &miner, scanner)?;
        let started = Instant::now();
        let tty = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            let left = duration.map(|d| d.saturating_sub(started.elapsed()));
            if left == Some(Duration::ZERO) {
                break;
            }
            let wait = left.unwrap_or(Duration::from_secs(3600)).min(Duration::from_secs(5));
            tokio::select! {
                _ = tick.tick() => {
                    if tty {
                        let s = engine.stats();
                        let (a, r, st) = (0..s.pool_count()).map(|i| s.pool(i)).fold((0, 0, 0), |t, c| {
                            (t.0 + c.accepted, t.1 + c.rejected, t.2 + c.stale)
                        });
                        eprintln!(
                            "pool {}: accepted {a} rejected {r} stale {st}, {:.2} MH/s",
                            s.active().map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                            s.measured_hashrate() / 1e6
                        );
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                // Ctrl-C ends the run like --duration does: the summary is still printed.
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        anyhow::Ok(engine.stop().await)
    })?;
    let (accepted, rejected, stale, connections) =
        report.pools.iter().fold((0, 0, 0, 0), |t, c| {
            (
                t.0 + c.accepted,
                t.1 + c.rejected,
                t.2 + c.stale,
                t.3 + c.connections,
            )
        });
    if connections == 0 {
        let why: Vec<String> = pools
            .iter()
            .zip(&report.pools)
            .map(|(p, c)| {
                format!(
                    "{}: {}",
                    p.url,
                    c.last_error.as_deref().unwrap_or("no answer")
                )
            })
            .collect();
        bail!("no pool could be reached ({})", why.join("; "));
    }
    let pool_index = report.active_pool.unwrap_or(0);
    // The URL as the operator typed it, so scripts can match it.
    let pool_url = args.pools.get(pool_index).cloned().unwrap_or_default();
    if args.json {
        // Written field by field to keep the CONTRACT's order.
        println!(
            "{{ \"accepted\": {accepted}, \"rejected\": {rejected}, \"stale\": {stale}, \"hashes_per_s\": {}, \"pool\": {} }}",
            json!(report.hashes_per_s),
            json!(pool_url)
        );
    } else {
        println!(
            "accepted {accepted}, rejected {rejected}, stale {stale}; {:.3} MH/s measured, {:.3} MH/s from shares; pool {pool_url}",
            report.hashes_per_s / 1e6,
            report.estimated_hashes_per_s / 1e6
        );
    }
    Ok(())
}
