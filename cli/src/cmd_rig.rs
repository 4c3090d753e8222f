//! `compushare rig --config rig.conf`: the rig controller (PID 1's child on the USB image).
//!
//! Reads and validates rig.conf once, creates the rig identity at STATE_DIR/rig.key (0600)
//! if missing, and runs the rig core (devices, scheduler, mining, transport session, vault,
//! watchdog) with the operator surfaces rig.conf enables (serial and network console,
//! cgminer-compatible API, metrics). A rig.conf that cannot be used (unknown key, bad value,
//! missing key, unreadable file), or a STATE_DIR or vault that cannot be set up, does not stop
//! the process: the rig stays up in maintenance mode, no device working, the error (naming the
//! file and line) in its log, its status snapshot and its console and API, until an operator
//! fixes the file and reboots. A reboot order ends the process with success, and the image's
//! PID 1 starts it again. Logs go to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use compushare_controller::command::CommandTx;
use compushare_controller::config::RigConfig;
use compushare_controller::log::{set_level, Level};
use compushare_controller::ops::{self, OpsConfig, OpsHandles};
use compushare_controller::rig::{maintenance, maintenance_channels, Rig, Stop};
use compushare_controller::settings::{ConsoleHook, RigOptions, RigSettings};
use compushare_controller::status::StatusRx;
use compushare_controller::transport::state::KEY_FILE;
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

/// Arguments of `compushare rig`.
#[derive(clap::Args)]
pub struct RigArgs {
    /// The rig.conf file.
    #[arg(long)]
    config: PathBuf,
    /// Serial console to use when rig.conf names none or cannot be read (maintenance mode
    /// still answers there); SERIAL_CONSOLE in rig.conf wins.
    #[arg(long, value_name = "PATH")]
    serial_console: Option<PathBuf>,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::WORKER_STACK)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match runtime.block_on(rig(&args.config, args.serial_console)) {
        Stop::Reboot => {
            eprintln!("compushare: rig stopped for a reboot");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The identity in `state_dir`, created if missing, or why not.
fn identity(state_dir: &Path) -> Result<Identity, String> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("STATE_DIR {}: {e}", state_dir.display()))?;
    let key_path = state_dir.join(KEY_FILE);
    let (identity, created) = Identity::load_or_create(&key_path)
        .map_err(|e| format!("rig identity {}: {e}", key_path.display()))?;
    if created {
        eprintln!("compushare: created rig identity {}", key_path.display());
    }
    Ok(identity)
}

/// Why the rig goes to maintenance mode, with what of rig.conf could be salvaged (for the
/// operator surfaces).
struct Maintenance {
    cfg: RigConfig,
    error: String,
}

/// Everything a rig needs from its rig.conf, or why it cannot run.
fn prepare(path: &Path) -> Result<(RigConfig, RigSettings, Identity), Box<Maintenance>> {
    let m = |cfg, error| Box::new(Maintenance { cfg, error });
    let bytes = std::fs::read(path).map_err(|e| {
        m(
            RigConfig::parse_lenient(path, b"").0,
            format!("{}: cannot read: {e}", path.display()),
        )
    })?;
    let (cfg, errors) = RigConfig::parse_lenient(path, &bytes);
    if let Some(first) = errors.first() {
        let more = match errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let error = format!("{first}{more}");
        return Err(m(cfg, error));
    }
    let options = RigOptions {
        console: Some(console_hook()),
        ..RigOptions::default()
    };
    let settings = match RigSettings::from_config(&cfg, options) {
        Ok(s) => s,
        Err(e) => return Err(m(cfg, e.to_string())),
    };
    match identity(&settings.state_dir) {
        Ok(id) => Ok((cfg, settings, id)),
        Err(e) => Err(m(cfg, e)),
    }
}

/// Console lines the manager relays are answered by the same shell as the serial and network
/// consoles.
fn console_hook() -> ConsoleHook {
    Arc::new(|line, status, commands| {
        Box::pin(async move {
            let reply =
                compushare_controller::console::answer(line.as_bytes(), &status, &commands).await;
            (reply.ok, reply.text)
        })
    })
}

/// Starts the operator surfaces `cfg` asks for; if that fails (an address in use), says so
/// and falls back to what maintenance mode offers (the default API and the serial console),
/// so an operator can always reach the rig.
async fn surfaces(
    cfg: &OpsConfig,
    serial: Option<PathBuf>,
    status: StatusRx,
    commands: CommandTx,
    identity: Arc<Identity>,
) -> Option<OpsHandles> {
    match ops::spawn_with(cfg, status.clone(), commands.clone(), identity.clone()).await {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("compushare: operator surfaces: {e}; falling back to the defaults");
            let fallback = OpsConfig::maintenance(serial);
            match ops::spawn_with(&fallback, status, commands, identity).await {
                Ok(h) => Some(h),
                Err(e) => {
                    eprintln!("compushare: operator surfaces: {e}");
                    None
                }
            }
        }
    }
}

async fn rig(path: &Path, serial: Option<PathBuf>) -> Stop {
    let (cfg, error) = match prepare(path) {
        Ok((mut cfg, settings, identity)) => {
            eprintln!(
                "compushare: rig {} ({}) -> manager {}; measuring devices",
                settings.name,
                hex::encode(&identity.public()),
                settings
                    .manager
                    .as_ref()
                    .map_or("none (mining only)", |m| m.addr.as_str())
            );
            cfg.serial_console = cfg.serial_console.or_else(|| serial.clone());
            match tokio::task::spawn_blocking(move || Rig::new(settings, identity)).await {
                Ok(Ok(rig)) => {
                    let _ops = surfaces(
                        &OpsConfig::from_rig(&cfg),
                        serial.clone(),
                        rig.status(),
                        rig.commands(),
                        rig.identity(),
                    )
                    .await;
                    match rig.run().await {
                        Ok(stop) => return stop,
                        Err(e) => (cfg, e.to_string()),
                    }
                }
                Ok(Err(e)) => (cfg, e.to_string()),
                Err(e) => (cfg, format!("start-up failed: {e}")),
            }
        }
        Err(m) => (m.cfg, m.error),
    };
    eprintln!("compushare: maintenance mode: {error}");
    let name = cfg.rig_name.clone().unwrap_or_else(|| "rig".to_owned());
    let identity = identity(&cfg.state_dir_or_default())
        .or_else(|_| Identity::generate().map_err(|e| e.to_string()));
    let key = identity.as_ref().map(|i| i.public()).unwrap_or([0; 32]);
    let (status_tx, status_rx, cmd_tx, cmd_rx) = maintenance_channels(&name, key, &error);
    let mut ops_cfg = OpsConfig::from_rig(&cfg);
    ops_cfg.serial_console = ops_cfg.serial_console.or_else(|| serial.clone());
    let _ops = match identity {
        Ok(id) => surfaces(&ops_cfg, serial, status_rx, cmd_tx, Arc::new(id)).await,
        Err(e) => {
            eprintln!("compushare: no identity for the network console: {e}");
            None
        }
    };
    maintenance(name, key, error, status_tx, cmd_rx).await
}
