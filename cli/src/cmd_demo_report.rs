//! The demo's summary on stdout: the physics (absorbed fraction), the result's digest next
//! to a local run's, the ledger (client, each rig, fee) with its verification, shares found,
//! and the files written under `--out`; with `--keep`, how to reach what still runs.

use std::time::Duration;

use anyhow::{bail, Context};
use compushare_kernels::transport::output::Summary;
use compushare_manager::ledger::{format_credits, Account};
use compushare_protocol::hex;
use compushare_protocol::types::TrustLevel;

use crate::cmd_demo::{Demo, DemoArgs, Outcome};

/// Micro-credits as credits ("12.500000").
pub(crate) fn credits(micro: u64) -> String {
    format_credits(i128::from(micro))
}

/// Writes the outputs and prints the summary; an error when the result differs from the
/// local run or the ledger does not verify (the demo then fails).
pub(crate) fn report(
    demo: &Demo,
    outcome: &Outcome,
    local: &[u8; 32],
    args: &DemoArgs,
    took: Duration,
) -> anyhow::Result<()> {
    let tally = &outcome.tally;
    let mut written = crate::cmd_client::write_job_result(&args.out, &outcome.input, tally)?;
    let png = args.out.join("fluence.png");
    let slice =
        compushare_kernels::transport::output::write_fluence_png(&png, &outcome.input, tally)
            .with_context(|| format!("{}", png.display()))?;
    written.push(png);
    // The detected photons are written beside each volume format: once is enough to say.
    let mut once = std::collections::BTreeSet::new();
    written.retain(|p| once.insert(p.clone()));
    let digest = tally.digest();
    let summary = Summary::new(tally);
    let read = demo.node.shared.store.read().context("node state")?;
    let balance = |a: &Account| read.balance(a).unwrap_or(0);
    let paid = |a: i128| format_credits(a);
    let verify = demo.node.shared.store.verify_ledger();
    let shares = demo.pool.accepted_shares();
    let stats = demo.pool.stats();

    println!();
    println!(
        "CompuShare demo: {} rigs{}, {} photons of {} in cheapest mode; {:.1} s in all, the job {:.1} s",
        demo.rigs.len(),
        if args.cheater { " (one cheating)" } else { "" },
        outcome.input.photons,
        outcome.input.id,
        took.as_secs_f64(),
        outcome.elapsed.as_secs_f64()
    );
    println!();
    println!("result (job {})", outcome.job.0);
    println!("  absorbed fraction  {:.6}", summary.absorbed_fraction);
    println!("  digest (network)   {}", hex::encode(&digest));
    println!(
        "  digest (local sim) {}   {}",
        hex::encode(local),
        if &digest == local {
            "equal"
        } else {
            "DIFFERENT"
        }
    );
    println!(
        "                     (compushare sim --bench cube60 --photons {} --json prints it)",
        outcome.input.photons
    );
    println!(
        "  fluence picture    {} (log scale, the plane through the source, axis {} = {})",
        args.out.join("fluence.png").display(),
        ["x", "y", "z"][slice.normal.min(2)],
        slice.index
    );
    for p in &written {
        println!("  wrote              {}", p.display());
    }

    println!();
    println!("ledger (credits)");
    let client = demo.client;
    println!(
        "  client {}  balance {}  (granted {}, job price {} per history, escrowed {}, spent {}, escrow left {})",
        hex::short(&client),
        paid(balance(&Account::Client(client))),
        credits(crate::cmd_demo::GRANT),
        credits(outcome.price.0),
        credits(outcome.escrowed.0),
        credits(outcome.status.spent.0),
        paid(balance(&Account::Escrow(outcome.job)))
    );
    let assignments = demo_assignments(demo);
    for (i, r) in demo.rigs.iter().enumerate() {
        let rec = read.rig(&r.key).ok().flatten();
        let spendable = balance(&Account::WorkerSpendable(r.payout));
        let pending = balance(&Account::WorkerPending(r.payout));
        let rig_shares = shares
            .iter()
            .filter(|s| s.submit.worker == r.worker)
            .count();
        let (errors, demotions, forfeited, verified, trusted) =
            rec.as_ref().map_or((0, 0, 0, 0, false), |r| {
                (
                    r.errors,
                    r.demotions,
                    r.forfeited,
                    r.histories_verified,
                    r.trust == TrustLevel::Trusted,
                )
            });
        println!(
            "  {:<5} {}  paid {} (spendable {}, pending {})  {} histories verified, {} assignments, {} shares, {}{}",
            r.name,
            hex::short(&r.payout),
            paid(spendable + pending),
            paid(spendable),
            paid(pending),
            verified,
            assignments.get(i).copied().unwrap_or(0),
            rig_shares,
            if trusted { "trusted" } else { "untrusted" },
            if errors > 0 {
                format!(
                    "; CAUGHT: {errors} bad result(s), trust reset{}, {} forfeited{}",
                    if demotions > 0 {
                        format!(" (demoted from trusted {demotions}x)")
                    } else {
                        String::new()
                    },
                    credits(forfeited),
                    if r.cheater { " (the cheater)" } else { "" }
                )
            } else if r.cheater {
                "; the cheater, never paid".to_owned()
            } else {
                String::new()
            }
        );
    }
    println!("  fee    {}", paid(balance(&Account::Fee)));
    match &verify {
        Ok(s) => println!("  ledger verify: passed ({s})"),
        Err(e) => println!("  ledger verify: FAILED: {e}"),
    }

    println!();
    println!(
        "mining: {} shares accepted by the pool, each one recomputed by it ({} invalid, {} duplicate, {} stale)",
        stats.accepted,
        stats.low_difficulty + stats.bad_submit + stats.unknown_job,
        stats.duplicate,
        stats.stale
    );
    println!();

    if &digest != local {
        bail!("the network's result differs from the local run");
    }
    if let Err(e) = verify {
        bail!("ledger verify failed: {e}");
    }
    if args.cheater {
        let caught = demo.rigs.iter().filter(|r| r.cheater).all(|r| {
            let spendable = balance(&Account::WorkerSpendable(r.payout));
            let pending = balance(&Account::WorkerPending(r.payout));
            spendable + pending == 0
        });
        if !caught {
            bail!("the cheater kept pay");
        }
    }
    Ok(())
}

