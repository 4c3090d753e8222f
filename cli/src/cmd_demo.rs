//! `compushare demo`: the whole system on one machine, in this one process.
//!
//! What runs, all on loopback: the validating Stratum test pool (testkit) serving
//! mainnet-shaped jobs (a mainnet network difficulty, so CPU hashing earns next to nothing);
//! a management node (`compushare_manager::server::start`, the node `manager run` starts)
//! on a fresh data directory; `--rigs` real rig cores (`compushare_controller::rig::Rig`,
//! what `compushare rig` runs) with one CPU device each; and a client through the client
//! library. The devices hash while no paid work exists; the client submits the built-in
//! cube60 in cheapest mode; devices switch to transport, results are verified (sample
//! histories re-simulated, duplicates on the node's engine) and paid; devices go back to
//! hashing; the client fetches the result. `--cheater` makes the last rig fabricate every
//! history (testkit's dishonest device): it is caught, demoted and unpaid, and the result
//! is still the honest one.
//!
//! One process rather than child processes: every part is the same code the separate
//! binaries run (the node's server, the rig core, the client library), talking over real
//! Noise sessions on TCP, and one process lets the demo read each rig's status snapshot and
//! the node's ledger directly for the display and the summary. The system tests run the
//! parts as separate processes where a process boundary is the point (kill -9).
//!
//! Sizing for small machines: each rig's CPU device gets one core (three rigs share two
//! cores), the node's own engine one thread, and assignments are sized to about two
//! seconds, so a default run (1e6 photons) ends well within two minutes.
//!
//! Live progress goes to stderr (`cmd_demo_view`), the summary to stdout
//! (`cmd_demo_report`); outputs under `--out`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_client::Client;
use compushare_controller::mining::NumberedPool;
use compushare_controller::ops::{self, OpsConfig, OpsHandles};
use compushare_controller::rig::{Rig, Stop};
use compushare_controller::settings::RigError;
use compushare_controller::status::StatusRx;
use compushare_controller::stratum::client::PoolConfig;
use compushare_controller::stratum::conn::PoolUrl;
use compushare_kernels::transport::builtin::{builtin_job, builtin_json};
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::tally::Tally;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, Running, ServerConfig};
use compushare_manager::{Config, Store};
use compushare_protocol::hex;
use compushare_protocol::msg::{JobState, JobStatus};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey, Role};
use compushare_testkit::pool::{PoolSettings, StratumPool};
use compushare_testkit::{Fabricate, FabricatingDevice};

use crate::cmd_demo_view::View;

/// The built-in job the client submits.
const BENCH: &str = "cube60";
/// What the client is granted, micro-credits (1,000 credits: far more than the job costs).
pub(crate) const GRANT: u64 = 1_000_000_000;
/// Most rigs a demo runs (each one a CPU device, a vault and a session).
const MAX_RIGS: usize = 16;
/// Longest the paid job may take before the demo gives up.
const JOB_LIMIT: Duration = Duration::from_secs(600);

/// Arguments of `compushare demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Rigs to run (one CPU device each).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub rigs: usize,
    /// Photons of the client's job (the built-in cube60).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub photons: u64,
    /// One rig (the last) fabricates every history it returns: watch it get caught.
    #[arg(long)]
    pub cheater: bool,
    /// Leave the node, the pool and the rigs running at the end and print how to reach them
    /// (until Ctrl-C).
    #[arg(long)]
    pub keep: bool,
    /// Where the result goes (result.nii, result.mc2, fluence.png, summary.json).
    #[arg(long, value_name = "DIR", default_value = "compushare-demo")]
    pub out: PathBuf,
}

/// One rig of the demo, as the display and the summary see it.
pub(crate) struct DemoRig {
    pub name: String,
    pub key: PublicKey,
    pub payout: PublicKey,
    /// The pool worker name its shares carry.
    pub worker: String,
    pub cheater: bool,
    pub status: StatusRx,
    /// Its operator surfaces (with `--keep`).
    pub ops: Option<OpsHandles>,
    task: tokio::task::JoinHandle<Result<Stop, RigError>>,
}

