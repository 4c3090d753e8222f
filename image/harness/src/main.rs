//! Host side of `image/boot-test.sh`: the services a booted rig talks to, with counters a
//! shell script can wait on.
//!
//! - `pool ADDR DIFFICULTY`: the controller crate's validating Stratum v1 pool (the same one
//!   the controller's tests and `compushare demo` use); prints `pool: listening URL`, then one
//!   `pool: accepted=N rejected=M workers=W` line each time its counters change.
//! - `ntp ADDR [OFFSET_S]`: an SNTP server answering with this host's clock plus OFFSET_S;
//!   prints `ntp: answered N` after each answer. Port 123 needs root; the test skips the
//!   clock check when it cannot bind.
//! - `port`: prints a free TCP port on 127.0.0.1 (the manager's listen port).
//!
//! Each runs until killed (the boot test kills it); nothing here is shipped on the image.

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use compushare_testkit::pool::{PoolSettings, StratumPool};

fn usage() -> ! {
    eprintln!("usage: compushare-boot-harness pool ADDR DIFFICULTY | ntp ADDR [OFFSET_S] | port");
    std::process::exit(2)
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn pool(addr: &str, difficulty: f64) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let pool = StratumPool::start(
            addr,
            PoolSettings {
                difficulty,
                ..PoolSettings::default()
            },
        )
        .await?;
        say(format!("pool: listening {}", pool.url()));
        let mut last = String::new();
        loop {
            let shares = pool.accepted_shares();
            let s = pool.stats();
            let mut workers: Vec<String> = shares.iter().map(|a| a.submit.worker.clone()).collect();
            workers.sort();
            workers.dedup();
            let line = format!(
                "pool: accepted={} rejected={} workers={}",
                s.accepted,
                s.low_difficulty + s.duplicate + s.stale + s.unknown_job + s.bad_submit,
                workers.join(",")
            );
            if line != last {
                say(line.clone());
                last = line;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn ntp(addr: &str, offset_s: u64) -> Result<(), Box<dyn std::error::Error>> {
    let sock = UdpSocket::bind(addr)?;
    say(format!("ntp: listening {}", sock.local_addr()?));
    let mut reported = 0;
    compushare_init::ntp::serve(&sock, Duration::from_secs(offset_s), |answered| {
        if answered != reported {
            reported = answered;
            say(format!("ntp: answered {answered}"));
        }
        true
    })?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["pool", addr, diff] => diff
            .parse::<f64>()
            .map_err(|e| e.into())
            .and_then(|d| pool(addr, d)),
        ["ntp", addr] => ntp(addr, 0),
        ["ntp", addr, off] => off
            .parse()
            .map_err(|e: std::num::ParseIntError| e.into())
            .and_then(|o| ntp(addr, o)),
        ["port"] => TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| say(a.port().to_string()))
            .map_err(|e| e.into()),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("compushare-boot-harness: {e}");
        std::process::exit(1);
    }
}
