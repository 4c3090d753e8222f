//! `compushare manager run`: serve rigs and clients on one port (default 0.0.0.0:7733).
//!
//! The identity is `DATA/manager.key` (created 0600 when missing). When `DATA/manager.redb`
//! exists (`compushare manager init`), money moves on its persistent, hash-chained ledger
//! (`StoreBank`); otherwise accounts live in memory for this run only. `--grant KEY=AMOUNT`
//! credits a client at start either way. Job and assignment numbers start at the current
//! Unix time in microseconds, so numbers never repeat across restarts on one ledger.
//! With the ledger, jobs and verified results are journaled under `DATA/market/` and resume
//! after a restart (rig records and results not yet verified are lost and recomputed).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use compushare_manager::escrow::MemoryBank;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::{start, ServerConfig};
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

/// Arguments of `compushare manager run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Data directory (holds manager.key).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7733")]
    pub listen: String,
    /// Target duration of one assignment, seconds (30-120 in production).
    #[arg(long = "target-secs", value_name = "S", default_value_t = 60.0)]
    pub target_secs: f64,
    /// Histories sampled per result check (459 catches a 1% fabricator with 99%).
    #[arg(long, value_name = "K", default_value_t = compushare_manager::verify::DEFAULT_SAMPLES)]
    pub samples: usize,
    /// Credit a client key at start: HEX=AMOUNT (repeatable).
    #[arg(long, value_name = "HEX=AMOUNT")]
    pub grant: Vec<String>,
}

/// Runs `compushare manager run` until killed.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
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
    let persistent = db.exists();
    let bank: Box<dyn compushare_manager::escrow::Bank> = if persistent {
        let store = std::sync::Arc::new(compushare_manager::Store::open_dir(&args.data)?);
        let bank = compushare_manager::store_bank::StoreBank::new(store);
        for (key, amount) in &grants {
            bank.grant(key, *amount)
                .with_context(|| format!("--grant {}", hex::encode(key)))?;
        }
        eprintln!("ledger: {}", db.display());
        Box::new(bank)
    } else {
        let mut bank = MemoryBank::default();
        for (key, amount) in grants {
            bank.grant(key, amount);
        }
        eprintln!(
            "no {} (run `compushare manager init`): accounts in memory",
            db.display()
        );
        Box::new(bank)
    };
    let first_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    if !(args.target_secs > 0.0 && args.target_secs.is_finite()) {
        anyhow::bail!("--target-secs must be a positive number of seconds");
    }
    let cfg = ServerConfig {
        journal: persistent.then(|| args.data.join("market")),
        listen: args
            .listen
            .parse()
            .with_context(|| format!("--listen {:?}", args.listen))?,
        market: MarketConfig {
            target: Duration::from_secs_f64(args.target_secs),
            samples: args.samples.max(1),
            first_id,
            ..MarketConfig::default()
        },
        ..ServerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let running = start(cfg, identity, bank).await.context("--listen")?;
        println!(
            "manager {} listening on {}",
            hex::encode(&running.shared.identity.public()),
            running.addr
        );
        tokio::signal::ctrl_c().await.ok();
        Ok(())
    })
}
