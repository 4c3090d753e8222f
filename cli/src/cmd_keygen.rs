//! `compushare keygen FILE`: create an identity key file (0600) if missing, print its public key.

use std::path::PathBuf;

use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

/// Arguments of `compushare keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Key file to create (mode 0600) or read.
    file: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let (id, created) = Identity::load_or_create(&args.file)?;
    if created {
        eprintln!("created {}", args.file.display());
    }
    println!("{}", hex::encode(&id.public()));
    Ok(())
}
