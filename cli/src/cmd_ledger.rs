//! `compushare ledger verify --data DIR`: recompute the management node's ledger hash chain
//! and every balance; exit non-zero naming the first problem.

use std::path::PathBuf;

use compushare_manager::Store;

/// `compushare ledger` subcommands.
#[derive(clap::Subcommand)]
pub enum LedgerCmd {
    /// Check the ledger's hash chain and balances (the manager must not be running: the
    /// database is opened exclusively).
    Verify(VerifyArgs),
}

/// Arguments of `compushare ledger verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Data directory of the manager.
    #[arg(long)]
    data: PathBuf,
}

pub fn run(cmd: LedgerCmd) -> anyhow::Result<()> {
    match cmd {
        LedgerCmd::Verify(args) => {
            let store = Store::open_dir(&args.data)?;
            let summary = store.verify_ledger()?;
            println!("{summary}");
            Ok(())
        }
    }
}
