//! `compushare devices [--json]`: the compute devices this machine has (the hardware crate's
//! discovery), what `--device` accepts, and in one line why there is no GPU when there is none.

use clap::Args;
use compushare_hardware::{discover, DeviceKind};

/// Arguments of `compushare devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print one JSON object on stdout instead of lines of text.
    #[arg(long)]
    json: bool,
}

/// Lists the devices.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let inv = discover();
    if args.json {
        let devices: Vec<serde_json::Value> = inv
            .devices()
            .iter()
            .map(|d| {
                serde_json::json!({
                    "device": d.spec.to_string(),
                    "kind": d.kind.to_string(),
                    "name": d.name,
                    "compute_units": d.compute_units,
                    "cores": d.cores,
                    "memory_bytes": d.memory_bytes,
                    "compute_capability": d.compute_capability.map(|(a, b)| format!("{a}.{b}")),
                })
            })
            .collect();
        let out = serde_json::json!({ "devices": devices, "cuda": inv.cuda_message() });
        println!("{out}");
    } else {
        for d in inv.devices() {
            println!("{d}");
        }
        if inv.devices().iter().all(|d| d.kind != DeviceKind::Cuda) {
            println!("({})", inv.cuda_message());
        }
    }
    Ok(())
}
