//! `compushare manager run`: serve rigs and clients on one port (default 0.0.0.0:7733).
//!
//! The identity is `DATA/manager.key` (created 0600 when missing). All state (jobs,
//! assignments, held results, trust records, ratings, the ledger) lives in `DATA/manager.redb`,
//! created with default settings when `compushare manager init` was not run; the market's
//! rules take the stored settings (`MarketConfig::from_stored`: trust and spendable
//! thresholds, price, fee, duplicate rate, samples, assignment target, job memory limit,
//! calibration, credit value). `--grant KEY=AMOUNT` credits a client at start. After a restart, running jobs resume
//! with their verified results; results not yet verified are recomputed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, ServerConfig};
use compushare_manager::Config;
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::Amount;

/// Arguments of `compushare manager run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Data directory (holds manager.key).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7733")]
    pub listen: String,
    /// Target duration of one assignment, seconds (default: the stored
    /// `assignment_target_s`, 30-120 in production; shorter only for tests).
    #[arg(long = "target-secs", value_name = "S")]
    pub target_secs: Option<f64>,
    /// Histories sampled per result check (default: the stored `sample_k`; 459 catches a 1%
    /// fabricator with 99%).
    #[arg(long, value_name = "K")]
    pub samples: Option<usize>,
    /// What one credit is worth in millisatoshi, told to rigs in Welcome so that they compare
    /// transport prices with mining revenue (at least 1). Sets the node's stored
    /// `credit_msat` (kept for later runs; default: the stored value, 1 on a new node).
    #[arg(long = "credit-msat", value_name = "MSAT")]
    pub credit_msat: Option<u64>,
    /// Credit a client key at start: HEX=AMOUNT (repeatable).
    #[arg(long, value_name = "HEX=AMOUNT")]
    pub grant: Vec<String>,
}

/// Runs `compushare manager run` until killed.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    if std::env::var_os("COMPUSHARE_LOG").is_none() {
        compushare_protocol::log::set_level(compushare_protocol::log::Level::Info);
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("--data {}", args.data.display()))?;
    let key_path = args.data.join("manager.key");
    let (identity, created) =
        Identity::load_or_create(&key_path).with_context(|| format!("{}", key_path.display()))?;
    if created {
        eprintln!("created {}", key_path.display());
    }
    let mut grants = Vec::new();
    for g in &args.grant {
        let (k, a) = g
            .split_once('=')
            .with_context(|| format!("--grant {g:?}: expected HEX=AMOUNT"))?;
        let key: [u8; 32] =
            hex::decode_array(k).map_err(|e| anyhow::anyhow!("--grant {g:?}: {e}"))?;
        let amount: u64 = a
            .parse()
            .with_context(|| format!("--grant {g:?}: amount"))?;
        grants.push((key, amount));
    }
    let db = args.data.join(compushare_manager::DB_FILE);
    // State lives in the database; a data directory without one gets a new one with the
    // default settings (`compushare manager init` chooses others).
    let (store, created) = compushare_manager::Store::init(&db, &Config::default())
        .with_context(|| format!("{}", db.display()))?;
    if created {
        eprintln!("created {}", db.display());
    }
    for (key, amount) in &grants {
        store
            .write(|tx| tx.grant(key, Amount(*amount)))
            .with_context(|| format!("--grant {}", hex::encode(key)))?;
    }
    if let Some(msat) = args.credit_msat {
        // One source of settings: the flag changes the stored setting, which the market reads.
        store
            .write(|tx| {
                let mut c = tx.config().clone();
                c.credit_msat = msat;
                tx.set_config(c)
            })
            .with_context(|| format!("--credit-msat {msat}"))?;
    }
    let stored = store.config()?;
    eprintln!("state: {}", db.display());
    let mut market = MarketConfig::from_stored(&stored);
    if let Some(t) = args.target_secs {
        if !(t > 0.0 && t.is_finite()) {
            anyhow::bail!("--target-secs must be a positive number of seconds");
        }
        market.target = Duration::from_secs_f64(t);
    }
    if let Some(k) = args.samples {
        market.samples = k.max(1);
    }
    let cfg = ServerConfig {
        listen: args
            .listen
            .parse()
            .with_context(|| format!("--listen {:?}", args.listen))?,
        market,
        ..ServerConfig::default()
    };
    let store = std::sync::Arc::new(store);
    // Before the runtime's threads: see `sys::tune_heap` (what a churning node kept).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Err(e) = compushare_manager::sys::tune_heap(cores) {
        compushare_protocol::warn!("{e}: freed memory may be kept from the OS");
    }
    let rt = cfg
        .runtime_builder()
        .thread_stack_size(crate::WORKER_STACK)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let running = start(cfg, identity, store).await.context("--listen")?;
        println!(
            "manager {} listening on {}",
            hex::encode(&running.shared.identity.public()),
            running.addr
        );
        tokio::signal::ctrl_c().await.ok();
        Ok(())
    })
}
