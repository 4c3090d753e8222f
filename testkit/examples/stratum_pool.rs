//! Runs the validating Stratum v1 pool on loopback for manual tests and measurements:
//! `cargo run -p compushare-testkit --release --example stratum_pool -- 127.0.0.1:3333 0.001 60`
//! (address, share difficulty, seconds). Prints the pool's counters at the end.

use std::time::Duration;

use compushare_testkit::pool::{PoolSettings, StratumPool};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3333".into());
    let difficulty: f64 = args.next().map(|d| d.parse()).transpose()?.unwrap_or(0.001);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);
    let pool = StratumPool::start(
        &addr,
        PoolSettings {
            difficulty,
            ..PoolSettings::default()
        },
    )
    .await?;
    eprintln!("pool at {} (difficulty {difficulty})", pool.url());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    println!("{:?}", pool.stats());
    Ok(())
}
