//! `compushare manager ...`: the management node's operator commands (`init`, `grant`, and the
//! network side's `run`). Each subcommand is one variant of [`ManagerCmd`] with its own
//! args struct.

use std::path::PathBuf;

use anyhow::Context;
use compushare_manager::ledger::{format_credits, parse_credits};
use compushare_manager::{Config, Store};
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

/// `compushare manager` subcommands.
#[derive(clap::Subcommand)]
pub enum ManagerCmd {
    /// Create a management node's data directory, identity and database; print its public key.
    Init(InitArgs),
    /// Credit a client account (operator action); print its new balance.
    Grant(GrantArgs),
    /// Serve rigs and clients.
    Run(crate::cmd_manager_run::RunArgs),
}

/// Arguments of `compushare manager init`.
#[derive(clap::Args)]
pub struct InitArgs {
    /// Data directory (created if missing): manager.key and manager.redb live here.
    #[arg(long)]
    data: PathBuf,
    /// A key (64 hex digits) allowed to administer the running node (`compushare farm`,
    /// `compushare admin`); repeat for more.
    #[arg(long = "operator", value_name = "KEY")]
    operators: Vec<String>,
}

/// Arguments of `compushare manager grant`.
#[derive(clap::Args)]
pub struct GrantArgs {
    /// Data directory of an initialised manager.
    #[arg(long)]
    data: PathBuf,
    /// The client's public key (64 hex digits).
    account_key: String,
    /// Credits, up to 6 decimals (e.g. 12.5).
    amount: String,
}

pub fn run(cmd: ManagerCmd) -> anyhow::Result<()> {
    match cmd {
        ManagerCmd::Init(args) => init(args),
        ManagerCmd::Grant(args) => grant(args),
        ManagerCmd::Run(args) => crate::cmd_manager_run::run(args),
    }
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let key_path = args.data.join(compushare_manager::KEY_FILE);
    let (id, key_created) = Identity::load_or_create(&key_path)?;
    let db_path = args.data.join(compushare_manager::DB_FILE);
    let operators = args
        .operators
        .iter()
        .map(|h| {
            hex::decode_array::<32>(h)
                .map_err(|_| anyhow::anyhow!("--operator: expected 64 hex digits, got {h:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (store, db_created) = Store::init(&db_path, &Config::default())?;
    for k in &operators {
        use compushare_manager::fleet::store::FleetWrites;
        store.write(|tx| {
            tx.set_operator(k, Some(&compushare_protocol::msg::Scope::Node))
                .map_err(|e| anyhow::anyhow!("--operator: {e}"))
        })?;
        eprintln!("operator {} may administer the node", hex::encode(k));
    }
    if key_created {
        eprintln!("created {}", key_path.display());
    }
    if db_created {
        eprintln!("created {} (default settings)", db_path.display());
    } else {
        eprintln!("{} exists; kept", db_path.display());
    }
    println!("{}", hex::encode(&id.public()));
    Ok(())
}

fn grant(args: GrantArgs) -> anyhow::Result<()> {
    let key: [u8; 32] = hex::decode_array(&args.account_key)
        .map_err(|e| anyhow::anyhow!("ACCOUNT_KEY `{}`: {e}", args.account_key))?;
    let amount = parse_credits(&args.amount).map_err(|e| anyhow::anyhow!("AMOUNT: {e}"))?;
    let store = Store::open_dir(&args.data)?;
    let balance = store.write(|tx| tx.grant(&key, amount))?;
    println!("{}", format_credits(balance));
    Ok(())
}