impl Drop for DemoRig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything the demo started.
pub(crate) struct Demo {
    pub pool: StratumPool,
    pub node: Running,
    pub data: PathBuf,
    pub rigs: Vec<DemoRig>,
    /// The client's key file (under --out with --keep, else in the node's data directory).
    pub client_key_file: PathBuf,
    pub client: PublicKey,
    pub operator_key_file: Option<PathBuf>,
}

/// What the client's job came to.
pub(crate) struct Outcome {
    pub job: JobId,
    pub price: Amount,
    pub escrowed: Amount,
    pub status: JobStatus,
    pub tally: Tally,
    pub input: Job,
    pub elapsed: Duration,
}

/// A temporary directory for the node's data, removed on drop unless kept.
struct TempData {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempData {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs `compushare demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.rigs == 0 || args.rigs > MAX_RIGS {
        bail!("--rigs must be 1 to {MAX_RIGS}");
    }
    if args.cheater && args.rigs < 2 {
        bail!("--cheater needs --rigs 2 or more (an honest rig must be left to do the work)");
    }
    if args.photons < 1000 || args.photons > 1_000_000_000 {
        bail!("--photons must be 1000 to 1000000000");
    }
    let input = builtin_job(
        BENCH,
        &ParseOptions {
            photons: Some(args.photons),
            ..ParseOptions::default()
        },
    )
    .context("the demo's job")?;
    // Fails early on an output directory that cannot be written, before anything runs.
    std::fs::create_dir_all(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let view = View::new(args.rigs);
    if std::env::var_os("COMPUSHARE_LOG").is_none() {
        // The node's and the rigs' own log lines would tear the live display; warnings
        // still go to stderr in plain mode. COMPUSHARE_LOG=info shows every line.
        compushare_protocol::log::set_level(if view.is_live() {
            compushare_protocol::log::Level::Off
        } else {
            compushare_protocol::log::Level::Warn
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::WORKER_STACK)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let data = TempData {
        path: std::env::temp_dir().join(format!("compushare-demo-{}-{nanos}", std::process::id())),
        keep: args.keep,
    };
    runtime.block_on(async {
        let t0 = Instant::now();
        let demo = start_all(&args, &data.path, &view).await?;
        view.phase("devices hash while no paid work exists");
        wait_for_shares(&demo, &view).await;
        let outcome = run_job(&demo, &input, &view).await?;
        view.phase("job done: devices go back to hashing");
        wait_for_roles(&demo, &view, Role::Mine, Duration::from_secs(20)).await;
        view.finish();
        let local = tokio::task::block_in_place(|| local_digest(&input))?;
        crate::cmd_demo_report::report(&demo, &outcome, &local, &args, t0.elapsed())?;
        if args.keep {
            crate::cmd_demo_report::how_to_reach(&demo, &outcome);
            tokio::signal::ctrl_c().await.ok();
        } else {
            demo.node.stop();
        }
        Ok(())
    })
}

/// The pool, the node and the rigs, started and connected.
async fn start_all(args: &DemoArgs, data: &std::path::Path, view: &View) -> anyhow::Result<Demo> {
    // Easy shares so each device finds some within seconds, but a mainnet network
    // difficulty (nbits of a 2024 block), so that hashing on a CPU earns next to nothing
    // and paid transport wins when it is offered.
    let pool = StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 0.001,
            nbits: 0x1703_4219,
            job_interval: Some(Duration::from_secs(10)),
            ..PoolSettings::default()
        },
    )
    .await
    .context("the Stratum test pool")?;
    view.line(&format!(
        "pool: validating Stratum v1 test pool at {}",
        pool.url()
    ));

    std::fs::create_dir_all(data).with_context(|| format!("{}", data.display()))?;
    let db = data.join(compushare_manager::DB_FILE);
    let (store, _) = Store::init(&db, &Config::default())
        .with_context(|| format!("node state {}", db.display()))?;
    let client_key_file = if args.keep {
        args.out.join("client.key")
    } else {
        data.join("client.key")
    };
    let _ = std::fs::remove_file(&client_key_file);
    let client = Identity::generate().context("client key")?;
    client
        .save_new(&client_key_file)
        .with_context(|| format!("{}", client_key_file.display()))?;
    let client = client.public();
    store
        .write(|tx| tx.grant(&client, Amount(GRANT)))
        .context("granting the client")?;
    let market = MarketConfig {
        // Assignments of about two seconds on a one-core device: several per rig, so the
        // display shows work spreading, moving and being verified.
        target: Duration::from_secs(2),
        deadline_min: Duration::from_secs(90),
        // Earnings count as spendable at once (production waits for a million verified
        // histories), so the summary shows them where a worker would.
        spendable_after: 0,
        ..MarketConfig::default()
    };
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().context("listen address")?,
        tick: Duration::from_millis(100),
        engine_threads: 1,
        market,
        ..ServerConfig::default()
    };
    let identity = Identity::generate().context("node key")?;
    let node = start(cfg, identity, Arc::new(store))
        .await
        .context("the management node")?;
    view.line(&format!(
        "node: management node {} at {}",
        hex::encode(&node.shared.identity.public()),
        node.addr
    ));

    let (operator_key_file, operator) = if args.keep {
        let o = args.out.join("operator.key");
        let (op, _) = Identity::load_or_create(&o).with_context(|| format!("{}", o.display()))?;
        (Some(o), Some(op.public()))
    } else {
        (None, None)
    };

    // Rigs measure their device at start (blocking): all at once, off the async threads.
    let mut starting = Vec::new();
    for i in 0..args.rigs {
        let cheater = args.cheater && i + 1 == args.rigs;
        let name = format!("rig{}", i + 1);
        let worker = format!("demo.{name}");
        let state = data.join(&name);
        let payout = Identity::generate().context("payout key")?.public();
        let mut settings = compushare_testkit::rig::transport_rig(
            &node.addr.to_string(),
            node.shared.identity.public(),
            &name,
            payout,
            state,
        );
        settings.pools = vec![NumberedPool {
            number: 1,
            pool: PoolConfig {
                url: PoolUrl::parse(&pool.url())
                    .map_err(|e| anyhow::anyhow!("pool URL {}: {e:?}", pool.url()))?,
                user: worker.clone(),
                pass: "x".into(),
            },
        }];
        settings.vault_slots = 4;
        settings.vault_slot_bytes = 8 << 20;
        // A device moves to paid work after two evaluations in the lead and two seconds in
        // its role (production: three and thirty), and leaves an offer two seconds after
        // its last assignment of it ended.
        settings.options.scheduler.lead_evaluations = 2;
        settings.options.scheduler.min_dwell = Duration::from_secs(2);
        settings.options.evaluate_every = Duration::from_millis(500);
        settings.options.session.offer_linger = Duration::from_secs(2);
        settings.options.session.offer_ttl = Duration::from_secs(20);
        settings.options.calibration_photons = 512;
        if cheater {
            let fab = Fabricate {
                per_million: 1_000_000,
                salt: 0xdead,
            };
            settings.options.devices = Some(vec![Arc::new(FabricatingDevice::new(0, 1, fab))]);
        }
        let id = Identity::generate().context("rig key")?;
        let key = id.public();
        starting.push((
            name,
            worker,
            key,
            payout,
            cheater,
            tokio::task::spawn_blocking(move || Rig::new(settings, id)),
        ));
    }
    let mut rigs = Vec::new();
    for (name, worker, key, payout, cheater, task) in starting {
        let rig = task
            .await
            .context("rig start-up")?
            .with_context(|| name.clone())?;
        let status = rig.status();
        let ops = match operator {
            Some(op) => Some(operator_surfaces(&rig, op).await?),
            None => None,
        };
        view.line(&format!(
            "{name}: rig {} with one CPU device{}",
            hex::encode(&key),
            if cheater {
                " (fabricates every history: the cheater)"
            } else {
                ""
            }
        ));
        rigs.push(DemoRig {
            name,
            key,
            payout,
            worker,
            cheater,
            status,
            ops,
            task: tokio::spawn(rig.run()),
        });
    }
    Ok(Demo {
        pool,
        node,
        data: data.to_owned(),
        rigs,
        client,
        client_key_file,
        operator_key_file,
    })
}

/// The network console (for `operator` only) and the cgminer-compatible API of `rig`, on
/// free loopback ports.
async fn operator_surfaces(rig: &Rig, operator: PublicKey) -> anyhow::Result<OpsHandles> {
    let free = || -> anyhow::Result<std::net::SocketAddr> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
    };
    let cfg = OpsConfig {
        serial_console: None,
        console_listen: Some(free()?),
        console_keys: vec![operator],
        api_listen: Some(free()?),
        metrics_listen: None,
    };
    ops::spawn_with(&cfg, rig.status(), rig.commands(), rig.identity())
        .await
        .context("operator surfaces")
}

/// Waits (showing the rigs) until every rig has an accepted share, at most 20 s.
async fn wait_for_shares(demo: &Demo, view: &View) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        view.show(demo, None);
        let shares = demo.pool.accepted_shares();
        let all = demo
            .rigs
            .iter()
            .all(|r| shares.iter().any(|s| s.submit.worker == r.worker));
        if all && t0.elapsed() > Duration::from_secs(3) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (showing the rigs) until every device's role is `role`, at most `limit`.
async fn wait_for_roles(demo: &Demo, view: &View, role: Role, limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        view.show(demo, None);
        let all = demo
            .rigs
            .iter()
            .all(|r| r.status.borrow().devices.iter().all(|d| d.role == role));
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A client session to the demo's node.
async fn client(demo: &Demo) -> anyhow::Result<Client> {
    let me = Identity::load(&demo.client_key_file)
        .with_context(|| format!("{}", demo.client_key_file.display()))?;
    Client::connect(demo.node.addr, me, &demo.node.shared.identity.public())
        .await
        .context("client: connecting to the node")
}

/// Submits the job, follows it to the end and fetches its result.
async fn run_job(demo: &Demo, input: &Job, view: &View) -> anyhow::Result<Outcome> {
    let json = builtin_json(BENCH).context("the demo's job")?;
    let mut c = client(demo).await?;
    let t0 = Instant::now();
    let (job, price, escrowed) = c
        .submit(
            json.as_bytes(),
            input.photons,
            Some(input.seed),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .context("submitting the job")?;
    view.phase(&format!(
        "client submitted job {} ({BENCH}, {} photons, cheapest): {} per history, {} in escrow",
        job.0,
        input.photons,
        crate::cmd_demo_report::credits(price.0),
        crate::cmd_demo_report::credits(escrowed.0),
    ));
    let status = loop {
        let s = c.status(job).await.context("job status")?;
        view.show(demo, Some(&s));
        match s.state {
            JobState::Done => break s,
            JobState::Failed | JobState::Cancelled => bail!("job {} failed", job.0),
            _ => {}
        }
        if t0.elapsed() > JOB_LIMIT {
            bail!(
                "job {} not done after {} s: {}/{} photons",
                job.0,
                JOB_LIMIT.as_secs(),
                s.photons_done,
                s.photons_total
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let elapsed = t0.elapsed();
    let tally = c.fetch(job).await.context("fetching the result")?;
    Ok(Outcome {
        job,
        price,
        escrowed,
        status,
        tally,
        input: input.clone(),
        elapsed,
    })
}

/// The digest of the same job run here on the CPU engine, as `compushare sim --bench
/// cube60 --photons N` runs it.
fn local_digest(job: &Job) -> anyhow::Result<[u8; 32]> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(
        compushare_kernels::transport::simulate(job, 0..job.photons, threads, None)
            .context("local run")?
            .digest(),
    )
}
