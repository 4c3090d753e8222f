//! `compushare`: one binary for every role (see CONTRACT.md for the user-facing surface).
//!
//! Each subcommand lives in its own module (`cmd_*.rs`) that owns its arguments and its
//! output; this file only dispatches.

mod cmd_admin;
mod cmd_bench_fleet;
mod cmd_bench_manager;
mod cmd_bench_memory;
mod cmd_bench_protocol;
mod cmd_bench_rig;
mod cmd_bench_sha256d;
mod cmd_client;
mod cmd_console;
mod cmd_cuda;
mod cmd_demo;
mod cmd_demo_report;
mod cmd_demo_view;
mod cmd_devices;
mod cmd_keygen;
mod cmd_ledger;
mod cmd_manager;
mod cmd_manager_run;
mod cmd_mine;
mod cmd_rig;
mod cmd_rig_record;
mod cmd_sim;

/// Stack of each async worker thread of the long-running roles (rig, manager). Tokio's 2 MiB
/// default holds the release build's session futures with room to spare, but an unoptimised
/// build copies the ~60 KiB protocol messages through several frames of the rig's session
/// loop and overflows it; 8 MiB of address space per worker costs nothing until touched.
pub(crate) const WORKER_STACK: usize = 8 << 20;

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
    /// The whole system on one machine: a node, a Stratum pool, rigs and a client on
    /// loopback; a paid job verified, paid and fetched (the README's first command).
    Demo(cmd_demo::DemoArgs),
    /// Measure throughput of a kernel or of the wire protocol.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Stand-alone Stratum v1 miner (like cpuminer), with pool failover.
    Mine(cmd_mine::MineArgs),
    /// Create an identity key file (0600) if missing and print its public key (hex).
    Keygen(cmd_keygen::KeygenArgs),
    /// Run a photon-transport job locally (MCX JSON input or a built-in benchmark).
    Sim(cmd_sim::SimArgs),
    /// Management node: init, grant, run.
    Manager {
        #[command(subcommand)]
        what: cmd_manager::ManagerCmd,
    },
    /// The management node's ledger: verify.
    Ledger {
        #[command(subcommand)]
        what: cmd_ledger::LedgerCmd,
    },
    /// Submit a job to a manager (and optionally wait for and fetch its result).
    Submit(cmd_client::SubmitArgs),
    /// A job's status, or a rig's public record (`--rig KEY`).
    Status(cmd_client::StatusArgs),
    /// Fetch a finished job's result and write it like `sim --out`.
    Fetch(cmd_client::FetchArgs),
    /// Rate (1-5 stars) a rig that worked on one of your jobs.
    Rate(cmd_client::RateArgs),
    /// Run the rig controller from rig.conf.
    Rig(cmd_rig::RigArgs),
    /// A rig's operator console over the network (Noise; the key must be in CONSOLE_KEYS), or
    /// relayed by its manager (`--via`).
    Console(cmd_console::ConsoleArgs),
    /// Farms on a running manager: create, sheets, overrides, rigs.
    Farm {
        #[command(subcommand)]
        what: cmd_admin::FarmCmd,
    },
    /// Operator actions on a running manager: grants, rigs, roles, operators, audit.
    Admin {
        #[command(subcommand)]
        what: cmd_admin::AdminCmd,
    },
    /// List the compute devices (CPU, CUDA GPUs) that `--device` can name.
    Devices(cmd_devices::DevicesArgs),
}

#[derive(Subcommand)]
enum BenchWhat {
    /// SHA-256d nonce-scanning throughput.
    Sha256d(cmd_bench_sha256d::BenchSha256dArgs),
    /// Encode + seal + open + decode of a Heartbeat and of a 60 KiB ResultChunk.
    Protocol(cmd_bench_protocol::BenchProtocolArgs),
    /// Simulated rigs heartbeating and bidding against one manager: CPU, memory, latency.
    Manager(cmd_bench_manager::BenchManagerArgs),
    /// The rig: switch latency transport-end -> hashing, vault seal throughput, resident memory.
    Rig(cmd_bench_rig::BenchRigArgs),
    /// A manager's memory after many finished jobs and rigs that came and went, against fresh.
    ManagerMemory(cmd_bench_memory::BenchMemoryArgs),
    /// Time for a flight-sheet change to reach every rig of a farm of simulated rigs.
    Fleet(cmd_bench_fleet::BenchFleetArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Bench { what } => match what {
            BenchWhat::Sha256d(args) => cmd_bench_sha256d::run(args),
            BenchWhat::Protocol(args) => cmd_bench_protocol::run(args),
            BenchWhat::Manager(args) => cmd_bench_manager::run(args),
            BenchWhat::Rig(args) => cmd_bench_rig::run(args),
            BenchWhat::ManagerMemory(args) => cmd_bench_memory::run(args),
            BenchWhat::Fleet(args) => cmd_bench_fleet::run(args),
        },
        Command::Demo(args) => cmd_demo::run(args),
        Command::Mine(args) => cmd_mine::run(args),
        Command::Keygen(args) => cmd_keygen::run(args),
        Command::Sim(args) => cmd_sim::run(args),
        Command::Manager { what } => cmd_manager::run(what),
        Command::Ledger { what } => cmd_ledger::run(what),
        Command::Submit(args) => cmd_client::submit(args),
        Command::Status(args) => cmd_client::status(args),
        Command::Fetch(args) => cmd_client::fetch(args),
        Command::Rate(args) => cmd_client::rate(args),
        Command::Rig(args) => cmd_rig::run(args),
        Command::Console(args) => cmd_console::run(args),
        Command::Farm { what } => cmd_admin::farm(what),
        Command::Admin { what } => cmd_admin::admin(what),
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