/// Assignments per rig, from the node's store (every assignment it made, by rig).
fn demo_assignments(demo: &Demo) -> Vec<usize> {
    let Ok(read) = demo.node.shared.store.read() else {
        return Vec::new();
    };
    let all = read.assignments().unwrap_or_default();
    demo.rigs
        .iter()
        .map(|r| all.iter().filter(|a| a.rig == r.key).count())
        .collect()
}

/// With `--keep`: how to reach the node, the pool and the rigs.
pub(crate) fn how_to_reach(demo: &Demo, outcome: &Outcome) {
    let mkey = hex::encode(&demo.node.shared.identity.public());
    let addr = demo.node.addr;
    let ckey = demo.client_key_file.display();
    println!("still running (Ctrl-C ends it):");
    println!("  management node  {addr}  key {mkey}");
    println!("                   state in {}", demo.data.display());
    println!(
        "  client           compushare status {} --manager {addr} --manager-key {mkey} --key {ckey}",
        outcome.job.0
    );
    println!(
        "                   compushare submit JOB.json --manager {addr} --manager-key {mkey} --key {ckey} --wait --out DIR"
    );
    println!("  Stratum pool     {}", demo.pool.url());
    for r in &demo.rigs {
        let Some(ops) = &r.ops else { continue };
        let console = ops.console_addr.map_or("-".to_owned(), |a| a.to_string());
        let api = ops.api_addr.map_or("-".to_owned(), |a| a.to_string());
        println!(
            "  {:<5} rig key {}  console {console}  cgminer API {api}",
            r.name,
            hex::encode(&r.key)
        );
        if let Some(op) = &demo.operator_key_file {
            println!(
                "        compushare console {console} --key {} --command status",
                op.display()
            );
            println!(
                "        echo '{{\"command\":\"summary+devs\"}}' | nc -q1 {} ",
                api.replace(':', " ")
            );
        }
    }
}
