//! Throughput of the manager's persistent state on this machine: durable payments per second
//! (one fsynced redb transaction each), relaxed bookkeeping transactions per second, `verify`
//! time per entry, and a default calibration of cube60.
//!
//! `cargo run -p compushare-manager --release --example ledger_bench [PAYMENTS]`

use std::time::{Duration, Instant};

use compushare_kernels::transport::{builtin::builtin_job, input::ParseOptions};
use compushare_manager::costing::calibrate;
use compushare_manager::{Config, Store};
use compushare_protocol::types::{Amount, AssignmentId, JobId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2_000);
    let dir = std::env::temp_dir().join(format!("compushare-ledger-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (store, _) = Store::init(&dir.join("manager.redb"), &Config::default())?;
    let client = [1u8; 32];
    store.write(|tx| tx.grant(&client, Amount(u64::MAX / 4)))?;
    store.write(|tx| tx.escrow(JobId(1), &client, Amount(u64::MAX / 8)))?;

    let t = Instant::now();
    for i in 0..n {
        let worker = [(i % 200) as u8; 32];
        store.write(|tx| {
            tx.pay_worker(JobId(1), AssignmentId(i), &worker, Amount(10), i % 2 == 0)
                .map(|_| ())
        })?;
    }
    let pay = t.elapsed();

    let t = Instant::now();
    for i in 0..n {
        let rig = [(i % 200) as u8; 32];
        store.write_relaxed(|tx| tx.trust_return(&rig, 1_000, 1_000_000).map(|_| ()))?;
    }
    let relaxed = t.elapsed();

    let t = Instant::now();
    let summary = store.verify_ledger()?;
    let verify = t.elapsed();

    let job = builtin_job("cube60", &ParseOptions::default())?;
    let c = Config::default();
    let cal = calibrate(
        &job,
        c.calibration_photons,
        Duration::from_millis(c.calibration_max_ms),
    )?;
    let per_s = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{{\"payments\": {n}, \"durable_pay_per_s\": {:.0}, \"relaxed_tx_per_s\": {:.0}, \
         \"verify_entries\": {}, \"verify_ms\": {:.1}, \"verify_us_per_entry\": {:.2}, \
         \"calibration_photons\": {}, \"calibration_ms\": {:.1}, \"cube60_cost_milli\": {}}}",
        per_s(pay),
        per_s(relaxed),
        summary.entries,
        verify.as_secs_f64() * 1e3,
        verify.as_secs_f64() * 1e6 / summary.entries as f64,
        cal.photons,
        cal.elapsed.as_secs_f64() * 1e3,
        cal.cost_per_history_milli
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
