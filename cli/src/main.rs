//! `compushare`: one binary for every role (see CONTRACT.md for the user-facing surface).
//!
//! Each subcommand lives in its own module (`cmd_*.rs`) that owns its arguments and its
//! output; this file only dispatches.

mod cmd_bench_protocol;
mod cmd_bench_sha256d;
mod cmd_cuda;
mod cmd_devices;
mod cmd_keygen;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "compushare",
    version,
    about = "CompuShare: GPU rigs that hash or run paid photon transport"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure throughput of a kernel or of the wire protocol.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Create an identity key file (0600) if missing and print its public key (hex).
    Keygen(cmd_keygen::KeygenArgs),
    /// List the compute devices (CPU, CUDA GPUs) that `--device` can name.
    Devices(cmd_devices::DevicesArgs),
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Encode + seal + open + decode of a Heartbeat and of a 60 KiB ResultChunk.
    Protocol(cmd_bench_protocol::BenchProtocolArgs),
    /// SHA-256d nonce-scanning throughput.
    Sha256d(cmd_bench_sha256d::BenchSha256dArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Bench { what } => match what {
            BenchWhat::Protocol(args) => cmd_bench_protocol::run(args),
            BenchWhat::Sha256d(args) => cmd_bench_sha256d::run(args),
        },
        Command::Keygen(args) => cmd_keygen::run(args),
        Command::Devices(args) => cmd_devices::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compushare: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
