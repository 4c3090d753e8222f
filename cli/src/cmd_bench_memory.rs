//! `compushare bench manager-memory`: does a management node give memory back?
//!
//! Starts `compushare manager run` as a child process (its resident memory read alone, from
//! /proc) on a fresh data directory, with two real rigs (the controller's transport client,
//! one CPU device of one core each) in this process. A warm-up (a few jobs done, a few
//! hundred rigs that came and went) primes the allocator; then the manager's resident
//! memory is the "fresh" figure. Then `--jobs` jobs are run to completion and `--rigs`
//! simulated rigs connect (real Noise), say Hello, are welcomed and leave, `--ramp` at a
//! time. After a few ticks (finished jobs and rigs that left are evicted from memory) the
//! resident memory is read again. One JSON object: both figures and their ratio, and beside
//! them the anonymous part of each (heap, malloc arenas, thread stacks: what the node itself
//! holds, the rest being its executable's and libraries' pages) and the thread counts. To run
//! the manager under a profiler: `COMPUSHARE_BENCH_WRAP` (see `cmd_bench_manager`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_client::Client;
use compushare_controller::rig::Rig;
use compushare_protocol::msg::{JobState, RigToManager};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey};

use crate::cmd_bench_manager::{
    banner, hello, kind, manager_pid, proc_kib, rollup_kib, spawn_manager, stop_manager, Kind,
};

/// The bench's job: a tiny grid (8^3 voxels), so many of them run quickly.
use crate::cmd_bench_manager::JOB;

/// Arguments of `compushare bench manager-memory`.
#[derive(clap::Args, Debug)]
pub struct BenchMemoryArgs {
    /// Jobs run to completion.
    #[arg(long, default_value_t = 1_000)]
    pub jobs: usize,
    /// Simulated rigs that connect, are welcomed and leave.
    #[arg(long, default_value_t = 10_000)]
    pub rigs: usize,
    /// Photons per job.
    #[arg(long, default_value_t = 2_000)]
    pub photons: u64,
    /// Rig sessions open at once.
    #[arg(long, default_value_t = 64)]
    pub ramp: usize,
}

/// Runs `n` jobs to completion, `parallel` at a time.
async fn jobs(c: &mut Client, n: usize, photons: u64, parallel: usize) -> anyhow::Result<()> {
    let mut done = 0;
    while done < n {
        let batch = parallel.min(n - done);
        let mut ids: Vec<JobId> = Vec::new();
        for i in 0..batch {
            let seed = (done + i) as u64;
            let (id, _, _) = c
                .submit(
                    JOB.as_bytes(),
                    photons,
                    Some(seed),
                    Mode::Cheapest,
                    Amount(u64::MAX),
                )
                .await?;
            ids.push(id);
        }
        for id in ids {
            let t0 = Instant::now();
            loop {
                let s = c.status(id).await?;
                match s.state {
                    JobState::Done => break,
                    JobState::Failed | JobState::Cancelled => bail!("job {} failed", id.0),
                    _ => {}
                }
                if t0.elapsed() > Duration::from_secs(120) {
                    bail!("job {} stuck: {s:?}", id.0);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        done += batch;
    }
    Ok(())
}

/// `n` simulated rigs that connect, say Hello, are welcomed and leave, `ramp` at once.
async fn come_and_go(addr: std::net::SocketAddr, key: PublicKey, n: usize, ramp: usize) -> usize {
    let gate = Arc::new(tokio::sync::Semaphore::new(ramp.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let me = Identity::generate().ok()?;
            let ch = connect_tcp(addr, &me, &key, HANDSHAKE_TIMEOUT).await.ok()?;
            let (mut rd, mut wr) = ch.split();
            wr.send(&RigToManager::Hello(hello(i, 4))).await.ok()?;
            let welcomed = rd.recv_bytes().await.map(kind).ok()?;
            matches!(welcomed, Kind::Welcome).then_some(())
        }));
    }
    let mut welcomed = 0;
    for t in tasks {
        if matches!(t.await, Ok(Some(()))) {
            welcomed += 1;
        }
    }
    welcomed
}

pub fn run(args: BenchMemoryArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("compushare-bench-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let client = Identity::generate()?;
    let mut child = spawn_manager(&dir, &client.public(), &["--target-secs", "0.05"])?;
    let mut pid = child.id();
    let result = (|| -> anyhow::Result<serde_json::Value> {
        let (key, addr) = banner(&mut child)?;
        pid = manager_pid(&child)?;
        crate::cmd_bench_manager::bench_runtime()?.block_on(async {
            let mut rigs = Vec::new();
            for i in 0..2 {
                let state = dir.join(format!("rig{i}"));
                std::fs::create_dir_all(&state)?;
                let settings = compushare_testkit::rig::transport_rig(
                    &addr.to_string(),
                    key,
                    &format!("churn{i}"),
                    Identity::generate()?.public(),
                    state,
                );
                let id = Identity::generate()?;
                let rig = tokio::task::spawn_blocking(move || Rig::new(settings, id)).await??;
                rigs.push(tokio::spawn(rig.run()));
            }
            let mut c = Client::connect(addr, client, &key).await?;
            let settle = Duration::from_secs(3);
            // Warm-up: a few of each, then the fresh figure.
            jobs(&mut c, 20, args.photons, 4).await?;
            come_and_go(addr, key, 200, args.ramp).await;
            tokio::time::sleep(settle).await;
            let fresh = proc_kib(pid, "VmRSS:").context("manager memory")?;
            let fresh_anon = rollup_kib(pid, "Anonymous:").unwrap_or(0);
            let fresh_threads = proc_kib(pid, "Threads:").unwrap_or(0);
            let t0 = Instant::now();
            jobs(&mut c, args.jobs, args.photons, 4).await?;
            let jobs_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let welcomed = come_and_go(addr, key, args.rigs, args.ramp).await;
            let rigs_s = t1.elapsed().as_secs_f64();
            tokio::time::sleep(settle).await;
            let after = proc_kib(pid, "VmRSS:").context("manager memory")?;
            let after_anon = rollup_kib(pid, "Anonymous:").unwrap_or(0);
            let after_threads = proc_kib(pid, "Threads:").unwrap_or(0);
            let peak = proc_kib(pid, "VmHWM:").unwrap_or(0);
            for r in rigs {
                r.abort();
            }
            Ok(serde_json::json!({
                "jobs": args.jobs,
                "photons_per_job": args.photons,
                "rigs": args.rigs,
                "rigs_welcomed": welcomed,
                "jobs_s": jobs_s,
                "rigs_s": rigs_s,
                "fresh_kib": fresh,
                "after_kib": after,
                "peak_kib": peak,
                "after_over_fresh": after as f64 / fresh.max(1) as f64,
                "fresh_anon_kib": fresh_anon,
                "after_anon_kib": after_anon,
                "fresh_threads": fresh_threads,
                "after_threads": after_threads,
            }))
        })
    })();
    stop_manager(&mut child, pid);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", result?);
    Ok(())
}
