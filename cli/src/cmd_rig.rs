//! `compushare rig --config rig.conf`: run the rig controller's transport client.
//!
//! Reads MANAGER, MANAGER_KEY, RIG_NAME, PAYOUT, CPU_DEVICES, ROLES and STATE_DIR from
//! rig.conf (every other key is parsed and validated too, for the features that use them),
//! creates the rig identity at STATE_DIR/rig.key (0600) if missing, and runs sessions with
//! the management node until a fatal error. Logs go to stderr.

use std::path::PathBuf;

use anyhow::Context;
use compushare_controller::config::RigConfig;
use compushare_controller::log::{set_level, Level};
use compushare_controller::transport::state::KEY_FILE;
use compushare_controller::transport::{Rig, RigOptions, RigSettings};
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

/// Arguments of `compushare rig`.
#[derive(clap::Args)]
pub struct RigArgs {
    /// The rig.conf file.
    #[arg(long)]
    config: PathBuf,
    /// Log every message exchanged (default: state changes).
    #[arg(long)]
    verbose: bool,
}

pub fn run(args: RigArgs) -> anyhow::Result<()> {
    // Every line from here on is also kept for the console's `log` command.
    compushare_controller::log::install_ring();
    if std::env::var_os("COMPUSHARE_LOG").is_none() {
        set_level(if args.verbose {
            Level::Debug
        } else {
            Level::Info
        });
    }
    let cfg = RigConfig::load(&args.config)?;
    let settings = RigSettings::from_config(&cfg, RigOptions::default())?;
    let state_dir = settings.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("STATE_DIR {}", state_dir.display()))?;
    let key_path = state_dir.join(KEY_FILE);
    let (identity, created) = Identity::load_or_create(&key_path)
        .with_context(|| format!("rig identity {}", key_path.display()))?;
    if created {
        eprintln!("compushare: created rig identity {}", key_path.display());
    }
    eprintln!(
        "compushare: rig {} ({}) -> manager {}; measuring devices",
        settings.name,
        hex::encode(&identity.public()),
        settings.manager
    );
    let rig = Rig::new(settings, identity)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::WORKER_STACK)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(rig.run())?;
    Ok(())
}
